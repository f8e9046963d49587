"""What the accuracy reports share: tests/annotator/accuracy.py (the rule
annotator against a labelled prompt set) and tests/validate/accuracy.py (the
answer validators against a labelled answer set).

Both read rules/taxonomy.json and a labelled JSON Lines set, check the set
before scoring anything, run one command over the whole set through the JSON
Lines protocol of `cairn annotate` / `cairn validate` (one output line per
input line, in order, {"id", ...} or {"id", "error"}), and hold each tag's
scores to a thresholds.json. What a set holds and how it is scored are each
report's own. Standard library only.

Every report also takes:
    --stats             print what the labelled set contains and exit
    --check             check the set against rules/taxonomy.json and exit
    --cmd "python3 fake.py"
                        score any command speaking the same JSON Lines
                        instead of `cairn annotate` / `cairn validate`
    --timeout SECONDS   for the whole run (default 300)
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

# The scores a threshold may name, and how the report prints each.
SHORT = {"accuracy": "acc", "precision": "prec", "recall": "rec"}


def die(msg, code=2):
    print("accuracy: " + msg, file=sys.stderr)
    sys.exit(code)


def load_taxonomy(rules_dir):
    """The taxonomy's tags by key, and their wire names -> keys."""
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


def load_set(path):
    """The objects of a JSON Lines file (each with its line number in
    "_line"), and the problems of the lines that are not objects."""
    records, problems = [], []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        die("%s: %s" % (path, e))
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                problems.append("line %d: not JSON: %s" % (n, e))
                continue
            if not isinstance(r, dict):
                problems.append("line %d: not an object" % n)
                continue
            r["_line"] = n
            records.append(r)
    return records, problems


def check_record(r, seen, known_fields, problems):
    """Append the problems of `r`'s id (missing, or seen before) and of its
    fields (unknown ones) to `problems`. @return where `r` is, for messages."""
    where = "line %d (%s)" % (r["_line"], r.get("id"))
    rid = r.get("id")
    if not isinstance(rid, str) or not rid:
        problems.append(where + ": missing id")
    elif rid in seen:
        problems.append(where + ": duplicate id")
    seen.add(rid)
    for k in r:
        if k not in known_fields and k != "_line":
            problems.append("%s: unknown field %r" % (where, k))
    return where


def value_problem(where, tag, val, t):
    """What is wrong with `val` as a value of taxonomy tag `t`, or None."""
    if t["type"] == "enum":
        if val not in t["values"]:
            return "%s: %s=%r is not a taxonomy value" % (where, tag, val)
    elif t["type"] == "int":
        if (not isinstance(val, int) or isinstance(val, bool)
                or val < t.get("min", val) or val > t.get("max", val)):
            return "%s: %s=%r is not a legal integer" % (where, tag, val)
    return None


