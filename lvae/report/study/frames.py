"""The Evidence page's tables of the shipped study: its runs, milestones, hours and pilot,
the final DCI and generation tables beside the paper's numbers, and the replay checks.

Every table is read from the runs shipped under ``results/`` (:func:`shipped_runs`), so
the book shows the study's evidence without retraining anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lvae import runfolder
from lvae.config import PROFILES, TrainConfig
from lvae.evaluation import copy_baseline as baseline
from lvae.report import paper
from lvae.report.figures import config_label
from lvae.report.params import experiment_of
from lvae.report.results import PROGRESS_DIR, flatten, load_log, shipped_folder, visible
from lvae.report.shipped import results_root
from lvae.report.study.plans import STUDY, StudyRun, label
from lvae.report.study.shipping import (
    REPLAY_STEPS,
    _device_label,
    _hours,
    replay,
    trained_device,
)
from lvae.training import load_run


def _config_columns(cfg: dict[str, Any]) -> dict[str, Any]:

    e = experiment_of(cfg)
    return {"config_id": e.config_id, "label": label(e, cfg.get("lr")),
            "dataset": e.dataset, "alpha": e.alpha,
            "beta": e.beta, "neighborhood": e.neighborhood,
            "reduction": cfg.get("reduction", TrainConfig.reduction), "variant": e.variant,
            "seed": e.seed, "lr": cfg.get("lr"), "profile": cfg.get("profile")}


def paper_points(frame: pd.DataFrame, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The paper's value of each metric for each ``label`` of a milestone frame (Table 1,
    or Table 5 for input-space neighbours), to draw at the paper's budget."""
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    if frame.empty:
        return out
    for lab, g in frame.groupby("label"):
        values = paper_values(float(g["alpha"].iloc[0]), float(g["beta"].iloc[0]),
                              str(g["neighborhood"].iloc[0]))
        for m in metrics:
            if m in values:
                out[m][str(lab)] = values[m]
    return out


def paper_values(alpha: float, beta: float, neighborhood: str) -> dict[str, float]:
    """The paper's numbers for one 3D Shapes configuration: its Table 1 row, or Table 5's
    for input-space neighbours; ``{}`` where the paper has none."""

    rows = [*paper.TABLE1, *[r for r in paper.TABLE5 if r["neighborhood"] == "input_l2"]]
    for r in rows:
        if (r["alpha"], r["beta"]) == (alpha, beta) and (alpha == 0
                                                         or r["neighborhood"] == neighborhood):
            return dict(r["values"])
    return {}


def shipped_runs(root: str | Path | None = None) -> list[tuple[Path, str]]:
    """``(folder, "finished" | "training")`` of every shipped study-kind run under
    ``root`` (``results/`` by default): finished ones, then those still training."""

    root = results_root(root)
    found = []
    for base, state in ((root, "finished"), (root / PROGRESS_DIR, "training")):
        for prof in sorted(PROFILES):
            folder = base / prof
            if folder.is_dir():
                found += [(d, state) for d in sorted(folder.iterdir())
                          if visible(d) and (d / "milestones").is_dir()
                          # a progress copy left beside the finished run is not drawn
                          and not (state == "training"
                                   and (root / prof / d.name / runfolder.RESULT).is_file())]
    return found


#: The :func:`readout` values :func:`milestone_frame` carries as columns (with
#: ``heldout_meta`` and ``heldout_adapted``; empty for milestones made before it existed).
READOUT_COLUMNS = ("kl", "kl_meta", "copy_distance", "local_share", "within_row",
                   "object_variance")


