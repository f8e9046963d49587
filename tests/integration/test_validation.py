"""Answer validation and retry through the running gateway: an answer that
breaks the markers it was asked with (too long, not JSON, the wrong
language) is asked for again ("feedback": the conversation plus the
previous answer and an instruction; "resample": the same request), within
the policy's budget (attempts, deadline); the client gets the best answer
with every attempt's usage summed, the "cairn" report, X-Cairn-Attempts and
X-Cairn-Violations; streams are observed (a ": cairn {...}" comment before
[DONE]) or held back and replayed ("buffer"); metrics and the access log
count validations, retries and violations. The last test runs the whole
loop against the marker-aware stand-in backend with the rule annotator on.

The fake upstream decides each answer from the request it receives: the
number of assistant turns in "messages" is the attempt number (feedback
mode), and the marker block at the end of the last user turn says what was
asked for."""

import json
import re
import threading
import time

import harness
from harness import (COMPLETION, assert_status, build_request, chat_body, check, sse_event,
                     start_gateway, start_upstream, wait_for, wait_metric)

CHECKED = ["length_tokens", "format", "lang", "code_type"]
LIMIT10 = {"X-Cairn-Markers": "length_tokens=10"}
BLOCK10 = "<MARKER_LIST>\n<length_tokens>10</length_tokens>\n</MARKER_LIST>"
LABELS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]

ENGLISH = ("The weather today is quite pleasant and the children are playing in the garden "
           "while their parents prepare a simple lunch for the whole family. Everyone agrees "
           "that it is the nicest afternoon of the whole summer.")
FRENCH = ("Le temps est vraiment agr\u00e9able aujourd'hui et les enfants jouent dans le "
          "jardin pendant que leurs parents pr\u00e9parent un d\u00e9jeuner simple pour toute "
          "la famille. Tout le monde est d'accord pour dire que c'est le plus bel apr\u00e8s-midi "
          "de l'\u00e9t\u00e9.")


# --- helpers -------------------------------------------------------------------------


def policy(attempts=3, mode="feedback", stream="observe", deadline_ms=5000, markers=CHECKED,
           **extra):
    v = {"markers": list(markers), "retry": {"attempts": attempts, "deadline_ms": deadline_ms,
                                             "mode": mode},
         "stream": stream}
    v.update(extra)
    return {"validation": v}


def words(n, label="alpha"):
    """An answer of exactly n words, the first one naming it."""
    return " ".join([label] + ["word"] * (n - 1))


def completion(content, usage=None, cid="chatcmpl-v"):
    c = json.loads(json.dumps(COMPLETION))
    c["id"] = cid
    c["choices"][0]["message"]["content"] = content
    if usage is not None:
        c["usage"] = usage
    return c


def usage(prompt, completion_tokens):
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


def attempt_of(req):
    """0 for the first attempt, 1 for the first retry... (feedback mode)."""
    return sum(1 for m in req.json()["messages"] if m.get("role") == "assistant")


def by_attempt(answers, usages=None, headers=None):
    """A handler answering answers[k] (with headers[k]) to the k-th request
    it gets (the last one after): one client request per handler. (A
    feedback retry holds only the answer just judged, so the conversation
    does not count the attempts past the second.)"""
    lock = threading.Lock()
    count = [0]

    def handler(ex):
        with lock:
            k = min(count[0], len(answers) - 1)
            count[0] += 1
        u = usages[min(k, len(usages) - 1)] if usages else None
        ex.json(200, completion(answers[k], u, cid="chatcmpl-%d" % k),
                headers=headers[k] if headers else ())
    return handler


def content_of(resp):
    return resp.json()["choices"][0]["message"]["content"]


def report_of(resp):
    ext = resp.json().get("cairn")
    check(isinstance(ext, dict), "no \"cairn\" member in the answer: %r" % bytes(resp.body[:400]))
    return ext


def assert_attempts(resp, n, violations):
    """X-Cairn-Attempts, X-Cairn-Violations and the "cairn" report agree."""
    check(resp.header("x-cairn-attempts") == str(n),
          "X-Cairn-Attempts %r, want %d" % (resp.header("x-cairn-attempts"), n))
    want = ", ".join(violations) if violations else "none"
    check(resp.header("x-cairn-violations") == want,
          "X-Cairn-Violations %r, want %r" % (resp.header("x-cairn-violations"), want))


def assert_report(ext, n, violations):
    check(ext.get("attempts") == n, "cairn.attempts %r, want %d: %r" % (ext.get("attempts"), n, ext))
    got = ext.get("violations")
    check(isinstance(got, list) and [v.get("marker") for v in got] == list(violations),
          "cairn.violations %r, want markers %r" % (got, violations))
    for v in got:
        check(isinstance(v.get("expected"), str) and v["expected"] and
              isinstance(v.get("observed"), str) and v["observed"],
              "violation without expected/observed strings: %r" % v)


def last_user(req):
    msgs = [m for m in req.json()["messages"] if m.get("role") == "user"]
    return msgs[-1]["content"]


