"""Server-sent event streams: byte-exact pass-through without buffering,
broken upstreams, client disconnects and back-pressure."""

import hashlib
import select
import socket
import threading
import time

from harness import (CANARY, COMPLETION, SSE_EVENTS, assert_error, assert_recovered, assert_status,
                     build_request, chat_body, check, default_handler, delta_event, sse_event,
                     start_gateway, start_upstream)

STREAM_BODY = chat_body(stream=True)


def open_stream(gw, rcvbuf=None, read_head=True):
    """Send a streaming chat request; returns (client, response head)."""
    c = gw.client(rcvbuf=rcvbuf)
    c.send(build_request("POST", "/v1/chat/completions", STREAM_BODY))
    if not read_head:
        return c, None
    resp = c.read_head()
    c.start_body(resp, "POST")
    return c, resp


def assert_sse_head(resp):
    assert_status(resp, 200)
    ctype = resp.header("content-type", "")
    check(ctype.split(";")[0].strip() == "text/event-stream", "Content-Type %r" % ctype)
    check((resp.header("transfer-encoding") or "").lower() == "chunked",
          "stream not chunked: Transfer-Encoding %r, Content-Length %r"
          % (resp.header("transfer-encoding"), resp.header("content-length")))
    check(resp.header("content-length") is None, "stream with a Content-Length")


def assert_broken(c, resp, timeout=5.0):
    """The client sees the stream cut: EOF without the terminating chunk."""
    c.read_body(resp, timeout=timeout)
    check(c.eof, "stream neither finished nor cut within %.1fs" % timeout)
    check(not resp.complete, "the gateway ended a broken stream with a terminating chunk")
    check(b"[DONE]" not in resp.body, "the gateway invented a [DONE]")


# --- pass-through ----------------------------------------------------------

EVENTS = [
    b": keep-alive comment\n\n",
    delta_event(0, "H\u00e9l"),
    b"event: custom\ndata: line1\ndata: line2\n\n",
    delta_event(1, "lo \U0001F600"),
    b"id: 7\nretry: 1000\ndata: {}\n\n",
    sse_event("[DONE]"),
]


def test_stream_is_passed_through_byte_exact():
    payload = b"".join(EVENTS)

    def split_stream(ex):
        ex.start_sse()
        for i in range(0, len(payload), 7):  # chunks that cut events and characters
            ex.chunk(payload[i:i + 7])
            time.sleep(0.002)
        ex.end_chunks()
    up = start_upstream(split_stream)
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    c.read_body(resp, timeout=5)
    check(resp.complete, "stream did not end with a terminating chunk")
    check(bytes(resp.body) == payload, "stream bytes differ:\n sent %r\n got  %r"
          % (payload, bytes(resp.body)))
    check(up.only_request().json() == STREAM_BODY, "upstream body differs")
    assert_recovered(gw, up)


def test_stream_from_close_delimited_upstream():
    """An upstream that frames the stream by closing the connection."""
    def close_delimited(ex):
        ex.send(ex.head(200, [("Content-Type", "text/event-stream"), ("Connection", "close")]))
        for event in SSE_EVENTS:
            ex.send(event)
            time.sleep(0.01)
        ex.close()
    gw = start_gateway(start_upstream(close_delimited))
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    c.read_body(resp, timeout=5)
    check(bytes(resp.body) == b"".join(SSE_EVENTS), "stream bytes differ: %r" % bytes(resp.body))


def test_json_answer_to_a_stream_request_is_relayed():
    """Some backends ignore "stream": true and answer plain JSON."""
    up = start_upstream(lambda ex: ex.json(200, COMPLETION))
    gw = start_gateway(up)
    resp = gw.chat(STREAM_BODY)
    assert_status(resp, 200)
    check(resp.header("content-type", "").startswith("application/json"),
          "Content-Type %r" % resp.header("content-type"))
    check(resp.json() == COMPLETION, "answer changed: %r" % bytes(resp.body[:300]))


def test_stream_keepalive_connection_reusable():
    gw = start_gateway(start_upstream())
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    c.read_body(resp)
    check(resp.complete and bytes(resp.body) == b"".join(SSE_EVENTS), "first stream broken")
    c.send(build_request("GET", "/healthz"))
    assert_status(c.read_response(), 200)


