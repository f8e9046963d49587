#!/usr/bin/env python3
"""Accuracy report for cairn's rule annotator against a labelled prompt set.

    python3 tests/annotator/accuracy.py --cairn build/cairn [--rules rules]
        [--prompts tests/annotator/prompts.jsonl]
        [--thresholds tests/annotator/thresholds.json] [-v]
    python3 tests/annotator/accuracy.py --stats      # what the set contains
    python3 tests/annotator/accuracy.py --check      # validate the set only
    python3 tests/annotator/accuracy.py --cmd "python3 fake.py" ...
                                        # any command speaking the same JSONL

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
import argparse
import collections
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCORED_TAGS = ["task", "domain", "format", "code_type", "lang",
               "length_tokens", "length_sentences", "length_paragraphs",
               "length_bucket"]
KNOWN_FIELDS = {"id", "messages", "expect", "note", "adversarial", "prompt_lang"}


def die(msg, code=2):
    print("accuracy: " + msg, file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------- loading

def load_taxonomy(rules_dir):
    path = os.path.join(rules_dir, "taxonomy.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        die("%s: %s" % (path, e))
    tags, names = {}, {}
    for t in doc.get("tags", []):
        tags[t["key"]] = t
        names[t.get("name", t["key"])] = t["key"]
    return tags, names


def load_prompts(path):
    prompts, problems = [], []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        die("%s: %s" % (path, e))
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                p = json.loads(line)
            except ValueError as e:
                problems.append("line %d: not JSON: %s" % (n, e))
                continue
            if not isinstance(p, dict):
                problems.append("line %d: not an object" % n)
                continue
            p["_line"] = n
            prompts.append(p)
    return prompts, problems


def validate(prompts, taxonomy):
    """Every problem of the prompt file, as a list of strings."""
    problems, seen = [], set()
    for p in prompts:
        where = "line %d (%s)" % (p["_line"], p.get("id"))
        pid = p.get("id")
        if not isinstance(pid, str) or not pid:
            problems.append(where + ": missing id")
        elif pid in seen:
            problems.append(where + ": duplicate id")
        seen.add(pid)
        for k in p:
            if k not in KNOWN_FIELDS and k != "_line":
                problems.append("%s: unknown field %r" % (where, k))
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
            if t["type"] == "enum":
                if val not in t["values"]:
                    problems.append("%s: %s=%r is not a taxonomy value"
                                    % (where, tag, val))
            elif t["type"] == "int":
                if (not isinstance(val, int) or isinstance(val, bool)
                        or val < t.get("min", val) or val > t.get("max", val)):
                    problems.append("%s: %s=%r is not a legal integer"
                                    % (where, tag, val))
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

def run_annotator(cmd, prompts, timeout):
    payload = "".join(json.dumps({"id": p["id"], "messages": p["messages"]},
                                 ensure_ascii=False) + "\n" for p in prompts)
    try:
        r = subprocess.run(cmd, input=payload.encode("utf-8"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "cannot run %s: %s" % (" ".join(cmd), e)
    if r.returncode != 0 and not r.stdout.strip():
        err = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, "%s exited %d: %s" % (" ".join(cmd), r.returncode,
                                            err[0] if err else "")
    lines = r.stdout.decode("utf-8", "replace").splitlines()
    results = {}
    for i, p in enumerate(prompts):
        if i >= len(lines):
            results[p["id"]] = {"error": "no output line"}
            continue
        try:
            o = json.loads(lines[i])
        except ValueError:
            results[p["id"]] = {"error": "unparsable output line"}
            continue
        if not isinstance(o, dict):
            results[p["id"]] = {"error": "output line is not an object"}
        elif o.get("id") != p["id"]:
            results[p["id"]] = {"error": "output out of order (id %r)" % o.get("id")}
        elif "error" in o or not isinstance(o.get("markers"), dict):
            results[p["id"]] = {"error": str(o.get("error", "no markers"))}
        else:
            results[p["id"]] = o
    return results, None


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


def fmt(x):
    return "   -" if x is None else "%4.2f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cairn", help="path to the cairn binary")
    ap.add_argument("--rules", default=os.path.join(ROOT, "rules"))
    ap.add_argument("--prompts", default=os.path.join(HERE, "prompts.jsonl"))
    ap.add_argument("--thresholds", default=os.path.join(HERE, "thresholds.json"))
    ap.add_argument("--cmd", help="annotator command line to run instead of "
                    "`CAIRN annotate --rules DIR` (same JSONL protocol)")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--stats", action="store_true",
                    help="print what the prompt set contains and exit")
    ap.add_argument("--check", action="store_true",
                    help="validate the prompt set against the taxonomy and exit")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="list every miss")
    a = ap.parse_args()

    taxonomy, names = load_taxonomy(a.rules)
    prompts, problems = load_prompts(a.prompts)
    problems += validate(prompts, taxonomy)
    if problems:
        for pr in problems:
            print("%s: %s" % (a.prompts, pr), file=sys.stderr)
        die("%d problem(s) in the prompt set" % len(problems))
    if a.check:
        print("%s: %d prompts, valid" % (a.prompts, len(prompts)))
        return 0
    if a.stats:
        print(stats(prompts, taxonomy))
        return 0

    try:
        with open(a.thresholds, encoding="utf-8") as f:
            thresholds = json.load(f)["tags"]
    except (OSError, ValueError, KeyError) as e:
        die("%s: %s" % (a.thresholds, e))

    if a.cmd:
        cmd = shlex.split(a.cmd)
    elif a.cairn:
        cmd = [a.cairn, "annotate", "--rules", a.rules]
    else:
        die("give --cairn BINARY or --cmd COMMAND")

    results, err = run_annotator(cmd, prompts, a.timeout)
    if results is None:
        print("accuracy: " + err)
        failed = len([t for t in SCORED_TAGS if t in thresholds])
        print("0 passed, %d failed" % failed)
        return 1

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
        th = thresholds.get(tag, {})
        need = []
        ok = True
        if "accuracy" in th:
            need.append("acc>=%.2f" % th["accuracy"])
            ok &= s.acc is not None and s.acc + 1e-9 >= th["accuracy"]
        if "precision" in th:
            need.append("prec>=%.2f" % th["precision"])
            ok &= s.prec is None or s.prec + 1e-9 >= th["precision"]
        if "recall" in th:
            need.append("rec>=%.2f" % th["recall"])
            ok &= s.rec is None or s.rec + 1e-9 >= th["recall"]
        if need:
            passed += ok
            failed += not ok
            verdict = ("ok   " if ok else "FAIL ") + " ".join(need)
        else:
            verdict = "(not held)"
        print("%-17s %4d %5s %5s %5s | %6s %6s %6s | %s"
              % (tag, s.n, fmt(s.acc), fmt(s.prec), fmt(s.rec),
                 fmt(groups["en"][tag].acc), fmt(groups["non-en"][tag].acc),
                 fmt(groups["adv"][tag].acc), verdict))
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
    if verdicts:
        print("below threshold: " + ", ".join(verdicts))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
