#!/usr/bin/env python3
"""Run cairn's integration tests.

    python3 tests/integration/run.py --build BUILD_DIR [-k SUBSTRING]... [-v] [--valgrind]

Discovers the plain functions `test_*` in tests/integration/test_*.py (in
file order), runs each in its own harness context (fresh gateway, fake
upstream and temp dir, all torn down and checked afterwards), prints one
line per test and ends with "N passed, M failed"; exits 1 if M > 0.
-k may be repeated: a test runs if its name contains any of them.
--valgrind runs every gateway under valgrind's memcheck (see VALGRIND);
a memcheck error or a definite leak fails the test.
"""

import argparse
import glob
import importlib.util
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# Workers are forked, not exec'd: valgrind follows them without
# --trace-children, and each prints its own summary.
VALGRIND = ("valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite "
            "--error-exitcode=99 --trace-children=no")
if "--valgrind" in sys.argv:  # before harness reads its environment
    os.environ.setdefault("CAIRN_TEST_WRAPPER", VALGRIND)

import harness  # noqa: E402

TEST_TIMEOUT = 30.0  # a hung test is failed and torn down after this


def discover(patterns):
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        modname = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, fn in vars(module).items():
            if name.startswith("test_") and callable(fn) and \
                    getattr(fn, "__module__", None) == modname:
                full = "%s::%s" % (modname, name)
                if not patterns or any(p in full for p in patterns):
                    tests.append((full, fn))
    return tests


def describe(exc):
    """One line: the failure and where in a test file it was raised."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.basename(frame.filename).startswith("test_"):
            where = " (%s:%d)" % (os.path.basename(frame.filename), frame.lineno)
            break
    if isinstance(exc, AssertionError):
        text = str(exc) or "assertion failed"
    else:
        text = "%s: %s" % (type(exc).__name__, exc)
    return " ".join(text.split()) + where


def run_one(fn):
    """Run fn in a thread; returns (error text or None)."""
    result = {}

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - report everything
            result["error"] = describe(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(TEST_TIMEOUT)
    if t.is_alive():
        return "test did not finish within %.0fs" % TEST_TIMEOUT
    return result.get("error")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="directory holding the cairn binary")
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="run tests whose name contains this (repeatable: any of them)")
    ap.add_argument("--valgrind", action="store_true",
                    help="run the gateways under valgrind memcheck")
    ap.add_argument("-v", dest="verbose", action="store_true", help="print stderr of failures")
    args = ap.parse_args()

    harness.BUILD_DIR = args.build
    if not os.access(harness.binary(), os.X_OK):
        print("no executable %s" % harness.binary())
        print("0 passed, 1 failed")
        return 1

    passed = failed = 0
    started = time.monotonic()
    for name, fn in discover(args.patterns):
        t0 = time.monotonic()
        context = harness.begin_test(name)
        error = run_one(fn)
        try:
            problems = harness.end_test()
        except Exception as e:  # noqa: BLE001
            problems = ["teardown failed: %s" % describe(e)]
        if error is None and problems:
            error = "; ".join(problems)
        elif problems:
            error += " [teardown: %s]" % "; ".join(problems)
        took = time.monotonic() - t0
        if error is None:
            passed += 1
            print("PASS %s (%.1fs)" % (name, took), flush=True)
        else:
            failed += 1
            print("FAIL %s (%.1fs): %s" % (name, took, error), flush=True)
            if args.verbose:
                for gw in context.gateways:
                    print("    --- cairn stderr ---")
                    for line in gw.stderr_text().splitlines()[-40:]:
                        print("    " + line)
    print("(%.1fs)" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
