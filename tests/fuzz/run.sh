#!/usr/bin/env bash
# Runs libFuzzer targets built by `make fuzz`, each for SECONDS, on a
# scratch copy of its corpus (build/fuzz/corpus/<target>, kept between
# runs) plus the committed seeds and regressions, with the dictionary
# and an input size limit suited to the target. Prints per target the
# inputs tried (execs), exec/s and coverage; exits non-zero when a target
# crashed, leaving the input in build/fuzz/crashes/<target>/.
#   usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS TARGET...
set -u
build=$1
seconds=$2
shift 2
src=tests/fuzz
status=0
summary=()

max_len() {
    case $1 in
    http_parser) echo 8192 ;;
    chat_request) echo 16384 ;;
    sse) echo 4096 ;;
    marker_block) echo 4096 ;;
    config) echo 65536 ;;
    validate) echo 8192 ;;
    gateway) echo 8192 ;;
    *) echo 4096 ;;
    esac
}

for t in "$@"; do
    bin=$build/fuzz_$t
    work=$build/corpus/$t
    crashes=$build/crashes/$t
    log=$build/logs/$t.log
    mkdir -p "$work" "$crashes" "$(dirname "$log")"
    # The scratch corpus grows between runs; the committed seeds and
    # regressions are read from where they are (libFuzzer writes new
    # inputs only into the first directory).
    seeds=("$src/corpus/$t")
    [ -d "$src/regressions/$t" ] && seeds+=("$src/regressions/$t")
    echo "fuzz: $t for ${seconds}s"
    "$bin" "$work" "${seeds[@]}" -dict="$src/cairn.dict" -max_len="$(max_len "$t")" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$crashes/" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
    line="$t: ${execs:-?} execs, ${speed:-?} exec/s, cov ${cov:-?}"
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -n 60 "$log"
        line="$line, CRASHED (exit $rc): input in $crashes/ — reproduce with"
        line="$line '$bin <file>', then fix it and commit the file to $src/regressions/$t/"
    fi
    echo "$line"
    summary+=("$line")
done

echo
printf '%s\n' "${summary[@]}"
exit $status