def chunk_event(content=None, finish=None, role=None):
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return sse_event({"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "gpt-test",
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def stream_events(content, piece=5):
    """The events of a streamed answer, `piece` words per content delta."""
    ws = content.split(" ")
    events = [chunk_event("", role="assistant")]
    for i in range(0, len(ws), piece):
        events.append(chunk_event((" " if i else "") + " ".join(ws[i:i + piece])))
    return events + [chunk_event(finish="stop"), sse_event("[DONE]")]


def parse_sse(body):
    """[("data", obj or "[DONE]") | ("comment", text)] in order."""
    items = []
    text = bytes(body).decode("utf-8")
    for ev in re.split(r"\r\n\r\n|\n\n|\r\r", text):
        if not ev.strip():
            continue
        for line in re.split(r"\r\n|\n|\r", ev):
            if line.startswith(":"):
                items.append(("comment", line[1:].lstrip(" ")))
            elif line.startswith("data:"):
                data = line[5:].lstrip(" ")
                items.append(("data", data if data == "[DONE]" else json.loads(data)))
    return items


def cairn_comment(items):
    """The JSON of the ": cairn {...}" comment (exactly one)."""
    found = [c for kind, c in items if kind == "comment" and c.startswith("cairn ")]
    check(len(found) == 1, "want one \": cairn {...}\" comment, got %r" % found)
    return json.loads(found[0][len("cairn "):])


def open_stream(gw, body, headers=None, timeout=10.0):
    c = gw.client(timeout=timeout)
    c.send(build_request("POST", "/v1/chat/completions", body, headers))
    resp = c.read_response(timeout=timeout)
    check(resp.complete, "stream did not complete: %r" % bytes(resp.body[-300:]))
    return resp


# --- feedback retry --------------------------------------------------------------------


def test_validation_feedback_retry_fixes_a_too_long_answer():
    """A user asking for at most 10 words gets the short second answer, not
    the 40-word first one; the model was shown its answer and told what to
    change, and the usage counts both attempts."""
    long_answer, short_answer = words(40, "alpha"), words(8, "bravo")
    up = start_upstream(by_attempt([long_answer, short_answer],
                                   [usage(3, 5), usage(60, 7)]))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(content_of(resp) == short_answer, "content %r, want the 8-word answer" % content_of(resp))
    assert_attempts(resp, 2, [])
    ext = report_of(resp)
    assert_report(ext, 2, [])
    check(ext.get("markers") == {"length_tokens": 10}, "cairn.markers %r" % ext.get("markers"))
    check(resp.json()["usage"] == {"prompt_tokens": 63, "completion_tokens": 12,
                                   "total_tokens": 75},
          "usage not summed over both attempts: %r" % resp.json()["usage"])
    check(resp.json()["id"] == "chatcmpl-1", "not the second answer's id: %r" % resp.json()["id"])
    check(len(up.requests) == 2, "upstream saw %d requests, want 2" % len(up.requests))

    first, second = up.requests[0].json(), up.requests[1].json()
    check(first["messages"] == [{"role": "user", "content": "Say hello\n\n" + BLOCK10}],
          "first attempt messages %r" % first["messages"])
    msgs = second["messages"]
    check(len(msgs) == 3, "retry messages %r" % msgs)
    check(msgs[0] == first["messages"][0], "retry changed the original turn: %r" % msgs[0])
    check(msgs[1] == {"role": "assistant", "content": long_answer},
          "retry's assistant turn %r, want the 40-word answer" % msgs[1])
    check(msgs[2].get("role") == "user" and isinstance(msgs[2].get("content"), str),
          "retry's last turn %r" % msgs[2])
    instruction = msgs[2]["content"]
    check(instruction.endswith("\n\n" + BLOCK10),
          "the instruction does not end with the marker block: %r" % instruction)
    said = instruction[:-len(BLOCK10)]
    check(re.search(r"\b40\b", said) and re.search(r"\b10\b", said),
          "the instruction does not mention 40 and 10: %r" % said)
    rest = {k: v for k, v in second.items() if k != "messages"}
    check(rest == {k: v for k, v in first.items() if k != "messages"},
          "retry body's other members changed: %r vs %r" % (second, first))
    check(up.requests[1].path == "/v1/chat/completions", "retry path %r" % up.requests[1].path)


def test_validation_budget_is_respected():
    """An upstream that never obeys is asked exactly `attempts` times; the
    client still gets 200 with the best answer and the violation spelled
    out (what was expected, what was observed). A good first answer is not
    asked for again."""
    up = start_upstream(by_attempt([words(8, "alpha"), words(5, "bravo")]))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(content_of(resp) == words(8, "alpha"), "content %r" % content_of(resp))
    assert_attempts(resp, 1, [])
    assert_report(report_of(resp), 1, [])
    time.sleep(0.2)
    check(len(up.requests) == 1, "a good answer was retried: %d requests" % len(up.requests))
    gw.finish()

    for attempts in (1, 2, 3):
        up = start_upstream(by_attempt([words(40, LABELS[i]) for i in range(6)]))
        gw = start_gateway(up, policy=policy(attempts=attempts))
        resp = gw.chat(chat_body(), headers=LIMIT10)
        assert_status(resp, 200)
        time.sleep(0.2)  # a further attempt would show up here
        check(len(up.requests) == attempts, "attempts=%d: upstream saw %d requests"
              % (attempts, len(up.requests)))
        # All equally long: the first one is kept.
        check(content_of(resp) == words(40, "alpha"),
              "attempts=%d: content %r" % (attempts, content_of(resp)[:60]))
        assert_attempts(resp, attempts, ["length_tokens"])
        ext = report_of(resp)
        assert_report(ext, attempts, ["length_tokens"])
        v = ext["violations"][0]
        check("10" in v["expected"] and "40" in v["observed"],
              "violation %r should expect 10 and observe 40" % v)
        gw.finish()


def test_validation_best_attempt_is_kept():
    """Of 40-, 20- and 30-word answers to a 10-word limit the user gets the
    20-word one; among equally bad answers, the first."""
    up = start_upstream(by_attempt([words(40, "alpha"), words(20, "bravo"),
                                    words(30, "charlie")]))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(content_of(resp) == words(20, "bravo"), "content %r, want the 20-word answer"
          % content_of(resp)[:80])
    check(resp.json()["id"] == "chatcmpl-1", "id %r" % resp.json()["id"])
    assert_attempts(resp, 3, ["length_tokens"])
    check("20" in report_of(resp)["violations"][0]["observed"],
          "observed %r" % report_of(resp)["violations"][0])
    # Each retry is the original conversation plus the answer just judged
    # and what to change about it.
    check(up.wait_requests(3), "third attempt not asked")
    third = up.requests[2].json()["messages"]
    check(len(third) == 3 and third[:2] == up.requests[1].json()["messages"][:1] +
          [{"role": "assistant", "content": words(20, "bravo")}],
          "third attempt's conversation %r" % third)
    check(re.search(r"\b20\b", third[-1]["content"].split("<MARKER_LIST>")[0]),
          "third attempt's instruction should name 20 words: %r" % third[-1]["content"])

    # Ties keep the first.
    up2 = start_upstream(by_attempt([words(30, "alpha"), words(30, "bravo"),
                                     words(30, "charlie")]))
    gw2 = start_gateway(up2, policy=policy(attempts=3))
    resp = gw2.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(content_of(resp) == words(30, "alpha"), "tie: content %r, want the first"
          % content_of(resp)[:40])
    assert_attempts(resp, 3, ["length_tokens"])


def test_validation_deadline_cuts_a_slow_retry():
    """With deadline_ms 800, a retry that takes 2 s is abandoned: the user
    gets the first answer in well under 2 s. And no retry starts once the
    deadline has passed."""
    first = words(40, "alpha")

    def handler(ex):
        k = attempt_of(ex.req)
        slow_first = "slow" in json.dumps(ex.req.json()["messages"][0])
        if k >= 1 or slow_first:
            ex.wait(timeout=2.0 if k >= 1 else 1.0)
            if k >= 1:
                return ex.json(200, completion(words(5, "bravo")))
        ex.json(200, completion(first))
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, deadline_ms=800))
    t0 = time.monotonic()
    resp = gw.chat(chat_body(), headers=LIMIT10, timeout=5.0)
    took = time.monotonic() - t0
    assert_status(resp, 200)
    check(took < 1.9, "answered after %.2fs: the deadline did not cut the retry" % took)
    check(content_of(resp) == first, "content %r, want the first answer" % content_of(resp)[:60])
    assert_attempts(resp, 1, ["length_tokens"])
    check(len(up.requests) == 2, "upstream saw %d requests, want 2 (the retry was started)"
          % len(up.requests))

    # The first answer itself comes after the deadline: no retry at all.
    n = len(up.requests)
    body = chat_body(messages=[{"role": "user", "content": "slow please"}])
    resp = gw.chat(body, headers=LIMIT10, timeout=5.0)
    assert_status(resp, 200)
    check(content_of(resp) == first, "content %r" % content_of(resp)[:60])
    assert_attempts(resp, 1, ["length_tokens"])
    time.sleep(0.2)
    check(len(up.requests) == n + 1, "a retry started after the deadline: %d requests"
          % (len(up.requests) - n))


