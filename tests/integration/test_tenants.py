"""Tenants: client API keys ("auth": "keys"), what each tenant may use
(models, its own upstream, its markers policy), per-tenant rate and
concurrency limits, the tenant in the access log, and open mode.

Keys are made here (random, with their SHA-256 digests in the config, as
`cairn key` prints them). Every test also checks that no client key and no
upstream key leaks into the access log, stderr or anything a client got.
"""

import json
import os
import threading
import time

from harness import (CANARY, CHAT_BODY, COMPLETION, SSE_EVENTS, assert_error, assert_status, bearer,
                     build_request, chat_body, check, ctx, default_handler, digest, new_key,
                     read_log, run_cairn, start_gateway, start_upstream, tenant, wait_for,
                     wait_log)

# --- local helpers -----------------------------------------------------------


def keys_gateway(up, tenants, **sections):
    return start_gateway(up, auth="keys", tenants=tenants, **sections)


def log_record(gw, resp):
    """The access record of the response `resp` (by its X-Request-Id)."""
    rid = resp.header("x-request-id")
    check(rid, "response without X-Request-Id")
    return gw.access_record(rid)


def assert_not_leaked(gw, client_keys, upstreams=(), upstream_keys=()):
    """No client key and no upstream key appears in the access log, cairn's
    stderr or any byte a client of this test received; no client key
    appears in anything the `upstreams` received. Stops the gateway first,
    so that every line it logged is there to be checked."""
    gw.stop_flushed()
    log = gw.access_log_text() if gw.log_path else ""
    err = gw.stderr_text()
    seen = b"".join(ctx().seen)
    for s in list(client_keys) + list(upstream_keys):
        check(s not in log, "secret %s... appeared in the access log" % s[:12])
        check(s not in err, "secret %s... appeared in cairn's stderr" % s[:12])
        check(s.encode() not in seen, "secret %s... appeared in a response to a client" % s[:12])
    for s in client_keys:
        for up in upstreams:
            for req in up.requests:
                check(s.encode() not in req.raw_head + req.body,
                      "client key %s... was forwarded to the upstream in %r" % (s[:12], req))


def assert_unauthorized(resp, what):
    err = assert_error(resp, 401)
    check(err.get("code") == "invalid_api_key", "%s: 401 code %r" % (what, err.get("code")))
    check((resp.header("www-authenticate") or "").split(" ")[0].lower() == "bearer",
          "%s: WWW-Authenticate %r" % (what, resp.header("www-authenticate")))
    return bytes(resp.body)


# --- keys ---------------------------------------------------------------------


def test_valid_keys_reach_upstream_and_log_their_tenant():
    """Each tenant's key gets through; the upstream sees the gateway's own
    key, never the client's; the access log names the tenant."""
    ka, kb = new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"alpha": tenant(ka), "beta": tenant(kb)})
    ra = gw.chat(CHAT_BODY, headers=bearer(ka))
    assert_status(ra, 200)
    check(ra.json() == COMPLETION, "tenant alpha got %r" % bytes(ra.body[:200]))
    rb = gw.chat(CHAT_BODY, headers=bearer(kb))
    assert_status(rb, 200)
    # The scheme is case-insensitive (RFC 6750 / RFC 9110 §11.1).
    assert_status(gw.chat(CHAT_BODY, headers={"Authorization": "bearer " + ka}), 200)
    rm = gw.request("GET", "/v1/models", headers=bearer(kb))
    assert_status(rm, 200)
    check(up.wait_requests(4), "upstream saw %d requests, expected 4" % len(up.requests))
    for req in up.requests:
        check(req.header_all("authorization") == ["Bearer " + CANARY],
              "upstream Authorization %r (expected the gateway's key)"
              % req.header_all("authorization"))
    check(log_record(gw, ra).get("tenant") == "alpha", "record %r" % log_record(gw, ra))
    check(log_record(gw, rb).get("tenant") == "beta", "record %r" % log_record(gw, rb))
    check(log_record(gw, rm).get("tenant") == "beta", "record %r" % log_record(gw, rm))
    assert_not_leaked(gw, [ka, kb], [up])


