"""The pictures the Diagnosis page shows, and Figure 3's two scores read off them.

:func:`arm_pictures` finds what each shipped diagnosis arm drew at its judged milestone
(and the study's yardsticks at their last); :func:`figure3_table` scores those pictures
with :func:`lvae.metrics.figure3.figure3_scores` (colours kept, content shared) on
factors a classifier predicts, so that what a reader sees in each figure is also a
number. The pictures are small (4 references x 6 codes, as shipped): the scores describe
them, they decide nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lvae.data.base import GroundTruthData
from lvae.metrics.factor_net import FactorNet
from lvae.metrics.figure3 import (
    SCORES,
    chance_scores,
    figure3_scores,
    object_factors,
    predict_factors,
)
from lvae.report import study
from lvae.report.shipped import results_root

#: The study's runs the arms are read against: (label, profile/run id), at their last step.
YARDSTICKS = (("study: vanilla VAE (seed 0)", "study/shapes3d-a0e+00-b1-synthetic-s0"),
              ("study: beta-VAE, beta = 16 (seed 0)", "study/shapes3d-a0e+00-b16-synthetic-s0"),
              ("study: alpha = 1 (seed 0)", "study/shapes3d-a1e+00-b1-synthetic-s0"))

#: Classifier steps for the scores: the FD-factors network's 400 steps name the colours
#: but not the object (scale, shape and orientation all right on 7% of the 32x32 twin's
#: images); 3,000 steps (35 s on one core) name it on 74% and the colours on 99% (the
#: page prints the accuracy it measures).
FIGURE3_NET_STEPS = 3000


@dataclass(frozen=True)
class ArmPictures:
    """What one run drew at one milestone (``pictures``: :func:`lvae.report.study.
    measures.pictures_of` arrays) and under which name the page shows it."""

    name: str
    step: int
    pictures: dict[str, np.ndarray]


def arm_pictures(root: str | Path | None = None, step: int = 5000,
                 yardsticks: bool = False) -> list[ArmPictures]:
    """Each shipped diagnosis arm's pictures at its last milestone up to ``step`` (a
    reading's seeds, trained to the study's budget and judged there: at their last), in
    the plan's order (arms without pictures and the long baselines left out); with
    ``yardsticks``, the study's runs of :data:`YARDSTICKS` first, at their last
    milestone."""
    root = results_root(root)
    folders = {(f.parent.name, f.name): f for f, _ in study.shipped_runs(root)}
    out = []
    if yardsticks:
        for name, key in YARDSTICKS:
            folder = folders.get(tuple(key.split("/", 1)))
            pics = study.shipped_pictures(folder) if folder is not None else {}
            if pics:
                out.append(ArmPictures(name, max(pics), pics[max(pics)]))
    for sr in study.DIAGNOSIS:
        folder = folders.get((sr.profile, sr.run_id)) if sr.screened else None
        pics = study.shipped_pictures(folder) if folder is not None else {}
        seed_of_reading = any(r.trains(sr) for r in study.READINGS)
        steps = [s for s in pics if s <= step or seed_of_reading]
        if steps:
            out.append(ArmPictures(sr.arm, max(steps), pics[max(steps)]))
    return out


def _object_factors(data: GroundTruthData) -> list[int]:
    local = object_factors(data)
    if not local:
        raise ValueError(f"{getattr(data, 'name', 'this dataset')} has no colour / object "
                         "split (dci_subsets['dci_nocolor']): Figure 3's scores need one")
    return local


def figure3_table(arms: list[ArmPictures], net: FactorNet, data: GroundTruthData,
                  others: Mapping[int, FactorNet] | None = None) -> pd.DataFrame:
    """One row per arm: its step and the two scores of :mod:`lvae.metrics.figure3` on
    its localized generations (references and generations classified by ``net``, a
    classifier of ``data``), then a last row with what independent uniform factors would
    read. An arm drawn at another resolution than ``data``'s (the 64x64 arms, against a
    classifier of the 32x32 twin) is scored by the classifier of the same dataset at its
    resolution in ``others`` (keyed by the image side), never by one fed images it was
    not made for (a 64x64 picture shrunk to 32x32 loses the object's orientation to the
    32x32 classifier); without one its row says so, with no scores."""
    local = _object_factors(data)
    side = getattr(data, "resolution", None)
    nets = {side: net, **(others or {})}
    rows = []
    for a in arms:
        refs, gen = a.pictures["references"], a.pictures["localized"]
        reader = net if side is None else nets.get(refs.shape[1])
        if reader is None:
            reads = ", ".join(f"{s}x{s}" for s in sorted(nets))
            rows.append({"arm": f"{a.name} (not scored: drawn at {refs.shape[1]}x"
                                f"{refs.shape[2]}, the classifier{'s' if len(nets) > 1 else ''}"
                                f" read{'' if len(nets) > 1 else 's'} {reads})",
                         "step": a.step, **dict.fromkeys(SCORES, float("nan"))})
            continue
        r, z = gen.shape[:2]
        ref_f = predict_factors(reader, refs)
        gen_f = predict_factors(reader, gen.reshape(r * z, *gen.shape[2:])).reshape(r, z, -1)
        rows.append({"arm": a.name, "step": a.step, **figure3_scores(ref_f, gen_f, local)})
    rows.append({"arm": "chance (factors drawn at random)", "step": None,
                 **chance_scores(data.factor_sizes, local)})
    return pd.DataFrame(rows, columns=["arm", "step", *SCORES])


def classifier_accuracy(net: FactorNet, data: GroundTruthData, n: int = 2000,
                        seed: int = 123) -> dict[str, float]:
    """The classifier's accuracy on ``n`` fresh images of ``data``, per factor and for the
    colours and the object as wholes (the scores' ceiling: a generation it misreads counts
    as a change)."""
    factors, images = data.sample(n, np.random.RandomState(seed))
    hit = predict_factors(net, images) == factors
    local = _object_factors(data)
    colour = [i for i in range(len(data.factor_names)) if i not in local]
    out = {name: float(hit[:, i].mean()) for i, name in enumerate(data.factor_names)}
    out["all colours"] = float(hit[:, colour].all(1).mean())
    out["all of the object"] = float(hit[:, local].all(1).mean())
    return out


#: A score "near 1" in :func:`figure3_summary`'s words: above half.
NEAR = 0.5


def figure3_summary(table: pd.DataFrame, arms: list[str]) -> str:
    """One sentence on the Local VAE ``arms`` of a :func:`figure3_table`: how many keep
    their reference's colours, how much content any shares down a column, and which (if
    any) draw the paper's picture (both scores above :data:`NEAR`)."""
    mine = table[table["arm"].isin(arms)]
    if mine.empty:
        return "No Local VAE arm is shipped with pictures yet."
    n = len(mine)
    keep = int((mine["colours_kept"] >= NEAR).sum())
    both = mine[(mine["colours_kept"] >= NEAR) & (mine["content_shared"] >= NEAR)]
    if both.empty:
        near = mine.loc[mine[["colours_kept", "content_shared"]].min(axis=1).idxmax()]
        verdict = ("none draws the paper's picture; the nearest on both scores is "
                   f"{near['arm']} (colours kept {near['colours_kept']:.3f}, content shared "
                   f"{near['content_shared']:.3f})")
    else:
        verdict = f"{', '.join(both['arm'])} draw{'s' if len(both) == 1 else ''} it"
    keeps = f"{keep} keep{'s' if keep == 1 else ''}"
    return (f"of the {n} Local VAE run{'s' if n != 1 else ''} shown (screening arms and "
            f"readings' seeds), {keeps} their reference's colours (colours kept >= "
            f"{NEAR:g}) and content shared is at most {mine['content_shared'].max():.3f}: "
            f"{verdict}.")
