#!/usr/bin/env bash
# Runs every test of a build: the cmocka unit binaries, the fuzz corpora
# replayed, the annotator's and the validators' accuracy reports, then the
# integration suite against the real binary. Prints one closing line
# "N passed, N failed" and exits non-zero when anything failed.
#   usage: tests/run-all.sh BUILD_DIR
set -u
build=${1:-build}
passed=0
failed=0

for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); fi
done

# The fuzz targets' committed corpora and regressions (tests/fuzz/), replayed
# through the targets built with this build's compiler and sanitizers: one
# pass per target; a failing one shows the end of its output.
for r in "$build"/fuzz-replay/fuzz_*; do
    [ -x "$r" ] || continue
    t=${r##*/fuzz_}
    out=$("$r" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" 2>&1)
    if [ $? -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz replay $t: $(printf '%s\n' "$out" | tail -n1)"
    else
        failed=$((failed + 1))
        printf '%s\n' "$out" | tail -n 40
        echo "fuzz replay $t: FAILED"
    fi
done

# run_counted CMD...: runs a suite that ends with "N passed, M failed" and
# adds its counts (a suite that fails without that line counts one failure).
run_counted() {
    local out_file rc line
    out_file=$(mktemp)
    "$@" 2>&1 | tee "$out_file"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out_file" | tail -n1)
    rm -f "$out_file"
    if [ -n "$line" ]; then
        passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
        failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
    fi
    if [ "$rc" -ne 0 ] && [ -z "$line" ]; then failed=$((failed + 1)); fi
}

# The rule annotator against the labelled prompt set: per-tag accuracy
# held to tests/annotator/thresholds.json.
run_counted python3 tests/annotator/accuracy.py --cairn "$build/cairn" --rules rules
# The answer validators against the labelled answer set: per-validator
# precision and recall held to tests/validate/thresholds.json.
run_counted python3 tests/validate/accuracy.py --cairn "$build/cairn" --rules rules
run_counted python3 tests/integration/run.py --build "$build"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
