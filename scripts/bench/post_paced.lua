-- wrk script: POST /run-task with a fixed `sum` body, each connection
-- waiting a fixed time between requests, for a load below the maximum.
--
--   wrk -t2 -c32 -d10s --latency -s post_paced.lua URL -- DELAY_MS
--
-- 32 connections with a 6 ms delay offer at most 32 / 6 ms = 5,333 req/s
-- (less by the time each request takes).

wrk.method = "POST"
wrk.path = "/run-task"
wrk.body = '{"task_name": "sum", "a": 1, "b": 2}'
wrk.headers["Content-Type"] = "application/json"

local delay_ms = 0

function init(args)
  delay_ms = tonumber(args[1]) or 0
end

function delay()
  return delay_ms
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
