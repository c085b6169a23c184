"""Where a training step, a smoke experiment notebook and a quick evaluation spend their time.

Three parts, each printed as a table of seconds and fractions of its whole:

``step``
    One whole training step (``lvae.training.train_step``, Algorithm 1 lines 2-8) at 32x32
    on one thread, on the quick profile's pool: pool access (anchor and neighbour images),
    neighbour sampling, the meta-step's forward and backward, Adam, and the per-step
    bookkeeping of ``train()`` (loss read-out, the log line every ``log_every`` steps, the
    final checkpoint amortised over the run). The real ``train_step`` runs; its pieces are
    timed by wrapping what it calls, so the table adds up to the step it measures. Once-per-run
    costs (rendering the pool, the neighbourhood's set-up) are listed apart.
``notebook``
    One smoke run of ``notebooks/experiment.ipynb`` end to end: the notebook's cells called
    in this process with every costly piece wrapped (rendering the twin's pool, training
    steps, sampling and encoding DCI images, GBT fits, MIG, FD, ELBO, pictures), the cold
    imports timed in a fresh interpreter, and one real ``papermill`` execution whose total
    minus its cells' own durations is the kernel's start and shutdown.
``eval``
    One quick-profile evaluation of a CarsNORB run with alpha > 0 (a model trained for a
    single step: the cost of the DCI fits does not depend on training), with the profile's
    evaluation settings, the per-factor GBT fit seconds eval.json records, and the
    settings' worker time for ``make book`` (quick, 2 seeds) extrapolated from them.

Times are exclusive: a wrapped piece's time is not counted again in the piece that called
it. On a shared machine absolute seconds move a lot from run to run; the fractions and the
ratios between pieces move much less, so read those, and note what ran beside the benchmark.

    .venv/bin/python benchmarks/train_step.py [step] [notebook] [eval]
        [--steps 30] [--dataset shapes3d] [--no-papermill] [--cprofile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the tables (tqdm >= 4.66)

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "experiment.ipynb"


# --------------------------------------------------------------------------- exclusive timers


class Phases:
    """Exclusive wall and CPU time per named phase: a phase excludes the phases it contains.

    ``wrap(owner, attr, name)`` replaces ``owner.attr`` by a timed wrapper until
    :meth:`restore`, so library code runs unchanged while its pieces are attributed. CPU time
    (this process's, all threads) is what a grid worker pays; on a shared machine it moves
    less than wall time, which also counts waiting for the other processes.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._stack: list[list[Any]] = []
        self._patched: list[tuple[Any, str, Any]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start, cstart = time.perf_counter(), time.process_time()
        self._stack.append([name, 0.0, 0.0])
        try:
            yield
        finally:
            _, inner, cinner = self._stack.pop()
            total, ctotal = time.perf_counter() - start, time.process_time() - cstart
            self.seconds[name] += total - inner
            self.cpu[name] += ctotal - cinner
            self.calls[name] += 1
            if self._stack:
                self._stack[-1][1] += total
                self._stack[-1][2] += ctotal

    def add(self, name: str, wall: float, cpu: float | None = None) -> None:
        """A phase timed elsewhere (another process); CPU unknown when None."""
        self.seconds[name] += wall
        self.cpu[name] += wall if cpu is None else cpu
        self.calls[name] += 1

    def wrap(self, owner: Any, attr: str, name: str, optional: bool = False) -> None:
        """Time ``owner.attr`` as ``name``; ``optional``: skip it where the code has none."""
        if optional and not hasattr(owner, attr):
            return
        original = getattr(owner, attr)
        phases = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            with phases.phase(name):
                return original(*args, **kwargs)

        # a function stored on a class must stay a plain function (it binds self)
        setattr(owner, attr, timed)
        self._patched.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._patched):
            setattr(owner, attr, original)
        self._patched.clear()

    def table(self, title: str, total: float | None = None, order: list[str] | None = None,
              per: float = 1.0, unit: str = "s", cpu_total: float | None = None) -> str:
        """Wall seconds (divided by ``per``), CPU seconds, calls and fractions per phase."""
        names = order or sorted(self.seconds, key=lambda n: -self.seconds[n])
        names = [n for n in names if n in self.seconds]
        whole = total if total is not None else sum(self.seconds.values())
        cwhole = cpu_total if cpu_total is not None else sum(self.cpu.values())
        width = max([len(n) for n in names] + [24])
        lines = [title, f"  {'phase':<{width}} {'wall ' + unit:>10} {'fraction':>9} "
                        f"{'CPU ' + unit:>10} {'fraction':>9} {'calls':>6}"]

        def row(n: str, w: float, c: float, calls: str) -> str:
            return (f"  {n:<{width}} {w / per:>10.4f} {w / whole:>9.1%} {c / per:>10.4f} "
                    f"{c / cwhole if cwhole else 0:>9.1%} {calls:>6}")

        for n in names:
            lines.append(row(n, self.seconds[n], self.cpu[n], str(self.calls[n])))
        rest = whole - sum(self.seconds[n] for n in names)
        crest = cwhole - sum(self.cpu[n] for n in names)
        if abs(rest) > 1e-6 * max(whole, 1.0) or abs(crest) > 1e-6 * max(cwhole, 1.0):
            lines.append(row("(not in any phase)", rest, crest, ""))
        lines.append(row("total", whole, cwhole, ""))
        return "\n".join(lines)


def beside() -> str:
    """What else is using the CPUs now (the top processes not ours), for the record."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,ni,pcpu,etime,args", "--sort=-pcpu"],
                             capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "ps unavailable"
    me = {os.getpid(), os.getppid()}
    rows = [ln for ln in out[1:] if ln.split()[0].isdigit() and int(ln.split()[0]) not in me]
    busy = [ln[:110] for ln in rows if float(ln.split()[2]) >= 5.0][:6]
    load = os.getloadavg()
    return (f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} "
            "cores; beside this benchmark:\n    " + ("\n    ".join(busy) or "nothing >= 5% CPU"))


# --------------------------------------------------------------------------- one training step


def part_step(dataset: str, alpha: float, neighborhood: str, steps: int, warmup: int,
              use_cprofile: bool, prime: bool) -> None:
    """Time ``steps`` calls of lvae.training.train_step after ``warmup`` untimed ones."""
    from lvae import training
    from lvae.config import PROFILES, TrainConfig
    from lvae.model import VAE
    from lvae.pool import ImagePool, split_pool

    torch.set_num_threads(1)
    config = TrainConfig(dataset=dataset, alpha=alpha, neighborhood=neighborhood, threads=1,
                         **PROFILES["quick"].train_overrides())
    device = torch.device("cpu")
    once = Phases()
    with once.phase("build dataset"):
        data = training.build_dataset(config)
    arch, loss = training.architecture(config, data), training.loss_spec(config)
    pool_idx, _ = split_pool(len(data), config.pool_size, config.heldout_size, config.seed)
    if prime:  # what an earlier run of the grid left in the cache
        ImagePool(training.build_dataset(config), pool_idx)
    with once.phase("render the pool (ImagePool)"):
        pool = ImagePool(data, pool_idx)
    torch.manual_seed(config.seed)
    model = VAE(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas,
                           eps=config.adam_eps)
    rng, gen = np.random.RandomState(config.seed), torch.Generator().manual_seed(config.seed)
    nbhd = training.neighborhood_for(config, data) if alpha > 0 else None
    with once.phase("neighbourhood set-up"):
        if nbhd is not None:
            nbhd.setup(pool, encode_means=lambda x: model.encode(x)[0])

    def run_steps(n: int, first: int, ph: Phases | None, log_f: Any) -> None:
        for step in range(first, first + n):
            out = training.train_step(model, opt, pool, nbhd, config, arch, loss, rng, gen,
                                      step, device)
            ctx = ph.phase("logging (train()'s per-step bookkeeping)") if ph else \
                contextlib.nullcontext()
            with ctx:  # what train() does around each step, progress bar disabled
                last = float(out.loss.detach())
                if not np.isfinite(last):
                    raise RuntimeError("diverged")
                if (step + 1) % config.log_every == 0:
                    rec = {"step": step + 1, "loss": last, "inner_loss": float(out.inner_loss),
                           "recon": float(out.recon), "kl": float(out.kl), "wall_time_s": 0.0}
                    log_f.write(json.dumps(rec) + "\n")
                    log_f.flush()

    with tempfile.TemporaryDirectory() as tmp:
        log_f = (Path(tmp) / "log.jsonl").open("a")
        run_steps(warmup, 0, None, log_f)
        ph = Phases()
        ph.wrap(training.ImagePool, "tensor", "pool access (anchors, neighbours)")
        if nbhd is not None:
            ph.wrap(nbhd, "sample", "neighbour sampling")
            ph.wrap(nbhd, "step", "neighbour sampling")
            ph.wrap(training, "local_vae_loss", "meta-step forward")
        else:
            ph.wrap(training, "vanilla_vae_loss", "VAE forward")
        ph.wrap(torch.Tensor, "backward", "meta-step backward" if nbhd else "VAE backward")
        ph.wrap(opt, "step", "Adam (step)")
        ph.wrap(opt, "zero_grad", "Adam (zero_grad)")
        prof = cProfile.Profile() if use_cprofile else None
        with ph.phase("train_step (its own code: draws, params)"):
            if prof:
                prof.enable()
            run_steps(steps, warmup, ph, log_f)
            if prof:
                prof.disable()
        ckpt = "checkpoint (one per 300-step run, amortised)"
        with ph.phase(ckpt):
            training._save(Path(tmp) / "checkpoint.pt", model, opt, rng, gen, steps, 0.0)
        # one per quick run of config.steps steps: its share of the timed steps
        ph.seconds[ckpt] *= steps / config.steps
        ph.cpu[ckpt] *= steps / config.steps
        ph.restore()
        log_f.close()
    order = ["pool access (anchors, neighbours)", "neighbour sampling", "meta-step forward",
             "meta-step backward", "VAE forward", "VAE backward", "Adam (step)",
             "Adam (zero_grad)", "logging (train()'s per-step bookkeeping)",
             "checkpoint (one per 300-step run, amortised)",
             "train_step (its own code: draws, params)"]
    kind = f"{dataset}, alpha {alpha:g}, {neighborhood}" if alpha > 0 else f"{dataset}, vanilla"
    print(ph.table(f"\n== one training step: {kind}, 32x32, batch {config.batch_size} x K "
                   f"{config.k}, pool {config.pool_size}, 1 thread; mean of {steps} steps "
                   f"after {warmup} warm-up ==", None, order, per=steps,
                   unit="s/step"))
    print(once.table("-- once per run (not per step) --"))
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(15)
        print("\n-- cProfile of the timed steps, by own time --")
        print("\n".join(s.getvalue().splitlines()[:40]))


# --------------------------------------------------------------------------- the notebook


NOTEBOOK_IMPORTS = (
    "import matplotlib.pyplot as plt; import torch; "
    "from lvae.report.params import experiment_config; "
    "from lvae.evaluation import evaluate; from lvae.report.results import load_log; "
    "from lvae.training import train, load_run; "
    "from lvae.generation import meta_samples, reconstructions"
)


def cold_imports() -> tuple[float, float, list[tuple[str, float]]]:
    """(interpreter start, the notebook's imports, top packages by cumulative import time)."""
    def wall(code: str, *flags: str) -> tuple[float, str]:
        start = time.perf_counter()
        p = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True,
                           text=True, cwd=REPO, check=True)
        return time.perf_counter() - start, p.stderr

    bare, _ = wall("pass")
    total, _ = wall(NOTEBOOK_IMPORTS)
    _, trace = wall(NOTEBOOK_IMPORTS, "-X", "importtime")
    tops: dict[str, float] = {}
    for line in trace.splitlines():  # "import time: self [us] | cumulative | imported package"
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # top-level imports only
            name = m.group(3).split(".")[0]
            tops[name] = tops.get(name, 0.0) + int(m.group(1)) / 1e6
    return bare, total - bare, sorted(tops.items(), key=lambda kv: -kv[1])[:6]


def papermill_run(out_dir: Path, threads: int) -> tuple[float, float, list[float]]:
    """(wall of one papermill execution, sum of its cells' durations, cell durations)."""
    out_nb = out_dir / "executed.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out_nb), "-p", "profile",
           "smoke", "-p", "out_dir", str(out_dir / "runs"), "-p", "threads", str(threads),
           "--no-progress-bar", "--cwd", str(REPO)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    nb = json.loads(out_nb.read_text())
    cells = [float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
             for c in nb["cells"] if c["cell_type"] == "code"]
    return wall, sum(cells), cells


def wrap_pipeline(ph: Phases) -> None:
    """Attribute the pieces train / evaluate / the picture cell call (where the code has
    them: the library changes under the benchmark)."""
    import lvae.evaluation as ev
    import lvae.generation as gn
    import lvae.metrics.sampling as sm
    import lvae.training as tr
    from lvae.pool import ImagePool

    for owner, attr, name in (
        (tr, "build_dataset", "dataset object"),
        (ImagePool, "__init__", "render the twin's pool (ImagePool)"),
        (tr, "train_step", "training steps"),
        (tr, "_save", "checkpoint"),
        (tr, "load_run", "load_run (model, config)"),
        (sm, "sample_factors_and_images", "DCI: sample + render images"),
        (sm, "represent_in_batches", "DCI: encode (meta / adapted)"),
        (ev, "dci_from_codes", "DCI: GBT fits"),
        (ev, "mig_from_codes", "MIG"),
        (ev, "frechet_block", "Frechet: features + distance"),
        (ev, "real_images", "Frechet: render real images"),
        (ev, "generate_images", "Frechet: localized generations"),
        (ev, "heldout_neg_elbo", "ELBO (held out)"),
        (gn, "meta_samples", "pictures"),
        (gn, "reconstructions", "pictures"),
    ):
        ph.wrap(owner, attr, name, optional=True)


def notebook_in_process(out_dir: Path, threads: int) -> Phases:
    """Execute experiment.ipynb's own code cells here, smoke defaults, pieces wrapped.

    The parameters cell runs, then the overrides papermill would inject; ``plt.show``
    renders the figure to PNG in memory, as the inline backend does.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [("".join(c["source"]), c.get("metadata", {}).get("tags", []))
             for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    ph = Phases()
    wrap_pipeline(ph)

    def show(*_a: Any, **_k: Any) -> None:
        for n in plt.get_fignums():
            plt.figure(n).savefig(io.BytesIO(), format="png")
        plt.close("all")

    original_show, plt.show = plt.show, show
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    try:
        for i, (source, tags) in enumerate(cells):
            name = "notebook cells (the rest)"
            if "import" in source and i <= 3:
                name = "imports (already loaded here; cold: see above)"
            with ph.phase(name):
                exec(compile(source, f"<cell {i}>", "exec"), namespace)
            if "parameters" in tags:
                namespace.update(profile="smoke", out_dir=str(out_dir), threads=threads)
    finally:
        plt.show = original_show
        ph.restore()
    return ph


def part_notebook(threads: int, with_papermill: bool, prime: bool) -> None:
    if prime:  # an untimed run first: the caches as the grid's later runs find them
        with tempfile.TemporaryDirectory() as tmp:
            notebook_in_process(Path(tmp), threads)
    bare, imports, tops = cold_imports()
    print(f"\n== cold imports of the notebook's modules (fresh interpreter): {imports:.2f} s "
          f"(interpreter start {bare:.2f} s); top packages, cumulative s: "
          + ", ".join(f"{n} {s:.2f}" for n, s in tops))
    with tempfile.TemporaryDirectory() as tmp:
        ph = notebook_in_process(Path(tmp) / "inproc", threads)
        pm = papermill_run(Path(tmp), threads) if with_papermill else None
    order = ["render the twin's pool (ImagePool)", "dataset object", "training steps",
             "checkpoint", "load_run (model, config)", "DCI: sample + render images",
             "DCI: encode (meta / adapted)", "DCI: GBT fits", "MIG",
             "Frechet: render real images", "Frechet: localized generations",
             "Frechet: features + distance", "ELBO (held out)", "pictures",
             "notebook cells (the rest)", "imports (already loaded here; cold: see above)"]
    if pm is not None:
        pm_wall, cells, per_cell = pm
        ph.add("kernel start + shutdown (papermill: wall - cells)", pm_wall - cells)
        ph.add("imports (cold, fresh interpreter)", imports)
        order = ["kernel start + shutdown (papermill: wall - cells)",
                 "imports (cold, fresh interpreter)", *order]
        print(f"-- papermill: {pm_wall:.2f} s wall, cells {cells:.2f} s "
              f"({', '.join(f'{c:.2f}' for c in per_cell)}); its kernel and imports are "
              "added below as wall time (CPU not measured: another process)")
    print(ph.table("== one smoke run of experiment.ipynb (shapes3d, alpha 1, 6 steps), "
                   f"{threads} torch thread(s): its cells in this process, plus a kernel's "
                   "start and cold imports", None, order))


# --------------------------------------------------------------------------- quick evaluation


def part_eval(threads: int, dataset: str, alpha: float, prime: bool) -> None:
    """One quick-profile evaluation of a 1-step run: its phases and GBT fit seconds.

    ``prime`` renders the pool into the cache first (the other caches, such as the FID
    statistics of the real images, are filled by the timed pass itself).
    """
    import lvae.evaluation as ev
    from lvae.pool import ImagePool, split_pool
    from lvae.report.params import experiment_config
    from lvae.training import build_dataset, train

    torch.set_num_threads(threads)
    nbhd = "latent_knn" if dataset == "carsnorb" else "synthetic"
    with tempfile.TemporaryDirectory() as tmp:
        setup = experiment_config(dataset=dataset, alpha=alpha, neighborhood=nbhd,
                                  profile="quick", steps=1, out_dir=tmp, threads=threads)
        if prime:
            data = build_dataset(setup.config)
            c = setup.config
            ImagePool(data, split_pool(len(data), c.pool_size, c.heldout_size, c.seed)[0])
        ph = Phases()
        wrap_pipeline(ph)
        fits: list[dict[str, float]] = []  # each DCI fit's CPU seconds per factor
        timed_fit = ev.dci_from_codes

        def recorded(*args: Any, **kwargs: Any) -> Any:
            out = timed_fit(*args, **kwargs)
            names, y = list(args[4]), np.asarray(args[1])
            fits.append({f"{f} ({len(np.unique(y[:, names.index(f)]))} classes)": s
                         for f, s in out.get("fit_cpu_seconds", {}).items()})
            return out

        ev.dci_from_codes = recorded
        try:
            with ph.phase("train 1 step (pool, set-up)"):
                train(setup.config, setup.run_dir, progress=False)
            with ph.phase("evaluate() around the metrics"):
                if hasattr(setup, "evaluation"):
                    rec = ev.evaluate(setup.run_dir, setup.evaluation, progress=False)
                else:  # the keyword form of evaluate
                    rec = ev.evaluate(setup.run_dir, **setup.eval_kwargs, progress=False)
        finally:
            ev.dci_from_codes = timed_fit
            ph.restore()
    used = rec.get("params", {})
    shown = {k: used.get(k) for k in ("num_train", "num_test", "gbt_seeds",
                                      "gbt_seeds_by_dataset", "frechet_metric") if k in used}
    print(ph.table(f"\n== quick evaluation of a {dataset} alpha {alpha:g} run (1 training "
                   f"step), {threads} thread(s); eval.json params {shown}", None))
    adapted = len(rec["details"].get("adapted", {})) if rec.get("adapted") else 0
    codes = ["meta"] * (len(fits) - adapted) + ["adapted"] * adapted  # the order of the fits
    for i, f in enumerate(fits):
        print(f"-- DCI fit {i + 1} ({codes[i]} codes): {sum(f.values()):.1f} CPU s; "
              + ", ".join(f"{k} {v:.1f}" for k, v in f.items()))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("parts", nargs="*", default=["step", "notebook"],
                   choices=["step", "notebook", "eval"])
    p.add_argument("--steps", type=int, default=30, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dataset", default="shapes3d", choices=["shapes3d", "carsnorb"])
    p.add_argument("--alpha", type=float, default=None,
                   help="default: 1 (shapes3d, synthetic) or 0.01 (carsnorb, latent_knn)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="warm", choices=["off", "cold", "warm", "user"],
                   help="lvae's caches in a temporary $LVAE_CACHE: warm (filled by an untimed "
                        "first pass: every run of a grid after the first), off (the same, but "
                        "the render cache switched off: every twin image drawn, as before it "
                        "existed), cold (empty); user: the user's own caches as they are")
    p.add_argument("--no-papermill", action="store_true")
    p.add_argument("--cprofile", action="store_true", help="step part: cProfile the steps")
    a = p.parse_args(argv)
    alpha = a.alpha if a.alpha is not None else (1.0 if a.dataset == "shapes3d" else 0.01)
    nbhd = "synthetic" if a.dataset == "shapes3d" else "latent_knn"
    print(f"torch {torch.__version__}; render cache {a.cache}; {beside()}")
    with tempfile.TemporaryDirectory() as cache:
        if a.cache != "user":
            os.environ["LVAE_CACHE"] = cache
            os.environ["LVAE_RENDER_CACHE"] = "off" if a.cache == "off" else "on"
        prime = a.cache in ("off", "warm")
        for part in a.parts:
            if part == "step":
                part_step(a.dataset, alpha, nbhd, a.steps, a.warmup, a.cprofile, prime)
            elif part == "notebook":
                part_notebook(a.threads, not a.no_papermill, prime)
            else:
                part_eval(a.threads, a.dataset, alpha, prime)

if __name__ == "__main__":
    main()
