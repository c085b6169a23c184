"""The book's pictures: plot helpers shared by the notebooks, each one call in a cell.

Figures: :func:`image_grid` (any grid of images, the building block of figs. 2-4),
:func:`conditional_grid` (fig. 3: a reference column, then generations sharing z per
column), :func:`figure2_panels` with :func:`side_by_side` (fig. 2 for any configurations),
:func:`traversal_grid` and :func:`traversal_change` (fig. 4), :func:`loss_curves`
(``log.jsonl`` of runs), :func:`alpha_sweep` and :func:`table_sweep` (a metric against
alpha, the paper's curve beside ours), :func:`frechet_sweep` (the paper's FID and our
Frechet distance, each on its own axis), :func:`paper_bars` (a table's rows as bars),
:func:`noise_bars`, :func:`milestone_curves` and :func:`milestone_pictures` (the study),
:func:`execution_bars` (a build's run times).
They take tensors, arrays or result frames and return the matplotlib ``Figure``, so a
notebook cell is one call and the page shows the figure. :func:`comparison_table` and
:func:`codes_table` lay a result frame out as a page's table.

What the pictures are drawn from is chosen elsewhere: the runs by :mod:`lvae.report.results`
(:func:`~lvae.report.results.find_run`), the book's staging and build by :mod:`lvae.report.book`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from lvae.generation import localized_samples, meta_samples
from lvae.report.grid import config_name
from lvae.report.paper import table as paper_table
from lvae.report.results import find_run, paper_curve, run_caption, run_state, sweep_frame
from lvae.training import load_run

# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def to_hwc(images: Any) -> np.ndarray:
    """Images as float ``(..., H, W, C)`` in [0, 1], from torch ``(..., C, H, W)`` or uint8.

    Notebooks pass model outputs (float CHW tensors) and dataset images (uint8 HWC arrays)
    alike; this is the one place that tells them apart.
    """
    a = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    if a.ndim >= 3 and a.shape[-3] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, -3, -1)  # CHW -> HWC
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def image_grid(images: Any, ncols: int | None = None, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, title: str | None = None,
               cell: float = 0.9, ax_pad: float = 0.04) -> Figure:
    """A grid of images without axes; a 5-D input ``(rows, cols, ...)`` keeps its layout.

    ``cell`` is the size of one image in inches, so a 10x10 grid stays readable without
    filling the page.
    """
    a = to_hwc(images)
    if a.ndim == 5:
        rows, cols = a.shape[:2]
        flat = a.reshape(rows * cols, *a.shape[2:])
    elif a.ndim == 4:
        n = a.shape[0]
        cols = ncols or min(n, 10)
        rows = math.ceil(n / cols)
        flat = a
    else:
        raise ValueError(f"images must be (n, ...) or (rows, cols, ...), got shape {a.shape}")
    left = 0.9 if row_labels else 0.05
    top = 0.05 + 0.3 * bool(col_labels) + 0.3 * bool(title)  # inches for labels, title
    fig = plt.figure(figsize=(left + cols * cell, top + rows * cell))
    gs = fig.add_gridspec(rows, cols, left=left / (left + cols * cell), right=0.995,
                          bottom=0.005, top=1 - top / (top + rows * cell),
                          wspace=ax_pad, hspace=ax_pad)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        ax = fig.add_subplot(gs[r, c])
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        if i < len(flat):
            img = flat[i]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
        if c == 0 and row_labels is not None and r < len(row_labels):
            ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
        if r == 0 and col_labels is not None and c < len(col_labels):
            ax.set_title(col_labels[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.04 / (top + rows * cell), va="top")
    return fig


def side_by_side(panels: Mapping[str, Any], ncols: int = 5, cell: float = 0.8) -> Figure:
    """Fig. 2's layout: one image grid per panel (e.g. per alpha), panels in a row.

    A panel whose value is a string (``"diverged"``, ``"no run"``) is drawn as that word, so
    a missing or diverged configuration keeps its place in the figure.
    """
    n = len(panels)
    if n == 0:
        raise ValueError("side_by_side needs at least one panel")
    arrays = {k: (v if isinstance(v, str) else to_hwc(v)) for k, v in panels.items()}
    count = max((len(a) for a in arrays.values() if not isinstance(a, str)), default=ncols)
    rows = math.ceil(count / ncols)
    fig = plt.figure(figsize=(n * (ncols * cell + 0.3), rows * cell + 0.5))
    sub = np.atleast_1d(fig.subfigures(1, n, wspace=0.02))
    for sf, (name, a) in zip(sub, arrays.items(), strict=True):
        sf.suptitle(name, fontsize=13)
        if isinstance(a, str):
            ax = sf.subplots()
            ax.axis("off")
            ax.text(0.5, 0.5, a, ha="center", va="center", fontsize=12, color="firebrick")
            continue
        axes = np.atleast_2d(sf.subplots(rows, ncols, gridspec_kw={"wspace": 0.03,
                                                                  "hspace": 0.03}))
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < len(a):
                img = a[i]
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0,
                          vmax=1, interpolation="nearest")
    return fig


def conditional_grid(references: Any, samples: Any, title: str | None = None,
                     cell: float = 0.8) -> Figure:
    """Fig. 3: the reference images in the leftmost column, then each reference's
    generations; ``samples`` is ``(rows, M, ...)`` with column j decoded from the same z_j.

    A gap separates the reference column from the generations, as in the paper.
    """
    refs, gen = to_hwc(references), to_hwc(samples)
    if gen.ndim != 5 or len(refs) != gen.shape[0]:
        raise ValueError(f"samples must be (rows, M, ...) with one row per reference; got "
                         f"{gen.shape} for {len(refs)} references")
    rows, m = gen.shape[:2]
    head = 0.75 if title else 0.4  # inches above the grid: column labels (and title)
    height = rows * cell + head + 0.05
    fig = plt.figure(figsize=((m + 1.4) * cell, height))
    gs = fig.add_gridspec(rows, m + 2, width_ratios=[1, 0.35] + [1] * m, wspace=0.04,
                          hspace=0.04, left=0.01, right=0.99, bottom=0.01,
                          top=1 - head / height)
    for r in range(rows):
        for c in [0, *range(2, m + 2)]:
            ax = fig.add_subplot(gs[r, c])
            ax.axis("off")
            img = refs[r] if c == 0 else gen[r, c - 2]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            if r == 0:
                ax.set_title("reference" if c == 0 else f"$z^{{{c - 1}}}$", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


def traversal_grid(images: Any, values: Sequence[float], title: str | None = None,
                   cell: float = 0.6) -> Figure:
    """Fig. 4: row i sweeps latent z_i over ``values`` (``images`` ``(latent, n, ...)``)."""
    a = to_hwc(images)
    return image_grid(a, row_labels=[f"$z_{{{i + 1}}}$" for i in range(a.shape[0])],
                      col_labels=[f"{v:+.1f}" for v in values], title=title, cell=cell)


def figure2_panels(df: Any, configs: Mapping[str, Mapping[str, Any]], n: int = 25,
                   ref_seed: int = 1, code_seed: int = 0,
                   loader: Callable[[str], Any] | None = None,
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fig. 2 for each configuration: ``(adapted, meta)`` panels for :func:`side_by_side`.

    ``configs`` maps a panel title to the configuration's :func:`lvae.report.results.find_run`
    arguments (``{"alpha": 1.0}``, ``{"alpha": 1.0, "neighborhood": "input_l2"}``). For
    each, ``n`` training images of the run's pool (positions from ``RandomState(ref_seed)``)
    are the references: one inner step on each one's neighbourhood, then one shared prior
    code per reference (``code_seed``) through the adapted decoder; ``meta`` decodes the
    same codes with the meta-decoder alone. A configuration without a model to draw from
    is its state (``"diverged"``, ``"no run"``), which :func:`side_by_side` writes in its
    place; a drawn one's title names its run (:func:`lvae.report.results.run_caption`).
    ``loader`` maps a run folder to a :class:`lvae.training.Run` (default ``load_run``).
    """
    import torch

    z = torch.randn(n, 10, generator=torch.Generator().manual_seed(code_seed))
    adapted: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for title, config in configs.items():
        d = find_run(df, **config)
        if d is None:
            adapted[title] = meta[title] = run_state(df, **config)
            continue
        run = (loader or load_run)(d)
        pos = np.random.RandomState(ref_seed).randint(len(run.pool), size=n)
        codes = z[:, : run.arch.latent_dim]
        grid = localized_samples(run, run.pool.tensor(pos), codes, neighbor_positions=pos)
        name = f"{title}\n({run_caption(d)})"
        adapted[name] = grid[torch.arange(n), torch.arange(n)]  # reference i with code i
        meta[name] = meta_samples(run, codes)
    return adapted, meta


