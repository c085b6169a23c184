"""The experiment notebook's parameters: checked and turned into a config before any compute.

papermill injects parameters as Python literals (``-p alpha -1`` gives the int -1,
``-p alpha abc`` the string ``'abc'``), so a typo reaches the notebook as a value of the
wrong type. :func:`experiment_config` is the notebook's first line after its parameters
cell: it raises ``ValueError`` naming the parameter, the value and what is allowed, before
a dataset is rendered, a file is written or a kernel spends a minute training. The runner
(:mod:`lvae.report.reproduce`) calls the same function to decide where a run lives and whether
it is already done, so the notebook and the runner can never disagree on either.

A profile's name is a promise about the budget: a run labelled ``quick`` trained what
``quick`` trains. A run with any training setting other than its profile's (``steps``,
``resolution``, ``lr``, ``k``, ``first_order``, ...) is therefore labelled ``custom``
instead, in its config and its folder (``<out_dir>/custom/<run_id>-c<hash>``), and is never
pooled with the profile's runs. The real files a run read (``data_path``) are part of its
id too (``-d<hash>``), so a real-data run never shares a folder with its twin-data sibling.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvae.config import PROFILES, ConfigError, EvalSettings, TrainConfig
from lvae.config import profile as get_profile
from lvae.report.grid import Experiment

#: The label of a run whose training settings are not its profile's.
CUSTOM = "custom"

#: Config fields that name *what* is compared (they are in the run id), plus the label and
#: the thread count (which changes speed, not results). Every other field is a setting a
#: profile fixes: a run that changes one is ``custom``.
IDENTITY_FIELDS = frozenset({"dataset", "alpha", "beta", "neighborhood", "seed", "reduction",
                             "data_path", "profile", "threads"})

_DEFAULT_REDUCTION = TrainConfig.__dataclass_fields__["reduction"].default


@dataclass(frozen=True)
class ExperimentSetup:
    """Everything one execution of ``notebooks/experiment.ipynb`` needs."""

    config: TrainConfig
    run_dir: Path
    run_id: str
    evaluation: EvalSettings  # what lvae.evaluation.evaluate computes for this run
    threads: int | None  # torch threads for this process; not part of the run's identity
    #: the settings in which the run differs from its profile (then labelled ``custom``)
    custom: tuple[str, ...] = ()


class ParameterError(ValueError):
    """A notebook parameter with a wrong type or value; the message names it."""


#: Notebook parameters that :class:`~lvae.config.EvalSettings` knows by another name.
_EVAL_PARAMETERS = {"num_train": "eval_train", "num_test": "eval_test", "num_fd": "eval_fd",
                    "seed": "eval_seed"}


@contextmanager
def _as_parameters(renamed: Mapping[str, str] | None = None) -> Iterator[None]:
    """Restate a :class:`~lvae.config.ConfigError` as the notebook parameter it came from.

    A parameter whose notebook default is None (the profile's value) says so in what it
    allows; a setting that is no parameter (``pool_size`` against ``k``) is a combination
    of parameters the config rejected, and is named as such.
    """
    try:
        yield
    except ConfigError as e:
        name = (renamed or {}).get(e.name, e.name)
        defaults = {n: p.default for n, p in
                    inspect.signature(experiment_config).parameters.items()}
        if name not in defaults:
            raise ParameterError(f"experiment parameters rejected: {e}") from None
        allowed = e.allowed
        if defaults[name] is None and not allowed.startswith("None"):
            allowed = f"None or {allowed}"
        raise ParameterError(f"experiment parameter {name!r} must be {allowed}, got "
                             f"{e.value!r} ({type(e.value).__name__})") from None


def settings_hash(config: Mapping[str, Any] | TrainConfig) -> str:
    """Eight hex digits over every setting outside :data:`IDENTITY_FIELDS` (as config.json
    stores them): a custom run's id carries it, so custom runs with different settings get
    different folders and are never averaged together."""
    d = json.loads(config.to_json()) if isinstance(config, TrainConfig) else dict(config)
    kept = {k: v for k, v in d.items() if k not in IDENTITY_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]


def experiment_of(config: Mapping[str, Any] | TrainConfig) -> Experiment:
    """The :class:`~lvae.report.grid.Experiment` (and so the run id and ``config_id``) a run's
    config stands for: the one :func:`experiment_config` gave it. For pooling, use this
    rather than the dataset/alpha/beta/neighbourhood alone: it keeps real-data and custom
    runs apart."""
    d = json.loads(config.to_json()) if isinstance(config, TrainConfig) else dict(config)
    red = d.get("reduction", _DEFAULT_REDUCTION)
    return Experiment(d["dataset"], float(d["alpha"]), float(d.get("beta", 1.0)),
                      d.get("neighborhood", "synthetic"), int(d.get("seed", 0)),
                      reduction=None if red == _DEFAULT_REDUCTION else red,
                      data_path=d.get("data_path"),
                      variant=settings_hash(d) if _hashed(d.get("profile")) else None)


def _hashed(profile: str | None) -> bool:
    """Whether runs labelled ``profile`` carry their settings' hash in their id: custom runs
    and those of a profile whose runs vary settings on purpose (the diagnosis)."""

    return profile == CUSTOM or (profile in PROFILES and PROFILES[profile].varies_settings)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _download_fix(dataset: str) -> str:
    names = ("cars3d", "smallnorb") if dataset == "carsnorb" else (dataset,)
    get = " and ".join(f"`python -m lvae.data download {n} --to DIR`" for n in names)
    return f"get the data with {get}, or leave data_path None for the procedural twin"


def _is_hdf5(path: str) -> bool:
    """Whether the file carries HDF5's signature (at 0, 512, 1024, ... as the format allows)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def check_data_path(dataset: str, data_path: str) -> str:
    """The absolute path of ``data_path`` once it looks like ``dataset``'s real files.

    Checked here, before ``config.json`` is written, because a run folder whose dataset
    then fails to load would block the next attempt ("a different config"), and the
    loader's own error (h5py's "file signature not found") names neither the file nor the
    fix. Only what is cheap is checked (existence, file or folder, HDF5 signature and
    keys); the loaders check the rest.
    """
    path = os.path.abspath(os.path.expanduser(data_path))
    fix = _download_fix(dataset)
    if not os.path.exists(path):
        raise ParameterError(f"experiment parameter 'data_path': {path} does not exist; {fix}")
    if dataset == "shapes3d":
        h5 = os.path.join(path, "3dshapes.h5") if os.path.isdir(path) else path
        if not os.path.isfile(h5):
            raise ParameterError(f"experiment parameter 'data_path': {path} is a folder "
                                 f"without 3dshapes.h5; {fix}")
        if not _is_hdf5(h5):
            raise ParameterError(
                f"experiment parameter 'data_path': {h5} is not an HDF5 file (3D Shapes is "
                f"3dshapes.h5, as DeepMind publishes it); {fix}, then pass data_path=DIR or "
                "DIR/3dshapes.h5")
        import h5py

        try:
            with h5py.File(h5, "r") as f:
                missing = [k for k in ("images", "labels") if k not in f]
        except OSError as e:  # truncated or damaged
            raise ParameterError(f"experiment parameter 'data_path': {h5} cannot be read as "
                                 f"HDF5 ({e}); it is damaged or incomplete: delete it and "
                                 f"{fix}") from None
        if missing:
            raise ParameterError(f"experiment parameter 'data_path': {h5} has no {missing} "
                                 f"dataset, so it is not 3dshapes.h5; {fix}")
        return path
    if not os.path.isdir(path):
        what = {"cars3d": "the folder holding car_*_mesh.mat",
                "smallnorb": "the folder holding the smallnorb-*.mat files",
                "carsnorb": "a folder holding cars3d/ and smallnorb/"}[dataset]
        raise ParameterError(f"experiment parameter 'data_path' for {dataset} must be {what}; "
                             f"{path} is a file; {fix}")
    if dataset == "carsnorb":
        missing = [s for s in ("cars3d", "smallnorb") if not os.path.isdir(os.path.join(path, s))]
        if missing:
            raise ParameterError(f"experiment parameter 'data_path': {path} has no "
                                 f"{' or '.join(s + '/' for s in missing)} folder; {fix} "
                                 "(DIR/cars3d and DIR/smallnorb) and pass data_path=DIR")
    return path


#: Names an IPython kernel defines before the parameters cell runs (not parameters).
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})


