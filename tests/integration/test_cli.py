"""The command line (version, help, check, serve with a bad config, flag
overrides) and the SIGTERM drain."""

import json
import os
import re
import socket
import subprocess
import threading
import time

import harness
from harness import (CHAT_BODY, SSE_EVENTS, Client, Gateway, assert_status, build_request,
                     chat_body, check, delta_event, gateway_config, gateway_env, refused_url,
                     run_cairn, sse_event, start_gateway, start_upstream, wait_for,
                     write_config)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_version():
    code, out, err = run_cairn(["--version"])
    check(code == 0, "--version exited %d" % code)
    check(re.search(r"\d+\.\d+\.\d+", out + err), "no version number in %r" % (out + err))


def test_help():
    code, out, err = run_cairn(["--help"])
    check(code == 0, "--help exited %d" % code)
    text = out + err
    for word in ("serve", "check"):
        check(word in text, "--help does not mention %r: %r" % (word, text[:500]))


def test_unknown_command_fails():
    code, out, err = run_cairn(["frobnicate"])
    check(code != 0, "an unknown command exited 0")


def test_check_accepts_the_example_config():
    code, out, err = run_cairn(["check", "-c", os.path.join(REPO, "conf", "cairn.json")])
    check(code == 0, "check of conf/cairn.json exited %d: %s" % (code, out + err))


def test_check_accepts_a_full_config():
    with open(os.path.join(REPO, "conf", "cairn.json")) as f:
        cfg = json.load(f)
    cfg["log"]["access"] = "/tmp/cairn-access.log"
    cfg["upstreams"]["default"]["base_url"] = "https://api.example.com/v1"
    code, out, err = run_cairn(["check", "-c", write_config(cfg)])
    check(code == 0, "check exited %d: %s" % (code, out + err))


def test_check_accepts_an_empty_object():
    code, out, err = run_cairn(["check", "-c", write_config({})])
    check(code == 0, "check of {} exited %d: %s" % (code, out + err))


# name -> (config text, what the message must name besides the file)
BAD_CONFIGS = {
    "unknown_nested_key": ({"limits": {"bogus": 1}}, "limits.bogus"),
    "unknown_top_level_key": ({"bogus": 1}, "bogus"),
    "out_of_range_zero": ({"limits": {"body_bytes": 0}}, "limits.body_bytes"),
    "out_of_range_huge": ({"limits": {"max_connections": 10 ** 12}}, "limits.max_connections"),
    "negative_timeout": ({"upstreams": {"default": {"connect_timeout_ms": -5}}},
                         "upstreams.default.connect_timeout_ms"),
    "fractional_size": ({"limits": {"body_bytes": 2048.5}}, "limits.body_bytes"),
    "wrong_type": ({"timeouts": {"header_ms": "fast"}}, "timeouts.header_ms"),
    "section_not_object": ({"limits": 5}, "limits"),
    "bad_url_scheme": ({"upstreams": {"default": {"base_url": "ftp://example.com/v1"}}},
                       "upstreams.default.base_url"),
    "bad_listen": ({"listen": ["nonsense"]}, "listen"),
    "invalid_json": ('{"limits": {', None),
    "root_not_object": ("[]", None),
    "duplicate_key": ('{"limits": {"body_bytes": 2048, "body_bytes": 4096}}', None),
}


def _make_bad_config_test(config, key):
    def test():
        path = write_config(config, "bad.json")
        code, out, err = run_cairn(["check", "-c", path])
        text = out + err
        check(code == 1, "check of a bad config exited %d: %r" % (code, text))
        check(path in text or os.path.basename(path) in text,
              "message does not name the file: %r" % text)
        if key:
            check(key in text, "message does not name the key %r: %r" % (key, text))
    return test


for _name, (_config, _key) in BAD_CONFIGS.items():
    globals()["test_check_rejects_" + _name] = _make_bad_config_test(_config, _key)
del _name, _config, _key


def test_check_missing_file_fails_naming_it():
    path = "/nonexistent/dir/cairn-missing.json"
    code, out, err = run_cairn(["check", "-c", path])
    check(code == 1, "check of a missing file exited %d" % code)
    check(path in out + err, "message does not name the file: %r" % (out + err))


