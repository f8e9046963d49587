"""Fault injection: each test injects one kind of fault (some in several
variants), and checks two things each time: exactly what the client sees
(a status, an OpenAI-shaped error, or a stream cut without its
terminating chunk), and that the gateway is healthy afterwards — a normal
request succeeds and no worker descriptor leaked (harness.assert_recovered:
each worker's open descriptors, libcurl's idle pool aside, come back to
what they were before the fault).

Faults already covered elsewhere are not repeated here (test_upstream.py,
test_stream.py, test_annotator_model.py and test_shadow.py, which assert
recovery too). Here: malformed and oversized SSE from the upstream,
streams that end inside an event, wrong Content-Length framing, resets on
the paths that hold an answer back (validation, retries, streams held in
"buffer" mode), the annotator model and the shadow judge failing in the
ways a connection can, unresolvable names for both, descriptors
exhausted, and logs on a full disk or in a directory that cannot be
written."""

import hashlib
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import (COMPLETION, SSE_EVENTS, admin_request, assert_error, assert_recovered,
                     assert_status, build_request, chat_body, check, delta_event, metrics,
                     refused_url, sse_event, start_gateway, start_upstream, wait_for,
                     wait_metric)
from test_annotator_model import check_fail_open
from test_shadow import JUDGE_MODEL, LABELS, backend, shadow_gateway
from test_stream import STREAM_BODY, assert_broken, assert_sse_head, open_stream

SSE_LIMIT = 1024 * 1024  # CAIRN_SSE_MAX_EVENT (include/sse.h): one event a splitter holds
PINNED = {"X-Cairn-Markers": "length_tokens=5"}
# Validation on, for the pinned marker: streams are observed (split into
# events), whole answers and "buffer" streams are held and checked.
OBSERVE = {"validation": {"markers": ["length_tokens"]}}
BUFFER = {"validation": {"markers": ["length_tokens"], "stream": "buffer"}}


def sse_stream(*pieces, end=True):
    """Upstream handler: a chunked SSE answer of `pieces` (bytes, each its
    own chunk), then the terminating chunk, or (end=False) a close."""
    def handler(ex):
        ex.start_sse()
        for p in pieces:
            ex.chunk(p)
            time.sleep(0.005)
        if end:
            ex.end_chunks()
        else:
            time.sleep(0.05)
            ex.close()
    return handler


def stream_once(gw, headers=None, timeout=8.0):
    """A streamed chat request on a fresh connection; returns (client,
    response) with as much of the body as came before the end or a cut."""
    c = gw.client(timeout=timeout)
    c.send(build_request("POST", "/v1/chat/completions", STREAM_BODY, headers=headers))
    resp = c.read_head(timeout=timeout)
    c.start_body(resp, "POST")
    c.read_body(resp, timeout=timeout)
    return c, resp


def stderr_lines(gw, needle):
    return [line for line in gw.stderr_text().splitlines() if needle in line]


# --- malformed SSE ------------------------------------------------------------------------

MALFORMED = [
    ("garbage lines", b"\x00\xff not an event \x01\nmore garbage\n\n"),
    ("no data field", b'{"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'),
    ("invalid JSON in data", b'data: {"choices": [{"delta": {"content": "x"\n\n'),
    ("data over two lines", b'data: {"choices":\ndata: []}\n\n'),
    ("unknown fields", b"event: weird\nfoo: bar\nid\n\n"),
]


