"""Secrets in core dumps.

A core file (the kernel's, when a process dies of a signal, or gdb's
`gcore`, taken for a bug report) holds the memory of one process. After a
worker has served requests with a client key and sent the upstream key,
neither key may be in a core of the worker or of the master: the upstream
key lives in pages marked MADV_DONTDUMP (include/secret.h), the client's
Authorization is wiped from the request once checked, and the buffers of
libevent and libcurl that carried either are wiped when freed.

The keys are canaries of the harness: the teardown scans every core this
test leaves in its temp dir. Under AddressSanitizer a core would be
terabytes (the allocator's and the shadow's reservations), so an ASan build
runs the traffic and the MADV_DONTDUMP check and writes no core; the
normal build's run is the one that checks cores.
"""

import os
import re
import shutil
import signal
import subprocess

import harness
from harness import (CANARY, CHAT_BODY, assert_status, bearer, build_request, chat_body, check,
                     ctx, new_key, start_gateway, start_upstream, tenant, wait_for)

RULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rules")


def sanitized():
    """True for a -fsanitize=address build of cairn."""
    with open(harness.binary(), "rb") as f:
        return b"__asan_init" in f.read()


SECOND_KEY = "sk-second-upstream-0d9c44e1"


def serve_with_keys(gw, key, key_b):
    """Traffic that puts the keys through every buffer they pass: two
    requests on one keep-alive connection, a streamed answer, a models
    list, a refused key, requests on fresh connections, and requests of a
    second tenant, whose upstream has a key of its own."""
    c = gw.client()
    for body in (CHAT_BODY, chat_body(stream=True)):
        c.send(build_request("POST", "/v1/chat/completions", body, headers=bearer(key)))
        assert_status(c.read_response(method="POST"), 200)
    c.close()
    assert_status(gw.request("GET", "/v1/models", headers=bearer(key)), 200)
    assert_status(gw.chat(CHAT_BODY, headers=bearer(new_key("refused"))), 401)
    for _ in range(3):
        assert_status(gw.chat(CHAT_BODY, headers=bearer(key)), 200)
        assert_status(gw.chat(chat_body(stream=True), headers=bearer(key_b)), 200)


def dontdump_holds(pid, secret):
    """True if `secret` is in a mapping of process `pid` that is marked
    MADV_DONTDUMP ("dd" in smaps' VmFlags): the process holds the key where
    no core writer looks."""
    regions, start = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
            if m:
                start = (int(m.group(1), 16), int(m.group(2), 16))
            elif line.startswith("VmFlags:") and " dd" in line and start is not None:
                regions.append(start)
    with open("/proc/%d/mem" % pid, "rb") as mem:
        for lo, hi in regions:
            if hi - lo > 64 << 20:  # a sanitizer's shadow, not a secret page
                continue
            try:
                mem.seek(lo)
                if secret.encode() in mem.read(hi - lo):
                    return True
            except OSError:
                continue
    return False


def assert_core(path, what):
    """A core was written (its content is scanned for every canary by the
    teardown, with the rest of the temp dir)."""
    check(os.path.exists(path), "no core of the %s at %s" % (what, path))
    size = os.path.getsize(path)
    check(size > 1 << 20, "the core of the %s is only %d bytes" % (what, size))


def test_no_secret_in_a_core_of_the_master_or_a_worker():
    """After a worker has served requests with a client key and sent the
    upstream key: gdb's gcore of the master, and the kernel's core of the
    worker killed with SIGABRT (core_pattern "core": in its cwd, the temp
    dir). The teardown finds neither key in either. Both processes do hold
    the upstream key -- in a MADV_DONTDUMP mapping, which both core writers
    skip."""
    check(shutil.which("gcore") is not None, "gcore (gdb) is not installed")
    key, key_b = new_key("alpha"), new_key("beta")
    up, up_b = start_upstream(), start_upstream()
    gw = start_gateway(up, auth="keys", rules_dir=RULES_DIR, core_dumps=True,
                       tenants={"alpha": tenant(key), "beta": tenant(key_b, upstream="second")},
                       upstreams={"second": {"base_url": up_b.base_url,
                                             "api_key_env": "CAIRN_IT_SECOND_KEY"}},
                       env={"CAIRN_IT_SECOND_KEY": SECOND_KEY})
    serve_with_keys(gw, key, key_b)
    for u, k in ((up, CANARY), (up_b, SECOND_KEY)):
        check(u.requests and all(r.header("authorization") == "Bearer " + k for r in u.requests),
              "an upstream did not get its key: %r" % u.requests)
    worker = gw.worker_pids()[0]
    for what, pid in (("master", gw.pid), ("worker", worker)):
        for k in (CANARY, SECOND_KEY):
            check(dontdump_holds(pid, k),
                  "the %s holds no copy of upstream key %s... in MADV_DONTDUMP memory"
                  % (what, k[:12]))
    if sanitized():
        print("    (ASan build: no core taken, see the module's docstring)")
        return

    prefix = ctx().path("gcore-master")
    p = subprocess.run(["gcore", "-o", prefix, str(gw.pid)], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    check(p.returncode == 0, "gcore failed: %s" % p.stderr.decode(errors="replace")[-500:])
    assert_core("%s.%d" % (prefix, gw.pid), "master")

    # The kernel writes the core before the worker becomes a zombie the
    # master reaps.
    os.kill(worker, signal.SIGABRT)
    check(wait_for(lambda: worker not in gw.worker_pids(), 20.0),
          "worker %d did not die of SIGABRT" % worker)
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    check(pattern == "core", "core_pattern is %r: this test expects \"core\"" % pattern)
    assert_core(ctx().path("core"), "worker")
    # The master starts another worker, which serves as before (once it
    # has loaded its configuration and opened its socket).
    def served():
        try:
            return gw.chat(CHAT_BODY, headers=bearer(key)).status == 200
        except (OSError, AssertionError):
            return False
    check(wait_for(served, 10.0, interval=0.2), "no worker serves after the abort")