def check_parameters(namespace: Mapping[str, Any]) -> None:
    """Refuse a name the experiment notebook does not know, in its namespace after the
    parameters cell (papermill's injected cell included).

    papermill only warns about a parameter the notebook does not declare and injects it
    anyway, so ``-p alpah 0`` used to train the default alpha = 1 with exit code 0. Every
    public, non-module name must be a parameter of :func:`experiment_config`; the error
    names the nearest known one.
    """
    import difflib
    import types

    known = list(inspect.signature(experiment_config).parameters)
    unknown = sorted(n for n, v in namespace.items()
                     if not n.startswith("_") and n not in _KERNEL_NAMES and n not in known
                     and not isinstance(v, (types.ModuleType, types.FunctionType, type)))
    if unknown:
        hints = []
        for n in unknown:
            near = difflib.get_close_matches(n, known, n=1)
            hints.append(f"{n!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise ParameterError(f"unknown experiment parameter{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(hints)}; the parameters are {', '.join(known)}")


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
    lr: float | None = None,
    first_order: bool | None = None,
    likelihood: str | None = None,
    algorithm1_literal: bool | None = None,
    adapted_prior_sigma: float | None = None,
    gaussian_sigma: float | None = None,
    latent_refresh: int | None = None,
    checkpoint_every: int | None = None,
    data_path: str | None = None,
    threads: int | None = None,
) -> ExperimentSetup:
    """Validate the notebook's parameters; ``None`` settings take the profile's values
    (``steps``, ``resolution``, ``lr``, the ``eval_*`` sizes) or ``TrainConfig``'s.

    Each value is checked once, by what uses it: :class:`~lvae.config.TrainConfig` for the
    training settings, :class:`~lvae.config.EvalSettings` for the evaluation's; their
    errors are restated here in the notebook's parameter names (:class:`ParameterError`).

    The run folder is ``<out_dir>/<profile>/<run_id>`` with the id of
    :attr:`lvae.report.grid.Experiment.run_id`, the same folder ``python -m lvae reproduce`` uses;
    a run whose training settings differ from the profile's is ``custom`` (module
    docstring). Nothing is written: a bad ``data_path`` fails here, not after a run
    folder exists.
    """
    with _as_parameters():
        prof = get_profile(profile)
    if not isinstance(out_dir, (str, Path)) or not str(out_dir):
        raise ParameterError(f"experiment parameter 'out_dir' must be a folder path, got "
                             f"{out_dir!r} ({type(out_dir).__name__})")
    # what the grid's run of this experiment at this profile trains ...
    base: dict[str, Any] = {
        "dataset": dataset, "alpha": alpha, "beta": beta, "neighborhood": neighborhood,
        "seed": seed, "data_path": data_path, **prof.train_overrides(),
    }
    if reduction is not None:
        base["reduction"] = reduction
    # ... and the settings this call changes
    settings = {"k": k, "batch_size": batch_size, "steps": steps, "resolution": resolution,
                "lr": lr, "first_order": first_order, "likelihood": likelihood,
                "algorithm1_literal": algorithm1_literal,
                "adapted_prior_sigma": adapted_prior_sigma, "gaussian_sigma": gaussian_sigma,
                "latent_refresh": latent_refresh, "checkpoint_every": checkpoint_every}
    sizes = {"num_train": eval_train, "num_test": eval_test, "num_fd": eval_fd}
    with _as_parameters():
        standard = TrainConfig(**base)
        config = standard.replace(**{n: v for n, v in settings.items() if v is not None})
        # checked as the config checks them, but kept out of config.json: threads change
        # speed, not results, and config.json is compared to decide whether a run is done
        standard.replace(threads=threads)
    with _as_parameters(_EVAL_PARAMETERS):
        evaluation = prof.evaluation(seed=eval_seed,
                                     **{n: v for n, v in sizes.items() if v is not None})
    if data_path is not None:  # its type is checked; now the files themselves
        real = check_data_path(dataset, data_path)
        standard, config = standard.replace(data_path=real), config.replace(data_path=real)
    changed = tuple(n for n in sorted(settings) if getattr(config, n) != getattr(standard, n))
    if changed and not prof.varies_settings:
        config = config.replace(profile=CUSTOM)
    exp = experiment_of(config)
    return ExperimentSetup(
        config=config,
        run_dir=Path(out_dir) / config.profile / exp.run_id,
        run_id=exp.run_id,
        evaluation=evaluation,
        threads=threads,
        custom=changed,
    )
