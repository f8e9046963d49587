"""`cairn report`: the statistics of A/B experiments from experiment logs.

The figures of tests/report/fixture.jsonl are computed here again, from
the file, by other means than the C code's: Python's statistics.NormalDist
for the normal distribution, quantiles(method="inclusive") for percentiles,
Mann-Whitney's U by comparing every pair, the t distribution by Simpson's
rule on its density. Then the text output, the malformed-line reporting,
exit statuses, and the HTML page rendered by headless chromium.
"""

import json
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from statistics import NormalDist, mean, quantiles, variance

import harness
from harness import check, ctx, run_cairn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "tests", "report", "fixture.jsonl")
FIXTURE_MALFORMED = (11, 22, 55)  # see tests/report/make_fixture.py
ODD_ARM = "a<b>&\"c'"
MAX_LINE = 4 << 20  # CAIRN_REPORT_MAX_LINE
Z = NormalDist().inv_cdf(0.975)
TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


# --------------------------------------------------------------------------
# The figures, computed independently
# --------------------------------------------------------------------------

def wilson(hits, n):
    p = hits / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def percentile(values, q):
    """Hyndman and Fan's definition 7: statistics' "inclusive" method."""
    if len(values) < 2:
        return values[0] if values else None
    return quantiles(values, n=100, method="inclusive")[q - 1]


def t_density(x, df):
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                    - (df + 1) / 2 * math.log1p(x * x / df))


def t_two_sided(t, df, steps=4000):
    """1 - 2 * the integral of the density from 0 to |t| (Simpson)."""
    t = abs(t)
    h = t / steps
    s = t_density(0, df) + t_density(t, df)
    s += sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
    return 1 - 2 * s * h / 3


def t_critical(alpha, df):
    """Newton's method on t_two_sided(t) = alpha, from the normal's answer."""
    t = NormalDist().inv_cdf(1 - alpha / 2)
    for _ in range(30):
        step = (t_two_sided(t, df) - alpha) / (2 * t_density(t, df))
        t += step
        if abs(step) < 1e-13:
            break
    return t


def normal_p(z):
    return 2 * (1 - NormalDist().cdf(abs(z)))


def verdict(p, too_few):
    if too_few:
        return "too few to say"
    return "significant at 5%" if p < 0.05 else "not significant"


def read_log(path):
    """The fixture by the rules of include/report.h: per (tenant,
    experiment), the arms' raw values and the judged pairs' counts."""
    groups = {}
    malformed, ignored, records = [], 0, 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            malformed.append(number)
            continue
        if rec.get("kind") not in ("request", "judgement"):
            ignored += 1
            continue
        if rec["kind"] == "request" and (
                not isinstance(rec.get("status"), int)
                or not set(rec.get("violations") or []) <= set(rec.get("checked") or [])):
            malformed.append(number)
            continue
        records += 1
        g = groups.setdefault((rec["tenant"], rec["experiment"]),
                              {"arms": {}, "pairs": {}, "forced": 0})
        if rec.get("forced"):
            g["forced"] += 1
            if rec["kind"] == "request":
                g["arms"].setdefault(rec["arm"], new_arm())["forced"] += 1
            continue
        if rec["kind"] == "judgement":
            a, b = sorted((rec["arm"], rec["other"]))
            wlt = g["pairs"].setdefault((a, b), [0, 0, 0])
            result = rec["result"]
            if rec["arm"] != a:  # seen from a: b's win is a's loss
                result = {"win": "loss", "loss": "win", "tie": "tie"}[result]
            wlt[("win", "loss", "tie").index(result)] += 1
            continue
        arm = g["arms"].setdefault(rec["arm"], new_arm())
        arm["requests"] += 1
        arm["errors"] += rec["status"] == 0 or rec["status"] >= 500
        if rec.get("attempts", 0) >= 1:
            arm["validated"] += 1
            arm["retried"] += rec["attempts"] > 1
        for m in rec.get("checked") or []:
            counts = arm["markers"].setdefault(m, [0, 0])
            counts[0] += m in rec["violations"]
            counts[1] += 1
        arm["latency"].append(rec["latency_ms"])
        if rec.get("first_byte_ms") is not None:
            arm["first_byte"].append(rec["first_byte_ms"])
        if rec.get("usage") is not None:
            for k, key in enumerate(TOKEN_KEYS):
                arm["tokens"][k].append(rec["usage"][key])
    return groups, {"lines": len(lines), "records": records, "malformed": malformed,
                    "ignored": ignored}


