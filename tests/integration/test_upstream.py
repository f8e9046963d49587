"""Upstream statuses and faults on non-streamed requests: the client gets a
faithful status or a clean gateway error, a POST is never sent twice, and
the gateway stays healthy afterwards."""

import json
import socket
import threading
import time

from harness import (CANARY, CHAT_BODY, COMPLETION, TLS_CA, assert_error, assert_recovered,
                     assert_status, build_request, check, default_handler, start_gateway,
                     start_upstream)

UPSTREAM_SECRET = "upstream-secret-detail-5be1"


def answer(status, obj, headers=()):
    return lambda ex: ex.json(status, obj, headers)


def hang(seconds=5.0):
    """Read the request, then send nothing for `seconds` (or until the test ends)."""
    return lambda ex: ex.wait(timeout=seconds)


def run_fault(handler, **config):
    """A gateway in front of an upstream whose next answer is `handler`;
    returns (gateway, upstream, response to one chat request)."""
    up = start_upstream()
    up.script(handler)
    gw = start_gateway(up, **config)
    gw.mark_fds()  # for assert_recovered
    return gw, up, gw.chat(CHAT_BODY, timeout=8)


# --- statuses --------------------------------------------------------------


def expect_passthrough(status, extra_headers=()):
    body = {"error": {"message": "upstream says %d" % status, "type": "upstream_type",
                      "code": "upstream_code"}}
    gw, up, resp = run_fault(answer(status, body, [("Retry-After", "7")] + list(extra_headers)))
    assert_status(resp, status)
    check(resp.json() == body, "body changed: %r" % resp.body[:300])
    check(resp.header("retry-after") == "7", "Retry-After %r" % resp.header("retry-after"))
    check(len(up.requests) == 1, "upstream saw %d requests (a retry?)" % len(up.requests))
    assert_recovered(gw, up)


def test_upstream_429_passes_through_with_retry_after():
    expect_passthrough(429)


def test_upstream_500_passes_through():
    expect_passthrough(500)


def test_upstream_503_passes_through_with_retry_after():
    expect_passthrough(503)


def test_upstream_400_passes_through():
    body = {"error": {"message": "bad parameter", "type": "invalid_request_error",
                      "code": None, "param": "messages"}}
    gw, up, resp = run_fault(answer(400, body))
    assert_status(resp, 400)
    check(resp.json() == body, "body changed: %r" % resp.body[:300])


