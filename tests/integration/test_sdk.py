"""The official OpenAI client library (Node) works against cairn unchanged:
plain and streamed completions, the model list, and an API error mapped to
the library's error type. The gateway fronts the real stand-in backend."""

import json
import os
import subprocess

from harness import check, start_gateway

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NPM_DIR = os.path.join(REPO, "build", "npm")  # shared by every build flavour
OPENAI_NODE = "openai@4.95.0"


def install_sdk():
    marker = os.path.join(NPM_DIR, "node_modules", "openai", "package.json")
    if not os.path.exists(marker):
        os.makedirs(NPM_DIR, exist_ok=True)
        proc = subprocess.run(["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund",
                               "--silent", OPENAI_NODE], capture_output=True, text=True,
                              timeout=300)
        check(proc.returncode == 0, "npm install %s failed: %s" % (OPENAI_NODE, proc.stderr[-2000:]))
    return os.path.join(NPM_DIR, "node_modules")


def run_script(name, gw, node_path):
    """Run tests/integration/sdk/NAME against the gateway: what it saw, as JSON."""
    proc = subprocess.run(
        ["node", os.path.join(REPO, "tests", "integration", "sdk", name),
         "http://%s:%d/v1" % gw.addr],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, NODE_PATH=node_path))
    check(proc.returncode == 0, "the SDK script failed: %s" % proc.stderr[-2000:])
    return json.loads(proc.stdout)


def test_official_openai_node_client():
    import harness
    node_path = install_sdk()
    standin = harness.Standin()
    gw = start_gateway(base_url=standin.base_url)
    seen = run_script("openai_client.cjs", gw, node_path)
    check("Hello from the SDK test" in seen["plain"]["content"],
          "plain completion content: %r" % seen["plain"])
    check(seen["plain"]["requestId"], "no X-Request-Id reached the SDK")
    check(seen["stream"]["chunks"] >= 3 and "Hello" in seen["stream"]["text"],
          "streamed completion: %r" % seen["stream"])
    check(seen["models"] == ["standin-1"], "models: %r" % seen["models"])
    check(seen["rejected"]["status"] == 400, "empty messages: %r" % seen["rejected"])
    check(seen["rejected"]["type"] == "invalid_request_error",
          "the SDK did not read cairn's error type: %r" % seen["rejected"])


def test_official_openai_node_client_reads_a_buffered_stream():
    """A stream cairn held back to validate and retry ("stream": "buffer")
    reads with the official client's streaming API like any other: the
    whole (retried) answer, a finish reason, the usage, and no error from
    the ": cairn" comment before [DONE]."""
    import harness
    node_path = install_sdk()
    # A stand-in that disobeys every first attempt and obeys every retry.
    standin = harness.Standin("--violate", "1", "--violate-retry", "0")
    gw = start_gateway(base_url=standin.base_url, policy={"validation": {
        "markers": ["length_tokens", "format", "lang", "code_type"],
        "retry": {"attempts": 2, "deadline_ms": 10000, "mode": "feedback"},
        "stream": "buffer"}})
    seen = run_script("openai_buffered_stream.cjs", gw, node_path)
    check(seen["contentType"].startswith("text/event-stream"), "Content-Type %r" % seen)
    check(seen["attempts"] == "2" and seen["violations"] == "none",
          "X-Cairn-Attempts/Violations as the SDK saw them: %r" % seen)
    n = len(seen["text"].split())
    # length_tokens=20: the stand-in's obedient answer has 16 words.
    check(0 < n <= 22 and "<MARKER_LIST>" not in seen["text"],
          "streamed text (%d words): %r" % (n, seen["text"]))
    check(seen["role"] == "assistant" and seen["finish"] == "stop",
          "role/finish_reason: %r" % seen)
    check(seen["usage"] and seen["usage"]["completion_tokens"] > 0, "usage: %r" % seen)