def start(doc, here, set_name, noun, role, command, check, stats, build_dir=False):
    """The command line every report takes, and the labelled set it names,
    checked: exits on a problem in the set, and after --check or --stats.

    set_name: the option and file stem of the set ("prompts", "cases");
    noun: one of its items ("prompt", "case"); role and command: what is
    scored and the cairn subcommand that runs it ("annotator", "annotate");
    check(records, taxonomy, names) and stats(records, taxonomy, names):
    the set's problems, and what it holds; build_dir: take BUILD_DIR (its
    cairn binary) as an argument too.
    @return (args, taxonomy, names, records, thresholds, command line)
    """
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    if build_dir:
        ap.add_argument("build", nargs="?", help="build directory holding cairn")
    ap.add_argument("--cairn", help="path to the cairn binary")
    ap.add_argument("--rules", default=os.path.join(os.path.dirname(os.path.dirname(here)),
                                                    "rules"))
    ap.add_argument("--" + set_name, default=os.path.join(here, set_name + ".jsonl"))
    ap.add_argument("--thresholds", default=os.path.join(here, "thresholds.json"))
    ap.add_argument("--cmd", help="%s command line to run instead of "
                    "`CAIRN %s --rules DIR` (same JSONL protocol)" % (role, command))
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--stats", action="store_true",
                    help="print what the %s set contains and exit" % noun)
    ap.add_argument("--check", action="store_true",
                    help="validate the %s set against the taxonomy and exit" % noun)
    ap.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    a = ap.parse_args()

    path = getattr(a, set_name)
    taxonomy, names = load_taxonomy(a.rules)
    records, problems = load_set(path)
    problems += check(records, taxonomy, names)
    if problems:
        for pr in problems:
            print("%s: %s" % (path, pr), file=sys.stderr)
        die("%d problem(s) in the %s set" % (len(problems), noun))
    if a.check:
        print("%s: %d %s, valid" % (path, len(records), set_name))
        sys.exit(0)
    if a.stats:
        print(stats(records, taxonomy, names))
        sys.exit(0)

    try:
        with open(a.thresholds, encoding="utf-8") as f:
            thresholds = json.load(f)["tags"]
    except (OSError, ValueError, KeyError) as e:
        die("%s: %s" % (a.thresholds, e))

    binary = a.cairn or (os.path.join(a.build, "cairn") if build_dir and a.build else None)
    if a.cmd:
        cmd = shlex.split(a.cmd)
    elif binary:
        cmd = [binary, command, "--rules", a.rules]
    else:
        die("give %s--cairn BINARY or --cmd COMMAND" % ("BUILD_DIR, " if build_dir else ""))
    return a, taxonomy, names, records, thresholds, cmd


def run(cmd, records, request, key, kind, timeout):
    """Run `cmd` once with request(r) for every record on stdin, one JSON
    line each, and read one line back per record.
    @return ({id: output object}, None), where an object without `key` of
    type `kind` becomes {"error": ...}; or (None, why) when the command
    cannot run or fails without output."""
    payload = "".join(json.dumps(request(r), ensure_ascii=False) + "\n" for r in records)
    try:
        p = subprocess.run(cmd, input=payload.encode("utf-8"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "cannot run %s: %s" % (" ".join(cmd), e)
    if p.returncode != 0 and not p.stdout.strip():
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, "%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                            err[0] if err else "")
    lines = p.stdout.decode("utf-8", "replace").splitlines()
    results = {}
    for i, r in enumerate(records):
        if i >= len(lines):
            results[r["id"]] = {"error": "no output line"}
            continue
        try:
            o = json.loads(lines[i])
        except ValueError:
            results[r["id"]] = {"error": "unparsable output line"}
            continue
        if not isinstance(o, dict):
            results[r["id"]] = {"error": "output line is not an object"}
        elif o.get("id") != r["id"]:
            results[r["id"]] = {"error": "output out of order (id %r)" % o.get("id")}
        elif "error" in o or not isinstance(o.get(key), kind):
            results[r["id"]] = {"error": str(o.get("error", "no " + key))}
        else:
            results[r["id"]] = o
    return results, None


def run_failed(err, scored_tags, thresholds):
    """Report a command that gave no results: every held tag fails."""
    print("accuracy: " + err)
    print("0 passed, %d failed" % len([t for t in scored_tags if t in thresholds]))
    return 1


def hold(score, th, order):
    """Hold `score` (with .acc, .prec, .rec; None where nothing was
    counted) to thresholds `th`, naming them in `order`. A missing
    precision or recall passes; a missing accuracy does not.
    @return (ok, "ok   acc>=0.95 ..."), or (None, "") when `th` holds none."""
    need, ok = [], True
    for name in order:
        if name not in th:
            continue
        need.append("%s>=%.2f" % (SHORT[name], th[name]))
        v = getattr(score, SHORT[name])
        if name == "accuracy":
            ok &= v is not None and v + 1e-9 >= th[name]
        else:
            ok &= v is None or v + 1e-9 >= th[name]
    if not need:
        return None, ""
    return ok, ("ok   " if ok else "FAIL ") + " ".join(need)


def finish(below, passed, failed):
    """Print the report's last lines, the one tests/run-all.sh reads ("N
    passed, M failed", counting tags) last. @return the exit status."""
    if below:
        print("below threshold: " + ", ".join(below))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def fmt(x):
    return "   -" if x is None else "%4.2f" % x