def test_malformed_sse_is_relayed_as_sent():
    """Garbage lines, an event without a data field, invalid JSON in data,
    a chunk split over two data lines, unknown fields — first in the
    stream, where the unwrapper still reads events: the stream is relayed
    byte for byte and ends when the upstream's does; with validation
    (observe mode, which reads every event) it is relayed too, the report
    comes before the upstream's [DONE], and nothing is invented."""
    tail = delta_event(0, "Hi") + sse_event("[DONE]")
    up = start_upstream()
    up.script(*[sse_stream(bad, tail) for _, bad in MALFORMED])
    gw = start_gateway(up)
    gw.mark_fds()
    for name, bad in MALFORMED:
        _, resp = stream_once(gw)
        assert_sse_head(resp)
        check(resp.complete, "%s: the stream did not end" % name)
        check(bytes(resp.body) == bad + tail, "%s: bytes changed: %r" % (name, bytes(resp.body)))
    assert_recovered(gw, up)
    gw.stop()

    up = start_upstream()
    up.script(*[sse_stream(bad, tail) for _, bad in MALFORMED])
    gw = start_gateway(up, policy=OBSERVE)
    gw.mark_fds()
    for name, bad in MALFORMED:
        _, resp = stream_once(gw, headers=PINNED)
        assert_sse_head(resp)
        body = bytes(resp.body)
        check(resp.complete, "%s (observe): the stream did not end" % name)
        check(body.startswith(bad + delta_event(0, "Hi")) and body.endswith(sse_event("[DONE]")),
              "%s (observe): bytes changed: %r" % (name, body))
        check(body.count(b"[DONE]") == 1 and 0 <= body.find(b": cairn {") < body.find(b"[DONE]"),
              "%s (observe): no single report before [DONE]: %r" % (name, body))
    assert_recovered(gw, up)


def test_sse_event_without_terminator_then_close_cuts_the_stream():
    """An event that never ends (no empty line), then the upstream closes
    without the terminating chunk: the client's stream is cut — no
    terminating chunk, no [DONE] — with and without validation."""
    partial = b'data: {"choices":[{"index":0,"delta":{"content":"never ends'
    for policy, headers in ((None, None), (OBSERVE, PINNED)):
        up = start_upstream()
        up.script(sse_stream(SSE_EVENTS[0], partial, end=False))
        gw = start_gateway(up, policy=policy or {})
        gw.mark_fds()
        c, resp = stream_once(gw, headers=headers)
        assert_sse_head(resp)
        check(c.eof and not resp.complete, "a cut stream ended with a terminating chunk "
              "(%s): %r" % ("observe" if policy else "plain", bytes(resp.body)))
        check(b"[DONE]" not in resp.body, "the gateway invented a [DONE]")
        check(bytes(resp.body).startswith(SSE_EVENTS[0]), "the event before the cut was lost")
        assert_recovered(gw, up)
        gw.stop()


def close_delimited(*pieces):
    """Upstream handler: an SSE answer framed by closing the connection."""
    def handler(ex):
        ex.send(ex.head(200, [("Content-Type", "text/event-stream"), ("Connection", "close")]))
        for p in pieces:
            ex.send(p)
            time.sleep(0.005)
        time.sleep(0.05)
        ex.close()
    return handler


def test_sse_stream_ending_inside_an_event_is_cut():
    """The upstream's framing ends the answer — it closes a close-delimited
    stream, or sends the terminating chunk — but inside an event (no empty
    line after it): an upstream that died mid-answer. The client's stream
    is cut, not completed (an SSE client would drop that last event
    without a word), and under validation no report is made on the
    truncated text. A stream that ends between events is complete."""
    partial = b'data: {"choices":[{"index":0,"delta":{"content":"cut off'
    cases = [("close-delimited", close_delimited), ("chunked", sse_stream)]
    for (name, frame), (policy, headers) in [(c, m) for c in cases
                                             for m in ((None, None), (OBSERVE, PINNED))]:
        name += " (observe)" if policy else ""
        up = start_upstream()
        up.script(frame(SSE_EVENTS[0], partial), frame(SSE_EVENTS[0], SSE_EVENTS[1] + b"\r\n"))
        gw = start_gateway(up, policy=policy or {})
        gw.mark_fds()
        c, resp = stream_once(gw, headers=headers)
        assert_sse_head(resp)
        check(c.eof and not resp.complete, "%s: a stream that ended inside an event was "
              "completed: %r" % (name, bytes(resp.body)))
        check(bytes(resp.body).startswith(SSE_EVENTS[0]) and b": cairn" not in resp.body,
              "%s: %r" % (name, bytes(resp.body)))
        check(wait_for(lambda: stderr_lines(gw, "ended inside an event"), 3.0),
              "%s: no message on stderr" % name)
        # The same stream ending between events (its last one with an
        # extra CRLF) is complete.
        c, resp = stream_once(gw, headers=headers)
        check(resp.complete and bytes(resp.body).startswith(SSE_EVENTS[0]),
              "%s: a stream ending between events was not completed: %r"
              % (name, bytes(resp.body)))
        assert_recovered(gw, up)
        gw.stop()