def test_stream_is_not_buffered():
    """Event 2 is sent only after the client has received event 1."""
    go = threading.Event()
    first, second = delta_event(0, "first"), delta_event(1, "second")

    def gated(ex):
        ex.start_sse()
        ex.chunk(first)
        ex.wait(go, timeout=6.0)
        ex.chunk(second)
        ex.chunk(sse_event("[DONE]"))
        ex.end_chunks()
    gw = start_gateway(start_upstream(gated))
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    c.read_body(resp, until=first, timeout=3.0)
    check(first in resp.body, "event 1 not delivered while the upstream waits "
          "(the gateway buffers the stream); got %r" % bytes(resp.body))
    check(second not in resp.body, "test bug: event 2 before the signal")
    go.set()
    c.read_body(resp, timeout=5.0)
    check(resp.complete, "stream did not complete")
    check(bytes(resp.body) == first + second + sse_event("[DONE]"), "stream bytes differ")


def test_streams_run_concurrently():
    """Stream A's upstream waits until stream B's request arrives: a gateway
    that handled one stream at a time would never let B through."""
    b_arrived = threading.Event()

    def handler(ex):
        tag = ex.req.json()["user"]
        ex.start_sse()
        ex.chunk(delta_event(0, tag))
        if tag == "A":
            ex.wait(b_arrived, timeout=6.0)
        else:
            b_arrived.set()
        ex.chunk(sse_event("[DONE]"))
        ex.end_chunks()
    gw = start_gateway(start_upstream(handler))
    streams = []
    for tag in ("A", "B"):
        c = gw.client()
        c.send(build_request("POST", "/v1/chat/completions", chat_body(stream=True, user=tag)))
        streams.append((tag, c))
    for tag, c in streams:
        resp = c.read_response(timeout=8, method="POST")
        check(resp.complete, "stream %s did not complete" % tag)
        check(bytes(resp.body) == delta_event(0, tag) + sse_event("[DONE]"),
              "stream %s bytes differ: %r" % (tag, bytes(resp.body)))
    check(b_arrived.is_set(), "B never reached the upstream")


def test_stream_upstream_error_status_is_passed_as_json():
    body = {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}
    up = start_upstream(lambda ex: ex.json(429, body, [("Retry-After", "3")]))
    gw = start_gateway(up)
    resp = gw.chat(STREAM_BODY)
    assert_status(resp, 429)
    check(resp.json() == body, "body changed: %r" % bytes(resp.body[:300]))
    check(resp.header("retry-after") == "3", "Retry-After %r" % resp.header("retry-after"))


def test_stream_no_first_byte_is_504():
    up = start_upstream(lambda ex: ex.wait(timeout=5.0))
    gw = start_gateway(up, upstream_cfg={"first_byte_timeout_ms": 500})
    gw.mark_fds()
    assert_error(gw.chat(STREAM_BODY, timeout=8), 504)
    time.sleep(0.5)
    check(len(up.requests) == 1, "upstream saw the POST %d times" % len(up.requests))
    assert_recovered(gw, up)


# --- broken streams --------------------------------------------------------


def test_stream_upstream_closing_mid_stream_cuts_client():
    def close_early(ex):
        ex.start_sse()
        ex.chunk(SSE_EVENTS[0])
        ex.chunk(SSE_EVENTS[1])
        time.sleep(0.1)
        ex.close()
    up = start_upstream(close_early)
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    assert_broken(c, resp)
    check(bytes(resp.body) == SSE_EVENTS[0] + SSE_EVENTS[1],
          "events before the break differ: %r" % bytes(resp.body))
    assert_recovered(gw, up)


def test_stream_upstream_reset_mid_stream_cuts_client():
    def reset(ex):
        ex.start_sse()
        ex.chunk(SSE_EVENTS[0])
        time.sleep(0.1)
        ex.reset()
    up = start_upstream(reset)
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    assert_broken(c, resp)
    assert_recovered(gw, up)


