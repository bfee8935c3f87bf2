"""What leaves the gateway towards an upstream, through the real gateway process: only upstream-secret settings as
credentials, only allow-listed client headers, and the egress policy on every connection (not just at
registration)."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.integration.models_support import UPSTREAM_KEYS, backend, chat, new_project, setup_model
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("egress", api_key=UPSTREAM_KEYS["a"]) as f:
        yield f


@pytest.mark.parametrize("setting", ["GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET", "COSMOS_CONNECTION_STRING",
                                     "AzureWebJobsStorage", "APPLICATIONINSIGHTS_CONNECTION_STRING"])
def test_a_backend_cannot_name_the_gateways_own_settings(admin: httpx.Client, fake: FakeOpenAI, setting: str):
    pid = new_project(admin)
    spec = {"name": "m", "backends": [backend(fake, "ok", key="UPSTREAM_SECRET_TEST_A"),
                                      backend(fake, "x", key=setting)]}
    r = admin.post(f"/manage/projects/{pid}/models", json=spec)
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["backends.1.api_key_setting"]
    spec["backends"].pop()
    assert admin.post(f"/manage/projects/{pid}/models", json=spec).status_code == 201
    spec["backends"][0]["api_key_setting"] = setting  # a replace is held to the same contract
    r = admin.put(f"/manage/projects/{pid}/models/m", json=spec)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "backends.0.api_key_setting"
    assert fake.requests == []


def test_client_headers_reach_the_upstream_only_by_allow_list(gateway, admin: httpx.Client, fake: FakeOpenAI):
    _, name, secret = setup_model(admin, [backend(fake, "a", key="UPSTREAM_SECRET_TEST_A")])
    hostile = {"OpenAI-Organization": "org-victim", "OpenAI-Project": "proj_victim", "Metadata": "true",
               "X-Forwarded-For": "169.254.169.254", "X-Forwarded-Host": "evil.test", "Forwarded": "for=10.0.0.1",
               "x-ms-client-principal": "eyJ9", "X-ARR-SSL": "1", "disguised-host": "x.test",
               "x-site-deployment-id": "prod", "Cookie": "s=1", "x-stainless-lang": "python",
               "User-Agent": "hostile-agent/1.0", "X-Custom": "yes", "Accept": "application/json"}
    r = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                   json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
                   headers={**hostile, "Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text
    got = fake.requests[-1].headers
    leaked = {k for k in got if k in {h.lower() for h in hostile}} - {"accept", "user-agent"}
    assert leaked == set()
    assert got["accept"] == "application/json" and got["user-agent"] != "hostile-agent/1.0"
    assert got["authorization"] == f"Bearer {UPSTREAM_KEYS['a']}"


def test_egress_policy_is_enforced_at_call_time_not_only_at_registration(start_gateway, gateway, fake: FakeOpenAI):
    # Registered through an instance that allows loopback; called through one (same registry) that does not —
    # what a name that later resolves to a refused address looks like from the gateway's side.
    strict = start_gateway(COSMOS_DATABASE=gateway.env["COSMOS_DATABASE"],
                           GATEWAY_KEY_HASH_SECRET=gateway.env["GATEWAY_KEY_HASH_SECRET"],
                           EGRESS_ALLOW_LOOPBACK="false")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as admin:
        _, name, secret = setup_model(admin, [backend(fake, "a", key="UPSTREAM_SECRET_TEST_A")])
    assert chat(gateway.url, secret, name).status_code == 200
    before = len(fake.requests)
    r = chat(strict.url, secret, name)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unavailable"
    assert "EgressRefused" in r.json()["error"]["message"]
    assert len(fake.requests) == before  # nothing reached the loopback upstream
