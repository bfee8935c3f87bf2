"""Only allow-listed client headers reach the upstream: a hostile header set, sent over a real socket to a fake
upstream, arrives filtered."""
from __future__ import annotations

from shared.config import Settings
from shared.pillars.models.domain import Backend
from shared.egress import EgressPolicy
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.upstreams.egress_transport import guarded_client
from shared.pillars.models.openai_http import FORWARDED_REQUEST_HEADERS, OpenAIHttp
from tests.support.fake_openai import FakeOpenAI

# What a key holder or the Azure front end might put on a request.
HOSTILE = {
    "OpenAI-Organization": "org-victim", "OpenAI-Project": "proj_victim", "Metadata": "true",
    "X-Forwarded-For": "169.254.169.254", "X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "http",
    "Forwarded": "for=10.0.0.1", "X-Real-IP": "10.0.0.1", "X-MS-Client-Principal": "eyJhZG1pbiI6dHJ1ZX0=",
    "x-ms-client-principal-name": "admin@corp", "X-ARR-SSL": "1", "x-arr-log-id": "abc", "DISGUISED-HOST": "x.test",
    "x-site-deployment-id": "gateway-prod", "x-waws-unencoded-url": "/internal", "Authorization": "Bearer sk-gw-x",
    "api-key": "client-key", "Cookie": "session=1", "Proxy-Authorization": "Basic eA==", "traceparent": "00-x",
    "User-Agent": "AsyncOpenAI/Python 1.50.0", "x-stainless-lang": "python", "Idempotency-Key": "k-1",
    "x-gateway-debug": "1", "X-Custom-Anything": "yes", "Accept": "application/json",
}


async def test_only_allow_listed_client_headers_reach_the_upstream(monkeypatch):
    monkeypatch.setenv("UPSTREAM_SECRET_UNIT", "sk-upstream")
    with FakeOpenAI("hdr", api_key="sk-upstream") as fake:
        backend = Backend(id="b", kind="openai_compatible", endpoint=f"{fake.url}/v1", deployment="m",
                          api_key_setting="UPSTREAM_SECRET_UNIT")
        async with guarded_client(EgressPolicy(allow_loopback=True)) as client:
            http = OpenAIHttp(client, UpstreamCredentials(Settings(), TokenCache(lambda: None)))
            r = await http.send(backend, "chat", {"messages": [{"role": "user", "content": "hi"}]}, HOSTILE,
                                stream=False)
        assert r.status_code == 200
        got = fake.requests[0].headers
    assert got["authorization"] == "Bearer sk-upstream"  # the gateway's own credential, not the client's
    assert got["accept"] == "application/json" and got["content-type"] == "application/json"
    client_only = {k.lower() for k in HOSTILE} - FORWARDED_REQUEST_HEADERS - {"authorization"}
    assert client_only & set(got) <= {"user-agent"}  # httpx sends its own user-agent …
    assert got.get("user-agent", "").startswith("python-httpx")  # … never the client's
    ours = ("authorization", "accept", "content-type")
    assert not [v for k, v in got.items() if k not in ours and v in HOSTILE.values()]