def milestone_frame(root: str | Path | None = None) -> pd.DataFrame:
    """Every milestone of every shipped run, one row each: the configuration, seed, lr,
    profile, ``state`` (finished / training), ``step``, every DCI score flattened
    (``dci_nocolor.disentanglement``), ``z_share``, the training log's ``inner_loss`` and
    ``loss`` at that step, and ``diverged_at`` (the step a diverged run stopped at)."""

    rows = []
    for d, state in shipped_runs(root):
        cfg = runfolder.read_config(d)
        if cfg is None:
            continue
        log = load_log(d)
        log = log.set_index("step") if len(log) else log
        prov = runfolder.read_provenance(d)
        diverged_at = prov.steps_done if prov and prov.status == "diverged" else None
        for rec in runfolder.read_milestones(d):
            row = {"run_id": d.name, "state": state, "step": rec.step,
                   "diverged_at": diverged_at, **_config_columns(cfg)}
            for key in ("dci_color", "dci_nocolor"):
                row.update(flatten(rec.metrics.get(key, {}), f"{key}."))
            row["z_share"] = (rec.zshare or {}).get("z_share")
            ro = rec.readout or {}
            for key in READOUT_COLUMNS:
                row[key] = ro.get(key)
            row["heldout_meta"] = (ro.get("heldout") or {}).get("meta")
            row["heldout_adapted"] = (ro.get("heldout") or {}).get("adapted")
            if len(log) and rec.step in log.index:
                row["inner_loss"] = float(log.loc[rec.step, "inner_loss"])
                row["loss"] = float(log.loc[rec.step, "loss"])
            rows.append(row)
    columns = ["run_id", "state", "step", "config_id", "label", "alpha", "beta",
               "neighborhood", "variant", "seed", "lr", "profile", "z_share", "inner_loss", "loss",
               "diverged_at"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def shipped_final(profile: str, run_id: str, root: str | Path | None = None
                  ) -> dict[str, Any] | None:
    """The metrics of the final evaluation shipped in ``<root>/<profile>/<run_id>``, or
    None where there is none (a run still training, or one that diverged)."""
    ev = runfolder.read_eval(Path(results_root(root)) / profile / run_id)
    return ev.metrics if ev is not None and ev.status == "completed" else None


def metric_of(metrics: dict[str, Any] | None, column: str) -> float | None:
    """A :func:`milestone_frame` column (``"dci_nocolor.disentanglement"``) read from a final
    evaluation's metrics (:func:`shipped_final`): None where they do not hold it."""
    metric, _, key = column.partition(".")
    value = (metrics or {}).get(metric)
    if key:  # "dci_nocolor.disentanglement": a key of a metric's dictionary
        value = value.get(key) if isinstance(value, dict) else None
    # a number: "mig" is one; "dci_nocolor" alone is a dictionary, not a value
    return float(value) if isinstance(value, (int, float)) else None


def final_points(frame: pd.DataFrame, columns: Sequence[str], root: str | Path | None = None
                 ) -> dict[str, dict[str, tuple[int, float]]]:
    """Each group's final evaluation for :func:`lvae.report.figures.milestone_curves`'s
    ``final``: ``{column: {label: (step, value)}}``, the mean over the group's finished runs
    (``frame["label"]``; ``column`` a milestone column such as
    ``"dci_nocolor.disentanglement"``) of what their shipped final evaluations read, at
    their last milestone. Runs still training, and runs with no final evaluation shipped,
    add nothing. The final evaluation scores more codes than a milestone (5,000 / 2,500
    against 2,000 / 1,000) and is the number the verdicts read; the milestones read low
    beside it (the vanilla VAE at 300k: 0.089 against 0.154)."""
    out: dict[str, dict[str, tuple[int, float]]] = {c: {} for c in columns}
    if frame.empty:
        return out
    ended = frame[frame["state"] != "training"]
    for group, rows in ended.groupby("label", sort=False):
        runs = rows.drop_duplicates(["profile", "run_id"])
        metrics = [shipped_final(p, r, root) for p, r in zip(runs["profile"], runs["run_id"],
                                                              strict=True)]
        for col in columns:
            values = [v for m in metrics if (v := metric_of(m, col)) is not None]
            if values:
                out[col][str(group)] = (int(rows["step"].max()), float(np.mean(values)))
    return out


def compute_hours(folder: str | Path) -> float:
    """Hours a shipped run cost: training CPU time (its wall time for a run still training)
    plus the wall time of its milestone and final evaluations (one thread each)."""
    folder = Path(folder)
    prov = runfolder.read_provenance(folder)
    seconds = (prov.cpu_time_s or prov.wall_time_s) if prov is not None else None
    return _hours(float(seconds or 0.0), folder)


def status_frame(root: str | Path | None = None, runs: tuple[StudyRun, ...] | None = None
                 ) -> pd.DataFrame:
    """The plan beside what is shipped: one row per run of :data:`STUDY` (priority order)
    with its state (finished, diverged, in progress: shipped part-way, resumed from there
    by the next worker that takes it; planned), steps, where it trained
    (``trained on``: "CPU" or the accelerator's name) and its hours (training on that
    device plus the evaluations, which always run on the CPU)."""

    root = results_root(root)
    rows = []
    for i, sr in enumerate(STUDY if runs is None else runs, 1):
        done = shipped_folder(root, sr.profile, sr.run_id)
        part = shipped_folder(root, sr.profile, sr.run_id, progress=True)
        folder = done if (done / runfolder.RESULT).is_file() else part
        prov = runfolder.read_provenance(folder)
        state = ("planned" if prov is None else "in progress" if folder != done
                 else "diverged" if prov.status == "diverged" else "finished")
        rows.append({"priority": i, "run": sr.name, "purpose": sr.purpose, "state": state,
                     "steps": f"{(prov.steps_done if prov else None) or 0:,} / "
                              f"{PROFILES[sr.profile].steps:,}",
                     "lr": PROFILES[sr.profile].lr,
                     "trained on": _device_label(trained_device(folder)) if prov else None,
                     "hours": compute_hours(folder) if prov else None})
    return pd.DataFrame(rows)


def hours_by_device(status: pd.DataFrame) -> dict[str, float]:
    """Total ``hours`` of :func:`status_frame` per ``trained on`` (runs begun or finished)."""
    begun = status.dropna(subset=["trained on"])
    sums = begun.groupby("trained on")["hours"].sum()
    return {str(k): round(float(v), 2) for k, v in sums.items()}


def spent_text(status: pd.DataFrame) -> str:
    """What a plan's runs took so far (``status``: :func:`status_frame`), the one phrase
    the Evidence and Diagnosis pages both print: ``"33.1 CPU-hours spent (one thread of a
    2-core machine per run)"``, with ``", and 1.5 hours of runs trained on one NVIDIA H100
    (their evaluations on the CPU)"`` per device that trained some."""
    hours = hours_by_device(status)
    cpu = hours.pop("CPU", 0.0)
    return f"{cpu:.1f} CPU-hours spent (one thread of a 2-core machine per run)" + "".join(
        f", and {h:.1f} hours of runs trained on one {d} (their evaluations on the CPU)"
        for d, h in hours.items())


#: The pilot's arms, as :func:`lvae.report.study.plans.label` names them (seed 0 of each).
PILOT_ARMS = ("vanilla, lr 1e-3", "vanilla, lr 1e-4", "α=1, lr 1e-3")


def of_plan(frame: pd.DataFrame, runs: tuple[StudyRun, ...] = STUDY) -> pd.DataFrame:
    """The rows of ``frame`` (any frame with ``profile`` and ``run_id`` columns: a
    :func:`milestone_frame`, a :func:`lvae.report.results.collect` frame) that belong to
    the runs of a plan, the study's by default. The study's profile also trains the
    diagnosis's readings at the study's budget (``-rsum`` runs): the Evidence page shows
    the study's own runs, the Diagnosis page the rest."""
    if frame.empty:
        return frame
    keys = {(sr.profile, sr.run_id) for sr in runs}
    mask = [(p, r) in keys for p, r in zip(frame["profile"], frame["run_id"], strict=True)]
    return frame[mask]


def pilot_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The pilot's rows of a :func:`milestone_frame`: seed 0 of :data:`PILOT_ARMS`, of the
    study and the pilot's paper-lr arm only (the diagnosis's controls share their labels)."""
    return frame[(frame["seed"] == 0) & frame["label"].isin(PILOT_ARMS)
                 & frame["profile"].isin(["study", "cpu"])]


def shipped_configs(root: str | Path | None = None, profile: str = "study", seed: int | None = 0
                    ) -> list[tuple[Path, str, dict[str, Any]]]:
    """``(folder, state, config)`` of the shipped runs of ``profile`` (of ``seed`` only,
    unless None), read from each run's own config rather than its folder's name."""
    out = []
    for folder, state in shipped_runs(root):
        cfg = runfolder.read_config(folder) or {}
        if cfg.get("profile") == profile and (seed is None or cfg.get("seed") == seed):
            out.append((folder, state, cfg))
    return out


def replay_candidates(root: str | Path | None = None) -> dict[str, Path | None]:
    """The finished shipped study run the Evidence page replays for each kind: the first
    vanilla VAE and the first alpha = 1 Local VAE (synthetic neighbours, beta = 1)."""
    found: dict[str, Path | None] = {"vanilla": None, "Local VAE": None}
    for folder, state, cfg in shipped_configs(root, seed=None):
        kind = {0.0: "vanilla", 1.0: "Local VAE"}.get(float(cfg.get("alpha", -1)))
        if (kind and found[kind] is None and state == "finished" and cfg.get("beta") == 1.0
                and cfg.get("neighborhood") == "synthetic"):
            found[kind] = folder
    return found


def replay_checks(root: str | Path | None = None, steps: int = REPLAY_STEPS
                  ) -> list[dict[str, Any]]:
    """:func:`replay` of each kind's :func:`replay_candidates`, as the Evidence page's
    table rows."""
    checks: list[dict[str, Any]] = []
    for kind, folder in replay_candidates(root).items():
        if folder is None:
            checks.append({"kind": kind, "run": "none shipped yet"})
            continue
        r = replay(folder, steps=steps)
        checks.append({"kind": kind, "run": folder.name, "steps replayed": r["steps"],
                       "losses compared": r["compared"],
                       "largest relative difference": f"{r['max_rel_diff']:.1e}",
                       "tolerance": f"{r['tolerance']:.0e}", "log hash": r["log_hash"],
                       "replayed": ("matches" if r["matches"] else
                                    f"not replayed here: {r['skipped']}" if r["matches"] is None
                                    else f"differs: {r['worst']}")})
    return checks


def pilot_table(frame: pd.DataFrame,
                metrics: tuple[str, ...] = ("dci_nocolor.disentanglement",
                                            "dci_nocolor.informativeness")) -> pd.DataFrame:
    """The pilot's arms (rows) against milestones (columns), one block per metric: the
    numbers the pilot's decision rests on, as a table a reader can check."""
    pilot = pilot_frame(frame)
    if pilot.empty:
        return pd.DataFrame()
    blocks = {m.split(".")[1]: pilot.pivot_table(index="label", columns="step", values=m)
              for m in metrics}
    table = pd.concat(blocks, names=["metric", "arm"]).round(3)
    table.columns = [f"{int(c):,}" for c in table.columns]
    return table


