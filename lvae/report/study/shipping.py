"""Shipping a study run into the repository, and what a shipped run's files prove.

:func:`ship` copies a run into ``results/<profile>/<run_id>/`` with its milestones, its
final parameters in float16, a few pictures per milestone and a ``provenance.json`` (a
:class:`lvae.records.Provenance`) recording the sha256 of every file, so the book shows
what the trained models do without retraining them; a run still training goes to
``results/progress/`` with its checkpoint, which :func:`resume_from_shipped` seeds another
machine's folder from. :func:`replay` retrains a shipped run's first steps and checks its
log; :func:`trained_device` and :func:`_hours` say where a run trained and what it cost.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvae import runfolder
from lvae.config import TrainConfig
from lvae.records import Result
from lvae.report.cards import CARD_NAME, write_card
from lvae.report.results import (
    IMPORT_FILES,
    import_run,
    load_log,
    replace_folder,
    shipped_folder,
)
from lvae.report.shipped import results_root, sha256_file
from lvae.report.study.measures import milestone_pictures, npz_bytes, shipped_pictures
from lvae.report.study.plans import StudyRun
from lvae.store import atomic_write_bytes, git_revision, now
from lvae.training import SHIPPED_MODEL, train


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
    result = runfolder.read_result(rdir)
    status = result.status if result is not None else None
    cfg = runfolder.read_config(rdir) or {}
    finished = runfolder.finished(rdir) is not None
    snaps = sorted(runfolder.snapshots(rdir))
    extra = {runfolder.milestone_path("", m.step).as_posix(): runfolder.shipped_json(m.to_dict())
             for m in runfolder.read_milestones(rdir)}
    if status == "completed":
        extra[SHIPPED_MODEL] = _model_bytes(rdir)
    if status != "diverged" and snaps:  # completed, or still training
        # pictures of snapshots another machine took (a run resumed from a shipped
        # checkpoint has them only in its seeded pictures.npz), then this machine's
        pics = {f"{step}/{k}": v for step, named in shipped_pictures(rdir).items()
                for k, v in named.items()}
        pics.update({f"{step}/{k}": v for step in snaps
                     for k, v in milestone_pictures(rdir, step).items()})
        extra[runfolder.PICTURES] = npz_bytes(pics)
    if finished:
        made = result.provenance or {}
        facts = {"status": result.status, "steps_done": result.steps_done,
                 "wall_time_s": result.wall_time_s, "cpu_time_s": result.cpu_time_s,
                 "commits": made.get("commits", [made.get("commit")]),
                 "machine": made.get("machine"), **_start_facts(result),
                 "finished": result.finished}
        files = {n: (rdir / n).read_bytes() for n in IMPORT_FILES if (rdir / n).is_file()}
    else:
        ck = _checkpoint_facts(rdir)
        facts = {"status": "training", "steps_done": ck["step"] or 0,
                 "wall_time_s": runfolder.last_log(rdir).get("wall_time_s"),
                 "cpu_time_s": ck["cpu_time_s"], "commits": ck["commits"], "machine": None,
                 "finished": None}
        # what another machine resumes from (resume_from_shipped): the last checkpoint
        # (parameters, Adam's state, both generators) and the log up to it
        files = {n: (rdir / n).read_bytes() for n in (runfolder.CONFIG, runfolder.LOG, RESUME_FILE)
                 if (rdir / n).is_file()}
    extra[runfolder.PROVENANCE] = runfolder.shipped_json({
        "profile": cfg.get("profile"), "steps": cfg.get("steps"), "lr": cfg.get("lr"),
        **facts, "shipped": now(), "shipped_by": git_revision(),
        "sha256": {n: hashlib.sha256(b).hexdigest() for n, b in sorted({**files, **extra}.items())
                   if n != runfolder.PROVENANCE},
    })
    root = results_root(dest_root)
    progress_copy = _shipped_dir(root, rdir, cfg, progress=True)
    if not finished:
        return replace_folder(progress_copy, {**files, **extra})
    dest = import_run(rdir, root, extra=extra)
    if progress_copy.exists():
        shutil.rmtree(progress_copy)
    if status == "completed":
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
    src = shipped_folder(results_root(root), sr.profile, sr.run_id, progress=True)
    if (rdir / runfolder.CONFIG).is_file() or not (src / RESUME_FILE).is_file():
        return False
    sums = runfolder.recorded_sha256(src)
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


def _start_facts(result: Result) -> dict[str, Any]:
    """When a run began: ``started`` (its first step) and ``resumed`` (when the last process
    took it up), as training records them. Results written before training kept the first
    start (2026-11-30) hold only the last process's start: that is named
    ``last_started``, so a 5-hour run is not read as having started 30 minutes ago."""
    if result.holds("resumed"):
        return {"started": result.started, "resumed": result.resumed}
    return {"last_started": result.started} if result.holds("started") else {}


def _shipped_dir(root: Path, rdir: Path, cfg: dict[str, Any], progress: bool = False) -> Path:
    """Where :func:`ship` puts a run: ``<root>[/progress]/<profile>/<run_id>`` (the layout
    :func:`lvae.report.results.import_run` writes and :func:`lvae.report.results.collect` reads)."""
    return shipped_folder(root, str(cfg.get("profile", "custom")), rdir.name, progress)


def shipped_current(rdir: str | Path, dest_root: str | Path | None = None) -> bool:
    """Whether a finished run is already shipped as it is now (same result and evaluation),
    so shipping again would only rewrite the same evidence."""
    rdir = Path(rdir)
    if runfolder.finished(rdir) is None:
        return False
    dest = _shipped_dir(results_root(dest_root), rdir, runfolder.read_config(rdir) or {})
    return all((dest / n).is_file() and (dest / n).read_bytes() == (rdir / n).read_bytes()
               for n in (runfolder.RESULT, runfolder.EVAL, runfolder.LOG))


def _checkpoint_facts(rdir: Path) -> dict[str, Any]:
    """The commits and CPU seconds a run still training has spent, from its last checkpoint
    (the log holds only wall time, which counts the time a busy machine took from it)."""
    path = rdir / runfolder.CHECKPOINT
    if not path.exists():
        return {"commits": [], "cpu_time_s": None, "step": None}
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return {"commits": list(ck.get("commits", [])), "cpu_time_s": ck.get("cpu_time_s"),
            "step": ck.get("step")}


def trained_device(folder: str | Path) -> str:
    """What a run folder (shipped or not) was trained on: ``"cpu"`` or the accelerator's
    name, from ``provenance.json`` or ``result.json`` ("cpu" when neither records one)."""
    prov = runfolder.read_provenance(folder)
    machine = prov.machine if prov is not None else None
    if not machine:
        result = runfolder.read_result(folder)
        machine = result.machine if result is not None else None
    return str((machine or {}).get("device") or "cpu")


def _device_label(device: str) -> str:
    return "CPU" if device == "cpu" else device


def _hours(train_seconds: float, folder: Path) -> float:
    """``train_seconds`` plus the wall time of the milestone and final evaluations kept in
    ``folder`` (a worker's run folder or a shipped one: both keep them alike), in hours."""
    seconds = train_seconds
    seconds += sum(float(m.wall_time_s or 0.0) for m in runfolder.read_milestones(folder))
    ev = runfolder.read_eval(folder)
    seconds += float(((ev.wall_time_s if ev is not None else None) or {}).get("total") or 0.0)
    return round(seconds / 3600, 2)


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
    recorded = runfolder.recorded_sha256(shipped).get(runfolder.LOG)
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
    prov = runfolder.read_provenance(folder)
    if prov is None:
        raise FileNotFoundError(f"{folder} has no readable provenance.json")
    sums = dict(prov.sha256 or {})
    added = {}
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if p.is_file() and name not in sums and name not in (runfolder.PROVENANCE, CARD_NAME):
            added[name] = sha256_file(p)
    if added:
        runfolder.write_provenance(folder, replace(
            prov, sha256=dict(sorted({**sums, **added}.items())),
            sha256_recorded=prov.sha256_recorded or now()))
    return added
