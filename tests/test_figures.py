"""The result pages' plots: each one call, drawing what the pages drew by hand before.

Figures are checked for what they show (panels, lines, bars, labels), not for pixels, on
hand-made result frames and one tiny trained run.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from lvae.config import TrainConfig
from lvae.generation import localized_samples, meta_samples
from lvae.report import figures
from lvae.report.results import paper_vs_ours
from lvae.training import load_run, train

matplotlib.use("Agg")

D = "dci_nocolor.disentanglement"


def runs(rows: list[tuple]) -> pd.DataFrame:
    """A :func:`lvae.report.results.collect`-like frame: (alpha, neighbourhood, seed, status, D,
    FD-factors) per run of 3D Shapes at beta = 1."""
    out = []
    for alpha, nbhd, seed, status, d, fd in rows:
        out.append({"dataset": "shapes3d", "alpha": alpha, "beta": 1.0, "neighborhood": nbhd,
                    "reduction": "pixel_mean", "seed": seed, "profile": "smoke",
                    "source": "build", "status": status, "steps": 6, "run_dir": "",
                    D: d, "dci_nocolor.completeness": d / 2,
                    "dci_nocolor.informativeness": 0.5, "FD-factors": fd})
    return pd.DataFrame(out)


@pytest.fixture
def cmp() -> pd.DataFrame:
    df = runs([(0.0, "synthetic", 0, "completed", 0.1, 90.0),
               (0.0, "synthetic", 1, "completed", 0.2, 95.0),
               (1.0, "synthetic", 0, "completed", 0.6, 40.0),
               (1.0, "synthetic", 1, "completed", 0.8, 42.0),
               (100.0, "synthetic", 0, "diverged", math.nan, math.nan)])
    return paper_vs_ours(df, "table1")


def test_table_sweep_draws_ours_beside_the_papers_curve(cmp: pd.DataFrame) -> None:
    fig = figures.table_sweep(cmp, {D: "disentanglement"}, title="DCI without colour")
    [ax] = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["ours", "ours: diverged", "ours: each seed", "paper"]
    assert ax.get_title() == "disentanglement" and fig._suptitle.get_text() == "DCI without colour"


def test_frechet_sweep_keeps_the_two_distances_apart(cmp: pd.DataFrame) -> None:
    fig = figures.frechet_sweep(cmp, "FD-factors")
    paper_ax, ours_ax = fig.axes
    assert paper_ax.get_title() == "paper: FID (Inception-v3)"
    assert ours_ax.get_title() == "ours: FD-factors"
    assert list(paper_ax.lines[0].get_ydata())[:2] == [134.786, 107.636]
    data_line = ours_ax.containers[0].lines[0]  # the errorbar's means, without its bars
    ours_y = [y for y in data_line.get_ydata() if np.isfinite(y)]
    assert sorted(ours_y) == pytest.approx([41.0, 92.5])  # the means over seeds


def test_paper_bars_mark_rows_without_runs() -> None:
    df = runs([(1.0, "synthetic", 0, "completed", 0.6, 40.0),
               (1.0, "synthetic", 1, "completed", 0.8, 41.0)])
    fig = figures.paper_bars(paper_vs_ours(df, "table5"), {D: "disentanglement"}, "table5",
                             ticks=("sampling", "ℓ2 input", "vanilla"), ylabel="DCI")
    [ax] = fig.axes
    heights = [round(b.get_height(), 3) for b in ax.patches]
    assert heights == [0.977, 0.676, 0.150, 0.7, 0.0, 0.0]  # paper's 3, then ours
    assert [t.get_text() for t in ax.texts] == ["—", "—"]  # no l2 nor vanilla run
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sampling", "ℓ2 input", "vanilla"]
    # only other sources' runs (a build without runs beside shipped ones): no bar of ours
    shipped = paper_vs_ours(df.assign(source="imported"), "table5")
    [ax] = figures.paper_bars(shipped, {D: "D"}, "table5", ticks=("s", "l", "v")).axes
    assert [t.get_text() for t in ax.texts] == ["—", "—", "—"]


def test_traversal_change_leaves_out_missing_sweeps() -> None:
    t = torch.zeros(3, 5, 1, 2, 2)
    t[1, -1] = 1.0  # only z_2 changes the picture
    fig = figures.traversal_change({"α = 1 adapted": t, "α = 0": None})
    [ax] = fig.axes
    [line] = ax.lines
    assert list(line.get_ydata()) == [0.0, 1.0, 0.0] and line.get_label() == "α = 1 adapted"
    assert not figures.traversal_change({}).axes[0].lines


def test_noise_table_and_comparison_tables(cmp: pd.DataFrame, capsys) -> None:
    ns = pd.DataFrame([{"alpha": 1.0, "beta": 1.0, "neighborhood": "synthetic",
                        "metric": D, "sd_seeds": 0.1, "n_seeds": 2, "sd_gbt": 0.001,
                        "dominant": "training seeds"}])
    view = figures.noise_table(ns, {D: "D w/o colour"}).data
    assert view.iloc[0].tolist() == ["α=1", "D w/o colour", 0.1, 2, 0.001, "training seeds"]
    figures.comparison_tables(cmp, "smoke", {"FID": ("FID",)})
    shown = capsys.readouterr().out
    assert shown.count("Markdown") == 1 and shown.count("Styler") == 1


def test_figure2_panels_draw_each_configuration_or_say_why_not(tmp_path: Path, blobs,
                                                             one_torch_thread) -> None:
    cfg = TrainConfig(dataset="shapes3d", resolution=32, steps=2, batch_size=4, k=3,
                      pool_size=100, heldout_size=20, alpha=1.0, seed=0, profile="smoke")
    train(cfg, tmp_path / "a1", dataset=blobs, progress=False)
    df = runs([(1.0, "synthetic", 0, "completed", 0.6, 40.0),
               (100.0, "synthetic", 0, "diverged", math.nan, math.nan)])
    df.loc[0, "run_dir"] = str(tmp_path / "a1")
    adapted, meta = figures.figure2_panels(
        df, {"α = 1": {"alpha": 1.0}, "α = 1e2": {"alpha": 100.0}, "α = 0": {"alpha": 0.0}},
        n=4, loader=lambda d: load_run(d, dataset=blobs))
    name = "α = 1\n(smoke, 2 steps, seed 0)"
    assert list(adapted) == list(meta) == [name, "α = 1e2", "α = 0"]
    assert (adapted["α = 1e2"], adapted["α = 0"]) == ("diverged", "no run")
    # what the Table 1 page's loop drew: reference i decoded with code i, adapted to it
    run = load_run(tmp_path / "a1", dataset=blobs)
    pos = np.random.RandomState(1).randint(len(run.pool), size=4)
    z = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    grid = localized_samples(run, run.pool.tensor(pos), z)
    assert torch.equal(adapted[name], grid[torch.arange(4), torch.arange(4)])
    assert torch.equal(meta[name], meta_samples(run, z))
    fig = figures.side_by_side(adapted)
    assert len(fig.subfigs) == 3


def test_milestone_curves_end_a_diverged_group_in_a_cross() -> None:
    rows = [{"label": lab, "seed": s, "step": step, "state": "finished", "diverged_at": at,
             "dci": 0.1 * step / 1000}
            for lab, at in (("α=1", None), ("α=100", 3405)) for s in (0, 1)
            for step in (500, 1000, 2000)]
    fig = figures.milestone_curves(pd.DataFrame(rows), {"dci": "D"})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["α=1 (n=2)", "α=100 (n=2, diverged at step 3,405)", "each seed"]
    crosses = [ln for ln in fig.axes[0].lines if ln.get_marker() == "X"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [3405]
    assert list(crosses[0].get_ydata()) == [pytest.approx(0.2)]  # at its last milestone's mean


def test_milestone_curves_label_the_step_axis_with_milestones_only() -> None:
    """Every point at one step (a reading at its first milestone) is labelled with
    milestone ticks ("2k"), not matplotlib's minor-tick clutter; milestones up to the
    paper's star at 300k keep their ticks a readable distance apart."""
    one = pd.DataFrame([{"label": "r", "seed": 0, "step": 2000, "state": "training",
                         "dci": 0.1}])
    ax = figures.milestone_curves(one, {"dci": "D"}).axes[0]
    ticks = list(ax.get_xticks())
    assert 2000 in ticks and set(ticks) <= set(figures.STEP_TICKS)
    assert "2k" in [t.get_text() for t in ax.xaxis.get_ticklabels()]
    assert not any(t.get_text() for t in ax.xaxis.get_ticklabels(minor=True))
    rows = [{"label": "v", "seed": 0, "step": s, "state": "finished", "dci": 0.1}
            for s in (250, 500, 1000, 2000, 5000, 10_000, 20_000)]
    ax = figures.milestone_curves(pd.DataFrame(rows), {"dci": "D"},
                                  paper={"dci": {"v": 0.5}}).axes[0]
    ticks = list(ax.get_xticks())
    assert ticks[0] == 250 and ticks[-1] == 300_000
    assert min(np.diff(np.log10(ticks))) >= np.log10(300_000 / 250) / 8 * 0.999


