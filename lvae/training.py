"""Algorithm 1: train a Local VAE (or the vanilla / beta-VAE baselines) from a config.

``train(config, run_dir)`` is resumable and idempotent: a run folder holds

``config.json``  the :class:`~lvae.config.TrainConfig` (a different config in the same folder
                 is refused, so results never mix),
``checkpoint.pt``  model, optimiser and RNG states, written atomically every
                 ``checkpoint_every`` steps and at least every ``checkpoint_seconds`` (60) of
                 wall time (so a killed run loses minutes, whatever its length); a restart
                 continues from it draw for draw (a latent-kNN bank included),
``snapshots/``   the model's parameters alone at each of ``snapshot_steps`` (milestones a
                 study evaluates later: DCI against training steps),
``log.jsonl``    one JSON line per ``log_every`` steps,
``result.json``  status ``completed`` or ``diverged`` (a non-finite loss stops the run and is
                 recorded, it never escapes as an exception), wall time, provenance
                 (:class:`lvae.records.Result`).

alpha = 0 trains the vanilla VAE through the plain negative ELBO (which the Local VAE
objective reduces to exactly at alpha = 0; ``tests/test_objective.py`` proves it), so the
baselines do not pay for a meta-step they do not use.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lvae import runfolder
from lvae.batched import local_vae_loss
from lvae.config import TrainConfig
from lvae.data import load_dataset
from lvae.data.base import ImageDataset
from lvae.model import VAE, Architecture
from lvae.neighborhoods import Neighborhood, make_neighborhood
from lvae.objective import LocalLoss, LossSpec, vanilla_vae_loss
from lvae.pool import ImagePool, split_pool
from lvae.records import Result
from lvae.store import atomic_torch_save, atomic_write_bytes, git_revision, now
from lvae.store import machine as machine_info


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_dataset(config: TrainConfig) -> ImageDataset:

    return load_dataset(config.dataset, resolution=config.resolution, path=config.data_path,
                        **config.data_options)


def architecture(config: TrainConfig, dataset: ImageDataset) -> Architecture:
    return Architecture(resolution=config.resolution, channels=dataset.observation_shape[2],
                        latent_dim=config.latent_dim)


def loss_spec(config: TrainConfig) -> LossSpec:
    return LossSpec(likelihood=config.likelihood, beta=config.beta, reduction=config.reduction,
                    gaussian_sigma=config.gaussian_sigma)


def decoder_scale(config: TrainConfig) -> float:
    """The decoder's inner step relative to eq. 7's: K for Algorithm 1 read literally."""
    return float(config.k) if config.algorithm1_literal else 1.0


def neighborhood_for(config: TrainConfig, dataset: ImageDataset) -> Neighborhood:
    if config.neighborhood == "synthetic":
        # section 3.1: "the noise distribution assumed as the observation process", which
        # under a Gaussian decoder is that Gaussian (its sigma), else the dataset's
        if config.likelihood == "gaussian":
            return make_neighborhood("synthetic", config.k, noise="gaussian",
                                     sigma=config.gaussian_sigma)
        return make_neighborhood("synthetic", config.k, noise=dataset.noise_model)
    if config.neighborhood == "latent_knn":
        return make_neighborhood("latent_knn", config.k, refresh=config.latent_refresh)
    return make_neighborhood(config.neighborhood, config.k)


@dataclass
class Run:
    """A trained (or training) run loaded from its folder."""

    run_dir: Path
    config: TrainConfig
    model: VAE
    dataset: ImageDataset
    pool: ImagePool
    heldout: np.ndarray  # dataset indices never trained on
    step: int
    result: Result | None

    @property
    def arch(self) -> Architecture:
        return self.model.arch

    @property
    def loss(self) -> LossSpec:
        return loss_spec(self.config)

    @property
    def status(self) -> str:
        return self.result.status if self.result is not None else "incomplete"


def _check_config_matches(run_dir: Path, config: TrainConfig) -> None:
    old, new = runfolder.read_config(run_dir), json.loads(config.to_json())
    if old is not None and old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(
            f"{run_dir} already holds a run with a different config (fields {diff}); "
            "use a new run folder, or delete this one to start over"
        )


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    keep = [json.dumps(r) for r in runfolder.read_log(path.parent) if r["step"] <= step]
    atomic_write_bytes(path, ("\n".join(keep) + "\n").encode() if keep else b"")


#: The final parameters of a run shipped under ``results/`` (float16, no optimiser state).
SHIPPED_MODEL = runfolder.MODEL


def train(config: TrainConfig, run_dir: str | Path, device: torch.device | str | None = None,
          progress: bool = True, dataset: ImageDataset | None = None,
          snapshot_steps: Iterable[int] = (), checkpoint_seconds: float | None = 60.0,
          on_snapshot: Callable[[int, Path], None] | None = None) -> dict[str, Any]:
    """Train (or resume, or skip if finished) the run in ``run_dir``; returns result.json.

    ``dataset`` overrides the one the config names (tests pass small in-memory datasets).
    ``snapshot_steps``: steps after which the parameters are kept in ``snapshots/`` (the
    last step always is when any are asked for); ``on_snapshot(step, path)`` is called after
    each is written, e.g. to evaluate it while training goes on. Neither changes training,
    so neither is part of the config. ``checkpoint_seconds``: also checkpoint when this much
    wall time passed since the last one (None: by steps only).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config_matches(run_dir, config)
    done = runfolder.read_result(run_dir)
    if done is not None:
        return done.to_dict()
    atomic_write_bytes(run_dir / runfolder.CONFIG, (config.to_json() + "\n").encode())

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(config.seed)
    dataset = dataset if dataset is not None else build_dataset(config)
    arch = architecture(config, dataset)
    loss = loss_spec(config)
    pool_idx, _ = split_pool(len(dataset), config.pool_size, config.heldout_size, config.seed)
    pool = ImagePool(dataset, pool_idx)
    model = VAE(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas,
                           eps=config.adam_eps)
    rng = np.random.RandomState(config.seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed)
    start, wall_before, cpu_before = 0, 0.0, 0.0
    ck: dict | None = None
    commits: list[str] = []
    started, resumed = now(), None  # a resumed run keeps the time its first step began
    ckpt_path = run_dir / runfolder.CHECKPOINT
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        rng.set_state(ck["numpy_rng"])
        gen.set_state(ck["torch_rng"].cpu() if device.type == "cpu" else ck["torch_rng"])
        start, wall_before = ck["step"], ck["wall_time_s"]
        cpu_before, commits = ck.get("cpu_time_s", 0.0), list(ck.get("commits", []))
        resumed, started = started, ck.get("started") or started
    commit = git_revision()
    if commit not in commits:  # a run resumed across sessions may span commits
        commits.append(commit)
    snap_at = {int(s) for s in snapshot_steps}
    if snap_at:
        snap_at.add(config.steps)
    # lines past the checkpoint (all of them when there is none: a run killed before its
    # first checkpoint starts again from step 0) are redone, so never logged twice
    _trim_log(run_dir / runfolder.LOG, start)

    use_meta = config.alpha > 0
    nbhd = neighborhood_for(config, dataset) if use_meta else None
    if nbhd is not None:
        nbhd.setup(pool, encode_means=lambda x: model.encode(x.to(device))[0])
        if ck is not None:  # a checkpoint before this key existed: setup's state stands
            nbhd.load_state(ck.get("neighborhood", {}))

    t0, c0 = time.perf_counter(), time.process_time()
    last_ckpt = t0

    def save(at: int) -> None:
        nonlocal last_ckpt
        _save(ckpt_path, model, opt, rng, gen, at, wall_before + time.perf_counter() - t0,
              cpu_before + time.process_time() - c0, commits, started,
              nbhd.state() if nbhd is not None else {})
        last_ckpt = time.perf_counter()

    log_f = (run_dir / runfolder.LOG).open("a")
    status, last = "completed", float("nan")
    step = start
    try:
        bar = tqdm(range(start, config.steps), desc=f"train {run_dir.name}", disable=not progress,
                   initial=start, total=config.steps)
        for step in bar:
            out = train_step(model, opt, pool, nbhd, config, arch, loss, rng, gen, step, device)
            last = float(out.loss.detach())
            if not math.isfinite(last):
                status = "diverged"
                break
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                rec = {"step": step + 1, "loss": last, "inner_loss": float(out.inner_loss),
                       "recon": float(out.recon), "kl": float(out.kl),
                       "wall_time_s": round(wall_before + time.perf_counter() - t0, 3)}
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
                bar.set_postfix(loss=f"{last:.4g}")
            if step + 1 in snap_at and step + 1 < config.steps:
                w, c = time.perf_counter(), time.process_time()
                _snapshot(run_dir, model, step + 1, on_snapshot)
                # time spent evaluating a snapshot is not training time
                t0 += time.perf_counter() - w
                c0 += time.process_time() - c
            due = (checkpoint_seconds is not None
                   and time.perf_counter() - last_ckpt >= checkpoint_seconds)
            if ((step + 1) % config.checkpoint_every == 0 or due) and step + 1 < config.steps:
                save(step + 1)
    finally:
        log_f.close()
    wall = wall_before + time.perf_counter() - t0
    cpu = cpu_before + time.process_time() - c0
    final_step = step + 1 if status == "completed" else step
    if status == "completed":
        save(final_step)
        if snap_at:
            _snapshot(run_dir, model, final_step, None)
    effective_alpha = loss.effective_alpha(config.alpha, arch)
    result = Result(
        status=status,
        steps_done=final_step,
        steps=config.steps,
        final_loss=last,
        wall_time_s=round(wall, 3),
        sec_per_step=round(wall / max(1, final_step), 5),
        cpu_time_s=round(cpu, 3),
        effective_alpha=effective_alpha,
        started=started,  # the first step of the run, resumed or not
        resumed=resumed,  # when this process took it up from a checkpoint (None: it did not)
        finished=now(),
        provenance={"commit": commit, "commits": commits, "profile": config.profile,
                    "seed": config.seed, "machine": machine_info()},
        message=(f"non-finite loss at step {step + 1} (alpha={config.alpha}, effective "
                 f"alpha {effective_alpha:.3g}): run stopped") if status == "diverged" else None,
    )
    runfolder.write_result(run_dir, result)
    if snap_at and status == "completed" and on_snapshot is not None:
        on_snapshot(final_step, runfolder.snapshot_path(run_dir, final_step))
    return result.to_dict()


