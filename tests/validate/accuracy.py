#!/usr/bin/env python3
"""Accuracy report for cairn's answer validators against a labelled answer set.

    python3 tests/validate/accuracy.py BUILD_DIR            # runs BUILD_DIR/cairn
    python3 tests/validate/accuracy.py --cairn build/cairn [--rules rules]
        [--cases tests/validate/cases.jsonl]
        [--thresholds tests/validate/thresholds.json] [-v]
and --stats, --check and --cmd as every accuracy report (tests/accuracy_report.py).

Runs `cairn validate --rules DIR` once with every case on stdin, one
{"id":…, "markers":{tag: value}, "response":"…"} per line, and reads one
line per input back: {"id":…, "violations":[{"marker":…}, …]} or
{"id":…, "error":"…"}. The built-in defaults apply: words are counted and a
length may run 10% over its limit.

Each case lists in "expect" the markers its response breaks (a careful
human's judgement, not what the validators happen to do). Scoring, per
validator (tag), over the cases whose markers hold that tag:
  precision  of the violations reported, the fraction that are real
  recall     of the real violations, the fraction reported
  accuracy   cases where reported and real agree
An error line (or a missing line) is wrong for every scored tag of that
case. Each tag is held to thresholds.json; the last line is "N passed, M
failed" counting tags, and the exit status is 1 when any tag misses its
threshold. Standard library only.
"""
import collections
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import accuracy_report as report  # noqa: E402  (tests/accuracy_report.py)

SCORED_TAGS = ["length_tokens", "length_sentences", "length_paragraphs",
               "length_bucket", "format", "lang", "code_type"]
KNOWN_FIELDS = {"id", "markers", "response", "expect", "note"}


# ---------------------------------------------------------------- checking

def validate(cases, taxonomy, names):
    """Every problem of the case file, as a list of strings."""
    problems, seen = [], set()
    for c in cases:
        where = report.check_record(c, seen, KNOWN_FIELDS, problems)
        if not isinstance(c.get("response"), str):
            problems.append(where + ": response must be a string")
        markers = c.get("markers")
        if not isinstance(markers, dict) or not markers:
            problems.append(where + ": markers must be a non-empty object")
            continue
        keys = set()
        for tag, val in markers.items():
            key = names.get(tag, tag)
            t = taxonomy.get(key)
            if t is None:
                problems.append("%s: tag %r not in taxonomy" % (where, tag))
                continue
            keys.add(key)
            bad = report.value_problem(where, tag, val, t)
            if bad:
                problems.append(bad)
        exp = c.get("expect")
        if not isinstance(exp, list):
            problems.append(where + ": expect must be a list of tag keys")
            continue
        for tag in exp:
            if tag not in SCORED_TAGS:
                problems.append("%s: %r has no validator" % (where, tag))
            elif tag not in keys:
                problems.append("%s: expects %r broken but sets no such marker"
                                % (where, tag))
        if not any(names.get(t, t) in SCORED_TAGS for t in markers):
            problems.append(where + ": no marker that has a validator")
    return problems


def scored(case, names):
    return [names.get(t, t) for t in case["markers"]
            if names.get(t, t) in SCORED_TAGS]


# ---------------------------------------------------------------- stats

def stats(cases, names):
    out = []
    per_tag = collections.Counter()
    broken = collections.Counter()
    fmt = collections.Counter()
    langs = collections.Counter()
    blocks = sum(1 for c in cases if c["response"].lstrip().startswith("<MARKER_LIST>"))
    for c in cases:
        for t in scored(c, names):
            per_tag[t] += 1
            broken[t] += t in c["expect"]
        if "format" in c["markers"]:
            fmt[c["markers"]["format"]] += 1
        if "lang" in c["markers"]:
            langs[c["markers"]["lang"]] += 1
    out.append("cases: %d   starting with a model marker block: %d   several markers: %d"
               % (len(cases), blocks, sum(1 for c in cases if len(scored(c, names)) > 1)))
    out.append("%-18s %5s %7s %6s" % ("validator", "cases", "broken", "kept"))
    for t in SCORED_TAGS:
        out.append("%-18s %5d %7d %6d" % (t, per_tag[t], broken[t], per_tag[t] - broken[t]))
    out.append("format values: " + ", ".join("%s %d" % kv for kv in sorted(fmt.items())))
    out.append("lang values (%d): " % len(langs)
               + ", ".join("%s %d" % kv for kv in sorted(langs.items())))
    return "\n".join(out)


