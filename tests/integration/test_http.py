"""HTTP/1.1 framing, limits, timeouts, keep-alive and pipelining.

Every malformed request must be answered with an error and the connection
closed, and must never reach the upstream: a lenient parser that guesses
differently from the next hop is how requests get smuggled.
"""

import json
import time

from harness import (CHAT_BODY, assert_error, assert_status, build_request, check,
                     delta_event, raw_request, sse_event, start_gateway, start_upstream,
                     wait_for)

CHAT = json.dumps(CHAT_BODY)
SMUGGLED = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"


def post(headers, body=CHAT, version="1.1", host=True):
    """Raw POST /v1/chat/completions with exactly these extra header lines."""
    lines = (["Host: 127.0.0.1"] if host else []) + ["Content-Type: application/json"]
    return raw_request("POST /v1/chat/completions HTTP/%s" % version, lines + headers, body)


def chunked(body, size=None):
    """`body` as one chunk (optionally with a lying size line) + last chunk."""
    size = "%x" % len(body) if size is None else size
    return "%s\r\n%s\r\n0\r\n\r\n" % (size, body)


def expect_rejected(raw, status, **config):
    """Send raw bytes: one error answer with `status`, then the connection
    closes, and the upstream never sees a request."""
    up = start_upstream()
    gw = start_gateway(up, **config)
    c = gw.client()
    c.send(raw)
    resp = c.read_response(timeout=5)
    assert_error(resp, status)
    check(c.closed_by_peer(2.0), "connection still open after %s (extra bytes: %r)"
          % (resp.status, bytes(c.buf[:200])))
    time.sleep(0.2)
    check(not up.requests, "a rejected request reached the upstream: %r" % up.requests)
    assert_status(gw.healthz(), 200)


N = len(CHAT)

