#!/usr/bin/env bash
# Start the reference study's workers in the background, pinned to one commit of the code:
# one `lvae study work --jobs N` process whose LocalCluster (the grid's Dask executor) runs
# N one-thread workers, in a session of its own so that `stop` ends all of it.
#
#   scripts/study_workers.sh            # start 2 workers (one per core) on ~/lvae-study
#   N=1 OUT=/data/study scripts/study_workers.sh
#   PLAN=diagnosis OUT=~/lvae-diag scripts/study_workers.sh   # the diagnosis's runs
#   scripts/study_workers.sh stop       # kill them (each resumes from its last checkpoint)
#   PLAN=diagnosis scripts/study_workers.sh pin   # pin the plan to this checkout's HEAD
#
# Every run of a plan is trained by the same code: the commit each plan is pinned to lives
# in the repository (results/pins.json, committed with the runs), and is checked out into
# $OUT/code (a git worktree), whatever the repository's HEAD is; a fresh machine uses the
# same pin. `pin` moves a plan to newer code on purpose (commit results/pins.json; the
# runs' provenance lists every commit they were trained by).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$HOME/lvae-study}
N=${N:-2}
PLAN=${PLAN:-study}
PY=${PY:-$REPO/.venv/bin/python}

if [[ "${1:-start}" == "stop" ]]; then
    pids=$(pgrep -f "lvae study work --plan $PLAN --out $OUT" || true)
    [[ -n "$pids" ]] || { echo "no worker running"; exit 0; }
    for pid in $pids; do  # the whole process group: the cluster's workers too
        pgid=$(ps -o pgid= "$pid" | tr -d ' ')
        [[ -n "$pgid" ]] && kill -- "-$pgid" 2> /dev/null || kill "$pid" 2> /dev/null || true
    done
    echo "stopped"
    exit 0
fi
PINS="$REPO/results/pins.json"
if [[ "${1:-start}" == "pin" ]]; then
    "$PY" - "$PINS" "$PLAN" "$(git -C "$REPO" rev-parse HEAD)" <<'PYEOF'
import json, pathlib, sys
path, plan, commit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
pins = json.loads(path.read_text()) if path.is_file() else {}
pins[plan] = commit
path.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
print(f"pinned {plan} to {commit[:12]} in {path}: commit it")
PYEOF
    exit 0
fi
COMMIT=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ''))" \
    "$PINS" "$PLAN" 2> /dev/null || true)
[[ -n "$COMMIT" ]] || { echo "error: no commit is pinned for plan $PLAN in results/pins.json;" \
    "pin this checkout's HEAD with: PLAN=$PLAN $0 pin (and commit the file)" >&2; exit 2; }
mkdir -p "$OUT"
# A checkout left by an earlier machine or clone of the repository is not a worktree of
# this one any more: make it again; one at an older pin moves to the pinned commit.
git -C "$OUT/code" rev-parse HEAD > /dev/null 2>&1 || rm -rf "$OUT/code"
if [[ ! -d "$OUT/code/lvae" ]]; then
    git -C "$REPO" worktree prune
    git -C "$REPO" worktree add --detach "$OUT/code" "$COMMIT" > /dev/null
fi
[[ "$(git -C "$OUT/code" rev-parse HEAD)" == "$COMMIT" ]] \
    || git -C "$OUT/code" checkout --quiet --detach "$COMMIT"
[[ "$(git -C "$OUT/code" rev-parse HEAD)" == "$COMMIT" ]] || {
    echo "error: $OUT/code is not at $COMMIT (delete it and run again)" >&2; exit 2; }
# Run from $OUT: `python -m` puts the working directory first on sys.path, so started from
# the repository the workers would import its (moving) lvae instead of the pinned copy.
cd "$OUT"
PYTHONPATH="$OUT/code" "$PY" -c "import lvae, sys; sys.exit(not lvae.__file__.startswith('$OUT/code/'))" \
    || { echo "error: workers would not import the pinned code in $OUT/code" >&2; exit 2; }
# The evidence is the repository's results/, not the pinned checkout's: that one stops at
# the pin, so runs shipped since (and progress copies) would be trained again from step 0.
PYTHONPATH="$OUT/code" setsid nohup nice -n 5 "$PY" -m lvae study work --plan "$PLAN" \
    --out "$OUT" --jobs "$N" --results "$REPO/results" >> "$OUT/work.log" 2>&1 < /dev/null &
sleep 2
echo "started $N worker(s) of plan $PLAN (log: $OUT/work.log) at ${COMMIT:0:12} on $OUT; progress:" \
    "PYTHONPATH=$OUT/code $PY -m lvae study status --plan $PLAN --out $OUT --results $REPO/results"
