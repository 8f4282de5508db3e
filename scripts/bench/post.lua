-- wrk script: POST /run-task with a fixed `sum` body, as fast as the
-- connections allow for the run's duration. The body never changes, so wrk
-- formats the request once (static mode, no Lua call per request).
--
--   wrk -t2 -c32 -d10s --latency -s post.lua http://127.0.0.1:PORT

wrk.method = "POST"
wrk.path = "/run-task"
wrk.body = '{"task_name": "sum", "a": 1, "b": 2}'
wrk.headers["Content-Type"] = "application/json"

-- BENCH_JSON line at the end of the run, shared with the other scripts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