def test_keys_are_judged_per_request_on_a_keep_alive_connection():
    """One connection (a shared pool, another proxy) carrying requests of
    several tenants, then one without a key: each request is judged and
    logged on its own key, nothing carries over from the previous one."""
    ka, kb = new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"alpha": tenant(ka, models=["gpt-test"]),
                           "beta": tenant(kb, models=["gpt-b"])})
    c = gw.client()
    plan = [(ka, "gpt-test", 200, "alpha"), (kb, "gpt-test", 403, "beta"),
            (None, "gpt-test", 401, None), (kb, "gpt-b", 200, "beta"),
            (new_key("unknown"), "gpt-b", 401, None), (ka, "gpt-b", 403, "alpha")]
    for key, model, status, name in plan:
        c.send(build_request("POST", "/v1/chat/completions", chat_body(model=model),
                             headers=bearer(key) if key else None))
        resp = c.read_response(method="POST")
        check(resp.status == status, "key of %s, model %s: status %s, expected %s"
              % (name, model, resp.status, status))
        rec = log_record(gw, resp)
        check(rec.get("tenant") == name,
              "key of %s logged as tenant %r" % (name, rec.get("tenant")))
    check([r.json()["model"] for r in up.requests] == ["gpt-test", "gpt-b"],
          "upstream saw %r" % up.requests)
    assert_not_leaked(gw, [ka, kb], [up])


def test_key_made_by_cairn_key_is_accepted():
    """`cairn key` prints a key and the config line with its digest; that
    pair works as documented."""
    code, out, _ = run_cairn(["key"])
    check(code == 0, "cairn key exited %d" % code)
    key = cfg = None
    for line in out.splitlines():
        if line.startswith("key:"):
            key = line.split(":", 1)[1].strip()
        elif line.startswith("config:"):
            cfg = json.loads(line.split(":", 1)[1].strip())
    check(key and key.startswith("sk-cairn-"), "no key in %r" % out)
    check(isinstance(cfg, dict) and cfg.get("sha256") == digest(key),
          "config line %r is not the SHA-256 of the key" % cfg)
    up = start_upstream()
    gw = keys_gateway(up, {"cli": {"keys": [cfg]}})
    assert_status(gw.chat(CHAT_BODY, headers=bearer(key)), 200)
    assert_unauthorized(gw.chat(CHAT_BODY, headers=bearer(key[:-1])), "truncated key")
    assert_not_leaked(gw, [key], [up])


def test_every_bad_credential_gets_the_same_401():
    """Missing, malformed, unknown, disabled key, key of a disabled tenant:
    one answer for all (nothing tells a caller which case it hit), and none
    reaches the upstream. Health probes need no key."""
    good, off, dead = new_key(), new_key(), new_key()
    unknown = new_key()
    up = start_upstream()
    gw = keys_gateway(up, {
        "alpha": tenant(good, (off, {"disabled": True})),
        "gone": tenant(dead, disabled=True),
    })
    cases = [
        ("no Authorization", None),
        ("Basic scheme", "Basic " + "YWxhZGRpbjpvcGVuc2VzYW1l"),
        ("Basic scheme with a valid key", "Basic " + good),
        ("scheme only", "Bearer"),
        ("empty token", "Bearer "),
        ("token with a space", "Bearer " + good[:10] + " " + good[10:]),
        ("token with a quote", "Bearer \"" + good + "\""),
        ("two tokens", "Bearer " + good + ", Bearer " + good),
        ("unknown key", "Bearer " + unknown),
        ("valid key as the scheme", good),
        ("disabled key", "Bearer " + off),
        ("key of a disabled tenant", "Bearer " + dead),
        ("over-long token", "Bearer " + "A" * 300),
    ]
    bodies = {}
    for what, value in cases:
        headers = {"Authorization": value} if value is not None else None
        resp = gw.chat(CHAT_BODY, headers=headers)
        bodies[what] = assert_unauthorized(resp, what)
        rec = log_record(gw, resp)
        check(rec.get("tenant") is None, "%s: logged with tenant %r" % (what, rec.get("tenant")))
        check(rec.get("status") == 401, "%s: logged status %r" % (what, rec.get("status")))
    # The models routes are behind the key too.
    bodies["models, no key"] = assert_unauthorized(gw.request("GET", "/v1/models"), "models")
    bodies["model, disabled key"] = assert_unauthorized(
        gw.request("GET", "/v1/models/gpt-test", headers=bearer(off)), "model")
    distinct = {}
    for what, body in bodies.items():
        distinct.setdefault(body, []).append(what)
    check(len(distinct) == 1, "the 401 bodies differ between cases: %r"
          % {b[:120]: w for b, w in distinct.items()})
    check(not up.requests, "an unauthenticated request reached the upstream: %r" % up.requests)
    assert_status(gw.request("GET", "/healthz"), 200)
    assert_status(gw.request("GET", "/readyz"), 200)
    # The valid key of the same tenant still works (disabling is per key).
    assert_status(gw.chat(CHAT_BODY, headers=bearer(good)), 200)
    assert_not_leaked(gw, [good, off, dead, unknown], [up])