# --------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------


def loss_curves(logs: Mapping[str, Any], keys: Sequence[str] = ("loss", "recon", "kl"),
                logy: bool = True) -> Figure:
    """Training curves, one panel per logged quantity, one line per run.

    ``logs`` maps a label to a DataFrame (or list of dicts) of ``log.jsonl`` rows.
    """
    import pandas as pd

    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for label, log in logs.items():
            df = log if isinstance(log, pd.DataFrame) else pd.DataFrame(list(log))
            if key in df and len(df):  # markers: a short run logs only a few points
                ax.plot(df["step"], df[key], label=label, lw=1.2,
                        marker="o" if len(df) < 10 else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(key, fontsize=10)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8,
                   bbox_to_anchor=(0.5, 1.08), frameon=False)
    fig.tight_layout()
    return fig


def _alpha_positions(alphas: Sequence[float], zero_at: float) -> np.ndarray:
    """alpha on a log axis, with alpha = 0 (the vanilla VAE) drawn at ``zero_at``."""
    a = np.asarray(alphas, dtype=float)
    return np.where(a > 0, a, zero_at)


def _value_points(ax: Any, x: Sequence[float], values: Sequence[Any], color: str,
                  log_x: bool = False, width: float = 0.12, label: str | None = None) -> None:
    """Each seed's value as a small point at its configuration's ``x``, where a
    configuration has more than one (with one, the mean is the point). Why: a mean with an
    interval hides how many seeds there are and whether one of them is far from the rest;
    three points do not. The points of one ``x`` are spread over ``width`` (in decades on a
    log axis) so that equal values stay countable. ``values[i]`` is a sequence of floats (a
    missing one, NaN or None, draws nothing). ``label`` names the first group drawn, for
    the legend."""
    for xi, vals in zip(x, values, strict=True):
        v = np.asarray([] if vals is None or (isinstance(vals, float) and math.isnan(vals))
                       else list(vals), dtype=float)
        v = v[np.isfinite(v)]
        if len(v) < 2:
            continue
        offsets = np.linspace(-width / 2, width / 2, len(v))
        xs = xi * 10.0 ** offsets if log_x else xi + offsets
        ax.scatter(xs, v, s=10, color=color, alpha=0.75, lw=0, zorder=3, label=label)
        label = None


