#!/usr/bin/env bash
# `make run`: serve conf/cairn.json in the foreground.
#   usage: tests/run-standin.sh BUILD_DIR [UPSTREAM_URL]
# Without UPSTREAM_URL, the stand-in backend (BUILD_DIR/cairn-standin) is
# started on 127.0.0.1:8081 — the upstream conf/cairn.json points at — so the
# gateway answers at once without an API key; it is stopped when cairn exits.
# The stand-in breaks the markers of every first answer on purpose (a
# simulation: --violate 1), and obeys when asked again, so that the retry
# with feedback can be seen at work (X-Cairn-Attempts, X-Cairn-Violations).
# With UPSTREAM_URL, cairn is pointed at that backend instead (--upstream).
set -u
cd "$(dirname "$0")/.." || exit 1
build=${1:-build}
upstream=${2:-}
conf=conf/cairn.json
standin_addr=127.0.0.1:8081

listen=$(sed -n 's/.*"listen"[^"]*"\([^"]*\)".*/\1/p' "$conf" | head -n1)
hint() { # $1: a model name the backend knows
    echo "run: try  curl http://${listen:-127.0.0.1:8080}/v1/chat/completions" \
         "-H 'Content-Type: application/json'" \
         "-d '{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}'" >&2
}

if [ -n "$upstream" ]; then
    hint gpt-4o-mini
    exec "$build/cairn" serve -c "$conf" --upstream "$upstream"
fi

log=$(mktemp "${TMPDIR:-/tmp}/cairn-standin.XXXXXX")
standin_pid=
cleanup() {
    if [ -n "$standin_pid" ]; then
        kill "$standin_pid" 2>/dev/null
        wait "$standin_pid" 2>/dev/null
    fi
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$build/cairn-standin" --listen "$standin_addr" --violate 1 --violate-retry 0 2>"$log" &
standin_pid=$!
for _ in $(seq 1 100); do
    grep -q 'listening on' "$log" && break
    if ! kill -0 "$standin_pid" 2>/dev/null; then
        cat "$log" >&2
        echo "run: the stand-in backend could not start on $standin_addr" \
             "(is something else listening there?)" >&2
        standin_pid=
        exit 1
    fi
    sleep 0.05
done
if ! grep -q 'listening on' "$log"; then
    echo "run: the stand-in backend did not come up on $standin_addr" >&2
    exit 1
fi
cat "$log" >&2

echo "run: stand-in backend on http://$standin_addr/v1 (use 'make run UPSTREAM=URL' for a real one)" >&2
hint standin-1
"$build/cairn" serve -c "$conf"