def expect_replaced_auth_error(status):
    body = {"error": {"message": "Incorrect API key provided: %s" % UPSTREAM_SECRET,
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    gw, up, resp = run_fault(answer(status, body))
    assert_error(resp, status)
    check(UPSTREAM_SECRET.encode() not in resp.body,
          "the upstream's %d body reached the client: %r" % (status, resp.body[:300]))
    assert_recovered(gw, up)


def test_upstream_401_body_is_replaced():
    expect_replaced_auth_error(401)


def test_upstream_403_body_is_replaced():
    expect_replaced_auth_error(403)


def test_models_is_passed_through_chunked():
    """A chunked (not Content-Length) upstream answer is delivered whole."""
    def chunked_models(ex):
        data = json.dumps({"object": "list", "data": [{"id": "m%d" % i} for i in range(200)]})
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Transfer-Encoding", "chunked")]))
        for i in range(0, len(data), 1000):
            ex.chunk(data[i:i + 1000])
            time.sleep(0.005)
        ex.end_chunks()
    up = start_upstream(chunked_models)
    gw = start_gateway(up)
    resp = gw.request("GET", "/v1/models")
    assert_status(resp, 200)
    check(len(resp.json()["data"]) == 200, "incomplete models list")


# --- connection faults -----------------------------------------------------


def test_upstream_refusing_connections_is_502():
    gw = start_gateway(None)  # base_url on a closed port
    gw.mark_fds()
    assert_error(gw.chat(CHAT_BODY), 502)
    assert_error(gw.request("GET", "/v1/models"), 502)
    assert_recovered(gw)


def test_unresolvable_upstream_host_is_502():
    gw = start_gateway(base_url="http://nonexistent.invalid/v1",
                       upstream_cfg={"connect_timeout_ms": 3000})
    gw.mark_fds()
    assert_error(gw.chat(CHAT_BODY, timeout=8), 502)
    assert_recovered(gw)


def test_upstream_connect_timeout():
    """An upstream whose accept queue is full: SYNs are dropped, connect hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    addr = listener.getsockname()
    fillers = [socket.create_connection(addr, timeout=2)]  # fills the queue
    try:
        gw = start_gateway(base_url="http://127.0.0.1:%d/v1" % addr[1],
                           upstream_cfg={"connect_timeout_ms": 500})
        gw.mark_fds()
        t0 = time.monotonic()
        resp = gw.chat(CHAT_BODY, timeout=8)
        elapsed = time.monotonic() - t0
        assert_error(resp, (502, 504))
        check(elapsed < 4.0, "connect timeout of 0.5s answered after %.1fs" % elapsed)
        assert_recovered(gw)
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_no_first_byte_is_504_and_not_resent():
    gw, up, resp = run_fault(hang(5.0), upstream_cfg={"first_byte_timeout_ms": 500})
    assert_error(resp, 504)
    time.sleep(1.0)  # a retry would show up now
    check(len(up.requests) == 1, "upstream saw the POST %d times" % len(up.requests))
    assert_recovered(gw, up)


def test_first_byte_timeout_fires_on_time():
    up = start_upstream(hang(5.0))
    gw = start_gateway(up, upstream_cfg={"first_byte_timeout_ms": 500})
    t0 = time.monotonic()
    assert_error(gw.chat(CHAT_BODY, timeout=8), 504)
    elapsed = time.monotonic() - t0
    check(0.3 <= elapsed <= 3.0, "first-byte timeout of 0.5s fired after %.1fs" % elapsed)


def test_upstream_closing_without_answer_is_502():
    gw, up, resp = run_fault(lambda ex: ex.close())
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_upstream_reset_is_502():
    gw, up, resp = run_fault(lambda ex: ex.reset())
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_post_on_reused_connection_is_not_resent():
    """The first answer leaves the upstream connection alive; the second
    request on it is read, then the upstream closes without answering.
    Re-sending that POST on a new connection would duplicate a billed call."""
    up = start_upstream()
    up.script(default_handler, lambda ex: ex.close())
    gw = start_gateway(up)
    assert_status(gw.chat(CHAT_BODY), 200)
    resp = gw.chat(CHAT_BODY)
    time.sleep(0.3)
    check(len(up.requests) == 2,
          "upstream saw %d requests for 2 client requests (the POST was re-sent); "
          "client got %s" % (len(up.requests), resp.status))
    assert_error(resp, 502)


def test_upstream_closing_keepalive_between_requests_is_harmless():
    def answer_and_close(ex):
        ex.json(200, COMPLETION, [("Connection", "close")])
        ex.close()
    up = start_upstream(answer_and_close)
    gw = start_gateway(up)
    for _ in range(3):
        assert_status(gw.chat(CHAT_BODY), 200)
    check(len(up.requests) == 3, "upstream saw %d requests" % len(up.requests))


def test_upstream_redirect_is_not_followed():
    """A 307 to another host must not make the gateway re-send the request
    (and its key) there."""
    elsewhere = start_upstream()
    up = start_upstream(lambda ex: ex.respond(307, b"", [
        ("Location", elsewhere.url + "/v1/chat/completions")]))
    gw = start_gateway(up)
    resp = gw.chat(CHAT_BODY)
    assert_error(resp, 502)
    check(resp.header("location") is None,
          "the upstream's Location reached the client: %r" % resp.header("location"))
    time.sleep(0.2)
    check(not elsewhere.requests, "the gateway followed the redirect: %r" % elsewhere.requests)


def test_upstream_echoing_the_key_in_an_error_body_is_not_relayed():
    """An upstream that quotes the failed request (headers included) in an
    OpenAI-shaped error must not hand the gateway's key to the client: the
    harness fails the test if the canary appears in any byte received."""
    body = {"error": {"message": "bad request; got Authorization: Bearer " + CANARY,
                      "type": "invalid_request_error", "code": None}}
    gw, up, resp = run_fault(answer(400, body))
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_upstream_echoing_the_key_in_a_header_is_not_relayed():
    gw, up, resp = run_fault(answer(200, COMPLETION, [("X-Debug-Auth", "Bearer " + CANARY)]))
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_upstream_204_has_no_body_and_no_length():
    gw, up, resp = run_fault(lambda ex: ex.respond(204, b"", content_type=None))
    assert_status(resp, 204)
    check(resp.header("content-length") is None, "Content-Length on a 204 (RFC 9110 8.6)")
    check(not resp.body, "body on a 204: %r" % bytes(resp.body[:80]))
    assert_recovered(gw, up)


def test_malformed_upstream_headers_are_dropped():
    """A header name that is not a token, or a value with a bare CR, is
    not written into the client's response."""
    gw, up, resp = run_fault(answer(200, COMPLETION, [("Bad Name", "v"), ("X-Ok", "fine")]))
    assert_status(resp, 200)
    check(resp.header("bad name") is None, "a header name with a space was relayed")
    check(resp.header("x-ok") == "fine", "a valid upstream header was lost")
    assert_recovered(gw, up)


def test_gateway_errors_carry_no_upstream_headers():
    """A 502 is the gateway's answer: nothing from the upstream's head
    (cookies, rate-limit hints, ids) rides along on it."""
    gw, up, resp = run_fault(lambda ex: ex.respond(
        200, b'{"id": "chatcmpl-x", "choices": [}',
        [("X-Upstream-Hint", "leak")]))
    assert_error(resp, 502)
    check(resp.header("x-upstream-hint") is None, "upstream header on a gateway 502")
    assert_recovered(gw, up)


# --- TLS ------------------------------------------------------------------


def test_https_upstream_with_ca_file():
    up = start_upstream(tls=True)
    gw = start_gateway(up, upstream_cfg={"ca_file": TLS_CA})
    assert_status(gw.chat(CHAT_BODY), 200)
    check(up.only_request().header("authorization") == "Bearer " + CANARY,
          "key not sent over TLS")
    assert_status(gw.request("GET", "/v1/models"), 200)


def test_https_upstream_with_untrusted_certificate_is_502():
    """Without the test CA the certificate must fail verification: no
    request (and no key) may be sent."""
    up = start_upstream(tls=True)
    gw = start_gateway(up)
    assert_error(gw.chat(CHAT_BODY), 502)
    check(not up.requests, "a request was sent to an unverified upstream")


# --- malformed answers -----------------------------------------------------


def test_truncated_json_answer_is_502():
    def truncated(ex):
        data = json.dumps(COMPLETION).encode()
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data) + 500))]) + data[:40])
        ex.close()
    gw, up, resp = run_fault(truncated)
    assert_error(resp, 502)
    check(b"chatcmpl-test" not in resp.body, "truncated upstream bytes reached the client")
    assert_recovered(gw, up)


