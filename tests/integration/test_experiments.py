"""A/B experiments through the running gateway: every answer names its arm
(X-Cairn-Arm); the arm is the one the scheme documented in experiment.h
gives for the unit (re-implemented here, so any instance agrees); it
survives restarts and is shared by two instances; a weight changed by a
reload moves units only into the changed arm; each arm runs its own policy
(annotation, upstream model); QA callers may choose an arm only where the
experiment allows it; the experiment log has one record per request with
what the report needs, and the metrics carry the arm. The last tests run
two arms against the marker-aware stand-in backend and check that their
violation rates differ as their policies say they must."""

import hashlib
import json
import math
import os

import harness
from harness import (admin_request, assert_status, bearer, chat_body, check, new_key,
                     start_gateway, start_upstream, tenant, wait_for, wait_metric)


# --- the documented scheme, written again --------------------------------------------


def assign(salt, unit, arms):
    """experiment.h: d = SHA-256(salt || 0 || unit); arm i scores
    -ln(u_i) / w_i with u_i from SHA-256(d || name); the lowest wins."""
    d = hashlib.sha256(salt.encode() + b"\0" + unit.encode()).digest()
    best = None
    for name, weight in arms:
        if weight <= 0:
            continue
        h = hashlib.sha256(d + name.encode()).digest()
        u = ((int.from_bytes(h[:8], "big") >> 11) + 0.5) / 2.0 ** 53
        score = -math.log(u) / weight
        if best is None or score < best[0]:
            best = (score, name)
    return best[1], d[:8].hex()


def experiment(arms, **extra):
    """An experiment named "ab" over `arms` [(name, weight, overrides)]."""
    e = {"name": "ab", "salt": "s1",
         "arms": {name: dict(overrides, weight=w) for name, w, overrides in arms}}
    e.update(extra)
    return e


TWO = [("a", 1, {}), ("b", 3, {})]


def weights(arms):
    return [(name, w) for name, w, _ in arms]


JSON_PROMPT = [{"role": "user", "content": "Answer in JSON: what is the capital of France?"}]


def arm_of(gw, user, headers=None, messages=None):
    resp = gw.chat(chat_body(user=user, messages=messages or JSON_PROMPT), headers=headers)
    assert_status(resp, 200)
    check(resp.header("x-cairn-experiment") == "ab",
          "X-Cairn-Experiment %r" % resp.header("x-cairn-experiment"))
    arm = resp.header("x-cairn-arm")
    check(arm is not None, "no X-Cairn-Arm on the answer")
    return arm


def experiment_log(gw):
    return gw.config["log"]["experiment"]


def experiment_records(gw, n):
    """Every record of the gateway's experiment log, parsed, once it holds
    at least n (n = 0: what it holds now)."""
    return harness.wait_log(experiment_log(gw), lambda recs: [recs] if len(recs) >= n else None,
                            what="%d experiment records" % n)[0]


def start_experiment(up, arms=TWO, log=True, policy=None, base_url=None, content=False, **extra):
    p = {"experiment": experiment(arms, **extra)}
    p.update(policy or {})
    sections = {"policy": p}
    if log:
        sections["log"] = {"experiment": harness.ctx().path("experiment.log")}
    if content:
        sections["log"]["content"] = harness.ctx().path("content.log")
    return start_gateway(up, base_url=base_url, **sections)


# --- assignment ------------------------------------------------------------------------


def test_arms_follow_the_documented_assignment():
    """120 users, weights 1:3: each answer's arm is the scheme's, computed
    here; the split is near 1:3; a request without "user" still gets an arm
    (it is a unit of its own)."""
    up = start_upstream()
    gw = start_experiment(up)
    seen = {"a": 0, "b": 0}
    for i in range(120):
        user = "user-%d" % i
        want, _ = assign("s1", user, weights(TWO))
        got = arm_of(gw, user)
        check(got == want, "%s: arm %s, the scheme says %s" % (user, got, want))
        seen[got] += 1
    check(15 <= seen["a"] <= 45, "split %r is far from 1:3" % seen)
    resp = gw.chat(chat_body())
    assert_status(resp, 200)
    check(resp.header("x-cairn-arm") in ("a", "b"), "no arm without a user")


