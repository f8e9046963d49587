#!/usr/bin/env bash
# `make bench`: what cairn costs in front of a backend.
#   usage: tests/bench/run.sh BUILD_DIR
# Starts the stand-in backend (BUILD_DIR/cairn-standin) and cairn in front of
# it, both on free loopback ports, then runs wrk (tests/bench/chat.lua: one
# small non-streamed chat completion per request) against the stand-in
# directly and through cairn, for 1 connection (1 thread) and 64 connections
# (2 threads). Prints requests/s, p50 and p99 latency for each, and the
# overhead: cairn minus direct latency in µs and the cairn/direct throughput
# ratio. wrk, the stand-in and cairn share this machine's CPUs, so read the
# numbers as relative, not absolute.
#   BENCH_SECONDS      duration of each wrk run (default 10)
#   BENCH_CONNECTIONS  connection counts to try (default "1 64")
#   BENCH_ANNOTATE     policy.markers.annotate for cairn: "rules" (default), "off",
#                      "model" or "rules+model" (the stand-in answers as the
#                      annotator model too, at once; the answer cache is off,
#                      so every request makes the call)
#                      (the gateway core alone)
# Installs wrk with apt-get if it is missing; nothing else.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
secs=${BENCH_SECONDS:-10}
conns_list=${BENCH_CONNECTIONS:-1 64}
annotate=${BENCH_ANNOTATE:-rules}
lua=tests/bench/chat.lua
path=/v1/chat/completions

for bin in "$build/cairn-standin" "$build/cairn"; do
    if [ ! -x "$bin" ]; then
        echo "bench: $bin not found; build it first (make $bin)" >&2
        exit 1
    fi
done
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_port PID LOG: waits for "...listening on HOST:PORT" in LOG, prints PORT
wait_port() {
    local pid=$1 log=$2 port=
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$log" | head -n1)
        if [ -n "$port" ]; then echo "$port"; return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "bench: $(basename "$log" .log) did not start:" >&2
    cat "$log" >&2
    return 1
}

"$build/cairn-standin" --listen 127.0.0.1:0 2>"$tmp/standin.log" &
pid=$!
pids+=("$pid")
sport=$(wait_port "$pid" "$tmp/standin.log")

cat >"$tmp/cairn.json" <<EOF
{"listen":["127.0.0.1:0"],"admin":{"listen":[]},
 "upstreams":{"default":{"base_url":"http://127.0.0.1:$sport/v1"},
              "annotator":{"base_url":"http://127.0.0.1:$sport/v1"}},
 "annotation_cache":{"entries":0},
 "policy":{"markers":{"annotate":"$annotate"},"annotator":{"upstream":"annotator"}},
 "log":{"access":"/dev/null"}}
EOF
"$build/cairn" serve -c "$tmp/cairn.json" 2>"$tmp/cairn.log" &
pid=$!
pids+=("$pid")
cport=$(wait_port "$pid" "$tmp/cairn.log")

direct_url=http://127.0.0.1:$sport$path
cairn_url=http://127.0.0.1:$cport$path
body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$lua")

# Both targets must answer the benchmark request with 200 before we time them.
if command -v curl >/dev/null 2>&1; then
    for url in "$direct_url" "$cairn_url"; do
        code=$(curl -s -o "$tmp/check.out" -w '%{http_code}' -m 10 \
                    -H 'Content-Type: application/json' -d "$body" "$url" || true)
        if [ "$code" != 200 ]; then
            echo "bench: POST $url answered ${code:-nothing}, not 200:" >&2
            cat "$tmp/check.out" >&2 2>/dev/null; echo >&2
            exit 1
        fi
    done
fi

# run_wrk OUT ARGS...: wrk in the background so that INT/TERM reach the traps
# at once; cleanup() stops it along with the servers
run_wrk() {
    local out=$1
    shift
    wrk "$@" >"$out" &
    pids+=("$!")
    wait "$!"
}

# parse FILE: wrk --latency output -> "req/s p50_us p99_us errors"
parse() {
    awk '
    function us(v) {
        if (v ~ /us$/) return v + 0
        if (v ~ /ms$/) return (v + 0) * 1000
        if (v ~ /m$/)  return (v + 0) * 60000000
        if (v ~ /s$/)  return (v + 0) * 1000000
        return v + 0
    }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ { n = split($0, a, /[ ,:]+/); for (i = 1; i <= n; i++) if (a[i] ~ /^[0-9]+$/) err += a[i] }
    END { printf "%.1f %.0f %.0f %d\n", rps, p50, p99, err }' "$1"
}

echo "bench: stand-in on :$sport, cairn on :$cport; ${secs}s per run, $(nproc) CPUs shared with wrk" >&2
# warm up both (connections, caches, cairn's upstream pool); results discarded
run_wrk /dev/null -t1 -c4 -d1s -s "$lua" "$direct_url"
run_wrk /dev/null -t1 -c4 -d1s -s "$lua" "$cairn_url"

: >"$tmp/results"
for c in $conns_list; do
    t=$(( c < 2 ? 1 : 2 ))
    for target in direct cairn; do
        url=$direct_url; [ "$target" = cairn ] && url=$cairn_url
        echo "bench: $target, $c connection(s), $t thread(s) ..." >&2
        run_wrk "$tmp/$target-$c.txt" -t"$t" -c"$c" -d"${secs}s" --latency -s "$lua" "$url"
        echo "$target $c $(parse "$tmp/$target-$c.txt")" >>"$tmp/results"
    done
done

# results lines: target conns req/s p50 p99 errors; direct then cairn per count
echo
awk '
BEGIN { printf "%-9s %5s %12s %10s %10s %8s\n", "target", "conns", "requests/s", "p50 µs", "p99 µs", "errors" }
{ printf "%-9s %5s %12s %10s %10s %8s\n", $1, $2, $3, $4, $5, $6; if ($6 != 0) failed = 1 }
$1 == "direct" { rps = $3; p50 = $4; p99 = $5 }
$1 == "cairn"  { printf "%-9s %5s %12s %10s %10s\n", "overhead", $2, sprintf("x%.2f", rps > 0 ? $3 / rps : 0),
                        sprintf("%+d", $4 - p50), sprintf("%+d", $5 - p99) }
END { if (failed) { print "bench: some requests failed (non-2xx, socket errors or timeouts)" > "/dev/stderr"; exit 1 } }
' "$tmp/results"
