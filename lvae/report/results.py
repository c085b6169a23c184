"""The results store: every run folder as one table row, seeds summarised, paper beside ours.

Two kinds of run folders are collected, each row labelled with its ``profile`` and
``source``:

``build``     runs of the current build, ``<out>/<profile>/<run_id>/`` (``runs/`` by default,
              written by ``python -m lvae reproduce``),
``imported``  runs made elsewhere (a longer profile, a GPU) and committed to the
              repository under ``results/<profile>/<run_id>/``: ``config.json``,
              ``result.json`` (with its provenance: commit, machine, wall time),
              ``eval.json`` and ``log.jsonl``; no checkpoints (a study run also ships
              its milestone evaluations, its final parameters as ``model.pt`` and a few
              pictures per milestone: :func:`lvae.report.study.shipping.ship`).
              :func:`import_run` copies exactly those files.

Runs of different profiles or sources are never averaged together: a 300-step CPU run and
a 300k-step GPU run answer different questions, and the book shows them side by side.

"The runs of a configuration" has one definition, :func:`select`: the tables
(:func:`paper_vs_ours`), the claims (:mod:`lvae.report.claims`) and the figures (:func:`find_run`,
:func:`run_state`, :mod:`lvae.report.explore`) all pick their runs with it.

The API used by the book's result pages (keep it stable): :func:`open_page` (the setup every
result page shares), :func:`collect`, :func:`summarize`, :func:`noise_sources`,
:func:`codes_comparison`, :func:`paper_vs_ours`, :func:`wide`, :func:`sweep_frame`,
:func:`paper_curve`, :func:`select`, :func:`find_run`, :func:`run_state`,
:func:`run_caption`, :func:`training_logs`, :func:`load_log`, :func:`import_run`,
:func:`page_frames`, :func:`provenance`.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lvae import runfolder
from lvae.config import PROFILES, Profile, TrainConfig
from lvae.config import profile as get_profile
from lvae.records import Result
from lvae.report import REPO, paper, quiet_progress
from lvae.report.grid import Experiment, experiments
from lvae.report.params import experiment_of
from lvae.store import atomic_write_bytes, read_json_or_none

#: Where committed runs from elsewhere live, relative to the repository root.
IMPORTED_DIR = REPO / "results"

#: The folder of ``results/`` where runs still training are shipped (config, log,
#: milestones so far, the checkpoint to resume from): :func:`collect` does not read it, so
#: they never enter a table or a claim.
PROGRESS_DIR = "progress"


def shipped_folder(root: Path, profile: str, run_id: str, progress: bool = False) -> Path:
    """Where a run is shipped under a results root: ``<root>/<profile>/<run_id>`` once it
    ended, ``<root>/progress/<profile>/<run_id>`` (:data:`PROGRESS_DIR`) while it trains."""
    return (root / PROGRESS_DIR if progress else root) / profile / run_id

#: Files of a run that are kept in the repository (no checkpoints: they are large and
#: everything the tables need is in these).
IMPORT_FILES = (runfolder.CONFIG, runfolder.RESULT, runfolder.EVAL, runfolder.LOG)

#: Columns that describe the run (everything else in a row of :func:`collect` is a metric).
RUN_COLUMNS = (
    "run_id", "config_id", "tables", "dataset", "alpha", "beta", "neighborhood", "reduction",
    "variant", "seed", "profile", "source", "status", "evaluated", "steps", "steps_done",
    "wall_time_s", "sec_per_step", "commit", "device", "run_dir",
)

#: Group keys of :func:`summarize`: one configuration of one profile from one source.
CONFIG_KEYS = ("profile", "source", "config_id", "dataset", "alpha", "beta", "neighborhood",
               "reduction")

#: eval.json blocks not turned into columns: copies of the run's config and provenance,
#: per-factor details (arrays), and its status (the row's status says it already).
_EVAL_SKIP = frozenset({"config", "provenance", "details", "status", "message"})

_DEFAULT_REDUCTION = TrainConfig.__dataclass_fields__["reduction"].default


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; only scalars are kept (lists such as importance
    matrices stay in eval.json)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[key] = v
    return out


def _tables_by_config() -> dict[str, str]:
    return {e.config_id: ",".join(e.tables) for e in experiments(seeds=1)}


def _experiment_of(cfg: dict[str, Any]) -> Experiment:
    """The run's experiment as the runner named it, so real-data runs (``-d<hash>``) and
    custom-budget runs (``-c<hash>``) are never pooled with the profile's twin runs."""

    return experiment_of(cfg)


