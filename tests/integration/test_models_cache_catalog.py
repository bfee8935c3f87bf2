"""Through a real gateway process (local host, Cosmos server, Azurite): the response cache wired as a pipeline
step (exact hits, streamed hits, bypass), Azure OpenAI v1 paths with the official SDK, the developer catalog."""
from __future__ import annotations

import time

import httpx
from openai import OpenAI

from tests.integration.models_support import backend, setup_model
from tests.support.fake_openai import FakeOpenAI
from tests.support.jwks import JwksServer


def test_cache_hits_stream_and_bypass_through_the_gateway(gateway, admin, jwks: JwksServer):
    with FakeOpenAI("cache") as up:
        pid, name, secret = setup_model(admin, [backend(up, "a")], prices=(1.0, 2.0))
        spec = admin.get(f"/manage/projects/{pid}/models/{name}").json()
        etag = admin.get(f"/manage/projects/{pid}/models/{name}").headers.get("etag")
        patch = {k: v for k, v in spec.items() if k not in ("project_id", "created_at", "updated_at")}
        patch.update(cache={"enabled": True, "ttl_seconds": 600}, cached_input_price_per_1k=0.5)
        r = admin.put(f"/manage/projects/{pid}/models/{name}", json=patch, headers={"If-Match": etag} if etag else {})
        assert r.status_code == 200, r.text
        client = OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)

        def ask(**extra):
            return client.chat.completions.with_raw_response.create(
                model=name, messages=[{"role": "user", "content": "What is compound interest?"}], **extra)

        first = ask()
        for _ in range(40):  # the catalog change reaches the worker within its cache TTL
            if first.headers.get("x-gateway-cache"):
                break
            time.sleep(0.25)
            first = ask()
        assert first.headers["x-gateway-cache"] == "miss"
        # The miss is stored in the background after the answer went out: wait for the store, not a fixed sleep.
        for _ in range(40):
            calls = len(up.requests)
            hit = ask()
            if hit.headers["x-gateway-cache"] == "hit":
                break
            time.sleep(0.05)
        assert hit.headers["x-gateway-cache"] == "hit" and len(up.requests) == calls
        assert hit.parse().choices[0].message.content == first.parse().choices[0].message.content
        chunks = list(client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "What is compound interest?"}], stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
            first.parse().choices[0].message.content and len(up.requests) == calls
        bypass = ask(extra_headers={"x-gateway-cache": "bypass"})
        assert bypass.headers["x-gateway-cache"] == "bypass" and len(up.requests) == calls + 1

        # Azure OpenAI v1 path, unmodified SDK
        v1 = OpenAI(base_url=gateway.url + "/openai/v1", api_key=secret, max_retries=0)
        out = v1.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi v1"}])
        assert out.choices[0].message.content and up.requests[-1].path == "/v1/chat/completions"

        # developer catalog
        dev = jwks.token(roles=["Gateway.Developer"])
        assert admin.put(f"/manage/projects/{pid}/quotas/model/{name}",
                         json={"requests_per_minute": 100}).status_code in (200, 201)
        cat = httpx.get(f"{gateway.url}/portal/projects/{pid}/models", headers={"Authorization": f"Bearer {dev}"},
                        timeout=10)
        assert cat.status_code == 200, cat.text
        item = next(m for m in cat.json()["items"] if m["name"] == name)
        assert item["cache"] is True and item["semantic_cache"] is False
        assert item["prices"] == {"input_per_1k": 1.0, "output_per_1k": 2.0, "cached_input_per_1k": 0.5,
                                  "reasoning_per_1k": None}
        assert "chat" in item["capabilities"] and item["lifecycle"] == "published"