def test_validation_resample_sends_the_same_body_again():
    """mode "resample": the retry is the very same request, without the
    previous answer or an instruction."""
    lock = threading.Lock()
    seen = []

    def handler(ex):
        with lock:
            seen.append(1)
            k = len(seen) - 1
        ex.json(200, completion(words(40, "alpha") if k == 0 else words(7, "bravo"),
                                usage(3, 5 if k == 0 else 7)))
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, mode="resample"))
    resp = gw.chat(chat_body(temperature=0.7), headers=LIMIT10)
    assert_status(resp, 200)
    check(content_of(resp) == words(7, "bravo"), "content %r" % content_of(resp))
    assert_attempts(resp, 2, [])
    check(resp.json()["usage"]["completion_tokens"] == 12, "usage %r" % resp.json()["usage"])
    check(len(up.requests) == 2, "upstream saw %d requests" % len(up.requests))
    a, b = up.requests[0].json(), up.requests[1].json()
    check(a == b, "resample changed the body:\n %r\n %r" % (a, b))
    check(a["messages"] == [{"role": "user", "content": "Say hello\n\n" + BLOCK10}],
          "messages %r" % a["messages"])


def test_validation_failing_retry_answers_with_the_first():
    """A retry that fails (HTTP 500, a broken JSON body, a dropped
    connection) does not cost the user the answer already in hand: 200 with
    the first answer."""
    first = words(40, "alpha")

    def good_first(ex):
        ex.json(200, completion(first, usage(3, 5)))

    def http500(ex):
        ex.json(500, {"error": {"message": "boom", "type": "server_error", "code": None}})

    def bad_json(ex):
        ex.respond(200, b'{"id": "x", "choices": [')

    def dropped(ex):
        ex.close()

    up = start_upstream()
    gw = start_gateway(up, policy=policy(attempts=3))
    for name, failing in (("500", http500), ("bad JSON", bad_json), ("dropped", dropped)):
        n = len(up.requests)
        up.script(good_first, failing)
        resp = gw.chat(chat_body(), headers=LIMIT10)
        check(resp.status == 200, "%s retry: status %s, body %r" % (name, resp.status,
                                                                      bytes(resp.body[:300])))
        check(content_of(resp) == first, "%s retry: content %r" % (name, content_of(resp)[:60]))
        assert_attempts(resp, 1, ["length_tokens"])
        check(resp.json()["usage"] == usage(3, 5), "%s retry: usage %r"
              % (name, resp.json()["usage"]))
        check(len(up.requests) == n + 2, "%s retry: upstream saw %d requests, want 2"
              % (name, len(up.requests) - n))


def test_validation_usage_summed_when_the_best_answer_has_none():
    """The usage the user is billed by covers every attempt, also when the
    answer they get came without a "usage" member of its own: a 40-word
    first answer with usage (3, 5), then a good answer without usage ->
    "usage" is (3, 5, 8)."""
    first = completion(words(40, "alpha"), usage(3, 5))
    second = completion(words(5, "bravo"))
    del second["usage"]
    up = start_upstream()
    up.script(lambda ex: ex.json(200, first), lambda ex: ex.json(200, second))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(content_of(resp) == words(5, "bravo"), "content %r" % content_of(resp))
    assert_attempts(resp, 2, [])
    check(resp.json().get("usage") == usage(3, 5),
          "usage %r, want the first attempt's (3, 5, 8)" % resp.json().get("usage"))


def test_validation_body_pins_and_the_models_own_block():
    """Markers pinned in the body's "cairn" member work the same; the retry
    carries no "cairn" member, the model's own block is not fed back to it,
    and an instruction covers every broken marker."""
    model_block = "<MARKER_LIST>\n<length_tokens>10</length_tokens>\n</MARKER_LIST>"
    up = start_upstream(by_attempt([model_block + "\n\n" + words(40, "alpha"), '{"a": 1}']))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(cairn={"markers": {"length_tokens": 10, "format": "JSON"}}))
    assert_status(resp, 200)
    check(content_of(resp) == '{"a": 1}', "content %r" % content_of(resp))
    assert_attempts(resp, 2, [])
    check(len(up.requests) == 2, "upstream saw %d requests" % len(up.requests))
    retry = up.requests[1].json()
    check("cairn" not in retry, "the retry carried the cairn member: %r" % retry)
    check(retry["messages"][1] == {"role": "assistant", "content": words(40, "alpha")},
          "assistant turn %r (the model's block must be removed)" % retry["messages"][1])
    said = retry["messages"][2]["content"].split("<MARKER_LIST>")[0]
    check("JSON" in said and re.search(r"\b40\b", said) and re.search(r"\b10\b", said),
          "the instruction does not cover both markers: %r" % said)


