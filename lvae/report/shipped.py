"""Loading a model the repository ships, in one call.

The reference study's finished runs are committed under ``results/<profile>/<run_id>/``
(:func:`lvae.report.study.shipping.ship`) with their final parameters (``model.pt``,
float16), so a reader can look at a trained Local VAE without training one for hours.
:func:`load_shipped` finds such a folder from the name a reader has at hand (a run id,
``profile/run_id``, or the book's short name of a configuration: ``alpha=1``, ``vanilla``,
``beta=16``), checks that the weights are the ones that were shipped, and returns the
:class:`lvae.training.Run` that the rest of the package (``lvae.generation``,
``lvae.evaluation``) takes::

    from lvae.report.shipped import load_shipped
    run = load_shipped("alpha=1")               # results/study/shapes3d-a1e+00-b1-...-s0

:func:`shipped_folders` lists what can be loaded. Folders whose names start with ``.``
are never read: they are the staging and replaced copies that
:func:`lvae.report.results.replace_folder` writes beside a run while shipping it (half-written, or
about to be deleted), and ``results/progress/`` holds runs still training (no model).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lvae import runfolder
from lvae.report.grid import config_name
from lvae.report.results import IMPORTED_DIR, PROGRESS_DIR
from lvae.training import SHIPPED_MODEL, Run, load_run

#: When a name matches runs of several profiles (the vanilla VAE is shipped by the
#: ``study`` and by the pilot's ``cpu`` profile), the reference study's run is the one a
#: reader of the book means; ``profile=`` picks another.
PREFERRED_PROFILE = "study"

#: The files that decide which model is loaded: each is checked against the sha256 its
#: ``provenance.json`` records (when it records one) before anything is read.
CHECKED_FILES = (runfolder.CONFIG, SHIPPED_MODEL)


def results_root(root: str | Path | None = None) -> Path:
    """``root``, or the repository's ``results/`` (:data:`lvae.report.results.IMPORTED_DIR`)."""
    return Path(IMPORTED_DIR if root is None else root)


