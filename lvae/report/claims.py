"""The paper's claims, judged by our intervals: supports, contradicts, or cannot decide.

The paper reports one number per cell, from one run. A claim such as "alpha = 1 is more
disentangled than the vanilla VAE" is a statement about a *difference*, so we judge it by a
95% interval for the difference of the two configurations' means over training seeds
(Welch's t-interval, which does not assume equal variances):

    d = mean_A - mean_B,  se = sqrt(s_A^2 / n_A + s_B^2 / n_B),
    d +/- t_{0.975, nu} se,  nu = se^4 / ((s_A^2/n_A)^2/(n_A-1) + (s_B^2/n_B)^2/(n_B-1))

(Welch-Satterthwaite degrees of freedom; if both spreads are zero the interval is the point
d). The verdict is

``supports``        the whole interval lies on the side the paper claims,
``contradicts``     the whole interval lies on the other side,
``cannot decide``   the interval contains 0, or a side has fewer than 2 seeds (no interval).

A claim made of several comparisons (alpha = 1 beats *every* beta-VAE) supports only if
every comparison does, contradicts if any comparison does, and cannot decide otherwise.
Divergence claims are counts, not intervals: :func:`divergence`.

Each claim is judged on one profile and one source (the build's runs, or imported runs of a
longer profile), never on a mix.

**No verdict from a budget that cannot decide.** A profile declares whether its budget can
test the claims (:attr:`lvae.config.Profile.judges`, with the reason in ``judges_why``).
Runs of a profile that cannot (smoke, quick: 6 and 100 steps, models that have learned nothing)
get the verdict ``not tested at this budget``: their numbers are shown as a demonstration
of the pipeline, never as evidence for or against the paper. Divergence has its own rule:
"0 of n runs diverged" contradicts the paper only for runs at least as long as the paper's
(300k steps), since a run may diverge later than a short budget looks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lvae.config import PROFILES
from lvae.report import paper
from lvae.report.grid import TABLE1_BETAS
from lvae.report.results import resolve_metric, select

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "cannot decide"
NOT_TESTED = "not tested at this budget"
#: Steps a run must have trained without diverging to count against a divergence claim.
PAPER_STEPS = PROFILES["paper"].steps


@dataclass(frozen=True)
class Gate:
    """Why a budget cannot test the paper's claims: the budget in a few words (what a
    verdict cell shows) and the reason (what the detail line adds)."""

    budget: str  # e.g. "quick, 100 steps"
    why: str

    def __str__(self) -> str:
        return f"{self.budget}: {self.why}"


def budget_gate(df: pd.DataFrame, profile: str | None) -> Gate | None:
    """Why the runs of ``profile`` (of every profile in ``df`` when None) cannot test the
    paper's claims; None when their budget can."""
    names = [profile] if profile is not None else sorted(set(df.get("profile", [])))
    for name in names:
        prof = PROFILES.get(str(name))
        if prof is None:
            return Gate(f"profile {name!r}", f"not one of {sorted(PROFILES)}: budget unknown")
        if not prof.judges:
            return Gate(f"{prof.name}, {prof.steps:,} steps", prof.judges_why)
    return None


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its 95% Welch interval and the verdict on "a better"."""

    a: str
    b: str
    metric: str
    better: str  # "higher" or "lower": which direction the paper claims for a over b
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    verdict: str

    @property
    def has_runs(self) -> bool:
        """Both configurations have completed runs, so there is a difference to judge."""
        return bool(self.n_a and self.n_b)

    def text(self, digits: int = 3) -> str:
        """``+0.120 [+0.050, +0.190] (n = 3 vs 3)``, or why there is no interval."""
        if not self.has_runs:
            return "no runs"
        if math.isnan(self.lo):
            return f"{self.diff:+.{digits}f}, no interval (n = {self.n_a} vs {self.n_b})"
        return (f"{self.diff:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}] "
                f"(n = {self.n_a} vs {self.n_b})")


def welch_interval(a: Sequence[float], b: Sequence[float],
                   level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), lo, hi)``: Welch's two-sided interval (module docstring).

    NaN bounds when either side has fewer than 2 values; NaN everything when one is empty.
    """
    x = np.asarray([v for v in a if v is not None and math.isfinite(v)], dtype=float)
    y = np.asarray([v for v in b if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan, math.nan
    d = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return d, math.nan, math.nan
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    nu = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, nu) * se)
    return d, d - half, d + half