# --- models -----------------------------------------------------------------


def test_model_of_another_tenant_is_403():
    ka, kb = new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"alpha": tenant(ka, models=["model-a"]),
                           "beta": tenant(kb, models=["model-b"])})
    assert_status(gw.chat(chat_body(model="model-a"), headers=bearer(ka)), 200)
    assert_status(gw.chat(chat_body(model="model-b"), headers=bearer(kb)), 200)
    for key, model in ((ka, "model-b"), (kb, "model-a"), (ka, "gpt-test")):
        resp = gw.chat(chat_body(model=model), headers=bearer(key))
        err = assert_error(resp, 403)
        check(err.get("code") == "model_not_allowed", "403 code %r" % err.get("code"))
        check(log_record(gw, resp).get("tenant") in ("alpha", "beta"),
              "403 logged without its tenant: %r" % log_record(gw, resp))
    check([r.json()["model"] for r in up.requests] == ["model-a", "model-b"],
          "upstream saw %r" % [r.body[:80] for r in up.requests])
    assert_not_leaked(gw, [ka, kb], [up])


def test_tenant_inherits_default_models_unless_it_overrides_them():
    """The default policy's models list applies to a tenant that says
    nothing about models; a tenant's own list (here [] = any) replaces it."""
    kc, kd = new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"inherits": tenant(kc), "anything": tenant(kd, models=[])},
                      policy={"models": ["model-a"]})
    assert_status(gw.chat(chat_body(model="model-a"), headers=bearer(kc)), 200)
    err = assert_error(gw.chat(chat_body(model="model-z"), headers=bearer(kc)), 403)
    check(err.get("code") == "model_not_allowed", "code %r" % err.get("code"))
    assert_status(gw.chat(chat_body(model="model-z"), headers=bearer(kd)), 200)
    check([r.json()["model"] for r in up.requests] == ["model-a", "model-z"],
          "upstream saw %r" % [r.body[:80] for r in up.requests])


def test_model_prefix_wildcard():
    """"prefix*" allows every model starting with prefix; other entries are
    exact."""
    key = new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"alpha": tenant(key, models=["gpt-4o*", "exact-1"])})
    allowed = ["gpt-4o", "gpt-4o-mini", "gpt-4o:2024", "exact-1"]
    refused = ["gpt-4", "xgpt-4o", "GPT-4o", "exact-10", "exact-", "exact"]
    for model in allowed:
        assert_status(gw.chat(chat_body(model=model), headers=bearer(key)), 200)
    for model in refused:
        err = assert_error(gw.chat(chat_body(model=model), headers=bearer(key)), 403)
        check(err.get("code") == "model_not_allowed", "%s: code %r" % (model, err.get("code")))
    check([r.json()["model"] for r in up.requests] == allowed,
          "upstream saw models %r" % [r.json().get("model") for r in up.requests])


