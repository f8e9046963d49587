"""The admin listener (/metrics, /admin/reload, /healthz), configuration
reloads (POST and SIGHUP; bad files change nothing, good ones apply to new
requests while requests in flight finish on the old configuration), and
the drain on SIGTERM."""

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (CHAT_BODY, Metrics, admin_request, assert_error, assert_status, bearer,
                     build_request, chat_body, check, ctx, default_handler, delta_event,
                     log_records, metrics, new_key, read_log, sse_event, start_gateway,
                     start_upstream, tenant, wait_for, wait_log, wait_metric, wait_reloaded,
                     write_config)

PROMTOOL = "/usr/bin/promtool"
CHAT = "/v1/chat/completions"

# --- local helpers -----------------------------------------------------------


def promtool_check(text):
    check(os.access(PROMTOOL, os.X_OK) or shutil.which("promtool"),
          "promtool not found at %s (install it with `make deps`: Debian package prometheus)"
          % PROMTOOL)
    exe = PROMTOOL if os.access(PROMTOOL, os.X_OK) else shutil.which("promtool")
    p = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=20)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(p.returncode == 0, "promtool check metrics failed (%d):\n%s\n--- metrics ---\n%s"
          % (p.returncode, out[:2000], text[:3000]))


def rewrite(gw, change):
    """Write a changed copy of the gateway's config to the file it was
    started with; returns the new config (a dict) or the raw text."""
    if isinstance(change, (str, bytes)):
        write_config(change)
        return change
    cfg = copy.deepcopy(gw.config)
    change(cfg)
    write_config(cfg)
    return cfg


def chat_records(records):
    return [r for r in records if r.get("path") == CHAT]


def reload_post(gw):
    return admin_request(gw, "POST", "/admin/reload")


def gated_stream(first_sent, go, events=None):
    """Upstream handler: the first SSE event, then the rest once `go` is set."""
    events = events or [delta_event(0, "Hel"), delta_event(1, "lo"), sse_event("[DONE]")]

    def handler(ex):
        if not ex.req.json().get("stream"):
            return default_handler(ex)
        ex.start_sse()
        ex.chunk(events[0])
        first_sent.set()
        ex.wait(go, timeout=8.0)
        for e in events[1:]:
            ex.chunk(e)
            time.sleep(0.01)
        ex.end_chunks()
    return handler, b"".join(events)


def open_stream(gw, headers=None):
    c = gw.client(timeout=8.0)
    c.send(build_request("POST", CHAT, chat_body(stream=True), headers=headers))
    resp = c.read_head()
    assert_status(resp, 200)
    c.start_body(resp, "POST")
    return c, resp