def new_arm():
    return {"requests": 0, "forced": 0, "errors": 0, "validated": 0, "retried": 0,
            "markers": {}, "latency": [], "first_byte": [], "tokens": ([], [], [])}


def rate_test(base, other):
    """(hits, n) pairs -> z, p, verdict of the pooled two-proportion test."""
    (x1, n1), (x2, n2) = base, other
    if n1 == 0 or n2 == 0:
        return None, None, verdict(None, True)
    p = (x1 + x2) / (n1 + n2)
    # Expected hits and misses in each arm at the pooled rate.
    too_few = any(n * p < 5 or n * (1 - p) < 5 for n in (n1, n2))
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return None, None, verdict(None, True)
    z = (x2 / n2 - x1 / n1) / se
    return z, normal_p(z), verdict(normal_p(z), too_few)


def mann_whitney(arm, base):
    """U of `arm` counted pair by pair; z with tie and continuity corrections."""
    if not arm or not base:
        return None, None, None, verdict(None, True)
    u = sum((x > y) + 0.5 * (x == y) for x in arm for y in base)
    n1, n2 = len(arm), len(base)
    n = n1 + n2
    ties = sum(t ** 3 - t for t in Counter(arm + base).values())
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    off = u - n1 * n2 / 2
    z = math.copysign(max(abs(off) - 0.5, 0), off) / sigma
    return u, z, normal_p(z), verdict(normal_p(z), n1 < 30 or n2 < 30)


def welch(base, other):
    if len(base) < 2 or len(other) < 2:
        return None, None, None, verdict(None, True)
    e1, e2 = variance(base) / len(base), variance(other) / len(other)
    t = (mean(other) - mean(base)) / math.sqrt(e1 + e2)
    df = (e1 + e2) ** 2 / (e1 * e1 / (len(base) - 1) + e2 * e2 / (len(other) - 1))
    p = t_two_sided(t, df)
    return t, df, p, verdict(p, len(base) < 30 or len(other) < 30)


# --------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------

def close(got, want, what, rel=1e-9, abs_tol=1e-12):
    if want is None:
        check(got is None, "%s: %r, want null" % (what, got))
        return
    check(isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol),
          "%s: %r, want %r" % (what, got, want))


def close_interval(got, want, what, rel=1e-9):
    check(got is not None and len(got) == 2, "%s: interval %r, want %r" % (what, got, want))
    close(got[0], want[0], what + " lo", rel)
    close(got[1], want[1], what + " hi", rel)


def check_rate(got, hits, n, what):
    close(got["hits"], hits, what + " hits")
    close(got["n"], n, what + " n")
    if n == 0:
        check(got["rate"] is None and got["ci"] is None, "%s: figures of nothing %r" % (what, got))
        return
    close(got["rate"], hits / n, what + " rate")
    close_interval(got["ci"], wilson(hits, n), what)


def report_json(*args):
    code, out, err = run_cairn(["report", "--json"] + list(args))
    check(code == 0, "cairn report exited %d: %s" % (code, err[-500:]))
    return json.loads(out), err


