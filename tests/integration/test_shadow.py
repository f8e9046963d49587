"""Shadow judging of an experiment through the running gateway, against
fake upstreams only: one backend for both arms (it tells them apart by the
model: arm "b" sends "model-b") and a fake judge whose replies are
scripted. Arm "b" has weight 0, so every request is served by arm "a" and
is eligible; "b" is only ever run as the shadow.

What is checked: the user's answer is the same bytes with shadow judging
on and off, and does not wait for a slow judge; the judge is asked twice
with the answers swapped and the verdict follows both replies (a judge
that always says "A" yields a tie: position bias cancels); the judgement
is a record in the experiment log and a metric; sample 0 sends nothing;
max_in_flight and daily_cap hold, and every offer is counted by outcome; a
failing judge records nothing and counts a failure; SIGTERM with a shadow
in flight exits 0 at once."""

import itertools
import signal
import time

import harness
from harness import (assert_status, chat_body, check, metrics, start_gateway, start_upstream,
                     wait_for, wait_metric)
from test_admin import promtool_check
from test_experiments import experiment_records

JUDGE_MODEL = "judge-1"
LABELS = {"tenant": "default", "experiment": "ab"}
LOGS = itertools.count()  # one experiment log per gateway


def completion(text, model="gpt-test"):
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def backend(served, other):
    """Arm "a" answers `served`, arm "b" (model-b) answers `other`."""
    def handle(ex):
        body = ex.req.json()
        if body.get("stream"):
            ex.start_sse()
            for event in harness.SSE_EVENTS:
                ex.chunk(event)
            return ex.end_chunks()
        model = body["model"]
        return ex.json(200, completion(other if model == "model-b" else served, model))
    return handle


def section(text, tag):
    start = text.index("<%s>\n" % tag) + len(tag) + 3
    return text[start:text.index("\n</%s>" % tag, start)]


def prefers(word, delay=0.0):
    """A judge that picks the answer holding `word` (TIE if both or none)."""
    def reply(prompt):
        a, b = (word in section(prompt, t) for t in ("answer_a", "answer_b"))
        return "A" if a and not b else "B" if b and not a else "TIE"
    return judge(reply, delay)


def judge(reply, delay=0.0, status=200):
    """A judge endpoint: `reply(prompt)` is its text; `delay` seconds first."""
    def handle(ex):
        if delay:
            ex.wait(timeout=delay)  # woken early when the test ends
        body = ex.req.json()
        check(body["model"] == JUDGE_MODEL, "judge asked with model %r" % body["model"])
        prompt = body["messages"][1]["content"]
        if status != 200:
            return ex.json(status, {"error": {"message": "judge down"}})
        return ex.json(200, completion(reply(prompt), JUDGE_MODEL))
    return handle


def shadow_gateway(up, judge_up, shadow=True, log=True, policy=None, **over):
    """Experiment "ab": arm a serves, arm b (weight 0, model-b) is shadowed.
    The harness writes every gateway of a test to the same config file,
    which a worker may read after its master has reported: a test stops
    one gateway before it starts the next."""
    cfg = {"against": "b", "sample": 1, "max_in_flight": 4, "daily_cap": 1000,
           "judge": {"upstream": "judge", "model": JUDGE_MODEL, "deadline_ms": 5000}}
    cfg.update(over)
    experiment = {"name": "ab", "salt": "s1",
                  "arms": {"a": {"weight": 1}, "b": {"weight": 0, "model": "model-b"}}}
    if shadow:
        experiment["shadow"] = cfg
    sections = {"policy": dict(policy or {}, experiment=experiment),
                "upstreams": {"judge": {"base_url": judge_up.base_url}}}
    if log:
        sections["log"] = {"experiment": harness.ctx().path("experiment-%d.log" % next(LOGS))}
    return start_gateway(up, **sections)


def judgements(gw, n, timeout=5.0):
    """The first n judgement records of the experiment log."""
    found = []

    def enough():
        found[:] = [r for r in experiment_records(gw, 0) if r["kind"] == "judgement"]
        return len(found) >= n
    check(wait_for(enough, timeout), "%d judgement records, want %d" % (len(found), n))
    return found


def ask(gw, **fields):
    resp = gw.chat(chat_body(**fields))
    assert_status(resp, 200)
    check(resp.header("x-cairn-arm") == "a", "served by arm %r" % resp.header("x-cairn-arm"))
    return resp


def shadow_requests(up):
    return [r for r in up.requests if r.json().get("model") == "model-b"]


def outcome(m, name):
    return m.get("cairn_shadow_total", outcome=name, **LABELS)


# --- the judgement ---------------------------------------------------------------------


