"""Command line: ``python -m lvae reproduce --profile quick`` (also the ``lvae`` script).

Thin on purpose: every option maps onto an argument of :func:`lvae.report.reproduce.reproduce`,
which tests and notebooks call directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lvae.config import PROFILES

#: What ``--help`` prints (plain text: the module docstring is reStructuredText).
DESCRIPTION = "The Local VAE, reproduced: train the paper's grid and build the book."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lvae", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reproduce", help="train and evaluate the grid, then build the book",
                       description="Execute notebooks/experiment.ipynb once per run of the "
                       "paper's tables (resumable: finished runs are skipped), then the "
                       "result notebooks and the book.",
                       epilog="Exit status: 0 all done, 1 a run or page failed (or another "
                       "invocation holds one), 2 a bad option or an output folder or "
                       "scheduler that cannot be used, 130 interrupted.")
    r.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="compute budget (lvae.config.PROFILES); default: quick")
    r.add_argument("--out", default="runs", help="runs go to OUT/PROFILE/RUN_ID (default: runs)")
    r.add_argument("--seeds", type=int, default=None,
                   help="seeds per configuration (default: the profile's)")
    r.add_argument("--jobs", type=int, default=1,
                   help="worker processes of the local Dask cluster, one notebook each at a "
                   "time (default 1)")
    r.add_argument("--force", action="store_true",
                   help="DELETE the folders of the selected runs (results, checkpoints, "
                   "logs) and compute them again; done only after the options are checked "
                   "and the scheduler is reached, never for a run another invocation holds")
    r.add_argument("--list", action="store_true",
                   help="print one papermill command per run and exit (runs already done "
                   "are printed commented out, '# done (...): papermill ...')")
    r.add_argument("--only", default=None,
                   help="comma-separated tables/figures: table1,table2,table5,fig2,fig3,fig4")
    r.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                   "(a dask-jobqueue cluster on Slurm/PBS: see book/reproduce.md)")
    r.add_argument("--resources", default=None,
                   help="Dask worker resources each training run needs, e.g. GPU=1 (workers "
                   "must declare them: dask worker --resources GPU=1)")
    r.add_argument("--inline", action="store_true",
                   help="no Dask: run the notebooks one after another in this process "
                   "(debugging)")
    r.add_argument("--book-only", action="store_true",
                   help="train nothing: build the pages and the book from the runs already "
                   "there (missing runs show as '—')")
    r.add_argument("--no-book", action="store_true",
                   help="stop after the runs (no result notebooks, no book build)")
    s = sub.add_parser("study", help="the reference study: long runs evaluated at milestones",
                       description="Workers that train and evaluate the study's runs "
                       "(lvae.report.study.plans.STUDY, in priority order), resumable across "
                       "sessions.")
    s.add_argument("action", choices=("work", "status", "ship", "train"),
                   help="work: take runs until none is left (start one worker per core); "
                   "status: where every run stands; ship: copy finished runs (and the "
                   "progress of those still training) into the repository's results/; "
                   "train: train the named runs side by side on the default device (a "
                   "GPU), without evaluating them (work evaluates them later)")
    s.add_argument("runs", nargs="*", help="train: runs by name, as status prints them "
                   "(e.g. study/shapes3d-a1e+01-b1-synthetic-s0)")
    s.add_argument("--seconds", type=float, default=None,
                   help="train: stop after this many seconds (they resume later)")
    s.add_argument("--out", default=str(Path.home() / "lvae-study"),
                   help="study run folders (default: ~/lvae-study, outside the repository)")
    s.add_argument("--limit", type=int, default=None, help="work: stop after this many runs")
    s.add_argument("--jobs", type=int, default=None,
                   help="work: run on the grid's Dask executor with this many one-thread "
                   "workers (a LocalCluster), instead of being one worker")
    s.add_argument("--scheduler", default=None,
                   help="work: a Dask scheduler's address (tcp://host:8786): the runs go to "
                   "that cluster")
    s.add_argument("--resources", default=None,
                   help="work: Dask resources every run asks for, e.g. GPU=1")
    s.add_argument("--plan", default="study", choices=("study", "diagnosis"),
                   help="which runs: the reference study (default) or the diagnosis of the "
                   "choices the paper leaves open (lvae.report.study.plans.DIAGNOSIS)")
    s.add_argument("--results", default=None,
                   help="the repository's results/: the runs it holds finished are not "
                   "trained again, those it holds in progress resume from their copy, and "
                   "ship writes there (default: the results/ beside this lvae; workers "
                   "running a pinned checkout of the code name the repository's)")
    return p


def _study(args: argparse.Namespace) -> int:
    from lvae import runfolder  # (imports torch: not at the CLI's start)
    from lvae.report import study

    if args.action == "train":
        if not args.runs:
            print("error: name the runs to train (python -m lvae study status lists them)",
                  file=sys.stderr)
            return 2
        try:
            codes = study.train_only(args.out, args.runs, seconds=args.seconds,
                                     log=lambda m: print(m, flush=True))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(codes))
        return 0 if all(c in (0, None) for c in codes.values()) else 1
    if args.results is not None and not Path(args.results).is_dir():
        # a mistyped folder would hold nothing shipped: every run would be trained again
        print(f"error: --results {args.results} is not a folder: name the repository's "
              "results/ (e.g. --results /path/to/lvae/results)", file=sys.stderr)
        return 2
    runs = study.plan(args.plan)
    if args.action == "work":
        log = lambda m: print(m, flush=True)  # noqa: E731
        if args.jobs is None and args.scheduler is None:
            study.work(args.out, limit=args.limit, log=log, runs=runs,
                       shipped_root=args.results)
            return 0
        from lvae.report.reproduce import RunnerError, parse_resources

        try:
            study.work_on(args.out, runs, jobs=args.jobs or 1, scheduler=args.scheduler,
                          resources=parse_resources(args.resources), log=log,
                          shipped_root=args.results)
        except (ValueError, RunnerError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.action == "ship":
        for sr in runs:
            rdir = study.run_dir(args.out, sr)
            if not (rdir / runfolder.CONFIG).is_file():
                continue
            if not (runfolder.read_milestones(rdir) or (rdir / runfolder.RESULT).is_file()):
                print(f"not shipped: {sr.name} (no milestone evaluated yet)")
                continue
            if study.shipped_current(rdir, args.results):
                print(f"up to date: {sr.name}")
                continue
            print(f"shipped {study.ship(rdir, args.results)}")
        return 0
    rows = study.progress(args.out, runs, args.results)
    hours: dict[str, float] = {}
    for r in rows:
        hours[r["device"]] = hours.get(r["device"], 0.0) + r["cpu_hours"]
        rate = f"{r['sec_per_step']:.3f} s/step" if r["sec_per_step"] else ""
        where = "" if r["device"] == "CPU" else f" on {r['device']}"
        arm = f" [{r['arm']}]" if r.get("arm") else ""
        print(f"{r['state']:>9} {r['step']:>6}/{r['steps']:<6} {rate:>13} "
              f"{r['cpu_hours']:5.2f} h  {r['run']}{arm}{where}  milestones {r['milestones']}")
    done = sum(r["state"] in ("done", "shipped") for r in rows)
    spent = ", ".join(f"{h:.1f} h trained on {d}" for d, h in hours.items() if h)
    print(f"{done} of {len(rows)} runs done; {spent or 'nothing spent yet'} "
          "(training plus evaluation on the CPU)")
    left, unpriced = study.hours_left(rows)
    if left or unpriced:
        print(f"about {left:.1f} CPU hours left, at the hours per step of the finished runs "
              "of each kind" + (f" ({len(unpriced)} run(s) of a kind none has finished "
                                f"left out: {', '.join(unpriced)})" if unpriced else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "study":
        return _study(args)
    return _reproduce(args)


def _reproduce(args: argparse.Namespace) -> int:
    """The reproduce subcommand. Everything a user can cause (a bad option, an output
    folder that cannot be written, a scheduler that cannot be reached, Ctrl-C) ends in one
    ``error:`` line, not a traceback; a traceback means a bug."""
    from lvae.report.reproduce import RunnerError, list_commands, parse_resources, plan, reproduce

    try:
        if args.list:
            planned = plan(args.profile, args.out, args.seeds, args.only, args.jobs)
            for cmd in list_commands(planned):
                print(cmd)
            done = sum(p.done for p in planned)
            print(f"{len(planned)} runs, {done} already done (commented out)", file=sys.stderr)
            return 0
        summary = reproduce(profile=args.profile, out=args.out, seeds=args.seeds,
                            jobs=args.jobs, force=args.force, only=args.only,
                            scheduler=args.scheduler, book=not args.no_book,
                            inline=args.inline, resources=parse_resources(args.resources),
                            runs=not args.book_only)
    except (ValueError, RunnerError, OSError) as e:
        # a bad option value, or a folder or scheduler that cannot be used (OSError: what
        # the file system refused that the checks could not foresee): say which
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished runs are kept and a run cut short resumes from "
              "its last checkpoint: run the same command again to go on", file=sys.stderr)
        return 130
    print(summary.report())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
