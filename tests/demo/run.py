#!/usr/bin/env python3
"""make demo: what markers, validation and retry do, on a simulated
marker-trained backend, shown two ways.

The stand-in backend (tests/standin) answers according to the markers it
receives but breaks each of them on purpose: with probability --violate on a
first answer, --violate-retry on an answer asked for again. The figures are
a simulation of a model's disobedience, not a measurement of one.

1. Validation: the same prompts go through one cairn twice, as two tenants:
   "report" validates and reports (one attempt), "retry" asks again with
   feedback (up to --attempts). One table: violation rate, latency,
   attempts.

2. Experiment: --users end users send one request each to a cairn whose
   policy holds an A/B experiment (unit "user", equal weights):
     control      no markers, so nothing to validate;
     rules        the rule annotator's markers, validated, one attempt;
     rules-retry  the same, asking again with feedback (up to --attempts);
     model        the annotator model's markers: the stand-in plays that
                  model too, on an upstream of its own, and names only the
                  task, so nothing is validated; it shows what asking the
                  model costs.
   The experiment log is written to a temp dir (kept, its path is printed),
   `cairn report --baseline rules` prints its figures and writes the HTML
   page (--html).

usage: tests/demo/run.py [--build DIR] [--only validation|experiment]
                         [--requests N] [--users N] [--violate P]
                         [--violate-retry P] [--attempts N] [--delay-ms N]
                         [--html FILE]

  --requests N   prompts per tenant in the validation demo (200)
  --users N      users, one request each, in the experiment (400)
  --html FILE    the experiment's HTML report (BUILD/demo-report.html)

Every process is started on a loopback ephemeral port and stopped at the
end, also after a failure, Ctrl-C or SIGTERM.
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

# The integration tests' harness starts, watches and stops cairn and the
# stand-in (and checks that they exit cleanly): the demo runs in one of its
# contexts rather than managing processes again.
import harness  # noqa: E402
from harness import bearer, build_request, check, new_key, tenant  # noqa: E402

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

# The markers the stand-in both obeys and breaks: validating the others
# would only count answers the simulation never meant to get right.
VALIDATED = ["length_tokens", "format", "lang", "code_type"]

# A retry costs a few stand-in delays; this bounds one request however the
# options are set, so a stuck process fails the demo instead of hanging it.
REQUEST_TIMEOUT = 30.0


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def standin(args, seed):
    return harness.Standin("--violate", str(args.violate), "--violate-retry",
                           str(args.violate_retry), "--seed", str(seed),
                           "--delay-ms", str(args.delay_ms))


def chat(client, prompt, user=None, headers=None):
    """One chat request on a kept-alive connection: (response, client-side ms).
    A user's request opens with a system message naming them: each
    conversation is then their own, as in real traffic, and not one of ten
    that the annotation cache would answer after its first sight (the rule
    annotator reads the same markers either way)."""
    messages = [{"role": "user", "content": prompt}]
    if user is not None:
        messages.insert(0, {"role": "system", "content": "You are helping %s." % user})
    body = {"model": "standin-1", "messages": messages}
    if user is not None:
        body["user"] = user
    t0 = time.perf_counter()
    client.send(build_request("POST", "/v1/chat/completions", body, headers))
    resp = client.read_response(timeout=REQUEST_TIMEOUT, method="POST")
    ms = (time.perf_counter() - t0) * 1000.0
    check(resp.status == 200 and resp.complete,
          "HTTP %s from cairn: %r" % (resp.status, bytes(resp.body[:300])))
    return resp, ms


# --- 1. validation, without and with retry ----------------------------------------------


def run_tenant(gw, key, n):
    client = gw.client()
    lat, violated, attempts = [], 0, []
    for i in range(n):
        resp, ms = chat(client, PROMPTS[i % len(PROMPTS)], headers=bearer(key))
        lat.append(ms)
        violated += resp.header("X-Cairn-Violations", "none") != "none"
        attempts.append(int(resp.header("X-Cairn-Attempts", "1")))
    client.close()
    return {"violation_rate": violated / n, "p50_ms": statistics.median(lat),
            "p95_ms": percentile(lat, 95), "mean_attempts": sum(attempts) / n}


def validation_demo(args):
    backend = standin(args, seed=7)
    keys = {"report": new_key(), "retry": new_key()}

    def validating(key, attempts):
        return tenant(key, markers={"annotate": "rules"},
                      validation={"markers": VALIDATED, "retry": {"attempts": attempts}})
    gw = harness.start_gateway(base_url=backend.base_url, auth="keys",
                               tenants={"report": validating(keys["report"], 1),
                                        "retry": validating(keys["retry"], args.attempts)})
    rows = [("validation, no retry (attempts 1)", run_tenant(gw, keys["report"], args.requests)),
            ("validation + retry with feedback (attempts %d)" % args.attempts,
             run_tenant(gw, keys["retry"], args.requests))]

    print("make demo — SIMULATION: the stand-in backend breaks each marker with p=%.2f on a first"
          " answer, p=%.2f when asked again; %d ms per answer; %d requests per row"
          % (args.violate, args.violate_retry, args.delay_ms, args.requests))
    print("%-48s %12s %9s %9s %9s" % ("", "violations", "p50 ms", "p95 ms", "attempts"))
    for name, r in rows:
        print("%-48s %11.1f%% %9.1f %9.1f %9.2f" % (name, 100 * r["violation_rate"], r["p50_ms"],
                                                    r["p95_ms"], r["mean_attempts"]))


# --- 2. an A/B experiment and its report ------------------------------------------------


def experiment_demo(args, keep_dir):
    backend = standin(args, seed=11)
    log = os.path.join(keep_dir, "experiment.log")
    one_attempt = {"retry": {"attempts": 1}}
    arms = {
        "control": {"markers": {"annotate": "off"}, "validation": one_attempt},
        "rules": {"markers": {"annotate": "rules"}, "validation": one_attempt},
        "rules-retry": {"markers": {"annotate": "rules"},
                        "validation": {"retry": {"attempts": args.attempts}}},
        # The annotator model is the stand-in again, on an upstream of its
        # own as it would be in production.
        "model": {"markers": {"annotate": "model"},
                  "annotator": {"upstream": "tagger", "model": "annotator-1"}},
    }
    gw = harness.start_gateway(
        base_url=backend.base_url,
        upstreams={"tagger": {"base_url": backend.base_url}},
        log={"experiment": log},
        policy={"validation": {"markers": VALIDATED},
                "experiment": {"name": "demo", "salt": "demo", "unit": "user", "arms": arms}})
    client = gw.client()
    for i in range(args.users):
        chat(client, PROMPTS[i % len(PROMPTS)], user="demo-user-%d" % i)
    client.close()
    # Stopped, cairn has written every record it queued: the log is whole.
    gw.stop_flushed()

    code, out, err = harness.run_cairn(["report", "--baseline", "rules", "--html", args.html, log])
    check(code == 0, "cairn report exited %d: %s" % (code, err))
    print("make demo — EXPERIMENT, SIMULATION: %d users, one request each, split by user between"
          " %d arms; the stand-in breaks each marker with p=%.2f, p=%.2f when asked again"
          % (args.users, len(arms), args.violate, args.violate_retry))
    print()
    sys.stdout.write(out)
    print()
    print("experiment log: %s" % log)
    print("HTML report:    %s" % args.html)


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description="make demo (see the module docstring)")
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--only", choices=("validation", "experiment"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--users", type=int, default=400)
    ap.add_argument("--violate", type=float, default=0.35)
    ap.add_argument("--violate-retry", type=float, default=0.05)
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--delay-ms", type=int, default=20)
    ap.add_argument("--html")
    args = ap.parse_args()
    harness.BUILD_DIR = args.build
    args.html = os.path.abspath(args.html or os.path.join(args.build, "demo-report.html"))

    # SIGTERM (a killed make) unwinds like Ctrl-C, so the teardown below
    # still stops cairn and the stand-in.
    signal.signal(signal.SIGTERM, interrupt)
    failure = None
    harness.begin_test("demo")
    try:
        if args.only != "experiment":
            validation_demo(args)
        if args.only is None:
            print()
        if args.only != "validation":
            experiment_demo(args, tempfile.mkdtemp(prefix="cairn-demo-"))
    except KeyboardInterrupt:
        failure = "interrupted"
    except (harness.TestFailure, OSError) as e:
        failure = str(e)
    finally:
        problems = harness.end_test()
    # After an interruption the processes also got the signal: how they
    # exited says nothing then.
    if failure is None and problems:
        failure = "; ".join(problems)
    if failure is not None:
        sys.exit("demo: %s" % failure)


if __name__ == "__main__":
    main()
