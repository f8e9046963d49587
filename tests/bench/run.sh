#!/usr/bin/env bash
# `make bench`: cairn against nginx proxy_pass, side by side, in one run.
#   usage: tests/bench/run.sh [BUILD_DIR]      (make bench builds and calls it)
#
# Starts a canned backend (BUILD_DIR/bench-canned: the same chat completion,
# or the same SSE stream when the body asks for one, from one thread) and,
# all at once, the targets in front of it:
#   direct               the backend itself
#   nginx-1w, nginx-auto nginx proxy_pass with upstream keep-alive, one
#                        worker, then one per core (the better is the bar)
#   cairn-pass           annotate "off", unwrap false, no validation
#   cairn-rules          the rule annotator (a block appended, unwrapping on)
#   cairn-validate       the same, and validation of length, format and
#                        language, one attempt (no retry)
# Then, for each connection count and for plain answers and streams, wrk
# drives every target in turn: the targets of one cell are measured within
# a minute of each other, so that their ratios survive a machine whose load
# changes. Then the time to first byte of streams (BUILD_DIR/bench-client
# ttfb) for every target, and cairn's memory: after its run, with idle
# keep-alive connections, with slow streams in flight, and after 1 000 and
# 100 000 requests (each question on a new cairn process).
# The table goes to stdout and to BUILD_DIR/bench.md; progress to stderr.
#
# Knobs (environment):
#   BENCH_SECONDS        seconds per wrk cell (default 5)
#   BENCH_CONNECTIONS    connection counts (default "1 64"); wrk runs
#                        min(connections, cores) threads
#   BENCH_MODES          cairn modes (default "pass rules validate"); "model"
#                        adds rules+model with the stand-in backend as the
#                        annotator model, answer cache off (every request
#                        makes the annotator call)
#   BENCH_TTFB_REQUESTS  streamed requests per TTFB figure (default 1000)
#   BENCH_IDLE           idle keep-alive connections held (default 1000; 0 skips)
#   BENCH_STREAMS        concurrent slow streams (default 200; 0 skips)
#   BENCH_LONG           requests of the long run (default 100000; 0 skips)
#   BENCH_OUT            where the markdown goes (default BUILD_DIR/bench.md)
#
# wrk, the backend and the proxies share this machine's cores: read the
# figures as ratios within one run. A slow machine gives small numbers, never
# a failure: the script fails only when something cannot start or answer.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build}
secs=${BENCH_SECONDS:-5}
conns_list=${BENCH_CONNECTIONS:-1 64}
modes=${BENCH_MODES:-pass rules validate}
ttfb_n=${BENCH_TTFB_REQUESTS:-1000}
idle_n=${BENCH_IDLE:-1000}
streams_n=${BENCH_STREAMS:-200}
long_n=${BENCH_LONG:-100000}
out=${BENCH_OUT:-$build/bench.md}
lua=tests/bench/chat.lua
cores=$(nproc)
# Between the events of a stream (X-Bench-Gap-Ms, see canned.c): for the
# time to first byte, so that a proxy that held the stream back would show
# it (6 ms a stream); for the memory test's slow streams (3 s a stream).
ttfb_gap_ms=1
slow_gap_ms=500

# The bodies chat.lua sends, for bench-client.
prompt='In under 40 words, explain why the sky is blue.'
plain_body='{"model":"standin-1","messages":[{"role":"user","content":"'$prompt'"}],"max_tokens":64}'
stream_body=${plain_body%\}}',"stream":true}'

log() { echo "bench: [${SECONDS}s] $*" >&2; }
die() {
    log "$*"
    exit 1
}

# --- processes ---------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
pids=() # every process started here; cleanup() ends them and their children

# tree PID: PID and its descendants (cairn's and nginx's workers)
tree() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            want[root] = 1; print root
            do {
                more = 0
                for (p in parent)
                    if (!(p in want) && (parent[p] in want)) { want[p] = 1; print p; more = 1 }
            } while (more)
        }'
}

