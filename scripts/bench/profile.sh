#!/usr/bin/env bash
# Where the time goes: run by scripts/bench.sh --profile against the api and
# worker it started. Writes into $PROFILE_DIR:
#   perf-summary.md  CPU samples of the whole machine during an end-to-end
#                  run, by process, crate and function (perf record -a)
#   sockets.jsonl  socket writes and reads per task of the api and the worker,
#                  by peer (PostgreSQL, Redis, HTTP), from strace -yy
#
# Needs: PROFILE_DIR API_PID WORKER_PID API WORKER DB_URL DURATION.

set -euo pipefail

: "${PROFILE_DIR:?}" "${API_PID:?}" "${WORKER_PID:?}" "${API:?}" "${WORKER:?}" "${DB_URL:?}"
HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DRIVER=(python3 "$HELPERS/driver.py")
PERF_TASKS=${PERF_TASKS:-20000}
TRACE_TASKS=${TRACE_TASKS:-2000}
mkdir -p "$PROFILE_DIR"
RESULTS=$PROFILE_DIR/results.jsonl
API_PORT=${API##*:}
BACKGROUND=()

stop_background() {
  local pid i
  for pid in "${BACKGROUND[@]}"; do
    kill -INT "$pid" 2>/dev/null || continue
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  BACKGROUND=()
  wait 2>/dev/null || true
}
trap stop_background EXIT

reset_tasks() {
  "${DRIVER[@]}" reset --db "$DB_URL"
}

e2e() {
  local n=$1 label=$2
  reset_tasks
  "${DRIVER[@]}" e2e --out "$RESULTS" --field phase=profile --field set="$label" \
    --n "$n" --clients 32 --api "$API" --worker-metrics "$WORKER/metrics" --db "$DB_URL" \
    --submit-script "$HELPERS/submit_n.lua" --timeout 600
}

# --- perf: samples of every CPU during one end-to-end run ---------------------

echo "-- perf: $PERF_TASKS tasks end to end, every CPU sampled"
perf record -F 999 -a -o "$PROFILE_DIR/perf-e2e.data" >"$PROFILE_DIR/perf-record.log" 2>&1 &
BACKGROUND+=($!)
sleep 1
e2e "$PERF_TASKS" perf
stop_background

"${DRIVER[@]}" perf-summary --data "$PROFILE_DIR/perf-e2e.data" --pid api="$API_PID" \
  --pid worker="$WORKER_PID" --comm postgres --comm redis-server --top 15 \
  --out "$PROFILE_DIR/perf-summary.md" >/dev/null
rm -f "$PROFILE_DIR/perf-e2e.data"

# --- strace: socket writes and reads by peer, per task ---------------------------

echo "-- strace: $TRACE_TASKS tasks end to end, api and worker traced"
trace_calls=write,writev,sendto,sendmsg,read,readv,recvfrom,recvmsg
strace -f -qq -yy -e trace="$trace_calls" -p "$API_PID" -o "$PROFILE_DIR/strace-api.txt" &
BACKGROUND+=($!)
strace -f -qq -yy -e trace="$trace_calls" -p "$WORKER_PID" -o "$PROFILE_DIR/strace-worker.txt" &
BACKGROUND+=($!)
sleep 1
e2e "$TRACE_TASKS" strace
sleep 1
stop_background
"${DRIVER[@]}" sockets --out "$RESULTS" --field process=api --trace "$PROFILE_DIR/strace-api.txt" \
  --n "$TRACE_TASKS" --http-port "$API_PORT"
"${DRIVER[@]}" sockets --out "$RESULTS" --field process=worker \
  --trace "$PROFILE_DIR/strace-worker.txt" --n "$TRACE_TASKS" --http-port "${WORKER##*:}"
rm -f "$PROFILE_DIR/strace-api.txt" "$PROFILE_DIR/strace-worker.txt"
echo "profile written to $PROFILE_DIR"
