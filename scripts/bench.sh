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
#   (f) a fresh database (never analyzed), api and one worker at once: wrk
#       submits for --duration seconds, then every accepted task is run;
#   (g) submit throughput with API keys required, beside the same without;
#   (h) end to end with auth on, tasks spread over 8 tenants, beside one;
#   (i) 20,000 tasks on a fresh database, one per call (32 in flight)
#       and 100 per call to POST /run-tasks (8 in flight);
#   (j) retention at peak: as (f), with a day-old history expiring as fast
#       as tasks arrive, retention on and off in turn;
#   (k) latency: submit → result through `wait=` with one client, and the
#       submit p99 at half the maximum rate (worker running);
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
  --cases LIST     which cases to measure, comma-separated letters
                   (default a,b,c,d,e,f,g,h,i,j,k: all); d (memory) is read
                   during a, b and c; c reads the tasks b leaves, so c
                   runs b; the cost curve and cost per task come with b
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
CASES=a,b,c,d,e,f,g,h,i,j,k
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
    --cases)
      CASES=${2:-}
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
[[ $CASES =~ ^[a-k](,[a-k])*$ ]] || { echo "--cases needs letters a to k, comma-separated" >&2; exit 2; }

has_case() { [[ ,$CASES, == *,$1,* ]]; }
# (c) reads the tasks the last (b) run finished.
if has_case c && ! has_case b; then
  CASES+=,b
fi

PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
# Clients of the headline runs (a), of the cost curve, and of submission in (b).
HEADLINE_CLIENTS=(32 256)
CURVE_CLIENTS=(1 8 32 128 512)
E2E_CLIENTS=32
CURVE_TASKS=(1000 10000)
# Tenants of (h), and the clients of (i)'s two shapes with its batch size
# (the default api.max_batch_size).
TENANTS=8
BATCH_SIZE=100
BATCH_CLIENTS=8
# (j): finished tasks reaching retention per second (the service's own
# end-to-end peak on a 2-core machine, about 5,000 tasks/s), and seconds of
# them already expired at the start.
EXPIRING_RATE=5000
EXPIRING_BACKLOG=5
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
# Databases made for one run of (f) or (i), dropped after it (or on exit).
FRESH_DBS=()
FRESH_URL=""
# API keys of (g) and (h), one per tenant (made by make_keys).
TOKENS=()

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
  local fresh
  for fresh in "${FRESH_DBS[@]}"; do
    sql "$PG_URL/postgres" "DROP DATABASE IF EXISTS \"$fresh\" WITH (FORCE)" >/dev/null 2>&1
  done
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

# Migrates the database at $1 directly (past any pooler `--set` names).
# Builds from before `database.migrate_url` (measured with --bin) reject
# the setting, so it is given only to binaries that know it.
migrate_at() {
  local url=$1
  if TASKER_DATABASE__MIGRATE_URL=$url "$BIN" config >/dev/null 2>&1; then
    TASKER_DATABASE__URL=$url TASKER_DATABASE__MIGRATE_URL=$url "$BIN" migrate >>"$LOGS/migrate.log" 2>&1
  else
    TASKER_DATABASE__URL=$url "$BIN" migrate >>"$LOGS/migrate.log" 2>&1
  fi
}

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

# --- the first minute, tenants and peers' shapes (issues #17 and #13) ---------

stop_services() {
  stop_process "$WORKER_PID"
  WORKER_PID=""
  stop_process "$API_PID"
  API_PID=""
}

# Starts the api (auth on or off: true/false) and, when asked, a worker,
# both on the database at URL.
start_services() {
  local url=$1 auth=$2 worker=$3
  TASKER_DATABASE__URL=$url TASKER_AUTH__ENABLED=$auth start_api
  if ((worker)); then
    TASKER_DATABASE__URL=$url start_worker
  fi
}

# A database created and migrated for one run, never analyzed (as a new
# deployment's is): its URL goes to FRESH_URL. Empties the run's queues,
# whose messages would name tasks the new database does not hold.
new_fresh_db() {
  local name=tasker_bench_fresh_${RUN_ID}_$1
  FRESH_DBS+=("$name")
  FRESH_URL=$PG_URL/$name
  migrate_at "$FRESH_URL" ||
    die "migrate of $name failed (see $LOGS/migrate.log)"
  "${DRIVER[@]}" clear-queues --prefix "$PREFIX" --redis-cli "redis-cli -u $REDIS_URL"
}

drop_fresh_dbs() {
  local name
  for name in "${FRESH_DBS[@]}"; do
    sql "$PG_URL/postgres" "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
  done
  FRESH_DBS=()
}

