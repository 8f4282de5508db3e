# shellcheck shell=bash
# Sourced by .ci/docs-check, .ci/console-check, .ci/contract-check and
# .ci/clients-check: runs `tasker dev` on free 127.0.0.1 ports with a
# database and a Redis key prefix of its own, and removes all three on exit.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on
# 127.0.0.1:6379, as the test suite does.
#
#   dev_server_start NAME [VAR=VALUE...]
#                           build if needed, start, wait for /ready;
#                           sets DEV_URL (http://127.0.0.1:PORT), and
#                           DEV_OPS_URL and DEV_WORKER_URL (the API's
#                           operations port and the worker's: /metrics);
#                           the service logs to DEV_LOG (default: a temp file).
#                           Each VAR=VALUE is added to the service's
#                           environment, after (so over) the settings below:
#                           e.g. TASKER_AUTH__ENABLED=true. Without them auth
#                           is off, whatever the caller's environment says.
#   dev_server_stop         SIGTERM, wait, drop the database and the keys
#                           (also run on exit, whatever the exit status)
#
#   tasker_env DB PREFIX    sets TASKER_ENV, the `env` arguments of those
#                           settings on another database and key prefix
#   drop_database DB, drop_key_prefix PREFIX
#                           what dev_server_stop removes, for others' own
#
# TASKER_BIN names a prebuilt binary; otherwise target/debug/tasker is built.

PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}

DEV_PID=""
DEV_DB=""
DEV_PREFIX=""
DEV_LOG=""
DEV_URL=""
DEV_OPS_URL=""
DEV_WORKER_URL=""
DEV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tasker-check.XXXXXX")

log() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

# shellcheck source=.ci/lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

tasker_bin() {
  if [[ -n ${TASKER_BIN:-} ]]; then
    [[ -x $TASKER_BIN ]] || die "TASKER_BIN=$TASKER_BIN is not an executable"
    echo "$TASKER_BIN"
    return
  fi
  cargo build --quiet --bin tasker >&2 || die "cargo build failed"
  echo "${CARGO_TARGET_DIR:-target}/debug/tasker"
}

# Sets TASKER_ENV to the arguments of `env` that give tasker only this
# check's settings, on database DB and Redis key prefix PREFIX: no
# configuration file, no LLM key (a query_llm task fails at once instead of
# calling out), no trace export, auth off unless the caller asks, and short
# waiting reads, so no answer nears a client's time limit.
tasker_env() {
  local db=$1 prefix=$2
  TASKER_ENV=(
    -u TASKER_CONFIG -u TASKER_LLM__API_KEY -u TASKER_LLM__API_KEY_FILE
    -u TASKER_OTEL__ENDPOINT -u OTEL_EXPORTER_OTLP_ENDPOINT
    -u TASKER_AUTH__ENABLED -u TASKER_AUTH__BOOTSTRAP_TOKEN -u TASKER_AUTH__BOOTSTRAP_TOKEN_FILE
    TASKER_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$db"
    TASKER_REDIS__URL="redis://$REDIS_HOST:$REDIS_PORT"
    TASKER_REDIS__KEY_PREFIX="$prefix"
    TASKER_LLM__BASE_URL="http://127.0.0.1:9"
    TASKER_API__MAX_WAIT_SECONDS="${DEV_MAX_WAIT_SECONDS:-2}"
    TASKER_LOG__LEVEL="info,sqlx=warn"
  )
}

