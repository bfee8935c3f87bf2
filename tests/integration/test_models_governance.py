"""Quotas (RPM, TPM, budgets, cost), key scope, rotation and expiry, bad input, self-service keys."""
from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY, new_key, new_project
from tests.integration.models_support import backend, chat, log_row, setup_model
from tests.support.fake_openai import FakeOpenAI, ok
from tests.support.processes import wait_until


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI("q") as f:
        yield f


@pytest.fixture
def model(admin, fake):
    fake.reset()
    return setup_model(admin, [backend(fake, "q")], prices=(1.0, 2.0))


def quota(admin, pid, scope, target, **limits):
    r = admin.put(f"/manage/projects/{pid}/quotas/{scope}/{target}", json=limits)
    assert r.status_code == 200, r.text
    return r.json()


def key_id(admin, pid):
    return admin.get(f"/manage/projects/{pid}/keys").json()["items"][0]["id"]


def wait_new_minute_if_close():
    # Fixed one-minute windows: keep a test's requests inside one window.
    if time.gmtime().tm_sec > 50:
        time.sleep(61 - time.gmtime().tm_sec)


def test_requests_per_minute_on_a_key(gateway, admin, model):
    pid, name, secret = model
    quota(admin, pid, "key", key_id(admin, pid), requests_per_minute=3)
    wait_new_minute_if_close()
    ok_responses = [chat(gateway.url, secret, name) for _ in range(3)]
    assert all(r.status_code == 200 for r in ok_responses)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok_responses][-1] == "0"
    r = chat(gateway.url, secret, name)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 60 and r.headers["x-ratelimit-remaining-requests"] == "0"
    refused = log_row(gateway.env["AzureWebJobsStorage"], r.headers["x-request-id"])  # refusals are logged too
    assert refused["status"] == 429 and refused["error_code"] == "rate_limit_exceeded" and refused["resource"] == name and refused["pillar"] == "models"


def test_rpm_holds_under_concurrency(gateway, admin, model):
    pid, name, secret = model
    quota(admin, pid, "project", pid, requests_per_minute=10)
    wait_new_minute_if_close()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: chat(gateway.url, secret, name).status_code, range(25)))
    assert codes.count(200) == 10 and codes.count(429) == 15


def test_tokens_per_minute_counts_real_usage(gateway, admin, model, fake):
    pid, name, secret = model
    quota(admin, pid, "model", name, tokens_per_minute=60)
    wait_new_minute_if_close()
    fake.set_default(ok("word " * 20, completion_tokens=25))
    statuses = [chat(gateway.url, secret, name).status_code for _ in range(4)]
    # each call costs ~4 prompt + 25 completion tokens: the third can no longer be admitted
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    r = chat(gateway.url, secret, name)
    assert r.headers["x-ratelimit-remaining-tokens"] == "0"


def test_daily_token_budget_is_403(gateway, admin, model, fake):
    pid, name, secret = model
    quota(admin, pid, "project", pid, tokens_per_day=40)
    fake.set_default(ok("x", completion_tokens=50))  # one call overshoots the whole day's budget
    assert chat(gateway.url, secret, name).status_code == 200
    r = chat(gateway.url, secret, name)
    assert r.status_code == 403 and r.json()["error"]["code"] == "budget_exhausted"