def models_handler(ids):
    def handler(ex):
        path = ex.req.target.split("?")[0]
        if ex.req.method == "GET" and path == "/v1/models":
            return ex.json(200, {"object": "list",
                                 "data": [{"id": i, "object": "model", "owned_by": "x"}
                                          for i in ids]})
        return default_handler(ex)
    return handler


def test_models_list_is_filtered_and_other_model_is_403():
    ids = ["gpt-a", "gpt-a-mini", "gpt-b", "other"]
    ka, kb = new_key(), new_key()
    up = start_upstream(models_handler(ids))
    gw = keys_gateway(up, {"alpha": tenant(ka, models=["gpt-a*"]), "beta": tenant(kb)})
    resp = gw.request("GET", "/v1/models", headers=bearer(ka))
    assert_status(resp, 200)
    got = resp.json()
    check(got.get("object") == "list", "list shape lost: %r" % got)
    check([m.get("id") for m in got.get("data", [])] == ["gpt-a", "gpt-a-mini"],
          "tenant alpha's list: %r" % got.get("data"))
    check(all(m.get("owned_by") == "x" for m in got["data"]), "entries altered: %r" % got)
    # A tenant without a models list sees the upstream's list as is.
    resp = gw.request("GET", "/v1/models", headers=bearer(kb))
    assert_status(resp, 200)
    check([m.get("id") for m in resp.json().get("data", [])] == ids,
          "tenant beta's list: %r" % bytes(resp.body[:300]))
    n = len(up.requests)
    err = assert_error(gw.request("GET", "/v1/models/gpt-b", headers=bearer(ka)), 403)
    check(err.get("code") == "model_not_allowed", "code %r" % err.get("code"))
    check(len(up.requests) == n, "a refused model lookup reached the upstream")
    resp = gw.request("GET", "/v1/models/gpt-a-mini", headers=bearer(ka))
    assert_status(resp, 200)
    check(resp.json().get("id") == "gpt-a-mini", "got %r" % bytes(resp.body[:200]))
    assert_status(gw.request("GET", "/v1/models/gpt-b", headers=bearer(kb)), 200)
    assert_not_leaked(gw, [ka, kb], [up])


# --- upstreams and markers per tenant ---------------------------------------


OTHER_KEY = "sk-other-upstream-5c1d0e"


def test_each_tenant_reaches_its_own_upstream():
    """Two named upstreams; each tenant's requests land on its own, with
    that upstream's own key and its own marker template."""
    ka, kb = new_key(), new_key()
    up_a, up_b = start_upstream(), start_upstream()
    gw = keys_gateway(
        up_a, {"alpha": tenant(ka), "beta": tenant(kb, upstream="second")},
        upstreams={"second": {"base_url": up_b.base_url, "api_key_env": "CAIRN_IT_OTHER_KEY",
                              "template": {"open": "<TAGS>", "close": "</TAGS>"}}},
        env={"CAIRN_IT_OTHER_KEY": OTHER_KEY}, markers={"fixed": {"domain": "Legal"}})
    for i in range(2):
        assert_status(gw.chat(chat_body(user="a%d" % i), headers=bearer(ka)), 200)
        assert_status(gw.chat(chat_body(user="b%d" % i), headers=bearer(kb)), 200)
    assert_status(gw.request("GET", "/v1/models", headers=bearer(kb)), 200)
    check([r.json()["user"] for r in up_a.requests] == ["a0", "a1"],
          "upstream A got %r" % [r.body[:60] for r in up_a.requests])
    check([r.json()["user"] for r in up_b.requests if r.method == "POST"] == ["b0", "b1"],
          "upstream B got %r" % [r.body[:60] for r in up_b.requests])
    check(len(up_b.requests) == 3 and up_b.requests[2].path == "/v1/models",
          "tenant beta's models request: %r" % up_b.requests)
    check(last_user_text(up_a.requests[0]).endswith(
        "<MARKER_LIST>\n<domain>Legal</domain>\n</MARKER_LIST>"),
        "upstream A prompt %r" % last_user_text(up_a.requests[0]))
    check(last_user_text(up_b.requests[0]).endswith("<TAGS>\n<domain>Legal</domain>\n</TAGS>"),
          "upstream B prompt (its own template) %r" % last_user_text(up_b.requests[0]))
    for req in up_a.requests:
        check(req.header_all("authorization") == ["Bearer " + CANARY],
              "upstream A Authorization %r" % req.header_all("authorization"))
    for req in up_b.requests:
        check(req.header_all("authorization") == ["Bearer " + OTHER_KEY],
              "upstream B Authorization %r" % req.header_all("authorization"))
    assert_not_leaked(gw, [ka, kb], [up_a, up_b], [CANARY, OTHER_KEY])


