-- wrk script for bench/hot_read.sh: GETs the request targets listed in a file
-- (one "path?query" per line, e.g. SigV4 presigned URLs without the scheme
-- and host) round-robin, each thread starting at a different line, and prints
-- one machine-readable line with the results when done.
--
--   wrk -t2 -c16 -d10s --latency -s bench/rotate.lua http://127.0.0.1:PORT -- PATHS_FILE
--
-- wrk sets the Host header to "127.0.0.1:PORT" from the URL, which is the
-- host the presigned URLs were signed for.

local thread_count = 0

function setup(thread)
   thread:set("thread_index", thread_count)
   thread_count = thread_count + 1
end

local requests = {}
local next_index = 1

function init(args)
   local file = args[1]
   if file == nil then
      error("usage: wrk ... -s rotate.lua URL -- PATHS_FILE")
   end
   for line in io.lines(file) do
      if line ~= "" then
         requests[#requests + 1] = wrk.format("GET", line)
      end
   end
   if #requests == 0 then
      error("no request targets in " .. file)
   end
   next_index = ((thread_index or 0) % #requests) + 1
end

function request()
   local r = requests[next_index]
   next_index = next_index + 1
   if next_index > #requests then
      next_index = 1
   end
   return r
end

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
      '"errors_status": %d, "errors_timeout": %d, ' ..
      '"lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, "lat_mean_us": %.1f, "lat_max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max))
end
