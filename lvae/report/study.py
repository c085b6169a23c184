"""The reference study: long CPU runs, evaluated along the way (DCI against training steps).

The quick profile's 100 steps demonstrate the pipeline; they cannot test the paper's claims.
The study trains a few configurations long enough to, and evaluates each at its profile's
``milestones`` so the book can show whether a gap between configurations is opening,
closing, or not there yet. It is built to run for days on a small machine, across sessions:

* :data:`STUDY` lists the runs in priority order (the pilot first, then 3 seeds of the
  three configurations the headline claims need, then the rest as compute allows);
* :func:`work` is one worker: it takes the first run that is neither finished nor held by
  another worker (an ``flock`` on ``<run>/.lock``, released by the OS when a worker dies),
  trains it with :func:`lvae.training.train` (resumable, checkpointed every few minutes),
  evaluates each milestone snapshot as it is written, then the final model with
  :func:`lvae.evaluation.evaluate`, and moves on. Start two, one thread each, on 2 cores;
  kill them at any time; start them again later;
* :func:`milestone_eval` writes ``milestones/step_NNNNNN.json`` per snapshot: DCI with and
  without colour on the meta-encoder's means, and :func:`z_share`, the measure of the
  overfitting the paper's Figure 3 argues against;
* :func:`train_only` trains named runs side by side on this machine's default device,
  without evaluating them (``python -m lvae study train``): how a session lent a GPU for
  minutes trains runs that take a CPU hours; :func:`work` evaluates them later, on the CPU,
  as it does its own;
* :func:`progress` says where every run stands (``python -m lvae study status``);
* :func:`ship` copies a finished run into the repository (``results/<profile>/<run_id>/``)
  with its milestones, its final parameters in float16 and a few pictures per milestone,
  so the book shows what the trained models do without retraining them.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lvae import runfolder
from lvae.config import PROFILES, TrainConfig
from lvae.data.base import to_tensor
from lvae.evaluation import copy_baseline as baseline
from lvae.evaluation import disentanglement_metrics, evaluate, heldout_neg_elbo, jsonable
from lvae.generation import (
    adapted_model,
    localized_samples,
    meta_samples,
    reconstructions,
    represent,
)
from lvae.report import paper
from lvae.report.cards import write_card
from lvae.report.figures import config_label
from lvae.report.grid import Experiment
from lvae.report.params import experiment_config, experiment_of
from lvae.report.reproduce import Outcome, Task, make_executor
from lvae.report.results import (
    IMPORT_FILES,
    IMPORTED_DIR,
    PROGRESS_DIR,
    flatten,
    import_run,
    load_log,
    replace_folder,
    visible,
)
from lvae.report.shipped import sha256_file
from lvae.store import (
    Lock,
    atomic_write_bytes,
    atomic_write_json,
    git_revision,
    lock_run,
    now,
    read_json_or_none,
)
from lvae.training import SHIPPED_MODEL, load_run, snapshot_path, snapshots, train

#: DCI sample sizes at a milestone: smaller than the final evaluation's, one GBT seed.
MILESTONE_DCI = {"num_train": 2000, "num_test": 1000}
#: References (rows) and prior codes (columns) of the z-share grid.
ZSHARE_REFS, ZSHARE_CODES = 16, 16
MILESTONE_VERSION = 1


@dataclass(frozen=True)
class StudyRun:
    """One run of the study: an experiment, the profile it runs at, and why it is there.

    ``settings`` are training settings the run changes from its profile (the diagnosis's
    arms: ``(("lr", 1e-4),)``), passed to :func:`lvae.report.params.experiment_config`; ``arm``
    names what it tests, as the Diagnosis page shows it.
    """

    experiment: Experiment
    profile: str
    purpose: str
    settings: tuple[tuple[str, Any], ...] = ()
    arm: str = ""
    #: the open choice a diagnosis run tests (a key of lvae.report.diagnosis.CHOICES; "control"
    #: for the readout's yardsticks)
    choice: str = ""

    @property
    def name(self) -> str:
        return f"{self.profile}/{self.run_id}"

    @property
    def run_id(self) -> str:
        """The folder name: the experiment's id, with the settings' hash where they vary."""
        return setup("runs", self).run_id


def _shapes(alpha: float, seed: int, beta: float = 1.0, neighborhood: str = "synthetic"
            ) -> Experiment:
    return Experiment("shapes3d", alpha, beta, neighborhood, seed)


def _plan() -> list[StudyRun]:
    pilot = "pilot: "
    runs = [
        StudyRun(_shapes(0.0, 0), "study", pilot + "vanilla VAE at lr 1e-3 (seed 0 of the study)"),
        StudyRun(_shapes(1.0, 0), "study", pilot + "alpha = 1 at lr 1e-3 (seed 0 of the study)"),
        StudyRun(_shapes(0.0, 0), "cpu", pilot + "vanilla VAE at the paper's lr 1e-4"),
        StudyRun(_shapes(0.0, 0, beta=16.0), "study", "beta-VAE baseline (Table 1)"),
    ]
    for s in (1, 2):
        runs += [StudyRun(_shapes(0.0, s), "study", "vanilla VAE (Table 1)"),
                 StudyRun(_shapes(0.0, s, beta=16.0), "study", "beta-VAE baseline (Table 1)")]
    runs += [StudyRun(_shapes(1.0, s), "study", "alpha = 1 (Table 1 headline)") for s in (1, 2)]
    runs += [StudyRun(_shapes(1e-1, s), "study", "alpha = 0.1 (Table 1)") for s in range(3)]
    runs += [StudyRun(_shapes(1.0, s, neighborhood="input_l2"), "study",
                      "alpha = 1, input-space l2 neighbours (Table 5)") for s in range(3)]
    runs += [StudyRun(_shapes(a, 0), "study", f"alpha = {a:g}: does it diverge? (Table 1)")
             for a in (10.0, 100.0)]
    return runs


#: The study's runs in the order workers take them (the book's reproduce page states it).
STUDY: tuple[StudyRun, ...] = tuple(_plan())


def _arm(choice: str, arm: str, purpose: str, alpha: float = 1.0, beta: float = 1.0,
         neighborhood: str = "synthetic", reduction: str | None = None, seed: int = 0,
         **settings: Any) -> StudyRun:
    e = Experiment("shapes3d", alpha, beta, neighborhood, seed, reduction=reduction)
    return StudyRun(e, "diagnosis", purpose, tuple(sorted(settings.items())), arm, choice)


def _diagnosis() -> list[StudyRun]:
    """The diagnosis (issue 21): one choice the paper leaves open changed per run, from the
    study's reading (alpha = 1, pixel_mean, lr 1e-3, second order, eqs. 7-8, Bernoulli
    neighbours, eq. 6), in the order the workers take them: the long run at the paper's lr
    first, then the cheap controls the readout's thresholds are read against, then the arms
    most likely to move the readout."""
    lr4 = "lr 1e-4 (Table 4)"

    def prior(sigma: float) -> StudyRun:
        return _arm("prior", f"eq. 5's prior kept, sigma = {sigma:g}",
                    "the prior p(theta_N | theta) that eq. 6 drops, on the adapted decoder: "
                    "penalises a large inner step", adapted_prior_sigma=sigma)

    def gaussian(sigma: float) -> StudyRun:
        return _arm("noise", f"Gaussian observation model, sigma = {sigma:g}",
                    "Gaussian decoder and Gaussian synthetic neighbours (anchor + sigma * "
                    "noise) instead of Bernoulli draws", likelihood="gaussian",
                    gaussian_sigma=sigma)

    def reading(seed: int) -> StudyRun:
        # the screen's escaping arm at the study's budget and evaluation, to be judged
        # against the study's vanilla and beta-VAE runs (Adam makes a vanilla run's
        # constant loss scale irrelevant, so they serve under either reduction)
        e = Experiment("shapes3d", 0.1, 1.0, "synthetic", seed, reduction="sum")
        return StudyRun(e, "study", "the reading that escaped the screen (loss summed over "
                        "pixels, alpha = 0.1) at the study's budget, judged on the claims",
                        arm=f"loss summed over pixels, alpha = 0.1, 20k steps, seed {seed}",
                        choice="scale")

    return [
        StudyRun(_shapes(1.0, 0), "cpu", "alpha = 1 at the paper's lr 1e-4 for 20k steps: the "
                 "obvious objection to the study's lr", arm=lr4, choice="lr"),
        # added after the screen's first arms (session 9): the one reading that escaped
        # goes to 20k x 3 seeds (issue 21), its first seed beside the cheap arms
        reading(0),
        _arm("control", "control: vanilla VAE", "the readout of a model that does not "
             "memorise", 0.0),
        _arm("control", "control: beta-VAE (beta = 16)", "the readout of the most compressed "
             "baseline", 0.0, beta=16.0),
        _arm("lr", "control: vanilla VAE, lr 1e-4", "the vanilla VAE at the paper's lr", 0.0,
             lr=1e-4),
        _arm("order", "first order, lr 1e-3", "MAML's first-order approximation at the "
             "study's lr (probes diverged within 13 steps: seconds to record)",
             first_order=True),
        # sigma from a measurement: the memorising study model's decoder step has
        # ||theta' - theta||^2 = 1.8 (the vanilla VAE's would be 0.05), so under pixel_mean
        # the prior costs it 1.8 / (2 sigma^2 3072) = 0.33 per pixel value at sigma 0.03,
        # about its whole loss (0.29); 2.9 at 0.01 (dominant); 0.03 at 0.1 (a tenth).
        # One arm of each choice first, so every choice is screened as early as it can be.
        prior(0.03),
        gaussian(0.1),
        _arm("scale", "loss summed over pixels, alpha = 0.1",
             "eq. 1 read literally, with the paper's alpha grid as printed", 0.1,
             reduction="sum"),
        _arm("algorithm1", "Algorithm 1 literally (no 1/K on the decoder's step)",
             "Algorithm 1's line 5 as printed: the decoder steps K times eq. 7's step",
             algorithm1_literal=True),
        _arm("order", "first order, lr 1e-4",
             "MAML's first-order approximation at the paper's lr", first_order=True, lr=1e-4),
        _arm("neighbourhood", "latent-space kNN neighbours",
             "the paper's other neighbourhood (CarsNORB's)", neighborhood="latent_knn"),
        _arm("scale", "pixel_mean, alpha = 3",
             "the summed loss's alpha = 1e-3 in pixel_mean units (x 3072 at 32x32)", 3.0),
        reading(1),
        reading(2),
        StudyRun(_shapes(0.0, 0, beta=16.0), "long", "the beta-VAE at the paper's budget "
                 "(300k steps, lr 1e-4): does it approach the paper's 0.690?",
                 arm="beta-VAE (beta = 16), 300k steps, lr 1e-4", choice="budget"),
        StudyRun(_shapes(0.0, 0), "long", "the vanilla VAE at the paper's budget (300k steps, "
                 "lr 1e-4)", arm="vanilla VAE, 300k steps, lr 1e-4", choice="budget"),
        *[StudyRun(_shapes(1.0, s, neighborhood="input_l2"), "study",
                   "alpha = 1, input-space l2 neighbours (Table 5)",
                   arm=f"input-space l2 neighbours, seed {s} (Table 5)", choice="neighbourhood")
          for s in range(3)],
        prior(0.01),
        gaussian(0.2),
        *[_arm("scale", f"loss summed over pixels, alpha = {a:g}",
               "eq. 1 read literally, with the paper's alpha grid as printed", a,
               reduction="sum") for a in (1e-2, 1e-3)],
        prior(0.1),
        gaussian(0.05),
        _arm("control", "control: the study's reading",
             "alpha = 1 as the study trains it, with the readout and early milestones"),
    ]


#: The diagnosis's runs in the order workers take them (``study work --plan diagnosis``).
DIAGNOSIS: tuple[StudyRun, ...] = tuple(_diagnosis())

#: The plans a worker can work through, by name.
PLANS: dict[str, tuple[StudyRun, ...]] = {"study": STUDY, "diagnosis": DIAGNOSIS}


def plan(name: str) -> tuple[StudyRun, ...]:
    """The plan called ``name`` (an error naming the known ones if none is)."""
    if name not in PLANS:
        raise ValueError(f"no plan is called {name!r}; the plans are {', '.join(PLANS)}")
    return PLANS[name]


def run_dir(out: str | Path, sr: StudyRun) -> Path:
    """Where a run of a plan lives: ``<out>/<label>/<run_id>``, its profile's label (or
    ``custom``, for a run of a profile that does not vary settings with some changed)."""
    return setup(out, sr).run_dir


def setup(out: str | Path, sr: StudyRun):
    """The run's validated :class:`lvae.report.params.ExperimentSetup` (config and folder)."""
    e = sr.experiment
    return experiment_config(dataset=e.dataset, alpha=e.alpha, beta=e.beta,
                             neighborhood=e.neighborhood, seed=e.seed, profile=sr.profile,
                             reduction=e.reduction, out_dir=str(out), **dict(sr.settings))