def last_user_text(req):
    msgs = req.json()["messages"]
    return [m for m in msgs if m.get("role") == "user"][-1]["content"]


def test_tenant_inherits_fixed_markers_or_replaces_them():
    """Default policy fixes domain=Legal and lang=German. Tenant "plain"
    says nothing about markers: it gets both. Tenant "strict" only turns
    pinning off: it still gets both fixed markers. Tenant "french" sets its
    own "fixed": it replaces the default's map as a whole (README), so it
    gets lang=French and no domain."""
    kp, kf, ks = new_key(), new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {
        "plain": tenant(kp),
        "french": tenant(kf, markers={"fixed": {"lang": "French"}}),
        "strict": tenant(ks, markers={"allow_pinning": False}),
    }, markers={"fixed": {"domain": "Legal", "lang": "German"}})
    block = "Say hello\n\n<MARKER_LIST>\n<domain>Legal</domain>\n<lang>%s</lang>\n</MARKER_LIST>"
    results = {}
    for name, key in (("plain", kp), ("french", kf), ("strict", ks)):
        n = len(up.requests)
        resp = gw.chat(CHAT_BODY, headers=bearer(key))
        assert_status(resp, 200)
        check(up.wait_requests(n + 1), "%s: not forwarded" % name)
        results[name] = (resp.header("x-cairn-markers"), last_user_text(up.requests[n]))
    check(results["plain"] == ("domain=Legal; lang=German", block % "German"),
          "tenant without overrides: header/prompt %r" % (results["plain"],))
    check(results["strict"] == ("domain=Legal; lang=German", block % "German"),
          "tenant overriding allow_pinning lost the fixed markers: %r" % (results["strict"],))
    pinned = dict(bearer(ks), **{"X-Cairn-Markers": "task=Rewrite"})
    assert_error(gw.chat(CHAT_BODY, headers=pinned), 403)
    check(results["french"] == ("lang=French",
                                "Say hello\n\n<MARKER_LIST>\n<lang>French</lang>\n</MARKER_LIST>"),
          "tenant with its own fixed map: expected lang=French alone, got header/prompt %r"
          % (results["french"],))


# --- rate limits --------------------------------------------------------------


def assert_rate_limited(resp):
    err = assert_error(resp, 429)
    check(err.get("code") == "rate_limit_exceeded", "429 code %r" % err.get("code"))
    retry = resp.header("retry-after")
    check(retry is not None and retry.isdigit() and 1 <= int(retry) <= 60,
          "Retry-After %r is not a whole number of seconds" % retry)
    return int(retry)