def connect_refused(port, timeout=0.5):
    """True if a new TCP connection to the port is refused, reset or closed
    without an answer to a request."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return True
    try:
        s.settimeout(timeout)
        s.sendall(build_request("GET", "/healthz", close=True))
        data = s.recv(4096)
        return data == b"" or data.startswith(b"HTTP/1.1 503")
    except OSError:
        return True
    finally:
        s.close()


# --- /metrics ------------------------------------------------------------------


def test_metrics_pass_promtool():
    """A scrape after mixed traffic (OK, stream, 401, 403, 404, pinned
    markers) is valid exposition format by Prometheus' own parser, served
    as text/plain version 0.0.4."""
    key = new_key()
    up = start_upstream()
    gw = start_gateway(up, auth="keys", tenants={"a": tenant(key, models=["gpt-*"])},
                       markers={"fixed": {"domain": "Legal"}})
    pins = {"X-Cairn-Markers": "task=CodeFix; length_tokens=5"}
    assert_status(gw.chat(CHAT_BODY, headers=dict(bearer(key), **pins)), 200)
    assert_status(gw.chat(chat_body(stream=True), headers=bearer(key)), 200)
    assert_error(gw.chat(CHAT_BODY), 401)
    assert_error(gw.chat(chat_body(model="other"), headers=bearer(key)), 403)
    assert_error(gw.request("GET", "/nope"), 404)
    assert_status(gw.request("GET", "/v1/models", headers=bearer(key)), 200)
    resp = admin_request(gw, "GET", "/metrics")
    assert_status(resp, 200)
    ctype = (resp.header("content-type") or "").replace(" ", "").lower()
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "/metrics Content-Type %r" % resp.header("content-type"))
    text = bytes(resp.body).decode("utf-8")
    promtool_check(text)
    m = Metrics(text)
    for family in ("cairn_requests_total", "cairn_request_duration_seconds",
                   "cairn_upstream_first_byte_seconds", "cairn_stream_first_byte_seconds",
                   "cairn_markers_sent_total", "cairn_annotations_total", "cairn_connections",
                   "cairn_streams", "cairn_config_generation", "cairn_config_reloads_total",
                   "cairn_config_last_reload_ok", "cairn_metrics_series_dropped_total"):
        check("# TYPE %s " % family in text, "family %s missing from /metrics" % family)
    check(m.get("cairn_config_generation") == 1, "generation %r" % m.get("cairn_config_generation"))
    check(m.get("cairn_config_last_reload_ok") == 1, "last_reload_ok %r"
          % m.get("cairn_config_last_reload_ok"))


def test_metrics_match_the_traffic_sent():
    """3 OK chats and a 403 for tenant a, a 401 without key, a health probe
    and a 404: each lands in its series; histogram counts agree."""
    key = new_key()
    up = start_upstream()
    gw = start_gateway(up, auth="keys", tenants={"a": tenant(key, models=["gpt-test"])})
    for _ in range(3):
        assert_status(gw.chat(CHAT_BODY, headers=bearer(key)), 200)
    assert_error(gw.chat(CHAT_BODY), 401)
    assert_error(gw.chat(chat_body(model="gpt-other"), headers=bearer(key)), 403)
    assert_status(gw.healthz(), 200)
    assert_error(gw.request("GET", "/v1/nothing"), 404)
    req = "cairn_requests_total"
    m = wait_metric(gw, req, dict(tenant="a", route=CHAT, status="200", arm=""), 3)
    m = wait_metric(gw, req, dict(tenant="", route="other", status="404", arm=""), 1)
    check(m.get(req, tenant="", route=CHAT, status="401", arm="") == 1,
          "401 series: %r" % m.series(req))
    check(m.get(req, tenant="a", route=CHAT, status="403", arm="") == 1,
          "403 series: %r" % m.series(req))
    check(m.get(req, tenant="", route="/healthz", status="200", arm="") == 1,
          "healthz series: %r" % m.series(req))
    check(sum(v for _, v in m.series(req)) == 7, "requests_total adds up to %r, sent 7: %r"
          % (sum(v for _, v in m.series(req)), m.series(req)))
    dur = "cairn_request_duration_seconds"
    check(m.get(dur + "_count", tenant="a", route=CHAT) == 4,
          "duration count for tenant a: %r" % m.get(dur + "_count", tenant="a", route=CHAT))
    check(m.get(dur + "_count", tenant="", route=CHAT) == 1, "duration count for the 401")
    buckets = [(float(l["le"]), v) for l, v in m.series(dur + "_bucket")
               if l.get("tenant") == "a" and l.get("route") == CHAT]
    check(buckets and buckets[-1][0] == float("inf") and buckets[-1][1] == 4,
          "+Inf bucket: %r" % buckets[-1:])
    check(all(b[1] <= c[1] for b, c in zip(buckets, buckets[1:])), "buckets not cumulative")
    check(0 < m.get(dur + "_sum", tenant="a", route=CHAT) < 10, "duration sum %r"
          % m.get(dur + "_sum", tenant="a", route=CHAT))
    fb = "cairn_upstream_first_byte_seconds_count"
    check(m.get(fb, tenant="a", route=CHAT) == 3, "upstream first byte count %r"
          % m.get(fb, tenant="a", route=CHAT))
    check(m.get("cairn_stream_first_byte_seconds_count", tenant="a", route=CHAT) in (None, 0),
          "stream first byte counted without a stream")
    # One stream: the stream histogram counts it.
    assert_status(gw.chat(chat_body(stream=True), headers=bearer(key)), 200)
    m = wait_metric(gw, "cairn_stream_first_byte_seconds_count", dict(tenant="a", route=CHAT), 1)
    check(m.get(fb, tenant="a", route=CHAT) == 4, "upstream first byte count after the stream")
    check(m.get(req, tenant="a", route=CHAT, status="200", arm="") == 4, "stream not counted")
    check(m.get("cairn_streams") == 0, "cairn_streams %r with no stream open"
          % m.get("cairn_streams"))
    promtool_check(m.text)


def test_markers_metric_counts_pinned_and_fixed():
    """A pinned marker (header or body), and the policy's fixed one, are
    counted by tag, value (empty for numbers) and source."""
    up = start_upstream()
    gw = start_gateway(up, markers={"fixed": {"domain": "Legal"}})
    assert_status(gw.chat(CHAT_BODY, headers={"X-Cairn-Markers": "task=CodeFix"}), 200)
    assert_status(gw.chat(chat_body(cairn={"markers": {"length_tokens": 50}})), 200)
    ms = "cairn_markers_sent_total"
    m = wait_metric(gw, ms, dict(tenant="default", tag="domain", value="Legal", source="fixed"), 2)
    check(m.get(ms, tenant="default", tag="task", value="CodeFix", source="pinned") == 1,
          "pinned task marker: %r" % m.series(ms))
    check(m.get(ms, tenant="default", tag="length_tokens", value="", source="pinned") == 1,
          "pinned numeric marker: %r" % m.series(ms))
    check(len(m.series(ms)) == 3, "unexpected marker series: %r" % m.series(ms))
    check(not m.series("cairn_annotations_total"),
          "annotations counted with annotate off: %r" % m.series("cairn_annotations_total"))
    promtool_check(m.text)


def test_annotations_metric_counts_rule_runs():
    up = start_upstream()
    gw = start_gateway(up, markers={"annotate": "rules"})
    body = chat_body(messages=[{"role": "user", "content": "Fix this Python code: def f(: pass"}])
    assert_status(gw.chat(body), 200)
    assert_status(gw.chat(body), 200)
    m = wait_metric(gw, "cairn_annotations_total",
                    dict(tenant="default", source="rules", outcome="ok"), 2)
    for labels, _ in m.series("cairn_markers_sent_total"):
        check(labels.get("source") == "rules", "marker source %r without pinning" % labels)
    promtool_check(m.text)


def test_admin_routes_are_not_on_the_public_port():
    """/metrics and /admin/reload answer on the admin port only; the admin
    port proxies nothing."""
    up = start_upstream()
    gw = start_gateway(up)
    assert_error(gw.request("GET", "/metrics"), 404)
    assert_error(gw.request("POST", "/admin/reload"), 404)
    assert_status(admin_request(gw, "GET", "/healthz"), 200)
    resp = admin_request(gw, "GET", "/admin/reload")
    assert_error(resp, 405)
    check("POST" in (resp.header("allow") or ""), "Allow %r" % resp.header("allow"))
    assert_error(admin_request(gw, "POST", CHAT, CHAT_BODY), 404)
    assert_error(admin_request(gw, "GET", "/v1/models"), 404)
    check(not up.requests, "the admin port reached the upstream")
    m = metrics(gw)
    check(m.get("cairn_config_generation") == 1, "a public request reloaded the config")
    check(m.get("cairn_config_reloads_total", result="error") in (None, 0),
          "reload errors counted: %r" % m.series("cairn_config_reloads_total"))


# --- reload ----------------------------------------------------------------------


def marker_gateway(up, **extra):
    """keys mode, tenant a (key ka) with models gpt-test and a fixed marker."""
    ka = new_key()
    gw = start_gateway(up, auth="keys",
                       tenants={"a": tenant(ka, models=["gpt-test"],
                                            markers={"fixed": {"domain": "Legal"}})},
                       **extra)
    return gw, ka


def reload_counts(m):
    return (m.get("cairn_config_reloads_total", result="ok") or 0,
            m.get("cairn_config_reloads_total", result="error") or 0)


def test_reload_bad_config_changes_nothing_then_good_one_applies():
    up, up2 = start_upstream(), start_upstream()
    gw, ka = marker_gateway(up)
    kb = new_key()
    resp = gw.chat(CHAT_BODY, headers=bearer(ka))
    assert_status(resp, 200)
    check(resp.header("x-cairn-markers") == "domain=Legal", "start marker %r"
          % resp.header("x-cairn-markers"))
    ok0, err0 = reload_counts(metrics(gw))

    def with_b(cfg):
        cfg["tenants"]["b"] = tenant(kb)
    bad = {
        "invalid JSON": json.dumps(gw.config)[:-2],
        "unknown key": lambda cfg: (with_b(cfg), cfg["policy"].update(no_such_key=1)),
        "unknown tenant key": lambda cfg: (with_b(cfg), cfg["tenants"]["a"].update(colour="red")),
        "missing upstream": lambda cfg: (with_b(cfg), cfg["tenants"]["b"].update(upstream="nope")),
        "access log cannot be opened": lambda cfg: (with_b(cfg), cfg["log"].update(
            access=os.path.join(os.path.dirname(gw.log_path), "no-such-dir", "access.log"))),
        "bad fixed marker": lambda cfg: (with_b(cfg),
                                         cfg["tenants"]["a"].update(
                                             markers={"fixed": {"domain": "NoSuchDomain"}})),
    }
    for i, (what, change) in enumerate(bad.items(), 1):
        rewrite(gw, change)
        resp = reload_post(gw)
        err = assert_error(resp, 500)
        check(err.get("code") == "reload_failed", "%s: code %r" % (what, err.get("code")))
        check(len(err.get("message", "")) > 10, "%s: no reason given: %r" % (what, err))
        # The old configuration still serves, unchanged.
        resp = gw.chat(CHAT_BODY, headers=bearer(ka))
        assert_status(resp, 200)
        check(resp.header("x-cairn-markers") == "domain=Legal",
              "%s: marker after a failed reload %r" % (what, resp.header("x-cairn-markers")))
        assert_error(gw.chat(CHAT_BODY, headers=bearer(kb)), 401)
        m = metrics(gw)
        check(m.get("cairn_config_generation") == 1, "%s: generation %r"
              % (what, m.get("cairn_config_generation")))
        check(m.get("cairn_config_last_reload_ok") == 0, "%s: last_reload_ok %r"
              % (what, m.get("cairn_config_last_reload_ok")))
        check(reload_counts(m) == (ok0, err0 + i), "%s: reload counts %r, expected %r"
              % (what, reload_counts(m), (ok0, err0 + i)))
    check(len(up.requests) == 1 + len(bad), "requests went astray: %r" % up.requests)

    # A good one: new tenant b on a second upstream, a's marker and models changed.
    def good(cfg):
        cfg["upstreams"]["second"] = {"base_url": up2.base_url}
        cfg["tenants"]["a"]["markers"] = {"fixed": {"domain": "Finance"}}
        cfg["tenants"]["a"]["models"] = ["gpt-new*"]
        cfg["tenants"]["b"] = tenant(kb, upstream="second")
    rewrite(gw, good)
    resp = reload_post(gw)
    assert_status(resp, 200)
    check(resp.json() == {"status": "reloaded", "generation": 2}, "reload answer %r"
          % bytes(resp.body))
    resp = gw.chat(chat_body(model="gpt-new-1"), headers=bearer(ka))
    assert_status(resp, 200)
    check(resp.header("x-cairn-markers") == "domain=Finance", "marker after reload %r"
          % resp.header("x-cairn-markers"))
    assert_error(gw.chat(CHAT_BODY, headers=bearer(ka)), 403)  # gpt-test no longer allowed
    assert_status(gw.chat(chat_body(user="b"), headers=bearer(kb)), 200)
    check([r.json().get("user") for r in up2.requests] == ["b"],
          "tenant b's request did not reach its upstream: %r" % up2.requests)
    m = metrics(gw)
    check(m.get("cairn_config_generation") == 2, "generation %r" % m.get("cairn_config_generation"))
    check(m.get("cairn_config_last_reload_ok") == 1, "last_reload_ok %r"
          % m.get("cairn_config_last_reload_ok"))
    check(reload_counts(m) == (ok0 + 1, err0 + len(bad)), "reload counts %r" % (reload_counts(m),))
    promtool_check(m.text)
    sent = 1 + 2 * len(bad) + 3
    gw.wait_access(lambda recs: len(chat_records(recs)) == sent,
                   what="one chat record per chat sent (%d; lost across reloads?)" % sent)


def test_sighup_reloads_and_rejects_a_bad_file():
    up = start_upstream()
    gw, ka = marker_gateway(up)
    kb = new_key()

    def good(cfg):
        cfg["tenants"]["a"]["markers"] = {"fixed": {"domain": "Medical"}}
        cfg["tenants"]["b"] = tenant(kb)
    rewrite(gw, good)
    # As logrotate does: move the access log away, then SIGHUP.
    assert_status(gw.chat(CHAT_BODY, headers=bearer(ka)), 200)
    gw.wait_access(lambda recs: len(chat_records(recs)) == 1, what="the first chat record")
    os.rename(gw.log_path, gw.log_path + ".1")
    gw.signal(signal.SIGHUP)
    wait_reloaded(gw, 2)
    resp = gw.chat(CHAT_BODY, headers=bearer(ka))
    assert_status(resp, 200)
    check(resp.header("x-cairn-markers") == "domain=Medical", "marker after SIGHUP %r"
          % resp.header("x-cairn-markers"))
    rid = resp.header("x-request-id")
    gw.wait_access(lambda recs: [r.get("request_id") for r in chat_records(recs)] == [rid],
                   what="after SIGHUP, the record of %s alone in the reopened access log" % rid)
    moved = chat_records(log_records(read_log(gw.log_path + ".1")))
    check(len(moved) == 1, "the renamed access log holds %d chat records, not the first alone"
          % len(moved))
    assert_status(gw.chat(CHAT_BODY, headers=bearer(kb)), 200)

    ok, err = reload_counts(metrics(gw))
    rewrite(gw, "{\"listen\": [")
    gw.signal(signal.SIGHUP)
    m = wait_metric(gw, "cairn_config_reloads_total", {"result": "error"}, err + 1)
    check(m.get("cairn_config_last_reload_ok") == 0, "last_reload_ok after a bad SIGHUP")
    check(m.get("cairn_config_generation") == 2, "generation changed by a bad file")
    check(gw.proc.poll() is None, "cairn exited on a bad SIGHUP reload")
    resp = gw.chat(CHAT_BODY, headers=bearer(ka))
    assert_status(resp, 200)
    check(resp.header("x-cairn-markers") == "domain=Medical", "marker after a bad SIGHUP %r"
          % resp.header("x-cairn-markers"))
    wait_log(gw.stderr_records,
             lambda recs: any("reload" in r.get("msg", "").lower() and
                              "cairn.json" in r.get("msg", "") for r in recs),
             what="the rejected reload's message on stderr")
    rewrite(gw, good)
    gw.signal(signal.SIGHUP)
    wait_reloaded(gw, 3)
    m = metrics(gw)
    check(m.get("cairn_config_last_reload_ok") == 1, "last_reload_ok after a good SIGHUP")


def test_stream_open_across_reload_completes_on_old_config():
    """A stream started before a reload that moves the upstream and revokes
    the stream's key finishes normally; new requests follow the new file."""
    first_sent, go = threading.Event(), threading.Event()
    handler, payload = gated_stream(first_sent, go)
    up, up2 = start_upstream(handler), start_upstream()
    gw, ka = marker_gateway(up)
    kb = new_key()
    c, resp = open_stream(gw, headers=bearer(ka))
    check(first_sent.wait(3.0), "upstream did not start the stream")
    c.read_body(resp, until=b"Hel", timeout=3.0)
    check(b"Hel" in resp.body, "first event not relayed: %r" % bytes(resp.body))
    # Gauges are brought up to date a few times a second.
    m = wait_metric(gw, "cairn_streams", {}, 1)
    check((m.get("cairn_connections") or 0) >= 1, "cairn_connections %r"
          % m.get("cairn_connections"))

    def moved(cfg):
        cfg["upstreams"]["default"]["base_url"] = up2.base_url
        cfg["tenants"] = {"b": tenant(kb, markers={"fixed": {"domain": "Code"}})}
    rewrite(gw, moved)
    r = reload_post(gw)
    assert_status(r, 200)
    check(r.json().get("generation") == 2, "reload answer %r" % bytes(r.body))
    assert_error(gw.chat(CHAT_BODY, headers=bearer(ka)), 401)
    rb = gw.chat(CHAT_BODY, headers=bearer(kb))
    assert_status(rb, 200)
    check(rb.header("x-cairn-markers") == "domain=Code", "new marker %r"
          % rb.header("x-cairn-markers"))
    check(len(up2.requests) == 1, "new request did not go to the new upstream")
    rid = rb.header("x-request-id")
    check(gw.access_record(rid).get("tenant") == "b",
          "the access record after the reload is not tenant b's")
    go.set()
    c.read_body(resp, timeout=5.0)
    check(resp.complete, "the stream open across the reload did not end with its terminator "
          "(got %r)" % bytes(resp.body))
    check(bytes(resp.body) == payload, "stream bytes differ: %r" % bytes(resp.body))
    check(len(up.requests) == 1, "old upstream saw %d requests" % len(up.requests))
    wait_metric(gw, "cairn_streams", {}, 0)
    wait_metric(gw, "cairn_requests_total", dict(tenant="a", route=CHAT, status="200", arm=""), 1)
    # The connection is still usable after the stream.
    c.send(build_request("GET", "/healthz"))
    assert_status(c.read_response(), 200)


