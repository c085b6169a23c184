"""What the study measures on a snapshot: the z-share, the memorisation readout, the
milestone records, and the pictures kept of what each snapshot draws.

:func:`milestone_eval` writes ``milestones/step_NNNNNN.json`` per snapshot (a
:class:`lvae.records.Milestone`): DCI with and without colour on the meta-encoder's means,
:func:`z_share`, the measure of the overfitting the paper's Figure 3 argues against, and
the :func:`readout` the diagnosis judges by; the pictures are rendered beside it while the
snapshot is loaded (:func:`pictures_of`).
"""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvae import runfolder
from lvae.data.base import to_tensor
from lvae.evaluation import disentanglement_metrics, heldout_neg_elbo, jsonable
from lvae.generation import (
    adapted_model,
    inner_step_sq_norms,
    localized_samples,
    meta_samples,
    reconstructions,
    represent,
)
from lvae.metrics.figure3 import object_factors
from lvae.records import Milestone
from lvae.store import atomic_write_bytes, git_revision, now
from lvae.training import SHIPPED_MODEL, load_run

#: DCI sample sizes at a milestone: smaller than the final evaluation's, one GBT seed.
MILESTONE_DCI = {"num_train": 2000, "num_test": 1000}


#: References (rows) and prior codes (columns) of the z-share grid.
ZSHARE_REFS, ZSHARE_CODES = 16, 16


MILESTONE_VERSION = 1


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
    cols = object_factors(dataset)
    if not cols:
        return None
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


