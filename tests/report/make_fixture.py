#!/usr/bin/env python3
"""Write tests/report/fixture.jsonl, the experiment log that
tests/integration/test_report.py checks `cairn report` against.

    python3 tests/report/make_fixture.py > tests/report/fixture.jsonl

Deterministic (a fixed seed), so the file only changes when this does.
What is in it, on purpose:

* tenant "default", experiment "annotation-v1", three arms:
  control (36 requests) and rules (34, plus 1 forced) are large enough for
  a verdict on latency and tokens; model (8) is not, so its differences
  say "too few to say";
* error statuses 0, 502 and 503, null first bytes and null usage, tied
  latencies (rounded to 0.5 ms) for the tie correction;
* judgements of rules against control in both directions, of model
  against a shadow arm "none" that never served, and a forced one;
* tenant "acme": an arm whose name needs escaping in HTML;
* noise the reader must survive: a truncated line, a record with a status
  that is a string, a violation outside "checked", a blank line, a record
  of an unknown kind, and unknown members ("prompt", "answer", "x_new").
"""

import json
import random

rnd = random.Random(20261127)
lines = []
seq = 0


def request(tenant, exp, arm, status=200, latency=100.0, first_byte=50.0, attempts=0,
            checked=(), violations=(), usage=(10, 20), forced=False, **extra):
    global seq
    seq += 1
    rec = {"kind": "request", "time": "2026-11-27T05:%02d:%02d.000Z" % (seq // 60, seq % 60),
           "request_id": "req-%04d" % seq, "tenant": tenant, "experiment": exp, "arm": arm,
           "forced": forced, "unit": "user", "unit_hash": "%016x" % rnd.getrandbits(64),
           "status": status, "upstream_status": status, "stream": seq % 3 == 0,
           "latency_ms": latency, "first_byte_ms": first_byte,
           "markers": {"task": {"value": "CodeFix", "source": "rules"}},
           "attempts": attempts, "checked": list(checked), "violations": list(violations),
           "usage": None if usage is None else
           {"prompt_tokens": usage[0], "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1]}}
    rec.update(extra)
    lines.append(json.dumps(rec, separators=(",", ":")))


def judgement(tenant, exp, arm, other, result, **extra):
    rec = {"kind": "judgement", "time": "2026-11-27T06:00:00.000Z",
           "request_id": "req-%04d" % rnd.randrange(1, 100), "tenant": tenant,
           "experiment": exp, "arm": arm, "other": other, "result": result}
    rec.update(extra)
    lines.append(json.dumps(rec, separators=(",", ":")))


def arm_requests(arm, n, mean_ms, errors, validated, retried, fmt_bad, len_checked, len_bad,
                 prompt, completion):
    for i in range(n):
        status = 200
        if i < errors:
            status = (0, 502, 503)[i % 3]
        latency = round(rnd.gauss(mean_ms, mean_ms / 5) * 2) / 2  # ties on 0.5 ms
        first_byte = None if i % 7 == 3 else round(latency * 0.6, 1)
        attempts = 0
        checked, violations = [], []
        if i < validated:
            attempts = 2 if i < retried else 1
            checked = ["format"] + (["length_words"] if i < len_checked else [])
            if i % validated < fmt_bad:
                violations.append("format")
            if i < len_bad:
                violations.append("length_words")
        usage = None if i % 11 == 5 else (
            max(1, int(rnd.gauss(prompt, prompt / 4))),
            max(1, int(rnd.gauss(completion, completion / 4))))
        extra = {"prompt": "hello %d" % i, "answer": "hi"} if i % 5 == 0 else {}
        request("default", "annotation-v1", arm, status, latency, first_byte, attempts, checked,
                violations, usage, **extra)


arm_requests("control", 36, 300, errors=6, validated=30, retried=10, fmt_bad=12,
             len_checked=20, len_bad=6, prompt=120, completion=240)
arm_requests("rules", 34, 240, errors=1, validated=30, retried=5, fmt_bad=6,
             len_checked=20, len_bad=2, prompt=150, completion=200)
arm_requests("model", 8, 400, errors=0, validated=8, retried=4, fmt_bad=1,
             len_checked=4, len_bad=0, prompt=150, completion=180)
request("default", "annotation-v1", "rules", 200, 5.0, 4.0, 1, ["format"], ["format"],
        (1, 1), forced=True)

for i in range(24):
    result = "win" if i < 13 else "loss" if i < 19 else "tie"
    if i % 2:
        judgement("default", "annotation-v1", "rules", "control", result)
    else:
        flipped = {"win": "loss", "loss": "win", "tie": "tie"}[result]
        judgement("default", "annotation-v1", "control", "rules", flipped)
for result in ("win", "win", "tie", "loss", "win"):
    judgement("default", "annotation-v1", "model", "none", result)
judgement("default", "annotation-v1", "rules", "control", "loss", forced=True)

request("acme", "annotation-v1", "control", 200, 80.0, None, 0, usage=None)
request("acme", "annotation-v1", "a<b>&\"c'", 503, 90.5, 40.0, 1, ["format"], [], x_new=[1])
request("acme", "annotation-v1", "a<b>&\"c'", 200, 70.0, 30.0, 3, ["format"], ["format"])

# Noise, spread through the file.
noise = [
    (10, '{"kind":"request","tenant":"default","experiment":"annotation-v1","arm":"rules",'
         '"status":200,"latency_ms":'),
    (20, json.dumps({"kind": "request", "tenant": "default", "experiment": "annotation-v1",
                     "arm": "control", "status": "200", "latency_ms": 1.0})),
    (30, ""),
    (40, json.dumps({"kind": "heartbeat", "time": "2026-11-27T05:00:00Z"})),
    (50, json.dumps({"kind": "request", "tenant": "default", "experiment": "annotation-v1",
                     "arm": "rules", "status": 200, "latency_ms": 1.0, "attempts": 1,
                     "checked": ["format"], "violations": ["length_words"]})),
]
for at, text in reversed(noise):
    lines.insert(at, text)
print("\n".join(lines))