# stop PID: TERM to the process and its children, KILL after 3 s (cairn
# would otherwise drain for up to timeouts.drain_ms)
stop() {
    local pid=$1 family
    family=$(tree "$pid")
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $family 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $family 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local p
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then stop "$p"; fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background, stderr to $tmp/NAME.log;
# its pid is left in $started
started=
start() {
    local name=$1
    shift
    "$@" 2>"$tmp/$name.log" &
    started=$!
    pids+=("$started")
}

# free_port: a loopback port nobody listens on; every server here is given
# its port, since cairn's and nginx's worker processes could not share a
# port 0 that each picked for itself
free_port() { "$build/bench-client" port; }

# wait_listen PID PORT NAME: waits (10 s at most) until PORT accepts a
# connection (bash's /dev/tcp: no tool needed)
wait_listen() {
    local pid=$1 port=$2 name=$3
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    log "$name did not start listening on 127.0.0.1:$port:"
    cat "$tmp/$name.log" >&2
    exit 1
}

# rss_kb PID [FILE FIELD]: resident memory of PID and its children, in
# KiB: the sum of their VmRSS (pages shared between a master and its
# workers counted in each), or of another FIELD of /proc/PID/FILE
rss_kb() {
    local p sum=0 kb file=${2:-status} field=${3:-VmRSS}
    for p in $(tree "$1"); do
        kb=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/$file" 2>/dev/null || true)
        sum=$((sum + ${kb:-0}))
    done
    echo "$sum"
}

# pss_kb PID: the proportional set size of PID and its children (a shared
# page counted once over them), in KiB
pss_kb() { rss_kb "$1" smaps_rollup Pss; }

# cpu_ticks PID: "pid:ticks" (user + system) for PID and its children
cpu_ticks() {
    local p
    for p in $(tree "$1"); do
        # fields after the ")" that ends the command name: utime is the 12th
        sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk -v p="$p" '{ printf "%s:%d ", p, $12 + $13 }' || true
    done
}

# cpu_used BEFORE AFTER: CPU seconds per process between two cpu_ticks,
# joined by "_+_" (one word)
cpu_used() {
    awk -v before="$1" -v after="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        n = split(before, b, " "); for (i = 1; i <= n; i++) { split(b[i], kv, ":"); t[kv[1]] = kv[2] }
        n = split(after, a, " ")
        for (i = 1; i <= n; i++) {
            split(a[i], kv, ":")
            printf "%s%.1f", (i > 1 ? "_+_" : ""), (kv[2] - t[kv[1]]) / hz
        }
    }'
}

# --- measuring ---------------------------------------------------------------

# accepted: how many connections the canned backend has accepted so far
# (asked over bash's /dev/tcp, which counts one itself)
accepted() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$backend_port"
    printf 'GET /bench/accepted HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' >&3
    reply=$(timeout 5 cat <&3 || true)
    exec 3>&-
    echo "${reply##*$'\n'}"
}

# check NAME PORT [BODY...]: the target answers each body (default: a plain
# and a streamed one) with 200 before it is timed
check() {
    local name=$1 port=$2 body r
    shift 2
    [ $# -gt 0 ] || set -- "$plain_body" "$stream_body"
    for body in "$@"; do
        r=$("$build/bench-client" ttfb "$port" 1 "$body" 0)
        if [ "${r##* }" != 0 ]; then
            log "$name on 127.0.0.1:$port does not answer 200 to $body"
            cat "$tmp/$name.log" >&2 2>/dev/null || true
            exit 1
        fi
    done
}

# run_bg OUT CMD...: CMD in the background with stdout to OUT, waited for,
# so that INT and TERM reach the traps at once (cleanup() stops it)
run_bg() {
    local out=$1
    shift
    "$@" >"$out" 2>&1 &
    pids+=("$!")
    wait "$!" || true
}

# run_wrk OUT CONNS SECONDS STREAM PORT: one wrk run; its BENCH line in OUT
run_wrk() {
    local out=$1 c=$2 s=$3 stream=$4 port=$5 t
    t=$((c < cores ? c : cores))
    CHAT_STREAM=$stream run_bg "$out" \
        wrk -t"$t" -c"$c" -d"${s}s" --timeout 10s -s "$lua" "http://127.0.0.1:$port/v1/chat/completions"
    grep -q '^BENCH ' "$out" || die "wrk did not finish against 127.0.0.1:$port: $(cat "$out")"
}

# results, one line each:
#   cell TARGET CONNS KIND REQ_PER_S P50_US P99_US ERRORS BACKEND_CONNS
#   ttfb TARGET P50_US P99_US FULL_P50_US COUNTED ERRORS
#   proc TARGET PROCESSES CPU_S RSS_KB PSS_KB
#   mem  KIND BEFORE_KB AFTER_KB COUNT NOTE...
results=$tmp/results
: >"$results"

# the targets, in the order of the table
names=()
ports=()
tpids=()
ticks=()

# add_target NAME PORT PID: checked, warmed up (connections, caches,
# upstream pools; not counted) and measured from now on
add_target() {
    check "$1" "$2"
    run_wrk "$tmp/warm" 16 1 mix "$2"
    names+=("$1")
    ports+=("$2")
    tpids+=("$3")
    ticks+=("$(cpu_ticks "$3")")
}

# --- what runs ---------------------------------------------------------------

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk "$nginx_bin" ps "$build/bench-canned" "$build/bench-client" "$build/cairn"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (make bench installs and builds what it needs)"
done
for mode in $modes; do
    case $mode in
    pass | rules | validate) ;;
    model) [ -x "$build/cairn-standin" ] || die "$build/cairn-standin not found (make all builds it)" ;;
    *) die "unknown BENCH_MODES entry: $mode (pass, rules, validate, model)" ;;
    esac