def read_run(run_dir: str | Path, source: str = "build",
             tables: dict[str, str] | None = None) -> dict[str, Any] | None:
    """One run folder as a flat row (``None`` if it holds no config; a run that failed
    before training has its intended config in the runner's ``reproduce.json``)."""
    run_dir = Path(run_dir)
    failure = read_json_or_none(run_dir / "reproduce.json") or {}
    cfg = runfolder.read_config(run_dir) or failure.get("config")
    if not isinstance(cfg, dict) or "dataset" not in cfg:
        return None
    exp = _experiment_of(cfg)
    tables = _tables_by_config() if tables is None else tables
    # a run without a result ended before training did: failed, or not ended yet
    result = runfolder.read_result(run_dir) or Result(
        status="failed" if failure.get("status") == "failed" else "incomplete")
    ev = runfolder.read_eval(run_dir)
    prov = result.provenance or {}
    row: dict[str, Any] = {
        "run_id": run_dir.name, "config_id": exp.config_id,
        "tables": tables.get(exp.config_id, ""), "dataset": exp.dataset, "alpha": exp.alpha,
        "beta": exp.beta, "neighborhood": exp.neighborhood,
        "reduction": cfg.get("reduction", _DEFAULT_REDUCTION), "variant": exp.variant,
        "seed": exp.seed,
        "profile": cfg.get("profile") or prov.get("profile") or run_dir.parent.name,
        "source": source, "status": result.status, "evaluated": ev is not None,
        "steps": cfg.get("steps"), "steps_done": result.steps_done,
        "wall_time_s": result.wall_time_s, "sec_per_step": result.sec_per_step,
        "commit": prov.get("commit"), "device": result.machine.get("device"),
        "run_dir": str(run_dir),
    }
    metrics = {k: v for k, v in ev.to_dict().items() if k not in _EVAL_SKIP} if ev else {}
    for k, v in flatten(metrics).items():
        row[k if k not in row else f"eval.{k}"] = v
    return row


def _run_dirs(root: Path, profile: str | None) -> Iterable[Path]:
    if not root.is_dir():
        return []
    profiles = [root / profile] if profile else sorted(p for p in root.iterdir() if p.is_dir())
    return [d for p in profiles if p.is_dir() for d in sorted(p.iterdir())
            if visible(d) and ((d / runfolder.CONFIG).is_file()
                               or (d / "reproduce.json").is_file())]


def visible(folder: Path) -> bool:
    """Whether a folder is a run at all: hidden ones (``.<name>.<tmp>``, ``.<name>.old``) are
    what an interrupted :func:`replace_folder` leaves, half written; no reader sees them."""
    return not folder.name.startswith(".")


def collect(out_dir: str | Path | None = "runs", profile: str | None = None,
            imported: str | Path | None = IMPORTED_DIR) -> pd.DataFrame:
    """All runs under ``<out_dir>/<profile>/`` and ``<imported>/<profile>/``, one row each.

    ``profile=None`` collects every profile found; ``imported=None`` leaves committed runs
    out, ``out_dir=None`` the build's. Columns: :data:`RUN_COLUMNS`, then every scalar of
    ``eval.json`` flattened to dotted names (``dci_nocolor.disentanglement``); a metric
    name that clashes with a run column is prefixed ``eval.``. ``status`` is
    ``completed`` or ``diverged`` (from result.json), ``failed`` (the runner recorded a
    failed execution) or ``incomplete``.
    """
    tables = _tables_by_config()
    rows = []
    for root, source in ((out_dir, "build"), (imported, "imported")):
        if root is None:
            continue
        for d in _run_dirs(Path(root), profile):
            row = read_run(d, source, tables)
            if row is not None:
                rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    metrics = [c for c in df.columns if c not in RUN_COLUMNS]
    return df[list(RUN_COLUMNS) + metrics].reset_index(drop=True)