def test_stream_upstream_stall_cuts_client_at_idle_timeout():
    def stall(ex):
        ex.start_sse()
        ex.chunk(SSE_EVENTS[0])
        ex.wait(timeout=8.0)
    up = start_upstream(stall)
    gw = start_gateway(up, upstream_cfg={"idle_timeout_ms": 1000})
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    c.read_body(resp, until=SSE_EVENTS[0], timeout=3.0)
    t0 = time.monotonic()
    assert_broken(c, resp, timeout=5.0)
    elapsed = time.monotonic() - t0
    check(0.4 <= elapsed <= 4.0, "idle timeout of 1s cut the stream after %.1fs" % elapsed)
    assert_recovered(gw, up)


def test_stream_echoing_the_key_across_chunks_is_cut():
    """The key split over two writes is still caught: the stream is cut
    before the second half reaches the client."""
    half = len(CANARY) // 2

    def echo(ex):
        ex.start_sse()
        ex.chunk(SSE_EVENTS[0])
        time.sleep(0.1)
        ex.chunk(b"data: {\"leak\": \"" + CANARY[:half].encode())
        time.sleep(0.1)
        ex.chunk(CANARY[half:].encode() + b"\"}\n\n")
        ex.end_chunks()
    up = start_upstream(echo)
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    assert_broken(c, resp)
    check(CANARY.encode() not in bytes(resp.body), "the key reached the client")
    assert_recovered(gw, up)


# --- client disconnects ----------------------------------------------------


def watch_for_abort(closed, keep_sending):
    """Upstream handler: one event, then (optionally pinging every 100 ms)
    wait up to 6 s for the gateway to close the upstream connection."""
    def handler(ex):
        ex.start_sse()
        ex.chunk(SSE_EVENTS[0])
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and not ex.up.stopping.is_set():
            if ex.peer_closed(0.1) or (keep_sending and not ex.chunk(b": ping\n\n")):
                closed.set()
                return
        ex.close()
    return handler


def client_disconnect(keep_sending):
    closed = threading.Event()
    up = start_upstream()
    up.script(watch_for_abort(closed, keep_sending))
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    c.read_body(resp, until=SSE_EVENTS[0], timeout=3.0)
    check(SSE_EVENTS[0] in resp.body, "first event not received")
    c.close()
    t0 = time.monotonic()
    check(closed.wait(3.0), "upstream transfer still open %.1fs after the client left"
          % (time.monotonic() - t0))
    assert_recovered(gw, up)


def test_client_disconnect_aborts_upstream_while_tokens_flow():
    client_disconnect(keep_sending=True)


def test_client_disconnect_aborts_silent_upstream():
    """No upstream traffic after the client leaves: the gateway must notice
    the client's EOF itself, not only when a write fails."""
    client_disconnect(keep_sending=False)


def test_client_reset_mid_stream():
    closed = threading.Event()
    up = start_upstream()
    up.script(watch_for_abort(closed, keep_sending=True))
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    c.read_body(resp, until=SSE_EVENTS[0], timeout=3.0)
    c.abort()
    check(closed.wait(3.0), "upstream transfer still open after the client reset")
    assert_recovered(gw, up)


# --- back-pressure ---------------------------------------------------------

BLOCK = b"".join(delta_event(i, "tok%05d " % i + "x" * 900) for i in range(1000))  # ~1 MB


class Pusher:
    """Upstream handler pushing `blocks` x ~1 MB of SSE as fast as the
    socket takes it; counts bytes and hashes what it sent."""

    def __init__(self, blocks):
        self.blocks = blocks
        self.sent = 0  # bytes on the wire, chunk framing included
        self.payload_sent = 0  # SSE bytes fully sent
        self.outcome = None
        self.finished = threading.Event()
        self.digest = hashlib.sha256()

    def payload(self):
        for i in range(self.blocks):
            yield sse_event({"block": i}) + BLOCK

    def __call__(self, ex):
        ex.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        ex.start_sse()
        try:
            for data in self.payload():
                frame = b"%x\r\n" % len(data) + data + b"\r\n"
                view = memoryview(frame)
                while view:
                    if ex.up.stopping.is_set():
                        self.outcome = "stopped"
                        return
                    _, w, _ = select.select([], [ex.sock], [], 0.2)
                    if not w:
                        continue
                    n = ex.sock.send(view)
                    view = view[n:]
                    self.sent += n
                self.digest.update(data)
                self.payload_sent += len(data)
            ex.sock.sendall(b"0\r\n\r\n")
            self.outcome = "done"
        except OSError:
            self.outcome = "closed"
            ex.closed = True
        finally:
            self.finished.set()