# --- oversized SSE events -----------------------------------------------------------------


def big_event(size, tag=b"x"):
    """One SSE event of about `size` bytes: a chunk whose content is `tag`s."""
    head = b'data: {"choices":[{"index":0,"delta":{"content":"'
    return head + tag * (size - len(head) - 8) + b'"}}]}\n\n'


def pieces(data, n=65536):
    return [data[i:i + n] for i in range(0, len(data), n)]


def test_sse_event_over_the_limit_cuts_the_stream_while_events_are_read():
    """An event over 1 MiB (CAIRN_SSE_MAX_EVENT) where cairn reads events —
    the stream's first event, which the unwrapper holds, or any event under
    validation — is never buffered whole: the stream is cut, no [DONE]."""
    huge = big_event(SSE_LIMIT + SSE_LIMIT // 2)
    cases = [("first event, unwrapper", None, None, sse_stream(*pieces(huge), SSE_EVENTS[2])),
             ("later event, observe", OBSERVE, PINNED,
              sse_stream(SSE_EVENTS[0], *pieces(huge), SSE_EVENTS[2]))]
    for name, policy, headers, handler in cases:
        up = start_upstream()
        up.script(handler)
        gw = start_gateway(up, policy=policy or {})
        gw.mark_fds()
        c, resp = stream_once(gw, headers=headers)
        assert_sse_head(resp)
        check(c.eof and not resp.complete, "%s: the stream was not cut" % name)
        check(b"[DONE]" not in resp.body, "%s: [DONE] after an oversized event" % name)
        check(len(resp.body) < SSE_LIMIT, "%s: %d bytes of the oversized event relayed"
              % (name, len(resp.body)))
        check(wait_for(lambda: stderr_lines(gw, "stream cut"), 3.0),
              "%s: no 'stream cut' message on stderr" % name)
        assert_recovered(gw, up)
        gw.stop()


def test_10mb_sse_event_passes_through_unbuffered_or_cuts_when_read():
    """A single 10 MB event after an ordinary first one: with nothing
    reading events any more it is relayed byte for byte (not held: memory
    does not grow by its size); under validation (observe) the splitter
    would have to hold it, so the stream is cut at the limit."""
    huge = big_event(10 * 1024 * 1024, b"y")
    payload = SSE_EVENTS[0] + huge + SSE_EVENTS[2]
    up = start_upstream()
    up.script(sse_stream(*pieces(payload, 256 * 1024)))
    gw = start_gateway(up)
    gw.mark_fds()
    rss0 = gw.rss_kb()
    _, resp = stream_once(gw, timeout=20.0)
    grew = gw.rss_kb() - rss0
    check(resp.complete, "10 MB event: stream incomplete after %d bytes" % len(resp.body))
    check(hashlib.sha256(resp.body).digest() == hashlib.sha256(payload).digest(),
          "10 MB event: bytes changed (%d of %d)" % (len(resp.body), len(payload)))
    if not asan_build():  # ASan's quarantine keeps freed memory resident
        check(grew < 8 * 1024, "RSS grew by %d KB relaying a 10 MB event" % grew)
    assert_recovered(gw, up)
    gw.stop()

    up = start_upstream()
    up.script(sse_stream(*pieces(payload, 256 * 1024)))
    gw = start_gateway(up, policy=OBSERVE)
    gw.mark_fds()
    c, resp = stream_once(gw, headers=PINNED, timeout=20.0)
    check(c.eof and not resp.complete and b"[DONE]" not in resp.body,
          "observe: a 10 MB event did not cut the stream (%d bytes)" % len(resp.body))
    check(bytes(resp.body).startswith(SSE_EVENTS[0]) and len(resp.body) < SSE_LIMIT,
          "observe: %d bytes relayed" % len(resp.body))
    assert_recovered(gw, up)


_ASAN = {}


def asan_build():
    if "v" not in _ASAN:
        with open(harness.binary(), "rb") as f:
            _ASAN["v"] = b"__asan_init" in f.read()
    return _ASAN["v"]


# --- wrong Content-Length -----------------------------------------------------------------

SMUGGLED = dict(COMPLETION, id="chatcmpl-smuggled",
                choices=[{"index": 0, "message": {"role": "assistant", "content": "SMUGGLED"},
                          "finish_reason": "stop"}])


def smuggled_response():
    body = json.dumps(SMUGGLED).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)) + body