def train_step(model: VAE, opt: torch.optim.Optimizer, pool: ImagePool,
               nbhd: Neighborhood | None, config: TrainConfig, arch: Architecture,
               loss: LossSpec, rng: np.random.RandomState, gen: torch.Generator, step: int,
               device: torch.device) -> LocalLoss:
    """One meta-update (Algorithm 1, lines 2-8) or, at alpha = 0, one VAE update."""
    b, latent = config.batch_size, config.latent_dim
    pos = rng.randint(len(pool), size=b)
    anchors = pool.tensor(pos, device)
    params = model.params()
    eps_a = torch.randn(b, latent, generator=gen, device=device)
    if nbhd is None:
        out = vanilla_vae_loss(params, arch, anchors, eps_a, loss)
    else:
        nbhd.step(step)
        neighbors = nbhd.sample(pos, anchors, gen)
        eps_i = torch.randn(config.k, b, latent, generator=gen, device=device)
        out = local_vae_loss(params, arch, anchors, neighbors, eps_a, eps_i, config.alpha, loss,
                             first_order=config.first_order,
                             decoder_scale=decoder_scale(config),
                             prior_sigma=config.adapted_prior_sigma)
    if not torch.isfinite(out.loss):
        return out
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    opt.step()
    return out


def _save(path: Path, model: VAE, opt: torch.optim.Optimizer, rng: np.random.RandomState,
          gen: torch.Generator, step: int, wall: float, cpu: float = 0.0,
          commits: list[str] | None = None, started: str | None = None,
          neighborhood: dict | None = None) -> None:
    atomic_torch_save(path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "numpy_rng": rng.get_state(), "torch_rng": gen.get_state(),
                             "step": step, "wall_time_s": wall, "cpu_time_s": cpu,
                             "commits": commits or [], "started": started,
                             "neighborhood": neighborhood or {}})


