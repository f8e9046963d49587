#!/usr/bin/env python3
"""make demo: what validation and retry do to the violation rate and the
latency, on a simulated marker-trained backend.

The stand-in backend (tests/standin) answers according to the markers it
receives but breaks each of them on purpose: with probability --violate on a
first answer, --violate-retry on an answer asked for again. The same prompts
go through one cairn twice, as two tenants: "report" validates and reports
(one attempt), "retry" asks again with feedback (up to --attempts). The
figures are a simulation of a model's disobedience, not a measurement of one.

usage: tests/demo/run.py [--build DIR] [--requests N] [--violate P]
                         [--violate-retry P] [--attempts N] [--delay-ms N]
"""
import argparse
import hashlib
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROMPTS = [
    "Describe the sea in at most 40 words.",
    "Explain what a compiler does, in under 60 words.",
    "List three uses of copper, answer in JSON.",
    "Give me a short summary of the French revolution in at most 30 words.",
    "Réponds en français : pourquoi le ciel est-il bleu ?",
    "Responde en español: ¿qué es la fotosíntesis?",
    "Write a Go function that reverses a string.",
    "Write a Python function that sums a list, in at most 50 words.",
    "What is the capital of Japan? Answer in at most 10 words.",
    "Explain recursion to a child in at most 45 words.",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_line(proc, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode("utf-8", "replace")
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    sys.exit("demo: %s did not start" % proc.args[0])


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def run_tenant(port, key, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat, violated, attempts = [], 0, []
    for i in range(n):
        body = json.dumps({"model": "standin-1",
                           "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body,
                     {"Content-Type": "application/json", "Authorization": "Bearer " + key})
        resp = conn.getresponse()
        resp.read()
        lat.append((time.perf_counter() - t0) * 1000.0)
        if resp.status != 200:
            sys.exit("demo: HTTP %d" % resp.status)
        violated += resp.getheader("X-Cairn-Violations", "none") != "none"
        attempts.append(int(resp.getheader("X-Cairn-Attempts", "1")))
    conn.close()
    return {"violation_rate": violated / n, "p50_ms": statistics.median(lat),
            "p95_ms": percentile(lat, 95), "mean_attempts": sum(attempts) / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--violate", type=float, default=0.35)
    ap.add_argument("--violate-retry", type=float, default=0.05)
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--delay-ms", type=int, default=20)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="cairn-demo-")
    sport, gport = free_port(), free_port()
    standin = subprocess.Popen(
        [os.path.join(args.build, "cairn-standin"), "--listen", "127.0.0.1:%d" % sport,
         "--violate", str(args.violate), "--violate-retry", str(args.violate_retry),
         "--seed", "7", "--delay-ms", str(args.delay_ms)],
        stderr=subprocess.PIPE)
    wait_line(standin, "listening on")
    keys = {name: "sk-cairn-" + secrets.token_urlsafe(32) for name in ("report", "retry")}

    def tenant(name, attempts):
        return {"keys": [{"sha256": hashlib.sha256(keys[name].encode()).hexdigest()}],
                "validation": {"retry": {"attempts": attempts}}}
    cfg = {"listen": ["127.0.0.1:%d" % gport], "admin": {"listen": []},
           "rules_dir": os.path.join(REPO, "rules"),
           "upstreams": {"default": {"base_url": "http://127.0.0.1:%d/v1" % sport,
                                     "api_key_env": None}},
           "auth": "keys",
           "tenants": {"report": tenant("report", 1), "retry": tenant("retry", args.attempts)},
           "log": {"access": os.path.join(tmp, "access.log")}}
    cfg_path = os.path.join(tmp, "cairn.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    cairn = subprocess.Popen([os.path.join(args.build, "cairn"), "serve", "-c", cfg_path],
                             stderr=subprocess.PIPE)
    try:
        wait_line(cairn, "listening on")
        rows = [("validation, no retry (attempts 1)", run_tenant(gport, keys["report"], args.requests)),
                ("validation + retry with feedback (attempts %d)" % args.attempts,
                 run_tenant(gport, keys["retry"], args.requests))]
    finally:
        cairn.terminate()
        standin.terminate()
        cairn.wait(10)
        standin.wait(10)

    print("make demo — SIMULATION: the stand-in backend breaks each marker with p=%.2f on a first"
          " answer, p=%.2f when asked again; %d ms per answer; %d requests per row"
          % (args.violate, args.violate_retry, args.delay_ms, args.requests))
    print("%-48s %12s %9s %9s %9s" % ("", "violations", "p50 ms", "p95 ms", "attempts"))
    for name, r in rows:
        print("%-48s %11.1f%% %9.1f %9.1f %9.2f" % (name, 100 * r["violation_rate"], r["p50_ms"],
                                                    r["p95_ms"], r["mean_attempts"]))


if __name__ == "__main__":
    main()
