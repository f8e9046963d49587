-- wrk script for `make bench`: every request POSTs one small chat
-- completion, as an OpenAI client would, and done() prints one line for
-- tests/bench/run.sh to read.
--   CHAT_STREAM  "0" (default): plain answers; "1": SSE streams ("stream":
--                true); "mix": plain and streamed requests alternate
-- The prompt asks for under 40 words, so that cairn's rule annotator finds
-- markers (task, language, length) and its validators have work to do; the
-- backend's canned answer keeps to them.
local prompt = "In under 40 words, explain why the sky is blue."

local function body(stream)
   return '{"model":"standin-1","messages":[{"role":"user","content":"' .. prompt ..
      '"}],"max_tokens":64' .. (stream and ',"stream":true' or '') .. '}'
end

local mode = os.getenv("CHAT_STREAM") or "0"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body(mode == "1")

if mode == "mix" then
   local reqs, n = nil, 0
   function init(args)
      reqs = { wrk.format(nil, nil, nil, body(false)), wrk.format(nil, nil, nil, body(true)) }
   end
   function request()
      n = n + 1
      return reqs[n % 2 + 1]
   end
end

-- "BENCH answers duration_us p50_us p99_us socket_errors status_errors":
-- the percentiles are wrk's own, over every answer of the run (1 µs steps).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
                          latency:percentile(50), latency:percentile(99),
                          e.connect + e.read + e.write + e.timeout, e.status))
end