def test_judgement_is_recorded_with_the_served_arms_result():
    """The judge prefers the answer that says BETTER: the served arm loses
    when the shadow's answer says it, and wins when its own does. Each
    judgement asks the judge twice, the answers swapped; the record and the
    metric carry the result from the served arm's side."""
    for served, other, result, verdicts in (("plain answer", "BETTER answer", "loss", ["B", "A"]),
                                            ("BETTER answer", "plain answer", "win", ["A", "B"])):
        up, jd = start_upstream(backend(served, other)), start_upstream(prefers("BETTER"))
        gw = shadow_gateway(up, jd)
        resp = ask(gw, messages=[{"role": "user", "content": "Which is the best answer?"}])
        rec = judgements(gw, 1)[0]
        check(rec["request_id"] == resp.header("x-request-id") and rec["tenant"] == "default" and
              rec["experiment"] == "ab" and rec["arm"] == "a" and rec["other"] == "b" and
              rec["result"] == result and rec["verdicts"] == verdicts,
              "judgement record %r, want %s %r" % (rec, result, verdicts))
        check(len(jd.requests) == 2, "the judge was asked %d times" % len(jd.requests))
        prompts = [r.json()["messages"][1]["content"] for r in jd.requests]
        firsts = sorted(section(p, "answer_a") for p in prompts)
        check(firsts == sorted([served, other]), "both orders asked: %r" % firsts)
        for p in prompts:
            check("USER: Which is the best answer?" in section(p, "conversation"),
                  "the judge did not see the conversation: %r" % p[:300])
        sent = shadow_requests(up)
        check(len(sent) == 1 and "stream" not in sent[0].json() and
              sent[0].json()["messages"] == [{"role": "user",
                                              "content": "Which is the best answer?"}],
              "the shadow request %r" % [r.json() for r in sent])
        m = wait_metric(gw, "cairn_judgements_total",
                        dict(LABELS, arm="a", other="b", result=result), 1)
        check(outcome(m, "started") == 1, "started %r" % outcome(m, "started"))
        promtool_check(m.text)
        check(gw.stop() == 0, "the gateway did not stop cleanly")


def test_a_judge_that_always_says_A_makes_a_tie():
    """Position bias cancels: the same reply in both orders is no
    preference."""
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "A"))
    gw = shadow_gateway(up, jd)
    ask(gw)
    rec = judgements(gw, 1)[0]
    check(rec["result"] == "tie" and rec["verdicts"] == ["A", "A"], "record %r" % rec)


def test_a_failing_judge_records_nothing():
    """A reply that is not one word, an error status, or no reply within
    the judge's deadline: no judgement, one failure counted."""
    cases = [judge(lambda p: "A is better"), judge(None, status=500),
             judge(lambda p: "A", delay=3.0)]
    for handler in cases:
        up, jd = start_upstream(backend("one", "two")), start_upstream(handler)
        gw = shadow_gateway(up, jd, judge={"upstream": "judge", "model": JUDGE_MODEL,
                                           "deadline_ms": 300})
        gw.mark_fds()
        ask(gw)
        wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="failed"), 1)
        check(not [r for r in experiment_records(gw, 1) if r["kind"] == "judgement"],
              "a judgement was recorded")
        check(metrics(gw).series("cairn_judgements_total") == [], "a judgement was counted")
        harness.assert_recovered(gw, up)  # healthy, and no judge connection left open
        check(gw.stop() == 0, "the gateway did not stop cleanly")


# --- the user's answer -------------------------------------------------------------------


def test_the_users_answer_is_unchanged_and_does_not_wait():
    """The same requests through a gateway without shadow judging, then
    through one with it (and a judge that takes a second): the same
    status, headers and body bytes (request ids and dates aside), and each
    answer comes long before the judge does."""
    up, jd = start_upstream(backend("an answer", "another")), start_upstream(
        prefers("answer", delay=1.0))
    bodies = [chat_body(messages=[{"role": "user", "content": "Say something"}], user="u1"),
              chat_body(max_tokens=5)]

    def strip(resp):
        assert_status(resp, 200)
        return (resp.status, bytes(resp.body),
                [(n.lower(), v) for n, v in resp.headers if n.lower() not in ("date",
                                                                             "x-request-id")])
    off = shadow_gateway(up, jd, shadow=False, log=False)
    without = [strip(off.chat(b)) for b in bodies]
    check(off.stop() == 0, "the gateway did not stop cleanly")
    on = shadow_gateway(up, jd)
    for body, want in zip(bodies, without):
        t0 = time.monotonic()
        got = strip(on.chat(body))
        took = time.monotonic() - t0
        check(took < 0.8, "the answer took %.2fs with a judge that takes 1s" % took)
        check(got == want, "the answers differ:\n%r\n%r" % (got, want))
    check(jd.wait_requests(4), "the judge was asked %d times, want 4" % len(jd.requests))
    judgements(on, 2)


def test_a_stream_is_not_shadowed():
    """An answer relayed as it streams is never in hand whole: no offer."""
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "A"))
    gw = shadow_gateway(up, jd)
    resp = gw.chat(chat_body(stream=True))
    assert_status(resp, 200)
    ask(gw)  # one that is: the metric shows up
    m = wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="started"), 1)
    check(len(m.series("cairn_shadow_total")) == 1, "series %r" % m.series("cairn_shadow_total"))
    check(jd.wait_requests(2) and len(shadow_requests(up)) == 1,
          "%d shadow requests for one answer" % len(shadow_requests(up)))


