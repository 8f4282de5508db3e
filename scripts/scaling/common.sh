# shellcheck shell=bash
# Shared by scripts/autoscale-sim.sh and scripts/task-costs.sh: a database
# and Redis key prefix of one's own, a `tasker api` and a stand-in LLM, and
# a cleanup that stops every process it started and drops what it made.
# Source it after setting SCRIPT (the caller's name, for messages).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HELPERS=$ROOT/scripts/scaling
BIN=${TASKER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/tasker}
PG_URL=${SCALING_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${SCALING_REDIS_URL:-redis://127.0.0.1:6379}
RUN_ID=$(date +%Y%m%d%H%M%S)_$$
DB=tasker_scaling_$RUN_ID
PREFIX=tasker-scaling-$RUN_ID
DB_URL=$PG_URL/$DB
RUN_DIR=$ROOT/target/scaling/$RUN_ID
PIDS=()
CREATED_DB=0

log() { printf '== %s\n' "$*" >&2; }
die() {
  echo "$SCRIPT: $*" >&2
  exit 1
}
sql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
# shellcheck source=.ci/lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../.ci/lib/ports.sh"

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local code=$? pid
  set +e
  trap - EXIT INT TERM
  # Workers the controller started (it stops them itself unless it was killed).
  if [[ -f $RUN_DIR/worker.pids ]]; then
    while read -r pid; do stop_pid "$pid"; done <"$RUN_DIR/worker.pids"
  fi
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  wait 2>/dev/null
  if ((CREATED_DB)); then
    sql "$PG_URL/postgres" "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  fi
  redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX:*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1
  exit "$code"
}

# Environment of every tasker process: only what is set here counts.
tasker_env() {
  local name
  while read -r name; do
    unset "$name"
  done < <(compgen -e | grep '^TASKER_' || true)
  unset RUST_LOG OTEL_EXPORTER_OTLP_ENDPOINT
  export TASKER_DATABASE__URL=$DB_URL
  export TASKER_REDIS__URL=$REDIS_URL
  export TASKER_REDIS__KEY_PREFIX=$PREFIX
  export TASKER_LOG__LEVEL=warn
}

wait_ready() {
  local url=$1 i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

setup() {
  for tool in psql redis-cli python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  [[ -x $BIN ]] || die "no tasker binary at $BIN: run cargo build (or set TASKER_BIN)"
  mkdir -p "$RUN_DIR"
  trap cleanup EXIT INT TERM
  tasker_env
  CREATED_DB=1
  "$BIN" migrate >"$RUN_DIR/migrate.log" 2>&1 || die "tasker migrate failed (see $RUN_DIR/migrate.log)"
}

# start_llm DELAY: the stand-in LLM; sets LLM_URL and points Tasker at it.
start_llm() {
  python3 "$HELPERS/fake_llm.py" --delay "$1" --port-file "$RUN_DIR/llm.port" \
    >"$RUN_DIR/llm.log" 2>&1 &
  PIDS+=($!)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $RUN_DIR/llm.port ]] && break
    sleep 0.1
  done
  LLM_URL=http://127.0.0.1:$(cat "$RUN_DIR/llm.port")
  export TASKER_LLM__BASE_URL=$LLM_URL
  export TASKER_LLM__API_KEY=sk-stand-in
}

# start_api: sets API_URL and METRICS_URL.
start_api() {
  local port ops
  port=$(free_port)
  ops=$(free_port)
  API_URL=http://127.0.0.1:$port
  # shellcheck disable=SC2034 # read by the caller
  METRICS_URL=http://127.0.0.1:$ops/metrics
  TASKER_API__LISTEN=127.0.0.1:$port TASKER_API__OPS_LISTEN=127.0.0.1:$ops \
    "$BIN" api >"$RUN_DIR/api.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$API_URL/ready" || die "the api did not become ready (see $RUN_DIR/api.log)"
}