# name -> (expected status(es), raw request bytes)
REJECTS = {
    "duplicate_content_length_same":
        (400, post(["Content-Length: %d" % N, "Content-Length: %d" % N])),
    "duplicate_content_length_different":
        (400, post(["Content-Length: %d" % N, "Content-Length: %d" % (N + len(SMUGGLED))],
                   CHAT + SMUGGLED)),
    "content_length_list":
        (400, post(["Content-Length: %d, %d" % (N, N)])),
    "content_length_space_before_colon":
        (400, post(["Content-Length : %d" % N])),
    "content_length_plus_sign":
        (400, post(["Content-Length: +%d" % N])),
    "content_length_negative":
        (400, post(["Content-Length: -1"])),
    "content_length_hex":
        (400, post(["Content-Length: 0x%x" % N])),
    "content_length_not_digits":
        (400, post(["Content-Length: %da" % N])),
    # Overflowing a 64-bit integer: a parse error, or "too large" at worst.
    "content_length_overflow":
        ((400, 413), post(["Content-Length: 184467440737095516160000"])),
    "content_length_with_chunked":
        (400, post(["Content-Length: %d" % N, "Transfer-Encoding: chunked"], chunked(CHAT))),
    "chunked_on_http10":
        (400, post(["Transfer-Encoding: chunked"], chunked(CHAT), version="1.0")),
    "transfer_encoding_gzip":
        (501, post(["Transfer-Encoding: gzip"], CHAT)),
    "transfer_encoding_gzip_chunked":
        (501, post(["Transfer-Encoding: gzip, chunked"], chunked(CHAT))),
    "transfer_encoding_chunked_twice":
        ((400, 501), post(["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                          chunked(CHAT))),
    "chunk_size_0x_prefix":
        (400, post(["Transfer-Encoding: chunked"], chunked(CHAT, "0x%x" % N))),
    "chunk_size_negative":
        (400, post(["Transfer-Encoding: chunked"], chunked(CHAT, "-%x" % N))),
    "chunk_size_overflow":
        ((400, 413), post(["Transfer-Encoding: chunked"],
                          chunked(CHAT, "1" + "0" * 20))),
    "chunk_data_longer_than_size":
        (400, post(["Transfer-Encoding: chunked"], chunked(CHAT, "%x" % (N - 5)))),
    "nul_in_header_value":
        (400, post(["Content-Length: %d" % N, "X-Note: a\x00b"])),
    "bare_cr_in_header_value":
        (400, post(["Content-Length: %d" % N, "X-Note: a\rb"])),
    "folded_header_line":
        (400, post(["Content-Length: %d" % N, "X-Note: a", " folded"])),
    "space_in_header_name":
        (400, post(["Content-Length: %d" % N, "X Note: a"])),
    "empty_header_name":
        (400, post(["Content-Length: %d" % N, ": a"])),
    "bare_lf_line_ends":
        (400, ("POST /v1/chat/completions HTTP/1.1\nHost: 127.0.0.1\n"
               "Content-Type: application/json\nContent-Length: %d\n\n%s" % (N, CHAT)).encode()),
    "missing_host_http11":
        (400, post(["Content-Length: %d" % N], host=False)),
    "duplicate_host":
        (400, post(["Content-Length: %d" % N, "Host: other.example"])),
    "garbage_request_line":
        (400, b"HELLO THERE\r\n\r\n"),
    "target_not_origin_form":
        (400, raw_request("GET healthz HTTP/1.1", ["Host: x"])),
    "http_version_2":
        (505, raw_request("GET /healthz HTTP/2.0", ["Host: x"])),
}


def _make_reject_test(status, raw):
    def test():
        expect_rejected(raw, status)
    return test


for _name, (_status, _raw) in REJECTS.items():
    globals()["test_reject_" + _name] = _make_reject_test(_status, _raw)
del _name, _status, _raw


# --- header limits ---------------------------------------------------------


def test_header_block_over_header_bytes_is_431():
    expect_rejected(build_request("GET", "/healthz", headers={"X-Big": "a" * 6000}), 431,
                    limits={"header_bytes": 4096})


def test_header_block_without_end_is_refused_at_the_cap():
    """A head that never ends must be refused once it passes the cap, not
    buffered while waiting for the blank line."""
    up = start_upstream()
    gw = start_gateway(up, limits={"header_bytes": 4096})
    c = gw.client()
    c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192)
    assert_error(c.read_response(timeout=3), 431)
    check(c.closed_by_peer(2.0), "connection still open after 431")


def test_header_lines_over_limit_is_431():
    headers = [("X-H%d" % i, "v") for i in range(30)]
    expect_rejected(build_request("GET", "/healthz", headers=headers), 431,
                    limits={"header_lines": 20})


def test_request_line_over_header_bytes_is_refused():
    expect_rejected(raw_request("GET /healthz?%s HTTP/1.1" % ("q" * 8000), ["Host: x"]),
                    (414, 431), limits={"header_bytes": 4096})


def test_headers_under_limits_are_accepted():
    gw = start_gateway(start_upstream(), limits={"header_bytes": 4096, "header_lines": 20})
    headers = [("X-H%d" % i, "v" * 100) for i in range(10)]
    c = gw.client()
    c.send(build_request("GET", "/healthz", headers=headers))
    assert_status(c.read_response(), 200)


# --- body limits -----------------------------------------------------------


def test_content_length_over_cap_is_413_without_reading_body():
    up = start_upstream()
    gw = start_gateway(up, limits={"body_bytes": 65536})
    c = gw.client()
    c.send(post(["Content-Length: 100000"], body=""))  # the head only
    t0 = time.monotonic()
    assert_error(c.read_response(timeout=5), 413)
    check(time.monotonic() - t0 < 3.0, "413 came only after %.1fs" % (time.monotonic() - t0))
    check(not up.requests, "upstream saw a request")


def test_expect_continue_over_cap_gets_413_not_100():
    gw = start_gateway(start_upstream(), limits={"body_bytes": 65536})
    c = gw.client()
    c.send(post(["Content-Length: 100000", "Expect: 100-continue"], body=""))
    resp = c.read_response(timeout=5, allow_interim=True)
    assert_error(resp, 413)


def test_chunked_body_past_cap_is_413():
    up = start_upstream()
    gw = start_gateway(up, limits={"body_bytes": 65536})
    c = gw.client()
    c.send(post(["Transfer-Encoding: chunked"], body=""))
    piece = b"2000\r\n" + b"x" * 0x2000 + b"\r\n"
    for _ in range(16):  # 128 KiB, twice the cap; stop if the gateway hangs up
        if not c.send(piece) or c.readable_within(0.02):
            break
    resp = c.read_response(timeout=5)
    assert_error(resp, 413)
    check(c.closed_by_peer(2.0), "connection still open after 413")
    check(not up.requests, "upstream saw a request")


def test_body_exactly_at_cap_is_accepted():
    up = start_upstream()
    gw = start_gateway(up, limits={"body_bytes": 65536})
    body = dict(CHAT_BODY, user="")
    pad = 65536 - len(json.dumps(body))
    body["user"] = "u" * pad
    data = json.dumps(body).encode()
    check(len(data) == 65536, "test bug: body is %d bytes" % len(data))
    assert_status(gw.chat(data), 200)
    check(up.only_request().json() == body, "upstream body differs")


def test_chunked_body_is_reassembled():
    up = start_upstream()
    gw = start_gateway(up)
    pieces = [CHAT[i:i + 7] for i in range(0, N, 7)]
    body = "".join("%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + "0\r\nX-Trailer: t\r\n\r\n"
    c = gw.client()
    c.send(post(["Transfer-Encoding: chunked"], body))
    assert_status(c.read_response(), 200)
    req = up.only_request()
    check(req.json() == CHAT_BODY, "upstream body differs: %r" % req.body[:200])
    check("x-trailer" not in req.header_names(), "request trailer forwarded upstream")


# --- timeouts --------------------------------------------------------------


def trickle_until_cut(c, data, pause=0.2, limit=5.0):
    """Send `data` one byte per `pause` until the gateway answers or closes;
    returns the seconds it took (fails if nothing happens within `limit`)."""
    t0 = time.monotonic()
    for i in range(len(data)):
        if not c.send(data[i:i + 1]) or c.readable_within(pause) or \
                time.monotonic() - t0 > limit:
            break
    elapsed = time.monotonic() - t0
    check(c.readable_within(1.0), "connection neither answered nor closed after %.1fs" % elapsed)
    data = c.read_some(timeout=1.0)
    if data:
        check(data.startswith(b"HTTP/1.1 408"), "expected 408 or a close, got %r" % data[:100])
    check(c.closed_by_peer(2.0), "connection not closed after the header deadline")
    return elapsed


SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100


def test_trickled_headers_hit_the_header_deadline():
    """One byte every 200 ms: the header deadline is total, not idle."""
    gw = start_gateway(start_upstream(), timeouts={"header_ms": 1000})
    elapsed = trickle_until_cut(gw.client(), SLOW_HEAD)
    check(0.5 <= elapsed <= 4.0, "header deadline of 1s fired after %.1fs" % elapsed)


def test_trickled_second_request_hits_the_header_deadline():
    gw = start_gateway(start_upstream(), timeouts={"header_ms": 1000, "keepalive_ms": 60000})
    c = gw.client()
    c.send(build_request("GET", "/healthz"))
    assert_status(c.read_response(), 200)
    elapsed = trickle_until_cut(c, SLOW_HEAD)
    check(0.5 <= elapsed <= 4.0, "header deadline of 1s fired after %.1fs on a kept-alive "
          "connection" % elapsed)


def test_silent_connection_is_closed_at_the_header_deadline():
    gw = start_gateway(start_upstream(), timeouts={"header_ms": 1000, "keepalive_ms": 60000})
    c = gw.client()
    t0 = time.monotonic()
    check(c.readable_within(5.0), "a connection that sends nothing is still open after 5s")
    elapsed = time.monotonic() - t0
    check(0.5 <= elapsed <= 4.0, "silent connection closed after %.1fs" % elapsed)
    data = c.read_some(timeout=1.0)
    check(not data or data.startswith(b"HTTP/1.1 408"), "expected 408 or a close, got %r"
          % data[:80])


def test_trickled_body_hits_the_total_body_deadline():
    """A byte every 200 ms keeps resetting the idle deadline: the total
    body deadline still ends it."""
    up = start_upstream()
    gw = start_gateway(up, timeouts={"body_idle_ms": 1000, "body_ms": 1500})
    c = gw.client()
    c.send(post(["Content-Length: %d" % N], body=""))
    t0 = time.monotonic()
    for i in range(N):
        if not c.send(CHAT[i:i + 1].encode()) or c.readable_within(0.2) or \
                time.monotonic() - t0 > 6:
            break
    resp = c.read_response(timeout=3)
    elapsed = time.monotonic() - t0
    assert_error(resp, 408)
    check(1.0 <= elapsed <= 4.5, "total body deadline of 1.5s fired after %.1fs" % elapsed)
    check(not up.requests, "upstream saw a request")


def test_stalled_body_is_408():
    up = start_upstream()
    gw = start_gateway(up, timeouts={"body_idle_ms": 1000})
    c = gw.client()
    c.send(post(["Content-Length: %d" % (N + 10)]))  # 10 bytes never come
    t0 = time.monotonic()
    resp = c.read_response(timeout=5)
    elapsed = time.monotonic() - t0
    assert_error(resp, 408)
    check(0.5 <= elapsed <= 4.0, "body idle timeout of 1s fired after %.1fs" % elapsed)
    check(c.closed_by_peer(2.0), "connection not closed after 408")
    check(not up.requests, "upstream saw a request")


def test_idle_keepalive_connection_is_closed():
    gw = start_gateway(start_upstream(), timeouts={"keepalive_ms": 1000})
    c = gw.client()
    c.send(build_request("GET", "/healthz"))
    assert_status(c.read_response(), 200)
    t0 = time.monotonic()
    check(c.closed_by_peer(4.0), "idle keep-alive connection not closed after 4s")
    check(time.monotonic() - t0 >= 0.5, "keep-alive connection closed too early")


# --- keep-alive, pipelining, Expect ----------------------------------------


def test_keepalive_serves_several_requests():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    for method, path, body in [("GET", "/healthz", None), ("GET", "/v1/models", None),
                               ("POST", "/v1/chat/completions", CHAT_BODY),
                               ("GET", "/healthz", None)]:
        c.send(build_request(method, path, body))
        assert_status(c.read_response(), 200)
    check(len(up.requests) == 2, "upstream saw %d requests, expected 2" % len(up.requests))
    check(not c.closed_by_peer(0.3), "keep-alive connection was closed")


def test_connection_close_is_honoured():
    gw = start_gateway(start_upstream())
    c = gw.client()
    c.send(build_request("GET", "/healthz", close=True))
    assert_status(c.read_response(), 200)
    check(c.closed_by_peer(2.0), "connection not closed after Connection: close")


def test_http10_closes_by_default():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", CHAT_BODY, version="1.0"))
    resp = c.read_response()
    assert_status(resp, 200)
    check(resp.header("transfer-encoding") is None, "chunked answer to an HTTP/1.0 client")
    check(c.closed_by_peer(2.0), "HTTP/1.0 connection without keep-alive not closed")


def test_pipelined_requests_answered_in_order_once():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    c.send(build_request("GET", "/healthz") + build_request("POST", "/v1/chat/completions",
                                                            CHAT_BODY)
           + build_request("GET", "/healthz", close=True))
    first, second, third = (c.read_response() for _ in range(3))
    assert_status(first, 200)
    assert_status(second, 200)
    assert_status(third, 200)
    check(second.json().get("object") == "chat.completion",
          "second answer is not the chat completion: %r" % second.body[:200])
    check(first.json() == third.json(), "healthz answers differ")
    check(c.closed_by_peer(2.0), "extra bytes after three answers: %r" % bytes(c.buf[:200]))
    req = up.only_request()
    check(req.json() == CHAT_BODY, "upstream body differs")


def test_many_pipelined_requests():
    gw = start_gateway(start_upstream())
    c = gw.client()
    c.send(build_request("GET", "/healthz") * 99 + build_request("GET", "/healthz", close=True))
    for i in range(100):
        resp = c.read_response()
        check(resp.status == 200, "pipelined request %d got %s" % (i, resp.status))
    check(c.closed_by_peer(2.0), "more than 100 answers to 100 requests")


def test_garbage_after_a_valid_request():
    gw = start_gateway(start_upstream())
    c = gw.client()
    c.send(build_request("GET", "/healthz") + b"GARBAGE\r\n\r\n")
    assert_status(c.read_response(), 200)
    assert_error(c.read_response(), 400)
    check(c.closed_by_peer(2.0), "connection still open after 400")


def test_body_bytes_never_parsed_as_a_request():
    """A GET with a body that looks like a request to be forwarded."""
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    c.send(raw_request("GET /healthz HTTP/1.1", ["Host: x", "Content-Length: %d" % len(SMUGGLED)],
                       SMUGGLED) + build_request("GET", "/healthz", close=True))
    answers = []
    while len(answers) < 3 and not c.closed_by_peer(0.5):
        answers.append(c.read_response())
    check(answers and answers[0].status in (200, 400),
          "first answer %r" % (answers[0].status if answers else None))
    check(len(answers) <= 2, "%d answers to 2 requests" % len(answers))
    for resp in answers:
        check(b'"object": "list"' not in resp.body and b'"object":"list"' not in resp.body,
              "the body was executed as a /v1/models request")
    time.sleep(0.2)
    check(not up.requests, "body bytes reached the upstream as a request: %r" % up.requests)


def test_expect_100_continue():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    data = json.dumps(CHAT_BODY).encode()
    c.send(post(["Content-Length: %d" % len(data), "Expect: 100-continue"], body=""))
    interim = c.read_head(timeout=3)
    check(interim.status == 100, "expected 100 Continue before the body, got %s" % interim.status)
    check(interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"),
          "bad interim line %r" % interim.raw_head[:40])
    c.send(data)
    assert_status(c.read_response(), 200)
    check(up.only_request().json() == CHAT_BODY, "upstream body differs")


def test_max_connections_refuses_extra_and_recovers():
    gw = start_gateway(start_upstream(), limits={"max_connections": 4})
    held = []
    for _ in range(4):
        c = gw.client()
        c.send(build_request("GET", "/healthz"))
        assert_status(c.read_response(), 200)
        held.append(c)
    extra = gw.client(timeout=3)
    extra.send(build_request("GET", "/healthz"))
    check(extra.readable_within(3.0), "5th connection neither refused nor answered within 3s")
    # The refusal is a complete 503: its Content-Length matches its body.
    assert_error(extra.read_response(timeout=3), 503)
    for c in held:
        c.close()

    def healthy():
        try:
            return gw.healthz().status == 200
        except (AssertionError, OSError):
            return False
    check(wait_for(healthy, 3.0, 0.2), "gateway does not serve after the held connections closed")


def test_pipelined_request_behind_a_stream():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", dict(CHAT_BODY, stream=True))
           + build_request("GET", "/healthz"))
    stream = c.read_response(method="POST")
    check(stream.complete and b"[DONE]" in stream.body, "stream incomplete: %r" % stream)
    assert_status(c.read_response(), 200)


def test_chunk_sizes_in_upper_case_and_with_leading_zeros():
    up = start_upstream()
    gw = start_gateway(up)
    half = N // 2
    body = "%04X\r\n%s\r\n%X\r\n%s\r\n000\r\n\r\n" % (half, CHAT[:half], N - half, CHAT[half:])
    c = gw.client()
    c.send(post(["Transfer-Encoding: chunked"], body))
    assert_status(c.read_response(), 200)
    check(up.only_request().json() == CHAT_BODY, "upstream body differs")


def test_chunk_size_line_too_long_is_400():
    expect_rejected(post(["Transfer-Encoding: chunked"],
                         "%x;ext=%s\r\n%s\r\n0\r\n\r\n" % (N, "e" * 20000, CHAT)), 400)


def test_client_closing_mid_body_never_reaches_upstream():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    c.send(post(["Content-Length: %d" % N], CHAT[:N // 2]))
    time.sleep(0.2)
    c.close()
    time.sleep(0.3)
    check(not up.requests, "a half-received body was forwarded")
    assert_status(gw.healthz(), 200)


def test_header_names_are_case_insensitive():
    up = start_upstream()
    gw = start_gateway(up)
    c = gw.client()
    c.send(raw_request("POST /v1/chat/completions HTTP/1.1",
                       ["hOST: x", "content-TYPE: application/json",
                        "CONTENT-LENGTH:%d" % N, "X-Spaces: \t padded \t"], CHAT))
    assert_status(c.read_response(), 200)
    check(up.only_request().json() == CHAT_BODY, "upstream body differs")


def test_connection_flood_leaves_live_stream_intact():
    """max_connections=4, one stream in flight: a burst of new connections
    is refused, and the stream still completes byte for byte."""
    events = [delta_event(i, "t%d" % i) for i in range(4)] + [sse_event("[DONE]")]

    def slow(ex):
        ex.start_sse()
        for event in events:
            ex.chunk(event)
            time.sleep(0.2)
        ex.end_chunks()
    up = start_upstream(slow)
    gw = start_gateway(up, limits={"max_connections": 4})
    stream = gw.client()
    stream.send(build_request("POST", "/v1/chat/completions", dict(CHAT_BODY, stream=True)))
    resp = stream.read_head()
    stream.start_body(resp, "POST")
    flood = []
    for _ in range(12):
        try:
            c = gw.client(timeout=2)
            c.send(build_request("GET", "/healthz"))
            flood.append(c)
        except OSError:
            pass
    served = 0
    for c in flood:
        if c.readable_within(2.0) and not c.closed_by_peer(0.2):
            r = c.read_response(timeout=2)
            assert_status(r, (200, 503))
            served += r.status == 200
    check(served <= 3, "%d flood connections served with max_connections=4 and a stream "
          "holding one" % served)
    stream.read_body(resp, timeout=5)
    check(resp.complete and bytes(resp.body) == b"".join(events),
          "the live stream was disturbed by the flood: %r" % bytes(resp.body))