def test_validation_format_and_lang_feedback():
    """Asked for JSON, prose is retried with an instruction naming JSON;
    asked for French, an English answer is retried with one naming French;
    an upstream that stays in English leaves lang reported as broken."""
    up = start_upstream(by_attempt(["Sure, here is the answer you asked for: 42.",
                                    '{"answer": 42}']))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers={"X-Cairn-Markers": "format=JSON"})
    assert_status(resp, 200)
    check(content_of(resp) == '{"answer": 42}', "content %r" % content_of(resp))
    assert_attempts(resp, 2, [])
    retry = up.requests[1].json()["messages"]
    check(retry[-2] == {"role": "assistant",
                        "content": "Sure, here is the answer you asked for: 42."},
          "assistant turn %r" % retry[-2])
    check("JSON" in retry[-1]["content"].split("<MARKER_LIST>")[0],
          "the instruction does not name JSON: %r" % retry[-1]["content"])
    check(retry[-1]["content"].endswith("<format>JSON</format>\n</MARKER_LIST>"),
          "the instruction does not end with the block: %r" % retry[-1]["content"])
    gw.finish()

    def lang_handler(ex):
        german = "<lang>German</lang>" in last_user(ex.req)
        k = attempt_of(ex.req)
        ex.json(200, completion(FRENCH if k >= 1 and not german else ENGLISH))
    up = start_upstream(lang_handler)
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers={"X-Cairn-Markers": "lang=French"})
    assert_status(resp, 200)
    check(content_of(resp) == FRENCH, "content %r" % content_of(resp)[:60])
    assert_attempts(resp, 2, [])
    retry = up.requests[1].json()["messages"]
    check(retry[-2] == {"role": "assistant", "content": ENGLISH}, "assistant turn %r" % retry[-2])
    check("French" in retry[-1]["content"].split("<MARKER_LIST>")[0],
          "the instruction does not name French: %r" % retry[-1]["content"])

    n = len(up.requests)
    resp = gw.chat(chat_body(), headers={"X-Cairn-Markers": "lang=German"})
    assert_status(resp, 200)
    check(len(up.requests) == n + 3, "German: %d attempts, want 3" % (len(up.requests) - n))
    assert_attempts(resp, 3, ["lang"])
    v = report_of(resp)["violations"][0]
    check("German" in v["expected"] and "English" in v["observed"],
          "lang violation %r should expect German and observe English" % v)


# --- streams ---------------------------------------------------------------------------


def test_validation_stream_observe_reports_before_done():
    """stream "observe": a too-long streamed answer reaches the user event
    by event, unchanged, with one ": cairn {...}" comment (which clients
    ignore) right before data: [DONE]; nothing is asked again."""
    events = stream_events(words(40, "alpha"))

    def handler(ex):
        ex.start_sse()
        for e in events:
            ex.chunk(e)
            time.sleep(0.002)
        ex.end_chunks()
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, stream="observe"))
    resp = open_stream(gw, chat_body(stream=True), headers=LIMIT10)
    assert_status(resp, 200)
    check(resp.header("content-type", "").startswith("text/event-stream"),
          "Content-Type %r" % resp.header("content-type"))
    body = bytes(resp.body)
    head = b"".join(events[:-1])
    check(body.startswith(head), "the events were changed:\n sent %r\n got  %r" % (head, body))
    tail = body[len(head):]
    m = re.fullmatch(rb": cairn (\{[^\n]*\})\n\ndata: \[DONE\]\n\n", tail)
    check(m is not None, "after the events, want ': cairn {...}' then [DONE]; got %r" % tail)
    rep = json.loads(m.group(1))
    assert_report(rep, 1, ["length_tokens"])
    check("40" in rep["violations"][0]["observed"], "observed %r" % rep["violations"][0])
    time.sleep(0.2)
    check(len(up.requests) == 1, "a stream was retried: %d upstream requests" % len(up.requests))
    check(up.requests[0].json().get("stream") is True, "observe mode did not stream upstream")
    rec = gw.nth_access_record(1)
    check(rec.get("attempts") == 1 and rec.get("violations") == ["length_tokens"],
          "access record attempts/violations %r / %r" % (rec.get("attempts"),
                                                        rec.get("violations")))

    # A good stream gets an empty report.
    good = stream_events(words(6, "bravo"))

    def good_handler(ex):
        ex.start_sse()
        for e in good:
            ex.chunk(e)
        ex.end_chunks()
    up.handler = good_handler
    resp = open_stream(gw, chat_body(stream=True), headers=LIMIT10)
    body = bytes(resp.body)
    check(body.startswith(b"".join(good[:-1])) and body.endswith(b"data: [DONE]\n\n"),
          "good stream changed: %r" % body)
    assert_report(cairn_comment(parse_sse(body)), 1, [])


def test_validation_stream_buffer_replays_the_good_answer():
    """stream "buffer": the user asking for a stream gets the validated
    (retried) answer as SSE — role and content, finish_reason, the summed
    usage when asked for, the report comment, [DONE] last — and the upstream
    was asked for whole answers."""
    long_answer, good = words(40, "alpha"), words(8, "bravo")

    def handler(ex):
        body = ex.req.json()
        if body.get("stream"):  # must not happen: fail visibly
            return ex.json(400, {"error": {"message": "fake upstream: stream asked",
                                           "type": "invalid_request_error", "code": None}})
        k = attempt_of(ex.req)
        ex.json(200, completion(long_answer if k == 0 else good,
                                usage(3, 5) if k == 0 else usage(60, 7), cid="chatcmpl-b%d" % k))
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, stream="buffer"))
    body = chat_body(stream=True, stream_options={"include_usage": True})
    resp = open_stream(gw, body, headers=LIMIT10)
    assert_status(resp, 200)
    check(resp.header("content-type", "").split(";")[0].strip() == "text/event-stream",
          "Content-Type %r" % resp.header("content-type"))
    assert_attempts(resp, 2, [])
    items = parse_sse(resp.body)
    check(items and items[-1] == ("data", "[DONE]"), "[DONE] not last: %r" % items[-3:])
    check(items[-2][0] == "comment", "no comment right before [DONE]: %r" % items[-3:])
    assert_report(cairn_comment(items), 2, [])
    chunks = [obj for kind, obj in items if kind == "data" and obj != "[DONE]"]
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c.get("choices", [])
                   if ch.get("index") == 0)
    check(text == good, "reassembled content %r, want %r" % (text, good))
    check(chunks[0]["choices"][0]["delta"].get("role") == "assistant",
          "first chunk has no role: %r" % chunks[0])
    check(all(c.get("object") == "chat.completion.chunk" and c.get("id") == "chatcmpl-b1"
              for c in chunks), "chunk object/id: %r" % chunks)
    finishes = [ch.get("finish_reason") for c in chunks for ch in c.get("choices", [])
                if ch.get("finish_reason")]
    check(finishes == ["stop"], "finish reasons %r" % finishes)
    usages = [c for c in chunks if "usage" in c]
    check(len(usages) == 1 and usages[0]["choices"] == [] and usages[0] is chunks[-1],
          "want one last usage chunk with \"choices\": []: %r" % usages)
    check(usages[0]["usage"] == {"prompt_tokens": 63, "completion_tokens": 12,
                                 "total_tokens": 75}, "usage not summed: %r" % usages[0]["usage"])
    check(len(up.requests) == 2, "upstream saw %d requests" % len(up.requests))
    for r in up.requests:
        sent = r.json()
        check("stream" not in sent and "stream_options" not in sent,
              "buffer mode asked the upstream for a stream: %r" % sent)

    # Without include_usage there is no usage chunk.
    resp = open_stream(gw, chat_body(stream=True), headers=LIMIT10)
    assert_status(resp, 200)
    items = parse_sse(resp.body)
    chunks = [obj for kind, obj in items if kind == "data" and obj != "[DONE]"]
    check(not any("usage" in c for c in chunks), "usage chunk not asked for: %r" % chunks)
    check(items[-1] == ("data", "[DONE]"), "[DONE] not last")