def quota_rows(storage_connection_string: str, pid: str) -> dict[str, int]:
    """The shared quota counters of a project's own quota, as stored: row → total."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(storage_connection_string, "gatewayquotas")
    try:
        return {e["RowKey"]: int(e["total"]) for e in table.query_entities(f"PartitionKey eq '{pid}|project|{pid}'")}
    except ResourceNotFoundError:  # no counter written yet by any test
        return {}


def test_an_oversized_call_never_parks_the_daily_budget(gateway, admin, model, fake):
    pid, name, secret = model
    quota(admin, pid, "project", pid, tokens_per_day=100_000)
    r = chat(gateway.url, secret, name, max_tokens=1_000_000_000)
    assert quota_rows(gateway.env["AzureWebJobsStorage"], pid) == {}  # the shared counter was never touched
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_exceeds_quota"
    assert "max_tokens" in r.json()["error"]["message"] and r.json()["error"]["details"]["allowed"] == 100_000
    fake.set_default(ok("x", completion_tokens=10))
    assert chat(gateway.url, secret, name).status_code == 200  # the project still works for the rest of the day
    assert chat(gateway.url, secret, name, max_tokens=50_000).status_code == 200
    # the 50,000 tokens the second call reserved and did not use go back to the shared row, off the hot path:
    # it ends up holding usage plus at most this instance's pool, not the whole day's budget
    wait_until(lambda: sum(quota_rows(gateway.env["AzureWebJobsStorage"], pid).values()) <= 3 * 2_000,
               timeout=10, message="the unused reservation to return to the shared quota counter")


def test_a_burst_without_max_tokens_respects_tokens_per_minute(gateway, admin, fake):
    fake.reset()
    pid = new_project(admin)
    spec = {"name": "burst", "backends": [backend(fake, "q")], "completion_estimate_tokens": 100}
    r = admin.post(f"/manage/projects/{pid}/models", json=spec)
    assert r.status_code == 201 and r.json()["completion_estimate_tokens"] == 100
    secret = new_key(admin, pid)
    quota(admin, pid, "model", "burst", tokens_per_minute=1_000)
    fake.set_default(ok("word " * 80, completion_tokens=100, delay=1.0))  # slow: the calls overlap
    wait_new_minute_if_close()
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: chat(gateway.url, secret, "burst"), range(12)))
    used = sum(x.json()["usage"]["total_tokens"] for x in responses if x.status_code == 200)
    # each call needs ~10 prompt + 100 completion tokens; reserving only the prompt admitted all 12 (≈1,300)
    assert used <= 1_000 * 1.05, [x.status_code for x in responses]
    assert [x.status_code for x in responses].count(429) >= 2


def test_monthly_cost_budget(gateway, admin, model, fake):
    pid, name, secret = model  # prices: $1 / 1K input, $2 / 1K output
    quota(admin, pid, "key", key_id(admin, pid), cost_per_month_usd=0.1)
    fake.set_default(ok("x", completion_tokens=40))  # ≈ $0.004 + $0.08 = $0.084 per call
    assert chat(gateway.url, secret, name).status_code == 200  # spent $0.084 < $0.10: the next is admitted
    assert chat(gateway.url, secret, name).status_code == 200  # spent $0.168 ≥ $0.10 now
    r = chat(gateway.url, secret, name)
    assert r.status_code == 403 and r.json()["error"]["code"] == "cost_budget_exhausted"


def test_stream_without_upstream_usage_is_still_counted(gateway, admin, model, fake):
    from tests.support.fake_openai import stream

    pid, name, secret = model
    quota(admin, pid, "project", pid, tokens_per_day=10_000)
    fake.set_default(stream("a b c d e f g h", usage=False))
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": name, "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert "[DONE]" in "".join(r.iter_text())
    row = log_row(gateway.env["AzureWebJobsStorage"], r.headers["x-request-id"])
    # "a b c d e f g h" (15 bytes) with an unknown deployment name: the byte heuristic, ceil(15/4)
    assert row["usage_estimated"] is True and row["completion_tokens"] >= 4 and row["streamed"] is True


def test_key_model_scope(gateway, admin, fake):
    fake.reset()
    pid, allowed, secret = setup_model(admin, [backend(fake, "q")], key_spec={"models": ["placeholder"]})
    _, other, _ = setup_model(admin, [backend(fake, "q")], project=pid)
    scoped = admin.post(f"/manage/projects/{pid}/keys", json={"name": "scoped", "models": [allowed]}).json()
    headers = {"Authorization": f"Bearer {scoped['secret']}"}
    assert chat(gateway.url, scoped["secret"], allowed).status_code == 200
    r = chat(gateway.url, scoped["secret"], other)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert [m["id"] for m in httpx.get(f"{gateway.url}/v1/models", headers=headers).json()["data"]] == [allowed]


def test_rotation_with_overlap_and_without(gateway, admin, model):
    pid, name, old = model
    kid = key_id(admin, pid)
    rotated = admin.post(f"/manage/projects/{pid}/keys/{kid}/rotate", json={"overlap_seconds": 600})
    assert rotated.status_code == 200 and rotated.json()["id"] == kid
    new = rotated.json()["secret"]
    assert chat(gateway.url, new, name).status_code == 200
    assert chat(gateway.url, old, name).status_code == 200  # still inside the overlap
    newer = admin.post(f"/manage/projects/{pid}/keys/{kid}/rotate", json={"overlap_seconds": 0}).json()["secret"]
    assert chat(gateway.url, newer, name).status_code == 200
    assert chat(gateway.url, new, name).status_code == 401  # no overlap asked: gone at once on this instance
    assert chat(gateway.url, old, name).status_code == 200  # the first overlap still runs
    too_long = admin.post(f"/manage/projects/{pid}/keys/{kid}/rotate", json={"overlap_seconds": 10**9})
    assert too_long.status_code == 422
    admin.post(f"/manage/projects/{pid}/keys/{kid}/revoke")
    assert chat(gateway.url, newer, name).status_code == 401 and chat(gateway.url, old, name).status_code == 401


def test_data_plane_bad_input(gateway, admin, model, fake):
    pid, name, secret = model
    auth = {"Authorization": f"Bearer {secret}"}
    url = f"{gateway.url}/v1/chat/completions"
    cases = [
        (dict(content=b"{nope"), 400, "malformed_json"),
        (dict(json={"model": name}), 422, "validation_error"),
        (dict(json={"model": name, "messages": "hi"}), 422, "validation_error"),
        (dict(json={"model": name, "messages": [{"content": "no role"}]}), 422, "validation_error"),
        (dict(json={"messages": [{"role": "user", "content": "x"}]}), 400, "invalid_request"),
        (dict(json={"model": "ghost", "messages": [{"role": "user", "content": "x"}]}), 404, "model_not_found"),
        (dict(json={"model": name, "messages": [{"role": "user", "content": "x" * 300_000}]}), 413,
         "payload_too_large"),
    ]
    before = len(fake.requests)
    for kwargs, status, code in cases:
        r = httpx.post(url, headers=auth, timeout=10, **kwargs)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    r = httpx.post(url, headers=auth, json={"model": name, "messages": [{"content": "no role"}]})
    assert r.json()["error"]["details"][0]["field"] == "messages.0.role"
    assert len(fake.requests) == before  # nothing reached the upstream


def test_model_registration_validation(admin, fake):
    pid = new_project(admin)
    base = {"name": "m", "backends": [backend(fake, "x")]}
    assert admin.post(f"/manage/projects/{pid}/models", json={**base, "backends": []}).status_code == 422
    meta = {**base, "backends": [{**backend(fake, "x"), "endpoint": "http://169.254.169.254/v1"}]}
    r = admin.post(f"/manage/projects/{pid}/models", json=meta)
    assert r.status_code == 422 and r.json()["error"]["code"] == "egress_denied"
    dup = {**base, "backends": [backend(fake, "x"), backend(fake, "x")]}
    assert admin.post(f"/manage/projects/{pid}/models", json=dup).status_code == 422
    assert admin.post(f"/manage/projects/{pid}/models", json=base).status_code == 201
    assert admin.post(f"/manage/projects/{pid}/models", json=base).status_code == 409
    got = admin.get(f"/manage/projects/{pid}/models/m")
    changed = admin.put(f"/manage/projects/{pid}/models/m", json={**base, "description": "v2"},
                        headers={"If-Match": got.headers["etag"]})
    assert changed.status_code == 200 and changed.json()["description"] == "v2"
    stale = admin.put(f"/manage/projects/{pid}/models/m", json=base, headers={"If-Match": got.headers["etag"]})
    assert stale.status_code == 412
    assert admin.put(f"/manage/projects/{pid}/quotas/key/nokey", json={"requests_per_minute": 1}).status_code == 404
    assert admin.put(f"/manage/projects/{pid}/quotas/model/m", json={}).status_code == 422


def test_self_service_keys(gateway, admin, jwks, fake):
    fake.reset()
    dev = {"Authorization": f"Bearer {jwks.token(roles=['Gateway.Developer'], oid='dev-1')}"}
    other = {"Authorization": f"Bearer {jwks.token(roles=['Gateway.Developer'], oid='dev-2')}"}
    pid, name, _ = setup_model(admin, [backend(fake, "q")])
    # the project asks for approval (the default)
    r = httpx.post(f"{gateway.url}/portal/projects/{pid}/keys", headers=dev, json={"name": "mine"})
    assert r.status_code == 202 and r.json()["state"] == "pending"
    rid = r.json()["id"]
    claim = f"{gateway.url}/portal/projects/{pid}/key-requests/{rid}/claim"
    assert httpx.post(claim, headers=dev).json()["error"]["code"] == "request_pending"
    pending = admin.get(f"/manage/projects/{pid}/key-requests", params={"state": "pending"}).json()["items"]
    assert [p["id"] for p in pending] == [rid]
    assert admin.post(f"/manage/projects/{pid}/key-requests/{rid}/approve", json={}).json()["state"] == "approved"
    assert httpx.post(claim, headers=other).status_code == 403  # only the requester
    got = httpx.post(claim, headers=dev)
    assert got.status_code == 201 and chat(gateway.url, got.json()["secret"], name).status_code == 200
    assert httpx.post(claim, headers=dev).json()["error"]["code"] == "request_claimed"  # shown once
    # a project that auto-issues
    admin.patch(f"/manage/projects/{pid}", json={"key_issuance": "auto"})
    auto = httpx.post(f"{gateway.url}/portal/projects/{pid}/keys", headers=dev, json={"name": "auto"})
    assert auto.status_code == 201 and auto.json()["secret"].startswith("sk-gw-")
    assert auto.json()["metadata"]["owner"] == "dev-1"
    assert httpx.post(f"{gateway.url}/portal/projects/{pid}/keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                      json={"name": "x"}).status_code in (201, 202)


def test_payloads_logged_only_when_the_project_opts_in(gateway, admin, fake):
    fake.reset()

    def row(rid):
        return log_row(gateway.env["AzureWebJobsStorage"], rid)

    pid, name, secret = setup_model(admin, [backend(fake, "q")])
    quiet = row(chat(gateway.url, secret, name).headers["x-request-id"])
    assert "prompt" not in quiet and "completion" not in quiet and quiet["total_tokens"] > 0
    assert admin.patch(f"/manage/projects/{pid}", json={"log_payloads": True}).json()["log_payloads"] is True
    loud = row(chat(gateway.url, secret, name).headers["x-request-id"])
    assert "hello there" in loud["prompt"] and "Hello from fake" in loud["completion"]
