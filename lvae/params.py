"""The experiment notebook's parameters: checked and turned into a config before any compute.

papermill injects parameters as Python literals (``-p alpha -1`` gives the int -1,
``-p alpha abc`` the string ``'abc'``), so a typo reaches the notebook as a value of the
wrong type. :func:`experiment_config` is the notebook's first line after its parameters
cell: it raises ``ValueError`` naming the parameter, the value and what is allowed, before
a dataset is rendered or a kernel spends a minute training. The runner
(:mod:`lvae.reproduce`) calls the same function to decide where a run lives and whether
it is already done, so the notebook and the runner can never disagree on either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvae.config import DATASETS, NEIGHBORHOODS, PROFILES, TrainConfig, _is_int
from lvae.grid import Experiment


@dataclass(frozen=True)
class ExperimentSetup:
    """Everything one execution of ``notebooks/experiment.ipynb`` needs."""

    config: TrainConfig
    run_dir: Path
    run_id: str
    eval_kwargs: dict[str, Any]  # lvae.evaluation.evaluate's keyword arguments
    threads: int | None  # torch threads for this process; not part of the run's identity


class ParameterError(ValueError):
    """A notebook parameter with a wrong type or value; the message names it."""


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ParameterError(f"experiment parameter {name!r} must be {allowed}, got {value!r} "
                         f"({type(value).__name__})")


def _number(name: str, v: Any, minimum: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(name, v, f"a finite number >= {minimum:g}")
    if v < minimum:
        _fail(name, v, f"a number >= {minimum:g}")
    return float(v)


def _int_or_none(name: str, v: Any, minimum: int = 1) -> int | None:
    if v is not None and not (_is_int(v) and v >= minimum):
        _fail(name, v, f"None or an int >= {minimum}")
    return v


def _choice(name: str, v: Any, allowed: tuple[str, ...]) -> str:
    if v not in allowed:
        _fail(name, v, f"one of {list(allowed)}")
    return v


def experiment_config(
    dataset: str = "shapes3d",
    alpha: float = 1.0,
    beta: float = 1.0,
    neighborhood: str = "synthetic",
    k: int = 10,
    batch_size: int = 25,
    steps: int | None = None,
    resolution: int | None = None,
    seed: int = 0,
    profile: str = "smoke",
    out_dir: str = "runs",
    eval_train: int | None = None,
    eval_test: int | None = None,
    eval_fd: int | None = None,
    eval_seed: int = 0,
    reduction: str | None = None,
    data_path: str | None = None,
    threads: int | None = None,
) -> ExperimentSetup:
    """Validate the notebook's parameters; ``None`` budgets take the profile's values.

    The run folder is ``<out_dir>/<profile>/<run_id>`` with the id of
    :attr:`lvae.grid.Experiment.run_id`, the same folder ``python -m lvae reproduce`` uses.
    """
    _choice("profile", profile, tuple(PROFILES))
    prof = PROFILES[profile]
    _choice("dataset", dataset, DATASETS)
    _choice("neighborhood", neighborhood, NEIGHBORHOODS)
    alpha = _number("alpha", alpha)
    beta = _number("beta", beta)
    if not (_is_int(seed) and seed >= 0):
        _fail("seed", seed, "an int >= 0")
    for name, v in (("k", k), ("batch_size", batch_size)):
        if not (_is_int(v) and v >= 1):
            _fail(name, v, "an int >= 1")
    steps = _int_or_none("steps", steps)
    if resolution is not None and resolution not in (32, 64):
        _fail("resolution", resolution, "None (profile default), 32 or 64")
    for name, v in (("eval_train", eval_train), ("eval_test", eval_test),
                    ("eval_fd", eval_fd)):
        _int_or_none(name, v)
    if not (_is_int(eval_seed) and eval_seed >= 0):
        _fail("eval_seed", eval_seed, "an int >= 0")
    if reduction is not None:
        _choice("reduction", reduction, ("pixel_mean", "sum"))
    if not isinstance(out_dir, (str, Path)) or not str(out_dir):
        _fail("out_dir", out_dir, "a folder path")
    if data_path is not None and not isinstance(data_path, str):
        _fail("data_path", data_path, "None or a path string")
    threads = _int_or_none("threads", threads)

    fields: dict[str, Any] = {
        "dataset": dataset, "alpha": alpha, "beta": beta, "neighborhood": neighborhood,
        "k": k, "batch_size": batch_size, "seed": seed, "data_path": data_path,
        **prof.train_overrides(),
    }
    if steps is not None:
        fields["steps"] = steps
    if resolution is not None:
        fields["resolution"] = resolution
    if reduction is not None:
        fields["reduction"] = reduction
    try:
        config = TrainConfig(**fields)
    except ValueError as e:  # a combination only the config can judge (e.g. pool_size vs k)
        raise ParameterError(f"experiment parameters rejected: {e}") from None
    exp = Experiment(dataset, alpha, beta, neighborhood, seed, reduction=reduction)
    return ExperimentSetup(
        config=config,
        run_dir=Path(out_dir) / profile / exp.run_id,
        run_id=exp.run_id,
        eval_kwargs={"num_train": eval_train or prof.eval_train,
                     "num_test": eval_test or prof.eval_test,
                     "num_fd": eval_fd or prof.eval_fd, "seed": eval_seed,
                     **prof.eval_overrides()},
        threads=threads,
    )