def check_arm(got, arm, name):
    close(got["requests"], arm["requests"], name + " requests")
    close(got["forced"], arm["forced"], name + " forced")
    check_rate(got["error_rate"], arm["errors"], arm["requests"], name + " error rate")
    check_rate(got["retry_rate"], arm["retried"], arm["validated"], name + " retry rate")
    check(sorted(got["violation_rates"]) == sorted(arm["markers"]),
          "%s markers %r, want %r" % (name, list(got["violation_rates"]), list(arm["markers"])))
    for m, (hits, n) in arm["markers"].items():
        check_rate(got["violation_rates"][m], hits, n, "%s violations of %s" % (name, m))
    lat = got["latency_ms"]
    close(lat["n"], len(arm["latency"]), name + " latency n")
    for q in (50, 95, 99):
        close(lat["p%d" % q], percentile(arm["latency"], q), "%s latency p%d" % (name, q))
    fb = arm["first_byte"]
    close(got["first_byte_ms"]["p50"], percentile(fb, 50) if fb else None, name + " first byte")
    tokens = got["tokens"]
    close(tokens["n"], len(arm["tokens"][2]), name + " tokens n")
    for k, key in enumerate(("prompt", "completion", "total")):
        values = arm["tokens"][k]
        close(tokens[key]["mean"], mean(values) if values else None, "%s %s mean" % (name, key))
        if len(values) >= 2:
            half = t_critical(0.05, len(values) - 1) * math.sqrt(variance(values) / len(values))
            close_interval(tokens[key]["ci"], [mean(values) - half, mean(values) + half],
                           "%s %s tokens" % (name, key), rel=1e-8)
        else:
            check(tokens[key]["ci"] is None, "%s %s: an interval of one value" % (name, key))


def check_pair(got, a, b, wlt):
    w, l, t = wlt
    what = "%s vs %s" % (a, b)
    check((got["arm"], got["other"]) == (a, b), "pair %r, want %r" % (got, (a, b)))
    check([got["wins"], got["losses"], got["ties"]] == [w, l, t],
          "%s W/L/T %r, want %r" % (what, [got["wins"], got["losses"], got["ties"]], wlt))
    close(got["win_rate"], (w + t / 2) / (w + l + t), what + " win rate")
    close_interval(got["ci"], wilson(w + t / 2, w + l + t), what)
    z = math.copysign(max(abs(w - l) - 1, 0), w - l) / math.sqrt(w + l)
    close(got["sign_test"]["statistic"], z, what + " sign z")
    close(got["sign_test"]["p"], normal_p(z), what + " sign p")
    check(got["sign_test"]["verdict"] == verdict(normal_p(z), w + l < 10),
          "%s verdict %r" % (what, got["sign_test"]["verdict"]))


def expected_differences(arms, baseline):
    """{(arm, figure, marker): (base value, value, statistic, df, u, p, verdict)}"""
    want = {}
    b = arms[baseline]
    for name in sorted(arms):
        if name == baseline:
            continue
        a = arms[name]
        for key, base, other in (("error_rate", (b["errors"], b["requests"]),
                                  (a["errors"], a["requests"])),
                                 ("retry_rate", (b["retried"], b["validated"]),
                                  (a["retried"], a["validated"]))):
            z, p, v = rate_test(base, other)
            want[(name, key, None)] = (ratio(*base), ratio(*other), z, None, None, p, v)
        for m in sorted(set(b["markers"]) | set(a["markers"])):
            base, other = b["markers"].get(m, (0, 0)), a["markers"].get(m, (0, 0))
            z, p, v = rate_test(base, other)
            want[(name, "violation_rate", m)] = (ratio(*base), ratio(*other), z, None, None, p, v)
        for key in ("latency", "first_byte"):
            u, z, p, v = mann_whitney(a[key], b[key])
            want[(name, key + "_ms", None)] = (percentile(b[key], 50), percentile(a[key], 50), z,
                                               None, u, p, v)
        for k, key in enumerate(TOKEN_KEYS):
            t, df, p, v = welch(b["tokens"][k], a["tokens"][k])
            want[(name, key, None)] = (mean_or_none(b["tokens"][k]),
                                       mean_or_none(a["tokens"][k]), t, df, None, p, v)
    return want


def ratio(hits, n):
    return hits / n if n else None