def test_assignment_is_shared_by_instances_and_restarts():
    """Two gateways on the same file agree on every user, and so does a
    third started after the first has stopped."""
    up = start_upstream()
    one, two = start_experiment(up, log=False), start_experiment(up, log=False)
    users = ["u%d" % i for i in range(40)]
    first = [arm_of(one, u) for u in users]
    check(first == [arm_of(two, u) for u in users], "two instances disagree")
    check(one.stop() == 0, "first gateway did not stop cleanly")
    three = start_experiment(up, log=False)
    check(first == [arm_of(three, u) for u in users], "a restarted gateway disagrees")


def test_weight_change_by_reload_moves_units_only_into_that_arm():
    """Arms a, b, c at 1:1:1, then b at 3 by a reload: every user whose arm
    changed is in b now, the rest kept theirs, and the new arms are the
    scheme's."""
    up = start_upstream()
    before = [("a", 1, {}), ("b", 1, {}), ("c", 1, {})]
    after = [("a", 1, {}), ("b", 3, {}), ("c", 1, {})]
    gw = start_experiment(up, arms=before, log=False)
    users = ["user-%d" % i for i in range(90)]
    old = {u: arm_of(gw, u) for u in users}
    gw.config["policy"]["experiment"] = experiment(after)
    harness.write_config(gw.config)
    assert_status(admin_request(gw, "POST", "/admin/reload"), 200)
    moved = 0
    for u in users:
        new = arm_of(gw, u)
        check(new == assign("s1", u, weights(after))[0], "%s: not the scheme's arm" % u)
        if new != old[u]:
            moved += 1
            check(new == "b", "%s moved from %s to %s, not into b" % (u, old[u], new))
    check(moved > 0, "no user moved although b's share went from 1/3 to 3/5")


def test_unit_by_header_and_by_key():
    """unit "header": the header's value decides; unit "key": the API key
    does, so two keys of one tenant may sit in different arms while each
    stays in its own."""
    up = start_upstream()
    gw = start_experiment(up, log=False, unit="header", unit_header="X-Team")
    for team in ("red", "green", "blue", "grey"):
        want = assign("s1", team, weights(TWO))[0]
        for _ in range(2):
            check(arm_of(gw, "ignored", headers={"X-Team": team}) == want,
                  "team %s not in %s" % (team, want))

    keys = [new_key() for _ in range(6)]
    gw = start_gateway(up, auth="keys",
                       tenants={"acme": tenant(*keys)},
                       policy={"experiment": experiment(TWO, unit="key")})
    for key in keys:
        want = assign("s1", "Bearer " + key, weights(TWO))[0]
        for _ in range(2):
            check(arm_of(gw, "ignored", headers=bearer(key)) == want,
                  "key not in %s" % want)


def test_each_arm_runs_its_own_policy():
    """Arm "none" sends the prompt untouched, arm "rules" appends the rule
    annotator's block, and an arm with a model override sends that model."""
    up = start_upstream()
    arms = [("none", 1, {"markers": {"annotate": "off"}}),
            ("rules", 1, {"markers": {"annotate": "rules"}}),
            ("small", 1, {"model": "small-1", "markers": {"annotate": "off"}})]
    gw = start_experiment(up, arms=arms, log=False, allow_force=True)
    prompt = "Fix this Python bug: print(x"
    for arm in ("none", "rules", "small"):
        n = len(up.requests)
        resp = gw.chat(chat_body(messages=[{"role": "user", "content": prompt}]),
                       headers={"X-Cairn-Arm": arm})
        assert_status(resp, 200)
        check(resp.header("x-cairn-arm") == arm, "forced %s, got %r" % (arm,
                                                                       resp.header("x-cairn-arm")))
        sent = up.requests[n].json()
        last = sent["messages"][-1]["content"]
        check(("<MARKER_LIST>" in last) == (arm == "rules"),
              "arm %s: block in the prompt is %r" % (arm, "<MARKER_LIST>" in last))
        check(sent["model"] == ("small-1" if arm == "small" else "gpt-test"),
              "arm %s sent model %r" % (arm, sent["model"]))
        names = [name.lower() for name, _ in up.requests[n].headers]
        check("x-cairn-arm" not in names, "X-Cairn-Arm reached the upstream")


