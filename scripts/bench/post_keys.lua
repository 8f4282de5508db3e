-- wrk script: POST /run-task with a fixed `sum` body for the run's
-- duration, like post.lua, but sending each API key given as
-- `Authorization: Bearer <key>`, in turn. With no key it sends none: the
-- same script measures auth off and on, so wrk's own cost (one Lua call per
-- request) is the same on both sides.
--
--   wrk -t2 -c32 -d10s --latency -s post_keys.lua http://127.0.0.1:PORT -- [token=KEY...]

function init(args)
  local tokens = {}
  for i = 1, #args do
    tokens[i] = args[i]:match("^token=(.*)$") or error("unknown option " .. args[i])
  end
  requests_list = {}
  for i = 1, math.max(1, #tokens) do
    local headers = { ["Content-Type"] = "application/json" }
    if tokens[i] then
      headers["Authorization"] = "Bearer " .. tokens[i]
    end
    requests_list[i] = wrk.format("POST", "/run-task", headers,
      '{"task_name": "sum", "a": 1, "b": 2}')
  end
  position = 0
end

function request()
  position = position % #requests_list + 1
  return requests_list[position]
end

-- BENCH_JSON line at the end of the run, shared with the other scripts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