def test_content_length_shorter_than_the_body_does_not_poison_the_next_request():
    """The upstream declares fewer bytes than it sends, and what follows is
    a whole second HTTP response. The client gets exactly the declared
    body; the extra bytes must never be read as the answer to the next
    request on that upstream connection (a response desync would hand one
    user another's answer)."""
    body = json.dumps(COMPLETION).encode()

    def short_length(ex):
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))]) + body + smuggled_response())
    up = start_upstream()
    up.script(short_length)
    gw = start_gateway(up)
    gw.mark_fds()
    resp = gw.chat(chat_body())
    assert_status(resp, 200)
    check(resp.json() == COMPLETION, "answer %r" % bytes(resp.body[:300]))
    for i in range(3):
        resp = gw.chat(chat_body(user="next-%d" % i))
        assert_status(resp, 200)
        check(b"SMUGGLED" not in resp.body,
              "request %d got the bytes left over from the previous answer" % i)
        check(resp.json()["id"] == COMPLETION["id"], "answer %r" % bytes(resp.body[:300]))
    check(len(up.requests) == 4, "upstream saw %d requests for 4" % len(up.requests))
    assert_recovered(gw, up)


def test_stream_content_length_shorter_than_the_body():
    """The same on a stream: the client gets the declared bytes and the
    end; the rest (another stream's events) goes to nobody."""
    first = SSE_EVENTS[0]
    rest = delta_event(9, "LEFTOVER") + sse_event("[DONE]")

    def short_length(ex):
        ex.send(ex.head(200, [("Content-Type", "text/event-stream"),
                              ("Content-Length", str(len(first)))]) + first + rest)
    up = start_upstream()
    up.script(short_length)
    gw = start_gateway(up)
    gw.mark_fds()
    _, resp = stream_once(gw)
    check(resp.complete and bytes(resp.body) == first,
          "stream %r (complete %s)" % (bytes(resp.body), resp.complete))
    _, resp = stream_once(gw)
    check(resp.complete and b"LEFTOVER" not in resp.body and
          bytes(resp.body) == b"".join(SSE_EVENTS), "next stream %r" % bytes(resp.body))
    assert_recovered(gw, up)


def test_stream_content_length_longer_than_the_body_then_close_is_cut():
    """A stream that declares more bytes than it sends, then closes: the
    client's stream is cut, not completed."""
    payload = SSE_EVENTS[0] + SSE_EVENTS[1]

    def long_length(ex):
        ex.send(ex.head(200, [("Content-Type", "text/event-stream"),
                              ("Content-Length", str(len(payload) + 1000))]) + payload)
        time.sleep(0.1)
        ex.close()
    up = start_upstream()
    up.script(long_length)
    gw = start_gateway(up)
    gw.mark_fds()
    c, resp = open_stream(gw)
    assert_sse_head(resp)
    assert_broken(c, resp)
    check(bytes(resp.body) == payload, "bytes before the cut: %r" % bytes(resp.body))
    assert_recovered(gw, up)


# --- resets where the answer is held ------------------------------------------------------

WORDY = dict(COMPLETION, choices=[{"index": 0, "message": {
    "role": "assistant", "content": " ".join(["word"] * 30)}, "finish_reason": "stop"}])