def test_rate_limit_429_with_retry_after_and_recovery():
    """1 request/s with a burst of 3: of 6 back-to-back requests 3 pass (4
    if a token refilled meanwhile), the rest get 429 + Retry-After; after
    waiting that long the next passes. Another tenant is not affected."""
    ka, kb = new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"alpha": tenant(ka, rate={"requests_per_second": 1, "burst": 3}),
                           "beta": tenant(kb)})
    t0 = time.monotonic()
    statuses, retries, limited = [], [], []
    for _ in range(6):
        resp = gw.chat(CHAT_BODY, headers=bearer(ka))
        statuses.append(resp.status)
        if resp.status == 429:
            retries.append(assert_rate_limited(resp))
            limited.append(resp)
        else:
            assert_status(resp, 200)
    elapsed = time.monotonic() - t0
    ok = statuses.count(200)
    check(3 <= ok <= 3 + int(elapsed),  # a token refills each second
          "%d of 6 passed in %.2fs with burst 3 at 1/s: %r" % (ok, elapsed, statuses))
    check(statuses[:3] == [200, 200, 200], "the burst was not served first: %r" % statuses)
    check(len(up.requests) == ok, "upstream saw %d requests, %d passed"
          % (len(up.requests), ok))
    rec = log_record(gw, limited[0])
    check(rec.get("tenant") == "alpha" and rec.get("status") == 429, "429 record %r" % rec)
    for _ in range(3):
        assert_status(gw.chat(CHAT_BODY, headers=bearer(kb)), 200)
    time.sleep(max(retries[-1], 1) + 0.05)
    assert_status(gw.chat(CHAT_BODY, headers=bearer(ka)), 200)
    assert_not_leaked(gw, [ka, kb], [up])


def held_until(go):
    """An upstream handler that holds requests with "user": "held" until
    `go` is set (at most 5 s) and answers the others at once."""
    def handler(ex):
        if ex.req.json().get("user") == "held":
            ex.wait(go, timeout=5.0)
        return default_handler(ex)
    return handler


def test_concurrent_limit_429_then_recovers():
    """concurrent 2: with two requests held by a slow upstream, a third gets
    429; another tenant still passes; once they finish a new one passes."""
    ka, kb = new_key(), new_key()
    go = threading.Event()
    up = start_upstream(held_until(go))
    gw = keys_gateway(up, {"alpha": tenant(ka, rate={"concurrent": 2}), "beta": tenant(kb)})
    held = []
    for _ in range(2):
        c = gw.client()
        c.send(build_request("POST", "/v1/chat/completions", chat_body(user="held"),
                             headers=bearer(ka)))
        held.append(c)
    check(up.wait_requests(2, timeout=3.0), "the two held requests did not reach the upstream")
    resp = gw.chat(chat_body(user="third"), headers=bearer(ka))
    retry = assert_rate_limited(resp)
    check(retry >= 1, "Retry-After %r" % retry)
    assert_status(gw.chat(chat_body(user="other-tenant"), headers=bearer(kb)), 200)
    go.set()
    for c in held:
        assert_status(c.read_response(method="POST"), 200)
    resp = gw.chat(chat_body(user="after"), headers=bearer(ka))
    assert_status(resp, 200)
    users = [r.json()["user"] for r in up.requests]
    check("third" not in users, "the refused request reached the upstream: %r" % users)
    check(sorted(users) == sorted(["held", "held", "other-tenant", "after"]),
          "upstream saw %r" % users)
    assert_not_leaked(gw, [ka, kb], [up])


def test_concurrent_slot_is_freed_by_rejections_and_client_aborts():
    """concurrent 1: requests refused after admission (403, 400, 415) and a
    request whose client hung up while the upstream was busy each give
    their slot back, so the next request still passes."""
    key = new_key()
    go = threading.Event()
    up = start_upstream(held_until(go))
    gw = keys_gateway(up, {"alpha": tenant(key, models=["gpt-test"], rate={"concurrent": 1})})
    assert_error(gw.chat(chat_body(model="nope"), headers=bearer(key)), 403)
    assert_error(gw.chat('{"model": "gpt-test", "messages": [}', headers=bearer(key)), 400)
    assert_error(gw.chat(CHAT_BODY, headers=dict(bearer(key), **{"Content-Type": "text/plain"})),
                 415)
    assert_status(gw.chat(CHAT_BODY, headers=bearer(key)), 200)
    c = gw.client()
    c.send(build_request("POST", "/v1/chat/completions", chat_body(user="held"),
                         headers=bearer(key)))
    check(up.wait_requests(2, 3.0), "held request not forwarded")
    assert_error(gw.chat(CHAT_BODY, headers=bearer(key)), 429)
    c.abort()
    check(wait_for(lambda: gw.chat(CHAT_BODY, headers=bearer(key)).status == 200, 3.0),
          "the slot of a request whose client left was never given back")
    go.set()


