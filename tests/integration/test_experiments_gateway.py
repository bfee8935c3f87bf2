"""A/B experiments through a real gateway process, two fake upstreams and the official `openai` SDK: the split
within tolerance, stickiness, pause → all traffic to the control, feedback (own calls only), results."""
from __future__ import annotations

import collections

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, new_key
from tests.integration.models_support import UPSTREAM_KEYS, backend, setup_model
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import wait_until

USERS = [f"user-{i}" for i in range(200)]


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI("control", api_key=UPSTREAM_KEYS["a"]) as a, FakeOpenAI("treat", api_key=UPSTREAM_KEYS["b"]) as b:
        yield a, b


@pytest.fixture(scope="module")
def setup(gateway, fakes):
    a, b = fakes
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as admin:
        pid, model, secret = setup_model(admin, [backend(a, "a", key="UPSTREAM_SECRET_TEST_A"),
                                                 backend(b, "b", key="UPSTREAM_SECRET_TEST_B")])
        other = new_key(admin, pid)
        r = admin.post(f"/manage/projects/{pid}/experiments", json={
            "name": "mini-vs-full", "model": model, "sticky_by": "user", "min_samples": 20, "variants": [
                {"id": "control", "weight": 70, "backends": ["a"]},
                {"id": "mini", "weight": 30, "backends": ["b"], "deployment": "b-mini"}]})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "draft" and r.headers["etag"]
        yield pid, model, secret, other


def client(gateway, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)


def ask(c: openai.OpenAI, model: str, user: str):
    raw = c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}], extra_headers={"x-gateway-user": user})
    raw.parse()
    return raw.headers.get("x-gateway-variant"), raw.headers["x-request-id"]


def test_experiment_end_to_end(gateway, admin, fakes, setup):
    a, b = fakes
    pid, model, secret, other = setup
    base = f"/manage/projects/{pid}/experiments/mini-vs-full"
    c = client(gateway, secret)
    assert ask(c, model, "before")[0] is None  # a draft does not route

    r = admin.post(base + "/start")
    assert r.status_code == 200 and r.json()["status"] == "running"
    a.reset(), b.reset()
    seen: dict[str, str] = {}
    calls: dict[str, list[str]] = collections.defaultdict(list)
    for user in USERS:
        variant, rid = ask(c, model, user)
        seen[user] = variant
        calls[variant].append(rid)
    # 70/30 of 200: binomial sd ≈ 6.5; the hash split is deterministic, the tolerance is ±4 sd
    assert 114 <= len(calls["control"]) <= 166 and len(calls["control"]) + len(calls["mini"]) == 200
    assert len(a.requests) == len(calls["control"]) and len(b.requests) == len(calls["mini"])  # routed as announced
    assert {r.body["model"] for r in b.requests} == {"b-mini"}  # the variant's model version
    assert not any("x-gateway-user" in r.headers for r in a.requests + b.requests)  # never forwarded upstream
    streamed = c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_headers={"x-gateway-user": USERS[0]})
    assert streamed.headers["x-gateway-variant"] == seen[USERS[0]]
    assert "".join(ch.choices[0].delta.content or "" for ch in streamed.parse() if ch.choices)
    assert all(ask(c, model, u)[0] == seen[u] for u in USERS[:15])  # sticky per user

    # feedback: the caller's own calls only; wait for the batched request log
    def give(key: str, rid: str, score: float):
        return httpx.post(f"{gateway.url}/v1/feedback", json={"request_id": rid, "score": score},
                          headers={"Authorization": f"Bearer {key}"}, timeout=10)

    first = calls["control"][0]
    ok = wait_until(lambda: (r := give(secret, first, 1)).status_code == 200 and r, timeout=15,
                    message="feedback accepted once the call is logged")
    assert ok.json()["variant"] == "control" and ok.json()["experiment"] == "mini-vs-full"
    stolen = give(other, first, 0)  # another key of the same project
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "request_not_found"
    assert give(secret, first, 101).status_code == 422  # bounded score
    # the SDK's generic POST works too (a developer's client needs nothing else)
    assert c.post("/feedback", body={"request_id": calls["mini"][0], "score": 5}, cast_to=object)["variant"] == "mini"
    for rid in calls["control"][1:3]:
        assert give(secret, rid, 2).status_code == 200
    for rid in calls["mini"][1:3]:
        assert give(secret, rid, 4).status_code == 200

    # pause → everything to the control, whatever the user
    assert admin.post(base + "/pause").json()["status"] == "paused"
    a.reset(), b.reset()
    assert {ask(c, model, u)[0] for u in USERS[:30]} == {"control"}
    assert len(a.requests) == 30 and b.requests == []

    results = wait_until(lambda: (r := admin.get(base + "/results").json())["rows_counted"] >= 216 and r,
                         timeout=15, message="every counted call in the request log")
    by = {v["variant"]: v for v in results["variants"]}
    # the first 200 calls, the 15 stickiness calls and the stream count; the 30 paused calls and the draft call do not
    assert by["control"]["requests"] + by["mini"]["requests"] == 216
    assert by["control"]["feedback_count"] == 3 and by["control"]["mean_feedback"] == pytest.approx(5 / 3)
    assert by["mini"]["feedback_count"] == 3 and by["mini"]["mean_feedback"] == pytest.approx(13 / 3)
    assert by["control"]["error_rate"] == 0 and by["control"]["latency_p95_ms"] >= by["control"]["latency_p50_ms"]
    assert by["mini"]["tokens"] > 0
    assert results["winner"] in (None, "control", "mini") and results["summary"]

    # lifecycle through the API: audited, stopped is final, a running experiment cannot be deleted
    assert admin.post(base + "/start").json()["status"] == "running"
    assert admin.delete(base).status_code == 409
    stopped = admin.post(base + "/stop").json()
    assert stopped["status"] == "stopped"
    assert [h["action"] for h in stopped["history"]] == ["create", "start", "pause", "start", "stop"]
    assert {h["by"] for h in stopped["history"]} == {"admin_key:bootstrap-admin"}
    again = admin.post(base + "/start")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
    assert ask(c, model, USERS[0])[0] is None  # stopped: the model's own routing
    assert give(secret, calls["control"][5], 1).json()["error"]["code"] == "experiment_closed"
    assert admin.get(base + "/results").json()["status"] == "stopped"  # results stay readable
    assert admin.delete(base).status_code == 204 and admin.get(base).status_code == 404


def test_admin_contract_errors_are_structured(admin, setup):  # runs after the end-to-end test (module order)
    pid, model, *_ = setup
    url = f"/manage/projects/{pid}/experiments"
    bad = admin.post(url, json={"name": "x1", "model": model, "variants": [
        {"id": "a", "weight": 1, "backends": ["nope"]}, {"id": "b", "weight": 1}]})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "variants.0.backends"
    zero = admin.post(url, json={"name": "x2", "model": model, "variants": [
        {"id": "a", "weight": 0}, {"id": "b", "weight": 0}]})
    assert zero.status_code == 422
    assert [e["name"] for e in admin.get(url).json()["items"]] == []  # nothing half-created (and the end-to-end
    # test deleted its own)
    assert admin.get(f"/manage/projects/{pid}/experiments/nope").status_code == 404
