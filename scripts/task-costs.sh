#!/usr/bin/env bash
# What one task costs PostgreSQL and Redis: WAL bytes (submit and run),
# table and index bytes, Redis bytes per queued task and per cached result.
# A fresh database and Redis key prefix, one `tasker api`, then
# scripts/scaling/costs.py; everything is stopped and dropped on exit.
# Reads the WAL with pg_waldump, so it must run on the PostgreSQL host as a
# user who can read its pg_wal (root or postgres).
#
# Usage: scripts/task-costs.sh [--tasks N] [--task sum|query_llm] [--out JSON]

set -euo pipefail
SCRIPT=task-costs
# shellcheck source-path=SCRIPTDIR source=scaling/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scaling/common.sh"

TASKS=10000
TASK=sum
OUT=$ROOT/target/scaling/costs.json
while (($# > 0)); do
  case $1 in
    --tasks) TASKS=${2:?} && shift ;;
    --task) TASK=${2:?} && shift ;;
    --out) OUT=${2:?} && shift ;;
    *) echo "usage: scripts/task-costs.sh [--tasks N] [--task sum|query_llm] [--out JSON]" >&2 && exit 2 ;;
  esac
  shift
done
mkdir -p "$(dirname "$OUT")"
OUT=$(realpath "$OUT")
if ! command -v pg_waldump >/dev/null; then
  PG_BINS=(/usr/lib/postgresql/*/bin)
  PATH=$PATH:${PG_BINS[-1]}
fi
command -v pg_waldump >/dev/null || die "pg_waldump is missing (it comes with the PostgreSQL server)"

setup
WAL_DIR=$(sql "$DB_URL" "SELECT current_setting('data_directory')")/pg_wal
[[ -r $WAL_DIR ]] || die "cannot read $WAL_DIR (run as root or postgres)"
start_llm 0
start_api
log "database $DB, Redis prefix $PREFIX, api $API_URL"
python3 "$HELPERS/costs.py" --bin "$BIN" --api "$API_URL" --db "$DB_URL" --redis "$REDIS_URL" \
  --prefix "$PREFIX" --run-dir "$RUN_DIR" --wal-dir "$WAL_DIR" --out "$OUT" \
  --tasks "$TASKS" --task "$TASK"