# --------------------------------------------------------------------------- measures


def z_share(samples: np.ndarray) -> dict[str, float]:
    """How much of the localized generations' spread the prior code z accounts for.

    ``samples`` are pixel means ``(R, M, ...)``: row r = one reference's adapted decoder,
    column m = one shared prior code (the paper's Figure 3). With ``within_row`` the mean
    per-pixel variance across z in a row and ``across_refs`` the mean per-pixel variance
    across references in a column, ``z_share = within_row / (within_row + across_refs)``:

    * near 0: each row is one image whatever z is: the adapted decoder reproduces its
      reference and z carries nothing (the overfitting Figure 3 argues against);
    * 1: the reference changes nothing (the vanilla VAE, alpha = 0);
    * in between: z and the reference both shape the image, as Figure 3 shows.
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim < 3 or s.shape[0] < 2 or s.shape[1] < 2:
        raise ValueError(f"samples must be (references >= 2, codes >= 2, ...), got {s.shape}")
    within_row = float(s.var(axis=1).mean())
    across_refs = float(s.var(axis=0).mean())
    total = within_row + across_refs
    return {"z_share": within_row / total if total > 0 else float("nan"),
            "within_row": within_row, "across_refs": across_refs}


def _references_and_codes(run: Any, n_refs: int, n_codes: int, rs: np.random.RandomState,
                          with_indices: bool = False) -> Any:
    """``n_refs`` held-out images (never trained on, in dataset order) and ``n_codes`` prior
    codes, drawn in that order from ``rs``: the rows and columns of a Figure 3 grid (and
    the references' dataset indices, ``with_indices``)."""

    idx = np.sort(run.heldout[rs.choice(len(run.heldout), n_refs, replace=False)])
    z = rs.standard_normal((n_codes, run.arch.latent_dim)).astype(np.float32)
    out = (to_tensor(run.dataset.images(idx)), torch.from_numpy(z))
    return (*out, idx) if with_indices else out


#: Non-colour settings drawn per reference for the data's own object variance (readout).
OBJECT_DRAWS = 16


def object_variance(dataset: Any, indices: np.ndarray, rs: np.random.RandomState
                    ) -> float | None:
    """What Figure 3's claim says z should move: the mean per-pixel variance of the data's
    images that keep a reference's colour factors and draw its other factors (scale, shape,
    orientation) at random, ``OBJECT_DRAWS`` per reference; None for a dataset without a
    colour/non-colour split. A row of localized generations whose within-row variance comes
    near this is a row where z draws the object, as the paper's Figure 3 shows."""
    local = (getattr(dataset, "dci_subsets", None) or {}).get("dci_nocolor")
    if not local:
        return None
    cols = [dataset.factor_names.index(n) for n in local]
    base = dataset.index_to_factors(indices)  # (R, F)
    draws = np.repeat(base[:, None], OBJECT_DRAWS, axis=1)  # (R, M, F)
    for j in cols:
        draws[..., j] = rs.randint(dataset.factor_sizes[j], size=draws.shape[:2])
    imgs = dataset.images_from_factors(draws.reshape(-1, base.shape[1])).astype(np.float64)
    imgs = imgs.reshape(len(indices), OBJECT_DRAWS, -1) / 255.0
    return float(imgs.var(axis=1).mean())


@torch.no_grad()
def readout(run: Any, refs: torch.Tensor, ref_idx: np.ndarray, samples: np.ndarray,
            seed: int = 0, num_elbo: int = 500) -> dict[str, Any]:
    """The memorisation readout of one snapshot (issue 21; the Diagnosis page defines each):

    * ``kl``: KL(q(z|x; phi') || N(0, I)) in nats of the references under the encoder
      adapted to each one's neighbourhood (the meta-encoder's at alpha = 0), and
      ``kl_meta`` under the meta-encoder: how much z can carry;
    * ``copy_distance``: mean squared error (pixels in [0, 1]) between each row of
      localized generations averaged over z and its reference: 0 when every row is its
      reference whatever z is;
    * ``local_share``: the rows' within-row variance over :func:`object_variance`: how far z
      moves the image, against how far the object factors move it in the data (0: z
      moves nothing; near 1: as much as the data's objects do);
    * ``heldout``: the held-out negative ELBO (nats per image) of the meta-model alone and
      of the adapted model (:func:`lvae.evaluation.heldout_neg_elbo`).
    """

    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> float:
        return float((0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)).mean())

    model = adapted_model(run, refs, seed=seed) if run.config.alpha > 0 else run.model
    ov = object_variance(run.dataset, ref_idx, np.random.RandomState(seed + 2))
    within = float(np.asarray(samples, np.float64).var(axis=1).mean())
    copy = float(((samples.mean(axis=1) - refs.numpy()) ** 2).mean())
    return {"kl": kl(*model.encode(refs)), "kl_meta": kl(*run.model.encode(refs)),
            "copy_distance": copy, "within_row": within, "object_variance": ov,
            "local_share": within / ov if ov else None,
            "heldout": heldout_neg_elbo(run, num_elbo, seed)}


