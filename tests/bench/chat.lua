-- wrk script for `make bench`: every request POSTs one small, non-streamed
-- chat completion, as an OpenAI client would.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"standin-1","messages":[{"role":"user","content":"Say hello"}],"max_tokens":32}'