def test_a_stream_held_for_validation_is_shadowed_with_markers():
    """A stream in "buffer" mode is validated whole and replayed: that
    answer is judged too. The shadow runs through arm b's marker stage: its
    prompt carries the block, and the block the model wrote back is gone
    from the answer the judge sees."""
    block = "<MARKER_LIST>\n<format>JSON</format>\n</MARKER_LIST>\n"
    up = start_upstream(backend('{"capital": "Paris"}', block + '{"capital": "Lyon"}'))
    jd = start_upstream(prefers("Paris"))
    policy = {"markers": {"annotate": "rules", "unwrap": True},
              "validation": {"markers": ["format"], "stream": "buffer"}}
    gw = shadow_gateway(up, jd, policy=policy)
    prompt = [{"role": "user", "content": "Answer in JSON: what is the capital of France?"}]
    resp = gw.chat(chat_body(messages=prompt, stream=True))
    assert_status(resp, 200)
    check(resp.header("content-type").startswith("text/event-stream"), "not replayed as SSE")
    rec = judgements(gw, 1)[0]
    check(rec["result"] == "win" and rec["verdicts"] == ["A", "B"], "record %r" % rec)
    shadow = shadow_requests(up)[0].json()
    check("<MARKER_LIST>" in shadow["messages"][-1]["content"] and "stream" not in shadow,
          "the shadow request %r" % shadow)
    for r in jd.requests:
        check("MARKER_LIST" not in r.json()["messages"][1]["content"],
              "the judge saw a marker block")


# --- the bounds --------------------------------------------------------------------------


def test_sample_zero_sends_nothing():
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "A"))
    gw = shadow_gateway(up, jd, sample=0)
    for _ in range(5):
        ask(gw)
    m = wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="sampled_out"), 5)
    check(len(m.series("cairn_shadow_total")) == 1, "series %r" % m.series("cairn_shadow_total"))
    check(len(up.requests) == 5 and not shadow_requests(up), "shadow requests were sent")
    check(jd.requests == [], "the judge was asked")


def test_sample_rate_is_respected():
    """sample 0.3 over 200 requests: near 60 started, the rest sampled out."""
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "TIE"))
    gw = shadow_gateway(up, jd, sample=0.3, max_in_flight=1000, daily_cap=0, log=False)
    for _ in range(200):
        ask(gw)
    counts = {}

    def all_counted():
        m = metrics(gw)
        counts.update((o, outcome(m, o) or 0) for o in ("started", "sampled_out"))
        return counts["started"] + counts["sampled_out"] == 200
    check(wait_for(all_counted, 3.0), "offers counted: %r" % counts)
    check(30 <= counts["started"] <= 90, "%d of 200 started at sample 0.3" % counts["started"])


def test_max_in_flight_holds():
    """max_in_flight 1 and a judge that takes 1.5 s: the first offer starts,
    the next ones are refused as in_flight_cap; once its judgement is in,
    the slot is free again."""
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "A",
                                                                         delay=1.5))
    gw = shadow_gateway(up, jd, max_in_flight=1)
    for _ in range(4):
        ask(gw)
    m = wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="in_flight_cap"), 3)
    check(outcome(m, "started") == 1, "started %r" % outcome(m, "started"))
    check(jd.wait_requests(2) and len(shadow_requests(up)) == 1, "one shadow should be out")
    judgements(gw, 1)
    ask(gw)
    wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="started"), 2)


def test_daily_cap_holds():
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "B"))
    gw = shadow_gateway(up, jd, daily_cap=2)
    for _ in range(5):
        ask(gw)
    m = wait_metric(gw, "cairn_shadow_total", dict(LABELS, outcome="daily_cap"), 3)
    check(outcome(m, "started") == 2, "started %r" % outcome(m, "started"))
    judgements(gw, 2)
    check(len(shadow_requests(up)) == 2 and len(jd.requests) == 4,
          "%d shadows and %d judge calls for a cap of 2"
          % (len(shadow_requests(up)), len(jd.requests)))


def test_sigterm_does_not_wait_for_a_shadow():
    """The judge is still thinking when SIGTERM comes: the gateway exits 0
    at once (no open connection holds the drain), the shadow cancelled and
    freed (the teardown fails the test on a sanitizer report)."""
    up, jd = start_upstream(backend("one", "two")), start_upstream(judge(lambda p: "A",
                                                                         delay=8.0))
    gw = shadow_gateway(up, jd, judge={"upstream": "judge", "model": JUDGE_MODEL,
                                       "deadline_ms": 30000})
    ask(gw)
    check(jd.wait_requests(2), "the judge was not asked")
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    code = gw.wait_exit(5.0)
    check(code == 0, "exit %r after SIGTERM" % code)
    check(time.monotonic() - t0 < 3.0, "the gateway waited %.1fs for the shadow"
          % (time.monotonic() - t0))
    check(not [r for r in experiment_records(gw, 1) if r["kind"] == "judgement"],
          "a judgement from a cancelled shadow")