#: The study's DCI summary: the final evaluation's metric and its name on the page.
FINAL_DCI = {
    "dci_nocolor.disentanglement": "D w/o colour",
    "dci_color.disentanglement": "D with colour",
    "dci_nocolor.informativeness": "I w/o colour",
}


def _spread(xs: list[Any], digits: int = 3) -> str:
    """``mean [lowest, highest]`` over seeds, the mean alone for one seed, "—" for none."""
    xs = [float(x) for x in xs if x is not None and np.isfinite(float(x))]
    if not xs:
        return "—"
    mean = f"{np.mean(xs):.{digits}f}"
    return mean if len(xs) == 1 else f"{mean} [{min(xs):.{digits}f}, {max(xs):.{digits}f}]"


def _finished(runs: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, dict[str, float]]]:
    """``(name with its seed count, the runs, the paper's values)`` per configuration of
    the study's finished runs (a run still training enters no table, as no verdict)."""

    done = runs[(runs["profile"] == "study") & runs["status"].isin(["completed", "diverged"])]
    # a loss scale is part of a configuration (its alpha means another step)
    keys = ["alpha", "beta", "neighborhood", *(["reduction"] if "reduction" in done else [])]
    for (alpha, beta, nb, *_), g in done.groupby(keys, sort=True):
        name = f"{config_label(g.iloc[0].to_dict())} ({len(g)} seed{'s' if len(g) > 1 else ''})"
        yield name, g, paper_values(float(alpha), float(beta), str(nb))


