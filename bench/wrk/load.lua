-- wrk script for `make bench` (driven by bench/load.py).
-- Arguments after "--": MODE DATA SKIP
--   static FILE 0       every request POSTs the body in FILE (headers come from wrk -H)
--   tokens PREFIX SKIP  request n of thread i POSTs {"token": "<line SKIP+n of PREFIX.i>"}:
--                       each thread has its own file, so every token is sent once; SKIP
--                       passes over the tokens an aborted earlier attempt may have used
-- done() prints one "BENCH_RESULT {json}" line for the harness.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  exhausted = 0
  math.randomseed(os.time() * 16 + id)
  if mode == "tokens" then
    tokens = {}
    for line in io.lines(args[2] .. "." .. id) do
      if #line > 0 then tokens[#tokens + 1] = line end
    end
    index = tonumber(args[3]) or 0
  elseif mode == "static" then
    local file = assert(io.open(args[2], "rb"))
    static_request = wrk.format("POST", nil, nil, file:read("*a"))
    file:close()
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  if mode == "static" then
    return static_request
  end
  index = index + 1
  if index > #tokens then
    -- Out of fresh tokens: resend the last one (a 422 that the harness reports).
    exhausted = exhausted + 1
    index = #tokens
  end
  return wrk.format("POST", nil, nil, '{"token": "' .. tokens[index] .. '"}')
end

function done(summary, latency, requests)
  local exhausted_total = 0
  for _, thread in ipairs(threads) do
    exhausted_total = exhausted_total + (thread:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, ' ..
    '"exhausted": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, exhausted_total))
end
