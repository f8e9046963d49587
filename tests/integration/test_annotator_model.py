"""The annotator model through the running gateway (policy.markers.annotate
"model" and "rules+model"): for each chat request cairn asks a small model
behind an OpenAI-compatible API for the request's markers (a <MARKER_LIST>
block in its answer), checks them against the taxonomy and merges them with
the pinned, fixed and rule markers before the request goes to the main
upstream. The annotator is a fake (FakeAnnotator below) that answers well,
slowly, with HTTP 500, with garbage, with prose, with a fenced block, with
unknown tags and values, or with 10 MB; the gateway must fail open on every
failure (the client gets the main upstream's 200, with the rules' markers
when fallback is "rules"), cache good answers, stop calling a failing
annotator (circuit breaker) and survive a client that leaves while the
annotator thinks. Outcomes are checked in the access log ("annotator") and
in /metrics (cairn_annotations_total, cairn_annotation_cache_*).

The rule annotator's markers that a fallback must produce are not written
here by hand: they are computed with `cairn annotate` on the same
messages, so these tests depend on the model annotator's plumbing, not on
what the rules happen to detect (except the rules+model test, which needs
"at most 50 words" read as length_tokens 50 and checks that first)."""

import copy
import json
import os
import re
import subprocess
import threading
import time

import harness
from harness import (COMPLETION, assert_status, build_request, chat_body, check, new_key,
                     refused_url, run_cairn, start_gateway, start_upstream, tenant, wait_for,
                     wait_metric, write_config)

CHAT = "/v1/chat/completions"
BLOCK_RE = re.compile(r"<MARKER_LIST>\n(.*?)</MARKER_LIST>", re.S)
ITEM_RE = re.compile(r"<([A-Za-z_]+)>([^<>\n]*)</\1>")

FIX_TEXT = "Fix this Python code: def f(: pass"
FIX_MESSAGES = [{"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": FIX_TEXT}]
SUMMARY_TEXT = ("Summarize this article in at most 50 words: The council voted on Tuesday "
                "to expand the city park.")

# What the fake annotator says when it answers well (none of it is what the
# rules would say about FIX_TEXT: task, code_type and length differ).
MODEL_MARKERS = {"task": "CodeExplanation", "domain": "Code", "code_type": "rust",
                 "length_tokens": "120"}


# --- helpers -----------------------------------------------------------------------


def block(markers):
    """A <MARKER_LIST> block of tag -> value lines, in the given order."""
    lines = "".join("<%s>%s</%s>\n" % (k, v, k) for k, v in markers.items())
    return "<MARKER_LIST>\n" + lines + "</MARKER_LIST>"


def completion(content):
    c = copy.deepcopy(COMPLETION)
    c["id"] = "chatcmpl-annotator"
    c["model"] = "annotator"
    c["choices"][0]["message"]["content"] = content
    return c


class FakeAnnotator:
    """A scripted annotator model on its own fake upstream. `behaviour` may
    be changed at any time; it decides the answer to each request:

      good     200, a chat completion whose content is `content`
      slow     waits `delay` seconds (or until the gateway closes the
               connection, which sets `abandoned`), then answers like good
      500      HTTP 500 with an OpenAI-shaped error
      garbage  200 with a body that is not JSON
      huge     200 with a 10 MB body (a JSON string that never ends in time)
    """

    def __init__(self, behaviour="good", content=None, delay=3.0):
        self.behaviour = behaviour
        self.content = content if content is not None else block(MODEL_MARKERS)
        self.delay = delay
        self.abandoned = threading.Event()
        self.up = start_upstream(self._handle)

    @property
    def base_url(self):
        return self.up.base_url

    @property
    def calls(self):
        return len(self.up.requests)

    def _handle(self, ex):
        b = self.behaviour
        if b == "good":
            return ex.json(200, completion(self.content))
        if b == "slow":
            end = time.monotonic() + self.delay
            while time.monotonic() < end and not self.up.stopping.is_set():
                if ex.peer_closed(0.02):
                    self.abandoned.set()
                    return ex.close()
            return ex.json(200, completion(self.content))
        if b == "500":
            return ex.json(500, {"error": {"message": "annotator is down",
                                           "type": "server_error", "code": None}})
        if b == "garbage":
            return ex.respond(200, b"\x00\x01 this is <MARKER_LIST> not JSON {{{ \xff\xfe")
        if b == "huge":
            head = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
            total = 10 * 1024 * 1024
            hdrs = [("Content-Type", "application/json"), ("Content-Length", str(total))]
            if not ex.send(ex.head(200, hdrs) + head):
                return ex.close()
            chunk = b"x" * 65536
            sent = len(head)
            while sent < total:
                piece = chunk[:total - sent]
                if not ex.send(piece):
                    break
                sent += len(piece)
            return ex.close()
        raise AssertionError("unknown fake annotator behaviour %r" % b)


def model_gateway(ann_url, annotate="model", annotator=None, markers=None, up=None,
                  ann_cfg=None, **extra):
    """A gateway whose default policy calls the annotator model at `ann_url`
    (upstream "ann", with `ann_cfg` merged in); returns (gateway, main
    upstream)."""
    up = up or start_upstream()
    a = {"upstream": "ann", "deadline_ms": 2000}
    a.update(annotator or {})
    m = {"annotate": annotate}
    m.update(markers or {})
    upstreams = extra.pop("upstreams", {})
    upstreams = dict({"ann": dict({"base_url": ann_url}, **(ann_cfg or {}))}, **upstreams)
    policy = harness.deep_merge({"annotator": a}, extra.pop("policy", {}))
    gw = start_gateway(up, markers=m, policy=policy, upstreams=upstreams, **extra)
    return gw, up


_rid = [0]


def new_rid(tag="it"):
    _rid[0] += 1
    return "ann-%s-%d-%d" % (tag, os.getpid(), _rid[0])


def ask(gw, messages, headers=None, timeout=5.0, **fields):
    """One chat request with a fresh X-Request-Id; returns (response, id)."""
    rid = new_rid()
    hdrs = {"X-Request-Id": rid}
    hdrs.update(headers or {})
    resp = gw.chat(chat_body(messages=messages, **fields), headers=hdrs, timeout=timeout)
    return resp, rid