def final_dci_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The study's DCI at a glance: one row per finished configuration, per metric ours
    (``mean [lowest, highest]`` over seeds of the final evaluation: the numbers the claims
    are judged on) beside the paper's. ``runs``: a :func:`lvae.report.results.collect` frame."""
    rows = {}
    for name, g, ref in _finished(runs):
        rows[name] = {}
        for col, heading in FINAL_DCI.items():
            rows[name][(heading, "ours")] = _spread(g[col].tolist() if col in g else [])
            rows[name][(heading, "paper")] = f"{ref[col]:.3f}" if col in ref else "—"
    out = pd.DataFrame.from_dict(rows, orient="index")
    if len(out):
        out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.rename_axis("configuration")


def final_generation_table(runs: pd.DataFrame, frame: pd.DataFrame,
                           copy: dict[str, Any] | None = None) -> pd.DataFrame:
    """What the generations are, per finished configuration: the final evaluation's
    Frechet distance (``mean [lowest, highest]``) and the z-share of each run's last
    milestone (``frame``: :func:`milestone_frame`); with ``copy`` (:func:`copy_baseline`)
    a last row for references copied as they are, the line a memorising model sits on."""
    last = frame[(frame["state"] == "finished") & (frame["profile"] == "study")].sort_values(
        "step").groupby("run_id").last()
    rows: dict[str, dict[str, str]] = {}
    measure = "Fréchet distance"
    for name, g, _ in _finished(runs):
        names = g["frechet.name"].dropna().unique() if "frechet.name" in g else []
        col = f"frechet.{names[0]}" if len(names) else None
        measure = str(names[0]) if len(names) else measure
        zs = [last["z_share"].get(r) for r in g["run_id"]] if "z_share" in last else []
        rows[name] = {"distance": _spread(g[col].tolist() if col in g else [], 1),
                      "z-share": _spread(zs)}
    if copy is not None and rows:
        rows["copies of the references (copy baseline)"] = {
            "distance": f"{copy[copy['name']]:.1f}", "z-share": "0 by construction"}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["distance", "z-share"])
    return out.rename(columns={"distance": measure}).rename_axis("configuration")


def copy_baseline(root: str | Path | None = None) -> dict[str, Any] | None:
    """What a model that copies its references scores on the study's Frechet distance
    (:func:`lvae.evaluation.copy_baseline`), with the real images, sample size and
    features of the first finished study run's own evaluation; None before any finished.
    Beside it, the study's FD-factors read as "generates like the data" or "copies it"."""

    for folder, state in shipped_runs(root):
        ev = runfolder.read_eval(folder)
        name = ((ev.frechet if ev else None) or {}).get("name")
        if state != "finished" or folder.parent.name != "study" or not name:
            continue
        params = ev.params or {}
        out = baseline(load_run(folder), int(params["num_fd"]), int(params["seed"]),
                       fd_steps=params.get("fd_steps"), requested=name)
        return {**out, "run": folder.name}
    return None