def test_slow_reader_backpressure_bounds_memory():
    pusher = Pusher(64)  # ~64 MB
    up = start_upstream()
    up.script(default_handler, pusher)
    gw = start_gateway(up)
    # warm up (first-use allocations are not what this test measures)
    warm, resp = open_stream(gw)
    warm.read_body(resp)
    check(resp.complete, "warm-up stream failed")
    rss0 = gw.rss_kb()
    c, _ = open_stream(gw, rcvbuf=64 * 1024, read_head=False)
    time.sleep(3.0)  # the client reads nothing
    rss1 = gw.rss_kb()
    sent_while_stalled = pusher.sent
    check(not pusher.finished.is_set() and sent_while_stalled < 32 << 20,
          "the upstream pushed %d bytes while the client read nothing: no back-pressure"
          % sent_while_stalled)
    check(rss1 - rss0 < 32 * 1024, "cairn RSS grew by %d KB while the client stalled "
          "(upstream had sent %d bytes)" % (rss1 - rss0, sent_while_stalled))
    resp = c.read_head()
    assert_sse_head(resp)
    c.start_body(resp, "POST")
    c.read_body(resp, timeout=20.0)
    check(resp.complete, "stream incomplete after %d bytes" % len(resp.body))
    check(pusher.outcome == "done", "upstream outcome %r" % pusher.outcome)
    check(len(resp.body) == pusher.payload_sent,
          "client got %d bytes, upstream sent %d" % (len(resp.body), pusher.payload_sent))
    check(hashlib.sha256(resp.body).hexdigest() == pusher.digest.hexdigest(),
          "stream bytes corrupted")


def test_stalled_client_is_cut_after_send_idle():
    pusher = Pusher(64)
    up = start_upstream()
    up.script(pusher)
    gw = start_gateway(up, timeouts={"send_idle_ms": 1000})
    gw.mark_fds()
    c, _ = open_stream(gw, rcvbuf=64 * 1024, read_head=False)
    t0 = time.monotonic()
    check(pusher.finished.wait(8.0), "upstream still connected %.0fs into a client stall "
          "with send_idle_ms=1000 (sent %d bytes)" % (time.monotonic() - t0, pusher.sent))
    check(pusher.outcome == "closed", "upstream outcome %r (expected the gateway to close it)"
          % pusher.outcome)
    try:
        resp = c.read_head(timeout=10.0)
    except AssertionError:
        check(c.reset, "client connection neither answered nor reset")  # a hard cut is fine
    else:
        c.start_body(resp, "POST")
        assert_broken(c, resp, timeout=10.0)
    assert_recovered(gw, up)


def test_healthz_answers_while_a_stream_is_stalled():
    pusher = Pusher(64)
    up = start_upstream()
    up.script(pusher)
    gw = start_gateway(up)
    gw.mark_fds()
    c, _ = open_stream(gw, rcvbuf=64 * 1024, read_head=False)
    time.sleep(0.5)
    for _ in range(3):
        assert_status(gw.healthz(), 200)
    c.close()
    check(pusher.finished.wait(5.0), "upstream not released after the stalled client left")
    assert_recovered(gw, up)


def test_stream_chat_body_forwarded_with_stream_flag():
    up = start_upstream()
    gw = start_gateway(up)
    resp = gw.chat(STREAM_BODY)
    assert_status(resp, 200)
    check(up.only_request().json() == STREAM_BODY, "upstream body differs")


def test_stream_to_http10_client_is_close_delimited():
    gw = start_gateway(start_upstream())
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", STREAM_BODY, version="1.0"))
    resp = c.read_response(method="POST")
    assert_status(resp, 200)
    check(resp.header("transfer-encoding") is None, "chunked framing sent to an HTTP/1.0 client")
    check(bytes(resp.body) == b"".join(SSE_EVENTS), "stream bytes differ: %r" % bytes(resp.body))