def reset_mid_body(ex):
    """Head and half of a JSON body, then an RST."""
    body = json.dumps(COMPLETION).encode()
    ex.send(ex.head(200, [("Content-Type", "application/json"),
                          ("Content-Length", str(len(body)))]) + body[:len(body) // 2])
    time.sleep(0.05)
    ex.reset()


def test_reset_mid_body_while_validating_is_502():
    """Validation holds the whole answer: a reset in its middle is a 502
    (nothing was sent yet), for a plain request and for a stream held in
    "buffer" mode (which is asked for whole, so no SSE head went out)."""
    for name, policy, body in (("plain", OBSERVE, chat_body()),
                               ("buffer stream", BUFFER, STREAM_BODY)):
        up = start_upstream()
        up.script(reset_mid_body)
        gw = start_gateway(up, policy=policy)
        gw.mark_fds()
        resp = gw.chat(body, headers=PINNED, timeout=8)
        err = assert_error(resp, 502)
        check(err.get("code") == "upstream_error", "%s: code %r" % (name, err.get("code")))
        check(len(up.requests) == 1, "%s: upstream saw %d requests" % (name, len(up.requests)))
        assert_recovered(gw, up)
        gw.stop()


def test_reset_mid_body_of_a_retry_answers_with_the_best_so_far():
    """The first answer breaks its marker (30 words, at most 5 asked), the
    retry's answer is reset halfway: the client gets the first answer,
    200, marked as one attempt with its violation — running out of budget
    is never an error — for a plain request and a "buffer" stream."""
    for name, policy, body in (("plain", OBSERVE, chat_body()),
                               ("buffer stream", BUFFER, STREAM_BODY)):
        policy = harness.deep_merge(policy, {"validation": {"retry": {"attempts": 2}}})
        up = start_upstream()
        up.script(lambda ex: ex.json(200, WORDY), reset_mid_body)
        gw = start_gateway(up, policy=policy)
        gw.mark_fds()
        resp = gw.chat(body, headers=PINNED, timeout=8)
        assert_status(resp, 200)
        check(resp.header("x-cairn-attempts") == "1" and
              resp.header("x-cairn-violations") == "length_tokens",
              "%s: attempts %r, violations %r" % (name, resp.header("x-cairn-attempts"),
                                                  resp.header("x-cairn-violations")))
        check(b"word word" in resp.body, "%s: not the first answer: %r"
              % (name, bytes(resp.body[:300])))
        check(len(up.requests) == 2, "%s: upstream saw %d requests" % (name, len(up.requests)))
        assert_recovered(gw, up)
        gw.stop()


# --- the annotator model ------------------------------------------------------------------
# check_fail_open (test_annotator_model.py): the client gets the main
# upstream's 200 in time, with the rules' markers; the access record and
# cairn_annotations_total name the outcome; then assert_recovered.


def test_annotator_reset_before_answering_fails_open():
    ann = start_upstream(lambda ex: ex.reset())
    check_fail_open(ann.base_url, "error")
    check(len(ann.requests) >= 1, "the annotator was never asked")


def test_annotator_reset_mid_body_fails_open():
    ann = start_upstream(reset_mid_body)
    check_fail_open(ann.base_url, "error")


def test_annotator_hanging_mid_body_fails_open_at_its_deadline():
    """Head and part of the body, then silence: the request goes on at the
    annotator's deadline (300 ms), not at the upstream's idle timeout."""
    def hang_mid_body(ex):
        ex.send(ex.head(200, [("Content-Type", "application/json"),
                              ("Content-Length", "5000")]) + b'{"choices": [')
        ex.wait(timeout=8.0)
    ann = start_upstream(hang_mid_body)
    gw, took = check_fail_open(ann.base_url, "timeout", annotator={"deadline_ms": 300},
                               max_seconds=2.0)
    check(took >= 0.28, "answered after %.3fs, before the 300 ms deadline" % took)


def test_annotator_unresolvable_name_fails_open():
    """A name that does not resolve (.invalid, RFC 6761): outcome error."""
    check_fail_open("http://annotator.invalid/v1", "error", max_seconds=3.0)


# --- the shadow judge ---------------------------------------------------------------------


class Url:
    def __init__(self, base_url):
        self.base_url = base_url


def judge_hang_mid_body(ex):
    ex.send(ex.head(200, [("Content-Type", "application/json"),
                          ("Content-Length", "5000")]) + b'{"choices": [')
    ex.wait(timeout=8.0)


def judge_oversized(ex):
    """200 with a body far over the judge's 64 KiB cap."""
    total = 4 * 1024 * 1024
    if not ex.send(ex.head(200, [("Content-Type", "application/json"),
                                 ("Content-Length", str(total))]) + b'{"x":"'):
        return ex.close()
    sent = 6
    while sent < total and ex.send(b"z" * 65536):
        sent += 65536
    ex.close()


JUDGE_FAULTS = [
    ("refused", lambda: Url(refused_url())),
    ("unresolvable", lambda: Url("http://judge.invalid/v1")),
    ("reset", lambda: start_upstream(lambda ex: ex.reset())),
    ("reset mid-body", lambda: start_upstream(reset_mid_body)),
    ("hang mid-body", lambda: start_upstream(judge_hang_mid_body)),
    ("malformed JSON", lambda: start_upstream(lambda ex: ex.respond(200, b'{"choices": [}'))),
    ("oversized", lambda: start_upstream(judge_oversized)),
]


def test_judge_faults_record_nothing_and_leave_the_user_alone():
    """For each way the judge can fail: the user's answer is the served
    arm's 200 at once (the judge runs after it), the shadow counts one
    failure within the judge's deadline, stderr says why once per
    judgement, nothing is judged, and the gateway is healthy with no
    descriptor left open."""
    for name, make in JUDGE_FAULTS:
        up, jd = start_upstream(backend("served answer", "other answer")), make()
        gw = shadow_gateway(up, jd, judge={"upstream": "judge", "model": JUDGE_MODEL,
                                           "deadline_ms": 400})
        gw.mark_fds()
        t0 = time.monotonic()
        resp = gw.chat(chat_body(), timeout=5)
        took = time.monotonic() - t0
        assert_status(resp, 200)
        check(resp.json()["choices"][0]["message"]["content"] == "served answer",
              "%s: answer %r" % (name, bytes(resp.body[:200])))
        check(took < 3.0, "%s: the user waited %.2fs for a failing judge" % (name, took))
        wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="failed"), 1, timeout=5.0)
        check(time.monotonic() - t0 < 0.4 + 2.5, "%s: the failure was counted %.1fs after the "
              "request, past the judge's 400 ms deadline" % (name, time.monotonic() - t0))
        check(metrics(gw).series("cairn_judgements_total") == [],
              "%s: a judgement was counted" % name)
        found = wait_for(lambda: stderr_lines(gw, "shadow judging in experiment ab: judge:"), 3.0)
        check(len(found) == 1, "%s: %d failure messages: %r" % (name, len(found), found))
        assert_recovered(gw, up)
        check(gw.stop() == 0, "%s: the gateway did not stop cleanly" % name)


