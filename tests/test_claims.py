"""Claims judged by intervals: Welch's interval against scipy, verdict rules, row selection."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from lvae.config import PROFILES
from lvae.report import claims
from lvae.report.results import noise_sources

D = "dci_nocolor.disentanglement"

A1, VANILLA = claims.cfg(1.0), claims.cfg(0.0)  # claims name paper rows by configuration


def test_welch_interval_matches_scipy_and_hand_values():
    a, b = [0.9, 0.95, 0.99, 0.93], [0.1, 0.3, 0.2]
    d, lo, hi = claims.welch_interval(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-12)
    # by hand: b constant, so nu = n_a - 1 = 2 and half = t_{0.975,2} * s_a / sqrt(3)
    d, lo, hi = claims.welch_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)
    assert (d, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-9)


def test_no_interval_below_two_seeds():
    d, lo, hi = claims.welch_interval([0.5], [0.1, 0.2])
    assert d == pytest.approx(0.35) and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in claims.welch_interval([], [0.1]))
    assert claims.verdict(math.nan, math.nan) == claims.UNDECIDED


def test_verdicts_and_their_combination():
    assert claims.verdict(0.1, 0.3) == "supports"
    assert claims.verdict(-0.3, -0.1) == "contradicts"
    assert claims.verdict(-0.1, 0.3) == "cannot decide"
    assert claims.verdict(-0.3, -0.1, better="lower") == "supports"  # FID: lower is better
    assert claims.verdict(0.1, 0.3, better="lower") == "contradicts"
    with pytest.raises(ValueError, match="better must be"):
        claims.verdict(0, 1, better="bigger")
    assert claims.combine(["supports", "supports"]) == "supports"
    assert claims.combine(["supports", "cannot decide"]) == "cannot decide"
    assert claims.combine(["supports", "contradicts", "cannot decide"]) == "contradicts"
    assert claims.combine([]) == "cannot decide"


def _frame(rows: list[tuple]) -> pd.DataFrame:
    out = []
    for alpha, beta, seed, status, value, gbt_sd in rows:
        out.append({"dataset": "shapes3d", "alpha": alpha, "beta": beta,
                    "neighborhood": "synthetic", "reduction": "pixel_mean", "seed": seed,
                    "profile": "study", "source": "build", "status": status,
                    "steps_done": 20_000 if status == "completed" else 700,
                    "config_id": f"a{alpha}-b{beta}", D: value, f"gbt_sd.{D}": gbt_sd})
    return pd.DataFrame(out)


@pytest.fixture
def df() -> pd.DataFrame:
    return _frame([
        (1.0, 1.0, 0, "completed", 0.90, 0.001), (1.0, 1.0, 1, "completed", 0.80, 0.003),
        (1.0, 1.0, 2, "completed", 0.85, 0.002),
        (0.0, 1.0, 0, "completed", 0.10, 0.001), (0.0, 1.0, 1, "completed", 0.20, 0.001),
        (0.0, 1.0, 2, "completed", 0.15, 0.001),
        (0.0, 4.0, 0, "completed", 0.80, 0.0), (0.0, 4.0, 1, "completed", 0.95, 0.0),
        (100.0, 1.0, 0, "diverged", math.nan, math.nan),
        (100.0, 1.0, 1, "diverged", math.nan, math.nan),
        (10.0, 1.0, 0, "diverged", math.nan, math.nan),
        (10.0, 1.0, 1, "completed", 0.5, 0.0),
    ])


def test_compare_selects_the_paper_rows_runs(df: pd.DataFrame):
    c = claims.compare(df, "table1", A1, VANILLA, D)
    assert (c.n_a, c.n_b) == (3, 3) and c.diff == pytest.approx(0.70)
    ref = stats.ttest_ind([0.9, 0.8, 0.85], [0.1, 0.2, 0.15],
                          equal_var=False).confidence_interval()
    assert (c.lo, c.hi) == pytest.approx((ref.low, ref.high))
    assert c.verdict == "supports" and c.text().startswith("+0.700 [")
    # the other way round the same interval contradicts
    assert claims.compare(df, "table1", VANILLA, A1, D).verdict == \
        "contradicts"
    # another profile or source: no runs, so nothing can be decided
    other = claims.compare(df, "table1", A1, VANILLA, D,
                           profile="cpu")
    assert other.verdict == "cannot decide" and other.text() == "no runs"


def test_best_of_needs_every_comparison(df: pd.DataFrame):
    v, diffs = claims.best_of(df, "table1", A1, [claims.cfg(0, 4), claims.cfg(0, 8)], D)
    assert [d.n_b for d in diffs] == [2, 0]  # beta = 8 never ran: left out
    assert v == "cannot decide"  # 0.85 vs 0.875, wide interval
    v, _ = claims.best_of(df, "table1", A1, [VANILLA], D)
    assert v == "supports"
    v, _ = claims.best_of(df, "table1", A1, [claims.cfg(0, 16)], D)
    assert v == "cannot decide"  # nothing to compare with


def test_divergence_counts(df: pd.DataFrame):
    assert claims.divergence(df, "table1", claims.cfg(10)) == ("cannot decide",
                                                             "1 of 2 runs diverged")
    # none diverged within 20k steps: the paper's runs were 300k long, so no contradiction
    assert claims.divergence(df, "table1", A1) == (
        "cannot decide", "0 of 3 runs diverged within 20,000 steps (paper: 300,000)")
    assert claims.divergence(df, "table1", A1, min_steps=20_000) == (
        "contradicts", "0 of 3 runs diverged")
    long = df.assign(steps_done=300_000)
    assert claims.divergence(long, "table1", A1)[0] == "contradicts"
    assert claims.divergence(df, "table1", claims.cfg(1e-3)) == ("cannot decide", "no runs")


def test_no_verdict_from_a_budget_that_cannot_decide(df: pd.DataFrame):
    """The same numbers that support a claim on the study are no evidence on quick."""
    assert claims.budget_gate(df, "study") is None
    quick = df.assign(profile="quick")
    gate = claims.budget_gate(quick, None)
    assert gate is not None and gate.budget == "quick, 100 steps"
    assert str(gate) == f"quick, 100 steps: {PROFILES['quick'].judges_why}"
    for key in [c.key for c in claims.CLAIMS]:
        j = claims.judge(quick, key, profile="quick")
        assert str(j.verdict) == claims.NOT_TESTED, key
        assert j.line.startswith("not tested at this budget: quick, 100 steps")
    j = claims.judge(quick, "nocolor", profile="quick")
    assert j.ours == "0.850 vs 0.150"  # the numbers are still shown
    assert set(claims.judge_all(quick, profile="quick").verdict) == {claims.NOT_TESTED}
    assert str(claims.judge(df.assign(profile="smoke"), "diverge").verdict) == claims.NOT_TESTED
    assert "budget unknown" in str(claims.budget_gate(df, "nope"))


def test_noise_sources_sets_training_seeds_beside_gbt_seeds(df: pd.DataFrame):
    ns = noise_sources(df, [D]).set_index("config_id")
    a1 = ns.loc["a1.0-b1.0"]
    assert a1.sd_seeds == pytest.approx(0.05) and a1.n_seeds == 3
    assert a1.sd_gbt == pytest.approx(0.002) and a1.dominant == "training seeds"
    one = ns.loc["a10.0-b1.0"]  # one completed seed: no spread over seeds
    assert math.isnan(one.sd_seeds) and one.dominant == "—"
    assert noise_sources(df).metric.unique().tolist() == [D]  # found from gbt_sd.* columns
    alphas = noise_sources(df, [D]).alpha.astype(float).tolist()
    assert alphas == sorted(alphas)  # numeric order (as strings, a10 would come before a2)


def test_judging_the_catalogue(df: pd.DataFrame):
    j = claims.judge(df, "nocolor")
    assert str(j.verdict) == "supports" and j.ours == "0.850 vs 0.150"
    assert j.detail.startswith("difference +0.700 [") and j.line.startswith("supports: ")
    assert (str(claims.judge(df, "diverge").verdict), claims.judge(df, "diverge").ours) == \
        ("supports", "2 of 2 runs diverged, at steps 700, 700")
    # on the study (20k steps) other verdicts name their budget; a divergence seen does not
    assert str(claims.judge(df, "nocolor", profile="study").verdict) == "supports at 20,000 steps"
    assert str(claims.judge(df, "diverge", profile="study").verdict) == "supports"
    best = claims.judge(df, "best_alpha")
    assert best.ours == "α = 1" and str(best.verdict) == "cannot decide"  # 1e1 has one seed
    beta = claims.judge(df, "beta")
    assert beta.ours == "0.850 vs ≤ 0.875" and str(beta.verdict) == "cannot decide"
    t2 = claims.judge(df, "t2")  # no CarsNORB runs at all
    assert str(t2.verdict) == "cannot decide" and not t2.tested
    assert t2.line == "cannot decide: no runs of Table 2's configurations (CarsNORB)"
    table = claims.judge_all(df)
    assert table.key.tolist() == [c.key for c in claims.CLAIMS]
    assert set(table.verdict) <= {"supports", "contradicts", "cannot decide"}
    with pytest.raises(ValueError, match="no claim 'nope'"):
        claims.judge(df, "nope")


def test_a_verdict_names_the_budget_it_holds_at(df: pd.DataFrame):
    """A study verdict is about 20k steps, not the paper's 300k: the cell says so."""
    study = claims.judge(df, "nocolor", profile="study")
    assert str(study.verdict) == "supports at 20,000 steps"
    assert (study.verdict.value, study.verdict.scope) == ("supports", "at 20,000 steps")
    assert study.line.startswith("supports at 20,000 steps: difference +0.700 [")
    paper = claims.judge(df.assign(profile="paper"), "nocolor", profile="paper")
    assert str(paper.verdict) == "supports"  # the paper's own budget needs no scope
    assert str(claims.judge(df, "best_alpha", profile="study").verdict) == "cannot decide"
    quick = claims.judge(df.assign(profile="quick"), "nocolor", profile="quick")
    assert PROFILES["quick"].judges_why in quick.detail  # the reason, not only the budget


