"""The paper's own numbers (Tables 1, 2 and 5), transcribed exactly as printed.

Kept as data, never recomputed, so a page can put them beside ours. Keys are the grid's
configuration parameters (:class:`lvae.report.grid.Experiment`), so a paper row finds our runs
without matching on labels. Metric names are the columns of ``eval.json`` flattened by
:func:`lvae.report.results.collect` (``dci_color.disentanglement``, ..., ``fid``).

Table 1 has no row for alpha = 1e2: the text says "the loss diverged during training at
alpha = 1e2", which :data:`TABLE1_DIVERGED` records so the comparison shows "diverged".
Table 2 reports the DCI disentanglement per sub-dataset only.
"""

from __future__ import annotations

from typing import Any

#: Column order of Tables 1 and 5: DCI with colour (all six factors), DCI without colour
#: (the three hue factors dropped), then FID (Keras Inception-v3, 50,000 images per side).
METRICS_T1 = (
    "dci_color.disentanglement", "dci_color.completeness", "dci_color.informativeness",
    "dci_nocolor.disentanglement", "dci_nocolor.completeness", "dci_nocolor.informativeness",
    "fid",
)

#: Column headers as printed.
HEADERS_T1 = ("DCI w/ Color Disent.", "DCI w/ Color Compl.", "DCI w/ Color Inform.",
              "DCI w/o Color Disent.", "DCI w/o Color Compl.", "DCI w/o Color Inform.", "FID")


def _row(label: str, dataset: str, alpha: float, beta: float, neighborhood: str,
         values: tuple[float, ...], metrics: tuple[str, ...] = METRICS_T1) -> dict[str, Any]:
    assert len(values) == len(metrics), label
    return {"label": label, "dataset": dataset, "alpha": alpha, "beta": beta,
            "neighborhood": neighborhood, "values": dict(zip(metrics, values, strict=True))}


#: Table 1: 3D Shapes, synthetic neighbourhood; Local VAE over alpha, beta-VAE at alpha = 0.
TABLE1: list[dict[str, Any]] = [
    _row("alpha = 0 (Vanilla)", "shapes3d", 0.0, 1.0, "synthetic",
         (0.246, 0.204, 0.703, 0.150, 0.096, 0.547, 134.786)),
    _row("alpha = 1e-3", "shapes3d", 1e-3, 1.0, "synthetic",
         (0.491, 0.407, 0.814, 0.390, 0.305, 0.686, 107.636)),
    _row("alpha = 1e-2", "shapes3d", 1e-2, 1.0, "synthetic",
         (0.449, 0.385, 0.797, 0.173, 0.132, 0.635, 123.288)),
    _row("alpha = 1e-1", "shapes3d", 1e-1, 1.0, "synthetic",
         (0.457, 0.432, 0.626, 0.945, 0.796, 0.996, 49.364)),
    _row("alpha = 1", "shapes3d", 1.0, 1.0, "synthetic",
         (0.424, 0.406, 0.594, 0.977, 0.800, 0.999, 43.194)),
    _row("alpha = 1e1", "shapes3d", 10.0, 1.0, "synthetic",
         (0.393, 0.370, 0.587, 0.871, 0.733, 0.998, 59.555)),
    _row("beta = 2", "shapes3d", 0.0, 2.0, "synthetic",
         (0.367, 0.292, 0.776, 0.222, 0.215, 0.630, 96.279)),
    _row("beta = 4", "shapes3d", 0.0, 4.0, "synthetic",
         (0.588, 0.499, 0.906, 0.384, 0.337, 0.817, 96.612)),
    _row("beta = 8", "shapes3d", 0.0, 8.0, "synthetic",
         (0.636, 0.584, 0.967, 0.601, 0.547, 0.936, 86.856)),
    _row("beta = 16", "shapes3d", 0.0, 16.0, "synthetic",
         (0.649, 0.580, 0.941, 0.690, 0.473, 0.883, 86.237)),
]

#: Section 5.1: "the loss diverged during training at alpha = 1e2" (no numbers printed).
TABLE1_DIVERGED: list[dict[str, Any]] = [
    {"label": "alpha = 1e2", "dataset": "shapes3d", "alpha": 100.0, "beta": 1.0,
     "neighborhood": "synthetic", "values": {}, "status": "diverged"},
]

#: Table 2 metrics: DCI disentanglement computed on each sub-dataset's images separately.
METRICS_T2 = ("dci_smallnorb.disentanglement", "dci_cars3d.disentanglement")
HEADERS_T2 = ("NORB Disentanglement", "Cars Disentanglement")

#: Table 2: CarsNORB (Cars3D + SmallNORB), k-NN neighbourhood on the latent space.
TABLE2: list[dict[str, Any]] = [
    _row("alpha = 0 (Vanilla)", "carsnorb", 0.0, 1.0, "latent_knn", (0.265, 0.079), METRICS_T2),
    _row("alpha = 1e-2", "carsnorb", 1e-2, 1.0, "latent_knn", (0.282, 0.165), METRICS_T2),
    _row("alpha = 1e-1", "carsnorb", 1e-1, 1.0, "latent_knn", (0.264, 0.111), METRICS_T2),
    _row("alpha = 1", "carsnorb", 1.0, 1.0, "latent_knn", (0.255, 0.080), METRICS_T2),
]

#: Table 5 (Appendix D): 3D Shapes, alpha = 1, neighbourhood construction compared. The
#: "Sampling" and "Vanilla VAE" rows repeat Table 1's alpha = 1 and alpha = 0 rows exactly.
TABLE5: list[dict[str, Any]] = [
    _row("Sampling", "shapes3d", 1.0, 1.0, "synthetic",
         (0.424, 0.406, 0.594, 0.977, 0.800, 0.999, 43.194)),
    _row("l2 on input space", "shapes3d", 1.0, 1.0, "input_l2",
         (0.397, 0.342, 0.582, 0.676, 0.520, 0.813, 49.187)),
    _row("Vanilla VAE", "shapes3d", 0.0, 1.0, "synthetic",
         (0.246, 0.204, 0.703, 0.150, 0.096, 0.547, 134.786)),
]

TABLES: dict[str, dict[str, Any]] = {
    "table1": {"rows": TABLE1[:6] + TABLE1_DIVERGED + TABLE1[6:], "metrics": METRICS_T1,
               "headers": HEADERS_T1,
               "caption": "Table 1: 3D Shapes, Local VAE over alpha and beta-VAE baselines"},
    "table2": {"rows": TABLE2, "metrics": METRICS_T2, "headers": HEADERS_T2,
               "caption": "Table 2: CarsNORB, DCI disentanglement per sub-dataset"},
    "table5": {"rows": TABLE5, "metrics": METRICS_T1, "headers": HEADERS_T1,
               "caption": "Table 5: 3D Shapes, alpha = 1, neighbourhood construction"},
}


#: The keys of a paper row that name its configuration: what :func:`lvae.report.results.select`
#: takes to find our runs of the row.
CONFIG_KEYS = ("dataset", "alpha", "beta", "neighborhood")


def configuration(row: dict[str, Any]) -> dict[str, Any]:
    """A paper row's configuration (:data:`CONFIG_KEYS`): ``select(df, **configuration(row))``
    gives our runs of the row."""
    return {k: row[k] for k in CONFIG_KEYS}


def table(name: str) -> dict[str, Any]:
    """One of ``table1``, ``table2``, ``table5``: rows, metric keys, printed headers."""
    if name not in TABLES:
        raise ValueError(f"table must be one of {sorted(TABLES)}, got {name!r}")
    return TABLES[name]