def _grid_readout(run: Any, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The z-share grid's localized generations of a loaded model and its :func:`readout`:
    what a milestone record and a shipped run's added readout both compute."""
    refs, z, idx = _references_and_codes(run, ZSHARE_REFS, ZSHARE_CODES,
                                         np.random.RandomState(seed), with_indices=True)
    samples = localized_samples(run, refs, z, seed=seed).numpy()
    return samples, readout(run, refs, idx, samples, seed)


def milestone_eval(rdir: str | Path, step: int, seed: int = 0, dataset=None,
                   force: bool = False, dci_sizes: dict[str, int] | None = None
                   ) -> Milestone:
    """DCI (with and without colour, meta codes), :func:`z_share` and the memorisation
    :func:`readout` of one snapshot. A record from before the readout existed gains it
    (its DCI kept) while the snapshot is still there.

    ``dci_sizes`` overrides :data:`MILESTONE_DCI` (tests use tiny samples).
    """

    sizes = dict(MILESTONE_DCI if dci_sizes is None else dci_sizes)

    old = runfolder.read_milestone(rdir, step)
    if (not force and old is not None and old.version == MILESTONE_VERSION
            and (old.sample_counts or {}).get("num_train") == sizes["num_train"]):
        if old.readout is not None or not runfolder.snapshot_path(rdir, step).is_file():
            return old
        # a record made before the readout existed: add it, keep its DCI
        t0 = time.perf_counter()
        run = load_run(rdir, snapshot=step, dataset=dataset)
        record = replace(old, readout=jsonable(_grid_readout(run, seed)[1]),
                         readout_wall_time_s=round(time.perf_counter() - t0, 2))
        runfolder.write_milestone(rdir, record)
        return record
    t0 = time.perf_counter()
    run = load_run(rdir, snapshot=step, dataset=dataset)
    metrics = disentanglement_metrics(run.dataset, represent(run, "meta"), seed=seed,
                                      n_jobs=1, **sizes)
    samples, ro = _grid_readout(run, seed)
    record = Milestone(
        step=step,
        version=MILESTONE_VERSION,
        metrics=jsonable({k: v for k, v in metrics.items() if k.startswith(("dci_", "mig"))}),
        zshare=jsonable(z_share(samples)),
        readout=jsonable(ro),
        sample_counts=dict(sizes, zshare_refs=ZSHARE_REFS, zshare_codes=ZSHARE_CODES),
        pictures=_keep_pictures(rdir, step, run, seed),
        wall_time_s=round(time.perf_counter() - t0, 2),
        evaluated=now(),
        commit=git_revision(),
    )
    runfolder.write_milestone(rdir, record)
    return record


def inner_step_shipped(folder: str | Path, seed: int = 0) -> dict[str, float]:
    """The inner step's squared length (:func:`lvae.generation.inner_step_sq_norms`) of a
    shipped Local VAE's final model (its ``model.pt``, float16), averaged over the z-share
    grid's references: ``{"encoder": ..., "decoder": ..., "step": ...}``. How far one
    step moves the decoder is what eq. 5's prior penalises and memorisation needs."""
    run = load_run(folder)
    refs, _, _ = _references_and_codes(run, ZSHARE_REFS, 1, np.random.RandomState(seed),
                                       with_indices=True)
    sq = inner_step_sq_norms(run, refs, seed=seed)
    return {"encoder": float(sq["encoder"].mean()), "decoder": float(sq["decoder"].mean()),
            "step": run.step}


def readout_shipped(folder: str | Path, seed: int = 0) -> Milestone | None:
    """Add the :func:`readout` to the last milestone of a shipped, finished run, from its
    ``model.pt`` (the final parameters are that milestone's snapshot, in float16): runs
    shipped before the readout existed get it where their weights allow. Returns the new
    record, or None when there is nothing to do (already there, no model, other step)."""

    folder = Path(folder)
    recs = runfolder.read_milestones(folder)
    if not recs or recs[-1].readout is not None or not (folder / SHIPPED_MODEL).is_file():
        return None
    _check_shipped_milestone(folder, recs[-1].step)
    run = load_run(folder)
    if run.step != recs[-1].step:
        return None
    t0 = time.perf_counter()
    record = replace(recs[-1], readout=jsonable(_grid_readout(run, seed)[1]),
                     readout_wall_time_s=round(time.perf_counter() - t0, 2),
                     readout_from=f"{SHIPPED_MODEL} (float16)")
    _reseal_shipped_milestone(folder, record)
    return record


def heldout_shipped(folder: str | Path, seed: int = 0) -> Milestone | None:
    """Add the adapted model's held-out negative ELBO to the last milestone of a shipped,
    finished run whose readout lacks it, from its ``model.pt`` (that milestone's snapshot,
    in float16). Milestones of kNN runs evaluated before :func:`heldout_neg_elbo` adapted
    under kNN neighbourhoods (7 December 2026) hold only the meta-model's value; their
    weights give the other. The meta-model's value is computed again beside it
    (``meta_from_model``): against the recorded one it shows what the float16 weights
    change. The run's provenance gets the rewritten file's sha256 (shipped files are
    verified). Returns the new record, or None when there is nothing to do."""

    folder = Path(folder)
    recs = runfolder.read_milestones(folder)
    held = ((recs[-1].readout or {}).get("heldout") or {}) if recs else {}
    if (not held or held.get("adapted") is not None or not held.get("num_images")
            or not (folder / SHIPPED_MODEL).is_file()):
        return None
    _check_shipped_milestone(folder, recs[-1].step)
    run = load_run(folder)
    if run.step != recs[-1].step or run.config.alpha <= 0:
        return None
    t0 = time.perf_counter()
    got = heldout_neg_elbo(run, int(held["num_images"]), seed)
    new_held = {**held, "adapted": got["adapted"], "meta_from_model": got["meta"],
                "adapted_from": f"{SHIPPED_MODEL} (float16), {now()}",
                "adapted_wall_time_s": round(time.perf_counter() - t0, 2)}
    record = replace(recs[-1], readout=jsonable({**recs[-1].readout, "heldout": new_held}))
    _reseal_shipped_milestone(folder, record)
    return record


def _check_shipped_milestone(folder: Path, step: int) -> str:
    """Refuse to touch a shipped milestone that no longer matches the sha256 its provenance
    records (a changed file is never re-sealed as if it were the shipped one); its key."""
    from lvae.report.shipped import verify_shipped

    key = runfolder.milestone_path(folder, step).relative_to(folder).as_posix()
    verify_shipped(folder, (key,))
    return key


def _reseal_shipped_milestone(folder: Path, record: Milestone) -> None:
    """Rewrite a shipped run's milestone with ``record``, in the shipped files' format
    (:func:`lvae.runfolder.shipped_json`), and record its new sha256 in the provenance
    where one was recorded, so that the verified files still verify. The one way the
    backfills (:func:`readout_shipped`, :func:`heldout_shipped`) change a shipped run."""
    from lvae.report.shipped import sha256_file

    key = _check_shipped_milestone(folder, record.step)
    path = folder / key
    atomic_write_bytes(path, runfolder.shipped_json(record.to_dict()))
    prov = runfolder.read_provenance(folder)
    sums = dict((prov.sha256 or {}) if prov is not None else {})
    if key in sums:
        runfolder.write_provenance(folder, replace(prov, sha256={**sums,
                                                                 key: sha256_file(path)}))


def _keep_pictures(rdir: str | Path, step: int, run: Any, seed: int) -> str:
    """Render what the snapshot draws now, while it is loaded, beside the milestone's
    record (shipping then copies them instead of reloading every snapshot)."""
    path = runfolder.pictures_path(rdir, step)
    atomic_write_bytes(path, npz_bytes(pictures_of(run, seed)))
    return path.name


#: Pictures kept per milestone: references (rows) and shared prior codes (columns).
PICTURE_REFS, PICTURE_CODES = 4, 6


@torch.no_grad()
def milestone_pictures(rdir: str | Path, step: int, seed: int = 0, dataset=None
                       ) -> dict[str, np.ndarray]:
    """What a snapshot draws (:func:`pictures_of`): the ones rendered when the milestone
    was evaluated (``milestones/step_NNNNNN.npz``), else rendered from the snapshot."""

    kept = runfolder.pictures_path(rdir, step)
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


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as the bytes of a compressed ``.npz`` (the pictures kept and shipped)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


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