def serve_expecting_failure(args, env=None):
    """`cairn serve ...` must exit non-zero promptly without listening."""
    try:
        code, out, err = run_cairn(["serve"] + args, env=env, timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError("cairn serve %s kept running (served a bad config?)" % args)
    check(code != 0, "cairn serve exited 0")
    check("listening on" not in err, "cairn serve listened: %r" % err[-500:])
    return err


def test_serve_refuses_a_bad_config():
    path = write_config(gateway_config(limits={"bogus": 1}))
    err = serve_expecting_failure(["-c", path])
    check("limits.bogus" in err, "message does not name the key: %r" % err[-500:])


def test_serve_refuses_a_port_in_use():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        cfg = gateway_config(listen=["127.0.0.1:%d" % taken.getsockname()[1]])
        serve_expecting_failure(["-c", write_config(cfg)])
    finally:
        taken.close()


def test_serve_refuses_an_unwritable_access_log():
    cfg = gateway_config(log={"access": "/nonexistent/dir/access.log"})
    serve_expecting_failure(["-c", write_config(cfg)])


def test_serve_on_two_listen_addresses():
    gw = start_gateway(start_upstream(), listen=["127.0.0.1:0", "127.0.0.1:0"])
    check(wait_for(lambda: len(gw.ports) == 2, 3.0),
          "expected two 'listening' lines, got ports %r" % gw.ports)
    for port in gw.ports:
        c = Client(("127.0.0.1", port))
        c.send(build_request("GET", "/healthz", close=True))
        assert_status(c.read_response(), 200)


def test_serve_upstream_flag_overrides_config():
    up = start_upstream()
    gw = start_gateway(base_url=refused_url(), args=["--upstream", up.base_url])
    assert_status(gw.chat(CHAT_BODY), 200)
    check(len(up.requests) == 1, "the --upstream URL was not used")


def test_serve_listen_flag_overrides_config():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    gw = Gateway(gateway_config(start_upstream()), gateway_env(),
                 ["--listen", "127.0.0.1:%d" % port]).start()
    check(gw.port == port, "listening on %s, not the --listen port %d" % (gw.port, port))
    assert_status(gw.healthz(), 200)


# --- SIGTERM ---------------------------------------------------------------


def test_sigterm_idle_exits_zero_quickly():
    gw = start_gateway(start_upstream())
    assert_status(gw.healthz(), 200)
    t0 = time.monotonic()
    code = gw.stop()
    check(code == 0, "exit code %r after SIGTERM" % code)
    check(time.monotonic() - t0 < 3.0, "idle gateway took %.1fs to exit"
          % (time.monotonic() - t0))


def test_sigterm_closes_idle_keepalive_connections():
    gw = start_gateway(start_upstream(), timeouts={"drain_ms": 30000, "keepalive_ms": 60000})
    c = gw.client()
    c.send(build_request("GET", "/healthz"))
    assert_status(c.read_response(), 200)
    t0 = time.monotonic()
    code = gw.stop(timeout=8)
    check(code == 0, "exit code %r after SIGTERM with an idle keep-alive client" % code)
    check(time.monotonic() - t0 < 3.0, "gateway waited %.1fs for an idle keep-alive "
          "connection" % (time.monotonic() - t0))
    check(c.closed_by_peer(1.0), "idle connection not closed")


def slow_stream(events, pause, started=None):
    def handler(ex):
        ex.start_sse()
        for i, event in enumerate(events):
            if i:
                time.sleep(pause)
            ex.chunk(event)
            if started is not None:
                started.set()
        ex.end_chunks()
    return handler


def test_sigterm_lets_a_stream_finish_then_exits_zero():
    events = [delta_event(i, "t%d" % i) for i in range(5)] + [sse_event("[DONE]")]
    up = start_upstream(slow_stream(events, 0.3))
    gw = start_gateway(up)
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", chat_body(stream=True)))
    resp = c.read_head()
    c.start_body(resp, "POST")
    c.read_body(resp, until=events[0], timeout=3)
    check(events[0] in resp.body, "first event not received")
    gw.signal()
    time.sleep(0.2)
    # no new connections while draining
    try:
        late = gw.client(timeout=2)
        late.send(build_request("GET", "/healthz"))
        data = late.read_some(timeout=2)
        check(not data.startswith(b"HTTP/1.1 200"), "a new request was served while draining")
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    c.read_body(resp, timeout=6)
    check(resp.complete, "the in-flight stream was cut by SIGTERM (%d bytes)" % len(resp.body))
    check(bytes(resp.body) == b"".join(events), "stream bytes differ")
    code = gw.wait_exit(8)
    check(code == 0, "exit code %r after draining" % code)


def test_readyz_is_not_ok_while_draining():
    started = threading.Event()
    events = [delta_event(i, "t%d" % i) for i in range(6)] + [sse_event("[DONE]")]
    up = start_upstream(slow_stream(events, 0.3, started))
    gw = start_gateway(up)
    stream = gw.client()
    stream.send(build_request("POST", "/v1/chat/completions", chat_body(stream=True)))
    check(started.wait(3), "stream did not start")
    probe = gw.client()
    probe.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")  # head not finished yet
    time.sleep(0.1)
    gw.signal()
    time.sleep(0.3)
    probe.send(b"\r\n")
    data = probe.read_some(timeout=2)
    check(not data.startswith(b"HTTP/1.1 200"), "/readyz said 200 while draining")
    if data:
        check(data.startswith(b"HTTP/1.1 503"), "/readyz while draining: %r" % data[:80])
    stream.read_all(timeout=6)
    check(gw.wait_exit(8) == 0, "gateway did not exit 0 after the drain")


def stuck_stream(ex):
    ex.start_sse()
    ex.chunk(SSE_EVENTS[0])
    ex.wait(timeout=20)


def test_drain_deadline_cuts_stuck_requests():
    up = start_upstream(stuck_stream)
    gw = start_gateway(up, timeouts={"drain_ms": 1000})
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", chat_body(stream=True)))
    resp = c.read_head()
    c.start_body(resp, "POST")
    c.read_body(resp, until=SSE_EVENTS[0], timeout=3)
    t0 = time.monotonic()
    gw.signal()
    code = gw.wait_exit(8)
    elapsed = time.monotonic() - t0
    check(code == 0, "exit code %r after the drain deadline" % code)
    check(0.5 <= elapsed <= 5.0, "drain_ms=1000 took %.1fs" % elapsed)
    c.read_body(resp, timeout=2)
    check(not resp.complete, "a stream cut by the drain deadline ended as if complete")



def run_annotate(lines, args=("--rules", os.path.join(REPO, "rules"))):
    """`cairn annotate` over JSON Lines; returns (exit code, output lines)."""
    p = subprocess.run([os.path.join(harness.BUILD_DIR, "cairn"), "annotate"] + list(args),
                       input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=30,
                       env=gateway_env())
    err = p.stderr.decode("utf-8", "replace")
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        check(marker not in err, "sanitizer report: %s" % err[-2000:])
    return p.returncode, [json.loads(l) for l in p.stdout.decode().splitlines()]


def test_annotate_reads_jsonl_and_survives_bad_lines():
    """One output line per input line, in order, ids copied; a malformed
    line gets an error object on its own line and the run goes on."""
    prompt = "Fix this bug in my Go code, answer in under 100 words"
    code, out = run_annotate([
        json.dumps({"id": "a", "messages": [{"role": "user", "content": prompt}]}),
        "{not json",
        json.dumps({"id": 7, "no_messages": True}),
        json.dumps({"messages": [{"role": "user", "content": "Hi!"}], "model": "ignored"}),
    ])
    check(code == 0, "annotate exited %d" % code)
    check(len(out) == 4, "expected 4 output lines, got %d: %r" % (len(out), out))
    check(out[0] == {"id": "a", "markers": {"task": "CodeFix", "domain": "Code",
                                            "code_type": "go", "lang": "English",
                                            "length_tokens": 100, "length_bucket": "concise"}},
          "markers of the Done-when prompt: %r" % out[0])
    check("error" in out[1] and "markers" not in out[1], "bad JSON line: %r" % out[1])
    check(out[2].get("id") == 7 and "error" in out[2], "line without messages: %r" % out[2])
    check("id" not in out[3] and "markers" in out[3], "line without id: %r" % out[3])


def test_annotate_uses_the_configured_rules_dir():
    cfg = write_config({"rules_dir": os.path.join(REPO, "rules")})
    code, out = run_annotate([json.dumps({"messages": [{"role": "user", "content":
                                                        "Réponds en moins de 50 mots : pourquoi le ciel est-il bleu ?"}]})],
                             args=("-c", cfg))
    check(code == 0, "annotate -c exited %d" % code)
    check(out[0]["markers"].get("length_tokens") == 50 and out[0]["markers"].get("lang") == "French",
          "French length instruction: %r" % out[0])


def test_check_names_a_broken_rules_file():
    rules = ctx_rules_copy()
    with open(os.path.join(rules, "taxonomy.json")) as f:
        tx = json.load(f)
    tx["tags"][0]["values"].append(tx["tags"][0]["values"][0])
    with open(os.path.join(rules, "taxonomy.json"), "w") as f:
        json.dump(tx, f)
    code, out, err = run_cairn(["check", "-c", write_config({"rules_dir": rules})])
    check(code == 1, "check of a broken taxonomy exited %d" % code)
    check("taxonomy.json" in err and "tags[0].values" in err,
          "the message does not name the file and key: %r" % err)


def ctx_rules_copy():
    """A private copy of rules/ for a test to break."""
    import shutil
    dst = os.path.join(harness.ctx().tmpdir, "rules")
    shutil.copytree(os.path.join(REPO, "rules"), dst)
    return dst


def test_annotate_model_answers_in_input_order():
    """`cairn annotate --model -c FILE` asks the configured annotator model
    for each line, several at a time, and writes the answers in the input's
    order with their outcome: a slow first answer does not reorder the
    output; a line the annotator fails on says "error"; a bad line gets an
    error object and the run goes on."""
    def annotator(ex):
        text = json.dumps(ex.req.json()["messages"][-1]["content"])
        if "slow" in text:
            time.sleep(0.3)
        if "broken" in text:
            return ex.json(500, {"error": {"message": "down"}})
        task = "CodeFix" if "bug" in text else "Summarization"
        block = "<MARKER_LIST>\n<task>%s</task>\n</MARKER_LIST>" % task
        return ex.json(200, {"id": "a", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": block},
             "finish_reason": "stop"}]})
    up = start_upstream(annotator)
    cfg = write_config({"rules_dir": os.path.join(REPO, "rules"),
                        "upstreams": {"default": {"base_url": up.base_url},
                                      "annotator": {"base_url": up.base_url}},
                        "policy": {"annotator": {"upstream": "annotator", "deadline_ms": 2000}}})
    prompts = ["slow: fix this bug please", "summarize this report", "broken annotator",
               "another bug to fix"]
    lines = [json.dumps({"id": i, "messages": [{"role": "user", "content": p}]})
             for i, p in enumerate(prompts)] + ["not json"]
    code, out = run_annotate(lines, args=("--model", "-c", cfg, "--concurrency", "4"))
    check(code == 0, "annotate --model exited %d" % code)
    check([o.get("id") for o in out] == [0, 1, 2, 3, None], "output order %r" % out)
    check(out[0] == {"id": 0, "markers": {"task": "CodeFix"}, "outcome": "ok"}, "line 0 %r" % out[0])
    check(out[1]["markers"] == {"task": "Summarization"}, "line 1 %r" % out[1])
    check(out[2]["outcome"] == "error" and out[2]["markers"] == {}, "line 2 %r" % out[2])
    check(out[3]["markers"] == {"task": "CodeFix"}, "line 3 %r" % out[3])
    check("error" in out[4], "bad line %r" % out[4])
    check(len(up.requests) == 4, "annotator asked %d times, want 4" % len(up.requests))


def test_annotate_model_needs_an_annotator_upstream():
    """--model without policy.annotator.upstream names what is missing."""
    cfg = write_config({"rules_dir": os.path.join(REPO, "rules")})
    p = subprocess.run([os.path.join(harness.BUILD_DIR, "cairn"), "annotate", "--model", "-c", cfg],
                       input=b"", capture_output=True, timeout=10, env=gateway_env())
    check(p.returncode == 1 and b"policy.annotator.upstream" in p.stderr,
          "exit %d, stderr %r" % (p.returncode, p.stderr))