def test_choosing_an_arm_needs_the_experiments_permission():
    """Without allow_force, X-Cairn-Arm is refused (403); with it, an
    unknown arm is a 400 and a known one is used and logged as forced."""
    up = start_upstream()
    gw = start_experiment(up, log=False)
    resp = gw.chat(chat_body(user="x"), headers={"X-Cairn-Arm": "a"})
    harness.assert_error(resp, 403)
    check(resp.json()["error"]["code"] == "arm_choice_not_allowed", "code %r" % resp.json())
    check(not up.requests, "a refused request reached the upstream")

    gw = start_experiment(up, allow_force=True)
    resp = gw.chat(chat_body(user="x"), headers={"X-Cairn-Arm": "zzz"})
    harness.assert_error(resp, 400)
    check(resp.json()["error"]["code"] == "unknown_arm", "code %r" % resp.json())
    natural = assign("s1", "x", weights(TWO))[0]
    other = "a" if natural == "b" else "b"
    resp = gw.chat(chat_body(user="x"), headers={"X-Cairn-Arm": other})
    assert_status(resp, 200)
    check(resp.header("x-cairn-arm") == other, "forced arm not used")
    rec = experiment_records(gw, 1)[0]
    check(rec["arm"] == other and rec["forced"] is True, "record %r" % rec)


def test_no_arm_outside_the_experiments_route_or_tenant():
    """GET /v1/models runs on the tenant's own policy (no arm), and a tenant
    whose policy says "experiment": null is in none."""
    up = start_upstream()
    keys = [new_key(), new_key()]
    gw = start_gateway(up, auth="keys",
                       tenants={"in": tenant(keys[0]),
                                "out": tenant(keys[1], experiment=None)},
                       policy={"experiment": experiment(TWO)})
    resp = gw.request("GET", "/v1/models", headers=bearer(keys[0]))
    check(resp.header("x-cairn-arm") is None, "an arm on /v1/models")
    resp = gw.chat(chat_body(user="u"), headers=bearer(keys[1]))
    assert_status(resp, 200)
    check(resp.header("x-cairn-arm") is None, "an arm for a tenant outside the experiment")
    resp = gw.chat(chat_body(user="u"), headers=bearer(keys[0]))
    check(resp.header("x-cairn-arm") == assign("s1", "u", weights(TWO))[0], "wrong arm")


# --- evidence ------------------------------------------------------------------------


def test_experiment_log_has_one_record_per_request():
    """Each record names the tenant, experiment, arm, unit and its hash (not
    the user), the markers with their sources, the validation, latency,
    status and usage; prompts and answers only where the tenant logs
    content (and then the log is as private as the content log); the access
    record names the arm too."""
    up = start_upstream()
    gw = start_experiment(up, policy={"validation": {"markers": ["format"]}},
                          arms=[("a", 1, {"markers": {"annotate": "rules"}}),
                                ("b", 1, {"markers": {"annotate": "rules"},
                                          "log_content": True})], content=True)
    users = ["user-%d-zq" % i for i in range(6)]
    for u in users:
        arm_of(gw, u)
    records = experiment_records(gw, len(users))
    check(len(records) == len(users), "%d records for %d requests" % (len(records), len(users)))
    for u, rec in zip(users, records):
        arm, unit_hash = assign("s1", u, [("a", 1), ("b", 1)])
        check(rec["kind"] == "request" and rec["tenant"] == "default" and
              rec["experiment"] == "ab" and rec["arm"] == arm and rec["forced"] is False,
              "record %r" % rec)
        check(rec["unit"] == "user" and rec["unit_hash"] == unit_hash, "unit of %r" % rec)
        content = ("prompt", "answer")  # where the tenant logs content, the body is in it
        check(u not in json.dumps({k: v for k, v in rec.items() if k not in content}),
              "the user id %s is in its record" % u)
        check(rec["status"] == 200 and rec["upstream_status"] == 200, "status %r" % rec)
        check(isinstance(rec["latency_ms"], float) and rec["latency_ms"] > 0, "latency %r" % rec)
        check(isinstance(rec["first_byte_ms"], float) and
              rec["first_byte_ms"] <= rec["latency_ms"], "first byte %r" % rec)
        check(rec["markers"]["format"] == {"value": "JSON", "source": "rules"},
              "markers %r" % rec["markers"])
        check(rec["attempts"] == 1 and rec["checked"] == ["format"], "validation %r" % rec)
        check(isinstance(rec["violations"], list), "violations %r" % rec)
        check(rec["usage"]["total_tokens"] > 0, "usage %r" % rec.get("usage"))
        check(("prompt" in rec) == (arm == "b"), "prompt logged in arm %s" % arm)
        if arm == "b":
            check("capital of France" in json.dumps(rec["prompt"]) and
                  rec["answer"]["choices"], "content of %r" % rec)
            check(harness.CANARY not in json.dumps(rec), "the upstream key in a record")
    check({r["arm"] for r in records} == {"a", "b"}, "the users did not cover both arms")
    mode = os.stat(experiment_log(gw)).st_mode & 0o777
    check(mode == 0o600, "the experiment log holds prompts with mode %o" % mode)
    def chat_records(recs):
        chats = [r for r in recs if r.get("path") == "/v1/chat/completions"]
        return chats if len(chats) >= len(records) else None
    access = gw.wait_access(chat_records)
    check([r.get("arm") for r in access] == [r["arm"] for r in records],
          "access records' arms %r" % [r.get("arm") for r in access])