def mean_or_none(values):
    return mean(values) if values else None


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_report_json_matches_independent_figures():
    groups, counts = read_log(FIXTURE)
    check(counts["malformed"] == list(FIXTURE_MALFORMED),
          "the fixture's bad lines moved: %r (update FIXTURE_MALFORMED)" % counts["malformed"])
    doc, err = report_json(FIXTURE)
    check(doc["alpha"] == 0.05, "alpha %r" % doc["alpha"])
    want_input = {"lines": counts["lines"], "records": counts["records"],
                  "malformed": len(counts["malformed"]), "ignored": counts["ignored"],
                  "over_limits": 0}
    check(doc["input"] == want_input, "input %r, want %r" % (doc["input"], want_input))
    check([(e["tenant"], e["experiment"]) for e in doc["experiments"]] == sorted(groups),
          "experiments %r" % [(e["tenant"], e["experiment"]) for e in doc["experiments"]])

    for e in doc["experiments"]:
        g = groups[(e["tenant"], e["experiment"])]
        check(e["forced"] == g["forced"], "%s: forced %r, want %r" % (e["tenant"], e["forced"],
                                                                      g["forced"]))
        check(list(e["arms"]) == sorted(g["arms"]), "arms %r" % list(e["arms"]))
        for name, arm in g["arms"].items():
            check_arm(e["arms"][name], arm, "%s/%s" % (e["tenant"], name))
        pairs = sorted(g["pairs"].items())
        check(len(e["judgements"]) == len(pairs), "%d judged pairs, want %d"
              % (len(e["judgements"]), len(pairs)))
        for got, ((a, b), wlt) in zip(e["judgements"], pairs):
            check_pair(got, a, b, wlt)

        check(e["baseline"] == "control", "baseline %r" % e["baseline"])
        want = expected_differences(g["arms"], "control")
        got = {(d["arm"], d["figure"], d["marker"]): d for d in e["differences"]}
        check(list(got) == list(want), "differences %r, want %r" % (list(got), list(want)))
        for key, (base, value, stat, df, u, p, v) in want.items():
            d, what = got[key], "%s %s" % (e["tenant"], " ".join(str(k) for k in key if k))
            close(d["baseline_value"], base, what + " baseline value")
            close(d["value"], value, what + " value")
            close(d["statistic"], stat, what + " statistic")
            close(d["df"], df, what + " df")
            close(d["u"], u, what + " U")
            close(d["p"], p, what + " p", rel=1e-7, abs_tol=1e-10)
            check(d["verdict"] == v, "%s: verdict %r, want %r" % (what, d["verdict"], v))

    # The fixture holds verdicts of all three kinds.
    verdicts = {d["verdict"] for e in doc["experiments"] for d in e["differences"]}
    check(verdicts == {"significant at 5%", "not significant", "too few to say"},
          "verdicts %r" % verdicts)


def test_report_text_names_arms_and_warns():
    code, out, err = run_cairn(["report", FIXTURE])
    check(code == 0, "exited %d: %s" % (code, err[-500:]))
    for word in ("control", "rules", "model", ODD_ARM, "== default / annotation-v1 ==",
                 "== acme / annotation-v1 ==", "Differences from the baseline, control",
                 "too few to say (n < 30)", "too few to say (n·p or n·(1-p) < 5, p pooled)",
                 "significant at 5%", "not significant",
                 "2 forced record(s) left out of every figure", "not randomised",
                 "length_words", "Judged win rates"):
        check(word in out, "the text lacks %r:\n%s" % (word, out[:3000]))
    # Numbers line up under the right edge of their column's title.
    lines = out.splitlines()
    headers = [i for i, l in enumerate(lines)
               if re.match(r"\s+arm\s+forced\s+requests\s+errors", l)]
    check(len(headers) == 2, "%d error tables" % len(headers))
    for i in headers:
        edge = lines[i].index("errors") + len("errors")
        rows = lines[i + 1:i + 3]
        check(all(r[edge - 1].isdigit() and r[edge] == " " for r in rows),
              "misaligned table:\n%s" % "\n".join(lines[i:i + 3]))