def test_limits_carry_over_a_reload():
    """A tenant's rate-limit bucket and in-flight count survive a reload
    that keeps the tenant: reloading is no way around a limit, and a
    request in flight across it still frees its slot."""
    go = threading.Event()

    def slow(ex):
        if ex.req.json().get("user") == "held":
            ex.wait(go, timeout=5.0)
        return default_handler(ex)
    up = start_upstream(slow)
    ka = new_key()
    gw = start_gateway(up, auth="keys", tenants={
        "a": tenant(ka, rate={"concurrent": 1, "requests_per_second": 0.2, "burst": 2})})
    held = gw.client()
    held.send(build_request("POST", CHAT, chat_body(user="held"), headers=bearer(ka)))
    check(up.wait_requests(1, 3.0), "held request not forwarded")
    assert_error(gw.chat(CHAT_BODY, headers=bearer(ka)), 429)  # concurrency

    def touch(cfg):
        cfg["tenants"]["a"]["markers"] = {"fixed": {"domain": "Code"}}
    rewrite(gw, touch)
    assert_status(reload_post(gw), 200)
    resp = gw.chat(CHAT_BODY, headers=bearer(ka))
    check(resp.status == 429, "reload reset the in-flight count: got %s" % resp.status)
    go.set()
    assert_status(held.read_response(method="POST"), 200)
    time.sleep(0.1)
    resp = gw.chat(CHAT_BODY, headers=bearer(ka))  # the second token of the burst
    assert_status(resp, 200)
    check(resp.header("x-cairn-markers") == "domain=Code", "new policy not applied")
    rewrite(gw, lambda cfg: None)
    assert_status(reload_post(gw), 200)
    resp = gw.chat(CHAT_BODY, headers=bearer(ka))
    check(resp.status == 429, "reload refilled the rate bucket: got %s" % resp.status)
    retry = resp.header("retry-after") or ""
    check(retry.isdigit() and 4 <= int(retry) <= 5,
          "Retry-After %r for an empty bucket refilled at 0.2/s (expected 5)" % retry)
    wait_metric(gw, "cairn_requests_total", dict(tenant="a", route=CHAT, status="429", arm=""), 3)