# --- secrets ------------------------------------------------------------------


def test_keys_never_leak():
    """Client keys (valid, disabled, unknown, malformed) and the upstream
    key appear nowhere: not in the access log, stderr, any response body or
    header, nor (client keys) in what the upstream receives -- also when the
    client sends its key in other credential headers."""
    good, off, unknown = new_key(), new_key(), new_key()
    up = start_upstream()
    gw = keys_gateway(up, {"alpha": tenant(good, (off, {"disabled": True}), models=["gpt-test"],
                                           rate={"requests_per_second": 1, "burst": 4})})
    sent = [
        gw.chat(CHAT_BODY, headers=bearer(good)),
        gw.chat(chat_body(stream=True), headers=bearer(good)),
        gw.chat(chat_body(model="nope"), headers=bearer(good)),
        gw.chat(CHAT_BODY, headers=dict(bearer(good), **{"api-key": good, "x-api-key": off})),
        gw.chat(CHAT_BODY, headers=bearer(good)),  # over the burst: 429
        gw.chat(CHAT_BODY, headers=bearer(off)),
        gw.chat(CHAT_BODY, headers=bearer(unknown)),
        gw.chat(CHAT_BODY, headers={"Authorization": "Bearer " + good + " junk"}),
        gw.chat(CHAT_BODY, headers={"Authorization": "Basic " + good}),
        gw.request("GET", "/v1/models", headers=bearer(good)),
        gw.request("GET", "/nope", headers=bearer(good)),
    ]
    statuses = [r.status for r in sent]
    check(statuses[:4] == [200, 200, 403, 200] and statuses[4] in (200, 429),
          "statuses %r" % statuses)
    check(statuses[5:9] == [401] * 4, "statuses %r" % statuses)
    check(b"".join(SSE_EVENTS) == bytes(sent[1].body), "stream body %r" % bytes(sent[1].body))
    for r in sent:
        head = r.raw_head.decode("latin-1")
        for s in (good, off, unknown, CANARY):
            check(s not in head, "a key appeared in response headers:\n%s" % head)
    assert_not_leaked(gw, [good, off, unknown], [up], [CANARY])
    check(gw.access_log_text().count("\n") >= len(sent), "access log incomplete")


# --- open mode ---------------------------------------------------------------


def test_open_mode_needs_no_key_and_logs_default():
    """The default config ("auth": "open"): no key needed, any Authorization
    ignored and not forwarded, requests logged as tenant "default"."""
    up = start_upstream()
    gw = start_gateway(up)
    r1 = gw.chat(CHAT_BODY)
    assert_status(r1, 200)
    stray = new_key()
    r2 = gw.chat(CHAT_BODY, headers=bearer(stray))
    assert_status(r2, 200)
    r3 = gw.request("GET", "/v1/models")
    assert_status(r3, 200)
    for resp in (r1, r2, r3):
        rec = log_record(gw, resp)
        check(rec.get("tenant") == "default", "open-mode record has tenant %r: %r"
              % (rec.get("tenant"), rec))
    for req in up.requests:
        check(req.header_all("authorization") == ["Bearer " + CANARY],
              "upstream Authorization %r" % req.header_all("authorization"))
    rec = log_record(gw, gw.healthz())
    check("tenant" in rec, "access record without a tenant field: %r" % rec)
    assert_not_leaked(gw, [stray], [up])


# --- content log ------------------------------------------------------------