# --- descriptors exhausted ----------------------------------------------------------------


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_descriptors_exhausted_refuse_quickly_without_spinning():
    """The worker may open only a few more descriptors; 16 clients connect.
    Those past its limit are not left waiting in the backlog: each gets a
    503 at once (the worker gives up a spare descriptor to accept and
    answer them). The worker does not spin (its CPU time over a second
    stays small), says so on stderr without a line per client, keeps
    answering the connections it has (a keep-alive client's /healthz and a
    chat over the pooled upstream connection), and once the extra clients
    leave, serves new connections again and its descriptors come back."""
    up = start_upstream()
    gw = start_gateway(up)
    live = gw.client()
    live.send(build_request("POST", "/v1/chat/completions", chat_body()))
    assert_status(live.read_response(method="POST"), 200)  # leaves a pooled upstream connection
    before = gw.mark_fds()
    check(len(before) == 1, "one worker expected")
    (wpid, nfds), = before.items()
    _, hard = resource.prlimit(wpid, resource.RLIMIT_NOFILE)
    resource.prlimit(wpid, resource.RLIMIT_NOFILE, (nfds + 6, hard))
    fillers = []
    try:
        for _ in range(16):
            s = socket.create_connection(gw.addr, timeout=2)
            fillers.append(s)
        check(wait_for(lambda: stderr_lines(gw, "accept failed"), 3.0),
              "no 'accept failed' message on stderr with the descriptors exhausted")
        refused = 0
        for s in fillers:
            r, _, _ = select.select([s], [], [], 0.5 if refused else 2.0)
            if r and s.recv(4096).startswith(b"HTTP/1.1 503 "):
                refused += 1
        # 6 descriptors to spare: at most 6 clients are taken in (and wait
        # to send their request); every other one has its 503 already.
        check(refused >= 10, "only %d of 16 clients past the limit were answered 503" % refused)
        t0, cpu0 = time.monotonic(), cpu_seconds(wpid)
        said = len(stderr_lines(gw, "accept failed"))
        time.sleep(1.0)
        used = (cpu_seconds(wpid) - cpu0) / (time.monotonic() - t0)
        check(used < 0.1, "the worker used %.0f%% of a CPU while accept() failed (spinning)"
              % (used * 100))
        said = len(stderr_lines(gw, "accept failed")) - said
        check(said <= 4, "%d 'accept failed' messages in one second" % said)
        live.send(build_request("GET", "/healthz"))
        assert_status(live.read_response(), 200)
        live.send(build_request("POST", "/v1/chat/completions", chat_body()))
        assert_status(live.read_response(method="POST"), 200)
    finally:
        for s in fillers:
            s.close()
    # The waiting connections are accepted (and closed: they are gone) and
    # new ones are served; the limit itself stays as it is.
    check(wait_for(lambda: gw.healthz().status == 200, 5.0), "new connections not served")
    live.close()
    resource.prlimit(wpid, resource.RLIMIT_NOFILE, (nfds + 64, hard))
    assert_recovered(gw, up, before)


