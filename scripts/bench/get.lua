-- wrk script: GET /get-task-output over a list of task ids, one per line,
-- cycling through the list (each thread starts at a different place).
--
--   wrk -t2 -c32 -d10s --latency -s get.lua http://127.0.0.1:PORT -- IDS_FILE

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
end

function init(args)
  requests_list = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      requests_list[#requests_list + 1] =
        wrk.format("GET", "/get-task-output?task_uuid=" .. line)
    end
  end
  if #requests_list == 0 then
    error("no task ids in " .. tostring(args[1]))
  end
  position = ((thread_index or 1) * 7919) % #requests_list
end

function request()
  position = position % #requests_list + 1
  return requests_list[position]
end

-- BENCH_JSON line at the end of the run, shared with the other scripts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