milestone_path = runfolder.milestone_path
pictures_path = runfolder.pictures_path
milestones = runfolder.milestones


def _grid_readout(run: Any, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The z-share grid's localized generations of a loaded model and its :func:`readout`:
    what a milestone record and a shipped run's added readout both compute."""
    refs, z, idx = _references_and_codes(run, ZSHARE_REFS, ZSHARE_CODES,
                                         np.random.RandomState(seed), with_indices=True)
    samples = localized_samples(run, refs, z, seed=seed).numpy()
    return samples, readout(run, refs, idx, samples, seed)


def milestone_eval(rdir: str | Path, step: int, seed: int = 0, dataset=None,
                   force: bool = False, dci_sizes: dict[str, int] | None = None
                   ) -> dict[str, Any]:
    """DCI (with and without colour, meta codes), :func:`z_share` and the memorisation
    :func:`readout` of one snapshot. A record from before the readout existed gains it
    (its DCI kept) while the snapshot is still there.

    ``dci_sizes`` overrides :data:`MILESTONE_DCI` (tests use tiny samples).
    """

    sizes = dict(MILESTONE_DCI if dci_sizes is None else dci_sizes)

    path = milestone_path(rdir, step)
    old = read_json_or_none(path)
    if (not force and isinstance(old, dict) and old.get("version") == MILESTONE_VERSION
            and old.get("sample_counts", {}).get("num_train") == sizes["num_train"]):
        if "readout" in old or not snapshot_path(rdir, step).is_file():
            return old
        # a record made before the readout existed: add it, keep its DCI
        t0 = time.perf_counter()
        run = load_run(rdir, snapshot=step, dataset=dataset)
        record = jsonable({**old, "readout": _grid_readout(run, seed)[1],
                           "readout_wall_time_s": round(time.perf_counter() - t0, 2)})
        atomic_write_json(path, record)
        return record
    t0 = time.perf_counter()
    run = load_run(rdir, snapshot=step, dataset=dataset)
    metrics = disentanglement_metrics(run.dataset, represent(run, "meta"), seed=seed,
                                      n_jobs=1, **sizes)
    samples, ro = _grid_readout(run, seed)
    record = {
        "step": step,
        "version": MILESTONE_VERSION,
        **{k: v for k, v in metrics.items() if k.startswith(("dci_", "mig"))},
        "zshare": z_share(samples),
        "readout": ro,
        "sample_counts": dict(sizes, zshare_refs=ZSHARE_REFS,
                              zshare_codes=ZSHARE_CODES),
        "pictures": _keep_pictures(rdir, step, run, seed),
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "evaluated": now(),
        "commit": git_revision(),
    }
    record = jsonable(record)
    atomic_write_json(path, record)
    return record


def readout_shipped(folder: str | Path, seed: int = 0) -> dict[str, Any] | None:
    """Add the :func:`readout` to the last milestone of a shipped, finished run, from its
    ``model.pt`` (the final parameters are that milestone's snapshot, in float16): runs
    shipped before the readout existed get it where their weights allow. Returns the new
    record, or None when there is nothing to do (already there, no model, other step)."""

    folder = Path(folder)
    recs = milestones(folder)
    if not recs or "readout" in recs[-1] or not (folder / SHIPPED_MODEL).is_file():
        return None
    run = load_run(folder)
    if run.step != recs[-1]["step"]:
        return None
    t0 = time.perf_counter()
    record = jsonable({**recs[-1], "readout": _grid_readout(run, seed)[1],
                       "readout_wall_time_s": round(time.perf_counter() - t0, 2),
                       "readout_from": f"{SHIPPED_MODEL} (float16)"})
    atomic_write_json(milestone_path(folder, record["step"]), record)
    return record


def _keep_pictures(rdir: str | Path, step: int, run: Any, seed: int) -> str:
    """Render what the snapshot draws now, while it is loaded, beside the milestone's
    record (shipping then copies them instead of reloading every snapshot)."""
    path = pictures_path(rdir, step)
    atomic_write_bytes(path, _npz_bytes(pictures_of(run, seed)))
    return path.name


# --------------------------------------------------------------------------- workers


@contextmanager
def claimed(rdir: Path) -> Iterator[bool]:
    """Hold the run's lock (:func:`lvae.store.lock_run`, the one ``lvae reproduce`` takes
    too) for this process; yields False when another process holds it."""
    held = lock_run(rdir, "lvae study")
    if not isinstance(held, Lock):
        yield False
        return
    try:
        yield True
    finally:
        held.release()


def is_done(rdir: Path) -> bool:
    """Finished: trained and evaluated (:func:`lvae.runfolder.finished`, the one
    definition); every milestone is evaluated before the final evaluation is written."""
    return runfolder.finished(rdir) is not None


def complete(out: str | Path, sr: StudyRun, log=print) -> dict[str, Any]:
    """Train, evaluate the milestones and the final model of one run (all resumable)."""

    st = setup(out, sr)
    prof = PROFILES[sr.profile]
    resume_from_shipped(st.run_dir, sr, log=log)

    def on_snapshot(step: int, _path: Path) -> None:
        rec = milestone_eval(st.run_dir, step)
        log(f"{sr.name} step {step}: DCI w/o colour D "
            f"{rec.get('dci_nocolor', {}).get('disentanglement', float('nan')):.3f}, "
            f"z-share {rec['zshare']['z_share']:.3f} ({rec['wall_time_s']:.0f} s)")

    for step in sorted(snapshots(st.run_dir)):  # snapshots a killed worker left unevaluated
        on_snapshot(step, Path())
    result = train(st.config, st.run_dir, progress=False, snapshot_steps=prof.milestones,
                   on_snapshot=on_snapshot)
    log(f"{sr.name}: {result['status']} at step {result['steps_done']}, "
        f"{result['wall_time_s'] / 3600:.2f} h")
    return evaluate(st.run_dir, prof.evaluation(n_jobs=1), progress=False)


def shipped_done(sr: StudyRun, root: str | Path | None = None) -> bool:
    """Whether the repository already holds ``sr`` finished (or diverged) under
    ``results/``: such a run is done on any machine, and no worker trains it again."""
    return (_results_root(root) / sr.profile / sr.run_id / runfolder.RESULT).is_file()


def work(out: str | Path, limit: int | None = None, log=print,
         runs: tuple[StudyRun, ...] | None = None, shipped_root: str | Path | None = None
         ) -> int:
    """One worker: complete the runs of a plan (:data:`STUDY` by default) in order until
    none is left (or ``limit``).

    Returns how many runs it completed. Runs held by another worker are skipped, and so are
    runs the repository already holds finished (:func:`shipped_done`): a fresh machine does
    not retrain the shipped evidence (``shipped_root``: where it is; ``results/``).
    """
    torch.set_num_threads(1)
    done = 0
    while limit is None or done < limit:
        for sr in STUDY if runs is None else runs:
            rdir = run_dir(out, sr)
            if is_done(rdir) or shipped_done(sr, shipped_root):
                continue
            with claimed(rdir) as mine:
                if not mine:
                    continue
                if is_done(rdir):  # finished by another worker between the checks
                    continue
                log(f"{now()} worker {os.getpid()} takes {sr.name} ({sr.arm or sr.purpose})")
                complete(out, sr, log=log)
                done += 1
                break
        else:
            log(f"{now()} worker {os.getpid()}: no run left to take")
            return done
    return done


def run_task(task: Any) -> Any:
    """Complete one study run on a Dask worker (:func:`work_on`): the task's ``parameters``
    hold the output folder (``out``) and the :class:`StudyRun` (``run``). A run held by
    another process (a worker of another invocation, a ``study train``) is left to it; an
    error in the run is its outcome ("failed", with the error), not a dead worker."""

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out, sr = task.parameters["out"], task.parameters["run"]
    rdir = run_dir(out, sr)
    try:
        with claimed(rdir) as mine:
            if not mine:
                return Outcome(task.name, "skipped", str(rdir), "held by another process")
            if not is_done(rdir):
                complete(out, sr, log=lambda m: print(m, flush=True))
    except Exception as e:  # the run's own failure, reported as such
        return Outcome(task.name, "failed", str(rdir), f"{type(e).__name__}: {e}", 1,
                       time.perf_counter() - t0)
    return Outcome(task.name, "executed", str(rdir), runfolder.state(rdir), 1,
                   time.perf_counter() - t0)


def work_on(out: str | Path, runs: tuple[StudyRun, ...] | None = None, jobs: int = 2,
            scheduler: str | None = None, resources: dict[str, float] | None = None,
            log=print, shipped_root: str | Path | None = None, inline: bool = False) -> int:
    """Complete the runs of a plan (:data:`STUDY` by default) on the grid's executor
    (:func:`lvae.report.reproduce.make_executor`): a LocalCluster of ``jobs`` one-thread workers,
    or the cluster at ``scheduler``; ``resources`` (``{"GPU": 1}``) is asked for by every
    run. Runs go in the plan's order (the first the highest priority); finished and shipped
    ones are left out, and each run holds its lock while a worker computes it, so this and
    other workers on the same folder never compute one run twice. Returns how many runs
    were completed. ``inline``: one run after another in this process (tests, debugging).
    """

    todo = [sr for sr in (STUDY if runs is None else runs)
            if not (is_done(run_dir(out, sr)) or shipped_done(sr, shipped_root))]
    if not todo:
        log(f"{now()}: no run left to take")
        return 0
    tasks = [Task(f"study:{sr.name}", "", str(run_dir(out, sr)),
                  {"out": str(out), "run": sr}, priority=len(todo) - i,
                  accelerated=True) for i, sr in enumerate(todo)]
    log(f"{now()}: {len(todo)} runs for {jobs if scheduler is None else 'the cluster'}'s "
        f"workers, first {todo[0].name}")
    executor = make_executor(jobs, scheduler, inline=inline, resources=resources)
    done = 0
    try:
        for o in executor.map(tasks, fn=run_task):
            done += o.status == "executed"
            log(f"{now()} {o.name.removeprefix('study:')}: {o.status} {o.message}".rstrip())
    finally:
        executor.close()
    return done


def study_run(name: str) -> StudyRun:
    """The run called ``name`` (``profile/run_id``, as ``status`` prints) in any plan."""
    every = [sr for p in PLANS.values() for sr in p]
    for sr in every:
        if sr.name == name:
            return sr
    raise ValueError(f"no study run is called {name!r}; the plans' runs are "
                     f"{', '.join(sr.name for sr in every)}")


def _die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``), so a
    trainer started by :func:`train_only` never outlives it (on a GPU lent for minutes, an
    orphan would go on spending them). ``parent``: the pid that started it; if that one is
    already gone (it died while this process was importing), exit now. Elsewhere a no-op."""

    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _train_one(out: str, name: str, parent: int | None = None) -> int:
    """One trainer of :func:`train_only`; exit code 3 (and one ``error:`` line naming the
    holder) when another process holds the run."""


    _die_with_parent(parent)
    torch.set_num_threads(1)
    sr = study_run(name)
    st = setup(out, sr)
    held = lock_run(st.run_dir, "lvae study train")
    if not isinstance(held, Lock):
        print(f"error: {name} is held by {held}; wait for it or stop it", file=sys.stderr)
        return 3
    try:
        train(st.config, st.run_dir, progress=False,
              snapshot_steps=PROFILES[sr.profile].milestones, checkpoint_seconds=20)
    finally:
        held.release()
    return 0


def train_only(out: str | Path, names: list[str], seconds: float | None = None,
               poll: float = 15.0, log=print) -> dict[str, int]:
    """Train the study runs ``names`` at once, one process each, on the default device, with
    milestone snapshots but no evaluation; stop them after ``seconds`` (None: when done).

    For a GPU lent for minutes: 2 runs train side by side at about 21 ms a step on one H200
    (20k steps in 7 minutes), where a CPU core takes 3 hours. A stopped run keeps a
    checkpoint at most 20 s old and resumes from it; a finished one is evaluated by
    :func:`work` (on any machine) like any other. Returns each run's exit code (None when
    stopped at the deadline).
    """

    for n in names:
        study_run(n)  # an unknown name fails here, before anything starts
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} named more than once: each run trains in one "
                         "process")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be a number > 0 (or left out), got {seconds!r}")
    code = ("import sys; from lvae.report.study import _train_one; "
            "sys.exit(_train_one(sys.argv[1], sys.argv[2], int(sys.argv[3])))")
    procs = {n: subprocess.Popen([sys.executable, "-c", code, str(out), n, str(os.getpid())])
             for n in names}
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        left = poll if seconds is None else seconds - (time.monotonic() - t0)
        time.sleep(min(poll, max(0.1, left)))
        for n in names:
            last = _last_log(Path(out) / n)
            log(f"{now()} {n}: step {last.get('step', 0)}, "
                f"loss {last.get('loss', float('nan')):.4g}")
        if seconds is not None and time.monotonic() - t0 > seconds:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            log(f"{now()} {seconds:.0f} s are up: stopped what was still training")
            break
    codes = {n: p.wait() for n, p in procs.items()}
    return {n: (c if c >= 0 else None) for n, c in codes.items()}  # killed: None


def progress(out: str | Path, runs: tuple[StudyRun, ...] | None = None
             ) -> list[dict[str, Any]]:
    """Where each run of a plan (the study's by default) stands: steps, seconds per step,
    CPU hours (training CPU from the result or the last checkpoint, plus the evaluations'
    wall time), milestones. A run the repository holds finished reads "shipped" when this
    machine has no copy of it."""
    rows = []
    for sr in STUDY if runs is None else runs:
        rdir = run_dir(out, sr)
        shipped = not (rdir / runfolder.CONFIG).is_file() and shipped_done(sr)
        if shipped:
            rdir = _results_root(None) / sr.profile / sr.run_id
        cfg = read_json_or_none(rdir / runfolder.CONFIG) or {}
        result = read_json_or_none(rdir / runfolder.RESULT)
        last = _last_log(rdir)
        steps = cfg.get("steps", PROFILES[sr.profile].steps)
        step = last.get("step", 0)
        wall = last.get("wall_time_s", 0.0)
        cpu = (result or {}).get("cpu_time_s")
        if cpu is None and step:
            cpu = _checkpoint_facts(rdir)["cpu_time_s"]
        rows.append({
            "run": sr.name,
            "arm": sr.arm,
            "purpose": sr.purpose,
            "state": ("done" if is_done(rdir) else "shipped" if shipped else result["status"]
                      if result else "training" if step else "planned"),
            "step": step,
            "steps": steps,
            "sec_per_step": round(wall / step, 3) if step else None,
            "cpu_hours": _hours(cpu if cpu is not None else wall, rdir),
            "device": _device_label(trained_device(rdir)),
            "milestones": [m["step"] for m in milestones(rdir)],
        })
    return rows


# --------------------------------------------------------------------------- shipping

#: Pictures kept per milestone: references (rows) and shared prior codes (columns).
PICTURE_REFS, PICTURE_CODES = 4, 6


@torch.no_grad()
def milestone_pictures(rdir: str | Path, step: int, seed: int = 0, dataset=None
                       ) -> dict[str, np.ndarray]:
    """What a snapshot draws (:func:`pictures_of`): the ones rendered when the milestone
    was evaluated (``milestones/step_NNNNNN.npz``), else rendered from the snapshot."""

    kept = pictures_path(rdir, step)
    if kept.is_file():
        with np.load(kept) as z:
            return {k: z[k] for k in z.files}
    return pictures_of(load_run(rdir, snapshot=step, dataset=dataset), seed)


def pictures_of(run: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """What a model draws, as uint8 ``(..., H, W, C)`` arrays: held-out references, their
    reconstructions under the meta-model and under the adapted model, the localized
    generations (row = reference, column = shared prior code z; Figure 3) and the
    meta-decoder alone on the same z."""

    refs, z = _references_and_codes(run, PICTURE_REFS, PICTURE_CODES,
                                    np.random.RandomState(seed + 1))

    def u8(t: torch.Tensor) -> np.ndarray:
        a = (t.clamp(0, 1) * 255).round().to(torch.uint8)
        return a.movedim(-3, -1).numpy()  # channels last

    return {
        "references": u8(refs),
        "meta_recon": u8(reconstructions(run, refs, adapted=False, seed=seed)),
        "adapted_recon": u8(reconstructions(run, refs, adapted=True, seed=seed)),
        "localized": u8(localized_samples(run, refs, z, seed=seed)),
        "meta_samples": u8(meta_samples(run, z)),
    }


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _model_bytes(rdir: Path) -> bytes:

    ck = torch.load(rdir / runfolder.CHECKPOINT, map_location="cpu", weights_only=False)
    buf = io.BytesIO()
    torch.save({"model": {k: v.half() for k, v in ck["model"].items()}, "step": ck["step"],
                "dtype": "float16"}, buf)
    return buf.getvalue()




def ship(rdir: str | Path, dest_root: str | Path | None = None) -> Path:
    """Import a finished, evaluated study run under ``results/`` with its evidence:
    ``milestones/step_*.json``, ``model.pt`` (final parameters, float16),
    ``pictures.npz`` (:func:`milestone_pictures` per milestone, keys ``<step>/<name>``)
    and ``provenance.json`` (commits, machine, wall and CPU time, steps, lr, profile).

    A run still training is shipped to ``<dest_root>/progress/<profile>/<run_id>`` instead
    (config, log, milestones so far, pictures of its snapshots): its curve can be shown,
    labelled as unfinished, while it is never counted as a result. Shipping the finished
    run removes that copy.
    """

    rdir = Path(rdir)
    result = read_json_or_none(rdir / runfolder.RESULT) or {}
    cfg = read_json_or_none(rdir / runfolder.CONFIG) or {}
    finished = is_done(rdir)
    snaps = sorted(snapshots(rdir))
    extra: dict[str, bytes] = {}
    for rec in milestones(rdir):
        extra[f"milestones/step_{rec['step']:06d}.json"] = (
            json.dumps(rec, indent=1, sort_keys=True) + "\n").encode()
    if result.get("status") == "completed":
        extra[SHIPPED_MODEL] = _model_bytes(rdir)
    if result.get("status") != "diverged" and snaps:  # completed, or still training
        # pictures of snapshots another machine took (a run resumed from a shipped
        # checkpoint has them only in its seeded pictures.npz), then this machine's
        pics = {f"{step}/{k}": v for step, named in shipped_pictures(rdir).items()
                for k, v in named.items()}
        pics.update({f"{step}/{k}": v for step in snaps
                     for k, v in milestone_pictures(rdir, step).items()})
        extra[runfolder.PICTURES] = _npz_bytes(pics)
    prov = result.get("provenance", {})
    files: dict[str, bytes] = {}
    if not finished:
        last = _last_log(rdir)
        facts = _checkpoint_facts(rdir)
        prov = {"commits": facts["commits"]}
        result = {"status": "training", "steps_done": facts["step"] or 0,
                  "wall_time_s": last.get("wall_time_s"), "cpu_time_s": facts["cpu_time_s"]}
        # what another machine resumes from (resume_from_shipped): the last checkpoint
        # (parameters, Adam's state, both generators) and the log up to it
        files = {n: (rdir / n).read_bytes() for n in (runfolder.CONFIG, runfolder.LOG, RESUME_FILE)
                 if (rdir / n).is_file()}
    else:

        files = {n: (rdir / n).read_bytes() for n in IMPORT_FILES if (rdir / n).is_file()}
    extra[runfolder.PROVENANCE] = (json.dumps({
        "profile": cfg.get("profile"), "steps": cfg.get("steps"),
        "steps_done": result.get("steps_done"), "lr": cfg.get("lr"),
        "status": result.get("status"), "commits": prov.get("commits", [prov.get("commit")]),
        "machine": prov.get("machine"), "wall_time_s": result.get("wall_time_s"),
        "cpu_time_s": result.get("cpu_time_s"), **_start_facts(result),
        "finished": result.get("finished"), "shipped": now(), "shipped_by": git_revision(),
        "sha256": {n: hashlib.sha256(b).hexdigest() for n, b in sorted({**files, **extra}.items())
                   if n != runfolder.PROVENANCE},
    }, indent=1, sort_keys=True) + "\n").encode()
    root = _results_root(dest_root)
    progress_copy = _shipped_dir(root, rdir, cfg, progress=True)
    if not finished:
        return replace_folder(progress_copy, {**files, **extra})
    dest = import_run(rdir, root, extra=extra)
    if progress_copy.exists():
        shutil.rmtree(progress_copy)
    if result.get("status") == "completed":

        write_card(dest)  # the folder was replaced whole: its model card with it
    return dest


#: The file a run still training is shipped with so another machine can resume it.
RESUME_FILE = runfolder.CHECKPOINT


def resume_from_shipped(rdir: str | Path, sr: StudyRun, root: str | Path | None = None,
                        log=print) -> bool:
    """Seed an empty run folder from the progress copy the repository holds of ``sr`` (its
    config, log, milestones, pictures and last checkpoint), so a run begun on another
    machine goes on from its last shipped checkpoint instead of step 0. Every file is
    checked against the sha256 its provenance records; a copy that does not match is
    refused, naming the file. Returns whether it seeded anything."""
    rdir = Path(rdir)
    src = _results_root(root) / PROGRESS_DIR / sr.profile / sr.run_id
    if (rdir / runfolder.CONFIG).is_file() or not (src / RESUME_FILE).is_file():
        return False
    sums = (read_json_or_none(src / runfolder.PROVENANCE) or {}).get("sha256") or {}
    names = [n for n in (runfolder.CONFIG, runfolder.LOG, runfolder.PICTURES, RESUME_FILE)
             if (src / n).is_file()]
    names += [f"milestones/{p.name}" for p in sorted((src / "milestones").glob("step_*.json"))]
    for n in names:
        got = sha256_file(src / n)
        if sums.get(n) != got:
            raise ValueError(f"{src / n} does not match the sha256 its provenance.json records "
                             f"({'none recorded' if n not in sums else 'changed'}): restore it "
                             f"with `git checkout -- {src}` or delete the folder to start over")
    for n in names:
        (rdir / n).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(rdir / n, (src / n).read_bytes())
    log(f"{sr.name}: resumed from the shipped checkpoint at step "
        f"{_checkpoint_facts(rdir)['step']} ({src})")
    return True


def _start_facts(result: dict[str, Any]) -> dict[str, Any]:
    """When a run began: ``started`` (its first step) and ``resumed`` (when the last process
    took it up), as training records them. Results written before training kept the first
    start (2026-11-30) hold only the last process's start: that is named
    ``last_started``, so a 5-hour run is not read as having started 30 minutes ago."""
    if "resumed" in result:
        return {"started": result.get("started"), "resumed": result.get("resumed")}
    return {"last_started": result.get("started")} if "started" in result else {}


def _results_root(dest_root: str | Path | None) -> Path:

    return Path(IMPORTED_DIR if dest_root is None else dest_root)


def _shipped_dir(root: Path, rdir: Path, cfg: dict[str, Any], progress: bool = False) -> Path:
    """Where :func:`ship` puts a run: ``<root>[/progress]/<profile>/<run_id>`` (the layout
    :func:`lvae.report.results.import_run` writes and :func:`lvae.report.results.collect` reads)."""
    return (root / PROGRESS_DIR if progress else root) / str(
        cfg.get("profile", "custom")) / rdir.name


def shipped_current(rdir: str | Path, dest_root: str | Path | None = None) -> bool:
    """Whether a finished run is already shipped as it is now (same result and evaluation),
    so shipping again would only rewrite the same evidence."""
    rdir = Path(rdir)
    if not is_done(rdir):
        return False
    dest = _shipped_dir(_results_root(dest_root), rdir,
                        read_json_or_none(rdir / runfolder.CONFIG) or {})
    return all((dest / n).is_file() and (dest / n).read_bytes() == (rdir / n).read_bytes()
               for n in (runfolder.RESULT, runfolder.EVAL, runfolder.LOG))


def _last_log(rdir: Path) -> dict[str, Any]:
    return runfolder.last_log(rdir)


def _checkpoint_facts(rdir: Path) -> dict[str, Any]:
    """The commits and CPU seconds a run still training has spent, from its last checkpoint
    (the log holds only wall time, which counts the time a busy machine took from it)."""
    path = rdir / runfolder.CHECKPOINT
    if not path.exists():
        return {"commits": [], "cpu_time_s": None, "step": None}
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return {"commits": list(ck.get("commits", [])), "cpu_time_s": ck.get("cpu_time_s"),
            "step": ck.get("step")}


def shipped_pictures(shipped: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """``pictures.npz`` of a shipped run, by step then name (empty if it has none)."""
    path = Path(shipped) / runfolder.PICTURES
    if not path.is_file():
        return {}
    out: dict[int, dict[str, np.ndarray]] = {}
    with np.load(path) as z:
        for key in z.files:
            step, name = key.split("/", 1)
            out.setdefault(int(step), {})[name] = z[key]
    return out


#: How many steps :func:`replay` retrains, and what it accepts. Training is chaotic, so a
#: replay on another CPU drifts away from the shipped log as it goes on. Measured on the
#: study's seed-0 runs with ATEN_CPU_CAPABILITY forcing another vector path than the one
#: they trained on (2026-12-06): the largest relative difference of loss, inner loss and
#: reconstruction was 1e-7 (vanilla) and 3e-6 (alpha = 1) within 50 steps, 4e-5 and 9e-5
#: within 100, 1.5e-3 and 5e-4 within 150, and 2.4e-2 (KL 11%) within 300 for vanilla; on
#: the same path, vanilla is bit for bit and alpha = 1 within 2e-6 to step 100. So 50 steps,
#: 300 times inside the tolerance; the rest of the log is checked by its sha256.
REPLAY_STEPS = 50
#: Relative tolerance on loss, inner loss and reconstruction; the KL, which a memorising
#: model drives to near 0 nats, is compared absolutely (nats).
REPLAY_RTOL, REPLAY_KL_ATOL = 1e-3, 1e-3


def replay(shipped: str | Path, steps: int = REPLAY_STEPS, rtol: float = REPLAY_RTOL,
           dataset=None, kl_atol: float = REPLAY_KL_ATOL) -> dict[str, Any]:
    """Retrain the first ``steps`` steps of a shipped run from its config alone and compare
    the logged losses with the shipped ``log.jsonl``, and check the whole log against the
    sha256 its provenance records: provenance that is checked, not only stated.

    Training is deterministic given the config (seeded pool, draws and initialisation), so
    on the same code and library versions the losses agree to float rounding; the threads,
    the CPU's vector unit or a changed kernel move them slightly, and more the longer the
    replay (:data:`REPLAY_STEPS` says what was measured). Loss, inner loss and
    reconstruction are compared relatively (``rtol``), the KL absolutely (``kl_atol``
    nats). An edit to a line past the replayed steps changes the log's hash
    (``log_hash``: "matches", "differs" or "not recorded" for runs shipped before hashes).
    The replay runs on the kind of device the run was trained on (its provenance's
    ``machine.device``): CUDA's generator draws other numbers than the CPU's from the same
    seed, so a CPU run replayed on a GPU (or the reverse) follows other draws and is no
    check at all. A GPU-trained run on a machine without CUDA is not replayed: ``matches``
    is None and ``skipped`` says why.
    Returns ``{"matches", "max_rel_diff", "max_kl_diff", "worst", "steps", "compared",
    "tolerance", "log_hash", "device"}`` (and ``skipped`` when not replayed).
    """


    shipped = Path(shipped)
    config = TrainConfig.load(shipped / runfolder.CONFIG)
    steps = min(steps, config.steps)
    theirs = load_log(shipped)
    theirs = theirs[theirs["step"] <= steps].set_index("step")
    if theirs.empty:
        raise ValueError(f"{shipped}/log.jsonl has no line at or before step {steps}: "
                         "nothing to replay against")
    recorded = ((read_json_or_none(shipped / runfolder.PROVENANCE) or {}).get("sha256")
                or {}).get(runfolder.LOG)
    log_hash = ("not recorded" if recorded is None else "matches"
                if recorded == sha256_file(shipped / runfolder.LOG) else "differs")
    trained_on = trained_device(shipped)
    device = "cpu" if trained_on == "cpu" else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        return {"matches": None, "max_rel_diff": float("nan"), "max_kl_diff": float("nan"),
                "worst": "", "steps": 0, "compared": 0, "tolerance": rtol,
                "log_hash": log_hash, "device": trained_on,
                "skipped": f"trained on {trained_on}: CUDA draws other numbers than the CPU "
                           "from the same seed, so only a CUDA device can replay it"}
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the study's workers train
    try:
        with tempfile.TemporaryDirectory(prefix="lvae-replay-") as tmp:
            train(config.replace(steps=steps), tmp, device=device, progress=False,
                  checkpoint_seconds=None, dataset=dataset)
            ours = load_log(tmp).set_index("step")
    finally:
        torch.set_num_threads(before)
    common = theirs.index.intersection(ours.index)
    keys = [k for k in ("loss", "inner_loss", "recon") if k in theirs and k in ours]
    a = ours.loc[common, keys].to_numpy(float)
    b = theirs.loc[common, keys].to_numpy(float)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    kl = (np.abs(ours.loc[common, "kl"].to_numpy(float) - theirs.loc[common, "kl"].to_numpy(
        float)) if "kl" in theirs and "kl" in ours else np.zeros(0))
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape) if rel.size else None
    max_rel = float(rel.max()) if rel.size else float("nan")
    max_kl = float(kl.max()) if kl.size else 0.0
    text = (f"{keys[worst[1]]} at step {int(common[worst[0]])}: "
            f"{a[worst]:.6g} vs shipped {b[worst]:.6g}") if worst else ""
    if kl.size and max_kl > kl_atol:
        i = int(np.argmax(kl))
        text = f"kl at step {int(common[i])} differs by {max_kl:.3g} nats"
    if log_hash == "differs":
        text = "log.jsonl differs from the sha256 recorded when it was shipped"
    return {
        "matches": bool(rel.size and max_rel <= rtol and max_kl <= kl_atol
                        and log_hash != "differs"),
        "max_rel_diff": max_rel,
        "max_kl_diff": max_kl,
        "worst": text,
        "steps": steps,
        "compared": int(rel.size + kl.size),
        "tolerance": rtol,
        "log_hash": log_hash,
        "device": trained_on,
    }


def record_hashes(folder: str | Path) -> dict[str, str]:
    """Record in ``provenance.json`` the sha256 of every file of a shipped run that has
    none yet (runs shipped before :func:`ship` recorded them): from then on a change to
    any of them is caught (:func:`replay`, :func:`lvae.report.shipped.load_shipped`). Returns
    the hashes added."""
    folder = Path(folder)
    prov = read_json_or_none(folder / runfolder.PROVENANCE)
    if not isinstance(prov, dict):
        raise FileNotFoundError(f"{folder} has no readable provenance.json")
    sums = dict(prov.get("sha256") or {})
    added = {}
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if p.is_file() and name not in sums and name not in (runfolder.PROVENANCE,
                                                             "MODEL_CARD.md"):
            added[name] = sha256_file(p)
    if added:
        prov["sha256"] = dict(sorted({**sums, **added}.items()))
        prov.setdefault("sha256_recorded", now())
        atomic_write_bytes(folder / runfolder.PROVENANCE,
                           (json.dumps(prov, indent=1, sort_keys=True) + "\n").encode())
    return added


def trained_device(folder: str | Path) -> str:
    """What a run folder (shipped or not) was trained on: ``"cpu"`` or the accelerator's
    name, from ``provenance.json`` or ``result.json`` ("cpu" when neither records one)."""
    folder = Path(folder)
    prov = read_json_or_none(folder / runfolder.PROVENANCE) or {}
    machine = prov.get("machine") or (
        (read_json_or_none(folder / runfolder.RESULT) or {}).get("provenance", {}).get("machine"))
    return str((machine or {}).get("device") or "cpu")


# --------------------------------------------------------------------------- the book's view


def _config_columns(cfg: dict[str, Any]) -> dict[str, Any]:

    e = experiment_of(cfg)
    return {"config_id": e.config_id, "label": label(e, cfg.get("lr")), "alpha": e.alpha,
            "beta": e.beta, "neighborhood": e.neighborhood, "seed": e.seed,
            "lr": cfg.get("lr"), "profile": cfg.get("profile")}


def label(e: Experiment, lr: float | None = None) -> str:
    """The configuration as the book names it (:func:`lvae.report.figures.config_label`:
    ``vanilla``,
    ``α=1``, ``β=16``, ``α=1 (input_l2)``), with ``, lr 1e-4`` when given."""

    name = config_label({"alpha": e.alpha, "beta": e.beta, "neighborhood": e.neighborhood})
    return name + (f", lr {lr:.0e}".replace("e-0", "e-") if lr else "")


def paper_points(frame: pd.DataFrame, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The paper's value of each metric for each ``label`` of a milestone frame (Table 1,
    or Table 5 for input-space neighbours), to draw at the paper's budget."""
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    if frame.empty:
        return out
    for lab, g in frame.groupby("label"):
        values = paper_values(float(g["alpha"].iloc[0]), float(g["beta"].iloc[0]),
                              str(g["neighborhood"].iloc[0]))
        for m in metrics:
            if m in values:
                out[m][str(lab)] = values[m]
    return out


def paper_values(alpha: float, beta: float, neighborhood: str) -> dict[str, float]:
    """The paper's numbers for one 3D Shapes configuration: its Table 1 row, or Table 5's
    for input-space neighbours; ``{}`` where the paper has none."""

    rows = [*paper.TABLE1, *[r for r in paper.TABLE5 if r["neighborhood"] == "input_l2"]]
    for r in rows:
        if (r["alpha"], r["beta"]) == (alpha, beta) and (alpha == 0
                                                         or r["neighborhood"] == neighborhood):
            return dict(r["values"])
    return {}


def shipped_runs(root: str | Path | None = None) -> list[tuple[Path, str]]:
    """``(folder, "finished" | "training")`` of every shipped study-kind run under
    ``root`` (``results/`` by default): finished ones, then those still training."""

    root = Path(IMPORTED_DIR if root is None else root)
    found = []
    for base, state in ((root, "finished"), (root / PROGRESS_DIR, "training")):
        for prof in sorted(PROFILES):
            folder = base / prof
            if folder.is_dir():
                found += [(d, state) for d in sorted(folder.iterdir())
                          if visible(d) and (d / "milestones").is_dir()
                          # a progress copy left beside the finished run is not drawn
                          and not (state == "training"
                                   and (root / prof / d.name / runfolder.RESULT).is_file())]
    return found


#: The :func:`readout` values :func:`milestone_frame` carries as columns (with
#: ``heldout_meta`` and ``heldout_adapted``; empty for milestones made before it existed).
READOUT_COLUMNS = ("kl", "kl_meta", "copy_distance", "local_share", "within_row",
                   "object_variance")


def milestone_frame(root: str | Path | None = None) -> pd.DataFrame:
    """Every milestone of every shipped run, one row each: the configuration, seed, lr,
    profile, ``state`` (finished / training), ``step``, every DCI score flattened
    (``dci_nocolor.disentanglement``), ``z_share``, the training log's ``inner_loss`` and
    ``loss`` at that step, and ``diverged_at`` (the step a diverged run stopped at)."""

    rows = []
    for d, state in shipped_runs(root):
        cfg = read_json_or_none(d / runfolder.CONFIG)
        if not isinstance(cfg, dict):
            continue
        log = load_log(d)
        log = log.set_index("step") if len(log) else log
        prov = read_json_or_none(d / runfolder.PROVENANCE) or {}
        diverged_at = prov.get("steps_done") if prov.get("status") == "diverged" else None
        for rec in milestones(d):
            row = {"run_id": d.name, "state": state, "step": rec["step"],
                   "diverged_at": diverged_at, **_config_columns(cfg)}
            for key in ("dci_color", "dci_nocolor"):
                row.update(flatten(rec.get(key, {}), f"{key}."))
            row["z_share"] = rec.get("zshare", {}).get("z_share")
            ro = rec.get("readout") or {}
            for key in READOUT_COLUMNS:
                row[key] = ro.get(key)
            row["heldout_meta"] = (ro.get("heldout") or {}).get("meta")
            row["heldout_adapted"] = (ro.get("heldout") or {}).get("adapted")
            if len(log) and rec["step"] in log.index:
                row["inner_loss"] = float(log.loc[rec["step"], "inner_loss"])
                row["loss"] = float(log.loc[rec["step"], "loss"])
            rows.append(row)
    columns = ["run_id", "state", "step", "config_id", "label", "alpha", "beta",
               "neighborhood", "seed", "lr", "profile", "z_share", "inner_loss", "loss",
               "diverged_at"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def compute_hours(folder: str | Path) -> float:
    """Hours a shipped run cost: training CPU time (its wall time for a run still training)
    plus the wall time of its milestone and final evaluations (one thread each)."""
    folder = Path(folder)
    prov = read_json_or_none(folder / runfolder.PROVENANCE) or {}
    return _hours(float(prov.get("cpu_time_s") or prov.get("wall_time_s") or 0.0), folder)


def _hours(train_seconds: float, folder: Path) -> float:
    """``train_seconds`` plus the wall time of the milestone and final evaluations kept in
    ``folder`` (a worker's run folder or a shipped one: both keep them alike), in hours."""
    seconds = train_seconds
    seconds += sum(float(m.get("wall_time_s") or 0.0) for m in milestones(folder))
    ev = read_json_or_none(folder / runfolder.EVAL) or {}
    seconds += float((ev.get("wall_time_s") or {}).get("total") or 0.0)
    return round(seconds / 3600, 2)


def status_frame(root: str | Path | None = None, runs: tuple[StudyRun, ...] | None = None
                 ) -> pd.DataFrame:
    """The plan beside what is shipped: one row per run of :data:`STUDY` (priority order)
    with its state (finished, diverged, training at step N, planned), steps, where it trained
    (``trained on``: "CPU" or the accelerator's name) and its hours (training on that
    device plus the evaluations, which always run on the CPU)."""

    root = Path(IMPORTED_DIR if root is None else root)
    rows = []
    for i, sr in enumerate(STUDY if runs is None else runs, 1):
        done = root / sr.profile / sr.run_id
        part = root / PROGRESS_DIR / sr.profile / sr.run_id
        folder = done if (done / runfolder.RESULT).is_file() else part
        prov = read_json_or_none(folder / runfolder.PROVENANCE)
        state = ("planned" if not prov else "training" if folder != done
                 else "diverged" if prov.get("status") == "diverged" else "finished")
        prov = prov or {}
        rows.append({"priority": i, "run": sr.name, "purpose": sr.purpose, "state": state,
                     "steps": f"{prov.get('steps_done') or 0:,} / "
                              f"{PROFILES[sr.profile].steps:,}",
                     "lr": PROFILES[sr.profile].lr,
                     "trained on": (_device_label(trained_device(folder)) if prov else None),
                     "hours": compute_hours(folder) if prov else None})
    return pd.DataFrame(rows)


def _device_label(device: str) -> str:
    return "CPU" if device == "cpu" else device


def hours_by_device(status: pd.DataFrame) -> dict[str, float]:
    """Total ``hours`` of :func:`status_frame` per ``trained on`` (runs begun or finished)."""
    begun = status.dropna(subset=["trained on"])
    sums = begun.groupby("trained on")["hours"].sum()
    return {str(k): round(float(v), 2) for k, v in sums.items()}


#: The pilot's arms, as :func:`label` names them (seed 0 of each).
PILOT_ARMS = ("vanilla, lr 1e-3", "vanilla, lr 1e-4", "α=1, lr 1e-3")


def pilot_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The pilot's rows of a :func:`milestone_frame`: seed 0 of :data:`PILOT_ARMS`, of the
    study and the pilot's paper-lr arm only (the diagnosis's controls share their labels)."""
    return frame[(frame["seed"] == 0) & frame["label"].isin(PILOT_ARMS)
                 & frame["profile"].isin(["study", "cpu"])]


def shipped_configs(root: str | Path | None = None, profile: str = "study", seed: int | None = 0
                    ) -> list[tuple[Path, str, dict[str, Any]]]:
    """``(folder, state, config)`` of the shipped runs of ``profile`` (of ``seed`` only,
    unless None), read from each run's own config rather than its folder's name."""
    out = []
    for folder, state in shipped_runs(root):
        cfg = read_json_or_none(folder / runfolder.CONFIG) or {}
        if cfg.get("profile") == profile and (seed is None or cfg.get("seed") == seed):
            out.append((folder, state, cfg))
    return out


def replay_candidates(root: str | Path | None = None) -> dict[str, Path | None]:
    """The finished shipped study run the Evidence page replays for each kind: the first
    vanilla VAE and the first alpha = 1 Local VAE (synthetic neighbours, beta = 1)."""
    found: dict[str, Path | None] = {"vanilla": None, "Local VAE": None}
    for folder, state, cfg in shipped_configs(root, seed=None):
        kind = {0.0: "vanilla", 1.0: "Local VAE"}.get(float(cfg.get("alpha", -1)))
        if (kind and found[kind] is None and state == "finished" and cfg.get("beta") == 1.0
                and cfg.get("neighborhood") == "synthetic"):
            found[kind] = folder
    return found


def replay_checks(root: str | Path | None = None, steps: int = REPLAY_STEPS
                  ) -> list[dict[str, Any]]:
    """:func:`replay` of each kind's :func:`replay_candidates`, as the Evidence page's
    table rows."""
    checks: list[dict[str, Any]] = []
    for kind, folder in replay_candidates(root).items():
        if folder is None:
            checks.append({"kind": kind, "run": "none shipped yet"})
            continue
        r = replay(folder, steps=steps)
        checks.append({"kind": kind, "run": folder.name, "steps replayed": r["steps"],
                       "losses compared": r["compared"],
                       "largest relative difference": f"{r['max_rel_diff']:.1e}",
                       "tolerance": f"{r['tolerance']:.0e}", "log hash": r["log_hash"],
                       "replayed": ("matches" if r["matches"] else
                                    f"not replayed here: {r['skipped']}" if r["matches"] is None
                                    else f"differs: {r['worst']}")})
    return checks


def pilot_table(frame: pd.DataFrame,
                metrics: tuple[str, ...] = ("dci_nocolor.disentanglement",
                                            "dci_nocolor.informativeness")) -> pd.DataFrame:
    """The pilot's arms (rows) against milestones (columns), one block per metric: the
    numbers the pilot's decision rests on, as a table a reader can check."""
    pilot = pilot_frame(frame)
    if pilot.empty:
        return pd.DataFrame()
    blocks = {m.split(".")[1]: pilot.pivot_table(index="label", columns="step", values=m)
              for m in metrics}
    table = pd.concat(blocks, names=["metric", "arm"]).round(3)
    table.columns = [f"{int(c):,}" for c in table.columns]
    return table


#: The study's DCI summary: the final evaluation's metric and its name on the page.
FINAL_DCI = {
    "dci_nocolor.disentanglement": "D w/o colour",
    "dci_color.disentanglement": "D with colour",
    "dci_nocolor.informativeness": "I w/o colour",
}


def _spread(xs: list[Any], digits: int = 3) -> str:
    """``mean [lowest, highest]`` over seeds, the mean alone for one seed, "—" for none."""
    xs = [float(x) for x in xs if x is not None and np.isfinite(float(x))]
    if not xs:
        return "—"
    mean = f"{np.mean(xs):.{digits}f}"
    return mean if len(xs) == 1 else f"{mean} [{min(xs):.{digits}f}, {max(xs):.{digits}f}]"


def _finished(runs: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, dict[str, float]]]:
    """``(name with its seed count, the runs, the paper's values)`` per configuration of
    the study's finished runs (a run still training enters no table, as no verdict)."""

    done = runs[(runs["profile"] == "study") & runs["status"].isin(["completed", "diverged"])]
    for (alpha, beta, nb), g in done.groupby(["alpha", "beta", "neighborhood"], sort=True):
        name = f"{config_label(g.iloc[0].to_dict())} ({len(g)} seed{'s' if len(g) > 1 else ''})"
        yield name, g, paper_values(float(alpha), float(beta), str(nb))