done

# 1 000 idle connections need descriptors on both sides of loopback
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$idle_n" -gt $(($(ulimit -n) / 2 - 100)) ]; then
    idle_n=$(($(ulimit -n) / 2 - 100))
    log "descriptor limit $(ulimit -n): holding $idle_n idle connections"
fi


# start_nginx NAME WORKERS: nginx as the current user, everything in its own
# directory (no root paths); its port in $nginx_port
start_nginx() {
    local name=$1 workers=$2 dir=$tmp/$1 user_line=
    nginx_port=$(free_port)
    mkdir -p "$dir"
    # as root, nginx would run its workers as nobody, who cannot enter $tmp
    [ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$user_line
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$backend_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # nginx cannot tell a stream from its request: the route of an
            # LLM proxy has buffering off, for plain answers too
            proxy_buffering off;
        }
    }
}
EOF
    # -e: the error log before the configuration is read, not /var/log/nginx
    start "$name" "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    wait_listen "$started" "$nginx_port" "$name"
}

# start_cairn NAME MODE UPSTREAM_PORT: cairn in a mode, configuration
# written here without "workers" (cairn runs at its default) and, like the
# nginx targets, without an access log; its port in $cairn_port
start_cairn() {
    local name=$1 mode=$2 up=$3 markers validation='"markers":[]' annotator='' uses=null
    cairn_port=$(free_port)
    case $mode in
    pass) markers='"annotate":"off","unwrap":false' ;;
    rules) markers='"annotate":"rules"' ;;
    validate)
        markers='"annotate":"rules"'
        validation='"markers":["length_tokens","format","lang"],"retry":{"attempts":1}' ;;
    model)
        markers='"annotate":"rules+model"'
        annotator=',"annotator":{"base_url":"http://127.0.0.1:'$standin_port'/v1","api_key_env":null}'
        uses='"annotator"' ;;
    esac
    cat >"$tmp/$name.json" <<EOF
{"listen":["127.0.0.1:$cairn_port"],"admin":{"listen":[]},
 "upstreams":{"default":{"base_url":"http://127.0.0.1:$up/v1"}$annotator},
 "annotation_cache":{"entries":0},
 "policy":{"markers":{$markers},"validation":{$validation},"annotator":{"upstream":$uses}},
 "log":{"access":"off"}}
EOF
    start "$name" "$build/cairn" serve -c "$tmp/$name.json"
    wait_listen "$started" "$cairn_port" "$name"
}

t_start=$SECONDS
load_start=$(cut -d' ' -f1 /proc/loadavg)
{
    echo "## Annotation micro-bench"
    echo
    echo "\`$build/marker-bench rules\`: mean µs per call, rules loaded once."
    echo
    echo '```'
    if [ -x "$build/marker-bench" ]; then "$build/marker-bench" rules 2>&1; else echo "(not built)"; fi
    echo '```'
} >"$tmp/marker.md"
cat "$tmp/marker.md" >&2

