"""Shared helpers for cairn's integration tests.

Three pieces, all loopback-only and standard-library-only:

* Gateway  - a running `cairn serve` on a temporary JSON config, with its
             stderr collected in a thread and its access log in a temp file.
             cairn writes its logs from a background thread, so a line shows
             up a little after the response that caused it: tests read logs
             through wait_log (or the Gateway methods built on it), which
             polls for the line they expect.
* Upstream - a scripted fake OpenAI-compatible backend (threaded TCP server)
             that records every request it receives.
* Client   - a raw HTTP/1.1 client socket: send exact bytes, read responses
             (Content-Length, chunked or until-close), byte for byte.

Every test runs inside a Context (opened by run.py). Whatever a test starts
through these helpers is registered there and torn down afterwards; the
teardown also fails the test if a gateway did not exit 0 on SIGTERM, or if
a sanitizer or valgrind reported anything.

Every secret a test configures is a canary (Context.add_secret): the
upstream API keys (whatever variable api_key_env names) and the client keys
(new_key / client_key). After the gateways have exited, the teardown fails
the test if any canary is in cairn's stderr, in any file of the test's temp
dir (logs, cores; not the configs the harness wrote), or in any byte a
client received (heads included); and if a client key is in anything a
fake upstream received.

CAIRN_TEST_WRAPPER (e.g. "valgrind --tool=memcheck ...", set by run.py
--valgrind) prefixes the gateway's command; its start and stop deadlines
are then stretched by CAIRN_TEST_SLOWDOWN (default 10).
"""

import hashlib
import json
import os
import re
import select
import shutil
import secrets
import shlex
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
import time

BUILD_DIR = "build"  # set by run.py --build
CANARY = "sk-canary-7f3e9a1b"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
IO_TIMEOUT = 5.0  # default for every socket operation
WRAPPER = shlex.split(os.environ.get("CAIRN_TEST_WRAPPER", ""))  # prefixes `cairn serve`
SLOWDOWN = float(os.environ.get("CAIRN_TEST_SLOWDOWN", "10" if WRAPPER else "1"))
STOP_TIMEOUT = 10.0 * SLOWDOWN  # SIGTERM -> exit
LOG_TIMEOUT = 3.0 * SLOWDOWN  # a line cairn queued is in its log file well within this
# valgrind's summary lines (each process prints its own) and any error it reports
VALGRIND_BAD = (re.compile(r"ERROR SUMMARY: [1-9]"), re.compile(r"definitely lost: [1-9]"),
                re.compile(r"==\d+== (Invalid|Conditional jump|Use of uninitialised|Syscall param|"
                           r"Mismatched free|Source and destination overlap)"))
ADMIN_PATHS = ("/metrics", "/admin/reload")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TLS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls")
TLS_CA = os.path.join(TLS_DIR, "ca.pem")  # signs tls/server.pem (127.0.0.1)


class TestFailure(AssertionError):
    """Raised by helpers when an expectation is not met."""


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def binary():
    return os.path.join(BUILD_DIR, "cairn")


# --------------------------------------------------------------------------
# Per-test context
# --------------------------------------------------------------------------


class Context:
    """What one test started; torn down by close(), which returns problems."""

    def __init__(self, name):
        self.name = name
        self.tmpdir = tempfile.mkdtemp(prefix="cairn-it-")
        self.gateways = []
        self.upstreams = []
        self.clients = []
        self.standins = []
        self.seen = []  # every byte chunk a client received
        self.lock = threading.Lock()
        self.secrets = {}  # canary -> (kind: "upstream key" | "client key", label)
        self.harness_files = set()  # paths the harness wrote (configs): not scanned
        self.upstream_may_see = {}  # client key -> why a test sends it upstream on purpose

    def add_secret(self, value, kind, label=""):
        """Make `value` a canary (see the module's docstring)."""
        if value:
            self.secrets.setdefault(value, (kind, label))

    def allow_upstream_to_see(self, key, why):
        """A test that puts client key `key` in a prompt on purpose: the
        upstream receiving it is then not a leak (everything else still is)."""
        self.upstream_may_see[key] = why

    def record_seen(self, data):
        with self.lock:
            self.seen.append(bytes(data))

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def close(self):
        problems = []
        for c in list(self.clients):
            c.close()
        for up in self.upstreams:
            up.release()
        for gw in self.gateways:
            problems.extend(gw.finish())
        for standin in self.standins:
            standin.stop()
        for up in self.upstreams:
            up.close()
            problems.extend("fake upstream handler raised %s" % e for e in up.errors)
        problems.extend(self.leaks())
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return problems

    def leaks(self):
        """Where each canary appears that it must not (run once every
        gateway has exited, so its logs and cores are complete)."""
        needles = [v.encode() for v in self.secrets]
        found = []  # (needle, where)
        sources = [("a response a client received", b"".join(self.seen))]
        for i, gw in enumerate(self.gateways):
            with gw.stderr_lock:
                sources.append(("cairn's stderr (gateway %d)" % (i + 1), b"".join(gw.stderr_chunks)))
        for what, data in sources:
            found += [(n, what) for n in needles if n in data]
        for root, _, files in os.walk(self.tmpdir):
            for name in sorted(files):
                path = os.path.join(root, name)
                if path not in self.harness_files and not os.path.islink(path):
                    what = "file %s" % os.path.relpath(path, self.tmpdir)
                    found += [(n, what) for n in file_holds(path, needles)]
        problems = []
        for needle, what in found:
            kind, label = self.secrets[needle.decode()]
            problems.append("%s %s(%s...) appeared in %s"
                            % (kind, label + " " if label else "", needle[:12].decode(), what))
        for value, (kind, label) in self.secrets.items():
            if kind != "client key" or value in self.upstream_may_see:
                continue
            for up in self.upstreams:
                if any(value.encode() in r.raw_head + r.body for r in up.requests):
                    problems.append("client key %s(%s...) was forwarded to a fake upstream"
                                    % (label + " " if label else "", value[:12]))
        return problems