def test_validation_stream_buffer_keeps_the_first_answer_when_a_retry_fails():
    """stream "buffer": a retry cut by the deadline, or one the upstream
    fails, still leaves the user a complete stream of the first answer."""
    first = words(40, "alpha")

    def handler(ex):
        k = attempt_of(ex.req)
        failing = "fail" in json.dumps(ex.req.json()["messages"][0])
        if k >= 1 and failing:
            return ex.json(500, {"error": {"message": "boom", "type": "server_error",
                                           "code": None}})
        if k >= 1:
            ex.wait(timeout=2.0)
        ex.json(200, completion(first if k == 0 else words(5, "bravo")))
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, deadline_ms=500, stream="buffer"))
    for prompt in ("slow retry", "fail retry"):
        t0 = time.monotonic()
        resp = open_stream(gw, chat_body(stream=True, messages=[{"role": "user",
                                                                 "content": prompt}]),
                           headers=LIMIT10)
        took = time.monotonic() - t0
        assert_status(resp, 200)
        check(took < 1.9, "%s: answered after %.2fs" % (prompt, took))
        check(resp.header("content-type", "").startswith("text/event-stream"),
              "%s: Content-Type %r" % (prompt, resp.header("content-type")))
        assert_attempts(resp, 1, ["length_tokens"])
        items = parse_sse(resp.body)
        check(items[-1] == ("data", "[DONE]"), "%s: [DONE] not last" % prompt)
        text = "".join(ch["delta"].get("content") or "" for kind, c in items
                       if kind == "data" and c != "[DONE]" for ch in c["choices"])
        check(text == first, "%s: content %r" % (prompt, text[:60]))
        assert_report(cairn_comment(items), 1, ["length_tokens"])


# --- off, metrics, logs --------------------------------------------------------------------


def test_validation_off_changes_nothing():
    """With validation off (the harness default) markers still go out but
    nothing is checked: no X-Cairn-Attempts, no "attempts" in the report,
    one upstream request, no comment in streams. With validation on but no
    marker sent, answers pass untouched, and buffer mode still streams."""
    up = start_upstream(by_attempt([words(40, "alpha")]))
    gw = start_gateway(up)
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(resp.header("x-cairn-attempts") is None and resp.header("x-cairn-violations") is None,
          "validation headers with validation off: %r" % resp.headers)
    ext = resp.json().get("cairn") or {}
    check("attempts" not in ext and "violations" not in ext, "report with validation off: %r" % ext)
    time.sleep(0.1)
    check(len(up.requests) == 1, "retried with validation off")
    rec = gw.nth_access_record(1)
    check("attempts" not in rec and "violations" not in rec, "access record %r" % rec)
    gw.finish()

    events = stream_events(words(40, "alpha"))

    def streamer(ex):
        if not ex.req.json().get("stream"):
            return ex.json(200, completion(words(40, "alpha")))
        ex.start_sse()
        for e in events:
            ex.chunk(e)
        ex.end_chunks()
    up = start_upstream(streamer)
    gw = start_gateway(up)
    resp = open_stream(gw, chat_body(stream=True), headers=LIMIT10)
    check(bytes(resp.body) == b"".join(events), "stream changed with validation off: %r"
          % bytes(resp.body)[-200:])
    gw.finish()

    gw = start_gateway(up, policy=policy(attempts=3, stream="buffer"))
    resp = gw.chat(chat_body())
    assert_status(resp, 200)
    check(resp.json() == completion(words(40, "alpha")),
          "an answer without markers was changed: %r" % bytes(resp.body[:300]))
    check(resp.header("x-cairn-attempts") is None, "X-Cairn-Attempts without markers")
    n = len(up.requests)
    resp = open_stream(gw, chat_body(stream=True))
    check(bytes(resp.body) == b"".join(events), "a stream without markers was changed: %r"
          % bytes(resp.body)[-200:])
    check(up.requests[n].json().get("stream") is True, "buffer mode held a stream without markers")