def _visible_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` in name order, without hidden ones (see the module doc)."""
    if not folder.is_dir():
        return []
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def shipped_folders(root: str | Path | None = None, with_model: bool = True) -> list[Path]:
    """Every shipped run folder ``<root>/<profile>/<run_id>/`` (a ``config.json`` in it),
    in profile then run order; ``with_model`` keeps only those with a ``model.pt`` (a
    diverged run is shipped with its evidence but without a model)."""
    found = []
    for prof in _visible_dirs(results_root(root)):
        if prof.name == PROGRESS_DIR:
            continue
        found += [d for d in _visible_dirs(prof) if (d / runfolder.CONFIG).is_file()
                  and (not with_model or (d / SHIPPED_MODEL).is_file())]
    return found


def qualified_name(folder: str | Path) -> str:
    """``profile/run_id``: the name of a shipped run that no other run shares."""
    folder = Path(folder)
    return f"{folder.parent.name}/{folder.name}"


def short_name(config: dict[str, Any]) -> str:
    """The configuration as a reader types it: ``vanilla``, ``alpha=1``, ``beta=16``,
    ``alpha=1 (input_l2)``: its one name (:func:`lvae.report.grid.config_name`) in ASCII."""
    return config_name(config.get("alpha", 0.0), config.get("beta", 1.0),
                       config.get("neighborhood"), ascii=True)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_short_name(name: str) -> dict[str, Any] | None:
    """``alpha``, ``beta`` and ``neighborhood`` (None: any) of a short configuration name,
    or None when ``name`` is not one. Accepts ``alpha``/``α``/``a`` and ``beta``/``β``/``b``,
    any number spelling (``alpha=1.0``, ``alpha=1e0``), parts joined by commas or spaces,
    and an optional neighbourhood in brackets: ``alpha=1 (input_l2)``."""
    m = re.fullmatch(r"\s*(.*?)\s*(?:\(\s*([\w-]+)\s*\))?\s*", name)
    body, nb = (m.group(1), m.group(2)) if m else (name, None)
    body = body.replace("α", "alpha").replace("β", "beta").lower()
    if body == "vanilla":
        return {"alpha": 0.0, "beta": 1.0, "neighborhood": nb}
    want: dict[str, Any] = {"alpha": 0.0, "beta": 1.0, "neighborhood": nb}
    pos, seen = 0, False
    for part in re.finditer(rf"\s*(alpha|beta|a|b)\s*=\s*({_NUMBER})\s*(?:,|\s|$)", body):
        if part.start() != pos:
            return None
        key = "alpha" if part.group(1).startswith("a") else "beta"
        want[key], pos, seen = float(part.group(2)), part.end(), True
    return want if seen and pos == len(body) else None


def _matches(config: dict[str, Any], want: dict[str, Any], seed: int) -> bool:
    a = float(config.get("alpha", 0.0))
    if int(config.get("seed", 0)) != seed or not math.isclose(a, want["alpha"]):
        return False
    if not math.isclose(float(config.get("beta", 1.0)), want["beta"]):
        return False
    nb = config.get("neighborhood") or "synthetic"
    # alpha = 0 never builds a neighbourhood: its label says nothing about one
    return a == 0 or nb == (want["neighborhood"] or "synthetic")


def _available(folders: Iterable[Path]) -> str:
    """What can be loaded, for an error message: the qualified names, then each short name
    with its profiles and seeds."""
    folders = list(folders)
    if not folders:
        return "(none: no shipped run with a model.pt)"
    seeds: dict[str, dict[str, list[int]]] = {}
    for f in folders:
        cfg = runfolder.read_config(f) or {}
        by_prof = seeds.setdefault(short_name(cfg), {})
        by_prof.setdefault(f.parent.name, []).append(int(cfg.get("seed", 0)))
    shorts = "; ".join(
        f"{n!r} (" + ", ".join(f"{p}: seed{'s' if len(s) > 1 else ''} "
                               + ", ".join(map(str, sorted(s))) for p, s in profs.items()) + ")"
        for n, profs in seeds.items())
    return ("runs: " + ", ".join(qualified_name(f) for f in folders)
            + f"; configurations: {shorts}")


def find_shipped(name: str, root: str | Path | None = None, *, seed: int | None = None,
                 profile: str | None = None) -> Path:
    """The folder :func:`load_shipped` loads for ``name`` (see there), without loading it."""
    base = results_root(root)
    parts = [p for p in name.strip().split("/") if p]
    if any(p.startswith(".") for p in parts):
        raise ValueError(f"{name!r} names a hidden folder: those are the staging and replaced "
                         "copies lvae.report.results.replace_folder writes while shipping, never a "
                         "shipped run")
    everything = shipped_folders(base, with_model=False)
    if len(parts) == 2 or (len(parts) == 1 and any(f.name == parts[0] for f in everything)):
        if seed is not None:
            raise ValueError(f"seed={seed} picks among a configuration's runs; the run id "
                             f"{name!r} already names one")
        found = [f for f in everything if (qualified_name(f) if len(parts) == 2
                                           else f.name) == "/".join(parts)]
    elif len(parts) == 1 and (want := parse_short_name(parts[0])) is not None:
        found = [f for f in everything
                 if _matches(runfolder.read_config(f) or {}, want,
                             0 if seed is None else seed)]
    else:
        found = []
    if profile is not None:
        found = [f for f in found if f.parent.name == profile]
    if len({f.parent.name for f in found}) > 1 and any(
            f.parent.name == PREFERRED_PROFILE for f in found):
        found = [f for f in found if f.parent.name == PREFERRED_PROFILE]
    if len(found) > 1:
        raise ValueError(f"{name!r} matches several shipped runs: "
                         f"{', '.join(qualified_name(f) for f in found)}; name one of them "
                         "as profile/run_id")
    where = f" in profile {profile!r}" if profile is not None else ""
    if not found:
        raise ValueError(f"no shipped run under {base} matches {name!r}{where}"
                         f"{'' if seed is None else f' with seed {seed}'}. Available "
                         f"{_available(shipped_folders(base))}")
    folder = found[0]
    if not (folder / SHIPPED_MODEL).is_file():
        result = runfolder.read_result(folder)
        raise ValueError(f"{folder} has no {SHIPPED_MODEL}: the run is "
                         f"{result.status if result else 'not finished'} (a diverged run "
                         "ships its evidence, not a model). Available "
                         f"{_available(shipped_folders(base))}")
    return folder


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in blocks (a model file need not fit twice in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_shipped(folder: str | Path, names: Iterable[str] = CHECKED_FILES) -> dict[str, bool]:
    """Check ``names`` in a shipped folder against the sha256 its ``provenance.json``
    records, so a truncated checkout, a Git LFS pointer or an edited file is refused
    instead of loaded as the shipped model. Runs shipped before hashes were recorded are
    loaded as they are. Returns, per file, whether a recorded hash was checked."""
    folder = Path(folder)
    sums = runfolder.recorded_sha256(folder)
    checked = {}
    for n in names:
        want = sums.get(n)
        checked[n] = want is not None
        if want is None or not (folder / n).is_file():
            continue
        got = sha256_file(folder / n)
        if got != want:
            raise ValueError(
                f"{folder / n} does not match the sha256 its provenance.json records "
                f"(recorded {want[:12]}…, found {got[:12]}…): it is not the file that was "
                f"shipped. Re-fetch the repository's results/ with "
                f"`git checkout -- {folder / n}`")
    return checked


def load_shipped(name: str, root: str | Path | None = None, *, seed: int | None = None,
                 profile: str | None = None, device: torch.device | str = "cpu") -> Run:
    """A shipped model as a :class:`lvae.training.Run`, in eval mode at its final step.

    ``name`` is a run id (``shapes3d-a1e+00-b1-synthetic-s0``), ``profile/run_id``
    (``study/shapes3d-a1e+00-b1-synthetic-s0``), or a configuration's short name
    (``alpha=1``, ``vanilla``, ``beta=16``, ``alpha=1 (input_l2)``) with ``seed`` (default
    0). A name matching runs of several profiles loads the reference study's
    (:data:`PREFERRED_PROFILE`) unless ``profile`` says otherwise. ``root`` defaults to the
    repository's ``results/``.

    Raises ValueError listing what is available when nothing matches, for a hidden folder,
    for a run shipped without a model, and when ``config.json`` or ``model.pt`` differs from
    the sha256 recorded at shipping (the message names the file and the ``git checkout``
    that restores it).
    """
    folder = find_shipped(name, root, seed=seed, profile=profile)
    verify_shipped(folder)
    return load_run(folder, device=device)