def verdict(lo: float, hi: float, better: str = "higher") -> str:
    """Which side of zero the interval ``[lo, hi]`` of ``a - b`` lies on, for a claim that
    ``a`` is ``better`` ("higher" or "lower") than ``b``."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    if math.isnan(lo) or math.isnan(hi):
        return UNDECIDED
    if better == "lower":
        lo, hi = -hi, -lo
    if lo > 0:
        return SUPPORTS
    if hi < 0:
        return CONTRADICTS
    return UNDECIDED


def combine(verdicts: Iterable[str]) -> str:
    """All comparisons support: supports; any contradicts: contradicts; else undecided."""
    vs = list(verdicts)
    if not vs:
        return UNDECIDED
    if CONTRADICTS in vs:
        return CONTRADICTS
    return SUPPORTS if all(v == SUPPORTS for v in vs) else UNDECIDED


#: A configuration as the claims name it: ``alpha``, ``beta``, ``neighborhood`` (the table
#: gives the dataset), and a ``reduction`` where our runs read the paper's alpha under
#: another loss scale; :func:`cfg` makes one.
Config = Mapping[str, Any]


def cfg(alpha: float, beta: float = 1.0, neighborhood: str = "synthetic",
        reduction: str | None = None, row: Config | None = None) -> dict[str, Any]:
    """A configuration: how a claim names the paper row it is about (never by its label).
    ``reduction`` (e.g. ``"sum"``) selects our runs that read the row's alpha under that
    loss scale (a reading of the diagnosis) instead of the study's; ``row`` names the
    paper's row (a :func:`cfg`) where our runs differ from it otherwise (a reading with
    another neighbourhood than the paper's for the dataset): the paper's side of a claim
    comes from the row, ours from the runs.

    A reading of the diagnosis that changes training settings adds three keys of its own
    (:attr:`lvae.report.study.plans.Reading.local`): ``profile`` (its runs' profile, where
    the claim's other configurations are the judged profile's), ``variant`` (its settings'
    hash) and ``note`` (how its name says the settings)."""
    c: dict[str, Any] = {"alpha": float(alpha), "beta": float(beta),
                         "neighborhood": neighborhood}
    if reduction is not None:
        c["reduction"] = reduction
    if row is not None:
        c["row"] = dict(row)
    return c


#: The keys of a configuration that name a paper row (the others select our runs only).
_ROW_KEYS = ("alpha", "beta", "neighborhood")


def _row(table: str, config: Config) -> dict:
    """The paper's row of ``table`` for a configuration (its label is for display only)."""
    rows = paper.table(table)["rows"]
    want = config.get("row", config)
    for r in rows:
        if all(r[k] == want[k] for k in _ROW_KEYS if k in want):
            return r
    raise ValueError(f"{table} has no row for {dict(config)}; rows: "
                     f"{[paper.configuration(r) for r in rows]}")


def _select(df: pd.DataFrame, table: str, config: Config, profile: str | None,
            source: str) -> pd.DataFrame:
    """Our runs of a paper row's configuration (:func:`lvae.report.results.select`), of one
    profile and source."""
    reduction = {"reduction": config["reduction"]} if "reduction" in config else {}
    ours = {k: config[k] for k in _ROW_KEYS if k in config}
    return select(df, **{**paper.configuration(_row(table, config)), **ours}, source=source,
                  profile=config.get("profile", profile), variant=config.get("variant"),
                  **reduction)