def _snapshot(run_dir: Path, model: VAE, step: int,
              on_snapshot: Callable[[int, Path], None] | None) -> None:
    path = runfolder.snapshot_path(run_dir, step)
    atomic_torch_save(path, {"model": model.state_dict(), "step": step})
    if on_snapshot is not None:
        on_snapshot(step, path)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu",
             dataset: ImageDataset | None = None, snapshot: int | None = None) -> Run:
    """A run folder as a :class:`Run` (model in eval mode at its last checkpoint, or at
    the snapshot of step ``snapshot``)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / runfolder.CONFIG
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    config = TrainConfig.load(cfg_path)
    dataset = dataset if dataset is not None else build_dataset(config)
    model = VAE(architecture(config, dataset)).to(device)
    step = 0
    ckpt = (run_dir / runfolder.CHECKPOINT if snapshot is None
            else runfolder.snapshot_path(run_dir, snapshot))
    if snapshot is None and not ckpt.exists() and (run_dir / SHIPPED_MODEL).exists():
        ckpt = run_dir / SHIPPED_MODEL  # a shipped run: final parameters, no optimiser
    if snapshot is not None and not ckpt.exists():
        have = sorted(runfolder.snapshots(run_dir))
        raise FileNotFoundError(f"{run_dir} has no snapshot at step {snapshot} (it has {have})")
    if ckpt.exists():
        ck = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
        step = ck["step"]
    model.eval()
    pool_idx, heldout = split_pool(len(dataset), config.pool_size, config.heldout_size,
                                   config.seed)
    return Run(run_dir, config, model, dataset, ImagePool(dataset, pool_idx), heldout, step,
               runfolder.read_result(run_dir))