def alpha_sweep(ours: Mapping[str, Any], paper: Mapping[str, Any] | None = None,
                metrics: Sequence[str] | None = None, ylabel: str = "score",
                title: str | None = None) -> Figure:
    """Metrics against alpha: ours (mean, with CI bars) beside the paper's curve.

    ``ours[metric]`` is a DataFrame with columns ``alpha``, ``mean`` and optional
    ``lo``/``hi`` and ``values`` (each seed's value, drawn as small points beside the
    mean where there are several: :func:`_value_points`); ``paper[metric]`` maps alpha to
    the paper's number. alpha = 0 is drawn left of the smallest positive alpha and
    labelled "0 (vanilla)"; diverged cells are missing from ``ours`` and marked with an x
    on the axis.
    """
    import pandas as pd

    metrics = list(metrics or ours.keys())
    all_alpha = sorted({float(a) for m in metrics for a in ours[m]["alpha"]}
                       | {float(a) for m in metrics for a in (paper or {}).get(m, {})})
    pos = [a for a in all_alpha if a > 0]
    zero_at = (min(pos) / 10) if pos else 1e-4
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 2.9), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        df = pd.DataFrame(ours[m])
        ok = df[np.isfinite(df["mean"].astype(float))]
        if len(ok):
            x = _alpha_positions(ok["alpha"], zero_at)
            yerr = None
            if "lo" in ok and "hi" in ok and ok["lo"].notna().any():
                yerr = np.vstack([ok["mean"] - ok["lo"], ok["hi"] - ok["mean"]]).clip(0)
            ax.errorbar(x, ok["mean"], yerr=yerr, marker="o", ms=4, capsize=3, label="ours")
            if "values" in ok:
                _value_points(ax, x, ok["values"], "C0", log_x=True, label="ours: each seed")
        bad = df[~np.isfinite(df["mean"].astype(float))]
        for a in bad.get("alpha", []):
            ax.plot(_alpha_positions([a], zero_at), [0], "rx", ms=8, clip_on=False,
                    label="ours: diverged")
        if paper and m in paper:
            pa = sorted(paper[m].items())
            ax.plot(_alpha_positions([a for a, _ in pa], zero_at), [v for _, v in pa], "s--",
                    ms=4, color="gray", label="paper")
        ax.set_xscale("log")
        ticks = [zero_at, *pos]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["0\n(vanilla)"] + [f"{a:g}" for a in pos], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(m, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        axes[0, 0].legend(handles, labels, fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def table_sweep(cmp: Any, metrics: Mapping[str, str], table: str = "table1",
                ylabel: str = "score", title: str | None = None) -> Figure:
    """:func:`alpha_sweep` of a :func:`lvae.report.results.paper_vs_ours` frame: ours and the
    paper's Local VAE rows over alpha, one panel per metric (column -> panel title)."""

    return alpha_sweep({name: sweep_frame(cmp, m, table) for m, name in metrics.items()},
                       {name: paper_curve(m, table) for m, name in metrics.items()},
                       ylabel=ylabel, title=title)


def frechet_sweep(cmp: Any, measure: str, table: str = "table1") -> Figure:
    """The paper's FID and our Frechet distance (``measure``, e.g. "FD-factors") against
    alpha, each on its own axis: they are computed in different feature spaces on very
    different numbers of images, so only their trends can be compared, not their values.
    Ours is the mean over seeds with its 95% t-interval (:func:`lvae.report.results.sweep_frame`)
    and each seed as a small point.
    """

    fd = sweep_frame(cmp, "fid", table)
    pc = sorted(paper_curve("fid", table).items())
    pos = sorted({a for a, _ in pc if a > 0} | {a for a in fd["alpha"] if a > 0})
    zero = min(pos) / 10
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    axes[0].plot(_alpha_positions([a for a, _ in pc], zero), [v for _, v in pc], "s--",
                 color="gray")
    err = np.vstack([fd["mean"] - fd["lo"], fd["hi"] - fd["mean"]]).clip(0)
    axes[1].errorbar(_alpha_positions(list(fd["alpha"]), zero), list(fd["mean"]), yerr=err,
                     fmt="o-", color="C0", capsize=3)
    _value_points(axes[1], _alpha_positions(list(fd["alpha"]), zero), fd["values"], "C0",
                  log_x=True)
    for ax, name in zip(axes, ("paper: FID (Inception-v3)", f"ours: {measure}"), strict=True):
        ax.set_xscale("log")
        ax.set_xticks([zero, *pos], ["0\n(vanilla)"] + [f"{a:g}" for a in pos], fontsize=7)
        ax.minorticks_off()
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(r"$\alpha$")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)
    fig.tight_layout()
    return fig


def paper_bars(cmp: Any, metrics: Mapping[str, str], table: str, ticks: Sequence[str],
               ylabel: str = "score", source: str = "build") -> Figure:
    """A table's rows as bars, the paper's (hatched) beside ours, one panel per metric.

    ``cmp`` is a :func:`lvae.report.results.paper_vs_ours` frame, of which the runs of ``source``
    are drawn; ``metrics`` maps its columns to panel titles and ``ticks`` names the paper's
    rows in order. Our bar is the mean over seeds with its 95% t-interval (none for one
    seed) and each seed as a small black point on it; a row with no completed run says
    "diverged" or "—" at its foot.
    """

    rows = paper_table(table)["rows"]
    labels = [r["label"] for r in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(10 / 3 * len(metrics), 2.8),
                             sharey=True, squeeze=False)
    x = np.arange(len(labels))
    for ax, (m, name) in zip(axes[0], metrics.items(), strict=True):
        c = cmp[(cmp["metric"] == m) & (cmp["source"] == source)].set_index("row")
        c = c.reindex(labels).fillna({"n": 0, "n_diverged": 0})  # rows never run: no runs
        ax.bar(x - 0.2, [r["values"].get(m, np.nan) for r in rows], 0.4, color="lightgray",
               hatch="//", edgecolor="gray", label="paper")
        ours = c["ours_mean"].where(c["n"] > 0).astype(float).to_numpy()
        half = c["ours_ci95"].where(c["n"] > 1).astype(float).to_numpy()
        ax.bar(x + 0.2, np.nan_to_num(ours), 0.4, yerr=np.nan_to_num(half), capsize=3,
               color="C0", label="ours")
        if "ours_values" in c:
            _value_points(ax, x + 0.2, c["ours_values"], "black", width=0.25,
                          label="ours: each seed")
        for xi, v, diverged in zip(x, ours, c["n_diverged"], strict=True):
            if np.isnan(v):
                ax.text(xi + 0.2, 0.02, "diverged" if diverged else "—", rotation=90,
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, list(ticks), fontsize=8)
        ax.set_title(name, fontsize=10)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def traversal_change(sweeps: Mapping[str, Any]) -> Figure:
    """How much each latent dimension changes the picture: per row of a traversal
    (:func:`lvae.generation.traversal`, ``(latent, n, C, H, W)``), the mean absolute pixel
    change between the two ends of its sweep, one line per named sweep (None: left out,
    a configuration without a model). A dimension the model does not use changes nothing.
    """
    import torch

    fig, ax = plt.subplots(figsize=(6, 2.4))
    for name, t in sweeps.items():
        if t is None:
            continue
        t = torch.as_tensor(t)
        change = (t[:, -1] - t[:, 0]).abs().mean((1, 2, 3))
        ax.plot(np.arange(1, t.shape[0] + 1), change.numpy(), "o-", label=name)
    ax.set_xlabel("latent dimension $i$")
    ax.set_ylabel("mean |Δ pixel|")
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def config_label(row: Mapping[str, Any]) -> str:
    """A frame row's configuration by its one name (:func:`lvae.report.grid.config_name`):
    ``vanilla``, ``α=1e-3``, ``β=4``, ``α=1 (input_l2)``."""
    if "alpha" not in row or "beta" not in row:
        return str(row.get("config_id", "?"))
    return config_name(row["alpha"], row["beta"], row.get("neighborhood", "synthetic"),
                       reduction=row.get("reduction"))


def noise_bars(ns: Any, title: str = "Spread of DCI: training seeds vs GBT seeds") -> Figure:
    """Per configuration, the standard deviation of a DCI score over training seeds beside
    its standard deviation over GBT seeds on the same codes (:func:`lvae.report.results.
    noise_sources`), one panel per metric, log scale (the two can differ by decades).
    A missing value (one seed, or no refits) is marked "n/a" at the foot of its bar."""
    metrics = list(dict.fromkeys(ns["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6),
                             squeeze=False, sharey=True)
    for ax, m in zip(axes[0], metrics, strict=True):
        g = ns[ns["metric"] == m].reset_index(drop=True)
        x = np.arange(len(g))
        for dx, col, label, color in ((-0.2, "sd_seeds", "training seeds", "C0"),
                                      (0.2, "sd_gbt", "GBT seeds (same codes)", "C1")):
            v = g[col].astype(float).to_numpy()
            shown = np.isfinite(v) & (v > 0)  # a log axis draws no zero
            ax.bar(x + dx, np.where(shown, v, np.nan), 0.4, color=color, label=label)
            for xi in x[~shown]:
                ax.text(xi + dx, 0.02, "n/a", rotation=90, ha="center", va="bottom",
                        fontsize=7, color=color, transform=ax.get_xaxis_transform())
        ax.set_yscale("log")
        ax.set_xticks(x, [config_label(r) for r in g.to_dict("records")], rotation=45,
                      ha="right", fontsize=7)
        ax.set_title(m, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("standard deviation")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Tables for the result pages
# --------------------------------------------------------------------------------------


def codes_table(cc: Any, names: Mapping[str, str], digits: int = 3) -> Any:
    """Meta-encoder vs adapted-encoder DCI, one row per configuration and score.

    ``cc`` is a :func:`lvae.report.results.codes_comparison` frame, ``names`` maps its metric
    columns to short labels (and picks which to show). Cells read ``mean ± 95% half-width``;
    the last column is the paired 95% interval for adapted - meta, which says whether the
    choice of codes matters for that configuration.
    """
    import pandas as pd

    c = cc[cc["metric"].isin(list(names))]

    def cell(m: float, h: float) -> str:
        return f"{m:.{digits}f}" + ("" if not math.isfinite(h) else f"\u00a0±\u00a0{h:.{digits}f}")

    def interval(r: Mapping[str, Any]) -> str:
        d = f"{r['diff']:+.{digits}f}"
        if not math.isfinite(r["diff_lo"]):
            return d
        return f"{d} [{r['diff_lo']:+.{digits}f},\u00a0{r['diff_hi']:+.{digits}f}]"

    rows = c.to_dict("records")
    out = pd.DataFrame({
        "configuration": [config_label(r) for r in rows],
        "score": [names[r["metric"]] for r in rows],
        "meta codes (headline)": [cell(r["meta"], r["meta_ci95"]) for r in rows],
        "adapted codes": [cell(r["adapted"], r["adapted_ci95"]) for r in rows],
        "adapted − meta [95%]": [interval(r) for r in rows],
        "n": [int(r["n"]) for r in rows],
    })
    return out.style.hide(axis="index").set_table_styles(
        [{"selector": "td, th", "props": "font-size: 0.8em; padding: 2px 4px;"}])


def comparison_tables(cmp: Any, profile: str,
                      parts: Mapping[str, Sequence[str]] | None = None) -> None:
    """Show a :func:`lvae.report.results.paper_vs_ours` frame on a page: for each profile and
    source in it, one :func:`comparison_table` per part (title -> the paper's headers it
    shows; None: every header in one table), each under a line naming the part, the
    profile (``profile`` where the frame has no runs) and the source."""
    from IPython.display import Markdown, display


    groups = parts or {"": paper_table(str(cmp["table"].iloc[0]))["headers"]}
    for prof, source in cmp[["profile", "source"]].drop_duplicates().itertuples(index=False):
        for title, headers in groups.items():
            head = f"**{title}**, profile" if title else "profile"
            display(Markdown(f"{head} `{prof or profile}` ({source or 'no runs'})"))
            display(comparison_table(cmp, headers, prof, source))


def noise_table(ns: Any, names: Mapping[str, str]) -> Any:
    """The numbers behind :func:`noise_bars`: per configuration and score (``names`` maps a
    :func:`lvae.report.results.noise_sources` metric to a short label), the standard deviation
    over training seeds and over GBT seeds on the same codes, and which is larger."""
    import pandas as pd

    view = pd.DataFrame({
        "configuration": [config_label(r) for r in ns.to_dict("records")],
        "score": ns["metric"].map(names),
        "SD over seeds": ns["sd_seeds"],
        "seeds": ns["n_seeds"],
        "SD over GBT seeds": ns["sd_gbt"],
        "larger": ns["dominant"],
    })
    return view.style.hide(axis="index").format(
        {"SD over seeds": "{:.4f}", "SD over GBT seeds": "{:.1e}"}, na_rep="—")


def comparison_table(cmp: Any, headers: Sequence[str], profile: str | None = None,
                     source: str | None = None, digits: int = 3, title: str | None = None,
                     style: bool = True) -> Any:
    """Paper, ours and their difference per cell, for a few of a table's columns.

    ``cmp`` is a :func:`lvae.report.results.paper_vs_ours` frame. One row per paper row (paper
    order), columns ``(header, paper | ours | Δ)``; a diverged configuration reads
    "diverged", a missing one "—". Splitting a 7-column table into groups of headers, and
    writing the number of seeds once in the caption when every cell has the same, keeps
    each table narrow enough for a page. ``style=False`` returns the plain DataFrame.
    """
    import pandas as pd

    c = cmp[cmp["header"].isin(headers)]
    if profile is not None:
        c = c[c["profile"] == profile]
    if source is not None:
        c = c[c["source"] == source]
    ns = {int(n) for n in c["n"] if n}
    uniform = len(ns) == 1 and not (c["n_diverged"] > 0).any()
    prefix = _common_prefix(list(headers))
    short = [h[len(prefix):] or h for h in headers]
    rows = list(dict.fromkeys(c["row"]))
    # A Frechet distance in another feature space stands in for FID when no Inception
    # weights exist: it is never labelled "FID" (its scale differs, see the metrics page).
    measures = c["measure"].astype(str) if "measure" in c else pd.Series("", index=c.index)
    ours_label = {h: "ours: FD-factors" if measures[c["header"] == full].str.contains(
        "FD-factors").any() else "ours" for h, full in zip(short, headers, strict=True)}
    out = pd.DataFrame(index=pd.Index(rows, name=None), columns=pd.MultiIndex.from_tuples(
        [(h, sub) for h in short for sub in ("paper", ours_label[h], "Δ")]))
    for _, r in c.iterrows():
        h = short[list(headers).index(r["header"])]
        diff, ours = r["difference"], str(r["ours"])
        if uniform:
            ours = re.sub(r" \(n=\d+\)$", "", ours)
        out.loc[r["row"], (h, "paper")] = r["paper_text"]
        # the interval stays on one line; "(n=..)" may wrap below it, so the table fits
        out.loc[r["row"], (h, ours_label[h])] = ours.replace(" ± ", "\u00a0±\u00a0")
        out.loc[r["row"], (h, "Δ")] = (
            # one digit fewer than the cells: a difference needs no more, and it keeps the
            # three-metric tables within the page
            f"{diff:+.{max(0, digits - 1)}f}" if isinstance(diff, float)
            and math.isfinite(diff) else "")
    out = out.fillna("")
    if not style:
        return out
    caption = (title or prefix.strip() or "") + (
        f" (ours: mean ± 95% t half-width over {ns.pop()} seed(s))" if uniform else
        " (ours: mean ± 95% t half-width, n seeds)")
    return (out.style.set_caption(caption)
            .set_table_styles([{"selector": "td, th", "props": "font-size: 0.74em; "
                                "padding: 2px 2px;"},
                               {"selector": "th", "props": "white-space: nowrap;"},
                               {"selector": "caption", "props": "caption-side: top; "
                                "font-size: 0.9em; text-align: left;"}]))


def _common_prefix(names: list[str]) -> str:
    """The words all headers start with ("DCI w/ Color "), to print once in the caption."""
    if len(names) < 2:
        return ""
    words = [n.split(" ") for n in names]
    common = []
    for group in zip(*words, strict=False):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return " ".join(common) + " " if common else ""


# --------------------------------------------------------------------------------------
# The study: curves against training steps, pictures per milestone
# --------------------------------------------------------------------------------------


def milestone_curves(frame: Any, metrics: Mapping[str, str], by: str = "label",
                     paper: Mapping[str, Mapping[str, float]] | None = None,
                     paper_steps: int = 300_000,
                     ylim: tuple[float, float] | None = (0, 1.04),
                     title: str | None = None, ncols: int | None = None,
                     panel: tuple[float, float] = (3.7, 3.0),
                     final: Mapping[str, Mapping[str, tuple[int, float]]] | None = None
                     ) -> Figure:
    """Metrics against training steps, one line per group (``frame[by]``): the mean over
    seeds, a band from the lowest to the highest seed, and each seed as a small point
    (:func:`_seed_points`), so a band is never read as a spread it does not have (three
    seeds draw the same band as thirty); a group of one seed is its line alone.

    ``metrics`` maps a column of :func:`lvae.report.study.frames.milestone_frame` to a panel
    title; the panels fill a grid of ``ncols`` columns row by row (default: one row), each
    ``panel`` inches (width, height): the book's text column is 688 px wide in a 1280 px
    window, 6.9 in at the inline backend's 100 dpi, so two columns of 3.7 in are shrunk by
    a tenth where a row of three is shrunk by 40% (the results_study DCI figure).
    ``paper[column][group]`` is the paper's value, drawn as a star at ``paper_steps`` (the
    paper's budget) so a reader sees how far our curves are from where it measured. A
    run still training is drawn dashed; a group whose every run diverged ends in a cross
    at the step it diverged (``frame["diverged_at"]``), named in its legend entry.
    ``final[column][group]`` is ``(step, value)`` of the group's final evaluation, drawn as
    a hollow diamond: it scores more codes than a milestone, which reads low beside it.
    """
    import pandas as pd
    from matplotlib.lines import Line2D

    df = pd.DataFrame(frame)
    ncols = max(1, min(ncols or len(metrics), len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    groups = list(dict.fromkeys(df[by])) if len(df) else []
    colors = {g: f"C{i}" for i, g in enumerate(groups)}
    seeds_drawn = False
    for k, (ax, (col, name)) in enumerate(zip(axes.flat, metrics.items(), strict=False)):
        for i, g in enumerate(groups):
            sub = df[(df[by] == g) & df[col].notna()] if col in df else df.iloc[0:0]
            if sub.empty:
                continue
            stats_ = sub.groupby("step")[col].agg(["mean", "min", "max", "count"])
            training = (sub[sub["state"] == "training"]["seed"].nunique()
                        if "state" in sub and "seed" in sub else 0)
            n = sub["seed"].nunique() if "seed" in sub else 1
            still = f", {training} training" if training else ""
            died = (pd.to_numeric(sub["diverged_at"], errors="coerce")
                    if "diverged_at" in sub else pd.Series(dtype=float))
            if len(died) and died.notna().all():
                still += f", diverged at step {int(died.max()):,}"
                ax.plot([died.max()], [stats_["mean"].iloc[-1]], marker="X", ms=9,
                        color=colors[g], mec="black", mew=0.6, ls="none")
            ax.plot(stats_.index, stats_["mean"], color=colors[g], marker="o", ms=3,
                    ls="--" if training else "-", label=f"{g} (n={n}{still})")
            if n > 1:
                ax.fill_between(stats_.index, stats_["min"], stats_["max"],
                                color=colors[g], alpha=0.18, lw=0)
                _seed_points(ax, sub["step"], sub[col], colors[g], i, len(groups))
                seeds_drawn = True
            if final and g in final.get(col, {}):
                ax.plot([final[col][g][0]], [final[col][g][1]], marker="D", ms=7, mfc="none",
                        mec=colors[g], mew=1.5, ls="none")
            if paper and g in paper.get(col, {}):
                ax.plot([paper_steps], [paper[col][g]], marker="*", ms=11, color=colors[g],
                        mec="black", mew=0.6, ls="none")
        _log_step_axis(ax, STEP_TICKS)
        if k + ncols >= len(metrics):  # the lowest panel of its column: one label a column
            ax.set_xlabel("training steps")
        ax.set_title(name, fontsize=10)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat[:len(metrics)]:  # every group, even one absent from the first panel
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if seeds_drawn:
        handles.append(Line2D([], [], marker="o", ms=3, color="gray", alpha=0.7, ls="none"))
        labels.append("each seed")
    if final:
        handles.append(Line2D([], [], marker="D", ms=7, mfc="none", mec="gray", mew=1.5,
                              ls="none"))
        labels.append("final evaluation")
    if paper:
        handles.append(Line2D([], [], marker="*", ms=11, color="gray", mec="black", ls="none"))
        labels.append(f"paper, at {paper_steps:,} steps")
    ncol = min(max(len(labels), 1), 4, max(2, int(panel[0] * ncols / 2.2)))
    rows = math.ceil(len(labels) / ncol) if labels else 0
    top_in = 0.2 * rows + (0.3 if title else 0.0)  # inches above the panels
    fig.set_figheight(fig.get_figheight() + top_in)
    height = fig.get_figheight()
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.05 / height, va="top")
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=8,
                   bbox_to_anchor=(0.5, 1 - (0.3 if title else 0.0) / height),
                   frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - top_in / height))
    return fig


#: How far apart (in decades of the step axis) the seed points of neighbouring groups are
#: drawn at one milestone, so that groups whose values are close stay told apart.
SEED_POINT_SPREAD = 0.025


def _seed_points(ax: Any, steps: Any, values: Any, color: str, group: int,
                 groups: int) -> None:
    """One small point per seed and milestone, nudged sideways by the group's place among
    ``groups`` (:data:`SEED_POINT_SPREAD` decades apart, centred on the milestone): on a log
    axis a nudge of a few percent of a step is invisible as a step, and without it the
    seeds of groups with close values hide each other."""
    shift = 10 ** (SEED_POINT_SPREAD * (group - (groups - 1) / 2))
    ax.scatter(np.asarray(steps, dtype=float) * shift, np.asarray(values, dtype=float), s=9,
               color=color, alpha=0.7, lw=0, zorder=3)


#: Bar colours of :func:`execution_bars`, by cache state (:mod:`lvae.report.execstats`).
CACHE_COLORS = {"executed": "C0", "reused": "0.7", "unknown": "0.45"}


def execution_bars(table: Any, title: str | None = None) -> Figure:
    """Where a build's time went: one horizontal bar per notebook of an
    :func:`lvae.report.execstats.execution_table` (papermill's run time, in the table's order,
    first at the top), coloured by cache state (this build's executions blue, reused ones
    grey: their time was spent by an earlier build), a failed one outlined in red. The
    axis is logarithmic when the times span more than two decades (a 3-second page beside
    a 20-minute run), so the short bars stay readable."""
    from matplotlib.patches import Patch

    names = [str(n) for n in table["notebook"]]
    secs = np.asarray(table["run time (s)"], dtype=float)
    fig, ax = plt.subplots(figsize=(7.0, 0.6 + 0.22 * max(len(names), 1)))
    y = np.arange(len(names))
    colors = [CACHE_COLORS.get(str(c), "0.45") for c in table["cache"]]
    failed = [str(s).startswith("failed") for s in table["status"]]
    shown = np.nan_to_num(secs, nan=0.0)
    ax.barh(y, shown, color=colors, edgecolor=["red" if f else "none" for f in failed],
            linewidth=1.2, height=0.7)
    ok = secs[np.isfinite(secs) & (secs > 0)]
    if len(ok) and ok.max() / ok.min() > 100:
        ax.set_xscale("log")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("run time (s, papermill)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    present = list(dict.fromkeys(str(c) for c in table["cache"]))
    handles = [Patch(color=CACHE_COLORS.get(c, "0.45"), label=c) for c in present]
    if any(failed):
        handles.append(Patch(facecolor="white", edgecolor="red", label="failed"))
    if handles:  # above the bars, where it hides none of them
        ax.legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0),
                  ncol=len(handles), frameon=False, borderaxespad=0.2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def milestone_pictures(pictures: Mapping[int, Mapping[str, np.ndarray]],
                       steps: Sequence[int] | None = None, title: str | None = None,
                       cell: float = 0.5) -> Figure:
    """What a run draws at each milestone (:func:`lvae.report.study.measures.shipped_pictures`),
    one block of columns per step, side by side: rows are the references, their reconstructions by
    the meta-model alone and by the adapted model, the localized generations (one row per
    reference, one column per shared prior code z: the paper's Figure 3) and the
    meta-decoder alone on the same z."""
    steps = list(steps if steps is not None else sorted(pictures))
    if not steps:
        raise ValueError("milestone_pictures needs at least one step")
    blocks, col_labels = [], []
    for i, step in enumerate(steps):
        p = pictures[step]
        width = p["localized"].shape[1]

        def row(images: np.ndarray, width: int = width) -> np.ndarray:
            pad = np.full((width - len(images), *images.shape[1:]), 255, np.uint8)
            return np.concatenate([images, pad])

        block = np.stack([row(p["references"]), row(p["meta_recon"]),
                          row(p["adapted_recon"]), *p["localized"],
                          row(p["meta_samples"])])
        if i:  # a white column between milestones
            blocks.append(np.full((len(block), 1, *block.shape[2:]), 255, np.uint8))
            col_labels.append("")
        blocks.append(block)
        col_labels += [f"step {step:,}"] + [""] * (width - 1)
    n_ref = len(pictures[steps[0]]["references"])
    labels = ["references", "meta recon", "adapted recon",
              *[f"z row, ref {i + 1}" for i in range(n_ref)], "meta decoder"]
    return image_grid(np.concatenate(blocks, axis=1), row_labels=labels,
                      col_labels=col_labels, title=title, cell=cell)


#: The step ticks a log step axis may show: the milestones of every plan, and the paper's
#: budget.
STEP_TICKS = (10, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 300_000)


def _log_step_axis(ax: Any, ticks: Sequence[int] = STEP_TICKS[:8]) -> None:
    """Training steps on a log axis with the milestones as its only, readable ticks: call
    it after plotting; where the axis spans more decades (a run that diverged at step 12)
    a tick closer than an eighth of the span to the one before it is left out, so that
    labels never overlap."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    gap = (math.log10(hi) - math.log10(lo)) / 8
    kept: list[int] = []
    for t in ticks:
        if lo <= t <= hi and (not kept or math.log10(t / kept[-1]) >= gap):
            kept.append(t)
    ax.xaxis.set_major_locator(FixedLocator(kept))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


#: The readout panels of :func:`readout_panels`: column of the frame, title, log scale.
READOUT_PANELS = (("kl", "KL of the adapted codes (nats)", True),
                  ("local_share", "local share (z's movement / the objects')", True))


def readout_panels(frame: Any, groups: Sequence[tuple[str, Sequence[str]]],
                   controls: Sequence[str] = (),
                   thresholds: Mapping[str, float] | None = None) -> Figure:
    """The rule's two readouts (KL, local share) against training steps, one row per group of
    arms (an open choice of the diagnosis), the ``controls`` drawn in every row (grey and
    black) so each row reads as "does this choice move the readout away from the study's
    reading, towards the vanilla VAE?". ``frame``: :func:`lvae.report.diagnosis.frame` rows
    (``arm``, ``step`` and the readout columns); ``thresholds`` draws the rule's lines. A
    run that diverged ends in a cross; one still training is dashed."""
    import pandas as pd

    df = pd.DataFrame(frame)
    rows = [(name, list(arms)) for name, arms in groups if arms]
    fig, axes = plt.subplots(max(1, len(rows)), len(READOUT_PANELS),
                             figsize=(9.0, 2.4 * max(1, len(rows))), squeeze=False)
    shades = ("0.55", "black", "0.3", "0.75")
    for r, (name, arms) in enumerate(rows):
        styles = {a: (shades[i % len(shades)], ":") for i, a in enumerate(controls)}
        styles.update({a: (f"C{i}", "-") for i, a in enumerate(arms)})
        for c, (col, title, log) in enumerate(READOUT_PANELS):
            ax = axes[r][c]
            for arm, (color, ls) in styles.items():
                sub = df[(df["arm"] == arm)].sort_values("step") if len(df) else df
                pts = sub[sub[col].notna()] if col in sub else sub.iloc[0:0]
                training = bool(len(sub) and (sub["state"] == "training").any())
                died = pd.to_numeric(sub["diverged_at"], errors="coerce").dropna() \
                    if "diverged_at" in sub else pd.Series(dtype=float)
                label = arm + (f" (diverged at {int(died.iloc[0]):,})" if len(died) else "")
                if len(pts):
                    ax.plot(pts["step"], pts[col], color=color, ls="--" if training else ls,
                            marker="o", ms=3, label=label if c == 0 else None)
                if len(died):  # at its last value, or on the axis' floor with none
                    y, where = ((pts[col].iloc[-1], ax.transData) if len(pts)
                                else (0.04, ax.get_xaxis_transform()))
                    ax.plot([died.iloc[0]], [y], marker="X", ms=9, color=color,
                            mec="black", mew=0.6, ls="none", transform=where,
                            label=None if len(pts) or c else label)
            if thresholds and col in thresholds:
                ax.axhline(thresholds[col], color="red", lw=0.8, ls="--")
            _log_step_axis(ax)
            if log:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(title if r == 0 else "", fontsize=9)
            ax.tick_params(labelsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("training step", fontsize=8)
        axes[r][0].set_ylabel(name, fontsize=9)
        axes[r][-1].legend(*axes[r][0].get_legend_handles_labels(), fontsize=7,
                           loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return fig


#: Where :func:`rule_map` draws a readout of zero or below (log axes have no zero).
RULE_MAP_FLOOR = {"KL": 1e-3, "local share": 1e-4}


def rule_map(points: Any, kl_min: float, share_min: float,
             controls: Sequence[str] = ()) -> Figure:
    """The screen at a glance: every arm at its judged milestone in the plane of the rule's
    two readouts (KL of the adapted codes, local share; log axes), the rule's lines in red
    and the corner that escapes memorisation shaded, so a reader sees how far each arm
    lands from the line, not only on which side. ``points``: rows with ``arm``, ``KL``,
    ``local share`` and ``outcome`` (:func:`lvae.report.diagnosis.arm_table`); the
    ``controls`` are drawn as black squares, an arm that diverged after its last readout as
    a red cross (the legend says at which step it was read). Points are numbered and the
    legend names them; arms without both readouts (diverged before the milestone) are named
    in it with a grey cross and no point. A readout of zero is drawn on the axis' floor
    (:data:`RULE_MAP_FLOOR`) as a triangle."""
    import pandas as pd

    df = pd.DataFrame(points)
    has = df[["KL", "local share"]].apply(pd.to_numeric, errors="coerce").notna().all(axis=1) \
        if len(df) else pd.Series(dtype=bool)
    shown, missing = df[has], df[~has] if len(df) else df
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    lo = RULE_MAP_FLOOR
    kl = shown["KL"].astype(float).clip(lower=lo["KL"]) if len(shown) else shown["KL"]
    sh = (shown["local share"].astype(float).clip(lower=lo["local share"]) if len(shown)
          else shown["local share"])
    x_hi = max(float(kl.max()) * 2 if len(kl) else 10.0, kl_min * 10)
    y_hi = max(float(sh.max()) * 2 if len(sh) else 1.0, share_min * 10)
    ax.fill_between([kl_min, x_hi], share_min, y_hi, color="C2", alpha=0.08, lw=0)
    ax.axvline(kl_min, color="red", lw=0.8, ls="--")
    ax.axhline(share_min, color="red", lw=0.8, ls="--")
    ax.text(x_hi / 1.15, share_min * 1.15, "escapes memorisation", color="C2", ha="right",
            va="bottom", fontsize=8)
    steps = shown["step"] if "step" in shown else [None] * len(shown)
    for i, (row, x, y, step) in enumerate(zip(shown.itertuples(index=False), kl, sh, steps,
                                              strict=True), start=1):
        arm, out = str(row.arm), str(row.outcome)
        died = out.startswith("diverges")
        floor = x <= lo["KL"] or y <= lo["local share"]
        color = ("black" if arm in controls else "C2" if out == "escapes"
                 else "C3" if died else "C1")
        marker = "v" if floor else "s" if arm in controls else "X" if died else "o"
        at = f", readout at step {int(step):,}" if died and pd.notna(step) else ""
        ax.plot([x], [y], marker=marker, ms=6 if not died else 7, color=color, mec="black",
                mew=0.4, ls="none", label=f"{i}  {arm} ({out}{at})")
        ax.annotate(str(i), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo["KL"] / 1.5, x_hi)
    ax.set_ylim(lo["local share"] / 1.5, y_hi)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("KL of the adapted codes (nats)", fontsize=9)
    ax.set_ylabel("local share (z's movement / the objects')", fontsize=9)
    ax.tick_params(labelsize=8)
    for arm, out in zip(missing["arm"], missing["outcome"], strict=True):  # no point
        ax.plot([], [], marker="X", ms=6, color="0.6", ls="none",
                label=f"   {arm} ({out}: not drawn)")
    fig.tight_layout()  # before the legend, which hangs below the axes (the inline
    # backend's bbox_inches="tight" keeps it in the picture)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(-0.12, -0.17), frameon=False,
              handletextpad=0.3, borderaxespad=0)
    return fig
