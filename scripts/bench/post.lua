-- wrk script: POST /run-task with a fixed `sum` body, as fast as the
-- connections allow for the run's duration. The body never changes, so wrk
-- formats the request once (static mode, no Lua call per request).
--
--   wrk -t2 -c32 -d10s --latency -s post.lua http://127.0.0.1:PORT

wrk.method = "POST"
wrk.path = "/run-task"
wrk.body = '{"task_name": "sum", "a": 1, "b": 2}'
wrk.headers["Content-Type"] = "application/json"

-- One machine-readable line for the driver; wrk's own text is printed too.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, '
      .. '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