def test_truncated_chunked_answer_is_502():
    def truncated(ex):
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Transfer-Encoding", "chunked")]))
        ex.chunk(json.dumps(COMPLETION)[:40])
        ex.close()
    gw, up, resp = run_fault(truncated)
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_malformed_json_answer_is_502():
    gw, up, resp = run_fault(lambda ex: ex.respond(200, b'{"id": "chatcmpl-x", "choices": [}'))
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_garbage_status_line_is_502():
    def garbage(ex):
        ex.send(b"HTTQ/9 banana\r\n\r\n")
        ex.close()
    gw, up, resp = run_fault(garbage)
    assert_error(resp, 502)
    assert_recovered(gw, up)


def test_answer_over_max_response_bytes_is_502():
    big = dict(COMPLETION, padding="p" * 200000)
    gw, up, resp = run_fault(answer(200, big), upstream_cfg={"max_response_bytes": 65536})
    assert_error(resp, 502)
    check(b"ppppp" not in resp.body, "the oversized answer reached the client")
    assert_recovered(gw, up)


def test_upstream_stalling_mid_body_is_an_error():
    def stall(ex):
        data = json.dumps(COMPLETION).encode()
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))]) + data[:40])
        ex.wait(timeout=5.0)
    gw, up, resp = run_fault(stall, upstream_cfg={"idle_timeout_ms": 500})
    assert_error(resp, (502, 504))
    assert_recovered(gw, up)


def test_slow_but_steady_answer_is_delivered():
    def slow(ex):
        data = json.dumps(COMPLETION).encode()
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))]))
        for i in range(0, len(data), len(data) // 5 + 1):
            time.sleep(0.2)
            ex.send(data[i:i + len(data) // 5 + 1])
    gw, up, resp = run_fault(slow, upstream_cfg={"idle_timeout_ms": 1000,
                                                 "first_byte_timeout_ms": 1000})
    assert_status(resp, 200)
    check(resp.json() == COMPLETION, "answer changed: %r" % resp.body[:300])


def test_large_bodies_are_relayed_intact():
    """2 MiB up (libcurl may use Expect: 100-continue), 1 MiB down."""
    big_answer = dict(COMPLETION, padding="d" * (1 << 20))
    up = start_upstream(answer(200, big_answer))
    gw = start_gateway(up)
    body = dict(CHAT_BODY, messages=[{"role": "user", "content": "u" * (2 << 20)}])
    resp = gw.chat(body, timeout=10)
    assert_status(resp, 200)
    check(resp.json() == big_answer, "large answer changed (%d bytes)" % len(resp.body))
    check(up.only_request().json() == body, "large request changed")


def test_concurrent_requests_do_not_cross():
    """Twenty requests at once; each answer must be the one for its request."""
    def echo(ex):
        time.sleep(0.05)
        ex.json(200, dict(COMPLETION, id=ex.req.json()["user"]))
    up = start_upstream(echo)
    gw = start_gateway(up)
    results, errors = {}, []

    def one(i):
        try:
            results[i] = gw.chat(dict(CHAT_BODY, user="req-%d" % i), timeout=8).json()["id"]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%d: %s" % (i, e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    check(not errors, "concurrent requests failed: %s" % errors[:3])
    crossed = {i: v for i, v in results.items() if v != "req-%d" % i}
    check(len(results) == 20 and not crossed, "answers crossed: %r" % crossed)


def test_client_leaving_aborts_buffered_request():
    closed = threading.Event()

    def slow(ex):
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not ex.up.stopping.is_set():
            if ex.peer_closed(0.1):
                closed.set()
                return
        ex.json(200, COMPLETION)
    up = start_upstream()
    up.script(slow)
    gw = start_gateway(up)
    gw.mark_fds()
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", CHAT_BODY))
    check(up.wait_requests(1, 3.0), "request did not reach the upstream")
    c.close()
    check(closed.wait(3.0), "upstream request still open after the client left")
    assert_recovered(gw, up)
