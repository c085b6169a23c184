"""Metrics of the paper's evaluation: DCI (Tables 1, 2, 5), MIG, and Frechet distances.

Each metric is pure maths on codes; :func:`~lvae.metrics.sampling.sample_codes` draws the
codes from a dataset, a representation function ``represent(uint8 images) -> (n, d) codes``
and an explicit ``numpy.random.RandomState`` (the layout of disentanglement_lib), and
:func:`lvae.evaluation.disentanglement_metrics` puts the two together for a run, the one
path every DCI and MIG number takes. Metrics never see a model.

* :mod:`~lvae.metrics.dci`: DCI exactly as disentanglement_lib, every factor subset a
  dataset declares (Table 1's with and without colour) from one set of fits;
* :mod:`~lvae.metrics.mig`: MIG with disentanglement_lib's 20-bin discretisation;
* :mod:`~lvae.metrics.frechet`: the Frechet distance of two Gaussians;
* :mod:`~lvae.metrics.inception`: the FID Inception-v3 in plain torch (weights by path);
* :mod:`~lvae.metrics.factor_net`: the offline stand-in "FD-factors";
* :mod:`~lvae.metrics.quality`: :func:`fid_or_fd` picks one and names it.
"""

from lvae.metrics.dci import (
    completeness,
    dci_from_codes,
    disentanglement,
    fit_importance,
    scores_on_factors,
)
from lvae.metrics.factor_net import fd_factors
from lvae.metrics.frechet import frechet_distance, frechet_distance_from_features, gaussian_stats
from lvae.metrics.mig import mig_from_codes
from lvae.metrics.quality import FrechetResult, fid, fid_or_fd
from lvae.metrics.sampling import RepresentationFunction, sample_codes

__all__ = [
    "FrechetResult",
    "RepresentationFunction",
    "completeness",
    "dci_from_codes",
    "disentanglement",
    "fd_factors",
    "fid",
    "fid_or_fd",
    "fit_importance",
    "frechet_distance",
    "frechet_distance_from_features",
    "gaussian_stats",
    "mig_from_codes",
    "sample_codes",
    "scores_on_factors",
]
