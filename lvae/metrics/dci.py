"""DCI: Disentanglement, Completeness, Informativeness (Eastwood & Williams, 2018).

Computed exactly as disentanglement_lib (``evaluation/metrics/dci.py``) does in the study of
Locatello et al. (2019), whose settings the paper follows (section 5.1, Appendix B: "gradient
boosted trees from Scikit-learn with the default setting"):

* codes are the encoder means of ``num_train = 10,000`` training and ``num_test = 5,000`` test
  points, drawn with one ``RandomState`` (test after train, :mod:`lvae.metrics.sampling`);
* for every factor ``j`` one ``GradientBoostingClassifier()`` with all defaults is fit on the
  codes; the importance matrix is ``R[:, j] = |feature_importances_|`` (codes x factors);
* **D** = sum_i rho_i (1 - H_K(P_i.)), P_i. = row i of ``R + 1e-11`` normalised over the K
  factors, rho_i = (row sum i) / (sum of R); **C** is the same over columns with base = the
  number of codes; **I** is the mean over factors of the classifiers' test accuracy
  (disentanglement_lib calls it "informativeness_test"; train accuracy is reported too).

Two ways to run the per-factor fits (a GBT breaks split ties with its ``random_state``, so
the importances depend on it at the ~1e-3 level):

``"parallel"`` (default)
    factor ``j``'s classifier gets its own seed, ``SeedSequence(seed).spawn(K)[j]``, and the K
    fits run in parallel with joblib. Results do not depend on ``n_jobs``.
``"sequential_shared_rng"``
    one ``RandomState(seed)`` is shared by the classifiers, fit one after another in factor
    order. disentanglement_lib passes ``random_state=None``, i.e. numpy's global state, so
    this mode after ``np.random.seed(seed)`` there gives bit-identical D, C and I.

Table 1 reports DCI "w/ color" (all six 3D Shapes factors) and "w/o color" (scale, shape,
orientation). Each factor's classifier depends only on that factor's labels, so both come
from ONE set of fits: :func:`scores_on_factors` restricts the importance matrix to a subset
of columns (and the accuracies to those factors) and recomputes D, C and I on it. Fitting
again on the subset would only redraw the tie-breaking noise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.stats
from joblib import Parallel, delayed
from sklearn.ensemble import GradientBoostingClassifier

FitMode = Literal["parallel", "sequential_shared_rng"]
FIT_MODES: tuple[str, ...] = ("parallel", "sequential_shared_rng")

# --------------------------------------------------------------------------- pure maths


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    """``1 - H(P_i.)`` per code, entropy in base K (number of factors); (codes,)."""
    return 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean of :func:`disentanglement_per_code`.

    An all-zero matrix is weighted uniformly, which gives 0 (as disentanglement_lib).
    """
    per_code = disentanglement_per_code(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    code_importance = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * code_importance))


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    """``1 - H(P_.j)`` per factor, entropy in base (number of codes); (factors,)."""
    return 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean of :func:`completeness_per_factor` (0 for all zeros)."""
    per_factor = completeness_per_factor(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    factor_importance = importance.sum(axis=0) / importance.sum()
    return float(np.sum(per_factor * factor_importance))


# --------------------------------------------------------------------------- the fits


@dataclass(frozen=True)
class ImportanceFit:
    """Result of the per-factor GBT fits: everything D, C and I are computed from."""

    importance: np.ndarray  # (num_codes, num_factors), |feature_importances_|
    train_accuracy: np.ndarray  # (num_factors,)
    test_accuracy: np.ndarray  # (num_factors,)
    mode: str
    seed: int
    fit_seconds: float  # wall time of all fits
    cpu_seconds: np.ndarray | None = None  # (num_factors,) CPU time of each factor's fit


def _fit_factor(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    random_state: int | np.random.RandomState,
) -> tuple[np.ndarray, float, float, float]:
    cpu = time.process_time()
    model = GradientBoostingClassifier(random_state=random_state)
    model.fit(x_train, y_train)
    importance = np.abs(model.feature_importances_)
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    test_acc = float(np.mean(model.predict(x_test) == y_test))
    return importance, train_acc, test_acc, time.process_time() - cpu


def factor_seeds(seed: int, num_factors: int) -> list[int]:
    """The per-factor classifier seeds of the ``"parallel"`` mode."""
    children = np.random.SeedSequence(seed).spawn(num_factors)
    return [int(c.generate_state(1)[0]) for c in children]


def fit_importance(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    mode: FitMode = "parallel",
    seed: int = 0,
    n_jobs: int | None = -1,
) -> ImportanceFit:
    """One default ``GradientBoostingClassifier`` per factor on ``(n, d)`` codes.

    Args:
        codes_train, codes_test: ``(n, num_codes)``; rows are points.
        factors_train, factors_test: ``(n, num_factors)`` integer labels.
        mode: ``"parallel"`` or ``"sequential_shared_rng"`` (module docstring).
        seed: seeds the classifiers' tie-breaking (see ``mode``).
        n_jobs: joblib workers for ``"parallel"`` (-1: all cores); ignored otherwise.
    """
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {FIT_MODES}, got {mode!r}")
    num_factors = factors_train.shape[1]
    columns = [(factors_train[:, j], factors_test[:, j]) for j in range(num_factors)]
    start = time.perf_counter()
    if mode == "sequential_shared_rng":
        shared = np.random.RandomState(seed)
        results = [
            _fit_factor(codes_train, y_tr, codes_test, y_te, shared) for y_tr, y_te in columns
        ]
    else:
        seeds = factor_seeds(seed, num_factors)
        # A GBT fits one tree per class and stage: start the factors with most classes first
        # (longest-processing-time order balances the workers); results keep factor order.
        order = sorted(range(num_factors), key=lambda j: -len(np.unique(columns[j][0])))
        done = Parallel(n_jobs=n_jobs, batch_size=1)(
            delayed(_fit_factor)(codes_train, columns[j][0], codes_test, columns[j][1], seeds[j])
            for j in order
        )
        results = [None] * num_factors
        for j, r in zip(order, done, strict=True):
            results[j] = r
    elapsed = time.perf_counter() - start
    importance = np.zeros((codes_train.shape[1], num_factors), dtype=np.float64)
    for j, r in enumerate(results):
        importance[:, j] = r[0]
    return ImportanceFit(
        importance=importance,
        train_accuracy=np.array([r[1] for r in results]),
        test_accuracy=np.array([r[2] for r in results]),
        mode=mode,
        seed=seed,
        fit_seconds=elapsed,
        cpu_seconds=np.array([r[3] for r in results]),
    )


def resolve_factors(subset: Sequence[str | int] | None, factor_names: Sequence[str]) -> list[int]:
    """Column indices of ``subset`` (names or indices); ``None`` means all factors."""
    if subset is None:
        return list(range(len(factor_names)))
    out = []
    for f in subset:
        if isinstance(f, str):
            if f not in factor_names:
                raise KeyError(f"unknown factor {f!r}; the factors are {tuple(factor_names)}")
            out.append(list(factor_names).index(f))
        else:
            out.append(int(f))
    return out


def scores_on_factors(fit: ImportanceFit, columns: Sequence[int]) -> dict[str, float]:
    """D, C, I (test and train) of the fit restricted to the factor ``columns``.

    D's entropy base becomes ``len(columns)``; I is the mean accuracy over those factors.
    """
    if len(columns) < 2:
        raise ValueError("DCI needs at least two factors (entropy base = number of factors)")
    columns = list(columns)
    # Fancy indexing returns a Fortran-ordered copy; sums over it round differently (1 ulp).
    # A C-ordered copy keeps the all-factor scores bit-identical to disentanglement_lib's.
    importance = np.ascontiguousarray(fit.importance[:, columns])
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_test": float(np.mean(fit.test_accuracy[columns])),
        "informativeness_train": float(np.mean(fit.train_accuracy[columns])),
    }


# --------------------------------------------------------------------------- end to end

def dci_from_codes(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    factor_names: Sequence[str],
    factor_subsets: Mapping[str, Sequence[str | int] | None] | None = None,
    *,
    mode: FitMode = "parallel",
    seed: int = 0,
    n_jobs: int | None = -1,
) -> dict:
    """DCI for each factor subset from one set of per-factor fits on given codes.

    Only the factors some subset uses are fit (e.g. SmallNORB's nuisance "instance" is not),
    in the dataset's factor order; the importance matrix has those columns.

    Returns ``{"scores": {subset: {"disentanglement", "completeness",
    "informativeness_test", "informativeness_train"}}, "subsets": {subset: [names]},
    "importance": (codes, fitted factors) array, "factor_names": fitted factors,
    "train_accuracy" / "test_accuracy": {factor: accuracy}, "num_train", "num_test",
    "num_codes", "mode", "seed", "n_jobs", "fit_seconds", "fit_cpu_seconds": {factor: s}}``.
    """
    subsets = dict(factor_subsets) if factor_subsets is not None else {"all": None}
    names = list(factor_names)
    columns = {k: resolve_factors(v, names) for k, v in subsets.items()}
    fitted = sorted({c for cols in columns.values() for c in cols})
    position = {c: i for i, c in enumerate(fitted)}
    fit = fit_importance(
        codes_train,
        factors_train[:, fitted],
        codes_test,
        factors_test[:, fitted],
        mode=mode,
        seed=seed,
        n_jobs=n_jobs,
    )
    fitted_names = [names[c] for c in fitted]
    return {
        "scores": {
            k: scores_on_factors(fit, [position[c] for c in cols]) for k, cols in columns.items()
        },
        "subsets": {k: [names[c] for c in cols] for k, cols in columns.items()},
        "importance": fit.importance,
        "factor_names": fitted_names,
        "train_accuracy": dict(zip(fitted_names, fit.train_accuracy.tolist(), strict=True)),
        "test_accuracy": dict(zip(fitted_names, fit.test_accuracy.tolist(), strict=True)),
        "num_train": len(codes_train),
        "num_test": len(codes_test),
        "num_codes": int(codes_train.shape[1]),
        "mode": mode,
        "seed": seed,
        "n_jobs": n_jobs if mode == "parallel" else 1,
        "fit_seconds": fit.fit_seconds,
        "fit_cpu_seconds": dict(zip(fitted_names, fit.cpu_seconds.tolist(), strict=True)),
    }

