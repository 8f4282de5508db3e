-- wrk script: submit exactly N `sum` tasks, then stop.
--
--   wrk -t2 -c32 -d300s -s submit_n.lua http://127.0.0.1:PORT -- N THREADS DIR [OPTION...]
--
-- Options, each one argument:
--   batch=B    B tasks per request, in the body of POST /run-tasks
--              ({"tasks": [...]}); without it, one task per POST /run-task
--   token=T    an API key sent as `Authorization: Bearer T`; with several,
--              the requests take them in turn (one tenant each)
--
-- Each thread sends its share of the N tasks. Once a thread has sent its
-- share it sends cheap GET /health requests (wrk has no "send nothing")
-- until the answers to all of its POSTs are in, then stops and creates
-- DIR/thread-<i>.done. /health answers 200; a POST answers 202 (or an
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

local function batch_body(size)
  local items = {}
  for i = 1, size do
    items[i] = '{"task_name": "sum", "a": 1, "b": 2}'
  end
  return '{"tasks": [' .. table.concat(items, ", ") .. ']}'
end

-- One POST of `size` tasks for each token (or one without a token).
local function posts_of(size, batch, tokens)
  local path, body = "/run-task", '{"task_name": "sum", "a": 1, "b": 2}'
  if batch > 1 then
    path, body = "/run-tasks", batch_body(size)
  end
  local list = {}
  for i = 1, math.max(1, #tokens) do
    local headers = { ["Content-Type"] = "application/json" }
    if tokens[i] then
      headers["Authorization"] = "Bearer " .. tokens[i]
    end
    list[i] = wrk.format("POST", path, headers, body)
  end
  return list
end

local function mark_done()
  local file = io.open(marker, "w")
  if file then
    file:close()
  end
end

function init(args)
  local total = tonumber(args[1]) or 1000
  local threads = tonumber(args[2]) or 1
  local index = thread_index or 1
  marker = (args[3] or ".") .. "/thread-" .. index .. ".done"
  local batch, tokens = 1, {}
  for i = 4, #args do
    local key, value = args[i]:match("^(%w+)=(.*)$")
    if key == "batch" then
      batch = math.max(1, tonumber(value) or 1)
    elseif key == "token" then
      tokens[#tokens + 1] = value
    else
      error("unknown option " .. tostring(args[i]))
    end
  end
  local share = math.floor(total / threads)
  if index <= total % threads then
    share = share + 1
  end
  -- Full requests, then one smaller one for what is left.
  full = math.floor(share / batch)
  rest = share % batch
  expected = full + (rest > 0 and 1 or 0)
  posts = posts_of(batch, batch, tokens)
  last_posts = rest > 0 and posts_of(rest, batch, tokens) or posts
  sent = 0
  answered = 0
  -- Threads start at different tokens, so that all take turns evenly.
  turn = index - 1
  verifying = index == 1
  if expected == 0 then
    mark_done()
  end
  filler = wrk.format("GET", "/health")
end

function request()
  if verifying then
    verifying = false
    return posts[1]
  end
  if sent < expected then
    sent = sent + 1
    turn = turn % #posts + 1
    if sent > full then
      return last_posts[turn]
    end
    return posts[turn]
  end
  return filler
end

function response(status, headers, body)
  if status ~= 200 then
    answered = answered + 1
    if answered == expected then
      mark_done()
      wrk.thread:stop()
    end
  end
end

-- BENCH_JSON line at the end of the run, shared with the other scripts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report_json.lua")