def final_dci_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The study's DCI at a glance: one row per finished configuration, per metric ours
    (``mean [lowest, highest]`` over seeds of the final evaluation: the numbers the claims
    are judged on) beside the paper's. ``runs``: a :func:`lvae.report.results.collect` frame."""
    rows = {}
    for name, g, ref in _finished(runs):
        rows[name] = {}
        for col, label in FINAL_DCI.items():
            rows[name][(label, "ours")] = _spread(g[col].tolist() if col in g else [])
            rows[name][(label, "paper")] = f"{ref[col]:.3f}" if col in ref else "—"
    out = pd.DataFrame.from_dict(rows, orient="index")
    if len(out):
        out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.rename_axis("configuration")


def final_generation_table(runs: pd.DataFrame, frame: pd.DataFrame,
                           copy: dict[str, Any] | None = None) -> pd.DataFrame:
    """What the generations are, per finished configuration: the final evaluation's
    Frechet distance (``mean [lowest, highest]``) and the z-share of each run's last
    milestone (``frame``: :func:`milestone_frame`); with ``copy`` (:func:`copy_baseline`)
    a last row for references copied as they are, the line a memorising model sits on."""
    last = frame[(frame["state"] == "finished") & (frame["profile"] == "study")].sort_values(
        "step").groupby("run_id").last()
    rows: dict[str, dict[str, str]] = {}
    measure = "Fréchet distance"
    for name, g, _ in _finished(runs):
        names = g["frechet.name"].dropna().unique() if "frechet.name" in g else []
        col = f"frechet.{names[0]}" if len(names) else None
        measure = str(names[0]) if len(names) else measure
        zs = [last["z_share"].get(r) for r in g["run_id"]] if "z_share" in last else []
        rows[name] = {"distance": _spread(g[col].tolist() if col in g else [], 1),
                      "z-share": _spread(zs)}
    if copy is not None and rows:
        rows["copies of the references (copy baseline)"] = {
            "distance": f"{copy[copy['name']]:.1f}", "z-share": "0 by construction"}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["distance", "z-share"])
    return out.rename(columns={"distance": measure}).rename_axis("configuration")


def copy_baseline(root: str | Path | None = None) -> dict[str, Any] | None:
    """What a model that copies its references scores on the study's Frechet distance
    (:func:`lvae.evaluation.copy_baseline`), with the real images, sample size and
    features of the first finished study run's own evaluation; None before any finished.
    Beside it, the study's FD-factors read as "generates like the data" or "copies it"."""

    for folder, state in shipped_runs(root):
        ev = read_json_or_none(folder / runfolder.EVAL) or {}
        params, name = ev.get("params", {}), (ev.get("frechet") or {}).get("name")
        if state != "finished" or folder.parent.name != "study" or not name:
            continue
        out = baseline(load_run(folder), int(params["num_fd"]), int(params["seed"]),
                       fd_steps=params.get("fd_steps"), requested=name)
        return {**out, "run": folder.name}
    return None