def test_content_log_records_only_tenants_that_ask_with_keys_masked():
    """log.content set: tenant "logger" (log_content true) gets one line per
    chat with the body sent upstream (markers included) and the answer as
    relayed, streamed answers with "response": null; cairn keys and the
    upstream key typed into a prompt are masked; tenant "quiet" (the
    default policy) writes nothing; the access log still holds no prompt."""
    kl, kq = new_key(), new_key()
    up = start_upstream()
    path = ctx().path("content.log")
    gw = keys_gateway(up, {"logger": tenant(kl, log_content=True), "quiet": tenant(kq)},
                      markers={"fixed": {"domain": "Legal"}}, log={"content": path})
    secret_prompt = "my keys: %s and %s, remember them" % (kq, CANARY)
    ctx().allow_upstream_to_see(kq, "typed into the prompt, which goes upstream as sent")
    r1 = gw.chat(chat_body(messages=[{"role": "user", "content": secret_prompt}]),
                 headers=bearer(kl))
    assert_status(r1, 200)
    r2 = gw.chat(chat_body(stream=True), headers=bearer(kl))
    assert_status(r2, 200)
    assert_status(gw.chat(chat_body(messages=[{"role": "user", "content": "quiet words"}]),
                          headers=bearer(kq)), 200)
    records = wait_log(path, lambda recs: recs if len(recs) >= 2 else None,
                       what="the two content records of tenant logger")
    check(len(records) == 2, "content records %r" % records)
    check(all(r["tenant"] == "logger" and r["type"] == "content" for r in records),
          "a record of another tenant, or without its type: %r" % records)
    first, stream = records
    check(first["request_id"] == r1.header("x-request-id"), "record/request id mismatch")
    text = first["request"]["messages"][-1]["content"]
    check("<domain>Legal</domain>" in text, "the logged request is not the one sent: %r" % text)
    check(kq not in text and CANARY not in text and "sk-cairn-***" in text,
          "keys not masked in the content log: %r" % text)
    check(first["response"] == r1.json(), "logged response differs from the one relayed")
    check(stream["response"] is None and stream["request"].get("stream") is True,
          "streamed record %r" % stream)
    check("quiet words" not in read_log(path), "tenant without log_content was logged")
    log_record(gw, r1)
    check(secret_prompt[:8] not in gw.access_log_text(), "prompt text in the access log")
    check(oct(os.stat(path).st_mode & 0o777) == "0o600", "content log mode %o"
          % (os.stat(path).st_mode & 0o777))


def test_models_list_not_labelled_json_is_still_filtered_or_refused():
    """A tenant limited to "gpt-a*" lists the models; the upstream answers
    GET /v1/models with a JSON list but labels it text/plain, or gives no
    Content-Type at all, or sends a cut-off list: the tenant never sees the
    model it may not use -- it gets the filtered list or a 502."""
    ids = ["gpt-a", "secret-model"]
    full = json.dumps({"object": "list",
                       "data": [{"id": i, "object": "model", "owned_by": "x"} for i in ids]})
    cases = [("text/plain", full), (None, full), ("text/plain", full[:-3])]
    current = []

    def handler(ex):
        if ex.req.method == "GET" and ex.req.target.split("?")[0] == "/v1/models":
            ctype, body = current[0]
            return ex.respond(200, body.encode(), content_type=ctype)
        return default_handler(ex)
    ka = new_key()
    up = start_upstream(handler)
    gw = keys_gateway(up, {"alpha": tenant(ka, models=["gpt-a*"])})
    for ctype, body in cases:
        what = "Content-Type %r%s" % (ctype, ", cut-off body" if body != full else "")
        current[:] = [(ctype, body)]
        n = len(up.requests)
        resp = gw.request("GET", "/v1/models", headers=bearer(ka))
        check(len(up.requests) == n + 1, "%s: the list was not asked for" % what)
        check(b"secret-model" not in bytes(resp.body),
              "%s: the unfiltered list reached the tenant (status %s): %r"
              % (what, resp.status, bytes(resp.body[:300])))
        if resp.status == 200:
            got = [m.get("id") for m in json.loads(bytes(resp.body)).get("data", [])]
            check(got == ["gpt-a"], "%s: filtered list %r" % (what, got))
        else:
            err = assert_error(resp, 502)
            check(err.get("code") == "upstream_error", "%s: 502 code %r" % (what, err.get("code")))
    assert_not_leaked(gw, [ka], [up])