backend_port=$(free_port)
start canned "$build/bench-canned" --listen "127.0.0.1:$backend_port"
wait_listen "$started" "$backend_port" canned
add_target direct "$backend_port" "$started"

start_nginx nginx-1w 1
add_target nginx-1w "$nginx_port" "$started"
start_nginx nginx-auto auto
add_target nginx-auto "$nginx_port" "$started"

case " $modes " in *" model "*)
    standin_port=$(free_port)
    start standin "$build/cairn-standin" --listen "127.0.0.1:$standin_port"
    wait_listen "$started" "$standin_port" standin ;;
esac
for mode in $modes; do
    start_cairn "cairn-$mode" "$mode" "$backend_port"
    add_target "cairn-$mode" "$cairn_port" "$started"
done

# --- throughput, latency, time to first byte --------------------------------

for c in $conns_list; do
    for kind in plain stream; do
        for i in "${!names[@]}"; do
            name=${names[$i]}
            log "$c connection(s), $kind: $name ..."
            f=$tmp/wrk-$name-$c-$kind
            opened=$(accepted)
            run_wrk "$f" "$c" "$secs" "$([ "$kind" = stream ] && echo 1 || echo 0)" "${ports[$i]}"
            opened=$(($(accepted) - opened - 1))
            read -r _ n dur p50 p99 errs status < <(grep '^BENCH ' "$f")
            rps=$(awk -v n="$n" -v d="$dur" 'BEGIN { printf "%.0f", (d > 0 ? n / (d / 1e6) : 0) }')
            echo "cell $name $c $kind $rps $p50 $p99 $((errs + status)) $opened" >>"$results"
        done
    done
done

for i in "${!names[@]}"; do
    name=${names[$i]}
    log "time to first byte, $ttfb_n streams: $name ..."
    echo "ttfb $name $("$build/bench-client" --gap-ms "$ttfb_gap_ms" ttfb "${ports[$i]}" "$ttfb_n" "$stream_body")" >>"$results"
done

for i in "${!names[@]}"; do
    pid=${tpids[$i]}
    echo "proc ${names[$i]} $(tree "$pid" | wc -l) $(cpu_used "${ticks[$i]}" "$(cpu_ticks "$pid")") $(rss_kb "$pid") $(pss_kb "$pid")" >>"$results"
    [ "${names[$i]}" = direct ] || stop "$pid" # the backend serves the memory runs too
done

# --- memory ------------------------------------------------------------------
# cairn rules+validation, a new process for each question, so that each
# starts from the same state.

# hold KIND N BODY GAP_MS: bench-client KIND (idle or streams) holds N
# connections to the cairn on $cairn_port; once they are all in place, its
# RSS is recorded against the RSS it had before
hold() {
    local kind=$1 n=$2 body=$3 gap=$4 f=$tmp/hold-$1 hold_pid ok='' before
    before=$(rss_kb "$cairn_pid")
    "$build/bench-client" --gap-ms "$gap" "$kind" "$cairn_port" "$n" "$body" 30 >"$f" &
    hold_pid=$!
    pids+=("$hold_pid")
    for _ in $(seq 1 300); do # the client itself gives up after 30 s
        if grep -q '^ready' "$f"; then ok=1; break; fi
        kill -0 "$hold_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$ok" ] || die "bench-client $kind did not get its $n connections going: $(cat "$f")"
    sleep 0.3 # cairn settles on the connections it has
    local during
    during=$(rss_kb "$cairn_pid")
    if [ "$kind" = idle ]; then
        stop "$hold_pid"
    else
        wait "$hold_pid" || true
    fi
    echo "mem $kind $before $during $n $(awk '/^ready/ { r = $2 } /^done/ { d = $2; f = $3 }
        END { printf "%s in place", r; if (d != "") printf "; %s answers complete, %s failed", d, f }' "$f")" >>"$results"
}

if [ "$idle_n" -gt 0 ]; then
    log "cairn with $idle_n idle keep-alive connections ..."
    start_cairn cairn-idle validate "$backend_port"
    cairn_pid=$started
    check cairn-idle "$cairn_port"
    hold idle "$idle_n" "$plain_body" 0
    stop "$cairn_pid"
fi

