#!/usr/bin/env python3
"""Accuracy report for cairn's rule annotator against a labelled prompt set.

    python3 tests/annotator/accuracy.py --cairn build/cairn [--rules rules]
        [--prompts tests/annotator/prompts.jsonl]
        [--thresholds tests/annotator/thresholds.json] [-v]
and --stats, --check and --cmd as every accuracy report (tests/accuracy_report.py).

Runs `cairn annotate --rules DIR` once with every prompt on stdin, one
{"id":…, "messages":[…]} per line, and reads one line per input back:
{"id":…, "markers":{tag: value, …}} or {"id":…, "error":"…"}.

Scoring, per tag, over the prompts whose "expect" names that tag:
  accuracy   exact match; an expected null means the tag must be absent
  precision  of the values emitted, the fraction that are correct
  recall     of the expected non-null values, the fraction found
An error line (or a missing line) is a miss for every scored tag of that
prompt.  Each tag's accuracy (and precision and recall, where thresholds.json
sets them) is held to thresholds.json; the last line is "N passed, M failed"
counting tags, and the exit status is 1 when any tag misses its threshold.
Standard library only.
"""
import collections
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import accuracy_report as report  # noqa: E402  (tests/accuracy_report.py)

SCORED_TAGS = ["task", "domain", "format", "code_type", "lang",
               "length_tokens", "length_sentences", "length_paragraphs",
               "length_bucket"]
KNOWN_FIELDS = {"id", "messages", "expect", "note", "adversarial", "prompt_lang"}


# ---------------------------------------------------------------- checking

def validate(prompts, taxonomy):
    """Every problem of the prompt file, as a list of strings."""
    problems, seen = [], set()
    for p in prompts:
        where = report.check_record(p, seen, KNOWN_FIELDS, problems)
        msgs = p.get("messages")
        if not isinstance(msgs, list) or not msgs:
            problems.append(where + ": messages must be a non-empty array")
        else:
            roles = [m.get("role") for m in msgs if isinstance(m, dict)]
            if len(roles) != len(msgs):
                problems.append(where + ": a message is not an object")
            if "user" not in roles:
                problems.append(where + ": no user message")
            for m in msgs:
                if isinstance(m, dict) and m.get("role") not in (
                        "system", "developer", "user", "assistant"):
                    problems.append("%s: bad role %r" % (where, m.get("role")))
                c = m.get("content") if isinstance(m, dict) else None
                if not (isinstance(c, str) or isinstance(c, list)):
                    problems.append(where + ": content must be string or parts")
        if not isinstance(p.get("adversarial", False), bool):
            problems.append(where + ": adversarial must be true/false")
        pl = p.get("prompt_lang")
        if pl is not None and pl not in taxonomy["lang"].get("values", []):
            problems.append("%s: prompt_lang %r is not a lang value" % (where, pl))
        exp = p.get("expect")
        if not isinstance(exp, dict) or not exp:
            problems.append(where + ": expect must be a non-empty object")
            continue
        for tag, val in exp.items():
            if tag not in SCORED_TAGS:
                problems.append("%s: tag %r is not one the annotator infers"
                                % (where, tag))
                continue
            t = taxonomy.get(tag)
            if t is None:
                problems.append("%s: tag %r not in taxonomy" % (where, tag))
                continue
            if val is None:
                continue
            bad = report.value_problem(where, tag, val, t)
            if bad:
                problems.append(bad)
        # length_bucket must agree with an expected token limit
        lt, lb = exp.get("length_tokens"), exp.get("length_bucket", "?")
        if isinstance(lt, int) and lb != "?":
            want = "concise" if lt < 300 else "medium" if lt <= 1000 else "long"
            if lb != want:
                problems.append("%s: length_bucket %r disagrees with "
                                "length_tokens %d" % (where, lb, lt))
    return problems


def prompt_lang(p):
    if p.get("prompt_lang"):
        return p["prompt_lang"]
    return "English" if p["id"].startswith("en-") else "?"


# ---------------------------------------------------------------- stats

def stats(prompts, taxonomy):
    out = []
    n = len(prompts)
    adv = sum(1 for p in prompts if p.get("adversarial"))
    multi = sum(1 for p in prompts
                if sum(1 for m in p["messages"] if m.get("role") == "user") > 1)
    code = sum(1 for p in prompts if p["expect"].get("domain") == "Code"
               or p["expect"].get("code_type"))
    fenced = sum(1 for p in prompts if "```" in json.dumps(p["messages"]))
    parts = sum(1 for p in prompts
                if any(isinstance(m.get("content"), list) for m in p["messages"]))
    langs = collections.Counter(prompt_lang(p) for p in prompts)
    non_en = n - langs.get("English", 0)
    out.append("prompts: %d   non-English: %d in %d languages   multi-turn: %d"
               % (n, non_en, len([l for l in langs if l != "English"]), multi))
    out.append("code (domain=Code or code_type set): %d, with ``` fences: %d"
               "   content-parts arrays: %d   adversarial: %d"
               % (code, fenced, parts, adv))
    out.append("")
    out.append("prompts per language the prompt is written in:")
    out.append(wrap_counts(langs))
    for tag in SCORED_TAGS:
        vals = collections.Counter()
        for p in prompts:
            if tag in p["expect"]:
                v = p["expect"][tag]
                vals["(absent)" if v is None else v] += 1
        scored = sum(vals.values())
        if taxonomy.get(tag, {}).get("type") == "int":
            nn = scored - vals.get("(absent)", 0)
            out.append("%s: scored %d  (value %d, absent %d)"
                       % (tag, scored, nn, vals.get("(absent)", 0)))
            continue
        missing = [v for v in taxonomy.get(tag, {}).get("values", [])
                   if v not in vals]
        out.append("%s: scored %d" % (tag, scored))
        out.append(wrap_counts(vals))
        if missing:
            out.append("  never expected: " + ", ".join(missing))
    return "\n".join(out)