# ---------------------------------------------------------------- running

class Score:
    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = 0

    def add(self, expected, reported):
        if expected and reported:
            self.tp += 1
        elif reported:
            self.fp += 1
        elif expected:
            self.fn += 1
        else:
            self.tn += 1

    n = property(lambda s: s.tp + s.fp + s.fn + s.tn)
    pos = property(lambda s: s.tp + s.fn)
    prec = property(lambda s: s.tp / (s.tp + s.fp) if s.tp + s.fp else None)
    rec = property(lambda s: s.tp / (s.tp + s.fn) if s.tp + s.fn else None)
    acc = property(lambda s: (s.tp + s.tn) / s.n if s.n else None)


def main():
    a, taxonomy, names, cases, thresholds, cmd = report.start(
        __doc__, HERE, "cases", "case", "validator", "validate",
        validate, lambda cs, _tx, nm: stats(cs, nm), build_dir=True)
    results, err = report.run(cmd, cases,
                              lambda c: {"id": c["id"], "markers": c["markers"],
                                         "response": c["response"]},
                              "violations", list, a.timeout)
    if results is None:
        return report.run_failed(err, SCORED_TAGS, thresholds)

    scores = collections.defaultdict(Score)
    misses, errors = [], 0
    for c in cases:
        res = results[c["id"]]
        errored = "error" in res
        errors += errored
        got = set() if errored else {names.get(v.get("marker"), v.get("marker"))
                                     for v in res["violations"] if isinstance(v, dict)}
        observed = {} if errored else {names.get(v.get("marker"), v.get("marker")):
                                       v.get("observed") for v in res["violations"]
                                       if isinstance(v, dict)}
        for tag in scored(c, names):
            exp = tag in c["expect"]
            rep = (not exp) if errored else tag in got
            rows = [tag]
            if tag == "format":
                rows.append("format:" + c["markers"].get("format", "?"))
            for r in rows:
                scores[r].add(exp, rep)
            if rep != exp:
                misses.append((c["id"], tag, exp,
                               "ERROR: " + res["error"] if errored
                               else observed.get(tag, "-")))

    print("validator accuracy: %d cases, %d error line(s)" % (len(cases), errors))
    print("%-22s %4s %4s %4s %4s %5s %5s %5s | %s"
          % ("validator", "n", "bad", "fp", "fn", "prec", "rec", "acc", "threshold"))
    passed = failed = 0
    below = []
    order = []
    for t in SCORED_TAGS:
        order.append(t)
        if t == "format":
            order += sorted(k for k in scores if k.startswith("format:"))
    for tag in order:
        s = scores.get(tag)
        if s is None or s.n == 0:
            continue
        th = thresholds.get(tag, {}) if ":" not in tag else {}
        ok, verdict = report.hold(s, th, ("precision", "recall", "accuracy"))
        if ok is None:
            verdict = "" if ":" in tag else "(not held)"
        else:
            passed += ok
            failed += not ok
            if not ok:
                below.append(tag)
        print("%-22s %4d %4d %4d %4d %5s %5s %5s | %s"
              % (("  " + tag) if ":" in tag else tag, s.n, s.pos, s.fp, s.fn,
                 report.fmt(s.prec), report.fmt(s.rec), report.fmt(s.acc), verdict))
    if a.verbose and misses:
        print("")
        print("misses (id, validator, expected violation?, observed):")
        for cid, tag, exp, got in misses:
            print("  %-34s %-17s %-5s %s" % (cid, tag, "yes" if exp else "no", got))
    return report.finish(below, passed, failed)


if __name__ == "__main__":
    sys.exit(main())