def _label(table: str, config: Config) -> str:
    """How a comparison names a configuration: the paper row's label, and the loss scale
    where our runs read its alpha under another one (``"alpha = 1e-1 (summed loss)"``,
    as :func:`lvae.report.grid.config_name` says it)."""
    row = _row(table, config)
    notes = []
    if (red := config.get("reduction")) is not None:
        notes.append("summed loss" if red == "sum" else f"loss {red}")
    if (nb := config.get("neighborhood", row["neighborhood"])) != row["neighborhood"]:
        notes.append(f"{nb} neighbours")
    if config.get("note"):
        notes.append(str(config["note"]))
    return row["label"] + (f" ({', '.join(notes)})" if notes else "")


def values(df: pd.DataFrame, table: str, config: Config, metric: str,
           profile: str | None = None, source: str = "build") -> list[float]:
    """The metric over the completed runs (one per seed) of a configuration."""
    g = _select(df, table, config, profile, source)
    col = resolve_metric(metric, df.columns)
    if col is None:
        return []
    ok = g[g["status"] == "completed"][col].astype(float)
    return [v for v in ok.tolist() if math.isfinite(v)]


def compare(df: pd.DataFrame, table: str, a: Config, b: Config, metric: str,
            better: str = "higher", profile: str | None = None,
            source: str = "build") -> Difference:
    """Configuration ``a`` against ``b`` (:func:`cfg`) of ``table`` on ``metric``, over
    seeds. ``df`` is a :func:`lvae.report.results.collect` frame; the difference names
    the two by the paper's row labels (``"alpha = 1"``, ``"alpha = 0 (Vanilla)"``).
    """
    xa = values(df, table, a, metric, profile, source)
    xb = values(df, table, b, metric, profile, source)
    d, lo, hi = welch_interval(xa, xb)
    return Difference(_label(table, a), _label(table, b), metric, better,
                      len(xa), len(xb),
                      float(np.mean(xa)) if xa else math.nan,
                      float(np.mean(xb)) if xb else math.nan, d, lo, hi,
                      verdict(lo, hi, better))


def best_of(df: pd.DataFrame, table: str, best: Config, others: Sequence[Config], metric: str,
            better: str = "higher", profile: str | None = None,
            source: str = "build") -> tuple[str, list[Difference]]:
    """Does configuration ``best`` beat every one of ``others``? (:func:`combine` of the pairs; rows
    with no completed run are left out, and with none left the claim cannot be decided.)"""
    diffs = [compare(df, table, best, o, metric, better, profile, source) for o in others]
    judged = [d for d in diffs if d.has_runs]
    return (combine(d.verdict for d in judged) if judged else UNDECIDED), diffs


def divergence(df: pd.DataFrame, table: str, config: Config, profile: str | None = None,
               source: str = "build", min_steps: int = PAPER_STEPS) -> tuple[str, str]:
    """The paper says this configuration's training diverged: ``(verdict, "k of n runs
    diverged")``.

    Every run diverged: supports. None did: contradicts only if every run trained at
    least ``min_steps`` (the paper's budget); a shorter run that has not diverged yet may
    still, so that cannot decide. Some did: cannot decide. No runs: cannot decide.
    """
    g = _select(df, table, config, profile, source)
    g = g[g["status"].isin(["completed", "diverged"])]
    n, k = len(g), int((g["status"] == "diverged").sum())
    if n == 0:
        return UNDECIDED, "no runs"
    text = f"{k} of {n} runs diverged"
    if k == n:  # seen at any budget: the step it happened at says how soon
        at = pd.to_numeric(g["steps_done"], errors="coerce").dropna().astype(int).tolist()
        steps = ", ".join(f"{s:,}" for s in sorted(at))
        return SUPPORTS, f"{text}, at step{'s' if len(at) > 1 else ''} {steps}" if at else text
    if k == 0:
        steps = pd.to_numeric(g["steps_done"], errors="coerce").fillna(0)
        if steps.min() >= min_steps:
            return CONTRADICTS, text
        return UNDECIDED, f"{text} within {int(steps.min()):,} steps (paper: {min_steps:,})"
    return UNDECIDED, text


