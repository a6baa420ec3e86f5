-- wrk script for scripts/bench.py: one static request, exact status counting, optional stop.
--
-- Parameters come from the environment (read in every wrk Lua state):
--   BENCH_METHOD         GET (default) or POST
--   BENCH_COOKIE         Cookie header value sent with every request (empty: none)
--   BENCH_COOKIE_FILE    a file of Cookie header values, one a line: requests take them in
--                        turn (each thread from its own starting line), instead of BENCH_COOKIE
--   BENCH_BODY           request body (POST)
--   BENCH_CTYPE          Content-Type header (POST)
--   BENCH_EXPECT_STATUS  statuses that count as success, e.g. "200" or "303" (default 200)
--   BENCH_EXPECT_BODY    substring the body must contain to count as success (empty: any body)
--   BENCH_STOP_AFTER     stop each thread after this many responses (0: run for -d)
--   BENCH_RATE           requests per second for each thread, paced (0: as fast as possible,
--                        a closed loop); see delay() below
--
-- done() prints one line "BENCHSTATS {json}" that bench.py parses: wrk's own summary
-- (requests, duration, socket errors, its non-2xx/3xx count), exact latency percentiles in
-- microseconds, and the per-status counts gathered by response() in every thread.

local getenv = os.getenv

wrk.method = getenv("BENCH_METHOD") or "GET"
local cookie = getenv("BENCH_COOKIE") or ""
if cookie ~= "" then wrk.headers["Cookie"] = cookie end
local body = getenv("BENCH_BODY") or ""
if body ~= "" then wrk.body = body end
local ctype = getenv("BENCH_CTYPE") or ""
if ctype ~= "" then wrk.headers["Content-Type"] = ctype end
local cookie_file = getenv("BENCH_COOKIE_FILE") or ""
if cookie_file ~= "" then
  -- Every request is formatted once, in init (wrk.init calls it after adding the Host header):
  -- formatting one per request (wrk.format builds and joins the header lines in Lua) cost wrk
  -- ~6 µs a request, more than nginx's own time, and made the client, not the server, the
  -- limit of the run.
  local requests = {}
  function init(args)
    for line in io.lines(cookie_file) do
      if line ~= "" then
        local headers = {}
        for k, v in pairs(wrk.headers) do headers[k] = v end
        headers["Cookie"] = line
        requests[#requests + 1] = wrk.format(nil, nil, headers)
      end
    end
  end
  -- a different starting line per thread (each thread's Lua state has its own table address)
  local next_request = tonumber(tostring({}):match("0x(%x+)"), 16)
  function request()
    next_request = next_request % #requests + 1
    return requests[next_request]
  end
end

local expect_status = {}
for s in (getenv("BENCH_EXPECT_STATUS") or "200"):gmatch("%d+") do
  expect_status[tonumber(s)] = true
end
local expect_body = getenv("BENCH_EXPECT_BODY") or ""
local stop_after = tonumber(getenv("BENCH_STOP_AFTER") or "0") or 0

-- Per-thread counters (globals, so the main state can read them with thread:get()).
statuses = {}
good = 0
bad_status = 0
bad_body = 0
responses = 0

function response(status, headers, resp_body)
  responses = responses + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if not expect_status[status] then
    bad_status = bad_status + 1
  elseif expect_body ~= "" and not string.find(resp_body or "", expect_body, 1, true) then
    bad_body = bad_body + 1
  else
    good = good + 1
  end
  if stop_after > 0 and responses >= stop_after then
    wrk.thread:stop()
  end
end

-- Pacing: with BENCH_RATE > 0 every request waits for a slot of a per-thread schedule, one slot
-- every 1/rate seconds on the monotonic clock (LuaJIT's ffi calls clock_gettime: wrk's Lua has
-- no sub-second clock). A connection claims the next free slot when its previous response is
-- in, so the rate holds whatever the latency, as long as enough connections are free; behind
-- schedule (the server is saturated) requests go at once and the achieved rate shows it.
-- wrk's timers have millisecond resolution: a request goes up to 1 ms early, the average rate
-- is exact. wrk measures latency from the moment a request is written, so the wait is not in it.
local rate = tonumber(getenv("BENCH_RATE") or "0") or 0
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
    int clock_gettime(int clk_id, bench_timespec_t *tp);
  ]]
  local CLOCK_MONOTONIC = 1
  local ts = ffi.new("bench_timespec_t")
  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 / rate
  local next_slot = nil
  function delay()
    local now = now_ms()
    -- more than a second behind: the schedule restarts (no burst to catch up after a stall)
    if next_slot == nil or next_slot < now - 1000 then next_slot = now end
    local slot = next_slot
    next_slot = next_slot + interval
    local wait = slot - now
    if wait <= 0 then return 0 end
    return math.floor(wait)
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local agg = {}
  local tot = {good = 0, bad_status = 0, bad_body = 0, responses = 0}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses") or {}) do
      agg[k] = (agg[k] or 0) + v
    end
    for k, _ in pairs(tot) do
      tot[k] = tot[k] + (t:get(k) or 0)
    end
  end
  local parts = {}
  for k, v in pairs(agg) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHSTATS {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.2f,"max":%d},' ..
    '"responses":%d,"good":%d,"bad_status":%d,"bad_body":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max,
    tot.responses, tot.good, tot.bad_status, tot.bad_body, table.concat(parts, ",")))
end
