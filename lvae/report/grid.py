"""The experiments behind each table and figure of the paper, with stable run ids.

One :class:`Experiment` is one training run (one seed). Several tables share runs: Table 5's
synthetic-neighbourhood row *is* Table 1's alpha = 1 run and its vanilla row *is* Table 1's
alpha = 0 run, and figures 2-4 read Table 1's runs. :func:`experiments` therefore merges
experiments by id, so nothing is trained twice, and each experiment remembers every table
or figure it serves (``tables``), which ``--only`` and :mod:`lvae.report.results` select on.

What a profile changes (steps, resolution, pool, evaluation sizes) is not part of the id:
runs of different profiles live in different folders (``<out>/<profile>/<run_id>``). Two
things outside the grid are, so that runs which differ in them never share a folder or get
averaged together: the real files a run trained on (``-d<hash>`` of ``data_path``; the
procedural twin has none) and, for a run whose settings are not its profile's (label
``custom``, :func:`lvae.report.params.experiment_config`), a hash of those settings (``-c<hash>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from lvae.config import TrainConfig
from lvae.config import profile as get_profile

#: Every selectable name, in the order the paper presents them.
TABLES = ("table1", "table2", "table5", "fig2", "fig3", "fig4")

#: alpha values of Table 1's Local VAE rows; 1e2 is not a row: the paper says it diverged.
TABLE1_ALPHAS = (0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
TABLE1_BETAS = (2.0, 4.0, 8.0, 16.0)  # beta-VAE rows, all at alpha = 0
TABLE2_ALPHAS = (0.0, 1e-2, 1e-1, 1.0)
FIG2_ALPHAS = (0.0, 1e-3, 1.0)  # Figure 2 panels (a), (b), (c)


def format_alpha(alpha: float) -> str:
    """Shortest exact scientific form, ``1e-01`` for 0.1, ``2.5e+00`` for 2.5, ``0e+00`` for 0.

    Exact (numpy's shortest round-trip digits), so two different alphas never share an id.
    """
    s = np.format_float_scientific(float(alpha), unique=True, exp_digits=2, trim="-")
    return s.replace(".e", "e")


def data_tag(data_path: str) -> str:
    """Eight hex digits naming the real files a run read (sha256 of the path as the config
    stores it): a real-data run and its twin-data sibling must never share a folder."""
    return hashlib.sha256(data_path.encode()).hexdigest()[:8]


def config_name(alpha: float, beta: float = 1.0, neighborhood: str | None = "synthetic",
                ascii: bool = False, reduction: str | None = None) -> str:
    """The one name of a configuration: ``vanilla``, ``α=1e-3``, ``β=4``, ``α=1 (input_l2)``
    (with ``ascii``: ``alpha=0.001``, ``beta=4``, what a reader types; a beta-VAE with an
    inner step: ``α=1,β=4``), and ``α=0.1 (summed loss)`` for a Local VAE trained on the
    loss summed over pixels (the diagnosis's reading; its alpha means something else).
    Figures, tables, model cards and :func:`lvae.load_shipped` all name configurations by
    it."""
    a, b = float(alpha), float(beta)
    al, be = ("alpha", "beta") if ascii else ("α", "β")
    parts = ([f"{al}={a:g}"] if a != 0 else []) + ([f"{be}={b:g}"] if b != 1 else [])
    name = ",".join(parts) or "vanilla"
    nb = neighborhood or "synthetic"
    name += f" ({nb})" if a != 0 and nb != "synthetic" else ""
    summed = a != 0 and isinstance(reduction, str) and reduction != TrainConfig.reduction
    return name + (f" ({'summed' if reduction == 'sum' else reduction} loss)" if summed else "")


def format_number(x: float) -> str:
    """``2`` for 2.0, ``0.5`` for 0.5: integers without a point, others by shortest repr."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


@dataclass(frozen=True)
class Experiment:
    """One training run of the grid: what is compared (not the budget, which is the profile)."""

    dataset: str
    alpha: float
    beta: float = 1.0
    neighborhood: str = "synthetic"
    seed: int = 0
    tables: tuple[str, ...] = ()
    reduction: str | None = None  # None: TrainConfig's default; set only by special runs
    paper_status: str = "completed"  # "diverged" where the paper reports divergence
    data_path: str | None = None  # None: the procedural twin; else part of the id (-d...)
    variant: str | None = None  # a custom run's settings hash (-c...); None for the grid

    @property
    def run_id(self) -> str:
        """Stable folder name, e.g. ``shapes3d-a1e-01-b1-synthetic-s0``; ``-r<reduction>``,
        ``-d<data_tag>`` and ``-c<variant>`` follow for runs that have them."""
        rid = (f"{self.dataset}-a{format_alpha(self.alpha)}-b{format_number(self.beta)}-"
               f"{self.neighborhood}-s{self.seed}")
        if self.reduction is not None:
            rid += f"-r{self.reduction}"
        if self.data_path is not None:
            rid += f"-d{data_tag(self.data_path)}"
        if self.variant is not None:
            rid += f"-c{self.variant}"
        return rid

    @property
    def config_id(self) -> str:
        """The run id without the seed: the key seeds are averaged over."""
        return self.run_id.replace(f"-s{self.seed}", "", 1)

    def parameters(self, profile: str) -> dict[str, object]:
        """The experiment notebook's parameters for this run (budget from ``profile``)."""
        p: dict[str, object] = {"dataset": self.dataset, "alpha": float(self.alpha),
                                "beta": float(self.beta), "neighborhood": self.neighborhood,
                                "seed": self.seed, "profile": profile}
        if self.reduction is not None:
            p["reduction"] = self.reduction
        if self.data_path is not None:
            p["data_path"] = self.data_path
        return p


def _base() -> list[Experiment]:
    """Seed-0 experiments of every table, before merging shared runs."""
    out: list[Experiment] = []
    for a in TABLE1_ALPHAS:
        tabs = ["table1"]
        if a in (0.0, 1.0):
            tabs.append("table5")  # vanilla and synthetic rows reuse Table 1's runs
        if a in FIG2_ALPHAS:
            tabs.append("fig2")
        if a == 1.0:
            tabs += ["fig3", "fig4"]
        out.append(Experiment("shapes3d", a, tables=tuple(tabs),
                              paper_status="diverged" if a == 100.0 else "completed"))
    out += [Experiment("shapes3d", 0.0, beta=b, tables=("table1",)) for b in TABLE1_BETAS]
    out += [Experiment("carsnorb", a, neighborhood="latent_knn", tables=("table2",))
            for a in TABLE2_ALPHAS]
    out.append(Experiment("shapes3d", 1.0, neighborhood="input_l2", tables=("table5",)))
    return out


def _merge(exps: Iterable[Experiment]) -> list[Experiment]:
    by_id: dict[str, Experiment] = {}
    for e in exps:
        if e.run_id in by_id:
            old = by_id[e.run_id]
            tabs = tuple(t for t in TABLES if t in set(old.tables) | set(e.tables))
            by_id[e.run_id] = replace(old, tables=tabs)
        else:
            by_id[e.run_id] = e
    return list(by_id.values())


def parse_only(only: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"table1,table5"`` -> ``("table1", "table5")``; unknown names are an error."""
    if only is None:
        return None
    names = [s.strip() for s in (only.split(",") if isinstance(only, str) else only)]
    names = [s for s in names if s]
    bad = sorted(set(names) - set(TABLES))
    if bad or not names:
        raise ValueError(f"--only must name some of {', '.join(TABLES)}, got {bad or only!r}")
    return tuple(names)


def experiments(only: str | Iterable[str] | None = None, seeds: int = 1) -> list[Experiment]:
    """Every run of the selected tables/figures for seeds 0..seeds-1, each run once.

    >>> [e.run_id for e in experiments("fig4")]
    ['shapes3d-a1e+00-b1-synthetic-s0']
    """
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    sel = parse_only(only)
    base = [e for e in _merge(_base()) if sel is None or set(e.tables) & set(sel)]
    return [replace(e, seed=s) for e in base for s in range(seeds)]


def default_seeds(profile: str) -> int:
    """The profile's number of seeds per configuration (``PROFILES[...].seeds``)."""
    return get_profile(profile).seeds