def test_reload_under_load_fails_no_request():
    """Two clients send requests back to back over keep-alive while the
    configuration is reloaded eight times, bad and good files in turn:
    every request is answered 200, and each answer carries the fixed
    marker of one of the configurations that were live."""
    up = start_upstream()
    gw = start_gateway(up, markers={"fixed": {"domain": "Legal"}})
    stop = threading.Event()
    results, errors = [], []

    def client_loop():
        c = gw.client()
        try:
            while not stop.is_set() and len(results) < 400:
                c.send(build_request("POST", CHAT, CHAT_BODY))
                resp = c.read_response(method="POST")
                results.append((resp.status, resp.header("x-cairn-markers")))
        except Exception as e:  # reported below: any failure is a lost request
            errors.append(repr(e))
    workers = [threading.Thread(target=client_loop) for _ in range(2)]
    for w in workers:
        w.start()
    domains = ["Finance", "Medical", "Legal", "Culture"]
    for i in range(8):
        if i % 2 == 0:
            rewrite(gw, '{"upstreams": {"default": {"base_url": "http://127.0.0.1:1/v1"}}, '
                        '"policy": {"upstream": "nowhere"}}')
            assert_error(reload_post(gw), 500)
        else:
            domain = domains[i // 2]
            rewrite(gw, lambda cfg, d=domain: cfg["policy"]["markers"].update(fixed={"domain": d}))
            assert_status(reload_post(gw), 200)
        time.sleep(0.05)
    stop.set()
    for w in workers:
        w.join(10.0)
    check(not errors, "a client failed during the reloads: %r" % errors)
    check(len(results) >= 10, "too little traffic during the reloads: %d" % len(results))
    bad = [r for r in results if r[0] != 200]
    check(not bad, "%d of %d requests failed during reloads: %r" % (len(bad), len(results), bad[:3]))
    allowed = {"domain=" + d for d in domains}
    odd = {r[1] for r in results} - allowed
    check(not odd, "answers with markers of no live configuration: %r" % odd)
    after = gw.chat(CHAT_BODY)
    check(after.header("x-cairn-markers") == "domain=" + domains[-1],
          "a request after the last reload got %r" % after.header("x-cairn-markers"))
    m = metrics(gw)
    check(m.get("cairn_config_generation") == 5, "generation %r after 4 good reloads"
          % m.get("cairn_config_generation"))


# --- drain ---------------------------------------------------------------------------


def test_sigterm_drains_open_stream_and_refuses_new_connections():
    """SIGTERM with a stream in flight: the stream completes with its last
    event and the chunked terminator, idle connections are closed, new
    connections are refused, and cairn exits 0 once the stream is done."""
    first_sent, go = threading.Event(), threading.Event()
    handler, payload = gated_stream(first_sent, go)
    up = start_upstream(handler)
    gw = start_gateway(up)
    idle = gw.client()
    idle.send(build_request("GET", "/healthz"))
    assert_status(idle.read_response(), 200)
    c, resp = open_stream(gw)
    check(first_sent.wait(3.0), "upstream did not start the stream")
    c.read_body(resp, until=b"Hel", timeout=3.0)
    gw.signal(signal.SIGTERM)
    check(wait_for(lambda: connect_refused(gw.port), 3.0),
          "new connections still accepted after SIGTERM")
    check(idle.closed_by_peer(2.0), "an idle keep-alive connection was not closed on SIGTERM")
    check(gw.proc.poll() is None, "cairn exited with a stream in flight")
    go.set()
    c.read_body(resp, timeout=5.0)
    check(resp.complete, "stream cut by the drain: got %r" % bytes(resp.body))
    check(bytes(resp.body) == payload, "stream bytes differ: %r" % bytes(resp.body))
    check(bytes(resp.body).endswith(b"data: [DONE]\n\n"), "stream did not end with [DONE]")
    check(c.closed_by_peer(2.0), "the stream's connection was left open during the drain")
    c.close()
    code = gw.wait_exit(5.0)
    check(code == 0, "cairn exit code %r after the drain" % code)
    rec = chat_records(gw.access_records())  # complete: cairn has exited
    check(len(rec) == 1 and rec[0].get("status") == 200, "stream access record %r" % rec)


def test_readyz_is_503_while_draining():
    """A keep-alive connection opened before SIGTERM, its /readyz request
    finished after it, is told 503 (take me out of rotation) and closed."""
    go = threading.Event()

    def slow(ex):
        ex.wait(go, timeout=5.0)
        return default_handler(ex)
    up = start_upstream(slow)
    gw = start_gateway(up)
    probe = gw.client()
    probe.send(build_request("GET", "/readyz"))
    assert_status(probe.read_response(), 200)
    busy = gw.client()
    busy.send(build_request("POST", CHAT, CHAT_BODY))
    check(up.wait_requests(1, 3.0), "request not forwarded")
    # Half a request head on the probe connection: not idle, so kept open.
    probe.send(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    time.sleep(0.1)
    gw.signal(signal.SIGTERM)
    check(wait_for(lambda: connect_refused(gw.port), 3.0), "still accepting after SIGTERM")
    probe.send(b"\r\n")
    resp = probe.read_response()
    err = assert_error(resp, 503)
    check(err.get("code") == "draining", "503 code %r" % err.get("code"))
    check((resp.header("connection") or "").lower() == "close",
          "503 while draining without Connection: close")
    check(probe.closed_by_peer(2.0), "connection kept open after the 503 while draining")
    probe.close()
    go.set()
    assert_status(busy.read_response(method="POST"), 200)
    check(busy.closed_by_peer(2.0), "connection kept open after its last response while draining")
    busy.close()
    check(gw.wait_exit(5.0) == 0, "cairn did not exit 0 after the drain")


def test_drain_deadline_cuts_what_is_left_and_exits_0():
    """A stream that is still open when timeouts.drain_ms runs out is cut
    (the client sees an incomplete chunked body, never a clean end), and
    cairn exits 0."""
    first_sent, go = threading.Event(), threading.Event()
    handler, _ = gated_stream(first_sent, go)
    up = start_upstream(handler)
    gw = start_gateway(up, timeouts={"drain_ms": 300})
    c, resp = open_stream(gw)
    check(first_sent.wait(3.0), "upstream did not start the stream")
    c.read_body(resp, until=b"Hel", timeout=3.0)
    gw.signal(signal.SIGTERM)
    code = gw.wait_exit(5.0)
    go.set()
    check(code == 0, "cairn exit code %r after the drain deadline" % code)
    c.read_body(resp, timeout=2.0)
    check(not resp.complete, "a stream cut by the drain deadline looked complete: %r"
          % bytes(resp.body))


def test_reload_that_cannot_open_the_content_log_keeps_both_logs():
    """A reload whose new access log path B opens but whose content log
    cannot (its directory does not exist) is refused as a whole (500
    reload_failed): the next chat's access record still lands in the old
    access log A, B is not even created, and its content record still goes
    to the old content log C."""
    up = start_upstream()
    content_c = ctx().path("content.log")
    gw = start_gateway(up, log={"content": content_c}, policy={"log_content": True})
    access_b = ctx().path("access-new.log")
    unwritable = ctx().path(os.path.join("no-such-dir", "content.log"))

    def content_records(n):
        return wait_log(content_c, lambda recs: recs if len(recs) >= n else None,
                        what="content record #%d" % n)

    r1 = gw.chat(CHAT_BODY)
    assert_status(r1, 200)
    check(len(content_records(1)) == 1, "no content record before the reload")

    def moved(cfg):
        cfg["log"]["access"] = access_b
        cfg["log"]["content"] = unwritable
    rewrite(gw, moved)
    err = assert_error(reload_post(gw), 500)
    check(err.get("code") == "reload_failed", "reload error code %r" % err.get("code"))

    r2 = gw.chat(CHAT_BODY)
    assert_status(r2, 200)
    rid = r2.header("x-request-id")
    gw.access_record(rid)  # in the old access log A: log_path is A's
    recs = content_records(2)
    check(len(recs) == 2 and recs[-1].get("request_id") == rid,
          "no content record in the old content log C after the refused reload: %r"
          % [r.get("request_id") for r in recs])
    m = metrics(gw)
    check(m.get("cairn_config_generation") == 1, "generation %r after a refused reload"
          % m.get("cairn_config_generation"))
    if os.path.exists(access_b):
        left = read_log(access_b)
        check(False, "the refused reload left the new access log B behind (%s): %r"
              % ("empty: created, then given up" if not left else "with records", left[-300:]))