# --- logs that cannot be written ----------------------------------------------------------


def log_errors(m, log):
    return m.get("cairn_log_write_errors_total", log=log) or 0


def test_logs_on_a_full_disk_are_counted_reported_once_and_resume():
    """Access, content and experiment logs on /dev/full (every write fails
    with ENOSPC): requests are answered as usual and nothing waits, each
    log's failures are counted in /metrics, and stderr says it once per
    log and process — not once per line. A reload to writable files makes
    the logs work again."""
    up = start_upstream()
    logs = {"access": "/dev/full", "content": "/dev/full", "experiment": "/dev/full"}
    experiment = {"name": "ab", "salt": "s1", "arms": {"a": {"weight": 1}, "b": {"weight": 0}}}
    gw = start_gateway(up, log=logs, policy={"log_content": True, "experiment": experiment})
    gw.log_path = None  # /dev/full reads as endless zeros: nothing for the teardown to read
    gw.mark_fds()
    t0 = time.monotonic()
    for i in range(30):
        assert_status(gw.chat(chat_body(user="u%d" % i)), 200)
    took = time.monotonic() - t0
    check(took < 10.0, "30 requests took %.1fs with the logs failing" % took)
    for log in ("access", "content", "experiment"):
        check(wait_for(lambda: log_errors(metrics(gw), log) > 0, 3.0),
              "cairn_log_write_errors_total{log=%r} not counted" % log)
    # Once per process writing the log: the worker, and for the access log
    # the master too (its admin requests have records).
    for log, most in (("access", 2), ("content", 1), ("experiment", 1)):
        needle = "cannot write the %s log" % log
        wait_for(lambda: stderr_lines(gw, needle), 3.0)
        lines = stderr_lines(gw, needle)
        check(1 <= len(lines) <= most, "%d stderr reports for the %s log after 30 requests: %r"
              % (len(lines), log, lines))
    check(all("No space left on device" in l for l in stderr_lines(gw, "cannot write the")),
          "the report does not name the error")

    # The fault clears: a reload to writable files.
    good = {k: harness.ctx().path("%s.log" % k) for k in logs}
    harness.write_config(harness.deep_merge(gw.config, {"log": good}))
    assert_status(admin_request(gw, "POST", "/admin/reload"), 200)
    resp = gw.chat(chat_body(user="after"), headers={"X-Request-Id": "after-the-reload"})
    assert_status(resp, 200)
    check(wait_for(lambda: "after-the-reload" in harness.read_log(good["access"]), 3.0),
          "the access log did not resume after the reload")
    check(wait_for(lambda: "after-the-reload" in harness.read_log(good["content"]), 3.0),
          "the content log did not resume after the reload")
    check(wait_for(lambda: "after-the-reload" in harness.read_log(good["experiment"]), 3.0),
          "the experiment log did not resume after the reload")
    gw.log_path = good["access"]  # for the teardown's checks
    assert_recovered(gw, up)