if [ "$streams_n" -gt 0 ]; then
    log "cairn with $streams_n concurrent slow streams ..."
    start_cairn cairn-streams validate "$backend_port"
    cairn_pid=$started
    check cairn-streams "$cairn_port"
    hold streams "$streams_n" "$stream_body" "$slow_gap_ms"
    stop "$cairn_pid"
fi

if [ "$long_n" -gt 1000 ]; then
    start_cairn cairn-long validate "$backend_port"
    cairn_pid=$started
    # 1 000 requests, then the rest, over 64 connections, plain and streamed
    # in turn; each part bounded in time, so that a slow machine reports
    # fewer requests rather than hang
    total=0 failed=0 before=
    for part in 1000 $((long_n - 1000)); do
        log "cairn, $part more requests (half streamed) ..."
        run_bg "$tmp/long" "$build/bench-client" load "$cairn_port" 64 "$part" 120 "$plain_body" "$stream_body"
        read -r _ n f <"$tmp/long" || die "bench-client load did not finish: $(cat "$tmp/long")"
        total=$((total + n)) failed=$((failed + f))
        sleep 0.3 # answers in flight are done
        if [ -z "$before" ]; then before=$(rss_kb "$cairn_pid") before_n=$total; fi
    done
    echo "mem long $before $(rss_kb "$cairn_pid") $total after $before_n and after $total requests, $failed failed" >>"$results"
    stop "$cairn_pid"
fi
t_total=$((SECONDS - t_start))
load_end=$(cut -d' ' -f1 /proc/loadavg)