def page_frames(out_dir: str | Path, profile: str, imported: str | Path | None = IMPORTED_DIR
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a result page shows: ``(build, all)``, the build's runs of ``profile`` and those
    together with every committed run (under ``imported``) of any profile (:func:`collect`)."""
    build = collect(out_dir, profile=profile, imported=None)
    imported = collect(None, profile=None, imported=imported)
    if len(imported):  # the diagnosis's arms change settings the tables do not show
        varies = {n for n, p in PROFILES.items() if p.varies_settings}
        imported = imported[~imported["profile"].isin(varies)]
    both = pd.concat([build, imported], ignore_index=True) if len(imported) else build
    return build, both


def of_table(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The rows of a :func:`collect` frame whose run serves ``table`` (its ``tables``)."""
    return df[df["tables"].fillna("").str.split(",").map(lambda names: table in names)
              .astype(bool)]


@dataclass(frozen=True)
class Page:
    """What every result page starts from (:func:`open_page`)."""

    profile: Profile  # the budget whose runs the page shows
    build: pd.DataFrame  # this build's runs of the profile (:func:`collect`)
    runs: pd.DataFrame  # those and every committed run of any profile (:func:`page_frames`)
    provenance: dict[str, str]  # the admonition's facts (:func:`provenance`), glued too
    root: Path  # the profile's folder of the build, ``<out_dir>/<profile>``

    def csv(self, name: str) -> Path:
        """Where the page writes a table as CSV: ``<out_dir>/<profile>/tables/<name>``."""
        folder = self.root / "tables"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def shown(self, path: Path) -> str:
        """``path`` as a page prints it: from the build's output folder down
        (``quick/tables/table1_paper_vs_ours.csv``), not the machine's absolute path."""
        return str(Path(path).resolve().relative_to(self.root.parent))


def open_page(out_dir: str | Path, profile: str, glue_prefix: str, *,
              table: str | None = None, dataset: str | None = None,
              imported: str | Path | None = IMPORTED_DIR) -> Page:
    """The setup every result page shares, as one call in its first cell.

    Pages are executed side by side by the book's runner and show no progress, so the
    tqdm bars are off and torch keeps to one thread. The provenance describes this build's
    runs of ``table`` (or of ``dataset``; all of them without either), and each of its
    facts is glued as ``<glue_prefix>_<key>`` (MyST-NB glue) for the page's admonition.
    """
    import warnings

    import torch
    from myst_nb import glue


    warnings.filterwarnings("ignore", message="IProgress not found")
    quiet_progress()
    torch.set_num_threads(1)
    build, runs = page_frames(out_dir, profile, imported)
    shown = build if table is None else of_table(build, table)
    if dataset is not None:
        shown = shown[shown["dataset"] == dataset]
    facts = provenance(shown, profile)
    for key, value in facts.items():
        glue(f"{glue_prefix}_{key}", value, display=False)
    return Page(get_profile(profile), build, runs, facts, Path(out_dir).resolve() / profile)


def provenance(rows: pd.DataFrame, profile: str) -> dict[str, str]:
    """Where a page's numbers come from, as text for its admonition: the profile and its
    budget against the paper's 300,000 steps, the number of finished (completed or
    diverged) runs and their summed training wall time, the commits they ran at, and the
    library versions one of them recorded."""
    prof = get_profile(profile)
    done = rows[rows["status"].isin(["completed", "diverged"])]
    wall = float(done["wall_time_s"].fillna(0).sum())
    commits = ", ".join(sorted({str(c) for c in done["commit"].dropna()}))
    vers: dict[str, Any] = {}
    for d in done["run_dir"]:
        result = runfolder.read_result(d)
        m = result.machine if result is not None else {}
        vers = {k: m[k] for k in ("torch", "numpy", "sklearn", "python") if k in m}
        if vers:
            break
    return {
        "profile": profile,
        "steps": f"{prof.steps:,}",
        "paper_steps": "300,000",
        "budget": f"{100 * prof.steps / 300_000:.3g}%",
        "resolution": f"{prof.resolution}x{prof.resolution}",
        "runs": f"{len(done)}",
        "wall": f"{wall / 60:.1f} min",
        "commit": commits or "none",
        "versions": ", ".join(f"{k} {v}" for k, v in vers.items()) or "unknown",
        "note": prof.note,
    }


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a :func:`collect` frame."""
    return [c for c in df.columns if c not in RUN_COLUMNS
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def t_interval(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, half-width of the two-sided 95% Student-t interval, n (finite values only).

    half = t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation (ddof = 1);
    NaN for n < 2, where no interval exists.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return float(x.mean()), half, n


def summarize(df: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Seeds of each configuration summarised: mean, 95% t-interval, n, per metric.

    One row per (configuration, metric), grouped by :data:`CONFIG_KEYS` (so profiles and
    sources are never pooled). Only ``completed`` runs enter the statistics; ``n_runs``,
    ``n_diverged`` and ``n_failed`` count every run of the configuration. The interval is
    the two-sided 95% Student-t interval for the mean over seeds,
    mean +/- t_{0.975, n-1} s / sqrt(n) with s the sample standard deviation (ddof 1):
    ``ci95`` is its half-width, NaN for a single seed.
    """
    metrics = list(metrics) if metrics is not None else metric_columns(df)
    cols = [*CONFIG_KEYS, "metric", "mean", "ci95", "n", "n_runs", "n_diverged", "n_failed"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in df.groupby(list(CONFIG_KEYS), sort=True, dropna=False):
        ok = g[g["status"] == "completed"]
        counts = {"n_runs": len(g), "n_diverged": int((g["status"] == "diverged").sum()),
                  "n_failed": int((g["status"] == "failed").sum())}
        for m in metrics:
            vals = ok[m].astype(float).tolist() if m in ok else []
            mean, half, n = t_interval(vals)
            out.append({**dict(zip(CONFIG_KEYS, key, strict=True)), "metric": m, "mean": mean,
                        "ci95": half, "n": n, **counts})
    return pd.DataFrame(out, columns=cols)


def _in_config_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by profile, source, dataset, then alpha and beta as numbers (grouping by the
    run id's text would put alpha = 10 before alpha = 2); ties keep their order."""
    order = ["profile", "source", "dataset", "alpha", "beta", "neighborhood"]
    return frame.sort_values(order, kind="stable", ignore_index=True)


def noise_sources(df: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Two sources of spread in a DCI score, per configuration: training seeds vs GBT seeds.

    ``sd_seeds`` is the sample standard deviation (ddof 1) of the metric over the
    configuration's completed runs (one per training seed, each with the headline GBT seed);
    ``sd_gbt`` is the mean over those runs of ``gbt_sd.<metric>``, the standard deviation
    of the same run's DCI refit on the *same codes* with other GBT seeds
    (:func:`lvae.evaluation.disentanglement_metrics`). ``dominant`` names the larger;
    ``"—"`` where either is missing (one seed, or no refits). Grouped by
    :data:`CONFIG_KEYS`, so profiles and sources are never pooled.
    """
    cols = [*CONFIG_KEYS, "metric", "sd_seeds", "n_seeds", "sd_gbt", "n_gbt_runs",
            "dominant"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    if metrics is None:
        metrics = sorted(c.removeprefix("gbt_sd.") for c in df.columns
                         if c.startswith("gbt_sd."))
    out = []
    for key, g in df.groupby(list(CONFIG_KEYS), sort=True, dropna=False):
        ok = g[g["status"] == "completed"]
        for m in metrics:
            seeds = ok[m].astype(float).dropna() if m in ok else pd.Series(dtype=float)
            sd_s = float(seeds.std(ddof=1)) if len(seeds) >= 2 else math.nan
            gcol = f"gbt_sd.{m}"
            gbt = ok[gcol].astype(float).dropna() if gcol in ok else pd.Series(dtype=float)
            sd_g = float(gbt.mean()) if len(gbt) else math.nan
            dom = "—" if math.isnan(sd_s) or math.isnan(sd_g) else (
                "training seeds" if sd_s > sd_g else "GBT seed")
            out.append({**dict(zip(CONFIG_KEYS, key, strict=True)), "metric": m,
                        "sd_seeds": sd_s, "n_seeds": len(seeds), "sd_gbt": sd_g,
                        "n_gbt_runs": len(gbt), "dominant": dom})
    return _in_config_order(pd.DataFrame(out, columns=cols))


def codes_comparison(df: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """The same DCI scores on the meta-encoder's codes and on the adapted encoder's codes.

    Which encoder gives the DCI codes is a choice the paper does not state, and the two
    differ; the headline tables use the meta-encoder's means, and this frame shows the
    other. ``metrics`` are headline columns (e.g.
    ``dci_nocolor.disentanglement``); the adapted value of each is ``adapted.<metric>``. One
    row per configuration with alpha > 0 and metric: ``meta``/``adapted`` mean with their
    95% t half-widths (``meta_ci95``, ``adapted_ci95``), and ``diff`` = adapted - meta with
    ``diff_lo``/``diff_hi``, the paired 95% t-interval over seeds (both codes come from the
    same run, so the per-run differences are what vary). ``n``: completed runs with both.
    Grouped by :data:`CONFIG_KEYS`.
    """
    cols = [*CONFIG_KEYS, "metric", "meta", "meta_ci95", "adapted", "adapted_ci95", "diff",
            "diff_lo", "diff_hi", "n"]
    out = []
    pos = df[(df["status"] == "completed") & (df["alpha"].astype(float) > 0)]
    for key, g in pos.groupby(list(CONFIG_KEYS), sort=True, dropna=False):
        for m in metrics:
            am = f"adapted.{m}"
            if m not in g or am not in g:
                continue
            both = g[[m, am]].astype(float).dropna()
            if both.empty:
                continue
            meta, meta_h, n = t_interval(both[m])
            adapted, adapted_h, _ = t_interval(both[am])
            diff, diff_h, _ = t_interval(both[am] - both[m])
            out.append({**dict(zip(CONFIG_KEYS, key, strict=True)), "metric": m, "meta": meta,
                        "meta_ci95": meta_h, "adapted": adapted, "adapted_ci95": adapted_h,
                        "diff": diff, "diff_lo": diff - diff_h, "diff_hi": diff + diff_h,
                        "n": n})
    return _in_config_order(pd.DataFrame(out, columns=cols))


#: Candidate eval.json names (flattened) for the paper's metric keys, first present wins.
#: The paper's FID used Keras Inception-v3; ours is named "FID" (Inception on real images)
#: or "FD-factors" (a Frechet distance in another feature space), and the comparison says
#: which one stood in (column ``measure``).
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "fid": ("fid", "FID", "fd_factors", "FD-factors", "frechet.FID", "frechet.FD-factors"),
}


def resolve_metric(metric: str, columns: Iterable[str]) -> str | None:
    """The column of a :func:`collect` frame that holds the paper's ``metric`` (an alias
    of :data:`METRIC_ALIASES`, or a unique column ending in ``.<metric>``), None if none."""
    cols = list(columns)
    for c in (metric, *METRIC_ALIASES.get(metric, ())):
        if c in cols:
            return c
    # eval.json may nest or prefix the paper's key (e.g. "metrics.dci_color.disentanglement")
    tails = [c for c in cols if c.endswith("." + metric)]
    return tails[0] if len(tails) == 1 else None


def format_cell(mean: float, half: float, n: int, n_runs: int, n_diverged: int,
                digits: int = 3) -> str:
    """``0.412 ± 0.031 (n=3)``; ``diverged`` when every run diverged; ``—`` when none ran."""
    if n == 0:
        return "diverged" if n_diverged and n_diverged == n_runs else "—"
    cell = f"{mean:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")
    extra = f"; {n_diverged} diverged" if n_diverged else ""
    return f"{cell} (n={n}{extra})"


def evidence_first(group: tuple[str, str]) -> tuple[int, str, str]:
    """Sort key of a (profile, source) group: profiles whose budget can judge the paper's
    claims first (the study's shipped runs: the evidence), then this build's runs, then
    other committed runs (the pilot's lr 1e-4 arm), so a page shows the evidence on top."""
    prof, source = map(str, group)
    known = PROFILES.get(prof)
    rank = 0 if known is not None and known.judges else 1 if source == "build" else 2
    return rank, prof, source


def paper_vs_ours(df: pd.DataFrame, table: str, csv: str | Path | None = None) -> pd.DataFrame:
    """The paper's table beside ours: one row per (paper row, metric, profile, source).

    ``df`` is a :func:`collect` frame (any profiles). Columns: ``row`` (the paper's row
    label), ``metric`` (our key), ``header`` (the paper's column), ``paper`` (the printed
    number; NaN where the paper reports divergence), ``paper_text`` ("diverged" there),
    ``profile``, ``source``, ``ours`` (``mean ± 95% t half-width (n=..)``, ``diverged``
    when every run of the configuration diverged, ``—`` when none exists), ``ours_mean``,
    ``ours_ci95``, ``n``, ``ours_values`` (the completed runs' values in seed order, the
    points a figure draws beside the mean and interval), ``n_diverged``, ``difference``
    (ours_mean - paper; NaN where ours is another measure than the paper's) and
    ``measure`` (the eval.json column used for that profile and source, e.g.
    "FD-factors" standing in for FID).
    A paper row's runs are :func:`select`'s (so a vanilla row matches a vanilla run whatever
    its neighbourhood field says). ``csv`` also writes the frame there (atomically), with
    ``ours_values`` as the values joined by ``;`` (a CSV cell holds one string).
    """
    spec = paper.table(table)
    groups = sorted(set(df[["profile", "source"]].itertuples(index=False)),
                    key=evidence_first) or [("", "")]

    def filled(prof: str, source: str) -> list[str]:
        # each profile's own measure: a quick build's FID column is empty for the study's
        # runs, which computed FD-factors, and must not hide them
        g = df[(df["profile"] == prof) & (df["source"] == source)] if len(df) else df
        return [c for c in df.columns if g[c].notna().any()] or list(df.columns)

    col_of = {(m, prof, source): resolve_metric(m, filled(prof, source))
              for m in spec["metrics"] for prof, source in groups}
    out = []
    for prow in spec["rows"]:
        rows = select(df, **paper.configuration(prow))
        for metric, header in zip(spec["metrics"], spec["headers"], strict=True):
            p = prow["values"].get(metric, math.nan)
            p_text = prow.get("status") if prow.get("status") == "diverged" else f"{p:.3f}"
            for prof, source in groups:
                col = col_of[(metric, prof, source)]
                # ours minus the paper's only where both are the same measure (FD-factors
                # is no FID: its difference from the paper's FID means nothing)
                same = metric != "fid" or str(col).split(".")[-1].lower() == "fid"
                g = rows[(rows["profile"] == prof) & (rows["source"] == source)]
                ok = g[g["status"] == "completed"]
                if "seed" in ok:
                    ok = ok.sort_values("seed", kind="stable")
                vals = ok[col].astype(float).tolist() if col is not None else []
                mean, half, n = t_interval(vals)
                n_div = int((g["status"] == "diverged").sum())
                out.append({
                    "table": table, "row": prow["label"], "metric": metric, "header": header,
                    "paper": p, "paper_text": p_text, "profile": prof, "source": source,
                    "ours": format_cell(mean, half, n, len(g), n_div), "ours_mean": mean,
                    "ours_ci95": half, "n": n,
                    "ours_values": tuple(v for v in vals if math.isfinite(v)),
                    "n_diverged": n_div,
                    "difference": mean - p if n and same else math.nan, "measure": col,
                })
    res = pd.DataFrame(out)
    if csv is not None and len(res):
        flat = res.assign(ours_values=[";".join(map(repr, v)) for v in res["ours_values"]])
        atomic_write_bytes(csv, flat.to_csv(index=False).encode())
    return res


def wide(comparison: pd.DataFrame, profile: str | None = None,
         source: str | None = None) -> pd.DataFrame:
    """A :func:`paper_vs_ours` frame laid out like the paper's table, for a page.

    One row per paper row (in the paper's order), two columns per printed header:
    ``(header, "paper")`` and ``(header, "ours")``; one profile and source (default: the
    first present, ``build`` before ``imported``).
    """
    c = comparison
    groups = c[["profile", "source"]].drop_duplicates().sort_values("source")
    profile = profile if profile is not None else groups.profile.iloc[0]
    source = source if source is not None else groups[groups.profile == profile].source.iloc[0]
    c = c[(c.profile == profile) & (c.source == source)]
    rows = list(dict.fromkeys(c.row))
    headers = list(dict.fromkeys(c.header))
    t = c.pivot(index="row", columns="header", values=["paper_text", "ours"])
    t = t.rename(columns={"paper_text": "paper"}).swaplevel(axis=1)
    cols = pd.MultiIndex.from_product([headers, ["paper", "ours"]])
    return t.reindex(index=rows, columns=cols)


def frechet_sample(df: pd.DataFrame, source: str = "build") -> str:
    """How the runs of ``source`` measured their Frechet distance, for a page's text:
    ``"FID on 100 images per side, about 12 s per run"`` (the median over runs), from what
    each evaluation recorded; ``"no runs"`` without any. A 100-image FID is not the paper's
    50,000-image one, and the page must say so with the numbers, not "few images"."""
    need = {"frechet.name", "sample_counts.frechet_per_side"}
    if df is None or not need <= set(df.columns):
        return "no runs"
    runs = df[(df["source"] == source) & df["frechet.name"].notna()]
    if runs.empty:
        return "no runs"
    names = ", ".join(sorted(set(runs["frechet.name"].astype(str))))
    sizes = sorted({int(n) for n in runs["sample_counts.frechet_per_side"].dropna()})
    text = f"{names} on {' or '.join(f'{n:,}' for n in sizes)} images per side"
    if "frechet.seconds" in runs.columns and runs["frechet.seconds"].notna().any():
        text += f", about {runs['frechet.seconds'].median():.0f} s per run"
    return text


def frechet_measure(cmp: pd.DataFrame) -> str:
    """Which Frechet distance stood in for the paper's FID in a :func:`paper_vs_ours` frame
    ("FD-factors", "FID"; several comma-separated; "none" without runs), for the page's
    text and axis labels: the two are on different scales and must never share a name."""
    used = cmp.loc[cmp["metric"] == "fid", "measure"].dropna()
    return ", ".join(sorted({str(m).removeprefix("frechet.") for m in used})) or "none"


def sweep_frame(cmp: pd.DataFrame, metric: str, table: str = "table1",
                source: str = "build") -> pd.DataFrame:
    """Ours per alpha for a table's Local VAE rows (beta = 1), the input of
    :func:`lvae.report.figures.alpha_sweep`: columns ``alpha``, ``mean``, ``lo``, ``hi`` (95%
    interval) and ``values`` (one per completed seed) from a :func:`paper_vs_ours`
    frame. Configurations never run are left out; diverged ones have a NaN mean."""
    alpha_of = {r["label"]: r["alpha"] for r in paper.table(table)["rows"]
                if r["beta"] == 1.0 and r["neighborhood"] != "input_l2"}
    c = cmp[(cmp["metric"] == metric) & cmp["row"].isin(alpha_of) & (cmp["source"] == source)]
    c = c[(c["n"] > 0) | (c["n_diverged"] > 0)]
    half = c["ours_ci95"].fillna(0)
    values = c["ours_values"] if "ours_values" in c else pd.Series([()] * len(c), c.index)
    return pd.DataFrame({"alpha": c["row"].map(alpha_of), "mean": c["ours_mean"],
                         "lo": c["ours_mean"] - half, "hi": c["ours_mean"] + half,
                         "values": values})


def paper_curve(metric: str, table: str = "table1") -> dict[float, float]:
    """The paper's numbers for a metric over alpha (Local VAE rows, beta = 1)."""
    return {r["alpha"]: r["values"][metric] for r in paper.table(table)["rows"]
            if r["beta"] == 1.0 and metric in r["values"] and r["neighborhood"] != "input_l2"}


# --------------------------------------------------------------------------------------
# The runs of one configuration
# --------------------------------------------------------------------------------------


def select(df: pd.DataFrame | None, dataset: str = "shapes3d", alpha: float = 1.0,
           beta: float = 1.0, neighborhood: str | None = "synthetic", *,
           reduction: str = _DEFAULT_REDUCTION, seed: int | None = None,
           source: str | None = None, profile: str | None = None,
           variant: str | None = None) -> pd.DataFrame:
    """The runs of one configuration in a :func:`collect` frame, whatever their status.

    The one definition of "these runs" that every table, claim and figure uses. alpha and
    beta match to a relative 1e-9 (they are written as JSON numbers, so they round-trip
    exactly; the tolerance only absorbs a value computed elsewhere). At alpha = 0 the
    neighbourhood is unused, so a vanilla run matches whatever its neighbourhood field says;
    ``neighborhood=None`` matches any. A run with another loss scale (``reduction``) is
    another configuration: its alpha means something else. ``seed``, ``source``,
    ``profile`` and ``variant`` (the hash of a run's changed settings,
    :attr:`lvae.report.grid.Experiment.variant`: a reading of the diagnosis that keeps eq.
    5's prior) narrow the selection (None: any).
    """
    if df is None or len(df) == 0:  # no runs: still every column a caller may read
        have = [] if df is None else list(df.columns)
        return pd.DataFrame(columns=list(dict.fromkeys([*RUN_COLUMNS, *have])))
    sel = ((df["dataset"] == dataset)
           & np.isclose(df["alpha"].astype(float), alpha, rtol=1e-9, atol=0)
           & np.isclose(df["beta"].astype(float), beta, rtol=1e-9, atol=0)
           & (df["reduction"] == reduction))
    if neighborhood is not None and alpha != 0:
        sel &= df["neighborhood"] == neighborhood
    for column, value in (("seed", seed), ("source", source), ("profile", profile),
                          ("variant", variant)):
        if value is not None:
            sel &= df[column] == value
    return df[sel]


#: The file a run's model is drawn from, per source: shipped runs keep their final
#: parameters (``lvae.report.study.shipping.ship``), the build's runs their training checkpoint.
MODEL_FILES = {"imported": runfolder.MODEL, "build": runfolder.CHECKPOINT}


def find_run(df: pd.DataFrame | None, dataset: str = "shapes3d", alpha: float = 1.0,
             beta: float = 1.0, neighborhood: str | None = "synthetic",
             seed: int | None = None,
             sources: Sequence[str] = ("imported", "build")) -> str | None:
    """The folder of a completed run of this configuration (:func:`select`) with a model to
    draw from, or None.

    Shipped runs (``imported``, with their final parameters in ``model.pt``: the reference
    study's trained models) come first, those of a judging profile first (the study before
    the pilot's lr 1e-4 arm of the same length, :func:`evidence_first`), then the longest
    budget, so the figures show what the evidence's models do; then the build's own runs
    (with a checkpoint), lowest seed first.
    ``sources`` picks and orders the kinds (``("build",)``: this build's models only);
    :func:`run_caption` says which run a figure drew.
    """
    hits = select(df, dataset, alpha, beta, neighborhood, seed=seed)
    hits = hits[hits["status"] == "completed"]
    profiles = hits["profile"] if "profile" in hits else [""] * len(hits)
    rank = [evidence_first((p, s))[0] for p, s in zip(profiles, hits["source"], strict=True)]
    hits = hits.assign(_steps=hits["steps"].astype(float), _rank=rank)
    for source in sources:
        frame = hits[hits["source"] == source].sort_values(["_rank", "_steps", "seed"],
                                                           ascending=[True, False, True])
        for d in frame["run_dir"]:
            if (Path(d) / MODEL_FILES[source]).exists():
                return str(d)
    return None


def run_state(df: pd.DataFrame | None, dataset: str = "shapes3d", alpha: float = 1.0,
              beta: float = 1.0, neighborhood: str | None = "synthetic") -> str:
    """``"completed"``, ``"diverged"`` (every run of the configuration diverged) or
    ``"no run"``: what a figure panel shows when it has no model to draw from."""
    st = set(select(df, dataset, alpha, beta, neighborhood)["status"])
    if "completed" in st:
        return "completed"
    return "diverged" if st == {"diverged"} else "no run"


def run_caption(run_dir: str | Path) -> str:
    """Where a figure's model comes from: ``"study, 20,000 steps, seed 0"``."""
    cfg = runfolder.read_config(run_dir) or {}
    return f"{cfg.get('profile', '?')}, {int(cfg.get('steps', 0)):,} steps, seed {cfg.get('seed')}"


def training_logs(df: pd.DataFrame, table: str, dataset: str = "shapes3d",
                  seed: int = 0) -> dict[str, pd.DataFrame]:
    """The ``log.jsonl`` of each run of ``table`` on ``dataset`` with this ``seed``, by a
    short label (``α=0.001``, ``β=4``, ``(diverged)`` where it did): the input of
    :func:`lvae.report.figures.loss_curves`, in the frame's order."""
    runs = of_table(df, table)
    runs = runs[(runs["dataset"] == dataset) & (runs["seed"] == seed)]
    logs = {}
    for r in runs.to_dict("records"):
        name = f"α={r['alpha']:g}" if r["beta"] == 1 else f"β={r['beta']:g}"
        logs[name + (" (diverged)" if r["status"] == "diverged" else "")] = load_log(
            r["run_dir"])
    return logs


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def load_log(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``log.jsonl`` as a frame (step, loss, inner_loss, recon, kl, wall_time_s)."""
    rows = runfolder.read_log(run_dir)
    if not rows:
        return pd.DataFrame(columns=["step", "loss", "inner_loss", "recon", "kl",
                                     "wall_time_s"])
    return pd.DataFrame(rows)


def import_run(run_dir: str | Path, dest_root: str | Path = IMPORTED_DIR,
               extra: Mapping[str, bytes] | None = None) -> Path:
    """Copy a finished, evaluated run's result files (no checkpoint) to
    ``<dest_root>/<profile>/<id>``, replacing an earlier import of that id whole.

    The profile label comes from the run's own config, so a GPU run of the ``paper`` profile
    lands in ``results/paper/`` and is collected as such. Refuses, saying why, a run whose
    ``config.json``, ``result.json`` or ``eval.json`` is missing or does not parse, or
    whose evaluation does not say it is complete (a diverged run is complete: its
    ``eval.json`` records the divergence). ``extra`` adds files (relative path -> bytes).
    The new folder is assembled beside the destination and swapped in with renames, so a
    reader never sees the files of two imports mixed, nor a half-written one.
    """
    run_dir = Path(run_dir)
    cfg = runfolder.read_config(run_dir)
    if cfg is None:
        raise FileNotFoundError(f"{run_dir} is not a run folder (no readable config.json)")
    result = runfolder.read_result(run_dir)
    if result is None:
        raise FileNotFoundError(f"{run_dir} has no readable result.json: only finished runs "
                                "are kept (train it to the end first)")
    ev = runfolder.read_eval(run_dir)
    if ev is None or ev.status != result.status:
        raise ValueError(f"{run_dir} has no readable eval.json for its {result.status} "
                         "result: evaluate it first (lvae.evaluation.evaluate)")
    if not (run_dir / runfolder.LOG).is_file():
        raise FileNotFoundError(f"{run_dir} has no log.jsonl: a run is shipped with its "
                                "training log (the replay check and the curves read it)")
    dest = Path(dest_root) / str(cfg.get("profile", "custom")) / run_dir.name
    files = {name: (run_dir / name).read_bytes() for name in IMPORT_FILES
             if (run_dir / name).is_file()}
    return replace_folder(dest, {**files, **(extra or {})})


def replace_folder(dest: str | Path, files: Mapping[str, bytes]) -> Path:
    """Make ``dest`` hold exactly ``files`` (relative path -> bytes), all or nothing: the
    new folder is written beside it and swapped in with renames."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o644)  # shipped files are for everyone, whatever umask
        for folder in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
            os.chmod(folder, 0o755)
        # a unique .old per import: two imports of one run at once never trip over each
        # other's (one of them wins the final rename; both leave a whole folder)
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        for attempt in range(50):
            # nothing there yet (or another import just moved it): nothing to set aside
            with contextlib.suppress(FileNotFoundError):
                os.replace(dest, old / f"run{attempt}")
            try:
                os.replace(staging, dest)
                break
            except OSError as e:  # another import put its folder there in between
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == 49:
                    raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest
