"""The grid on a real Dask ``LocalCluster`` (loopback, 2 worker processes), a worker killed.

The smoke grid runs the real experiment notebook. While it runs, one worker process is
killed with SIGKILL in the middle of a notebook (as an out-of-memory kill or a lost node
would); its nanny starts a new one, the scheduler reschedules the task, training resumes
from its last checkpoint, and the grid completes with every result present exactly once. A
second invocation finds everything done.

The default suite runs a slice of the smoke grid that has every neighbourhood kind and both
datasets (4 runs, about a minute on 2 quiet cores); the whole grid (16 runs) is the same
test marked ``slow``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import lvae.report.reproduce as rp

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

RESULT_FILES = ("config.json", "result.json", "eval.json", "experiment.ipynb",
                "reproduce.json", "log.jsonl")


def _kill_a_busy_worker(ex: rp.DaskExecutor, out: Path, record: dict,
                        stop: threading.Event) -> None:
    """SIGKILL the first worker seen executing a notebook (a partial notebook on disk)."""
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        busy = {w: keys for w, keys in ex.client.processing().items() if keys}
        if busy and list(out.glob("smoke/*/.experiment.*.tmp.ipynb")):
            worker, keys = next(iter(busy.items()))
            pid = ex.client.run(os.getpid, workers=[worker])[worker]
            os.kill(pid, signal.SIGKILL)
            record.update(worker=worker, pid=pid, keys=list(keys))
            return
        time.sleep(0.1)


def _slice() -> list:
    """Vanilla, alpha = 1 with synthetic and input-l2 neighbourhoods (3D Shapes), and
    alpha = 1e-2 with latent kNN (CarsNORB): the grid's every kind of run."""
    from lvae.report.grid import experiments

    keep = {"shapes3d-a0e+00-b1-synthetic-s0", "shapes3d-a1e+00-b1-synthetic-s0",
            "shapes3d-a1e+00-b1-input_l2-s0", "carsnorb-a1e-02-b1-latent_knn-s0"}
    grid = [e for e in experiments() if e.run_id in keep]
    assert len(grid) == len(keep)
    return grid


@pytest.mark.parametrize("which", ["slice", pytest.param("whole", marks=pytest.mark.slow)])
def test_killed_worker_grid_completes_exactly_once(tmp_path: Path, which: str):
    out = tmp_path / "runs"
    grid = _slice() if which == "slice" else None
    planned = rp.plan("smoke", out, jobs=2, grid=grid)
    ex = rp.DaskExecutor(jobs=2)
    killed: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(ex, out, killed, stop))
    try:
        killer.start()
        s = rp.reproduce("smoke", out, jobs=2, executor=ex, book=False, progress=False,
                         grid=grid)
    finally:
        stop.set()
        killer.join()
        ex.close()
    assert killed, "no worker was killed: the grid finished before the killer saw it busy"
    assert s.ok, s.report()
    assert len(s.executed) == len(planned) and not s.skipped

    run_dirs = sorted(d for d in (out / "smoke").iterdir() if d.is_dir())
    assert [d.name for d in run_dirs] == sorted(p.experiment.run_id for p in planned)
    for d in run_dirs:
        names = {p.name for p in d.iterdir()}
        missing = [f for f in RESULT_FILES if f not in names]
        status = json.loads((d / "result.json").read_text())["status"] if \
            "result.json" in names else None
        if status == "diverged":
            missing = [f for f in missing if f != "log.jsonl"]
        assert not missing, f"{d.name} lacks {missing}"
        leftovers = [n for n in names if n.startswith(".") or ".tmp" in n]
        assert not leftovers, f"{d.name}: half-written files left behind: {leftovers}"
        steps = [json.loads(ln)["step"] for ln in (d / "log.jsonl").read_text().splitlines()
                 if ln.strip()] if (d / "log.jsonl").is_file() else []
        assert steps == sorted(set(steps)), f"{d.name}: a step logged twice: {steps}"
        assert json.loads((d / "reproduce.json").read_text())["status"] in ("completed",
                                                                             "diverged")
    stamps = {d.name: (d / "eval.json").stat().st_mtime_ns for d in run_dirs}

    again = rp.reproduce("smoke", out, jobs=2, book=False, progress=False, grid=grid)
    assert again.ok and again.executed == [] and len(again.skipped) == len(planned)
    assert stamps == {d.name: (d / "eval.json").stat().st_mtime_ns for d in run_dirs}


def test_a_task_whose_worker_always_dies_is_recorded_failed(tmp_path: Path):
    """A notebook that kills its worker every time: retried, then failed with its partial
    notebook, and the other runs go on."""
    import nbformat as nbf

    from lvae.report.grid import Experiment

    nb = nbf.v4.new_notebook(cells=[
        nbf.v4.new_code_cell('alpha = 1.0\nout_dir = "x"\nprofile = "smoke"\ndataset = "s"\n'
                             'beta = 1.0\nneighborhood = "synthetic"\nseed = 0\n'
                             'threads = None', metadata={"tags": ["parameters"]}),
        nbf.v4.new_code_cell(
            "import os, signal, json\n"
            "from lvae.report.params import experiment_config\n"
            "setup = experiment_config(dataset=dataset, alpha=alpha, beta=beta, "
            "neighborhood=neighborhood, seed=seed, profile=profile, out_dir=out_dir, "
            "threads=threads)\n"
            "if alpha == 7:\n"
            "    os.kill(os.getppid(), signal.SIGKILL)  # the worker running this kernel\n"
            "    import time; time.sleep(30)\n"
            "d = setup.run_dir; d.mkdir(parents=True, exist_ok=True)\n"
            "(d / 'config.json').write_text(setup.config.to_json())\n"
            "(d / 'result.json').write_text(json.dumps({'status': 'completed'}))\n"
            "(d / 'eval.json').write_text(json.dumps({'status': 'completed'}))\n"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "killer.ipynb"
    nbf.write(nb, path)
    out = tmp_path / "runs"
    grid = [Experiment("shapes3d", 7.0), Experiment("shapes3d", 1.0)]
    s = rp.reproduce("smoke", out, grid=grid, notebook=path, jobs=2, book=False,
                     progress=False)
    assert [f[0] for f in s.failed] == ["shapes3d-a7e+00-b1-synthetic-s0"]
    _, notebook, message = s.failed[0]
    assert "KilledWorker" in message or "died" in message
    assert notebook.endswith("experiment.ipynb") and Path(notebook).is_file()
    assert (out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0" / "eval.json").is_file()


def test_the_study_runs_against_a_scheduler_address(tmp_path: Path):
    """``study work --scheduler ADDR``: the study's runs go to the cluster at that address
    (here a LocalCluster's own scheduler) through the grid's executor; each run is trained
    and evaluated on a worker process, and a second pass finds nothing left."""
    from distributed import LocalCluster

    from lvae.report import study
    from lvae.report.study.plans import _shapes

    sr = study.StudyRun(_shapes(0.0, 0), "smoke", "a smoke run of the study's kind")
    lines: list[str] = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        done = study.work_on(tmp_path, (sr,), scheduler=cluster.scheduler_address,
                             log=lines.append, shipped_root=tmp_path / "none")
        assert done == 1, lines
        assert study.is_done(study.run_dir(tmp_path, sr))
        assert study.work_on(tmp_path, (sr,), scheduler=cluster.scheduler_address,
                             log=lines.append, shipped_root=tmp_path / "none") == 0
    assert "no run left" in lines[-1]


def test_the_study_completes_a_run_exactly_once_when_its_worker_is_killed(tmp_path: Path):
    """The study on a cluster (its scheduler's address), a worker SIGKILLed in the middle
    of training: the nanny starts another, the run is retried and finished once, its log
    has every step once, and nothing half-written is left; a second pass has nothing to do."""
    from distributed import Client, LocalCluster

    from lvae.report import study
    from lvae.report.study.plans import _shapes

    sr = study.StudyRun(_shapes(0.0, 0), "smoke", "long enough to be killed",
                        settings=(("steps", 400), ("checkpoint_every", 100)))
    rdir = study.run_dir(tmp_path, sr)
    killed: dict = {}
    stop = threading.Event()

    def kill_when_training(address: str) -> None:
        with Client(address) as client:
            deadline = time.monotonic() + 240
            while not stop.is_set() and time.monotonic() < deadline:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy and (rdir / "log.jsonl").is_file() and not (rdir / "result.json").exists():
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid)
                    return
                time.sleep(0.05)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        killer = threading.Thread(target=kill_when_training, args=(cluster.scheduler_address,))
        killer.start()
        try:
            done = study.work_on(tmp_path, (sr,), scheduler=cluster.scheduler_address,
                                 log=lambda m: None, shipped_root=tmp_path / "none")
        finally:
            stop.set()
            killer.join()
        assert killed, "the run finished before the killer saw it training"
        assert done == 1 and study.is_done(rdir)
        steps = [json.loads(ln)["step"] for ln in (rdir / "log.jsonl").read_text().splitlines()]
        assert steps == sorted(set(steps)) and steps[-1] == 400
        assert not [p.name for p in rdir.iterdir() if p.name.startswith(".") or ".tmp" in p.name]
        assert study.work_on(tmp_path, (sr,), scheduler=cluster.scheduler_address,
                             log=lambda m: None, shipped_root=tmp_path / "none") == 0