def test_validation_metrics_and_access_log():
    """An operator sees per-tenant validations, retries and the violations
    left in the answers users got, and each access record says how many
    attempts a request took and which markers its answer broke."""
    def handler(ex):
        k = attempt_of(ex.req)
        stubborn = "stubborn" in json.dumps(ex.req.json()["messages"][0])
        ex.json(200, completion(words(40 if stubborn or k == 0 else 5, LABELS[k])))
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    assert_attempts(resp, 2, [])
    resp = gw.chat(chat_body(messages=[{"role": "user", "content": "stubborn"}]), headers=LIMIT10)
    assert_status(resp, 200)
    assert_attempts(resp, 3, ["length_tokens"])
    resp = gw.chat(chat_body())  # no marker: not validated
    assert_status(resp, 200)
    # arm "": the request ran in no experiment.
    for name, labels, value in [("cairn_validations_total", {"tenant": "default", "arm": ""}, 2.0),
                                ("cairn_retries_total", {"tenant": "default", "arm": ""}, 3.0),
                                ("cairn_violations_total", {"tenant": "default", "arm": "",
                                                            "marker": "length_tokens"}, 1.0)]:
        wait_metric(gw, name, labels, value)
    recs = [gw.nth_access_record(i) for i in (1, 2, 3)]
    check(recs[0].get("attempts") == 2 and recs[0].get("violations") == [],
          "record 1: attempts %r violations %r" % (recs[0].get("attempts"),
                                                   recs[0].get("violations")))
    check(recs[1].get("attempts") == 3 and recs[1].get("violations") == ["length_tokens"],
          "record 2: attempts %r violations %r" % (recs[1].get("attempts"),
                                                   recs[1].get("violations")))
    check("attempts" not in recs[2], "record 3 (no markers) has attempts: %r" % recs[2])
    check(all(r.get("status") == 200 for r in recs), "statuses %r" % [r.get("status") for r in recs])


def test_validation_tolerance_and_counting():
    """A length limit allows the configured tolerance (10% by default: 11
    words pass a 10-word limit, 12 do not), and "characters" counting
    measures characters instead of words."""
    up = start_upstream(lambda ex: ex.json(200, completion(
        words(11) if "eleven" in last_user(ex.req) else words(12))))
    gw = start_gateway(up, policy=policy(attempts=1))
    resp = gw.chat(chat_body(messages=[{"role": "user", "content": "eleven"}]), headers=LIMIT10)
    assert_attempts(resp, 1, [])
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_attempts(resp, 1, ["length_tokens"])
    gw.finish()

    gw = start_gateway(up, policy=policy(attempts=1, tolerance=0))
    resp = gw.chat(chat_body(messages=[{"role": "user", "content": "eleven"}]), headers=LIMIT10)
    assert_attempts(resp, 1, ["length_tokens"])
    gw.finish()

    # 11 words of "alpha word word..." are 45 characters (white space is
    # not counted): over 10 characters, within 100.
    gw = start_gateway(up, policy=policy(attempts=1, counting="characters"))
    resp = gw.chat(chat_body(messages=[{"role": "user", "content": "eleven"}]), headers=LIMIT10)
    assert_attempts(resp, 1, ["length_tokens"])
    resp = gw.chat(chat_body(messages=[{"role": "user", "content": "eleven"}]),
                   headers={"X-Cairn-Markers": "length_tokens=100"})
    assert_attempts(resp, 1, [])


# --- the real stand-in ------------------------------------------------------------------------


def test_validation_standin_retry_meets_the_length_limit():
    """The issue's "Done when": through the marker-aware stand-in that
    always disobeys a first time (--violate 1) and obeys a retry, with the
    rule annotator on and two attempts allowed, "Describe the sea in at most
    50 words." gets an answer of at most 55 words after 2 attempts."""
    standin = harness.Standin("--violate", "1", "--violate-retry", "0", "--seed", "7")
    gw = start_gateway(base_url=standin.base_url, markers={"annotate": "rules"},
                       policy=policy(attempts=2, deadline_ms=10000))
    body = chat_body(model="standin-1", messages=[
        {"role": "user", "content": "Describe the sea in at most 50 words."}])
    resp = gw.chat(body, timeout=10)
    assert_status(resp, 200)
    check("length_tokens=50" in (resp.header("x-cairn-markers") or ""),
          "the annotator did not mark length_tokens=50: X-Cairn-Markers %r"
          % resp.header("x-cairn-markers"))
    assert_attempts(resp, 2, [])
    text = content_of(resp)
    check(len(text.split()) <= 55, "answer has %d words: %r" % (len(text.split()), text))
    check("<MARKER_LIST>" not in text, "the model's block reached the user: %r" % text)
    assert_report(report_of(resp), 2, [])
    rec = gw.nth_access_record(1)
    check(rec.get("attempts") == 2 and rec.get("violations") == [],
          "access record attempts %r violations %r" % (rec.get("attempts"),
                                                       rec.get("violations")))


# --- regressions ------------------------------------------------------------------------


PIN5 = {"X-Cairn-Markers": "length_tokens=5"}


def prompt_of(req):
    """The text of the first user turn (the marker block appended)."""
    return req.json()["messages"][0]["content"]


def assert_complete_answer(resp, what, first=None):
    """A complete, well-formed 200: JSON with a first choice's content
    (`first`, when given), or an event stream that ends with [DONE]."""
    check(resp.complete, "%s: the response never completed (got %r)"
          % (what, bytes(resp.body[-300:])))
    assert_status(resp, 200)
    ctype = (resp.header("content-type") or "").split(";")[0].strip().lower()
    if ctype == "text/event-stream":
        items = parse_sse(resp.body)
        check(items and items[-1] == ("data", "[DONE]"), "%s: stream without a final [DONE]: %r"
              % (what, bytes(resp.body[-300:])))
        return
    check(ctype == "application/json", "%s: Content-Type %r" % (what, ctype))
    got = content_of(resp)
    check(isinstance(got, str), "%s: no content in %r" % (what, bytes(resp.body[:300])))
    if first is not None:
        check(got == first, "%s: content %r, want the best (first) answer" % (what, got[:60]))