def user(text):
    return [{"role": "user", "content": text}]


def last_user(req):
    msgs = [m for m in req.json()["messages"] if m.get("role") == "user"]
    return msgs[-1]["content"]


def prompt_markers(text):
    """tag -> value of the one marker block at the end of `text` ({} if none)."""
    blocks = BLOCK_RE.findall(text)
    if not blocks:
        return {}
    check(len(blocks) == 1, "more than one marker block in the prompt: %r" % text)
    check(text.endswith("</MARKER_LIST>"), "the marker block is not at the end: %r" % text)
    inner = blocks[0]
    items = ITEM_RE.findall(inner)
    check(len(items) == len(inner.strip().splitlines()),
          "odd lines in the marker block: %r" % inner)
    return dict(items)


def header_markers(resp):
    """tag -> value of the X-Cairn-Markers response header ({} if none)."""
    h = resp.header("x-cairn-markers")
    if not h:
        return {}
    out = {}
    for item in h.split(";"):
        k, sep, v = item.strip().partition("=")
        check(sep, "X-Cairn-Markers item %r is not tag=value" % item)
        out[k] = v
    return out


def upstream_request_for(up, rid, timeout=3.0):
    """The main upstream's request carrying X-Request-Id `rid`."""
    found = wait_for(lambda: [r for r in list(up.requests) if r.header("x-request-id") == rid],
                     timeout)
    check(found, "the main upstream never received request %s (it got %d requests)"
          % (rid, len(up.requests)))
    check(len(found) == 1, "the main upstream received request %s %d times" % (rid, len(found)))
    return found[0]


def logged_markers(rec):
    """tag -> (value, source) from an access record."""
    return {k: (v.get("value"), v.get("source")) for k, v in (rec.get("markers") or {}).items()}


def with_source(markers, source):
    return {k: (str(v), source) for k, v in markers.items()}


def rules_markers_of(conversations):
    """What the rule annotator says about each `messages` list
    (`cairn annotate`, one run), as tag -> value strings."""
    lines = "".join(json.dumps({"id": str(i), "messages": m}) + "\n"
                    for i, m in enumerate(conversations))
    p = subprocess.run([harness.binary(), "annotate", "--rules", "rules"], input=lines.encode(),
                       capture_output=True, timeout=20, env=harness.gateway_env())
    check(p.returncode == 0, "cairn annotate failed: %r" % p.stderr[-500:])
    out = [json.loads(line) for line in p.stdout.decode().strip().splitlines()]
    check(len(out) == len(conversations), "cairn annotate answered %d lines for %d"
          % (len(out), len(conversations)))
    return [{k: str(v) for k, v in o["markers"].items()} for o in out]


def rules_markers(messages):
    return rules_markers_of([messages])[0]


def assert_from_main_upstream(resp):
    """The client got the main upstream's own 200 completion."""
    assert_status(resp, 200)
    obj = resp.json()
    check(obj.get("object") == "chat.completion" and obj.get("id") == COMPLETION["id"],
          "the answer is not the main upstream's completion: %r" % bytes(resp.body[:300]))
    check(obj["choices"][0]["message"]["content"] == "hello",
          "the main upstream's answer was changed: %r" % bytes(resp.body[:300]))


# --- metrics (the admin port: harness.wait_metric) -----------------------------------


def annotations(gw, outcome, expected):
    return wait_metric(gw, "cairn_annotations_total",
                       dict(tenant="default", source="model", outcome=outcome), expected)


# --- 1. model mode: the model's markers reach the prompt -----------------------------