def wrap_counts(counter, width=78):
    items = ["%s %d" % (k, v) for k, v in
             sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    lines, cur = [], " "
    for it in items:
        if len(cur) + len(it) + 3 > width:
            lines.append(cur.rstrip(" ·"))
            cur = " "
        cur += " " + it + "  ·"
    lines.append(cur.rstrip(" ·"))
    return "\n".join(lines)


# ---------------------------------------------------------------- running

def normalise(tag, value, taxonomy):
    if value is None:
        return None
    if taxonomy.get(tag, {}).get("type") == "int":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and float(value).is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
    return value


def got_markers(result, names, taxonomy):
    """markers keyed by taxonomy key (a deployment may rename tags)."""
    m = {}
    for k, v in result.get("markers", {}).items():
        key = names.get(k, k)
        m[key] = normalise(key, v, taxonomy)
    return m


class Score:
    def __init__(self):
        self.n = self.ok = self.emitted = self.emitted_ok = 0
        self.pos = self.pos_ok = 0

    def add(self, exp, got, errored):
        self.n += 1
        good = (not errored) and got == exp
        self.ok += good
        if not errored and got is not None:
            self.emitted += 1
            self.emitted_ok += good
        if exp is not None:
            self.pos += 1
            self.pos_ok += good

    @staticmethod
    def ratio(a, b):
        return a / b if b else None

    acc = property(lambda s: s.ratio(s.ok, s.n))
    prec = property(lambda s: s.ratio(s.emitted_ok, s.emitted))
    rec = property(lambda s: s.ratio(s.pos_ok, s.pos))


def main():
    a, taxonomy, names, prompts, thresholds, cmd = report.start(
        __doc__, HERE, "prompts", "prompt", "annotator", "annotate",
        lambda ps, tx, _names: validate(ps, tx),
        lambda ps, tx, _names: stats(ps, tx))
    results, err = report.run(cmd, prompts,
                              lambda p: {"id": p["id"], "messages": p["messages"]},
                              "markers", dict, a.timeout)
    if results is None:
        return report.run_failed(err, SCORED_TAGS, thresholds)

    groups = collections.OrderedDict(
        (g, collections.defaultdict(Score)) for g in ("all", "en", "non-en", "adv"))
    misses, errors = [], 0
    for p in prompts:
        res = results[p["id"]]
        errored = "error" in res
        errors += errored
        got = {} if errored else got_markers(res, names, taxonomy)
        gs = ["all", "en" if prompt_lang(p) == "English" else "non-en"]
        if p.get("adversarial"):
            gs.append("adv")
        for tag, exp in p["expect"].items():
            g = got.get(tag)
            for name in gs:
                groups[name][tag].add(exp, g, errored)
            if errored or g != exp:
                misses.append((p["id"], tag, exp,
                               "ERROR: " + res["error"] if errored else g))

    counts = {g: sum(1 for p in prompts if
                     (g == "all") or
                     (g == "en" and prompt_lang(p) == "English") or
                     (g == "non-en" and prompt_lang(p) != "English") or
                     (g == "adv" and p.get("adversarial")))
              for g in groups}
    print("annotator accuracy: %d prompts (%d English, %d non-English, "
          "%d adversarial), %d error line(s)"
          % (counts["all"], counts["en"], counts["non-en"], counts["adv"], errors))
    print("%-17s %4s %5s %5s %5s | %6s %6s %6s | %s"
          % ("tag", "n", "acc", "prec", "rec", "en", "non-en", "adv", "threshold"))
    passed = failed = 0
    verdicts = []
    for tag in SCORED_TAGS:
        s = groups["all"][tag]
        if s.n == 0:
            continue
        ok, verdict = report.hold(s, thresholds.get(tag, {}),
                                  ("accuracy", "precision", "recall"))
        if ok is None:
            ok, verdict = True, "(not held)"
        else:
            passed += ok
            failed += not ok
        print("%-17s %4d %5s %5s %5s | %6s %6s %6s | %s"
              % (tag, s.n, report.fmt(s.acc), report.fmt(s.prec), report.fmt(s.rec),
                 report.fmt(groups["en"][tag].acc), report.fmt(groups["non-en"][tag].acc),
                 report.fmt(groups["adv"][tag].acc), verdict))
        if not ok:
            verdicts.append(tag)
    if a.verbose and misses:
        print("")
        print("misses (id, tag, expected, got):")
        for pid, tag, exp, got in misses:
            print("  %-14s %-17s %-22s %s"
                  % (pid, tag, json.dumps(exp, ensure_ascii=False),
                     got if isinstance(got, str) and got.startswith("ERROR")
                     else json.dumps(got, ensure_ascii=False)))
    return report.finish(verdicts, passed, failed)


if __name__ == "__main__":
    sys.exit(main())