def test_validation_stream_answered_with_json_is_retried_as_a_whole_answer():
    """A client asks for a stream (validation "observe", length_tokens=5
    pinned, 3 attempts) and the upstream answers with a plain JSON 200 that
    is too long: the retry goes upstream without "stream" and
    "stream_options", and the client gets the retry's compliant answer as
    JSON with X-Cairn-Attempts 2. A retry the upstream streams anyway (at
    once, or too slowly for the deadline) still leaves the client a
    complete answer within the deadline, never a hang, and the gateway
    serves the next request on a new connection."""
    first, good = words(40, "alpha"), words(3, "bravo")
    sse = stream_events(words(3, "charlie"), piece=1)

    def handler(ex):
        text = prompt_of(ex.req)
        if "<MARKER_LIST>" not in text:
            return harness.default_handler(ex)
        if attempt_of(ex.req) == 0:
            return ex.json(200, completion(first, cid="chatcmpl-first"))
        if "sse" not in text:
            return ex.json(200, completion(good, cid="chatcmpl-good"))
        ex.start_sse()  # a stream, though the retry asked for none
        ex.chunk(sse[0])
        if "slow" in text:
            ex.wait(timeout=3.0)  # past the 800 ms deadline
        for e in sse[1:]:
            ex.chunk(e)
        ex.end_chunks()
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, deadline_ms=800, stream="observe"))

    body = chat_body(stream=True, stream_options={"include_usage": True})
    resp = gw.chat(body, headers=PIN5, timeout=5.0)
    assert_status(resp, 200)
    ctype = (resp.header("content-type") or "").split(";")[0].strip().lower()
    check(ctype == "application/json", "Content-Type %r, want JSON (the upstream answered JSON)"
          % resp.header("content-type"))
    check(content_of(resp) == good, "content %r, want the compliant retry" % content_of(resp))
    assert_attempts(resp, 2, [])
    check(len(up.requests) == 2, "upstream saw %d requests, want 2" % len(up.requests))
    check(up.requests[0].json().get("stream") is True,
          "the first attempt was not asked as a stream")
    retry = up.requests[1].json()
    check("stream" not in retry and "stream_options" not in retry,
          "the retry was asked for as a stream: %r" % {k: retry[k] for k in retry
                                                       if k.startswith("stream")})

    for prompt in ("quick sse", "slow sse"):
        n = len(up.requests)
        body = chat_body(stream=True, messages=[{"role": "user", "content": prompt}])
        t0 = time.monotonic()
        c = gw.client(timeout=5.0)
        c.send(build_request("POST", "/v1/chat/completions", body, PIN5, close=True))
        try:
            resp = c.read_response(timeout=4.0, method="POST")
        except AssertionError as e:
            raise AssertionError("%s retry: no answer: %s" % (prompt, e))
        took = time.monotonic() - t0
        c.close()
        assert_complete_answer(resp, prompt + " retry", first)
        check(took < 2.0, "%s retry: answered after %.2fs (deadline 800 ms)" % (prompt, took))
        check(len(up.requests) == n + 2, "%s: upstream saw %d requests, want 2"
              % (prompt, len(up.requests) - n))
        retry = up.requests[n + 1].json()
        check("stream" not in retry and "stream_options" not in retry,
              "%s: the retry was asked for as a stream" % prompt)
        # The gateway is still healthy: a new connection, a new request.
        after = gw.chat(chat_body(), timeout=3.0)
        assert_status(after, 200)
        check(after.json().get("object") == "chat.completion",
              "%s: the next request got %r" % (prompt, bytes(after.body[:200])))


def test_upstream_x_cairn_headers_are_not_relayed():
    """An upstream (another cairn, a confused proxy) that sends its own
    X-Cairn-Violations, X-Cairn-Attempts, X-Cairn-Markers... does not get
    to speak for this gateway: a client sees exactly one of each X-Cairn-
    header cairn sets, with cairn's value, and none it does not set -- for
    a validated answer, a stream, an upstream error and an unmarked
    answer."""
    fake = [("X-Cairn-Violations", "none"), ("X-Cairn-Attempts", "9"),
            ("X-Cairn-Markers", "task=Fake"), ("X-Cairn-Model-Markers", "task=Fake"),
            ("X-Cairn-Extra", "upstream")]
    block = "<MARKER_LIST>\n<domain>Legal</domain>\n</MARKER_LIST>\n\n"

    def handler(ex):
        text = prompt_of(ex.req)
        if ex.req.json().get("stream"):
            ex.start_sse(headers=fake)
            for e in stream_events(words(40, "alpha")):
                ex.chunk(e)
            return ex.end_chunks()
        if "busy" in text:
            return ex.respond(429, json.dumps({"error": {"message": "slow down",
                                                         "type": "rate_limit", "code": None}}),
                              headers=fake)
        marked = "<MARKER_LIST>" in text  # an unmarked answer has no block to report
        ex.json(200, completion((block if marked else "") + words(40, "alpha")), headers=fake)
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=1))

    def cairn_headers(resp):
        out = {}
        for name, value in resp.headers:
            if name.lower().startswith("x-cairn-"):
                out.setdefault(name.lower(), []).append(value)
        return out

    resp = gw.chat(chat_body(), headers=PIN5)
    assert_status(resp, 200)
    want = {"x-cairn-markers": ["length_tokens=5"], "x-cairn-attempts": ["1"],
            "x-cairn-violations": ["length_tokens"], "x-cairn-model-markers": ["domain=Legal"]}
    check(cairn_headers(resp) == want, "validated answer: X-Cairn- headers %r, want %r"
          % (cairn_headers(resp), want))

    resp = open_stream(gw, chat_body(stream=True), headers=PIN5)
    assert_status(resp, 200)
    check(cairn_headers(resp) == {"x-cairn-markers": ["length_tokens=5"]},
          "stream: X-Cairn- headers %r" % cairn_headers(resp))

    resp = gw.chat(chat_body(messages=[{"role": "user", "content": "busy"}]), headers=PIN5)
    assert_status(resp, 429)
    check(cairn_headers(resp) == {"x-cairn-markers": ["length_tokens=5"]},
          "upstream 429: X-Cairn- headers %r" % cairn_headers(resp))

    resp = gw.chat(chat_body())  # no markers sent: cairn sets no X-Cairn- header
    assert_status(resp, 200)
    check(cairn_headers(resp) == {}, "unmarked answer: X-Cairn- headers %r"
          % cairn_headers(resp))