# One key per tenant (bench-1 … bench-8) in the run's database, scopes
# submit and read, no rate limit: `tasker keys create` prints the token on
# its last line.
make_keys() {
  ((${#TOKENS[@]} == 0)) || return 0
  local i token
  for ((i = 1; i <= TENANTS; i++)); do
    token=$("$BIN" keys create --tenant "bench-$i" --scope submit --scope read \
      --description "just bench" 2>>"$LOGS/keys.log" | tail -n 1)
    [[ ${#token} -ge 32 ]] || die "tasker keys create gave no token (see $LOGS/keys.log)"
    TOKENS+=("token=$token")
  done
}

# pgbench's INSERT at 32 clients, as in (a), for the ratio of a case that
# ran just before it.
pgbench_beside() {
  local phase=$1 run=$2 cap pg_clients
  cap=$(pg_client_cap)
  pg_clients=$((32 < cap ? 32 : cap))
  echo "-- pgbench INSERT, $pg_clients clients, run $run/$RUNS"
  reset_pgbench
  idle_gate
  "${DRIVER[@]}" pgbench --out "$RESULTS" --log "$LOGS/pgbench.log" \
    --field phase="$phase" --field clients=32 --field pg_clients="$pg_clients" \
    --field run="$run" -- \
    pgbench -n -M prepared -f "$HELPERS/insert.sql" -c "$pg_clients" \
    -j "$(threads_for "$pg_clients")" -T "$DURATION" "$PGBENCH_URL"
}

# wrk posting `sum` tasks at 32 clients for --duration seconds while the
# api and a worker run on FRESH_URL, then drained (the driver's `mixed`);
# the arguments go to the driver (fields, and (j)'s expiring tasks).
mixed_load() {
  "${DRIVER[@]}" mixed --out "$RESULTS" --log "$LOGS/wrk.log" \
    --rss api="$API_PID" --rss worker="$WORKER_PID" \
    --api "$API" --api-metrics "$API_METRICS" --worker-metrics "$WORKER/metrics" \
    --db "$FRESH_URL" --timeout 600 "$@" -- \
    wrk -t2 -c32 "-d${DURATION}s" --timeout 10s --latency -s "$HELPERS/post.lua" "$API" ||
    echo "   (run incomplete; recorded as such)"
}

# (f) The first minute of a new deployment: a database just migrated, the
# api and one worker started on it, wrk submitting at 32 clients for
# --duration seconds; then every accepted task is run.
measure_fresh() {
  log "(f) fresh database, api and one worker: POST /run-task at 32 clients for ${DURATION}s, then drained"
  local run
  for ((run = 1; run <= RUNS; run++)); do
    echo "-- fresh database, run $run/$RUNS"
    new_fresh_db "f$run"
    start_services "$FRESH_URL" false 1
    idle_gate
    mixed_load --field phase=fresh --field run="$run"
    stop_services
    drop_fresh_dbs
    pgbench_beside fresh_pgbench "$run"
  done
}

# (g) POST /run-task, api alone, with API keys required and without, in
# turn (the order swapped every run). The same wrk script sends the key or
# none.
measure_auth() {
  log "(g) POST /run-task, api alone, auth off and on, 32 clients, ${DURATION}s per run"
  make_keys
  local run auth order tokens
  for ((run = 1; run <= RUNS; run++)); do
    order=(false true)
    ((run % 2 == 0)) && order=(true false)
    for auth in "${order[@]}"; do
      tokens=()
      [[ $auth == true ]] && tokens=("${TOKENS[0]}")
      echo "-- auth $auth, run $run/$RUNS"
      reset_tasks
      start_services "$DB_URL" "$auth" 0
      idle_gate
      "${DRIVER[@]}" wrk --out "$RESULTS" --log "$LOGS/wrk.log" --rss api="$API_PID" \
        --field phase=auth --field auth="$auth" --field clients=32 --field run="$run" -- \
        wrk -t2 -c32 "-d${DURATION}s" --timeout 10s --latency \
        -s "$HELPERS/post_keys.lua" "$API" -- "${tokens[@]}"
      stop_services
    done
  done
}

# (h) End to end with auth on: the tasks spread round-robin over 8 tenants'
# keys, beside the same with one tenant (the order swapped every run).
measure_tenants() {
  log "(h) end to end, auth on: $E2E_MAIN tasks from 1 tenant and from $TENANTS tenants"
  make_keys
  local run tenants order script_args token
  local timeout=$((E2E_MAIN / 100 > 120 ? E2E_MAIN / 100 : 120))
  for ((run = 1; run <= RUNS; run++)); do
    order=(1 "$TENANTS")
    ((run % 2 == 0)) && order=("$TENANTS" 1)
    for tenants in "${order[@]}"; do
      script_args=()
      for token in "${TOKENS[@]:0:tenants}"; do
        script_args+=(--script-arg "$token")
      done
      echo "-- $tenants tenant(s), run $run/$RUNS"
      reset_tasks
      start_services "$DB_URL" true 1
      idle_gate
      "${DRIVER[@]}" e2e --out "$RESULTS" --log "$LOGS/wrk.log" \
        --rss api="$API_PID" --rss worker="$WORKER_PID" \
        --field phase=tenants --field tenants="$tenants" --field run="$run" \
        --n "$E2E_MAIN" --clients "$E2E_CLIENTS" --api "$API" --worker-metrics "$WORKER/metrics" \
        --db "$DB_URL" --submit-script "$HELPERS/submit_n.lua" --timeout "$timeout" \
        --pg-stats "${script_args[@]}" || echo "   (run incomplete; recorded as such)"
      stop_services
    done
  done
}

# (i) The shapes other queues are measured with: N tasks on a fresh
# database, one per call with 32 in flight, and BATCH_SIZE per call to
# POST /run-tasks with 8 in flight.
measure_shapes() {
  log "(i) $E2E_MAIN tasks on a fresh database: 1 per call x $E2E_CLIENTS in flight, $BATCH_SIZE per call x $BATCH_CLIENTS"
  local run shape clients script_args
  local timeout=$((E2E_MAIN / 100 > 120 ? E2E_MAIN / 100 : 120))
  for ((run = 1; run <= RUNS; run++)); do
    for shape in single batch; do
      clients=$E2E_CLIENTS
      script_args=()
      if [[ $shape == batch ]]; then
        clients=$BATCH_CLIENTS
        script_args=(--script-arg "batch=$BATCH_SIZE")
      fi
      echo "-- $shape, run $run/$RUNS"
      new_fresh_db "i${run}_$shape"
      start_services "$FRESH_URL" false 1
      idle_gate
      "${DRIVER[@]}" e2e --out "$RESULTS" --log "$LOGS/wrk.log" \
        --rss api="$API_PID" --rss worker="$WORKER_PID" \
        --field phase=shape --field shape="$shape" --field clients="$clients" \
        --field run="$run" --n "$E2E_MAIN" --clients "$clients" --api "$API" \
        --worker-metrics "$WORKER/metrics" --db "$FRESH_URL" \
        --submit-script "$HELPERS/submit_n.lua" --timeout "$timeout" \
        --pg-stats "${script_args[@]}" || echo "   (run incomplete; recorded as such)"
      stop_services
      drop_fresh_dbs
    done
  done
}

# (j) Retention at the service's peak: as (f), on a table that also holds
# finished tasks reaching retention.days = 1 at EXPIRING_RATE per second
# (yesterday's traffic at the same peak), with retention off and on in turn
# (the order swapped every run). Passes every second, so that deleting
# runs through the whole load; the default interval gives each pass more to
# do, worked off at the rate measured here.
measure_retention() {
  log "(j) retention at peak: POST /run-task at 32 clients for ${DURATION}s while $EXPIRING_RATE tasks/s expire; retention off and on"
  local run mode order days
  for ((run = 1; run <= RUNS; run++)); do
    order=(off on)
    ((run % 2 == 0)) && order=(on off)
    for mode in "${order[@]}"; do
      days=0
      [[ $mode == on ]] && days=1
      echo "-- retention $mode, run $run/$RUNS"
      new_fresh_db "j${run}_$mode"
      TASKER_RETENTION__DAYS=$days TASKER_RETENTION__INTERVAL_SECONDS=1 \
        start_services "$FRESH_URL" false 1
      idle_gate
      mixed_load --expiring "$EXPIRING_RATE" --expiring-backlog "$EXPIRING_BACKLOG" \
        --expiring-ahead $((DURATION + 15)) \
        --field phase=retention --field retention="$mode" --field run="$run"
      stop_services
      drop_fresh_dbs
    done
  done
}

# (k) Latency, api and one worker on the steady-state table: one client
# submitting a task and reading its result with `wait=` (submit → result),
# then wrk at 32 connections as fast as they go (the maximum), then paced
# to half the rate that run reached.
measure_latency() {
  log "(k) latency: submit → result with one client; submit p99 at half the maximum rate"
  local run max delay
  start_services "$DB_URL" false 1
  for ((run = 1; run <= RUNS; run++)); do
    echo "-- one client, submit → result, run $run/$RUNS"
    reset_tasks
    idle_gate
    "${DRIVER[@]}" roundtrip --out "$RESULTS" --api "$API" --n 2000 \
      --field phase=latency --field run="$run" || echo "   (run incomplete; recorded as such)"
    echo "-- POST /run-task, 32 clients, as fast as they go, run $run/$RUNS"
    reset_tasks
    idle_gate
    "${DRIVER[@]}" wrk --out "$RESULTS" --log "$LOGS/wrk.log" --rss api="$API_PID" \
      --field phase=latency_max --field run="$run" -- \
      wrk -t2 -c32 "-d${DURATION}s" --timeout 10s --latency -s "$HELPERS/post.lua" "$API"
    read -r max delay < <(tail -n 1 "$RESULTS" | python3 -c '
import json, sys
r = json.load(sys.stdin)
# At half the rate each of 32 connections sends one request every
# 64 / max seconds: the pause is that less the time a request takes
# (about its p50 at the maximum, a little less at half of it).
print(r["rps"], max(1, round(64000 / max(1.0, r["rps"]) - 0.6 * r["p50_ms"])))')
    echo "-- POST /run-task, 32 clients paced to half of $max req/s (${delay} ms apart), run $run/$RUNS"
    reset_tasks
    idle_gate
    "${DRIVER[@]}" wrk --out "$RESULTS" --log "$LOGS/wrk.log" --rss api="$API_PID" \
      --field phase=latency_half --field run="$run" --field max_rps="$max" \
      --field delay_ms="$delay" -- \
      wrk -t2 -c32 "-d${DURATION}s" --timeout 10s --latency -s "$HELPERS/post_paced.lua" \
      "$API" -- "$delay"
  done
  stop_services
}

# (a) at every client count, the api alone.
measure_submit_curve() {
  start_api
  local clients all_clients
  all_clients=("${HEADLINE_CLIENTS[@]}")
  ((CURVE)) && all_clients+=("${CURVE_CLIENTS[@]}")
  mapfile -t all_clients < <(printf '%s\n' "${all_clients[@]}" | sort -n -u)
  log "(a) POST /run-task, api alone, ${DURATION}s per run: ${all_clients[*]} clients"
  for clients in "${all_clients[@]}"; do
    measure_submit "$clients"
  done
  # The api keeps the memory the 512-client runs made it take; (b) and (c)
  # start a new one from its idle footprint.
  stop_process "$API_PID"
  API_PID=""
}

# (b), then (c) on the tasks (b) finished, the cost curve and the cost per
# task. The api and worker keep running for what follows.
measure_end_to_end() {
  start_api
  reset_tasks
  start_worker
  log "(b) end to end: $E2E_MAIN tasks submitted by $E2E_CLIENTS clients"
  measure_e2e "$E2E_MAIN" main

  if has_case c; then
    log "(c) GET /get-task-output on finished tasks"
    local clients
    for clients in "${HEADLINE_CLIENTS[@]}"; do
      measure_reads "$clients"
    done
  fi

  if ((CURVE)); then
    log "cost curve, end to end: ${CURVE_TASKS[*]} tasks"
    local n
    for n in "${CURVE_TASKS[@]}"; do
      measure_e2e "$n" curve
    done
  fi

  measure_account
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
  # The migrations connect directly even with --set TASKER_DATABASE__POOLER=transaction.
  migrate_at "$DB_URL" ||
    die "migrate failed (see $LOGS/migrate.log)"
  migrate_at "$PGBENCH_URL" ||
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

  if has_case e; then
    measure_startup
  fi
  # Each of these starts and stops its own processes.
  if has_case f; then
    measure_fresh
  fi
  if has_case g; then
    measure_auth
  fi
  if has_case h; then
    measure_tenants
  fi
  if has_case i; then
    measure_shapes
  fi
  if has_case j; then
    measure_retention
  fi
  if has_case k; then
    measure_latency
  fi

  if has_case a; then
    measure_submit_curve
  fi
  if has_case b; then
    measure_end_to_end
  fi

  if ((PROFILE)) && [[ -n $WORKER_PID ]]; then
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
    --meta elapsed_s="$elapsed" --meta e2e_clients="$E2E_CLIENTS" --meta cases="$CASES" \
    --meta batch_size="$BATCH_SIZE" --meta batch_clients="$BATCH_CLIENTS" \
    --meta tenants="$TENANTS" --meta e2e_n="$E2E_MAIN" \
    --meta expiring_rate="$EXPIRING_RATE" --meta expiring_backlog="$EXPIRING_BACKLOG" \
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
  if [[ -n $API_PID ]]; then
    log "long-poll: 1,000 concurrent waiters"
    API=$API API_PID=$API_PID DB_URL=$DB_URL bash "$HELPERS/waiters.sh" 1000 "$DURATION" \
      >>"$OUT_DIR/report.md" || echo "waiters measurement failed"
  fi
  echo
  cat "$OUT_DIR/report.md"
  echo
  echo "report: $OUT_DIR/report.md (raw results: $RESULTS, logs: $LOGS)"
}

main