def summary_line(v: str, detail: str) -> str:
    """What the landing page prints in its verdict column."""
    return f"{v}: {detail}"


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Verdict:
    """A verdict as a value (:data:`SUPPORTS`, :data:`CONTRADICTS`, :data:`UNDECIDED`,
    :data:`NOT_TESTED`) and the budget it holds at (``"at 20,000 steps"``; empty for the
    paper's own budget, and for what a budget cannot undo: a divergence seen). Its text is
    what the pages print."""

    value: str
    scope: str = ""

    def __str__(self) -> str:
        return f"{self.value} {self.scope}" if self.scope else self.value


@dataclass(frozen=True)
class Found:
    """What a claim's judge found on the runs: the verdict's value, our numbers (as the
    paper's side puts the paper's), the interval(s) it rests on, the same in a few words,
    and whether any run could be compared at all (``tested``)."""

    value: str
    ours: str
    detail: str
    short: str
    tested: bool


Judge = Callable[[pd.DataFrame, dict[str, Any]], Found]

_D_NOCOLOR = "dci_nocolor.disentanglement"
_A1, _VANILLA = cfg(1.0), cfg(0.0)
_T1_ALPHAS = tuple(cfg(a) for a in (0.0, 1e-3, 1e-2, 1e-1, 10.0))
_BETAS = tuple(cfg(0.0, b) for b in TABLE1_BETAS)
_T2 = tuple(cfg(a, neighborhood="latent_knn") for a in (0.0, 1e-2, 1e-1, 1.0))
_T2_BEST = cfg(1e-2, neighborhood="latent_knn")
_INPUT_L2 = cfg(1.0, neighborhood="input_l2")


def _paper(table: str, config: Config, metric: str) -> float:
    return float(_row(table, config)["values"][metric])


def _paper_pair(table: str, a: Config, b: Config, metric: str, digits: int = 3
                ) -> Callable[[], str]:
    return lambda: f"{_paper(table, a, metric):.{digits}f} vs {_paper(table, b, metric):.{digits}f}"


def _paper_beta(local: Config, betas: Sequence[Config] = _BETAS) -> Callable[[], str]:
    def text() -> str:
        worst = max(_paper("table1", b, _D_NOCOLOR) for b in betas)
        return f"{_paper('table1', local, _D_NOCOLOR):.3f} vs ≤ {worst:.3f}"
    return text


def _paper_best(table: str, rows: Sequence[Config], metrics: Sequence[str]
                ) -> Callable[[], str]:
    """The paper's best row on each metric, as "α = 1" (or "α = 1e-2 for both")."""
    def text() -> str:
        bests = {_row(table, max(rows, key=lambda r: _paper(table, r, m)))["label"]
                 for m in metrics}
        name = ", ".join(sorted("α = " + r.removeprefix("alpha = ").replace(" (Vanilla)", "")
                                for r in bests))
        return name + (" for both" if len(metrics) > 1 and len(bests) == 1 else "")
    return text


def _judge_difference(table: str, a: Config, b: Config, metric: str, better: str = "higher",
                      digits: int = 3) -> Judge:
    """A claim that row ``a`` beats row ``b`` on ``metric``: one Welch interval."""
    def judge(df: pd.DataFrame, kw: dict[str, Any]) -> Found:
        d = compare(df, table, a, b, metric, better, **kw)
        text = _difference(d, digits)
        ours = _means(d, digits)
        if metric == "fid":  # say which Frechet distance: FD-factors is not the paper's FID
            measure = (resolve_metric(metric, df.columns) or "fid").split(".")[-1]
            if measure.lower() != "fid":
                ours = f"{measure}, not FID: {ours}"
        return Found(d.verdict, ours, text, text, d.has_runs)
    return judge