def make_unwritable(d):
    """Make directory `d` refuse new files, also to root (which ignores
    modes): mode 0555, and the immutable attribute when running as root.
    Returns how to undo it."""
    os.chmod(d, 0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None and \
        subprocess.run(["chattr", "+i", d], capture_output=True).returncode == 0

    def undo():
        if immutable:
            subprocess.run(["chattr", "-i", d], capture_output=True)
        os.chmod(d, 0o755)
    try:
        probe = os.path.join(d, ".probe")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        return undo
    os.close(fd)
    os.unlink(probe)
    undo()
    raise harness.TestFailure("cannot make a directory unwritable here (root without chattr)")


def test_log_directory_unwritable_at_reload_keeps_the_old_log():
    """logrotate moved the access log away, and the directory cannot be
    written when the SIGHUP comes: the reload is refused (said once on
    stderr, counted in /metrics), requests are still answered and logged
    to the file still open, nothing blocks; once the directory is
    writable again, a SIGHUP creates the new log and logging goes on there."""
    logdir = harness.ctx().path("logs")
    os.mkdir(logdir)
    access = os.path.join(logdir, "access.log")
    up = start_upstream()
    gw = start_gateway(up, log={"access": access})
    gw.mark_fds()
    assert_status(gw.chat(chat_body(), headers={"X-Request-Id": "before-rotation"}), 200)
    gw.access_record("before-rotation")
    rotated = access + ".1"
    os.rename(access, rotated)
    undo = make_unwritable(logdir)
    try:
        gw.signal(signal.SIGHUP)
        check(wait_for(lambda: stderr_lines(gw, "reload rejected"), 5.0),
              "no 'reload rejected' message after a SIGHUP with the log directory unwritable")
        m = wait_metric(gw, "cairn_config_last_reload_ok", {}, 0)
        check((m.get("cairn_config_reloads_total", result="error") or 0) >= 1,
              "failed reload not counted: %r" % m.series("cairn_config_reloads_total"))
        t0 = time.monotonic()
        assert_status(gw.chat(chat_body(), headers={"X-Request-Id": "while-unwritable"}), 200)
        check(time.monotonic() - t0 < 3.0, "a request waited on the unwritable directory")
        check(wait_for(lambda: "while-unwritable" in harness.read_log(rotated), 3.0),
              "requests are no longer logged to the log still open")
        rejected = stderr_lines(gw, "reload rejected")
        check(len(rejected) <= 2, "the failure was reported %d times: %r"
              % (len(rejected), rejected))  # the master, and perhaps the worker
        check(all("Permission denied" in l or "Operation not permitted" in l for l in rejected),
              "the report does not name the error: %r" % rejected)
    finally:
        undo()
    generation = metrics(gw).get("cairn_config_generation")
    gw.signal(signal.SIGHUP)
    harness.wait_reloaded(gw, generation + 1)
    check(os.path.exists(access), "the new access log was not created")
    assert_status(gw.chat(chat_body(), headers={"X-Request-Id": "after-repair"}), 200)
    check(wait_for(lambda: "after-repair" in harness.read_log(access), 3.0),
          "logging did not resume in the new file")
    assert_recovered(gw, up)
