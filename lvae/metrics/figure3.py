"""Figure 3 in numbers: does the reference set the colours and z the rest?

Section 4.1 reads Figure 3 (rows: one reference each; columns: one prior code z each) as
"the shape, angle, and size of the object were the same, and only the color was different
in each column": the reference carries the colours (global features) and z the object's
shape, scale and orientation (local features). Both halves are scored here on factors
*predicted* from the images by a classifier (one head per factor,
:class:`lvae.metrics.factor_net.FactorNet`), the reference's factors predicted the same
way, so a classifier's bias on one factor value cancels:

* **colours kept**: the share of generations whose global factors (3D Shapes: the three
  hues) all equal their reference's. 1 for a model that copies its reference or draws the
  paper's picture; chance for the vanilla VAE, whose reference changes nothing.
* **content shared**: over every column and every pair of its rows, the share of pairs
  whose local factors (scale, shape, orientation) all agree: z alone sets them. 1 for the
  vanilla VAE and the paper's picture; chance for a copy (each row is its reference).

Only the paper's picture has both near 1. (The section's other statement, that a row's
images clearly differ, is the readout's local share: a pixel measure, since a classifier
reads near-identical images of a copy as different often enough to blur a third score.)
Pure maths on predicted factor indices; :func:`predict_factors` makes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import torch

from lvae.data.base import to_tensor
from lvae.metrics.factor_net import FactorNet

#: The two scores, in the order the module docstring defines them.
SCORES = ("colours_kept", "content_shared")


def object_factors(data: Any) -> list[int] | None:
    """The factor positions Figure 3 says z sets: the object's, those of Table 1's "w/o
    colour" DCI (``dci_subsets["dci_nocolor"]``); None for a dataset without a colour /
    object split."""
    names = (getattr(data, "dci_subsets", None) or {}).get("dci_nocolor")
    return [data.factor_names.index(n) for n in names] if names else None


def figure3_scores(ref_factors: np.ndarray, gen_factors: np.ndarray,
                   local: Sequence[int]) -> dict[str, float]:
    """The module's two scores.

    ``ref_factors``: ``(R, F)`` factor indices of the references (rows);
    ``gen_factors``: ``(R, Z, F)`` those of the localized generations (row r, code z);
    ``local``: the factor positions z should set (the others are the global ones the
    reference should keep). Needs at least two rows and two codes.
    """
    ref, gen = np.asarray(ref_factors), np.asarray(gen_factors)
    if gen.ndim != 3 or ref.shape != (gen.shape[0], gen.shape[2]):
        raise ValueError(f"expected references (R, F) and generations (R, Z, F), got "
                         f"{ref.shape} and {gen.shape}")
    r, z, f = gen.shape
    if r < 2 or z < 2:
        raise ValueError(f"need at least 2 references and 2 codes, got {r} x {z}")
    loc = sorted(set(int(i) for i in local))
    glob = [i for i in range(f) if i not in loc]
    if not loc or not glob or loc[-1] >= f or loc[0] < 0:
        raise ValueError(f"local factors {list(local)} must name some but not all of the "
                         f"{f} factors")
    kept = (gen[:, :, glob] == ref[:, None, glob]).all(-1).mean()
    content = gen[:, :, loc]
    shared = np.mean([(content[a, j] == content[b, j]).all()
                      for j in range(z) for a, b in combinations(range(r), 2)])
    return {"colours_kept": float(kept), "content_shared": float(shared)}


def chance_scores(factor_sizes: Sequence[int], local: Sequence[int]) -> dict[str, float]:
    """What each score reads for images whose factors are independent uniform draws: the
    floor a score must clear to say anything (3D Shapes: colours kept 1/1000, content
    shared 1/480)."""
    loc = set(int(i) for i in local)
    p_glob = float(np.prod([1.0 / s for i, s in enumerate(factor_sizes) if i not in loc]))
    p_loc = float(np.prod([1.0 / s for i, s in enumerate(factor_sizes) if i in loc]))
    return {"colours_kept": p_glob, "content_shared": p_loc}


@torch.no_grad()
def predict_factors(net: FactorNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(n, F)`` int64 factor indices the classifier's heads pick for uint8 ``(n, H, W, C)``
    images."""
    out = []
    for i in range(0, len(images), batch_size):
        logits = net(to_tensor(images[i:i + batch_size]))
        out.append(torch.stack([lg.argmax(1) for lg in logits], dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(net.factor_sizes)), np.int64)