def file_holds(path, needles, chunk=16 << 20):
    """The needles (bytes) found in a file, read in overlapping chunks (a
    core is hundreds of megabytes)."""
    found, keep, tail = set(), max((len(n) for n in needles), default=1) - 1, b""
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(chunk)
                if not block:
                    break
                data = tail + block
                found.update(n for n in needles if n in data)
                tail = data[-keep:] if keep else b""
    except OSError:
        pass
    return [n for n in needles if n in found]


CTX = None


def begin_test(name):
    global CTX
    CTX = Context(name)
    return CTX


def end_test():
    global CTX
    ctx, CTX = CTX, None
    return ctx.close() if ctx else []


def ctx():
    check(CTX is not None, "no test context (run through run.py)")
    return CTX


# --------------------------------------------------------------------------
# Gateway process
# --------------------------------------------------------------------------


def deep_merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def refused_url():
    """An http:// URL on a loopback port that was bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d/v1" % port


def write_config(config, name="cairn.json"):
    path = ctx().path(name)
    ctx().harness_files.add(path)
    with open(path, "w") as f:
        if isinstance(config, (bytes, str)):
            f.write(config if isinstance(config, str) else config.decode())
        else:
            json.dump(config, f, indent=2)
    return path


def gateway_env(api_key=CANARY, extra=None):
    env = {k: v for k, v in os.environ.items()
           if k != "OPENAI_API_KEY" and not k.startswith("CAIRN_TEST_")}
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
        if CTX is not None:
            CTX.add_secret(api_key, "upstream key", "OPENAI_API_KEY")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    if extra:
        env.update(extra)
    return env


def gateway_config(upstream=None, base_url=None, **sections):
    """The config a test gateway runs with: ephemeral port, access log in a
    temp file, a drain bounded below the harness's stop timeout."""
    if base_url is None:
        base_url = upstream.base_url if upstream is not None else refused_url()
    cfg = {
        "listen": ["127.0.0.1:0"],
        # One worker: tests of per-process state (the annotation cache, a
        # breaker) see every request; test_workers.py runs several.
        "workers": 1,
        "admin": {"listen": ["127.0.0.1:0"]},
        "timeouts": {"drain_ms": 5000},
        "upstreams": {"default": {"base_url": base_url}},
        "log": {"access": ctx().path("access.log")},
        # The gateway-core tests compare what the upstream received with
        # what the client sent, and the answer with what the upstream sent:
        # no annotation and no validation unless a test asks for them.
        "policy": {"markers": {"annotate": "off"}, "validation": {"markers": []}},
    }
    # markers=... is the default policy's marker section.
    if "markers" in sections:
        sections["policy"] = deep_merge(sections.get("policy", {}),
                                        {"markers": sections.pop("markers")})
    return deep_merge(cfg, sections)


def start_gateway(upstream=None, base_url=None, api_key=CANARY, env=None, args=(),
                  core_dumps=False, **sections):
    """Start `cairn serve` for this test. Keyword sections (limits=...,
    timeouts=..., upstream=... is the fake upstream, so the upstream config
    section is passed as upstream_cfg=...) are merged into the config.
    core_dumps: run in the test's temp dir with RLIMIT_CORE unlimited, so a
    process that dumps core leaves its core there (core_pattern "core")."""
    upstream_cfg = sections.pop("upstream_cfg", None)
    cfg = gateway_config(upstream, base_url, **sections)
    if upstream_cfg:
        cfg = deep_merge(cfg, {"upstreams": {"default": upstream_cfg}})
    gw = Gateway(cfg, gateway_env(api_key, env), args, core_dumps=core_dumps)
    gw.start()
    return gw


def api_key_envs(config):
    """Every api_key_env named anywhere in a config (upstreams, the
    annotator's, a judge's, a shadow's)."""
    found = []
    if isinstance(config, dict):
        for k, v in config.items():
            if k == "api_key_env" and isinstance(v, str):
                found.append(v)
            else:
                found += api_key_envs(v)
    elif isinstance(config, list):
        for v in config:
            found += api_key_envs(v)
    return found


def set_core_limit():
    """preexec_fn: core files of any size (cores are the subject of a test)."""
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


