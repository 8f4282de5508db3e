#!/usr/bin/env bash
# 1,000 concurrent long-poll waiters on one unfinished task: memory and CPU of
# the api while it holds them. Prints a Markdown section.
#   API=http://127.0.0.1:PORT API_PID=PID DB_URL=postgres://… waiters.sh [waiters] [seconds]
set -euo pipefail

waiters=${1:-1000}
seconds=${2:-10}
: "${API:?}" "${API_PID:?}" "${DB_URL:?}"

# wrk needs a descriptor per connection.
ulimit -n $((waiters + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# A task on a queue no worker consumes: it stays pending, so every request
# waits its whole `wait`.
id=$(psql -XAtq -v ON_ERROR_STOP=1 -d "$DB_URL" -c "INSERT INTO tasks
  (id, task_name, task_parameters, queue, max_attempts)
  VALUES (gen_random_uuid(), 'sum', '{\"a\": 1, \"b\": 1}', 'bench-parked', 1)
  RETURNING id")

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$API_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$API_PID/stat"; }

idle_rss=$(rss_kb)
wrk -t2 -c"$waiters" -d"${seconds}s" --timeout "$((seconds + 40))s" \
  "$API/tasks/$id?wait=30" >/dev/null 2>&1 &
wrk_pid=$!
# Let every connection open and park its request, then measure a window.
sleep 3
window=$((seconds - 4))
ticks_before=$(cpu_ticks)
sleep "$window"
ticks_after=$(cpu_ticks)
held_rss=$(rss_kb)
kill "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" 2>/dev/null || true
psql -XAtq -d "$DB_URL" -c "DELETE FROM tasks WHERE id = '$id'" >/dev/null

hz=$(getconf CLK_TCK)
awk -v w="$waiters" -v idle="$idle_rss" -v held="$held_rss" \
  -v t="$((ticks_after - ticks_before))" -v hz="$hz" -v win="$window" 'BEGIN {
  printf "\n## Long-poll waiters\n\n"
  printf "%d connections each holding `GET /tasks/{id}?wait=30` on a task that stays pending, measured over %d s after they opened.\n\n", w, win
  printf "| waiters | api RSS before | api RSS holding them | per waiter | api CPU (cores) |\n"
  printf "|---|---|---|---|---|\n"
  printf "| %d | %.1f MB | %.1f MB | %.1f KB | %.3f |\n", w, idle / 1024, held / 1024, (held - idle) / w, t / hz / win
}'
