"""Worker processes: a master forks "workers" gateways that share the
listening port (SO_REUSEPORT); /metrics sums every worker's counters;
rate limits are shared, so N workers do not multiply a tenant's limit; a
worker that dies is started again and the service goes on, its counters
kept; a reload reaches every worker; SIGTERM drains them all."""

import os
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import (CHAT_BODY, admin_request, assert_status, bearer, check, metrics, new_key,
                     start_gateway, start_upstream, tenant, wait_for, wait_metric, write_config)

CHAT = "/v1/chat/completions"
PROMTOOL = "/usr/bin/promtool"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_workers(up, n=2, **sections):
    gw = start_gateway(up, workers=n, **sections)
    check(wait_for(lambda: len(gw.worker_pids()) == n, 5.0),
          "%d workers running, want %d" % (len(gw.worker_pids()), n))
    return gw


def io_bytes(gw):
    """Bytes each worker has read and written (/proc/PID/io): what moves
    when a worker serves, and only then."""
    def moved(pid):
        with open("/proc/%d/io" % pid) as f:
            fields = dict(line.split(": ") for line in f.read().splitlines())
        return int(fields["rchar"]) + int(fields["wchar"])
    return {pid: moved(pid) for pid in gw.worker_pids()}


def test_workers_share_the_port_and_metrics_add_up():
    """Two workers: 120 requests on fresh connections all succeed, the
    master's /metrics counts all 120 (a valid exposition), and both workers
    took a share of the work."""
    up = start_upstream()
    gw = start_workers(up)
    before = io_bytes(gw)
    for _ in range(120):
        assert_status(gw.chat(CHAT_BODY), 200)
    m = wait_metric(gw, "cairn_requests_total",
                    dict(tenant="default", route=CHAT, status="200", arm=""), 120)
    check(m.get("cairn_workers") == 2, "cairn_workers %r" % m.get("cairn_workers"))
    after = io_bytes(gw)
    check(all(after[p] > before[p] for p in before), "a worker took no connection: %r -> %r"
          % (before, after))
    if os.path.exists(PROMTOOL):
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=m.text.encode(),
                              capture_output=True, timeout=30)
        # promtool lints too (e.g. counters without _total); only errors fail.
        check(b"error" not in proc.stderr.lower(), "promtool: %s" % proc.stderr.decode()[-500:])


def test_rate_limit_is_shared_by_the_workers():
    """A tenant with a burst of 10 and a negligible refill gets exactly 10
    answers out of 30 requests spread over two workers."""
    up = start_upstream()
    key = new_key()
    gw = start_workers(up, auth="keys", tenants={
        "t": tenant(key, rate={"requests_per_second": 0.001, "burst": 10})})
    statuses = [gw.chat(CHAT_BODY, headers=bearer(key)).status for _ in range(30)]
    check(statuses.count(200) == 10 and statuses.count(429) == 20,
          "200s %d, 429s %d: the workers do not share the bucket"
          % (statuses.count(200), statuses.count(429)))


def test_a_dead_worker_is_started_again_and_keeps_its_counts():
    """SIGKILL one worker: the master starts another in its place, requests
    keep succeeding (the dead worker's queued connections wait for its
    successor), the restart is counted and no request count is lost."""
    up = start_upstream()
    gw = start_workers(up)
    for _ in range(20):
        assert_status(gw.chat(CHAT_BODY), 200)
    wait_metric(gw, "cairn_requests_total",
                dict(tenant="default", route=CHAT, status="200", arm=""), 20)
    victim = gw.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    def replaced():
        pids = gw.worker_pids()  # one reading: two could straddle the death
        return len(pids) == 2 and victim not in pids
    check(wait_for(replaced, 5.0), "the dead worker was not replaced: %r" % gw.worker_pids())
    for _ in range(20):
        assert_status(gw.chat(CHAT_BODY), 200)
    m = wait_metric(gw, "cairn_requests_total",
                    dict(tenant="default", route=CHAT, status="200", arm=""), 40)
    check(m.get("cairn_worker_restarts_total") == 1,
          "restarts %r" % m.get("cairn_worker_restarts_total"))
    check("died of signal 9" in gw.stderr_text(), "the death was not logged")