def test_metrics_carry_the_arm():
    up = start_upstream()
    gw = start_experiment(up, log=False, policy={"validation": {"markers": ["format"]}},
                          arms=[("a", 1, {"markers": {"annotate": "rules"}}), ("b", 1, {})])
    counts = {"a": 0, "b": 0}
    for i in range(12):
        counts[arm_of(gw, "m%d" % i)] += 1
    for arm, n in counts.items():
        if n:
            wait_metric(gw, "cairn_requests_total", {"tenant": "default", "arm": arm,
                                                     "route": "/v1/chat/completions",
                                                     "status": "200"}, n)
    if counts["a"]:
        wait_metric(gw, "cairn_validations_total", {"tenant": "default", "arm": "a"}, counts["a"])


def test_two_arms_against_the_standin_differ_as_their_policies_say():
    """The marker-aware stand-in breaks a length limit in half of its first
    answers and never in a retry. Arm "once" takes the first answer, arm
    "retry" may ask three times: "once" keeps about half of the violations,
    "retry" none. Every record agrees with what its client was told."""
    standin = harness.Standin("--violate", "0.5", "--violate-retry", "0", "--seed", "3")
    arms = [("once", 1, {"validation": {"retry": {"attempts": 1}}}),
            ("retry", 1, {"validation": {"retry": {"attempts": 3, "deadline_ms": 10000}}})]
    gw = start_experiment(None, arms=arms, base_url=standin.base_url, policy={
        "markers": {"annotate": "rules"}, "validation": {"markers": ["length_tokens"]}})
    told = {}
    for i in range(60):
        resp = gw.chat(chat_body(model="standin-1", user="u%d" % i, messages=[
            {"role": "user", "content": "Describe the sea in at most 40 words."}]), timeout=10)
        assert_status(resp, 200)
        told[resp.header("x-request-id")] = resp.header("x-cairn-violations")
    records = experiment_records(gw, 60)
    by_arm = {"once": [], "retry": []}
    for rec in records:
        broken = "length_tokens" in rec["violations"]
        check(rec["checked"] == ["length_tokens"], "checked %r" % rec["checked"])
        check((told[rec["request_id"]] != "none") == broken,
              "record %s says %r, its client was told %r"
              % (rec["request_id"], rec["violations"], told[rec["request_id"]]))
        by_arm[rec["arm"]].append(rec)
    once, retry = by_arm["once"], by_arm["retry"]
    check(len(once) >= 15 and len(retry) >= 15, "arms of %d and %d" % (len(once), len(retry)))
    rate = sum("length_tokens" in r["violations"] for r in once) / len(once)
    check(0.2 <= rate <= 0.8, "arm once broke the limit in %.2f of its answers" % rate)
    check(all(r["violations"] == [] for r in retry), "arm retry kept a violation")
    check(any(r["attempts"] > 1 for r in retry), "arm retry never retried")
    check(all(r["attempts"] == 1 for r in once), "arm once retried")

    # cairn report reads the same log to the same figures.
    code, out, err = harness.run_cairn(["report", "--json", "--baseline", "once",
                                        experiment_log(gw)])
    check(code == 0, "cairn report failed: %s" % err)
    arms = json.loads(out)["experiments"][0]["arms"]
    for name, recs in by_arm.items():
        got = arms[name]["violation_rates"]["length_tokens"]
        hits = sum("length_tokens" in r["violations"] for r in recs)
        check(got["hits"] == hits and got["n"] == len(recs),
              "report: arm %s %d/%d, the log says %d/%d" % (name, got["hits"], got["n"], hits,
                                                            len(recs)))
        check(arms[name]["requests"] == len(recs), "report: arm %s requests" % name)