def test_report_malformed_lines_are_reported_with_file_and_line():
    code, out, err = run_cairn(["report", FIXTURE])
    check(code == 0, "exited %d" % code)
    for number in FIXTURE_MALFORMED:
        check("fixture.jsonl:%d:" % number in err, "no message for line %d: %r" % (number, err))
    check("3 malformed line(s) skipped" in err, "no count: %r" % err)


def good_request(arm="control", **fields):
    rec = {"kind": "request", "tenant": "t", "experiment": "e", "arm": arm, "status": 200,
           "latency_ms": 10.0, "attempts": 0, "checked": [], "violations": []}
    rec.update(fields)
    return json.dumps(rec)


def test_report_bounds_lines_and_limits_messages():
    exact = good_request()
    exact += " " * (MAX_LINE - len(exact))  # exactly at the limit: read
    lines = [
        good_request(),                        # 1
        "x" * (MAX_LINE + 1),                  # 2 too long
        exact,                                 # 3
        exact + " ",                           # 4 one byte too long
        "not json",                            # 5
        "[1, 2]",                              # 6 not an object
        '{"kind": "request"}',                 # 7 no tenant
        good_request(status=True),             # 8
        good_request(checked=["a", "a"]),      # 9
        good_request(usage={"prompt_tokens": 1}),  # 10
        "",                                    # blank: not a record
        good_request() + "\r",                 # 12 CRLF
        json.dumps({"kind": "heartbeat"}),     # 13 another kind
    ]
    path = ctx().path("bounds.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines))  # and no newline after the last line
    doc, err = report_json(path)
    want = {"lines": 13, "records": 3, "malformed": 8, "ignored": 1, "over_limits": 0}
    check(doc["input"] == want, "input %r, want %r" % (doc["input"], want))
    located = [l for l in err.splitlines() if l.startswith("cairn: %s:" % path)]
    check(len(located) == 5, "%d located messages, want the first 5: %r" % (len(located), err))
    for line, number in zip(located, (2, 4, 5, 6, 7)):
        check(line.startswith("cairn: %s:%d: " % (path, number)), "message %r" % line)
    check("longer than %d bytes" % MAX_LINE in located[0], "message %r" % located[0])
    check("8 malformed line(s) skipped" in err, "no count: %r" % err)


def test_report_reads_stdin_and_several_logs():
    path = ctx().path("one.jsonl")
    with open(path, "w") as f:
        f.write(good_request("control") + "\n")
    p = subprocess.run([harness.binary(), "report", "--json", path, "-"],
                       input=(good_request("rules") + "\n").encode(), capture_output=True,
                       timeout=10, env=harness.gateway_env())
    check(p.returncode == 0, "exited %d: %s" % (p.returncode, p.stderr[-500:]))
    doc = json.loads(p.stdout)
    check(list(doc["experiments"][0]["arms"]) == ["control", "rules"],
          "arms %r" % doc["experiments"][0]["arms"])


def test_report_no_records():
    path = ctx().path("empty.jsonl")
    with open(path, "w") as f:
        f.write('{"kind": "heartbeat"}\n\n')
    code, out, err = run_cairn(["report", path])
    check(code == 0, "exited %d" % code)
    check("no experiment records" in out, "no message: %r" % out)
    doc, err = report_json(path)
    check(doc["experiments"] == [], "experiments %r" % doc["experiments"])
    check("no experiment records" in err, "no message: %r" % err)


def test_report_baseline_option():
    doc, _ = report_json("--baseline", "rules", FIXTURE)
    e = [e for e in doc["experiments"] if e["tenant"] == "default"][0]
    check(e["baseline"] == "rules" and not e["baseline_not_found"], "baseline %r" % e["baseline"])
    check({d["arm"] for d in e["differences"]} == {"control", "model"},
          "compared %r" % {d["arm"] for d in e["differences"]})
    doc, _ = report_json("--baseline", "nosuch", FIXTURE)
    for e in doc["experiments"]:
        check(e["baseline"] == "control" and e["baseline_not_found"],
              "%s: baseline %r, not found %r" % (e["tenant"], e["baseline"],
                                                 e["baseline_not_found"]))


def test_report_usage_errors_and_unreadable_files():
    missing = "/nonexistent/dir/experiments.jsonl"
    for args, words in ((["report"], "usage: cairn report"),
                        (["report", "--bogus", FIXTURE], "--bogus"),
                        (["report", FIXTURE, "--baseline"], "--baseline"),
                        (["report", FIXTURE, missing], missing),
                        (["report", ctx().tmpdir], "read error"),
                        (["report", "--html", "/nonexistent/dir/r.html", FIXTURE],
                         "/nonexistent/dir/r.html")):
        code, out, err = run_cairn(args)
        check(code == 1, "%s exited %d, want 1" % (args, code))
        check(words in err, "%s: stderr lacks %r: %r" % (args, words, err))
        check(out == "", "%s printed a report: %r" % (args, out[:200]))


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_html_is_self_contained_and_escaped():
    page = ctx().path("report.html")
    code, out, err = run_cairn(["report", "--html", page, FIXTURE])
    check(code == 0, "exited %d: %s" % (code, err[-500:]))
    with open(page, encoding="utf-8") as f:
        html = f.read()
    for bad in ("<script", "http://", "https://", " src=", "url(", ODD_ARM):
        check(bad not in html, "the page holds %r" % bad)
    for good in ("Content-Security-Policy", "a&lt;b&gt;&amp;&quot;c&#39;", "<svg", "<title",
                 "significant at 5%", "too few to say", "not randomised"):
        check(good in html, "the page lacks %r" % good)


def test_report_html_renders_in_chromium():
    exe = chromium()
    if exe is None:
        print("\n*** SKIPPED test_report_html_renders_in_chromium: chromium is not installed "
              "(`make deps` installs it: Debian package chromium) ***\n", flush=True)
        return
    page = ctx().path("report.html")
    code, out, err = run_cairn(["report", "--html", page, FIXTURE])
    check(code == 0, "exited %d: %s" % (code, err[-500:]))
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=" + ctx().path("chromium"), "--enable-logging=stderr",
                        "--v=0", "--dump-dom", "file://" + page],
                       capture_output=True, timeout=25)
    dom = p.stdout.decode("utf-8", "replace")
    log = p.stderr.decode("utf-8", "replace")
    check(p.returncode == 0, "chromium exited %d: %s" % (p.returncode, log[-1000:]))
    for word in ("control", "rules", "model", "none", "a&lt;b&gt;&amp;\"c'", "<svg",
                 "Differences from the baseline"):
        check(word in dom, "the rendered page lacks %r" % word)
    check(dom.count("<svg") >= 6, "%d charts rendered" % dom.count("<svg"))
    # Console messages carry script errors and blocked loads (the page's
    # CSP turns any outside resource into one).
    console = [l for l in log.splitlines() if ":CONSOLE" in l or
               ("ERROR" in l and "report.html" in l)]
    check(not console, "chromium logged for the page: %r" % console)


def test_report_limits_the_names_it_keeps():
    lines = [good_request("arm%02d" % i) for i in range(70)]  # 64 arms are kept
    lines.append(json.dumps({"kind": "judgement", "tenant": "t", "experiment": "judged only",
                             "arm": "x", "other": "y", "result": "win"}))
    path = ctx().path("limits.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    doc, err = report_json(path)
    check(doc["input"]["over_limits"] == 6 and doc["input"]["records"] == 65,
          "input %r" % doc["input"])
    check("more than 64 arms in an experiment" in err, "no message: %r" % err)
    check("6 record(s) skipped past the limits on names" in err, "no count: %r" % err)
    many = [e for e in doc["experiments"] if e["experiment"] == "e"][0]
    check(len(many["arms"]) == 64, "%d arms kept" % len(many["arms"]))
    judged = [e for e in doc["experiments"] if e["experiment"] == "judged only"][0]
    check(judged["arms"] == {} and judged["baseline"] is None and judged["differences"] == []
          and judged["judgements"][0]["wins"] == 1, "a judged-only experiment: %r" % judged)