def test_reload_reaches_every_worker():
    """After a reload that changes a fixed marker, every answer, whichever
    worker serves it, carries the new one."""
    up = start_upstream()
    gw = start_workers(up, markers={"fixed": {"domain": "Legal"}})
    gw.config["policy"]["markers"]["fixed"] = {"domain": "Medical"}
    write_config(gw.config)
    assert_status(admin_request(gw, "POST", "/admin/reload"), 200)

    def all_new():
        return all((gw.chat(CHAT_BODY).header("x-cairn-markers") or "") == "domain=Medical"
                   for _ in range(10))
    check(wait_for(all_new, 5.0), "a worker still answers with the old configuration")
    m = metrics(gw)
    check(m.get("cairn_config_generation") == 2, "generation %r" % m.get("cairn_config_generation"))


def test_sigterm_stops_every_worker():
    up = start_upstream()
    gw = start_workers(up)
    pids = gw.worker_pids()
    assert_status(gw.chat(CHAT_BODY), 200)
    code = gw.stop()
    check(code == 0, "master exited with %r" % code)
    for pid in pids:
        check(not os.path.exists("/proc/%d" % pid) or
              open("/proc/%d/stat" % pid).read().split()[2] == "Z", "worker %d still runs" % pid)


def test_workers_default_to_one_per_cpu():
    """One per CPU the process may run on: its affinity (a container's
    cpuset), not every CPU of the machine."""
    up = start_upstream()
    gw = start_gateway(up, workers=0)
    n = len(os.sched_getaffinity(0))
    check(wait_for(lambda: len(gw.worker_pids()) == n, 5.0),
          "%d workers for %d CPUs" % (len(gw.worker_pids()), n))
    time.sleep(0.3)
    check(metrics(gw).get("cairn_workers") == n, "cairn_workers")


def test_a_worker_that_cannot_start_takes_no_connections():
    """Worker 0 dies and cannot start again (its rules directory is gone):
    its sockets are closed while it is down, so every new connection is
    served by the worker that runs instead of waiting in a queue nobody
    accepts from."""
    up = start_upstream()
    rules = harness.ctx().path("rules")
    shutil.copytree(os.path.join(REPO, "rules"), rules)
    gw = start_workers(up, rules_dir=rules, markers={"annotate": "rules"})
    # Both workers have loaded the rules before they go.
    wait_metric(gw, "cairn_workers_stale", {}, 0, timeout=10.0)
    victim = gw.worker_pids()[0]
    shutil.rmtree(rules)
    os.kill(victim, signal.SIGKILL)
    check(wait_for(lambda: "keeps dying at start" in gw.stderr_text(), 5.0),
          "the worker did not fail to start again: %s" % gw.stderr_text()[-1000:])
    for i in range(40):
        resp = gw.request("POST", CHAT, CHAT_BODY, timeout=3.0)
        check(resp.status == 200, "request %d: %r" % (i, resp.status))
    # The rules come back: so does the worker, on sockets of its own.
    shutil.copytree(os.path.join(REPO, "rules"), rules)
    check(wait_for(lambda: gw.stderr_text().count("started again") >= 1 and
                   len(gw.worker_pids()) == 2 and
                   metrics(gw).get("cairn_workers_stale") == 0 and
                   metrics(gw).get("cairn_workers") == 2, 40.0),
          "the worker did not come back: %s" % gw.stderr_text()[-1000:])
    for i in range(20):
        assert_status(gw.request("POST", CHAT, CHAT_BODY, timeout=3.0), 200)


def test_a_second_instance_on_the_same_port_is_refused():
    """SO_REUSEPORT would let a second cairn bind the port and take half of
    the traffic; it is refused instead."""
    up = start_upstream()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    first = start_gateway(up, listen=["127.0.0.1:%d" % port])
    cfg = dict(first.config, admin={"listen": []})
    path = write_config(cfg, "second.json")
    proc = subprocess.run([harness.binary(), "serve", "-c", path], env=harness.gateway_env(),
                          capture_output=True, timeout=10)
    check(proc.returncode == 1 and b"already served by another cairn" in proc.stderr,
          "second instance: exit %r, %r" % (proc.returncode, proc.stderr[-300:]))
    assert_status(first.chat(CHAT_BODY), 200)
