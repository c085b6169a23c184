"""Model cards for the shipped runs, generated from the files beside each model.

A shipped run (``results/<profile>/<run_id>/``, :func:`lvae.report.study.shipping.ship`) holds
everything a reader needs to judge its model: ``config.json`` (the settings), ``provenance.json``
(commits, machine, time), ``result.json`` (how training ended), ``eval.json`` (the final
metrics) and ``milestones/step_*.json`` (DCI and z-share along the way). :func:`model_card`
turns those files into Markdown, so the card can never disagree with the evidence: no
number in it is typed by hand. :func:`write_cards` (``python -m lvae.report.cards``) writes
``MODEL_CARD.md`` beside every finished model; shipping a run replaces its folder whole, so
its card is written again after (:func:`write_card`), and a test checks the committed cards
are current.

Every card has the sections of :data:`card_fields`, in that order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import lvae.config as lvae_config
from lvae import runfolder
from lvae.config import PROFILES
from lvae.data import load_dataset
from lvae.model import KERNEL, Architecture, layer_specs
from lvae.records import Eval, Milestone, Provenance, Result
from lvae.report.shipped import (
    PREFERRED_PROFILE,
    find_shipped,
    qualified_name,
    results_root,
    sha256_file,
    shipped_folders,
    short_name,
)
from lvae.store import atomic_write_bytes
from lvae.training import SHIPPED_MODEL

#: The file :func:`write_cards` writes in each shipped run folder.
CARD_NAME = "MODEL_CARD.md"

#: The section headings of every card, in order (a test checks each card lists them all).
card_fields: list[str] = ["Model", "Data", "Training budget", "Metrics", "Intended use",
                          "Known limits", "Provenance", "How to load"]

#: A z-share below this is read as "near 0": the localized generations are (almost) the
#: same image whatever z is, i.e. the adapted decoder reproduces its reference.
ZSHARE_NEAR_ZERO = 0.05

#: The datasets as the paper cites them (the twins share the real data's factor grid).
DATASET_NAMES = {"shapes3d": "3D Shapes (Burgess & Kim, 2018)",
                 "cars3d": "Cars3D (Reed et al., 2014)",
                 "smallnorb": "SmallNORB (LeCun et al., 2004)",
                 "carsnorb": "CarsNORB (Cars3D and SmallNORB concatenated, as in the paper)"}


def _g(x: Any) -> str:
    """A measured number as the card prints it: three significant digits (``0.134``,
    ``14.4``, ``0.00011``), so small values such as a z-share of 1e-4 keep their size."""
    if x is None:
        return "n/a"
    x = float(x)
    return "n/a" if math.isnan(x) else f"{x:.3g}"


def last_milestone(folder: str | Path) -> Milestone | None:
    """The latest ``milestones/step_*.json`` of a shipped run (None if it has none)."""
    recs = runfolder.read_milestones(folder)
    return max(recs, key=lambda r: r.step) if recs else None


def _kind(cfg: dict[str, Any]) -> str:
    a, b, k = float(cfg["alpha"]), float(cfg["beta"]), cfg.get("k")
    if a > 0:
        return (f"a **Local VAE** (alpha = {a:g}): before explaining an image, the encoder "
                f"and decoder take one MAML inner step of size alpha on its K = {k} "
                "neighbours (the paper's eqs. 6-8, Algorithm 1); the stored parameters are "
                "the meta-parameters the inner step starts from"
                + (f", trained with beta = {b:g}" if b != 1 else ""))
    if b != 1:
        return (f"a **beta-VAE** (beta = {b:g}, alpha = 0: no inner step), the "
                "disentanglement baseline of the paper's Table 1")
    return ("a **vanilla VAE** (alpha = 0: no inner step), the baseline the Local VAE "
            "is compared with in the paper's Table 1")


def _model_section(folder: Path, cfg: dict[str, Any]) -> list[str]:
    ck = torch.load(folder / SHIPPED_MODEL, map_location="cpu", weights_only=False)
    state: dict[str, torch.Tensor] = ck["model"]
    channels = int(state["enc.conv0.weight"].shape[1])
    arch = Architecture(resolution=int(cfg["resolution"]), channels=channels,
                        latent_dim=int(cfg["latent_dim"]))
    enc, dec = layer_specs(arch)
    rows = ["| layer | kind | in -> out | kernel | ReLU | parameters |",
            "|---|---|---|---|---|---|"]
    for lay in (*enc, *dec):
        n = sum(state[f"{lay.name}.{p}"].numel() for p in ("weight", "bias"))
        kernel = f"{KERNEL}x{KERNEL}, stride 2" if lay.kind != "linear" else ""
        rows.append(f"| `{lay.name}` | {lay.kind} | {lay.in_features} -> {lay.out_features} "
                    f"| {kernel} | {'yes' if lay.relu else 'no (output)'} | {n:,} |")
    total = sum(t.numel() for t in state.values())
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    size = (folder / SHIPPED_MODEL).stat().st_size
    return [
        f"This is {_kind(cfg)}.",
        "",
        f"The network is the paper's Table 3 encoder/decoder (`lvae.model`) at "
        f"{arch.resolution}x{arch.resolution}x{arch.channels} with a {arch.latent_dim}-d "
        f"latent: the encoder outputs the mean and log-variance of q(z|x), the decoder the "
        f"pixel logits of a {cfg.get('likelihood', 'bernoulli')} likelihood.",
        "",
        *rows,
        "",
        f"**{total:,} parameters**, stored in `{SHIPPED_MODEL}` as {'/'.join(dtypes)} "
        f"({size / 1e6:.2f} MB, the final parameters at step {ck.get('step')}, no optimiser "
        "state); `lvae.training.load_run` casts them back to float32.",
    ]


def _data_section(cfg: dict[str, Any]) -> list[str]:
    name = str(cfg["dataset"])
    cited = DATASET_NAMES.get(name, name)
    res = cfg["resolution"]
    pool, held = cfg.get("pool_size"), cfg.get("heldout_size")
    if cfg.get("data_path"):
        what = [f"The real {cited} files (`{cfg['data_path']}`), resized to {res}x{res}."]
    else:

        ds = load_dataset(name, resolution=int(res), **(cfg.get("data_options") or {}))
        factors = ", ".join(f"{f} ({s})" for f, s in
                            zip(ds.factor_names, ds.factor_sizes, strict=True))
        what = [f"lvae's **procedural twin** of {cited} at {res}x{res} "
                f"(`lvae.data.{type(ds).__name__}`), not the real dataset: the real factor "
                f"grid ({len(ds):,} images; factors {factors}) rendered offline by lvae, so "
                "no download is needed. Its images are not the real dataset's, so the numbers "
                "below are not numbers on the real data."]
    return [*what, "",
            f"Training pool: {pool:,} images drawn from it with the run's seed "
            f"({cfg.get('seed')}); {held:,} held-out images are never trained on (the z-share's "
            "references and the ELBO's images are drawn from them)."
            if isinstance(pool, int) and isinstance(held, int) else
            f"Training pool: {pool}; held out: {held}."]


def _budget_section(cfg: dict[str, Any], result: Result, prov: Provenance) -> list[str]:
    prof = PROFILES.get(str(cfg.get("profile")))
    paper = PROFILES.get("paper")
    rows = [
        ("profile", f"`{cfg.get('profile')}`" + (f": {prof.note}" if prof else "")),
        ("steps", f"{prov.steps_done if prov.holds('steps_done') else result.steps_done} of "
                  f"{cfg.get('steps')} ({result.status})"),
        ("optimiser", f"Adam, lr {cfg.get('lr'):g}, betas {tuple(cfg.get('adam_betas', ()))}"),
        ("batch", f"{cfg.get('batch_size')} anchors per step, each with its K neighbours"),
        ("K (neighbours per anchor)", str(cfg.get("k"))),
        ("alpha (inner step)", f"{float(cfg['alpha']):g}"
         + (f" (effective step on the summed loss: {_g(result.effective_alpha)})"
            if result.effective_alpha is not None and float(cfg["alpha"]) > 0 else "")),
        ("beta (KL weight)", f"{float(cfg['beta']):g}"),
        ("neighbourhood", f"`{cfg.get('neighborhood')}`"),
        ("reduction", f"`{cfg.get('reduction')}` (the loss's scale, which alpha is a step on)"),
        ("second order", "n/a (no inner step)" if float(cfg["alpha"]) == 0 else
         "no (first-order MAML)" if cfg.get("first_order") else "yes"),
        ("seed", str(cfg.get("seed"))),
    ]
    # settings added after the first runs were shipped (Algorithm 1 read literally, eq. 5's
    # prior, the Gaussian sigma): config.json holds them only when a run changed them
    later = getattr(lvae_config, "LATER_FIELDS", {})
    rows += [(f"`{k}`", f"{cfg[k]} (default {later[k]})") for k in later if k in cfg]
    out = ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if paper is not None:
        out += ["", f"For scale: the paper's budget (Table 4, the `paper` profile) is "
                    f"{paper.steps:,} steps at lr {paper.lr:g} on {paper.resolution}x"
                    f"{paper.resolution} images."]
    return out


def _dci_rows(block: Mapping[str, Any], codes: str, sd: Mapping[str, Any] | None,
              subsets: dict[str, list[str]]) -> list[str]:
    rows = []
    for key, label in (("dci_color", "with colour"), ("dci_nocolor", "without colour")):
        d = block.get(key) or {}
        if not d:
            continue
        factors = ", ".join(subsets.get(key, []))

        def cell(m: str, d: dict[str, Any] = d, key: str = key) -> str:
            s = ((sd or {}).get(key) or {}).get(m)
            return _g(d.get(m)) + (f" ± {_g(s)}" if s is not None else "")

        rows.append(f"| {label}{f' ({factors})' if factors else ''} | {codes} | "
                    f"{cell('disentanglement')} | {cell('completeness')} | "
                    f"{cell('informativeness')} |")
    return rows


def _metrics_section(cfg: dict[str, Any], ev: Eval, last: Milestone | None) -> list[str]:
    details = ev.details or {}
    codes = str(ev.codes or "meta")
    subsets = ((details.get(codes) or {}).get(str(cfg["dataset"])) or {}).get("subsets") or {}
    gbt = (ev.params or {}).get("gbt_seeds")
    counts = ev.sample_counts or {}
    out = ["DCI (Eastwood & Williams, 2018, as disentanglement_lib computes it) on the "
           f"encoder's means of {counts.get('dci_train', '?')} training and "
           f"{counts.get('dci_test', '?')} test images drawn from the whole factor grid; ± is "
           f"the spread over {gbt} GBT seeds on the same codes (the estimator's own noise, "
           "not a spread over training seeds):", "",
           "| DCI | codes | disentanglement | completeness | informativeness |",
           "|---|---|---|---|---|",
           *_dci_rows(ev.metrics, f"{codes} encoder", ev.metrics.get("gbt_sd"), subsets)]
    if float(cfg["alpha"]) > 0 and ev.adapted is not None:
        out += _dci_rows(ev.adapted, "adapted encoder", None, subsets)
    out.append("")
    if ev.metrics.get("mig") is not None:
        out.append(f"- MIG: {_g(ev.metrics['mig'])}")
    fr = ev.frechet or {}
    if fr.get("name"):
        out.append(f"- Fréchet distance, **{fr['name']}**: {_g(fr.get(fr['name']))} (lower is "
                   f"closer to the data; {fr.get('num_generated')} {fr.get('generated')} "
                   f"generations against {fr.get('num_real')} real images; features: "
                   f"{fr.get('features')})")
    elbo = ev.elbo or {}
    if elbo.get("meta") is not None:
        out.append(f"- Negative ELBO on {elbo.get('num_images')} held-out images: meta model "
                   f"{_g(elbo['meta'])}"
                   + (f", adapted {_g(elbo['adapted'])}" if elbo.get("adapted") is not None
                      else "") + f" ({elbo.get('unit', 'nats per image')})")
    if last is not None and last.zshare is not None:
        zs = last.zshare
        counts = last.sample_counts or {}
        out.append(f"- z-share at the last milestone (step {last.step}): "
                   f"**{_g(zs.get('z_share'))}** (share of the localized generations' spread "
                   "that the prior code z accounts for: 1 = z alone, 0 = the reference alone; "
                   f"{counts.get('zshare_refs', '?')} references x "
                   f"{counts.get('zshare_codes', '?')} codes, `lvae.report.study.z_share`)")
    return out


def _limits_section(cfg: dict[str, Any], ev: Eval, last: Milestone | None) -> list[str]:
    a = float(cfg["alpha"])
    out = []
    if a > 0:
        if last is None or (last.zshare or {}).get("z_share") is None:
            out.append("- No milestone records this model's z-share, so whether its localized "
                       "generations use z or copy their reference is not measured here.")
        else:
            zs = float(last.zshare["z_share"])
            out.append(f"- z-share {_g(zs)} at step {last.step}. A z-share near 0 means "
                       "the adapted decoder copies its reference whatever z is: a localized "
                       "generation is then a reconstruction of the reference, not a new "
                       "image of its neighbourhood.")
            if zs < ZSHARE_NEAR_ZERO:
                fr = (ev.frechet or {}).get("name")
                out.append(f"- **This model is in that regime** (z-share below "
                           f"{ZSHARE_NEAR_ZERO:g}): its localized generations copy their "
                           "references, and a good Fréchet distance"
                           + (f" ({fr})" if fr else "") + " then says \"copies the data\", "
                           "not \"generates well\" (the book's Evidence page sets it beside "
                           "the copy baseline).")
    else:
        out.append("- alpha = 0: nothing adapts to a reference, so a \"localized generation\" "
                   "is a plain prior sample of the decoder (z-share 1 by construction).")
    steps, res = cfg.get("steps"), cfg["resolution"]
    data = "real data" if cfg.get("data_path") else "a procedural twin, not the real data"
    line = f"- Trained {steps:,} steps at {res}x{res} on {data}"
    paper = PROFILES.get("paper")
    if paper is not None and isinstance(steps, int):
        line += (f" ({steps / paper.steps:.1%} of the paper's {paper.steps:,} steps at "
                 f"{paper.resolution}x{paper.resolution}): its numbers describe this budget, "
                 "not the paper's")
    out += [line + ".",
            f"- One training seed ({cfg.get('seed')}); the study's conclusions come from all "
            "seeds of a configuration (the book's Evidence page), not from one card."]
    return out


def _provenance_section(folder: Path, prov: Provenance, ev: Eval) -> list[str]:
    machine = prov.machine or {}
    sums = prov.sha256 or {}
    digest = sha256_file(folder / SHIPPED_MODEL)
    hours = {"wall-clock": prov.wall_time_s, "CPU": prov.cpu_time_s}
    evp = ev.provenance or {}
    return [
        f"- Trained by commits {', '.join(f'`{c}`' for c in prov.commits or [])} on "
        f"{machine.get('device', '?')} ({machine.get('cpu_count', '?')} CPU cores, torch "
        f"{machine.get('torch', '?')}, {machine.get('torch_threads', '?')} thread(s)); "
        f"finished {prov.finished}.",
        "- Time: "
        + ", ".join(f"{label} {v / 3600:.2f} h" for label, v in hours.items()
                    if isinstance(v, int | float)) + ".",
        f"- Evaluated by commit `{evp.get('commit')}` on {evp.get('evaluated')}; shipped "
        f"{prov.shipped} by `{prov.shipped_by}`.",
        f"- sha256 of `{SHIPPED_MODEL}`: `{digest}` "
        + ("(matches provenance.json)" if sums.get(SHIPPED_MODEL) == digest else
           "(provenance.json records none: shipped before hashes were kept)"
           if SHIPPED_MODEL not in sums else "(**does not match provenance.json**)"),
    ]


def model_card(folder: str | Path) -> str:
    """The Markdown model card of one shipped run with a model (sections: :data:`card_fields`).

    Raises FileNotFoundError for a folder without ``config.json`` or ``model.pt`` (a
    diverged run ships no model, so it has no card), or without the result, evaluation and
    provenance its card is made from."""
    folder = Path(folder)
    for n in (runfolder.CONFIG, SHIPPED_MODEL):
        if not (folder / n).is_file():
            raise FileNotFoundError(f"{folder} has no {n}: only shipped runs with a model "
                                    "have a model card")
    cfg = runfolder.read_config(folder) or {}
    result, ev = runfolder.read_result(folder), runfolder.read_eval(folder)
    prov = runfolder.read_provenance(folder)
    missing = [n for n, rec in ((runfolder.RESULT, result), (runfolder.EVAL, ev),
                                (runfolder.PROVENANCE, prov)) if rec is None]
    if missing:
        raise FileNotFoundError(f"{folder} has no readable {', '.join(missing)}: a shipped "
                                "run's card is made from them")
    last = last_milestone(folder)
    qname = qualified_name(folder)
    profile_arg = ("" if folder.parent.name == PREFERRED_PROFILE
                   else f', profile="{folder.parent.name}"')
    sections = {
        "Model": _model_section(folder, cfg),
        "Data": _data_section(cfg),
        "Training budget": _budget_section(cfg, result, prov),
        "Metrics": _metrics_section(cfg, ev, last),
        "Intended use": [
            "- Reading the book: the figures and tables of the reproduction report come from "
            "runs like this one.",
            "- Teaching: a trained model to adapt, traverse and sample from without hours of "
            "training.",
            "- Research on the method: comparing configurations, checking the study's "
            "readouts, starting points for new diagnoses.",
            f"- **Not** a general image model: it knows only {cfg['resolution']}x"
            f"{cfg['resolution']} images of its training data's factor grid.",
        ],
        "Known limits": _limits_section(cfg, ev, last),
        "Provenance": _provenance_section(folder, prov, ev),
        "How to load": [
            "```python",
            "import torch",
            "from lvae.data import to_tensor",
            "from lvae.generation import localized_samples",
            "from lvae.report.shipped import load_shipped",
            "",
            f'run = load_shipped("{qname}")',
            "refs = to_tensor(run.dataset.images(run.heldout[:4]))  # held out: never trained on",
            "images = localized_samples(run, refs, torch.randn(8, run.arch.latent_dim))",
            "```",
            "",
            "`images` is (4 references, 8 codes, C, H, W) pixel means. "
            + _short_name_line(folder, cfg, profile_arg),
        ],
    }
    lines = [f"# Model card: `{qname}` ({short_name(cfg)}, seed {cfg.get('seed')})", "",
             "Generated by `lvae.report.cards.write_cards()` from the files in this folder "
             "(config.json, provenance.json, result.json, eval.json, milestones/); "
             "regenerate it rather than editing it.", ""]
    for head in card_fields:
        lines += [f"## {head}", "", *sections[head], ""]
    return "\n".join(lines).rstrip() + "\n"


def _short_name_line(folder: Path, cfg: Mapping[str, Any], profile_arg: str) -> str:
    """The sentence that offers the run's short name (``alpha=1``, seed and profile) to
    :func:`~lvae.report.shipped.load_shipped`, only where that name finds this very run:
    runs that differ in a setting the short name does not carry (eq. 5's prior, the lr)
    share it, and :func:`~lvae.report.shipped.find_shipped` refuses the ambiguity."""
    name, seed = short_name(dict(cfg)), cfg.get("seed")
    try:
        found = find_shipped(name, folder.parent.parent, seed=seed, profile=folder.parent.name)
    except ValueError:
        found = None
    if found is not None and found.resolve() == folder.resolve():
        return (f'The short name `load_shipped("{name}", seed={seed}{profile_arg})` loads the '
                "same run.")
    return (f"Its short name (`{name}`, seed {seed}) matches more than one shipped run of the "
            f"`{folder.parent.name}` profile (they differ in settings the short name does not "
            "carry), so only the full name above loads this one.")


def nested_card(folder: str | Path, top: int = 3) -> str:
    """:func:`model_card` with every heading moved down so that its title is a level-``top``
    heading (``###`` by default) and its sections the level below. Why: in
    ``MODEL_CARD.md`` the card is a document of its own (``#`` title, ``##`` sections); on
    a book page it sits under the page's section for its configuration, where a ``#``
    would be the page's size and out of its outline. Lines inside fenced code (the "How to
    load" snippet, whose comments start with ``#``) are left alone."""
    if not 1 <= top <= 5:
        raise ValueError(f"top must leave room for the sections below it (1 to 5), got {top}")
    out, fenced = [], False
    for line in model_card(folder).splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            line = "#" * (top - 1) + line
        out.append(line)
    return "\n".join(out) + "\n"


def write_card(folder: str | Path) -> Path:
    """Write one run's ``MODEL_CARD.md`` (what shipping a run calls to keep its card current)
    and return its path; a card whose text is unchanged is left as it is, so regenerating
    touches nothing in git."""
    path = Path(folder) / CARD_NAME
    text = model_card(folder).encode()
    if not path.is_file() or path.read_bytes() != text:
        atomic_write_bytes(path, text)
        path.chmod(0o644)  # mkstemp's 0600 would hide the card from other readers
    return path


def write_cards(root: str | Path | None = None) -> list[Path]:
    """Write ``MODEL_CARD.md`` beside every finished shipped model under ``root`` (the
    repository's ``results/`` by default; ``results/progress/`` and hidden folders are not
    runs with a model), and return their paths (see :func:`write_card`)."""
    return [write_card(folder) for folder in shipped_folders(results_root(root))
            if (result := runfolder.read_result(folder)) and result.status == "completed"]


def _main() -> None:  # python -m lvae.report.cards: regenerate every card under results/
    print(json.dumps([str(p) for p in write_cards()], indent=1))


if __name__ == "__main__":
    _main()