def _judge_best_alpha(df: pd.DataFrame, kw: dict[str, Any]) -> Found:
    v, diffs = best_of(df, "table1", _A1, _T1_ALPHAS, _D_NOCOLOR, **kw)
    best = _best_label(df, "table1", (_A1, *_T1_ALPHAS), _D_NOCOLOR, **kw)
    return Found(v, best, _pairwise(diffs), _tally(diffs), any(d.has_runs for d in diffs))


def _judge_diverge(df: pd.DataFrame, kw: dict[str, Any]) -> Found:
    v, text = divergence(df, "table1", cfg(100.0), **kw)
    return Found(v, text, text, text, text != "no runs")


def _judge_beta(local: Config, betas: Sequence[Config] = _BETAS) -> Judge:
    """A claim that the Local VAE at ``local`` beats every beta-VAE (``betas``) without
    colour."""
    def judge(df: pd.DataFrame, kw: dict[str, Any]) -> Found:
        v, diffs = best_of(df, "table1", local, betas, _D_NOCOLOR, **kw)
        xs = [d.mean_b for d in diffs if d.n_b]
        a1 = diffs[0]
        ours = (f"{'—' if not a1.n_a else f'{a1.mean_a:.3f}'} vs "
                f"{'—' if not xs else f'≤ {max(xs):.3f}'}")
        return Found(v, ours, _pairwise(diffs), _tally(diffs), any(d.has_runs for d in diffs))
    return judge