def _points(ax) -> list[tuple[float, float]]:
    """The (x, y) of every scatter point an axis holds (the per-seed points)."""
    return [tuple(map(float, xy)) for c in ax.collections
            if hasattr(c, "get_offsets") and type(c).__name__ == "PathCollection"
            for xy in c.get_offsets()]


def test_milestone_curves_draw_each_seed_beside_the_mean_and_band() -> None:
    """Every seed's value at every milestone is a point (at its step, nudged sideways by a
    few percent at most), for groups with several seeds; a one-seed group is its line."""
    rng = np.random.RandomState(0)
    rows = [{"label": lab, "seed": s, "step": step, "state": "finished",
             "d": float(rng.uniform()), "c": float(rng.uniform()), "i": float(rng.uniform())}
            for lab, seeds in (("vanilla", (0, 1, 2)), ("α=1", (0, 1, 2)), ("pilot", (0,)))
            for s in seeds for step in (500, 5000, 20_000)]
    df = pd.DataFrame(rows)
    fig = figures.milestone_curves(df, {"d": "D", "c": "C", "i": "I"}, ncols=2)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["D", "C", "I"] and len(fig.axes) == 4
    w, h = fig.get_size_inches()
    assert w == pytest.approx(2 * 3.7) and h > 2 * 3.0  # two columns, two rows, a legend
    for ax, col in zip(shown, "dci", strict=True):
        pts = _points(ax)
        want = df[df.label != "pilot"]
        assert sorted(y for _, y in pts) == pytest.approx(sorted(want[col]))
        for x, y in pts:  # each point near the step of the row with that value
            step = want.loc[(want[col] - y).abs().idxmin(), "step"]
            assert abs(math.log10(x / step)) <= 0.05
    assert "each seed" in [t.get_text() for t in fig.legends[0].get_texts()]
    one = figures.milestone_curves(df[df.label == "pilot"], {"d": "D"})
    assert not _points(one.axes[0])
    assert "each seed" not in [t.get_text() for t in one.legends[0].get_texts()]