class Gateway:
    def __init__(self, config, env, args=(), core_dumps=False):
        self.config = config
        self.env = env
        self.args = list(args)
        self.core_dumps = core_dumps
        self.proc = None
        self.port = None  # the first listening port
        self.ports = []  # every listening port, in the order reported
        self.admin_port = None  # the first admin port
        self.stderr_chunks = []
        self.stderr_lock = threading.Lock()
        self.listening = threading.Event()
        self.finished = False
        self.expected_exit = 0
        log = config.get("log", {}).get("access", "-") if isinstance(config, dict) else "-"
        self.log_path = None if log == "-" else log
        ctx().gateways.append(self)
        # Every upstream key this gateway is given is a canary.
        names = ["OPENAI_API_KEY"] + (api_key_envs(config) if isinstance(config, dict) else [])
        for name in names:
            ctx().add_secret(env.get(name), "upstream key", name)

    # -- lifecycle --

    def start(self, timeout=10.0):
        cfg_path = write_config(self.config)
        cmd = WRAPPER + [os.path.abspath(binary()), "serve", "-c", cfg_path] + self.args
        timeout *= SLOWDOWN
        env = self.env
        if self.core_dumps:  # ASan would otherwise set RLIMIT_CORE to 0
            env = dict(env, ASAN_OPTIONS=env.get("ASAN_OPTIONS", "") + ":disable_coredump=0")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=ctx().tmpdir if self.core_dumps else None,
                                     preexec_fn=set_core_limit if self.core_dumps else None)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if not self.listening.wait(timeout):
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("cairn did not report 'listening' within %.0fs; stderr: %s"
                              % (timeout, self.stderr_text()[-2000:]))
        return self

    def _wants_admin(self):
        cfg = self.config if isinstance(self.config, dict) else {}
        return bool(cfg.get("admin", {}).get("listen", ["default"]))

    def _read_stderr(self):
        pattern = re.compile(r"cairn: (admin )?listening on 127\.0\.0\.1:(\d+)")
        for line in iter(self.proc.stderr.readline, b""):
            with self.stderr_lock:
                self.stderr_chunks.append(line)
            m = pattern.search(line.decode("utf-8", "replace"))
            if m and m.group(1):
                self.admin_port = self.admin_port or int(m.group(2))
            elif m:
                self.ports.append(int(m.group(2)))
                self.port = self.port or self.ports[0]
            if self.port and (self.admin_port or not self._wants_admin()):
                self.listening.set()
        self.proc.stderr.close()

    def stderr_text(self):
        with self.stderr_lock:
            return b"".join(self.stderr_chunks).decode("utf-8", "replace")

    @property
    def pid(self):
        return self.proc.pid

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=None):
        """Wait for the process to exit; returns its code or None."""
        timeout = STOP_TIMEOUT if timeout is None else timeout
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM and wait; returns the exit code (None if still running)."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def finish(self):
        """Teardown: stop, then collect every problem as a string."""
        if self.finished:
            return []
        self.finished = True
        problems = []
        if self.proc is None:
            return problems
        code = self.stop()
        if code is None:
            self.proc.kill()
            self.proc.wait()
            problems.append("cairn did not exit within %.0fs of SIGTERM" % STOP_TIMEOUT)
        elif code != self.expected_exit:
            problems.append("cairn exited with %d after SIGTERM (expected %d)"
                            % (code, self.expected_exit))
        self.reader.join(2.0)  # the rest of stderr (sanitizer reports come at exit)
        err = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            if marker in err:
                i = err.index(marker)
                problems.append("sanitizer report in stderr: %s"
                                % err[max(0, i - 200):i + 1500].replace("\n", " | "))
                break
        if WRAPPER:
            for pattern in VALGRIND_BAD:
                m = pattern.search(err)
                if m:
                    i = m.start()
                    problems.append("%s report in stderr: %s" % (
                        os.path.basename(WRAPPER[0]),
                        err[max(0, i - 1500):i + 1500].replace("\n", " | ")))
                    break
        # Canaries in stderr and the logs: Context.leaks, once every gateway is down.
        return problems

    # -- observation --

    def worker_pids(self):
        """The master's children: its workers."""
        with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
            return [int(p) for p in f.read().split()]

    def rss_kb(self):
        """Resident memory of the master and its workers together."""
        total = 0
        for pid in [self.pid] + self.worker_pids():
            with open("/proc/%d/status" % pid) as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return total

    def mark_fds(self):
        """Remember each worker's open descriptors (fd_counts), for
        assert_recovered after a fault; returns them. Call it before the
        fault, with no client connection open: a worker forked after the
        master reported may still be starting, so a /healthz goes first
        and the count is taken once it holds still."""
        check(self.healthz().status == 200, "/healthz failed before the fault")
        last = None
        for _ in range(50):
            now = fd_counts(self)
            if now == last:
                break
            last = now
            time.sleep(0.05)
        self.fd_mark = now
        return now

    def stop_flushed(self):
        """Stop the gateway (exit 0 expected) and collect the rest of its
        stderr: every line it queued is then in its log. For checks that
        something is absent from a log, which no awaited line can settle."""
        check(self.stop() == 0, "cairn did not exit 0")
        self.reader.join(2.0)

    def access_log_text(self):
        """The access log as it is now (see wait_access for a line to come)."""
        check(self.log_path is not None, "gateway logs to stderr, not to a file")
        return read_log(self.log_path)

    def access_records(self):
        """Every complete access-log line now, each parsed as one JSON object."""
        return log_records(self.access_log_text(), "access log")

    def stderr_records(self):
        """cairn's JSON lines on stderr: messages, and access records when
        log.access is "-" (plain startup lines and sanitizer reports are
        not JSON lines and are left out)."""
        lines = [l + "\n" for l in self.stderr_text().split("\n")[:-1] if l.startswith("{")]
        return log_records("".join(lines), "stderr")

    def wait_access(self, pred, timeout=LOG_TIMEOUT, what="the expected access record"):
        """wait_log on the access log, wherever it goes."""
        source = self.log_path if self.log_path is not None else self.stderr_records
        return wait_log(source, pred, timeout, what)

    def access_record(self, rid, timeout=LOG_TIMEOUT):
        """The access record of request `rid` (its X-Request-Id)."""
        return self.wait_access(
            lambda recs: next((r for r in recs if r.get("request_id") == rid), None),
            timeout, "the access record of request %s" % rid)

    def nth_access_record(self, n, timeout=LOG_TIMEOUT):
        """The n-th access record (from 1) of a public request: the admin
        listener's (a test's own /metrics scrapes) go to the same log, at
        times of their own, and are not counted."""
        def nth(recs):
            public = [r for r in recs if r.get("path") not in ADMIN_PATHS]
            return public[n - 1] if len(public) >= n else None
        return self.wait_access(nth, timeout, "access record #%d" % n)

    # -- clients --

    def client(self, timeout=IO_TIMEOUT, rcvbuf=None):
        return Client(self.addr, timeout=timeout, rcvbuf=rcvbuf)

    def request(self, method, path, body=None, headers=None, timeout=IO_TIMEOUT):
        """One request on a fresh connection (Connection: close)."""
        c = self.client(timeout)
        c.send(build_request(method, path, body, headers, close=True))
        resp = c.read_response(timeout=timeout, method=method)
        c.close()
        return resp

    def chat(self, body, headers=None, timeout=IO_TIMEOUT):
        return self.request("POST", "/v1/chat/completions", body, headers, timeout)

    def healthz(self):
        return self.request("GET", "/healthz")


