-- Shared by the wrk scripts: at the end of a run, one machine-readable line
-- for the driver (wrk's own text is printed too). Loaded with
--   dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
-- so that it is found next to the script whatever the working directory.

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
