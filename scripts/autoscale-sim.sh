#!/usr/bin/env bash
# Autoscaling shown, not assumed: plays the HPA controller against real
# `tasker worker` processes on this machine.
#
# A fresh database and Redis key prefix, a stand-in LLM that answers after a
# delay, one `tasker api`; then scripts/scaling/sim.py submits a burst of
# query_llm tasks and, every sync period, reads tasker_queue_depth from the
# api's /metrics, computes the desired replicas as the HPA does and starts or
# SIGTERMs workers. It prints a line per tick, draws replicas and queue depth
# to a PNG, and fails if any task is lost, failed or unfinished. Everything
# it started or made is stopped and dropped on exit.

set -euo pipefail

usage() {
  cat <<'EOF2'
Usage: scripts/autoscale-sim.sh [options]

  --tasks N          query_llm tasks in the burst (default 3000)
  --target N         queue depth per replica, the HPA's AverageValue (default 50)
  --min N, --max N   minReplicas and maxReplicas (default 1 and 10)
  --concurrency N    worker.concurrency of each worker (default 4)
  --llm-delay S      seconds the stand-in LLM takes per call (default 0.5)
  --llm-budget N     llm.max_concurrency across all workers (default: none)
  --trickle-rate R, --trickle-seconds S
                     after the burst, R tasks a second for S seconds, so that
                     workers are scaled down with work in hand (default: none)
  --db-pool N        database.max_connections of each worker (default 3:
                     ten workers must fit the server's max_connections)
  --grace S          worker.shutdown_grace_seconds (default 20); under the
                     LLM delay, SIGTERMed workers hand their tasks back
  --sync S           sync period in seconds (default 2; Kubernetes: 15); the
                     chart's scale-down window and policy periods are scaled
                     by the same factor (300 s window -> 40 s)
  --window S         scale-down stabilisation window instead (seconds)
  --timeout S        stop the simulation after S seconds (default 420)
  --out PNG          the picture (default target/scaling/autoscale.png; the
                     ticks go to the same name with .csv)
  --title TEXT       the picture's title
  -h, --help         this text

Uses $TASKER_BIN, else $CARGO_TARGET_DIR/debug/tasker, else target/debug/tasker.
Draws the PNG with matplotlib from a venv under target/ (made on first use;
without it, only the CSV).
EOF2
}

SCRIPT=autoscale-sim
# shellcheck source-path=SCRIPTDIR source=scaling/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scaling/common.sh"

LLM_DELAY=0.5
LLM_BUDGET=""
GRACE=""
TIMEOUT=420
OUT=$ROOT/target/scaling/autoscale.png
SIM_ARGS=()
while (($# > 0)); do
  case $1 in
    --tasks | --target | --min | --max | --concurrency | --sync | --window | --title | \
      --trickle-rate | --trickle-seconds | --db-pool)
      SIM_ARGS+=("$1" "${2:?$1 needs a value}")
      shift
      ;;
    --llm-delay) LLM_DELAY=${2:?} && shift ;;
    --llm-budget) LLM_BUDGET=${2:?} && shift ;;
    --grace) GRACE=${2:?} && shift ;;
    --timeout) TIMEOUT=${2:?} && shift ;;
    --out) OUT=${2:?} && shift ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && exit 2 ;;
  esac
  shift
done
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout needs whole seconds"
mkdir -p "$(dirname "$OUT")"
OUT=$(realpath "$OUT")

# matplotlib for the picture, in a venv of its own under target/.
VENV=$ROOT/target/scaling/venv
PYTHON=python3
if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  PYTHON=$VENV/bin/python
elif python3 -m venv "$VENV" >/dev/null 2>&1 && "$VENV/bin/pip" install -q matplotlib >/dev/null 2>&1; then
  PYTHON=$VENV/bin/python
else
  log "matplotlib is not available: the ticks go to CSV only"
fi

setup
start_llm "$LLM_DELAY"
if [[ -n $LLM_BUDGET ]]; then
  export TASKER_LLM__MAX_CONCURRENCY=$LLM_BUDGET
  SIM_ARGS+=(--llm-budget "$LLM_BUDGET")
fi
if [[ -n $GRACE ]]; then
  export TASKER_WORKER__SHUTDOWN_GRACE_SECONDS=$GRACE
fi
start_api
log "database $DB, Redis prefix $PREFIX, api $API_URL, stand-in LLM $LLM_URL (${LLM_DELAY} s a call), logs in $RUN_DIR"

# The controller's own --timeout ends the loop; this one ends a controller
# that hangs (e.g. on a check).
timeout --signal=TERM $((TIMEOUT + 120)) "$PYTHON" "$HELPERS/sim.py" \
  --bin "$BIN" --api "$API_URL" --metrics "$METRICS_URL" --llm "$LLM_URL" \
  --db "$DB_URL" --run-dir "$RUN_DIR" --out "$OUT" --timeout "$TIMEOUT" "${SIM_ARGS[@]}"