def _judge_t2(df: pd.DataFrame, kw: dict[str, Any]) -> Found:
    rows = _T2
    others = [r for r in rows if r != _T2_BEST]
    verdicts, details, bests, shorts, tested = [], [], [], [], False
    for metric in paper.table("table2")["metrics"]:
        v, diffs = best_of(df, "table2", _T2_BEST, others, metric, **kw)
        verdicts.append(v)
        tested = tested or any(d.has_runs for d in diffs)
        part = metric.split(".")[0].removeprefix("dci_")
        details.append(f"{part}: {_pairwise(diffs)}")
        shorts.append(f"{part}: {_tally(diffs)}")
        bests.append(f"{part} {_best_label(df, 'table2', rows, metric, **kw)}")
    if not tested:
        shorts = details = ["no runs of Table 2's configurations (CarsNORB)"]
    return Found(combine(verdicts), ", ".join(bests), " | ".join(details), "; ".join(shorts),
                 tested)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper that our runs can test: its words, the paper's side (from
    :mod:`lvae.report.paper`, never typed), and its judge. ``scoped``: whether its verdict holds
    only at the budget it was measured at (False for a divergence: one seen is seen,
    however long the paper trained)."""

    key: str  # glue names on the result pages: claim_<key>_{paper,ours,verdict}
    table: str
    text: str
    paper_side: Callable[[], str]
    judge: Judge
    scoped: bool = True

    @property
    def paper_text(self) -> str:
        return self.paper_side()


def local_claims(local: Config, vanilla: Config = _VANILLA,
                 betas: Sequence[Config] = _BETAS) -> tuple[Claim, ...]:
    """Table 1's claims that set one Local VAE configuration against the baselines (the
    vanilla VAE, every beta-VAE), for ``local``: alpha = 1 in :data:`CLAIMS`; a reading's
    configuration on the Diagnosis page (the paper's row of the same alpha gives the
    paper's side). The baselines are the study's, whatever the reading's loss scale, since
    a constant factor on a vanilla VAE's loss changes nothing Adam does; a reading whose
    settings change what a baseline sees too (another resolution) names its own
    (``vanilla``, ``betas``: configurations with their runs' ``profile`` and ``variant``,
    :attr:`lvae.report.study.plans.Reading.vanilla`)."""
    name = _label("table1", local)
    return (
        Claim("nocolor", "table1", f"Without colour, {name} disentangles better than the "
              "vanilla VAE", _paper_pair("table1", local, vanilla, _D_NOCOLOR),
              _judge_difference("table1", local, vanilla, _D_NOCOLOR)),
        Claim("color", "table1", f"With colour, {name} disentangles better than the vanilla "
              "VAE", _paper_pair("table1", local, vanilla, "dci_color.disentanglement"),
              _judge_difference("table1", local, vanilla, "dci_color.disentanglement")),
        Claim("beta", "table1", f"Without colour, {name} beats every beta-VAE",
              _paper_beta(local, betas), _judge_beta(local, betas)),
        Claim("fid", "table1", f"Generations are better (lower FID) at {name} than at 0",
              _paper_pair("table1", local, vanilla, "fid", 1),
              _judge_difference("table1", local, vanilla, "fid", "lower", 1)),
    )


_LOCAL = {c.key: c for c in local_claims(_A1)}

#: Every quantitative claim the landing page judges, in its order.
CLAIMS: tuple[Claim, ...] = (
    _LOCAL["nocolor"],
    _LOCAL["color"],
    Claim("best_alpha", "table1", "DCI without colour peaks at alpha = 1",
          _paper_best("table1", (_A1, *_T1_ALPHAS), (_D_NOCOLOR,)), _judge_best_alpha),
    Claim("diverge", "table1", "Training diverges at alpha = 1e2", lambda: "diverged",
          _judge_diverge, scoped=False),
    _LOCAL["beta"],
    _LOCAL["fid"],
    Claim("t2", "table2", "On CarsNORB, disentanglement peaks at alpha = 1e-2 on both "
          "sub-datasets", _paper_best("table2", _T2, paper.METRICS_T2), _judge_t2),
    Claim("t5", "table5", "Synthetic neighbourhoods beat input-space l2 ones (DCI "
          "without colour)", _paper_pair("table5", _A1, _INPUT_L2, _D_NOCOLOR),
          _judge_difference("table5", _A1, _INPUT_L2, _D_NOCOLOR)),
)


@dataclass(frozen=True)
class Judgement:
    """A claim judged on one profile and source: verdict, our numbers, the interval(s)."""

    claim: Claim
    verdict: Verdict
    ours: str  # our numbers, as the paper_text puts the paper's
    detail: str  # the interval(s) the verdict rests on
    short: str = ""  # the detail in a few words, for the landing page's table
    tested: bool = True  # whether any run could be compared (False: "no runs of ...")

    @property
    def line(self) -> str:
        return summary_line(str(self.verdict), self.short or self.detail)


def _means(d: Difference, digits: int = 3) -> str:
    def one(m: float, n: int) -> str:
        return "—" if n == 0 else f"{m:.{digits}f}"

    return f"{one(d.mean_a, d.n_a)} vs {one(d.mean_b, d.n_b)}"


def _pairwise(diffs: Sequence[Difference]) -> str:
    parts = [f"vs {d.b}: {d.text()}" for d in diffs if d.has_runs]
    return "; ".join(parts) or "no runs to compare"


def _difference(d: Difference, digits: int = 3) -> str:
    if not d.has_runs:
        missing = [lab for lab, n in ((d.a, d.n_a), (d.b, d.n_b)) if not n]
        return "no runs of " + " and ".join(missing)
    return f"difference {d.text(digits)}"


def _tally(diffs: Sequence[Difference]) -> str:
    """``"3 of 5 comparisons support, 1 contradicts"`` over the comparisons with runs."""
    judged = [d for d in diffs if d.has_runs]
    if not judged:
        return "no runs to compare"
    sup = sum(d.verdict == SUPPORTS for d in judged)
    con = sum(d.verdict == CONTRADICTS for d in judged)
    text = (f"{sup} of {len(judged)} comparison{'s' if len(judged) > 1 else ''} "
            f"support{'s' if len(judged) == 1 else ''}")
    return text + (f", {con} contradict{'s' if con == 1 else ''}" if con else "")


def claim(key: str, claims: Sequence[Claim] = CLAIMS) -> Claim:
    """The claim ``key`` of ``claims`` (an error naming the keys if none is)."""
    by_key = {c.key: c for c in claims}
    if key not in by_key:
        raise ValueError(f"no claim {key!r}; claims: {sorted(by_key)}")
    return by_key[key]


def judge(df: pd.DataFrame, key: str, profile: str | None = None,
          source: str = "build", claims: Sequence[Claim] = CLAIMS) -> Judgement:
    """Judge the claim ``key`` of ``claims`` on the runs of ``df`` (module docstring)."""
    c = claim(key, claims)
    f = c.judge(df, {"profile": profile, "source": source})
    gate = budget_gate(df, profile)
    if gate is not None:
        return Judgement(c, Verdict(NOT_TESTED), f.ours, f"{f.detail} (not evidence: {gate})",
                         f"{gate.budget}; the numbers demonstrate the pipeline", f.tested)
    # a verdict holds at the budget it was measured at: say which, where it is shorter
    # than the paper's (a claim about 300k steps may still hold where 20k cannot see it)
    scope = _scope(profile) if c.scoped and f.value in (SUPPORTS, CONTRADICTS) else ""
    return Judgement(c, Verdict(f.value, scope), f.ours, f.detail, f.short, f.tested)


def _scope(profile: str | None) -> str:
    """``"at 20,000 steps"`` for a judging profile shorter than the paper's budget, else
    ``""`` (the paper's own budget, or a mix of profiles)."""
    prof = PROFILES.get(str(profile)) if profile is not None else None
    if prof is None or prof.steps >= PAPER_STEPS:
        return ""
    return f"at {prof.steps:,} steps"


def _best_label(df: pd.DataFrame, table: str, rows: Sequence[Config], metric: str,
                profile: str | None, source: str) -> str:
    """The configuration with the highest mean (its alpha, as the paper names it), or "—"."""
    means = {_row(table, r)["label"]: np.mean(v) for r in rows
             if (v := values(df, table, r, metric, profile, source))}
    if len(means) < 2:
        return "—"
    best = max(means, key=means.__getitem__)
    return "α = " + best.removeprefix("alpha = ").replace(" (Vanilla)", "")


def judge_all(df: pd.DataFrame, profile: str | None = None, source: str = "build",
              table: str | None = None, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """The claims of ``claims`` (those of ``table`` only, if given) judged: one row
    each (key, table, claim, paper, ours, verdict, detail, line: the landing page's
    verdict text)."""
    rows = []
    for c in claims:
        if table is not None and c.table != table:
            continue
        j = judge(df, c.key, profile, source, claims)
        rows.append({"key": c.key, "table": c.table, "claim": c.text,
                     "paper": c.paper_text, "ours": j.ours, "verdict": str(j.verdict),
                     "value": j.verdict.value, "scope": j.verdict.scope, "tested": j.tested,
                     "detail": j.detail, "line": j.line})
    return pd.DataFrame(rows, columns=["key", "table", "claim", "paper", "ours", "verdict",
                                       "value", "scope", "tested", "detail", "line"])


def glue_claims(df: pd.DataFrame, table: str, profile: str | None = None,
                source: str = "build") -> pd.DataFrame:
    """On a result page: judge the claims of ``table``, glue ``claim_<key>_paper``,
    ``_ours`` and ``_verdict`` for the landing page (MyST-NB glue), and return the judged
    rows for the page to show in full (claim, paper, ours, verdict, what it rests on)."""
    from myst_nb import glue

    judged = judge_all(df, profile, source, table)
    for r in judged.itertuples(index=False):
        glue(f"claim_{r.key}_paper", r.paper, display=False)
        glue(f"claim_{r.key}_ours", r.ours, display=False)
        glue(f"claim_{r.key}_verdict", r.line, display=False)
    shown = judged.rename(columns={"detail": "what it rests on"})
    return shown[["claim", "paper", "ours", "verdict", "what it rests on"]]