def test_annotator_model_markers_reach_the_upstream_prompt():
    """model mode: cairn asks the annotator (system prompt with the
    taxonomy, the conversation as text, temperature 0, max_tokens 256, no
    stream, the request's X-Request-Id, the annotator upstream's own key
    and none of the client's headers), and the markers it answers are the
    block appended to the main upstream's prompt, X-Cairn-Markers and the
    access log's markers, all with source "model"; the rules' markers are
    not used when the model answered."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url, annotator={"model": "tiny-tagger"},
                           ann_cfg={"api_key_env": "CAIRN_IT_ANNOTATOR_KEY"},
                           env={"CAIRN_IT_ANNOTATOR_KEY": "sk-annotator-test"})
    resp, rid = ask(gw, FIX_MESSAGES, headers={"X-Client-Note": "for-the-main-upstream"})
    assert_from_main_upstream(resp)

    # What the annotator was asked.
    check(ann.calls == 1, "the annotator was called %d times for one request" % ann.calls)
    areq = ann.up.requests[0]
    check(areq.method == "POST" and areq.target == "/v1/chat/completions",
          "annotator request %s %s, want POST /v1/chat/completions" % (areq.method, areq.target))
    check(areq.header("x-request-id") == rid,
          "annotator X-Request-Id %r, want %r" % (areq.header("x-request-id"), rid))
    check((areq.header("content-type") or "").startswith("application/json"),
          "annotator Content-Type %r" % areq.header("content-type"))
    check(areq.header("authorization") == "Bearer sk-annotator-test",
          "annotator Authorization %r, want its own upstream's key"
          % areq.header("authorization"))
    check(harness.CANARY.encode() not in areq.raw_head + areq.body,
          "the main upstream's API key was sent to the annotator")
    check(areq.header("x-client-note") is None, "a client header reached the annotator")
    body = areq.json()
    check(body.get("model") == "tiny-tagger", "annotator model %r" % body.get("model"))
    check(body.get("temperature") == 0 and body.get("max_tokens") == 256 and
          body.get("stream") is False,
          "annotator sampling fields: %r" % {k: body.get(k) for k in
                                             ("temperature", "max_tokens", "stream")})
    msgs = body.get("messages")
    check(isinstance(msgs, list) and len(msgs) == 2 and msgs[0].get("role") == "system" and
          msgs[1].get("role") == "user", "annotator messages: %r" % msgs)
    system = msgs[0]["content"]
    for tag in ("task", "domain", "code_type", "lang", "length_tokens", "length_bucket"):
        check("<%s>" % tag in system, "the annotator's system prompt does not list <%s>" % tag)
    for value in ("CodeExplanation", "Summarization", "Finance", "rust"):
        check(value in system, "the annotator's system prompt lacks the value %s" % value)
    check("{{taxonomy}}" not in system, "the taxonomy placeholder was not filled in")
    check(msgs[1]["content"] == "SYSTEM: You are a terse assistant.\n\nUSER: " + FIX_TEXT,
          "the conversation sent to the annotator: %r" % msgs[1]["content"])

    # What the main upstream got.
    ureq = upstream_request_for(up, rid)
    check(ureq.header("authorization") == "Bearer " + harness.CANARY,
          "the main upstream's Authorization is not its own key")
    check(ureq.header("x-client-note") == "for-the-main-upstream",
          "the client's header did not reach the main upstream")
    prompt = last_user(ureq)
    check(prompt.startswith(FIX_TEXT + "\n\n<MARKER_LIST>\n"),
          "the prompt does not start with the user's text and the block: %r" % prompt)
    check(prompt_markers(prompt) == MODEL_MARKERS,
          "prompt markers %r, want the model's %r" % (prompt_markers(prompt), MODEL_MARKERS))
    check(ureq.json()["messages"][0] == FIX_MESSAGES[0], "the system message was changed")
    check(header_markers(resp) == MODEL_MARKERS,
          "X-Cairn-Markers %r, want %r" % (resp.header("x-cairn-markers"), MODEL_MARKERS))
    rules = rules_markers(FIX_MESSAGES)
    check("lang" in rules, "precondition: the rules give lang for %r: %r" % (FIX_TEXT, rules))
    check("lang" not in prompt_markers(prompt),
          "model mode kept a rules-only marker (lang) although the model answered")

    rec = gw.access_record(rid)
    check(rec.get("status") == 200, "access status %r" % rec.get("status"))
    check(rec.get("annotator") == "ok", "access log annotator %r, want ok" % rec.get("annotator"))
    check(logged_markers(rec) == with_source(MODEL_MARKERS, "model"),
          "access log markers %r" % rec.get("markers"))
    annotations(gw, "ok", 1)


def test_annotator_model_block_in_prose_fence_and_with_junk():
    """The block is found inside prose and inside a ``` fence; tags are
    read by key in any case; unknown tags, values outside the taxonomy,
    non-decimal numbers, oversize values and repeated tags are dropped and
    the valid markers kept (outcome ok)."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url, annotation_cache={"entries": 0})

    prose = ("Sure! Here are the markers for this conversation:\n" +
             block({"task": "Summarization", "lang": "German"}) +
             "\nLet me know if you need anything else.")
    fenced = "```xml\n" + block({"task": "Translation", "domain": "Legal"}) + "\n```"
    junk = ("<MARKER_LIST>\n"
            "<colour>blue</colour>\n"
            "<task>Dancing</task>\n"
            "<length_tokens>0x50</length_tokens>\n"
            "<length_sentences>-3</length_sentences>\n"
            "<domain>" + "Finance" * 2000 + "</domain>\n"
            "<lang>French</lang><lang>Spanish</lang>\n"
            "this line is no tag at all\n"
            "<FORMAT>JSON</FORMAT>\n"
            "<code_type>go</code_type>\n"
            "</MARKER_LIST>")
    cases = [(prose, {"task": "Summarization", "lang": "German"}),
             (fenced, {"task": "Translation", "domain": "Legal"}),
             (junk, {"format": "JSON", "code_type": "go"})]
    for i, (content, want) in enumerate(cases):
        ann.content = content
        resp, rid = ask(gw, user("Case %d: say something about contracts." % i))
        assert_from_main_upstream(resp)
        got = prompt_markers(last_user(upstream_request_for(up, rid)))
        check(got == want, "case %d: prompt markers %r, want %r (answer %r)"
              % (i, got, want, content[:200]))
        check(header_markers(resp) == want, "case %d: X-Cairn-Markers %r"
              % (i, resp.header("x-cairn-markers")))
        rec = gw.access_record(rid)
        check(rec.get("annotator") == "ok", "case %d: annotator outcome %r"
              % (i, rec.get("annotator")))
        check(logged_markers(rec) == with_source(want, "model"),
              "case %d: access log markers %r" % (i, rec.get("markers")))
    annotations(gw, "ok", 3)


def test_annotator_model_stream_request_gets_model_markers():
    """A streamed chat request is annotated like any other: the model's
    markers reach the prompt, and the stream is relayed."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url)
    resp, rid = ask(gw, FIX_MESSAGES, stream=True)
    assert_status(resp, 200)
    check((resp.header("content-type") or "").startswith("text/event-stream"),
          "stream Content-Type %r" % resp.header("content-type"))
    check(b"[DONE]" in bytes(resp.body), "stream not relayed to its end: %r" % bytes(resp.body))
    got = prompt_markers(last_user(upstream_request_for(up, rid)))
    check(got == MODEL_MARKERS, "stream prompt markers %r" % got)
    check(gw.access_record(rid).get("annotator") == "ok", "stream annotator outcome")


def test_annotator_model_conversation_is_cut_to_its_end():
    """max_conversation_bytes (256): a long conversation reaches the
    annotator as its last bytes at most (cut on a UTF-8 boundary), ending
    with the last user turn; the main upstream still gets every message."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url, annotator={"max_conversation_bytes": 256})
    early = "EARLY-TURN " + "blah " * 100
    messages = [{"role": "user", "content": early},
                {"role": "assistant", "content": "\u00e9t\u00e9 " * 80},
                {"role": "user", "content": "LAST-TURN: fix this Python code: def f(: pass"}]
    resp, rid = ask(gw, messages)
    assert_from_main_upstream(resp)
    conv = ann.up.requests[0].json()["messages"][1]["content"]
    check(len(conv.encode("utf-8")) <= 256,
          "the annotator got %d bytes of conversation, limit 256" % len(conv.encode("utf-8")))
    check(conv.endswith("\n\nUSER: LAST-TURN: fix this Python code: def f(: pass"),
          "the end of the conversation was not kept: %r" % conv[-120:])
    check("EARLY-TURN" not in conv, "the start of a long conversation was kept: %r" % conv[:80])
    check(len(conv.encode("utf-8")) > 200, "too much was cut: %d bytes" % len(conv.encode()))
    sent = upstream_request_for(up, rid).json()["messages"]
    check(len(sent) == 3 and sent[0]["content"] == early,
          "the main upstream did not get the whole conversation")


def test_annotator_model_markers_drive_validation_once():
    """The model's markers are what the answer is validated against: a
    40-word answer breaks the model's length_tokens 10 and is asked for
    again (feedback), with the model's block in the retry too, and the
    annotator is called once per client request, not per attempt."""
    ann = FakeAnnotator("good", content=block({"task": "CodeFix", "length_tokens": "10"}))
    answers = [" ".join(["alpha"] + ["word"] * 39), " ".join(["bravo"] + ["word"] * 7)]
    count = [0]
    lock = threading.Lock()

    def main(ex):
        with lock:
            k = min(count[0], 1)
            count[0] += 1
        c = completion(answers[k])
        c["id"] = "chatcmpl-%d" % k
        ex.json(200, c)
    up = start_upstream(main)
    gw, _ = model_gateway(ann.base_url, up=up, policy={
        "validation": {"markers": ["length_tokens"],
                       "retry": {"attempts": 2, "mode": "feedback", "deadline_ms": 5000}}})
    resp, rid = ask(gw, FIX_MESSAGES)
    assert_status(resp, 200)
    check(resp.json()["choices"][0]["message"]["content"] == answers[1],
          "the client did not get the short second answer: %r" % bytes(resp.body[:300]))
    check(resp.header("x-cairn-attempts") == "2", "X-Cairn-Attempts %r"
          % resp.header("x-cairn-attempts"))
    check(len(up.requests) == 2, "the main upstream got %d attempts, want 2" % len(up.requests))
    check(ann.calls == 1, "the annotator was called %d times for one client request" % ann.calls)
    want = {"task": "CodeFix", "length_tokens": "10"}
    for i, r in enumerate(up.requests):
        got = prompt_markers(last_user(r))
        check(got == want, "attempt %d prompt markers %r, want the model's %r" % (i + 1, got, want))
    rec = gw.access_record(rid)
    check(rec.get("annotator") == "ok" and rec.get("attempts") == 2,
          "access record annotator %r attempts %r" % (rec.get("annotator"), rec.get("attempts")))


def test_annotator_model_per_tenant_policy():
    """Only the tenants whose policy says "model" call the annotator: a
    tenant with annotate "off" sends its prompt untouched; the metrics
    count the model annotations under the calling tenant."""
    ann = FakeAnnotator("good")
    ka, kb = new_key(), new_key()
    up = start_upstream()
    gw = start_gateway(up, auth="keys", upstreams={"ann": {"base_url": ann.base_url}},
                       policy={"annotator": {"upstream": "ann", "deadline_ms": 2000}},
                       tenants={"a": tenant(ka, markers={"annotate": "model"}),
                                "b": tenant(kb, markers={"annotate": "off"})})
    resp, rid_b = ask(gw, FIX_MESSAGES, headers={"Authorization": "Bearer " + kb})
    assert_from_main_upstream(resp)
    check(ann.calls == 0, "tenant b (annotate off) called the annotator")
    check(last_user(upstream_request_for(up, rid_b)) == FIX_TEXT, "tenant b's prompt changed")
    resp, rid_a = ask(gw, FIX_MESSAGES, headers={"Authorization": "Bearer " + ka})
    assert_from_main_upstream(resp)
    check(ann.calls == 1, "tenant a (annotate model) made %d annotator calls" % ann.calls)
    check(prompt_markers(last_user(upstream_request_for(up, rid_a))) == MODEL_MARKERS,
          "tenant a did not get the model's markers")
    check(gw.access_record(rid_a).get("tenant") == "a", "tenant of the record")
    m = wait_metric(gw, "cairn_annotations_total", dict(tenant="a", source="model", outcome="ok"),
                    1)
    check(not [l for l, _ in m.series("cairn_annotations_total") if l.get("tenant") == "b"],
          "annotations counted for tenant b: %r" % m.series("cairn_annotations_total"))


def test_annotator_not_called_for_rejected_requests():
    """A request the gateway refuses anyway (bad JSON 400, wrong media type
    415, a pinned marker the policy refuses 403, an unknown pinned marker
    400) gets the same answer as without the annotator, which is never
    called."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url, markers={"allow_pinning": False})
    resp = gw.chat(b'{"model": "gpt-test", "messages": [', headers={"X-Request-Id": new_rid()})
    check(resp.status == 400, "bad JSON: status %r" % resp.status)
    resp = gw.request("POST", CHAT, json.dumps(chat_body()).encode(),
                      headers={"Content-Type": "text/plain"})
    check(resp.status == 415, "text/plain body: status %r" % resp.status)
    resp = gw.chat(chat_body(), headers={"X-Cairn-Markers": "task=CodeFix"})
    check(resp.status == 403, "pinning refused by policy: status %r" % resp.status)
    gw2, up2 = model_gateway(ann.base_url)
    resp = gw2.chat(chat_body(), headers={"X-Cairn-Markers": "colour=blue"})
    check(resp.status == 400, "unknown pinned marker: status %r" % resp.status)
    check(ann.calls == 0, "the annotator was called %d times for refused requests" % ann.calls)
    check(not up.requests and not up2.requests, "a refused request reached the main upstream")


# --- 2. fail-open paths (model mode, fallback rules) -----------------------------------


def check_fail_open(ann_url, outcome, ann=None, annotator=None, max_seconds=3.0,
                    messages=FIX_MESSAGES):
    """One request through a failing annotator: the client gets the main
    upstream's 200, the prompt has the rules' markers (source rules), the
    access log and the metrics name `outcome`. Returns the elapsed time."""
    cfg = {"fallback": "rules"}
    cfg.update(annotator or {})
    gw, up = model_gateway(ann_url, annotator=cfg)
    gw.mark_fds()
    rules = rules_markers(messages)
    check(rules, "precondition: the rules find markers in %r" % messages)
    t0 = time.monotonic()
    resp, rid = ask(gw, messages, timeout=max_seconds + 2)
    took = time.monotonic() - t0
    assert_from_main_upstream(resp)
    check(took < max_seconds, "the request took %.2fs with a failing annotator (%s), limit %.1fs"
          % (took, outcome, max_seconds))
    if ann is not None:
        check(ann.calls == 1, "the annotator was called %d times" % ann.calls)
    ureq = upstream_request_for(up, rid)
    check(len(up.requests) == 1, "the main upstream got %d requests for one" % len(up.requests))
    got = prompt_markers(last_user(ureq))
    check(got == rules, "%s: prompt markers %r, want the rules' %r" % (outcome, got, rules))
    check(header_markers(resp) == rules, "%s: X-Cairn-Markers %r, want %r"
          % (outcome, resp.header("x-cairn-markers"), rules))
    rec = gw.access_record(rid)
    check(rec.get("status") == 200, "%s: access status %r" % (outcome, rec.get("status")))
    check(rec.get("annotator") == outcome, "access log annotator %r, want %r"
          % (rec.get("annotator"), outcome))
    check(logged_markers(rec) == with_source(rules, "rules"),
          "%s: access log markers %r, want the rules' %r" % (outcome, rec.get("markers"), rules))
    m = annotations(gw, outcome, 1)
    others = [(l, v) for l, v in m.series("cairn_annotations_total")
              if l.get("source") == "model" and l.get("outcome") != outcome and v]
    check(not others, "other model outcomes counted: %r" % others)
    # Healthy afterwards (another request fails open the same way), and
    # nothing of the failed call left open.
    harness.assert_recovered(gw, up)
    return gw, took


def test_annotator_timeout_fails_open():
    """An annotator slower than deadline_ms (200 ms): the request goes on
    with the rules' markers well before the annotator would answer
    (outcome timeout), and the gateway abandons the annotator call."""
    ann = FakeAnnotator("slow", delay=5.0)
    gw, took = check_fail_open(ann.base_url, "timeout", ann=ann,
                               annotator={"deadline_ms": 200}, max_seconds=2.0)
    check(took >= 0.18, "the request finished in %.3fs, before the 200 ms deadline" % took)
    check(ann.abandoned.wait(2.0),
          "the gateway kept the timed-out annotator connection open")


def test_annotator_http_500_fails_open():
    """The annotator answers HTTP 500: outcome error, rules' markers."""
    ann = FakeAnnotator("500")
    check_fail_open(ann.base_url, "error", ann=ann)


def test_annotator_connection_refused_fails_open():
    """Nothing listens at the annotator's address: outcome error, rules'
    markers."""
    check_fail_open(refused_url(), "error")


def test_annotator_garbage_answer_fails_open():
    """The annotator answers 200 with bytes that are not JSON: outcome
    unparsable, rules' markers."""
    ann = FakeAnnotator("garbage")
    check_fail_open(ann.base_url, "unparsable", ann=ann)


def test_annotator_answer_without_block_fails_open():
    """A well-formed completion whose content is prose without a block (or
    a block that never closes): outcome unparsable, rules' markers."""
    ann = FakeAnnotator("good", content="The user wants a code fix. <task>CodeFix</task>")
    check_fail_open(ann.base_url, "unparsable", ann=ann)
    ann2 = FakeAnnotator("good", content="<MARKER_LIST>\n<task>CodeFix</task>\n")
    check_fail_open(ann2.base_url, "unparsable", ann=ann2)


def test_annotator_10mb_answer_fails_open():
    """A 10 MB annotator answer (over the 1 MiB cap): outcome error, rules'
    markers, and the request is not held for the whole transfer."""
    ann = FakeAnnotator("huge")
    check_fail_open(ann.base_url, "error", ann=ann, max_seconds=3.0)


def test_annotator_only_unknown_markers_is_ok_without_markers():
    """A block holding only unknown tags and values is an answer (outcome
    ok) with no markers: in model mode the rules' markers are not used
    either (the model answered), so the prompt carries no block; in
    rules+model the rules' markers stay."""
    content = block({"colour": "blue", "task": "Juggling", "domain": "Cooking",
                     "length_tokens": "lots"})
    ann = FakeAnnotator("good", content=content)
    gw, up = model_gateway(ann.base_url, annotator={"fallback": "rules"})
    resp, rid = ask(gw, FIX_MESSAGES)
    assert_from_main_upstream(resp)
    prompt = last_user(upstream_request_for(up, rid))
    check(prompt == FIX_TEXT, "model mode, empty model answer: the prompt was changed to %r"
          % prompt)
    check(resp.header("x-cairn-markers") is None,
          "X-Cairn-Markers %r with no markers" % resp.header("x-cairn-markers"))
    rec = gw.access_record(rid)
    check(rec.get("annotator") == "ok", "annotator outcome %r, want ok" % rec.get("annotator"))
    check(not rec.get("markers"), "access log markers %r, want none" % rec.get("markers"))
    annotations(gw, "ok", 1)

    gw2, up2 = model_gateway(ann.base_url, annotate="rules+model")
    resp, rid = ask(gw2, FIX_MESSAGES)
    assert_from_main_upstream(resp)
    rules = rules_markers(FIX_MESSAGES)
    got = prompt_markers(last_user(upstream_request_for(up2, rid)))
    check(got == rules, "rules+model, empty model answer: prompt markers %r, want the rules' %r"
          % (got, rules))
    rec = gw2.access_record(rid)
    check(rec.get("annotator") == "ok" and logged_markers(rec) == with_source(rules, "rules"),
          "rules+model access record: %r" % {k: rec.get(k) for k in ("annotator", "markers")})


# --- 3. fallback "none" ---------------------------------------------------------------


def test_annotator_fallback_none_sends_no_annotated_markers():
    """model mode with fallback "none": when the annotator fails (500,
    garbage, timeout) the prompt goes out without any annotated marker
    (the rules do not stand in), while a fixed marker still does; when it
    answers, its markers are used."""
    ann = FakeAnnotator("500", delay=3.0)
    gw, up = model_gateway(ann.base_url, annotator={"fallback": "none", "deadline_ms": 300},
                           annotation_cache={"entries": 0})
    for behaviour, outcome in (("500", "error"), ("garbage", "unparsable"),
                               ("slow", "timeout")):
        ann.behaviour = behaviour
        resp, rid = ask(gw, FIX_MESSAGES)
        assert_from_main_upstream(resp)
        prompt = last_user(upstream_request_for(up, rid))
        check(prompt == FIX_TEXT, "%s with fallback none: prompt %r, want it untouched"
              % (outcome, prompt))
        check(resp.header("x-cairn-markers") is None,
              "%s with fallback none: X-Cairn-Markers %r" % (outcome, resp.header("x-cairn-markers")))
        rec = gw.access_record(rid)
        check(rec.get("annotator") == outcome, "annotator outcome %r, want %r"
              % (rec.get("annotator"), outcome))
        check(not rec.get("markers"), "%s: access log markers %r" % (outcome, rec.get("markers")))
    ann.behaviour = "good"
    resp, rid = ask(gw, FIX_MESSAGES)
    assert_from_main_upstream(resp)
    got = prompt_markers(last_user(upstream_request_for(up, rid)))
    check(got == MODEL_MARKERS, "fallback none, model answered: prompt markers %r" % got)

    # A fixed marker is not an annotated one: it stays when the model fails.
    ann.behaviour = "500"
    gw2, up2 = model_gateway(ann.base_url, annotator={"fallback": "none"},
                             markers={"fixed": {"style": "Formal"}})
    resp, rid = ask(gw2, FIX_MESSAGES)
    assert_from_main_upstream(resp)
    got = prompt_markers(last_user(upstream_request_for(up2, rid)))
    check(got == {"style": "Formal"}, "fallback none + fixed: prompt markers %r" % got)
    check(logged_markers(gw2.access_record(rid)) == {"style": ("Formal", "fixed")},
          "fallback none + fixed: access log markers")


# --- 4. rules+model merge ----------------------------------------------------------------


def test_annotator_rules_model_merge_and_precedence():
    """rules+model: the rules read "at most 50 words" as length_tokens 50,
    the model says 80 (and task Summarization, domain, format): length_tokens
    stays 50 from the rules (prefer_rules), task, domain and length_bucket
    come from the model (not in prefer_rules), length_sentences from the
    model (the rules have none), tags only the rules give stay; a fixed
    marker (format) beats the model; a pinned marker (X-Cairn-Markers)
    beats both. With prefer_rules [] the model's length_tokens wins; in
    "model" mode only the model's markers go out."""
    messages = user(SUMMARY_TEXT)
    rules = rules_markers(messages)
    check(rules.get("length_tokens") == "50",
          "precondition: the rules read 'at most 50 words' as length_tokens 50: %r" % rules)
    check(rules.get("length_bucket") == "concise" and "length_sentences" not in rules,
          "precondition: the rules give length_bucket concise and no length_sentences: %r"
          % rules)
    model = {"task": "Summarization", "domain": "SocialSciences", "format": "JSON",
             "length_tokens": "80", "length_bucket": "medium", "length_sentences": "3"}
    ann = FakeAnnotator("good", content=block(model))
    gw, up = model_gateway(ann.base_url, annotate="rules+model",
                           markers={"fixed": {"format": "Markdown"}})
    resp, rid = ask(gw, messages)
    assert_from_main_upstream(resp)
    want = {k: (v, "rules") for k, v in rules.items()}
    want.update({"task": ("Summarization", "model"), "domain": ("SocialSciences", "model"),
                 "format": ("Markdown", "fixed"), "length_tokens": ("50", "rules"),
                 # not in prefer_rules: the model's value beats the rules'
                 "length_bucket": ("medium", "model"),
                 # in prefer_rules, but the rules have no value: the model's
                 "length_sentences": ("3", "model")})
    got = prompt_markers(last_user(upstream_request_for(up, rid)))
    check(got == {k: v for k, (v, _) in want.items()},
          "rules+model prompt markers %r, want %r" % (got, want))
    check(header_markers(resp) == got, "X-Cairn-Markers %r" % resp.header("x-cairn-markers"))
    rec = gw.access_record(rid)
    check(rec.get("annotator") == "ok", "annotator outcome %r" % rec.get("annotator"))
    check(logged_markers(rec) == want, "access log markers %r, want %r"
          % (rec.get("markers"), want))

    # Pinned beats the model (task) and the rules (length_tokens).
    resp, rid = ask(gw, messages, headers={"X-Cairn-Markers": "task=Rewrite; length_tokens=30"})
    assert_from_main_upstream(resp)
    want2 = dict(want, task=("Rewrite", "pinned"), length_tokens=("30", "pinned"))
    got = prompt_markers(last_user(upstream_request_for(up, rid)))
    check(got == {k: v for k, (v, _) in want2.items()},
          "pinned: prompt markers %r, want %r" % (got, want2))
    rec = gw.access_record(rid)
    check(logged_markers(rec) == want2, "pinned: access log markers %r" % rec.get("markers"))
    check(rec.get("annotator") in ("ok", "cache_hit"), "pinned: outcome %r"
          % rec.get("annotator"))

    # Outside prefer_rules the model wins over the rules: with prefer_rules
    # [] the model's 80 is sent.
    gw2, up2 = model_gateway(ann.base_url, annotate="rules+model",
                             annotator={"prefer_rules": []})
    resp, rid = ask(gw2, messages)
    assert_from_main_upstream(resp)
    got = prompt_markers(last_user(upstream_request_for(up2, rid)))
    check(got.get("length_tokens") == "80",
          "prefer_rules []: length_tokens %r, want the model's 80" % got.get("length_tokens"))
    check(logged_markers(gw2.access_record(rid)).get("length_tokens") == ("80", "model"),
          "prefer_rules []: access log length_tokens")

    # In "model" mode the rules are not merged: the model's 80 goes out and
    # a tag only the rules give (lang) does not.
    gw3, up3 = model_gateway(ann.base_url, annotate="model")
    resp, rid = ask(gw3, messages)
    assert_from_main_upstream(resp)
    got = prompt_markers(last_user(upstream_request_for(up3, rid)))
    check(got == model, "model mode: prompt markers %r, want the model's %r" % (got, model))


# --- 5. cache ----------------------------------------------------------------------------


def test_annotator_cache_serves_repeated_conversations():
    """Two identical requests call the annotator once (the second is a
    cache_hit with the same markers); another conversation misses; the
    cache metrics count entries, bytes, hits and misses."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url)
    resp1, rid1 = ask(gw, FIX_MESSAGES)
    assert_from_main_upstream(resp1)
    check(ann.calls == 1, "first request: %d annotator calls" % ann.calls)
    ann.content = block({"task": "Rewrite"})  # a second call would be visible
    resp2, rid2 = ask(gw, FIX_MESSAGES)
    assert_from_main_upstream(resp2)
    check(ann.calls == 1, "an identical conversation called the annotator again (%d calls)"
          % ann.calls)
    p1 = last_user(upstream_request_for(up, rid1))
    p2 = last_user(upstream_request_for(up, rid2))
    check(p1 == p2 and prompt_markers(p2) == MODEL_MARKERS,
          "cached markers differ: %r vs %r" % (p1, p2))
    check(resp1.header("x-cairn-markers") == resp2.header("x-cairn-markers"),
          "X-Cairn-Markers %r then %r" % (resp1.header("x-cairn-markers"),
                                         resp2.header("x-cairn-markers")))
    r1, r2 = gw.access_record(rid1), gw.access_record(rid2)
    check(r1.get("annotator") == "ok" and r2.get("annotator") == "cache_hit",
          "outcomes %r then %r, want ok then cache_hit" % (r1.get("annotator"),
                                                           r2.get("annotator")))
    check(logged_markers(r2) == with_source(MODEL_MARKERS, "model"),
          "cache hit access log markers %r" % r2.get("markers"))

    resp3, rid3 = ask(gw, user("A different conversation: explain Python decorators."))
    assert_from_main_upstream(resp3)
    check(ann.calls == 2, "a different conversation did not call the annotator (%d calls)"
          % ann.calls)
    check(gw.access_record(rid3).get("annotator") == "ok", "different conversation outcome")
    check(prompt_markers(last_user(upstream_request_for(up, rid3))) == {"task": "Rewrite"},
          "different conversation got cached markers")

    annotations(gw, "cache_hit", 1)
    # The cache's gauges are brought up to date a few times a second.
    m = wait_metric(gw, "cairn_annotation_cache_entries", {}, 2)
    check(m.get("cairn_annotations_total", tenant="default", source="model",
             outcome="ok") == 2, "ok annotations: %r" % m.series("cairn_annotations_total"))
    check((m.get("cairn_annotation_cache_bytes") or 0) > 0,
          "cache bytes %r" % m.get("cairn_annotation_cache_bytes"))
    check(m.get("cairn_annotation_cache_lookups_total", result="hit") == 1 and
          m.get("cairn_annotation_cache_lookups_total", result="miss") == 2,
          "cache lookups %r, want hit 1 miss 2" % m.series("cairn_annotation_cache_lookups_total"))


def test_annotator_cache_off_calls_every_time():
    """annotation_cache.entries 0: identical requests call the annotator
    each time (outcome ok both times) and the cache metrics count nothing."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url, annotation_cache={"entries": 0})
    rids = []
    for _ in range(2):
        resp, rid = ask(gw, FIX_MESSAGES)
        assert_from_main_upstream(resp)
        rids.append(rid)
    check(ann.calls == 2, "with the cache off the annotator was called %d times for 2"
          % ann.calls)
    for rid in rids:
        check(gw.access_record(rid).get("annotator") == "ok", "outcome with the cache off")
        check(prompt_markers(last_user(upstream_request_for(up, rid))) == MODEL_MARKERS,
              "markers with the cache off")
    m = annotations(gw, "ok", 2)
    check(not m.get("cairn_annotation_cache_entries"),
          "cache entries %r with the cache off" % m.get("cairn_annotation_cache_entries"))
    check(not m.get("cairn_annotation_cache_lookups_total", result="hit"),
          "cache hits with the cache off: %r" % m.series("cairn_annotation_cache_lookups_total"))
    check(not m.get("cairn_annotations_total", tenant="default", source="model",
                 outcome="cache_hit"), "cache_hit outcomes with the cache off")


def test_annotator_cache_entries_expire_after_ttl():
    """annotation_cache.ttl_ms (300): the same conversation is served from
    the cache within the ttl and asks the annotator again after it."""
    ann = FakeAnnotator("good")
    gw, up = model_gateway(ann.base_url, annotation_cache={"ttl_ms": 300})
    outcomes = []
    for pause in (0, 0, 0.5):
        time.sleep(pause)
        resp, rid = ask(gw, FIX_MESSAGES)
        assert_from_main_upstream(resp)
        outcomes.append(gw.access_record(rid).get("annotator"))
    check(outcomes == ["ok", "cache_hit", "ok"],
          "outcomes %r, want ok, cache_hit, then ok once the ttl passed" % outcomes)
    check(ann.calls == 2, "the annotator was called %d times, want 2" % ann.calls)


# --- 6. circuit breaker -----------------------------------------------------------------


def test_annotator_breaker_opens_probes_and_closes():
    """breaker failures 2, cooldown 500 ms, annotator answering 500:
    requests 1-2 call it (error); request 3 does not (breaker_open, fast);
    after the cool-down one request probes it (still 500: the breaker opens
    again and the next request does not call); once the annotator is fixed
    the next probe closes the breaker and later requests call it normally.
    Every request gets the main upstream's 200 with the rules' markers or
    the model's."""
    ann = FakeAnnotator("500")
    gw, up = model_gateway(ann.base_url, annotator={
        "fallback": "rules", "breaker": {"failures": 2, "cooldown_ms": 500}})
    n = [0]
    # Every request is another conversation (a good answer is cached); the
    # rules' markers are worked out first, out of the timed sequence.
    convs = [user("Request %d: fix this Python code: def f(: pass" % i) for i in range(1, 12)]
    rules = rules_markers_of(convs)

    def one(expect_calls, outcome, max_seconds=2.0):
        n[0] += 1
        msgs = convs[n[0] - 1]
        t0 = time.monotonic()
        resp, rid = ask(gw, msgs)
        took = time.monotonic() - t0
        assert_from_main_upstream(resp)
        check(took < max_seconds, "request %d took %.2fs" % (n[0], took))
        check(ann.calls == expect_calls, "after request %d (%s) the annotator had %d calls, "
              "want %d" % (n[0], outcome, ann.calls, expect_calls))
        rec = gw.access_record(rid)
        check(rec.get("annotator") == outcome, "request %d: outcome %r, want %r"
              % (n[0], rec.get("annotator"), outcome))
        got = prompt_markers(last_user(upstream_request_for(up, rid)))
        want = MODEL_MARKERS if outcome == "ok" else rules[n[0] - 1]
        check(got == want, "request %d (%s): prompt markers %r, want %r"
              % (n[0], outcome, got, want))

    one(1, "error")
    one(2, "error")
    one(2, "breaker_open", max_seconds=0.5)   # open: not called
    one(2, "breaker_open", max_seconds=0.5)
    time.sleep(0.6)
    one(3, "error")                            # the probe, still failing
    one(3, "breaker_open", max_seconds=0.5)   # open again
    ann.behaviour = "good"
    one(3, "breaker_open", max_seconds=0.5)   # fixed, but the cool-down is not over
    time.sleep(0.6)
    one(4, "ok")                               # the probe succeeds: closed
    one(5, "ok")
    one(6, "ok")
    m = annotations(gw, "ok", 3)
    for outcome, count in (("error", 3), ("breaker_open", 4)):
        check(m.get("cairn_annotations_total", tenant="default", source="model",
                 outcome=outcome) == count,
              "%s annotations: %r" % (outcome, m.series("cairn_annotations_total")))


# --- 7. client disconnect -----------------------------------------------------------------


def test_annotator_client_leaves_while_annotator_is_slow():
    """A client that disconnects while the annotator is thinking: the
    annotator call is abandoned, the main upstream never gets the request,
    the gateway does not crash (no sanitizer report, exit 0 on SIGTERM) and
    the next request works."""
    ann = FakeAnnotator("slow", delay=4.0)
    gw, up = model_gateway(ann.base_url, annotator={"deadline_ms": 1500})
    rid = new_rid("gone")
    c = gw.client()
    c.send(build_request("POST", CHAT, chat_body(messages=FIX_MESSAGES),
                         {"X-Request-Id": rid}))
    check(ann.up.wait_requests(1, 3.0), "the annotator was never called")
    c.close()
    check(ann.abandoned.wait(2.0),
          "the gateway did not close the annotator call after the client left")
    rec = gw.access_record(rid)
    check(rec.get("status") == 499, "access status %r for a client that left" % rec.get("status"))
    # Past the annotator's deadline: nothing may go on with the abandoned call.
    time.sleep(1.8)
    check(not up.requests, "the main upstream received the abandoned request: %r"
          % [r.header("x-request-id") for r in up.requests])
    check(gw.proc.poll() is None, "the gateway exited")
    assert_status(gw.healthz(), 200)

    # Same with an RST instead of a FIN.
    ann.abandoned.clear()
    rid_rst = new_rid("rst")
    c = gw.client()
    c.send(build_request("POST", CHAT, chat_body(messages=FIX_MESSAGES),
                         {"X-Request-Id": rid_rst}))
    check(ann.up.wait_requests(2, 3.0), "the annotator was not called the second time")
    c.abort()
    check(ann.abandoned.wait(2.0), "the annotator call outlived a reset client")
    gw.access_record(rid_rst)

    ann.behaviour = "good"
    resp, rid2 = ask(gw, FIX_MESSAGES)
    assert_from_main_upstream(resp)
    check(prompt_markers(last_user(upstream_request_for(up, rid2))) == MODEL_MARKERS,
          "the request after the disconnects did not get the model's markers")
    time.sleep(0.2)
    check([r.header("x-request-id") for r in up.requests] == [rid2],
          "the main upstream got %r, want only %r"
          % ([r.header("x-request-id") for r in up.requests], rid2))


# --- 8. configuration ---------------------------------------------------------------------


def check_config_fails(cfg, must_name, name="bad.json"):
    path = write_config(cfg, name)
    code, out, err = run_cairn(["check", "-c", path])
    text = out + err
    check(code == 1, "check of %r exited %d: %r" % (cfg.get("policy"), code, text))
    for want in must_name:
        check(want in text, "check message does not name %r: %r" % (want, text))


def test_annotator_config_needs_an_upstream():
    """annotate "model" (or "rules+model") without policy.annotator.upstream,
    or naming an upstream that does not exist, fails `cairn check` naming
    policy.annotator.upstream (tenants.NAME.annotator.upstream for a
    tenant); a valid annotator config passes."""
    base = {"upstreams": {"default": {"base_url": "http://127.0.0.1:9/v1"},
                          "ann": {"base_url": "http://127.0.0.1:9/v1"}}}
    for mode in ("model", "rules+model"):
        check_config_fails(dict(base, policy={"markers": {"annotate": mode}}),
                           ["policy.annotator.upstream"])
        check_config_fails(dict(base, policy={"markers": {"annotate": mode},
                                              "annotator": {"upstream": "nosuch"}}),
                           ["policy.annotator.upstream", "nosuch"])
    check_config_fails(dict(base, auth="keys", tenants={
        "t1": tenant(new_key(), markers={"annotate": "model"},
                     annotator={"upstream": "missing-one"})}),
        ["tenants.t1.annotator.upstream", "missing-one"])
    good = dict(base, policy={"markers": {"annotate": "model"},
                              "annotator": {"upstream": "ann", "deadline_ms": 250,
                                            "fallback": "none",
                                            "breaker": {"failures": 3, "cooldown_ms": 1000}}},
                annotation_cache={"entries": 0})
    code, out, err = run_cairn(["check", "-c", write_config(good, "good.json")])
    check(code == 0, "check of a valid annotator config exited %d: %r" % (code, out + err))
    # annotate "rules" needs no annotator upstream.
    code, out, err = run_cairn(["check", "-c", write_config(
        dict(base, policy={"markers": {"annotate": "rules"}}), "rules.json")])
    check(code == 0, "annotate rules without an annotator exited %d: %r" % (code, out + err))