def test_sweeps_and_bars_draw_each_seed(cmp: pd.DataFrame) -> None:
    """The fixture's seeds: alpha = 0 at 0.1 and 0.2 (FD 90, 95), alpha = 1 at 0.6 and 0.8
    (FD 40, 42); the diverged alpha = 100 has none."""
    [ax] = figures.table_sweep(cmp, {D: "disentanglement"}).axes
    assert sorted(y for _, y in _points(ax)) == pytest.approx([0.1, 0.2, 0.6, 0.8])
    ours_ax = figures.frechet_sweep(cmp, "FD-factors").axes[1]
    assert sorted(y for _, y in _points(ours_ax)) == pytest.approx([40, 42, 90, 95])
    df = runs([(1.0, "synthetic", 0, "completed", 0.6, 40.0),
               (1.0, "synthetic", 1, "completed", 0.8, 41.0),
               (0.0, "synthetic", 0, "completed", 0.2, 90.0)])
    [ax] = figures.paper_bars(paper_vs_ours(df, "table5"), {D: "D"}, "table5",
                              ticks=("sampling", "l2 input", "vanilla")).axes
    pts = _points(ax)
    assert sorted(y for _, y in pts) == pytest.approx([0.6, 0.8])  # one seed: its bar alone
    assert all(abs(x - 0.2) <= 0.15 for x, _ in pts)  # on ours' bar of the first row


