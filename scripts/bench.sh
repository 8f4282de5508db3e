#!/usr/bin/env bash
# Tasker benchmark: a measurement, not a test.
#
# Starts the release binary (`tasker api` and `tasker worker`, separate
# processes) against the local PostgreSQL and Redis, with a database and a
# Redis key prefix of its own, and measures:
#   (a) POST /run-task throughput and p50/p99 at 32 and 256 clients,
#       beside pgbench running the API's INSERT at the same client count;
#   (b) end to end: N sum tasks submitted, time until all are finished;
#   (c) GET /get-task-output of finished tasks (cache hits);
#   (d) peak RSS of the api and the worker;
#   (e) time from process start to /ready;
# plus the cost curve (1 to 512 clients; 1,000 and 10,000 tasks) and the
# round trips and CPU each task costs. Every figure is the median of --runs
# runs with its min-max spread. The report goes to target/bench/report.md.
#
# The load generator (wrk, pgbench) runs on the same machine, and so shares
# its cores with Tasker, PostgreSQL and Redis.

set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bench.sh [options]

  --quick          smoke test: 1 run, 5 s per load, 5,000-task end to end,
                   no cost curve
  --runs N         runs per measurement (default 3; 1 with --quick)
  --duration S     seconds per throughput run (default 10; 5 with --quick)
  --full           add the 100,000-task end-to-end case
  --no-curve       skip the cost curve (1..512 clients, 1,000/10,000 tasks)
  --idle-wait S    before each run, wait up to S seconds (default 30) for the
                   machine to be idle (under 15% CPU); 0 disables
  --profile        also record where time goes: perf samples of every
                   process and a per-socket count of the api's and the
                   worker's sends (strace); written to target/bench/profile/
  --bin PATH       measure this tasker binary instead of building
                   target/release/tasker (under $CARGO_TARGET_DIR when
                   set), to compare two builds in turn
  --out DIR        write the report and raw results to DIR
                   (default target/bench)
  --set NAME=VALUE a setting for both processes, as a TASKER_ variable
                   (e.g. --set TASKER_WORKER__CONCURRENCY=64); repeatable;
                   the report lists them
  -h, --help       this text

Environment: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432),
BENCH_REDIS_URL (default redis://127.0.0.1:6379).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/scripts/bench
OUT_DIR=$ROOT/target/bench
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tasker
DRIVER=(python3 "$HELPERS/driver.py")

RUNS=""
DURATION=""
QUICK=0
FULL=0
CURVE=1
PROFILE=0
IDLE_WAIT=30
CUSTOM_BIN=0
SETTINGS=()
while (($# > 0)); do
  case $1 in
    --quick) QUICK=1 ;;
    --full) FULL=1 ;;
    --no-curve) CURVE=0 ;;
    --profile) PROFILE=1 ;;
    --runs)
      RUNS=${2:-}
      shift
      ;;
    --duration)
      DURATION=${2:-}
      shift
      ;;
    --idle-wait)
      IDLE_WAIT=${2:-}
      shift
      ;;
    --bin)
      BIN=$(realpath "${2:-}")
      CUSTOM_BIN=1
      shift
      ;;
    --set)
      [[ ${2:-} =~ ^TASKER_[A-Z0-9_]+=.*$ ]] || { echo "--set needs TASKER_NAME=value" >&2; exit 2; }
      SETTINGS+=("$2")
      shift
      ;;
    --out)
      mkdir -p "${2:-}"
      OUT_DIR=$(realpath "${2:-}")
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "unknown option: $1" >&2
      usage >&2
      exit 2
      ;;
  esac
  shift
done

if ((QUICK)); then
  RUNS=${RUNS:-1}
  DURATION=${DURATION:-5}
  E2E_MAIN=5000
  ACCOUNT_TASKS=2000
  CURVE=0
else
  RUNS=${RUNS:-3}
  DURATION=${DURATION:-10}
  E2E_MAIN=20000
  ACCOUNT_TASKS=10000
fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "--runs needs a positive integer" >&2; exit 2; }
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "--duration needs whole seconds" >&2; exit 2; }
[[ $IDLE_WAIT =~ ^[0-9]+$ ]] || { echo "--idle-wait needs whole seconds" >&2; exit 2; }

PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
# Clients of the headline runs (a), of the cost curve, and of submission in (b).
HEADLINE_CLIENTS=(32 256)
CURVE_CLIENTS=(1 8 32 128 512)
E2E_CLIENTS=32
CURVE_TASKS=(1000 10000)
((FULL)) && CURVE_TASKS+=(100000)

log() { printf '\n== %s\n' "$*"; }
die() {
  echo "bench: $*" >&2
  exit 1
}

# --- tools and binary -------------------------------------------------------

ensure_tools() {
  if ! command -v wrk >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      log "installing wrk"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
      die "wrk is missing: install it (Debian: apt-get install wrk)"
    fi
  fi
  local tool
  for tool in wrk pgbench psql redis-cli python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  if ((PROFILE)); then
    for tool in perf strace; do
      command -v "$tool" >/dev/null || die "--profile needs $tool (Debian: linux-perf, strace)"
    done
  fi
}

build_if_stale() {
  if ((CUSTOM_BIN)); then
    [[ -x $BIN ]] || die "--bin: $BIN is not an executable"
    return
  fi
  local newer=""
  if [[ -x $BIN ]]; then
    newer=$(find "$ROOT/src" "$ROOT/migrations" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" \
      -newer "$BIN" -print -quit)
  fi
  if [[ ! -x $BIN || -n $newer ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --quiet)
  fi
}

# --- state of one run ---------------------------------------------------------

RUN_ID=$(date +%Y%m%d%H%M%S)_$$
DB=tasker_bench_$RUN_ID
PGBENCH_DB=tasker_bench_pg_$RUN_ID
PREFIX=tasker-bench-$RUN_ID
DB_URL=$PG_URL/$DB
PGBENCH_URL=$PG_URL/$PGBENCH_DB
RESULTS=$OUT_DIR/results.jsonl
LOGS=$OUT_DIR/logs
API_PID=""
WORKER_PID=""
CREATED_DBS=0

redis() { redis-cli -u "$REDIS_URL" "$@"; }
sql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

stop_process() {
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local code=$?
  set +e
  trap - EXIT INT TERM
  stop_process "$WORKER_PID"
  stop_process "$API_PID"
  wait 2>/dev/null
  if ((CREATED_DBS)); then
    sql "$PG_URL/postgres" "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    sql "$PG_URL/postgres" "DROP DATABASE IF EXISTS \"$PGBENCH_DB\" WITH (FORCE)" >/dev/null 2>&1
  fi
  # SCAN ends by itself; DEL in batches of 500 keys.
  redis --scan --pattern "$PREFIX:*" 2>/dev/null | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1
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
  local setting
  for setting in "${SETTINGS[@]}"; do
    export "${setting?}"
  done
}

# Puts the tasks table back to a run's start state (100,000 finished tasks,
# vacuumed and analyzed: a service in steady state), empties the queues and
# checkpoints, so that every run starts alike. Cached results stay (they are
# read in (c)).
reset_tasks() {
  "${DRIVER[@]}" reset --db "$DB_URL" --prefix "$PREFIX" --redis-cli "redis-cli -u $REDIS_URL"
}

reset_pgbench() {
  "${DRIVER[@]}" reset --db "$PGBENCH_URL"
}

# Clients pgbench may open: what max_connections leaves, with a margin for
# everything else connected to this server.
pg_client_cap() {
  sql "$PG_URL/postgres" "SELECT current_setting('max_connections')::int
    - current_setting('superuser_reserved_connections')::int
    - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') - 10"
}

# Lets a run start only once the machine is idle (bounded by --idle-wait).
idle_gate() {
  ((IDLE_WAIT > 0)) || return 0
  "${DRIVER[@]}" wait-idle --max-wait "$IDLE_WAIT"
}

threads_for() { if (($1 < 2)); then echo 1; else echo 2; fi; }

start_api() {
  "$BIN" api >>"$LOGS/api.log" 2>&1 &
  API_PID=$!
  "${DRIVER[@]}" wait-ready "$API/ready" 30 || die "the api did not become ready (see $LOGS/api.log)"
}

start_worker() {
  "$BIN" worker >>"$LOGS/worker.log" 2>&1 &
  WORKER_PID=$!
  "${DRIVER[@]}" wait-ready "$WORKER/ready" 30 || die "the worker did not become ready (see $LOGS/worker.log)"
}

# --- measurements ---------------------------------------------------------------

measure_startup() {
  log "(e) start to /ready: api and worker, $RUNS run(s) each"
  local run ports port
  for ((run = 1; run <= RUNS; run++)); do
    idle_gate
    read -r -a ports < <("${DRIVER[@]}" ports 3)
    port=${ports[0]}
    TASKER_API__LISTEN=127.0.0.1:$port "${DRIVER[@]}" startup --out "$RESULTS" \
      --log "$LOGS/startup.log" --field process=api --field run="$run" \
      --url "http://127.0.0.1:$port/ready" -- "$BIN" api
    port=${ports[1]}
    TASKER_WORKER__LISTEN=127.0.0.1:$port "${DRIVER[@]}" startup --out "$RESULTS" \
      --log "$LOGS/startup.log" --field process=worker --field run="$run" \
      --url "http://127.0.0.1:$port/ready" -- "$BIN" worker
  done
}

# POST /run-task with wrk, then pgbench with the same INSERT and client
# count, alternating so that drift affects both alike. The worker is not
# running: this is the submit path alone, as pgbench is the INSERT alone.
measure_submit() {
  local clients=$1 run threads cap pg_clients
  for ((run = 1; run <= RUNS; run++)); do
    threads=$(threads_for "$clients")
    echo "-- POST /run-task, $clients clients, run $run/$RUNS"
    reset_tasks
    idle_gate
    "${DRIVER[@]}" wrk --out "$RESULTS" --log "$LOGS/wrk.log" --rss api="$API_PID" \
      --field phase=submit --field clients="$clients" --field run="$run" -- \
      wrk "-t$threads" "-c$clients" "-d${DURATION}s" --timeout 10s --latency \
      -s "$HELPERS/post.lua" "$API"
    cap=$(pg_client_cap)
    pg_clients=$((clients < cap ? clients : cap))
    echo "-- pgbench INSERT, $pg_clients clients, run $run/$RUNS"
    reset_pgbench
    idle_gate
    "${DRIVER[@]}" pgbench --out "$RESULTS" --log "$LOGS/pgbench.log" \
      --field phase=pgbench --field clients="$clients" --field pg_clients="$pg_clients" \
      --field run="$run" -- \
      pgbench -n -M prepared -f "$HELPERS/insert.sql" -c "$pg_clients" \
      -j "$(threads_for "$pg_clients")" -T "$DURATION" "$PGBENCH_URL"
  done
}

measure_e2e() {
  local n=$1 label=$2 run ids_arg=()
  local timeout=$((n / 100 > 120 ? n / 100 : 120))
  for ((run = 1; run <= RUNS; run++)); do
    echo "-- end to end, $n tasks, run $run/$RUNS"
    reset_tasks
    idle_gate
    ids_arg=()
    ((run == RUNS)) && [[ $label == main ]] && ids_arg=(--ids "$OUT_DIR/task-ids.txt")
    "${DRIVER[@]}" e2e --out "$RESULTS" --log "$LOGS/wrk.log" \
      --rss api="$API_PID" --rss worker="$WORKER_PID" \
      --field phase=e2e --field set="$label" --field run="$run" \
      --n "$n" --clients "$E2E_CLIENTS" --api "$API" --worker-metrics "$WORKER/metrics" \
      --db "$DB_URL" --submit-script "$HELPERS/submit_n.lua" --timeout "$timeout" \
      "${ids_arg[@]}" || echo "   (run incomplete; recorded as such)"
  done
}

measure_reads() {
  local clients=$1 run
  for ((run = 1; run <= RUNS; run++)); do
    echo "-- GET /get-task-output (cached), $clients clients, run $run/$RUNS"
    idle_gate
    "${DRIVER[@]}" wrk --out "$RESULTS" --log "$LOGS/wrk.log" --rss api="$API_PID" \
      --hit-metrics "$API_METRICS" \
      --field phase=read --field clients="$clients" --field run="$run" -- \
      wrk -t2 "-c$clients" "-d${DURATION}s" --timeout 10s --latency \
      -s "$HELPERS/get.lua" "$API" -- "$OUT_DIR/task-ids.txt"
  done
}

# Cost per task, submit and run apart: N tasks submitted with no worker
# running, then a fresh worker runs them (it stays up for what follows).
measure_account() {
  log "round trips and CPU per task: $ACCOUNT_TASKS tasks submitted with no worker, then run"
  stop_process "$WORKER_PID"
  WORKER_PID=""
  reset_tasks
  idle_gate
  local state=$OUT_DIR/account-state.json pid_file=$OUT_DIR/worker.pid
  rm -f "$state" "$pid_file"
  if "${DRIVER[@]}" account-submit --out "$RESULTS" --log "$LOGS/wrk.log" --rss api="$API_PID" \
    --state "$state" --n "$ACCOUNT_TASKS" --clients "$E2E_CLIENTS" --api "$API" \
    --worker-metrics "$WORKER/metrics" --db "$DB_URL" --prefix "$PREFIX" \
    --submit-script "$HELPERS/submit_n.lua" --timeout 300 --redis-cli "redis-cli -u $REDIS_URL"; then
    "${DRIVER[@]}" account-run --out "$RESULTS" --rss api="$API_PID" --field phase=account \
      --state "$state" --api "$API" --worker-metrics "$WORKER/metrics" \
      --worker-log "$LOGS/worker.log" --pid-file "$pid_file" --db "$DB_URL" --prefix "$PREFIX" \
      --redis-cli "redis-cli -u $REDIS_URL" --timeout 300 -- "$BIN" worker ||
      echo "   (accounting run incomplete)"
  else
    echo "   (accounting submit incomplete)"
  fi
  if [[ -s $pid_file ]]; then
    WORKER_PID=$(<"$pid_file")
    "${DRIVER[@]}" wait-ready "$WORKER/ready" 30 || die "the worker did not become ready"
  else
    start_worker
  fi
}

# Share of the machine's CPU busy over two seconds before the benchmark
# starts: anything else running shares the cores with the measurements.
background_load() {
  python3 - <<'PY'
import time
def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)
b0, t0 = busy(); time.sleep(2); b1, t1 = busy()
print(f"{(b1 - b0) / max(1, t1 - t0):.2f}")
PY
}

# The commit the measured binary was built from, as far as is known.
binary_version() {
  if ((CUSTOM_BIN)); then
    cat "$BIN.commit" 2>/dev/null || basename "$BIN"
  else
    git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown
  fi
}

main() {
  ensure_tools
  build_if_stale
  mkdir -p "$OUT_DIR"
  rm -rf "$LOGS" "$OUT_DIR/profile"
  mkdir -p "$LOGS"
  : >"$RESULTS"
  local started=$SECONDS

  trap cleanup EXIT
  trap 'exit 130' INT TERM
  tasker_env
  sql "$PG_URL/postgres" "SELECT 1" >/dev/null || die "PostgreSQL does not answer at $PG_URL"
  [[ $(redis PING) == PONG ]] || die "Redis does not answer at $REDIS_URL"

  local idle_load
  idle_load=$(background_load)
  echo "machine busy before the start: $(awk -v l="$idle_load" 'BEGIN { printf "%.0f%%", l * 100 }')"
  if awk -v l="$idle_load" 'BEGIN { exit !(l > 0.1) }'; then
    echo "warning: the machine is not idle; every figure will be lower than it could be" >&2
  fi

  log "fresh databases $DB, $PGBENCH_DB; Redis prefix $PREFIX"
  CREATED_DBS=1
  "$BIN" migrate >>"$LOGS/migrate.log" 2>&1 || die "migrate failed (see $LOGS/migrate.log)"
  TASKER_DATABASE__URL=$PGBENCH_URL "$BIN" migrate >>"$LOGS/migrate.log" 2>&1 ||
    die "migrate of the pgbench database failed"

  local ports
  read -r -a ports < <("${DRIVER[@]}" ports 3)
  export TASKER_API__LISTEN=127.0.0.1:${ports[0]}
  export TASKER_WORKER__LISTEN=127.0.0.1:${ports[1]}
  API=http://127.0.0.1:${ports[0]}
  WORKER=http://127.0.0.1:${ports[1]}
  # Builds with an operations port serve the api's /metrics there (older
  # builds, measured with --bin, serve it on the api port).
  if "$BIN" config 2>/dev/null | grep -q '^ops_listen'; then
    export TASKER_API__OPS_LISTEN=127.0.0.1:${ports[2]}
    API_METRICS=http://127.0.0.1:${ports[2]}/metrics
  else
    API_METRICS=$API/metrics
  fi

  measure_startup

  start_api
  local clients all_clients
  all_clients=("${HEADLINE_CLIENTS[@]}")
  ((CURVE)) && all_clients+=("${CURVE_CLIENTS[@]}")
  mapfile -t all_clients < <(printf '%s\n' "${all_clients[@]}" | sort -n -u)
  log "(a) POST /run-task, api alone, ${DURATION}s per run: ${all_clients[*]} clients"
  for clients in "${all_clients[@]}"; do
    measure_submit "$clients"
  done

  # The api keeps the memory the 512-client runs made it take; a new one
  # starts (b) and (c) from its idle footprint.
  stop_process "$API_PID"
  API_PID=""
  start_api
  reset_tasks
  start_worker
  log "(b) end to end: $E2E_MAIN tasks submitted by $E2E_CLIENTS clients"
  measure_e2e "$E2E_MAIN" main

  log "(c) GET /get-task-output on finished tasks"
  for clients in "${HEADLINE_CLIENTS[@]}"; do
    measure_reads "$clients"
  done

  if ((CURVE)); then
    log "cost curve, end to end: ${CURVE_TASKS[*]} tasks"
    local n
    for n in "${CURVE_TASKS[@]}"; do
      measure_e2e "$n" curve
    done
  fi

  measure_account

  if ((PROFILE)); then
    log "profile (perf, strace)"
    reset_tasks
    PROFILE_DIR=$OUT_DIR/profile API_PID=$API_PID WORKER_PID=$WORKER_PID API=$API \
      WORKER=$WORKER DB_URL=$DB_URL DURATION=$DURATION \
      bash "$HELPERS/profile.sh" || echo "profile incomplete"
  fi

  local elapsed=$((SECONDS - started))
  python3 "$HELPERS/report.py" --results "$RESULTS" --out "$OUT_DIR/report.md" \
    --profile-results "$OUT_DIR/profile/results.jsonl" \
    --meta runs="$RUNS" --meta duration_s="$DURATION" --meta quick="$QUICK" \
    --meta elapsed_s="$elapsed" --meta e2e_clients="$E2E_CLIENTS" \
    --meta commit="$(binary_version)" \
    --meta cpus="$(nproc)" --meta idle_load="$idle_load" \
    --meta settings="${SETTINGS[*]}" \
    --meta cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
    --meta memory="$(free -h | awk '/^Mem:/ {print $2}')" \
    --meta kernel="$(uname -r)" \
    --meta postgres="$(sql "$PG_URL/postgres" 'SHOW server_version')" \
    --meta pg_settings="$(sql "$PG_URL/postgres" "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('max_connections', 'shared_buffers', 'synchronous_commit', 'fsync', 'wal_level')")" \
    --meta redis="$(redis INFO server | sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')" \
    --meta wrk="$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
  log "long-poll: 1,000 concurrent waiters"
  API=$API API_PID=$API_PID DB_URL=$DB_URL bash "$HELPERS/waiters.sh" 1000 "$DURATION" \
    >>"$OUT_DIR/report.md" || echo "waiters measurement failed"
  echo
  cat "$OUT_DIR/report.md"
  echo
  echo "report: $OUT_DIR/report.md (raw results: $RESULTS, logs: $LOGS)"
}

main