def test_validation_best_attempts_headers_and_model_markers_go_with_it():
    """Of three too-long attempts the user gets the shortest (the first);
    the headers that come with it are the first attempt's own (its
    X-Request-Id as X-Upstream-Request-Id, exactly once; no Retry-After,
    which only the worse attempts sent), and the model markers reported
    (X-Cairn-Model-Markers and cairn.model_markers) are those of the block
    that answer started with, not of a later attempt's."""
    up = start_upstream(by_attempt(
        ["<MARKER_LIST>\n<domain>Legal</domain>\n</MARKER_LIST>\n\n" + words(20, "alpha"),
         "<MARKER_LIST>\n<domain>Medical</domain>\n</MARKER_LIST>\n\n" + words(40, "bravo"),
         "<MARKER_LIST>\n<domain>Finance</domain>\n<task>CodeFix</task>\n</MARKER_LIST>\n\n" +
         words(30, "charlie")],
        headers=[[("X-Request-Id", "up-1")],
                 [("X-Request-Id", "up-2"), ("Retry-After", "7")],
                 [("X-Request-Id", "up-3"), ("Retry-After", "9")]]))
    gw = start_gateway(up, policy=policy(attempts=3))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(len(up.requests) == 3, "upstream saw %d requests, want 3" % len(up.requests))
    check(content_of(resp) == words(20, "alpha"), "content %r, want the first (shortest) answer"
          % content_of(resp)[:60])
    check(resp.json()["id"] == "chatcmpl-0", "id %r" % resp.json()["id"])
    assert_attempts(resp, 3, ["length_tokens"])
    check(resp.header_all("x-upstream-request-id") == ["up-1"],
          "X-Upstream-Request-Id %r, want ['up-1'] (the returned attempt's)"
          % resp.header_all("x-upstream-request-id"))
    check(resp.header_all("retry-after") == [],
          "Retry-After %r of a worse attempt relayed" % resp.header_all("retry-after"))
    check(resp.header_all("x-cairn-model-markers") == ["domain=Legal"],
          "X-Cairn-Model-Markers %r, want ['domain=Legal']"
          % resp.header_all("x-cairn-model-markers"))
    mm = report_of(resp).get("model_markers")
    check(mm == {"domain": "Legal"}, "cairn.model_markers %r, want {'domain': 'Legal'}" % mm)


def test_validation_stream_observe_reports_at_done_not_at_transfer_end():
    """stream "observe": an upstream that sends its last chunk and
    data: [DONE] but keeps the transfer open 2 s longer does not hold the
    user back: the ": cairn {...}" comment and [DONE] arrive within a
    second of the upstream's [DONE], before its transfer ends, once each."""
    events = stream_events(words(40, "alpha"))
    done_at, ended = [], threading.Event()

    def handler(ex):
        ex.start_sse()
        for e in events:
            ex.chunk(e)
        done_at.append(time.monotonic())
        ex.wait(timeout=2.0)
        ex.end_chunks()
        ended.set()
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, stream="observe"))
    c = gw.client(timeout=6.0)
    c.send(build_request("POST", "/v1/chat/completions", chat_body(stream=True), LIMIT10))
    resp = c.read_head(timeout=3.0)
    assert_status(resp, 200)
    c.start_body(resp, "POST")
    check(wait_for(lambda: done_at, 3.0), "the upstream did not send its events")
    c.read_body(resp, until=b"data: [DONE]\n\n", timeout=1.0)
    got_at = time.monotonic()
    body = bytes(resp.body)
    check(b"data: [DONE]\n\n" in body,
          "no [DONE] within 1 s of the upstream's (the report waited for the transfer end?): "
          "got %r" % body[-200:])
    check(not ended.is_set(), "the upstream transfer had already ended")
    check(got_at - done_at[0] < 1.0,
          "[DONE] came %.2fs after the upstream's" % (got_at - done_at[0]))
    head = b"".join(events[:-1])
    check(body.startswith(head), "the events were changed: %r" % body[:300])
    m = re.fullmatch(rb": cairn (\{[^\n]*\})\n\ndata: \[DONE\]\n\n", body[len(head):])
    check(m is not None, "after the events, want ': cairn {...}' then [DONE]; got %r"
          % body[len(head):])
    assert_report(json.loads(m.group(1)), 1, ["length_tokens"])
    # The transfer's end completes the response, adding nothing.
    c.read_body(resp, timeout=4.0)
    check(resp.complete, "the stream did not end after the upstream's transfer: %r"
          % bytes(resp.body[-200:]))
    check(bytes(resp.body) == body, "bytes after [DONE]: %r" % bytes(resp.body)[len(body):])


def test_validation_buffer_mode_keeps_the_upstreams_cache_control():
    """stream "buffer": an upstream answer with its own Cache-Control
    (private) reaches the user with exactly that one Cache-Control header,
    not also cairn's no-cache; without one, the replayed stream gets
    exactly one "no-cache"."""
    def handler(ex):
        headers = [("Cache-Control", "private")] if "private" in prompt_of(ex.req) else []
        ex.json(200, completion(words(3, "alpha")), headers=headers)
    up = start_upstream(handler)
    gw = start_gateway(up, policy=policy(attempts=3, stream="buffer"))
    body = chat_body(stream=True, messages=[{"role": "user", "content": "private please"}])
    resp = open_stream(gw, body, headers=LIMIT10)
    assert_status(resp, 200)
    check(resp.header("content-type", "").startswith("text/event-stream"),
          "Content-Type %r" % resp.header("content-type"))
    assert_attempts(resp, 1, [])
    check(resp.header_all("cache-control") == ["private"],
          "Cache-Control %r, want only the upstream's ['private']"
          % resp.header_all("cache-control"))
    check(parse_sse(resp.body)[-1] == ("data", "[DONE]"), "[DONE] not last")

    resp = open_stream(gw, chat_body(stream=True), headers=LIMIT10)
    assert_status(resp, 200)
    check(resp.header_all("cache-control") == ["no-cache"],
          "Cache-Control %r, want ['no-cache']" % resp.header_all("cache-control"))


def test_validation_feedback_neutralises_tags_in_the_answer_sent_back():
    """With unwrap off, the model's own block stays in its answer; when that
    answer goes back in a feedback retry it is conversation text like any
    other, so its tags are stripped (markers.injected "strip") and cannot
    set markers for the next attempt."""
    block = "<MARKER_LIST>\n<domain>Legal</domain>\n</MARKER_LIST>\n\n"
    up = start_upstream(by_attempt([block + words(40, "alpha"), words(8, "bravo")]))
    gw = start_gateway(up, policy=dict(policy(attempts=2), markers={"unwrap": False}))
    resp = gw.chat(chat_body(), headers=LIMIT10)
    assert_status(resp, 200)
    check(len(up.requests) == 2, "upstream saw %d requests, want 2" % len(up.requests))
    sent_back = up.requests[1].json()["messages"][1]
    check(sent_back.get("role") == "assistant", "retry's second turn %r" % sent_back)
    check("MARKER_LIST" not in sent_back["content"] and "<domain>" not in sent_back["content"],
          "the answer went back with its tags: %r" % sent_back["content"])
    check(words(40, "alpha") in sent_back["content"],
          "the answer's text did not go back: %r" % sent_back["content"])