def test_execution_bars_show_each_notebooks_time_by_cache_state() -> None:
    from matplotlib.colors import to_rgba

    table = pd.DataFrame({"notebook": ["teach_vae", "results_table1", "run-a"],
                          "status": ["ok", "failed: ValueError: x", "ok"],
                          "run time (s)": [3.0, 40.0, 1200.0],
                          "cache": ["reused", "executed", "executed"]})
    fig = figures.execution_bars(table)
    [ax] = fig.axes
    bars = ax.patches
    assert [b.get_width() for b in bars] == [3.0, 40.0, 1200.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table.notebook)
    assert bars[0].get_facecolor() == to_rgba(figures.CACHE_COLORS["reused"])
    assert bars[1].get_edgecolor() == to_rgba("red")  # the failed one
    assert ax.get_xscale() == "log"  # 3 s beside 20 min
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["reused", "executed", "failed"]


def test_readout_panels_draw_each_group_and_keep_step_ticks_apart():
    """One row per group, the controls in every row, a cross where an arm diverged; the
    step axis keeps only ticks far enough apart to be read (a divergence at step 12
    stretches it over three decades, where 250 and 500 would overlap)."""
    steps = [250, 500, 1000, 2000, 5000]
    rows = [{"arm": a, "step": s, "kl": 10.0, "local_share": 1.0, "state": "finished",
             "diverged_at": None} for a in ("control", "arm") for s in steps]
    rows.append({"arm": "diverged", "step": 0, "kl": None, "local_share": None,
                 "state": "finished", "diverged_at": 12})
    fig = figures.readout_panels(pd.DataFrame(rows), [("one", ["arm"]), ("two", ["diverged"])],
                                 controls=["control"], thresholds={"kl": 3.5})
    axes = fig.axes
    assert len(axes) == 4  # two rows x (KL, local share)
    assert [ax.get_ylabel() for ax in axes[::2]] == ["one", "two"]
    ticks = [list(ax.get_xticks()) for ax in axes]
    assert ticks[0] == [250, 500, 1000, 2000, 5000]  # one row: every milestone
    assert ticks[2][0] == 10 and 500 not in ticks[2] and 250 in ticks[2]  # stretched
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert labels == ["control", "arm"]
    assert any("diverged at 12" in t.get_text() for t in axes[3].get_legend().get_texts())


def test_the_rule_map_places_each_arm_by_its_two_readouts():
    """One numbered point per arm at (KL, local share); a zero readout sits on the log
    axis' floor as a triangle; an arm that diverged after its last readout is a cross
    whose legend says where it was read; one without readouts has no point, only its
    legend entry; the rule's two lines are where the rule puts them."""
    arms = pd.DataFrame({
        "arm": ["control", "escapes", "copies", "died late", "died early"],
        "step": [5000, 5000, 5000, 1000, None],
        "KL": [23.0, 13.7, 0.02, 814.0, None],
        "local share": [4.1, 0.77, 0.0, 0.004, None],
        "outcome": ["escapes", "escapes", "memorises", "diverges at step 1,542",
                    "diverges at step 12"]})
    fig = figures.rule_map(arms, 3.5, 0.25, controls=["control"])
    ax = fig.axes[0]
    points = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1
              and ln.get_linestyle() == "None"]
    assert [(float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in points] == [
        (23.0, 4.1), (13.7, 0.77), (0.02, figures.RULE_MAP_FLOOR["local share"]),
        (814.0, 0.004)]
    assert [ln.get_marker() for ln in points] == ["s", "o", "v", "X"]
    assert [t.get_text() for t in ax.texts if t.get_text().isdigit()] == ["1", "2", "3", "4"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[3] == "4  died late (diverges at step 1,542, readout at step 1,000)"
    assert labels[4].strip() == "died early (diverges at step 12: not drawn)"
    rules = [ln for ln in ax.get_lines() if ln.get_color() == "red"]
    assert sorted(float(ln.get_xdata()[0]) for ln in rules if ln.get_xdata()[0] ==
                  ln.get_xdata()[1]) == [3.5]
    assert [float(ln.get_ydata()[0]) for ln in rules if ln.get_ydata()[0] ==
            ln.get_ydata()[1]] == [0.25]