# --- report ------------------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- proxy include 2>/dev/null)" ]; then commit="$commit + local changes"; fi
{
    echo "# cairn benchmark"
    echo
    echo "- machine: ${cpu:-unknown CPU}, $cores cores, $mem, Linux $(uname -r)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); cairn $commit"
    echo "- $(wrk --version 2>&1 | awk 'NR == 1 { print "wrk " $2 }'), $("$nginx_bin" -v 2>&1 | sed 's/.*: //');" \
        "$secs s per cell, ${t_total} s in all; wrk, the backend and the proxies share the $cores cores"
    # other work on the machine shows in every figure: say how much there was
    echo "- load average $load_start at the start, $load_end at the end ($cores cores)"
    echo
    awk -v secs="$secs" -v gap="$ttfb_gap_ms" -v slow="$slow_gap_ms" -f - "$results" <<'AWK'
function num(v,   s, neg) {         # 12345 -> "12 345"
    v = sprintf("%.0f", v); neg = v ~ /^-/; if (neg) v = substr(v, 2); s = ""
    while (length(v) > 3) { s = " " substr(v, length(v) - 2) s; v = substr(v, 1, length(v) - 3) }
    return (neg ? "-" : "") v s
}
function us(v) { return v < 1000 ? sprintf("%d µs", v) : sprintf("%.2f ms", v / 1000) }
function signed_us(v) { return (v >= 0 ? "+" : "−") us(v < 0 ? -v : v) }
function mib(kb) { return sprintf("%.1f MiB", kb / 1024) }
function label(t) {
    if (t == "cairn-pass") return "cairn pass-through"
    if (t == "cairn-validate") return "cairn rules+validation"
    if (t == "cairn-model") return "cairn rules+model"
    sub(/-/, " ", t); return t
}
$1 == "cell" {
    k = $4 SUBSEP $3
    rps[$2, k] = $5; p50[$2, k] = $6; p99[$2, k] = $7; err[$2, k] = $8; opened[$2, k] = $9
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    if (!($2 in tseen)) { tseen[$2] = 1; targets[++nt] = $2 }
    if ($2 ~ /^nginx/ && $5 > best[k]) best[k] = $5
}
$1 == "ttfb" { ttfb[$2] = $0 }
$1 == "proc" { proc[$2] = $0 }
$1 == "mem" { mem[++nm] = $0 }
END {
    print "## Throughput and latency"
    print ""
    print "wrk, " secs " s per cell; p50 and p99 are wrk's, over every answer of the cell (a stream: until its"
    print "last byte). ÷ nginx: requests/s over the better of nginx 1w and nginx auto in the same cell."
    print "Backend conns: connections the backend accepted during the cell; a proxy that keeps its"
    print "upstream connections alive opens about one per client connection."
    print ""
    print "| answer | conns | target | req/s | p50 | p99 | ÷ nginx | ÷ direct | p50 − direct | errors | backend conns |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (pass = 1; pass <= 2; pass++)         # plain answers first, then streams
        for (i = 1; i <= nk; i++) {
            split(keys[i], kc, SUBSEP)
            if ((pass == 1) != (kc[1] == "plain")) continue
            k = keys[i]; d = rps["direct", k]
            for (j = 1; j <= nt; j++) {
                t = targets[j]
                if (!((t, k) in rps)) continue
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", kc[1], kc[2], label(t),
                    num(rps[t, k]), us(p50[t, k]), us(p99[t, k]),
                    (best[k] > 0 ? sprintf("%.2f", rps[t, k] / best[k]) : ""),
                    (d > 0 ? sprintf("%.2f", rps[t, k] / d) : ""),
                    (t == "direct" ? "" : signed_us(p50[t, k] - p50["direct", k])), err[t, k],
                    num(opened[t, k])
            }
        }
    print ""
    print "## Time to first byte of a stream"
    print ""
    print "bench-client: streamed requests one after another on one keep-alive connection, after 20"
    print "not counted; from just before the request is written to the read() that returns the first"
    print "byte of the SSE body. The backend sends the 7 events of each stream " gap " ms apart (6 ms a"
    print "stream): a proxy that held events back would show it here."
    print ""
    print "| target | TTFB p50 | TTFB p99 | p50 − direct | whole stream p50 | requests | errors |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    split(ttfb["direct"], dt, " ")
    for (j = 1; j <= nt; j++) {
        t = targets[j]
        if (!(t in ttfb)) continue
        split(ttfb[t], f, " ")
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", label(t), us(f[3]), us(f[4]),
            (t == "direct" ? "" : signed_us(f[3] - dt[3])), us(f[5]), num(f[6]), f[7]
    }
    print ""
    print "## Processes and memory"
    print ""
    print "Serving: processes that used 0.1 CPU s or more over all the cells and the TTFB run."
    print "RSS: the sum of VmRSS over the processes; PSS: their proportional set size, which counts"
    print "a page shared by a master and its workers once."
    print ""
    print "| target | processes | serving | CPU s per process | RSS after its runs | PSS |"
    print "|---|---:|---:|---|---:|---:|"
    for (j = 1; j <= nt; j++) {
        t = targets[j]
        if (!(t in proc)) continue
        split(proc[t], f, " "); busy = 0
        nc = split(f[4], cs, "_\\+_"); for (i = 1; i <= nc; i++) busy += cs[i] >= 0.1
        gsub(/_/, " ", f[4])
        printf "| %s | %s | %s | %s | %s | %s |\n", label(t), f[3], busy, f[4], mib(f[5]), mib(f[6])
    }
    if (nm == 0) exit
    print ""
    print "cairn rules+validation, a new process for each line:"
    print ""
    print "| cairn rules+validation | RSS before | RSS | difference | |"
    print "|---|---:|---:|---:|---|"
    for (i = 1; i <= nm; i++) {
        split(mem[i], f, " "); what = f[2]; rest = mem[i]; sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ ?/, "", rest)
        diff = sprintf("%+.1f MiB", (f[4] - f[3]) / 1024)
        if (what == "idle") {
            l = "holding " num(f[5]) " idle keep-alive connections"
            diff = diff sprintf(", %.1f KiB each", (f[4] - f[3]) / f[5])
        } else if (what == "streams") {
            l = num(f[5]) " concurrent slow streams in flight (7 events, " slow " ms apart)"
            diff = diff sprintf(", %.1f KiB each", (f[4] - f[3]) / f[5])
        } else {
            l = "after 1 000, then " num(f[5]) " requests (64 connections, half streamed)"
            diff = diff sprintf(" (%+.1f%%)", f[3] > 0 ? 100 * (f[4] - f[3]) / f[3] : 0)
        }
        printf "| %s | %s | %s | %s | %s |\n", l, mib(f[3]), mib(f[4]), diff, rest
    }
}
AWK
    echo
    cat "$tmp/marker.md"
} >"$tmp/bench.md"

mkdir -p "$(dirname "$out")"
cp "$tmp/bench.md" "$out"
echo
cat "$out"
log "written to $out"
