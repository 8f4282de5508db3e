-- wrk script: submit exactly N `sum` tasks, then stop.
--
--   wrk -t2 -c32 -d300s -s submit_n.lua http://127.0.0.1:PORT -- N THREADS DIR
--
-- Each thread sends its share of the N POSTs. Once a thread has sent its
-- share it sends cheap GET /health requests (wrk has no "send nothing")
-- until the answers to all of its POSTs are in, then stops and creates
-- DIR/thread-<i>.done. /health answers 200; /run-task answers 202 (or an
-- error), which is how the two are told apart. wrk itself runs until -d is
-- over or it gets SIGINT: the driver sends SIGINT once every thread is done.
--
-- wrk 4 calls request() once in the first thread's state before the run,
-- to check the script (script_verify_request); that request is never sent,
-- so it must not count as one of the thread's POSTs.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
end

function init(args)
  local total = tonumber(args[1]) or 1000
  local threads = tonumber(args[2]) or 1
  local index = thread_index or 1
  marker = (args[3] or ".") .. "/thread-" .. index .. ".done"
  share = math.floor(total / threads)
  if index <= total % threads then
    share = share + 1
  end
  sent = 0
  answered = 0
  verifying = index == 1
  if share == 0 then
    local file = io.open(marker, "w")
    if file then
      file:close()
    end
  end
  post = wrk.format("POST", "/run-task", { ["Content-Type"] = "application/json" },
    '{"task_name": "sum", "a": 1, "b": 2}')
  filler = wrk.format("GET", "/health")
end

function request()
  if verifying then
    verifying = false
    return post
  end
  if sent < share then
    sent = sent + 1
    return post
  end
  return filler
end

function response(status, headers, body)
  if status ~= 200 then
    answered = answered + 1
    if answered == share then
      local file = io.open(marker, "w")
      if file then
        file:close()
      end
      wrk.thread:stop()
    end
  end
end

-- BENCH_JSON line at the end of the run, shared with the other scripts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