dev_server_start() {
  local name=$1 bin extra attempt status
  shift
  for extra in "$@"; do
    # (not echoed: it may hold a secret)
    [[ $extra =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "dev_server_start: an argument is not VAR=VALUE"
  done
  bin=$(tasker_bin)
  # A free port can be taken between the pick and tasker's bind; only that
  # failure is retried, on new ports, with a new database.
  for attempt in 1 2 3; do
    status=0
    dev_server_try "$name" "$bin" "$@" || status=$?
    [[ $status -eq 2 ]] || return "$status"
    echo "a port was taken before tasker bound it; retrying on other ports (attempt $attempt)" >&2
    dev_server_stop_keep_tmp
  done
  die "tasker dev could not bind its ports in 3 attempts"
}

# 0: ready; 2: a port was in use (retry); otherwise it dies.
dev_server_try() {
  local name=$1 bin=$2 api_port worker_port ops_port
  shift 2
  api_port=$(free_port) || die "no free port"
  worker_port=$(free_port) || die "no free port"
  while [[ $worker_port == "$api_port" ]]; do worker_port=$(free_port) || die "no free port"; done
  ops_port=$(free_port) || die "no free port"
  while [[ $ops_port == "$api_port" || $ops_port == "$worker_port" ]]; do ops_port=$(free_port) || die "no free port"; done
  local suffix
  suffix="$(date +%s)_$$_${RANDOM}"
  DEV_DB="tasker_${name//-/_}_${suffix}"
  DEV_PREFIX="tasker-${name}-${suffix}"
  DEV_LOG=${DEV_LOG:-$DEV_TMP/tasker.log}
  : >"$DEV_LOG"
  DEV_URL="http://127.0.0.1:$api_port"
  # shellcheck disable=SC2034 # read by the scripts that source this file
  DEV_OPS_URL="http://127.0.0.1:$ops_port"
  # shellcheck disable=SC2034
  DEV_WORKER_URL="http://127.0.0.1:$worker_port"

  log "starting tasker dev on $DEV_URL (database $DEV_DB, Redis prefix $DEV_PREFIX)"
  tasker_env "$DEV_DB" "$DEV_PREFIX"
  env "${TASKER_ENV[@]}" \
    TASKER_API__LISTEN="127.0.0.1:$api_port" \
    TASKER_API__OPS_LISTEN="127.0.0.1:$ops_port" \
    TASKER_WORKER__LISTEN="127.0.0.1:$worker_port" \
    "$@" \
    "$bin" dev >"$DEV_LOG" 2>&1 &
  DEV_PID=$!

  for _ in $(seq 1 120); do
    if ! kill -0 "$DEV_PID" 2>/dev/null; then
      DEV_PID=""
      tail -n 30 "$DEV_LOG" >&2
      grep -q "Address already in use" "$DEV_LOG" && return 2
      die "tasker dev exited before it was ready (log above)"
    fi
    if "$bin" probe "$DEV_URL/ready" 2>/dev/null; then
      echo "ready"
      return 0
    fi
    sleep 0.5
  done
  tail -n 30 "$DEV_LOG" >&2
  "$bin" probe "$DEV_URL/ready" || true
  die "tasker dev did not become ready within 60 s (its log above)"
}

dev_server_stop() {
  dev_server_stop_keep_tmp
  rm -rf "$DEV_TMP"
}

# Stops the service and drops its database and keys; keeps DEV_TMP (and so
# DEV_LOG) for a retry.
dev_server_stop_keep_tmp() {
  if [[ -n $DEV_PID ]]; then
    kill -TERM "$DEV_PID" 2>/dev/null || true
    # The worker's shutdown grace is 20 s; give it a little more.
    for _ in $(seq 1 50); do
      kill -0 "$DEV_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
    DEV_PID=""
  fi
  [[ -n $DEV_DB ]] && drop_database "$DEV_DB"
  DEV_DB=""
  [[ -n $DEV_PREFIX ]] && drop_key_prefix "$DEV_PREFIX"
  DEV_PREFIX=""
}

drop_database() {
  if command -v psql >/dev/null; then
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null \
      || echo "warning: could not drop database $1" >&2
  else
    echo "warning: psql not found; drop database $1 by hand" >&2
  fi
}

drop_key_prefix() {
  if command -v redis-cli >/dev/null; then
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$1:*" \
      | xargs -r redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null \
      || echo "warning: could not delete the Redis keys $1:*" >&2
  else
    echo "warning: redis-cli not found; delete the Redis keys $1:* by hand" >&2
  fi
}

trap dev_server_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