class Backend:
    """A backend program of the build (BUILD_DIR/program) on an ephemeral
    loopback port: it says "NAME: listening on ADDR" on stderr when ready.
    Stopped with the test."""

    def __init__(self, program, name, args=(), env=None):
        path = os.path.join(BUILD_DIR, program)
        check(os.access(path, os.X_OK), "%s is missing (make BUILD=%s %s)"
              % (path, BUILD_DIR, path))
        self.proc = subprocess.Popen(
            [path, "--listen", "127.0.0.1:0"] + list(args), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        ctx().standins.append(self)
        line = self.proc.stderr.readline()
        check(line.startswith("%s: listening on " % name), "%s did not start: %r" % (name, line))
        self.base_url = "http://%s/v1" % line.split()[-1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Standin(Backend):
    """build/cairn-standin, the marker-aware stand-in backend, with its
    command-line options."""

    def __init__(self, *args):
        super().__init__("cairn-standin", "standin", args)


def run_cairn(args, env=None, timeout=10.0):
    """Run the binary to completion (check, --version...); returns
    (exit code, stdout, stderr) as text."""
    p = subprocess.run([binary()] + list(args), env=env or gateway_env(), timeout=timeout,
                       stdin=subprocess.DEVNULL, capture_output=True)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        check(marker not in err, "sanitizer report: %s" % err[-2000:])
    for value, (kind, label) in ctx().secrets.items():
        check(value not in out + err, "%s %s(%s...) printed by cairn %s"
              % (kind, label + " " if label else "", value[:12], " ".join(args)))
    return p.returncode, out, err


# --------------------------------------------------------------------------
# Requests and the raw client
# --------------------------------------------------------------------------

CHAT_BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello"}]}


def chat_body(**fields):
    body = dict(CHAT_BODY)
    body.update(fields)
    return body


def encode_body(body):
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def build_request(method, path, body=None, headers=None, close=False, version="1.1"):
    """A well-formed request. `headers` (dict or list of pairs) may override
    the defaults; a None value removes a default header."""
    data = encode_body(body)
    hdrs = [("Host", "127.0.0.1")]
    if data is not None:
        hdrs.append(("Content-Type", "application/json"))
        hdrs.append(("Content-Length", str(len(data))))
    if close:
        hdrs.append(("Connection", "close"))
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for name, value in items:
        hdrs = [(n, v) for n, v in hdrs if n.lower() != name.lower()]
        if value is not None:
            hdrs.append((name, value))
    head = "%s %s HTTP/%s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (n, v) for n, v in hdrs) + "\r\n"
    return head.encode("latin-1") + (data or b"")


def raw_request(request_line, header_lines, body=b""):
    """Exact bytes: request line and header lines joined with CRLF, as given."""
    head = "\r\n".join([request_line] + list(header_lines)) + "\r\n\r\n"
    return head.encode("latin-1") + (body.encode() if isinstance(body, str) else body)


class HeaderLookup:
    """Case-insensitive access to a list of (name, value) `headers`."""

    def header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]


class Response(HeaderLookup):
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = ""
        self.headers = []  # [(name, value)] in order
        self.body = bytearray()  # grows in place while a body is read
        self.chunked = False
        self.complete = False  # the framing said the body ended
        self.raw_head = b""


    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise TestFailure("response body is not JSON (status %s): %r"
                              % (self.status, self.body[:300]))

    def __repr__(self):
        return "<Response %s %r body=%r>" % (self.status, self.headers, self.body[:200])


class ChunkDecoder:
    """Incremental decoder of a chunked body (strict enough for tests)."""

    def __init__(self):
        self.buf = bytearray()
        self.remaining = None  # bytes left in the current chunk, None = size line next
        self.done = False
        self.chunks = 0

    def feed(self, data):
        self.buf += data
        out = bytearray()
        while not self.done:
            if self.remaining is None:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                line = bytes(self.buf[:i]).split(b";")[0].strip()
                del self.buf[:i + 2]
                if not re.fullmatch(rb"[0-9A-Fa-f]+", line):
                    raise TestFailure("bad chunk size line from gateway: %r" % line)
                size = int(line, 16)
                if size == 0:
                    self.remaining = -1  # trailers
                else:
                    self.remaining = size
                    self.chunks += 1
            elif self.remaining == -1:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                if line == b"":
                    self.done = True
            elif self.remaining > 0:
                take = min(self.remaining, len(self.buf))
                if take == 0:
                    break
                out += self.buf[:take]
                del self.buf[:take]
                self.remaining -= take
            else:  # chunk data read, its CRLF next
                if len(self.buf) < 2:
                    break
                if self.buf[:2] != b"\r\n":
                    raise TestFailure("chunk data not followed by CRLF: %r" % bytes(self.buf[:20]))
                del self.buf[:2]
                self.remaining = None
        return bytes(out)


class Client:
    """A client connection to the gateway that reads responses byte-exactly."""

    def __init__(self, addr, timeout=IO_TIMEOUT, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.closed_locally = False
        self.decoder = None
        self.resp = None
        ctx().clients.append(self)

    # -- low level --

    def send(self, data):
        """Send everything; returns False if the peer already closed."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        """Receive once, before `deadline`. False on EOF or timeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        ctx().record_seen(data)
        self.buf += data
        return True

    def _timed_out(self, deadline):
        return not self.eof and time.monotonic() >= deadline

    def readable_within(self, timeout):
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def read_some(self, timeout=IO_TIMEOUT):
        """Raw bytes (buffered first); b'' on EOF or timeout."""
        if not self.buf:
            self._fill(time.monotonic() + timeout)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_all(self, timeout=IO_TIMEOUT):
        """Every raw byte until EOF (fails on timeout)."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        check(self.eof, "connection not closed within %.1fs" % timeout)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def closed_by_peer(self, timeout=2.0):
        """True if the gateway closes the connection within `timeout` with
        nothing more to read (unread bytes make it False)."""
        deadline = time.monotonic() + timeout
        while not self.buf and self._fill(deadline):
            pass
        return self.eof and not self.buf

    def close(self):
        if not self.closed_locally:
            self.closed_locally = True
            try:
                self.sock.close()
            except OSError:
                pass

    def abort(self):
        """Close with an RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    # -- HTTP --

    def read_head(self, timeout=IO_TIMEOUT):
        """Read one response head (may be a 1xx). Fails on EOF/timeout."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if not self._fill(deadline):
                if self.eof:
                    raise TestFailure("connection closed before a response head%s (got %r)"
                                      % (" (reset)" if self.reset else "", bytes(self.buf[:200])))
                raise TestFailure("no response head within %.1fs (got %r)"
                                  % (timeout, bytes(self.buf[:200])))
        raw = bytes(self.buf[:i + 4])
        del self.buf[:i + 4]
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/(1\.[01]) (\d{3}) ?(.*)", lines[0])
        check(m is not None, "bad status line from gateway: %r" % lines[0])
        resp = Response()
        resp.raw_head = raw
        resp.version, resp.status, resp.reason = m.group(1), int(m.group(2)), m.group(3)
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            check(sep and name and name == name.strip(), "bad header line from gateway: %r" % line)
            resp.headers.append((name, value.strip()))
        return resp

    def read_response(self, timeout=IO_TIMEOUT, method="GET", allow_interim=False):
        """Read the next complete response. 1xx responses are skipped unless
        allow_interim; the body is read by its framing; on EOF or timeout
        mid-body, resp.complete stays False."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.read_head(max(0.01, deadline - time.monotonic()))
            if 100 <= resp.status < 200 and not allow_interim:
                continue
            break
        self.start_body(resp, method)
        self.read_body(resp, until=None, deadline=deadline)
        return resp

    def start_body(self, resp, method="GET"):
        self.resp = resp
        self.decoder = None
        te = resp.header("transfer-encoding")
        if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
            resp.complete = True
        elif te is not None:
            check(te.lower() == "chunked", "unexpected Transfer-Encoding %r" % te)
            resp.chunked = True
            self.decoder = ChunkDecoder()

    def read_body(self, resp, until=None, deadline=None, timeout=IO_TIMEOUT):
        """Read body bytes into resp.body until the body ends, EOF, the
        deadline, or `until` (bytes) appears in the body."""
        if deadline is None:
            deadline = time.monotonic() + timeout
        cl = resp.header("content-length")
        while not resp.complete:
            if until is not None and until in resp.body:
                return resp
            if self.decoder is not None:
                if self.buf:
                    data = bytes(self.buf)
                    self.buf.clear()
                    resp.body += self.decoder.feed(data)
                    if self.decoder.done:
                        resp.complete = True
                        self.buf += self.decoder.buf  # pipelined bytes after the body
                        break
                    continue
            elif cl is not None:
                need = int(cl) - len(resp.body)
                if len(self.buf) >= need:
                    resp.body += bytes(self.buf[:need])
                    del self.buf[:need]
                    resp.complete = True
                    break
                resp.body += bytes(self.buf)
                self.buf.clear()
            else:
                resp.body += bytes(self.buf)
                self.buf.clear()
                if self.eof:
                    resp.complete = True
                    break
            if not self._fill(deadline):
                if self.eof and cl is None and self.decoder is None:
                    continue  # read-until-close body: EOF completes it
                break
        return resp


# --------------------------------------------------------------------------
# Assertions on gateway answers
# --------------------------------------------------------------------------


def assert_status(resp, status):
    statuses = status if isinstance(status, (tuple, list, set)) else (status,)
    check(resp.status in statuses, "expected status %s, got %s: %r"
          % ("/".join(map(str, statuses)), resp.status, resp.body[:300]))


def assert_error(resp, status):
    """A gateway error: given status, JSON {"error":{message,type,code}}."""
    assert_status(resp, status)
    ctype = resp.header("content-type", "")
    check(ctype.split(";")[0].strip().lower() == "application/json",
          "error %s has Content-Type %r" % (resp.status, ctype))
    obj = resp.json()
    check(isinstance(obj, dict) and isinstance(obj.get("error"), dict),
          "error body is not {\"error\":{...}}: %r" % resp.body[:300])
    err = obj["error"]
    check(isinstance(err.get("message"), str) and err["message"],
          "error.message missing: %r" % err)
    check(isinstance(err.get("type"), str) and err["type"], "error.type missing: %r" % err)
    check("code" in err and (err["code"] is None or isinstance(err["code"], str)),
          "error.code must be a string or null: %r" % err)
    return err


def assert_healthy(gw, upstream=None):
    """The gateway still answers: /healthz, and a chat through `upstream`."""
    resp = gw.healthz()
    assert_status(resp, 200)
    if upstream is not None:
        upstream.handler = default_handler  # back to the default behaviour
        upstream.script()
        resp = gw.chat(CHAT_BODY)
        assert_status(resp, 200)
        check(resp.json().get("object") == "chat.completion",
              "normal chat after a fault did not pass through: %r" % resp.body[:300])


# --------------------------------------------------------------------------
# Descriptor leaks
# --------------------------------------------------------------------------


def _tcp_sockets():
    """inode -> (local port, remote port) of every TCP socket on the host
    (one network namespace: the gateway's and ours)."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
    return table


def _pooled_ports():
    """(gateway-side port, upstream port) of every connection a fake
    upstream of this test holds open between requests: what libcurl keeps
    in its connection pool, which is not a leak."""
    pooled = set()
    for up in ctx().upstreams:
        with up.lock:
            socks = list(up.idle)
        for s in socks:
            try:
                pooled.add((s.getpeername()[1], s.getsockname()[1]))
            except OSError:
                pass
    return pooled


def fd_counts(gw, timeout=5.0):
    """{worker pid: open descriptors}, not counting upstream connections
    idle in libcurl's pool (see _pooled_ports)."""
    pids = wait_for(gw.worker_pids, timeout)
    check(pids, "the gateway has no worker")
    pooled, tcp = _pooled_ports(), _tcp_sockets()
    counts = {}
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue  # closed while we looked
                m = re.fullmatch(r"socket:\[(\d+)\]", target)
                if m and tcp.get(int(m.group(1))) in pooled:
                    continue
                n += 1
        except FileNotFoundError:
            raise TestFailure("worker %d is gone" % pid)
        counts[pid] = n
    return counts


def assert_fds_back(gw, before, timeout=5.0):
    """Each worker's descriptors (fd_counts) come back to at most what
    they were in `before` within `timeout`: a fault leaked none."""
    state = {}

    def back():
        state["now"] = fd_counts(gw)
        return all(state["now"].get(pid, 0) <= n for pid, n in before.items()) and \
            set(state["now"]) == set(before)
    timeout *= globals().get("SLOWDOWN", 1.0)  # a wrapper (valgrind) stretches every wait
    if not wait_for(back, timeout, interval=0.1):
        raise TestFailure("worker descriptors did not come back within %.0fs: before %r, now %r"
                          % (timeout, before, state["now"]))


def assert_recovered(gw, upstream=None, before=None):
    """After a fault: assert_healthy, then no descriptor leaked since
    `before` (default: what gw.mark_fds() recorded). The test's client
    connections are closed first: the gateway's side of each must go."""
    for c in list(ctx().clients):
        c.close()
    assert_healthy(gw, upstream)
    before = before if before is not None else getattr(gw, "fd_mark", None)
    check(before is not None, "test bug: no descriptor baseline (gw.mark_fds())")
    assert_fds_back(gw, before)


def wait_for(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------
# Log files
# --------------------------------------------------------------------------


def read_log(path):
    """A log file's text as it is now ("" while it does not exist)."""
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def log_records(text, what="log"):
    """The complete lines of a JSON-lines log, each parsed as one object. A
    last line without its newline is still being written: it is left out."""
    records = []
    for line in text.split("\n")[:-1]:  # the last is "" or a line being written
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise TestFailure("%s line is not JSON: %r" % (what, line[:300]))
        check(isinstance(obj, dict), "%s line is not an object: %r" % (what, line[:300]))
        records.append(obj)
    return records


def wait_log(source, pred, timeout=LOG_TIMEOUT, what="the expected line"):
    """Poll a JSON-lines log until pred(records) returns something true, and
    return that; fail the test with the log's end after `timeout`. cairn
    writes its logs from a background thread, so a test that reads a log
    waits for the line it expects rather than reading once. `source` is a
    log file's path, or a function returning its records (stderr)."""
    if callable(source):
        read = source
    else:
        def read():
            return log_records(read_log(source), os.path.basename(source))
    found = wait_for(lambda: pred(read()), timeout)
    if not found:
        raise TestFailure("%s is not in the log within %.0fs; its last records: %r"
                          % (what, timeout, read()[-3:]))
    return found


# --------------------------------------------------------------------------
# Admin listener and metrics
# --------------------------------------------------------------------------


def admin_request(gw, method, path, body=None, headers=None):
    """One request to the admin listener on a fresh connection."""
    check(gw.admin_port, "the gateway reported no admin port")
    c = Client(("127.0.0.1", gw.admin_port))
    c.send(build_request(method, path, body, headers, close=True))
    resp = c.read_response(method=method)
    c.close()
    return resp


def scrape(gw):
    """The admin /metrics page (status 200) as text."""
    resp = admin_request(gw, "GET", "/metrics")
    assert_status(resp, 200)
    return bytes(resp.body).decode("utf-8")


LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_metrics(text):
    """[(name, {label: value}, float)] for every sample line."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        check(m is not None, "unparsable metrics line %r" % line)
        labels, rest = {}, m.group(2) or ""
        while rest:
            lm = LABEL_RE.match(rest)
            check(lm is not None, "unparsable labels in %r" % line)
            labels[lm.group(1)] = unescape(lm.group(2))
            rest = rest[lm.end():]
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


class Metrics:
    """One scrape, parsed."""

    def __init__(self, text):
        self.text = text
        self.samples = parse_metrics(text)

    def get(self, name, **labels):
        """The value of the sample with exactly these labels, or None."""
        found = [v for n, l, v in self.samples if n == name and l == labels]
        check(len(found) <= 1, "duplicate series %s%r" % (name, labels))
        return found[0] if found else None

    def series(self, name):
        """[(labels, value)] for every sample of `name`."""
        return [(l, v) for n, l, v in self.samples if n == name]


def metrics(gw):
    return Metrics(scrape(gw))


def wait_reloaded(gw, generation, timeout=5.0):
    """Wait until configuration `generation` is the master's and every
    worker has applied it (the master counts a reload before its workers
    have read the new file)."""
    def ok():
        m = metrics(gw)
        return m.get("cairn_config_generation") == generation and \
            m.get("cairn_workers_stale") == 0
    check(wait_for(ok, timeout, interval=0.05),
          "configuration generation %d not applied by every worker" % generation)


def wait_metric(gw, name, labels, expected, timeout=3.0):
    """Poll /metrics until name{labels} == expected (a request's numbers are
    recorded as it ends, a moment after the client has its answer); returns
    the last scrape (Metrics)."""
    state = {}

    def ok():
        state["m"] = metrics(gw)
        return state["m"].get(name, **labels) == expected
    if not wait_for(ok, timeout, interval=0.05):
        got = state["m"].get(name, **labels)
        raise AssertionError("%s%r is %r, expected %r; series: %r"
                             % (name, labels, got, expected, state["m"].series(name)))
    return state["m"]


# --------------------------------------------------------------------------
# Fake upstream
# --------------------------------------------------------------------------


class UpstreamRequest(HeaderLookup):
    def __init__(self, method, target, version, headers, body, raw_head):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.raw_head = raw_head

    @property
    def path(self):
        return self.target


    def header_names(self):
        return {n.lower() for n, _ in self.headers}

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<UpstreamRequest %s %s>" % (self.method, self.target)


class Exchange:
    """One request on the fake upstream, handed to the scripted handler."""

    def __init__(self, upstream, sock, req):
        self.up = upstream
        self.sock = sock
        self.req = req
        self.closed = False
        self.sent = 0

    def send(self, data):
        """Send bytes; False once the gateway closed its side."""
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            self.sent += len(data)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            return False

    def respond(self, status, body=b"", headers=(), reason=None, content_type="application/json"):
        body = encode_body(body) or b""
        hdrs = [("Content-Type", content_type)] if content_type else []
        hdrs += list(headers)
        if not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in hdrs):
            hdrs.append(("Content-Length", str(len(body))))
        return self.send(self.head(status, hdrs, reason) + body)

    def json(self, status, obj, headers=()):
        return self.respond(status, json.dumps(obj).encode(), headers)

    @staticmethod
    def head(status, headers, reason=None):
        reason = reason or {200: "OK", 401: "Unauthorized", 403: "Forbidden",
                            429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
        out = "HTTP/1.1 %d %s\r\n" % (status, reason)
        out += "".join("%s: %s\r\n" % (n, v) for n, v in headers) + "\r\n"
        return out.encode("latin-1")

    def start_sse(self, status=200, headers=()):
        hdrs = [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked"),
                ("Cache-Control", "no-cache")] + list(headers)
        return self.send(self.head(status, hdrs))

    def chunk(self, data):
        data = encode_body(data)
        return self.send(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunks(self):
        return self.send(b"0\r\n\r\n")

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def reset(self):
        """Close with an RST."""
        if not self.closed:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.closed = True
            self.sock.close()

    def wait(self, event=None, timeout=5.0):
        """Sleep until `event` is set, the test ends, or `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.up.stopping.is_set():
            if event is not None and event.is_set():
                return True
            time.sleep(0.01)
        return event is not None and event.is_set()

    def peer_closed(self, timeout=0.0):
        """True if the gateway closed this connection (EOF or reset)."""
        if self.closed:
            return True
        try:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return False
            data = self.sock.recv(65536, socket.MSG_PEEK)
            return data == b""
        except (ConnectionResetError, OSError):
            return True


def default_handler(ex):
    req = ex.req
    path = req.target.split("?")[0]
    if req.method == "GET" and path == "/v1/models":
        return ex.json(200, {"object": "list", "data": [{"id": "gpt-test", "object": "model"}]})
    if req.method == "GET" and path.startswith("/v1/models/"):
        return ex.json(200, {"id": path[len("/v1/models/"):], "object": "model"})
    if req.method == "POST" and req.target == "/v1/chat/completions":
        try:
            body = req.json()
        except ValueError:
            return ex.json(400, {"error": {"message": "fake upstream: bad JSON"}})
        if body.get("stream"):
            ex.start_sse()
            for event in SSE_EVENTS:
                ex.chunk(event)
            return ex.end_chunks()
        return ex.json(200, COMPLETION)
    return ex.json(404, {"error": {"message": "fake upstream: no route"}})


COMPLETION = {
    "id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def sse_event(obj):
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return ("data: %s\n\n" % data).encode()


def delta_event(i, text):
    return sse_event({"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "gpt-test",
                      "choices": [{"index": 0, "delta": {"content": text},
                                   "finish_reason": None}], "seq": i})


SSE_EVENTS = [delta_event(0, "Hel"), delta_event(1, "lo"), sse_event("[DONE]")]


class Upstream:
    """A scripted fake backend on 127.0.0.1:<ephemeral>.

    Each request is handled by the next handler given to script(), then by
    `handler` (default_handler unless replaced). A handler gets an Exchange;
    if it returns with the connection still open, the connection is kept
    alive for the next request."""

    def __init__(self, handler=default_handler, tls=False):
        self.handler = handler
        self.tls = None
        self.tls_failures = 0  # handshakes that failed (e.g. the gateway rejected the cert)
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(os.path.join(TLS_DIR, "server.pem"),
                                     os.path.join(TLS_DIR, "server.key"))
        self.queue = []
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.socks = set()
        self.idle = set()  # connections waiting for their next request
        self.errors = []
        up = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                up._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        ctx().upstreams.append(self)

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    @property
    def base_url(self):
        return self.url + "/v1"

    def script(self, *handlers):
        with self.lock:
            self.queue = list(handlers)

    def _next_handler(self):
        with self.lock:
            return self.queue.pop(0) if self.queue else self.handler

    def _serve(self, sock):
        with self.lock:
            self.connections += 1
            self.socks.add(sock)
        sock.settimeout(10.0)
        buf = bytearray()
        try:
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    with self.lock:
                        self.tls_failures += 1
                    return
            while not self.stopping.is_set():
                with self.lock:
                    self.idle.add(sock)
                try:
                    req = self._read_request(sock, buf)
                finally:
                    with self.lock:
                        self.idle.discard(sock)
                if req is None:
                    return
                with self.lock:
                    self.requests.append(req)
                ex = Exchange(self, sock, req)
                self._next_handler()(ex)
                if ex.closed:
                    return
        except OSError:
            pass  # the gateway went away: nothing to record
        except Exception as e:  # a bug in a scripted handler: fail the test
            self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            with self.lock:
                self.socks.discard(sock)

    def _read_request(self, sock, buf):
        def fill():
            data = sock.recv(65536)
            if not data:
                raise EOFError
            buf.extend(data)

        try:
            while b"\r\n\r\n" not in buf:
                fill()
            i = buf.index(b"\r\n\r\n")
            raw_head = bytes(buf[:i + 4])
            del buf[:i + 4]
            lines = raw_head[:-4].decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.append((name, value.strip()))
            hmap = {n.lower(): v for n, v in headers}
            if hmap.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = bytearray()
            if "content-length" in hmap:
                n = int(hmap["content-length"])
                while len(buf) < n:
                    fill()
                body += buf[:n]
                del buf[:n]
            elif hmap.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    while b"\r\n" not in buf:
                        fill()
                    j = buf.index(b"\r\n")
                    size = int(bytes(buf[:j]).split(b";")[0], 16)
                    del buf[:j + 2]
                    if size == 0:
                        while b"\r\n" not in buf:
                            fill()
                        while not buf.startswith(b"\r\n"):  # trailers
                            j = buf.index(b"\r\n")
                            del buf[:j + 2]
                            while b"\r\n" not in buf:
                                fill()
                        del buf[:2]
                        break
                    while len(buf) < size + 2:
                        fill()
                    body += buf[:size]
                    del buf[:size + 2]
            return UpstreamRequest(method, target, version, headers, bytes(body), raw_head)
        except (EOFError, ConnectionResetError, socket.timeout):
            return None

    def wait_requests(self, n, timeout=5.0):
        return wait_for(lambda: len(self.requests) >= n, timeout)

    def only_request(self):
        check(len(self.requests) == 1, "upstream saw %d requests, expected 1: %r"
              % (len(self.requests), self.requests))
        return self.requests[0]

    def release(self):
        """Wake every handler waiting in Exchange.wait()."""
        self.stopping.set()

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def start_upstream(handler=default_handler, tls=False):
    return Upstream(handler, tls)


# --------------------------------------------------------------------------
# Tenants and keys
# --------------------------------------------------------------------------


def client_key(name=""):
    """A client key in the shape `cairn key` makes (sk-cairn- + 43 base64url
    characters, random, so unique enough to be a canary) and its digest for
    a tenant's "keys"; the key is a canary of this test, named `name` in
    reports."""
    key = "sk-cairn-" + secrets.token_urlsafe(32)
    ctx().add_secret(key, "client key", name)
    return key, digest(key)


def new_key(name=""):
    """client_key's key alone (tenant() takes keys and digests them)."""
    return client_key(name)[0]


def digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(key):
    return {"Authorization": "Bearer " + key}


def tenant(*keys, **policy):
    """A tenant section: keys are strings (enabled) or (key, {"disabled": True})."""
    entries = []
    for k in keys:
        extra = {}
        if isinstance(k, tuple):
            k, extra = k
        entries.append(dict({"sha256": digest(k), "label": "it"}, **extra))
    return dict({"keys": entries}, **policy)