def test_a_claim_without_runs_says_which_are_missing(df: pd.DataFrame):
    j = claims.judge(df[df["alpha"] != 0.0], "nocolor")
    assert (str(j.verdict), j.detail) == ("cannot decide", "no runs of alpha = 0 (Vanilla)")
    assert not j.tested


def test_the_fid_claim_names_the_distance_it_measured(df: pd.DataFrame):
    fd = df.assign(**{"FD-factors": [40.0 + i for i in range(len(df))]})
    assert claims.judge(fd, "fid").ours.startswith("FD-factors, not FID: ")
    real = df.assign(fid=[40.0 + i for i in range(len(df))])
    assert claims.judge(real, "fid").ours == "41.0 vs 44.0"  # rows 0-2 vs 3-5; FID itself: no label


def test_the_paper_side_comes_from_the_transcribed_tables():
    """Each claim's paper text is computed from lvae.report.paper, and reads as the paper prints
    it (typed here from the paper's Tables 1, 2 and 5 and section 5.1)."""
    want = {"nocolor": "0.977 vs 0.150", "color": "0.424 vs 0.246", "best_alpha": "α = 1",
            "diverge": "diverged", "beta": "0.977 vs ≤ 0.690", "fid": "43.2 vs 134.8",
            "t2": "α = 1e-2 for both", "t5": "0.977 vs 0.676"}
    assert {c.key: c.paper_text for c in claims.CLAIMS} == want


def test_a_verdict_is_a_value_and_a_scope():
    v = claims.Verdict(claims.SUPPORTS, "at 20,000 steps")
    assert str(v) == "supports at 20,000 steps" and str(claims.Verdict("cannot decide")) == \
        "cannot decide"
    assert claims.claim("diverge").scoped is False and claims.claim("nocolor").scoped
    with pytest.raises(ValueError, match="no claim 'nope'"):
        claims.claim("nope")


def test_paper_rows_are_found_by_configuration_not_label():
    assert claims._row("table5", claims.cfg(1.0, neighborhood="input_l2"))["label"] == \
        "l2 on input space"
    assert claims._row("table1", claims.cfg(0.0, 16.0))["label"] == "beta = 16"
    with pytest.raises(ValueError, match="table1 has no row for"):
        claims._row("table1", claims.cfg(0.5))
