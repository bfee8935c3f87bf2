"""Azure OpenAI's v1 API: client paths /openai/v1/... on the gateway, and v1 backends upstream."""
from __future__ import annotations

import httpx
import orjson

from shared.config import Settings
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Backend
from shared.pillars.models.openai_http import OpenAIHttp, upstream_url


def v1(**kw) -> Backend:
    return Backend(id="a", kind="azure_openai", endpoint="https://x.openai.azure.com", deployment="gpt-4o-prod",
                   api_version="v1", api_key_setting="UPSTREAM_SECRET_AOAI", **kw)


def test_v1_backend_url_and_body_name_the_deployment(monkeypatch):
    assert upstream_url(v1(), "chat") == "https://x.openai.azure.com/openai/v1/chat/completions"
    assert upstream_url(v1(), "embeddings") == "https://x.openai.azure.com/openai/v1/embeddings"
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), orjson.loads(request.content), request.headers.get("api-key")))
        return httpx.Response(200, json={"ok": True})

    monkeypatch.setenv("UPSTREAM_SECRET_AOAI", "k")
    http = OpenAIHttp(httpx.AsyncClient(transport=httpx.MockTransport(handler)),
                      UpstreamCredentials(Settings(), TokenCache(lambda: None)))
    import asyncio
    asyncio.run(http.send(v1(), "chat", {"model": "public-name", "messages": []}, {}, stream=False))
    assert seen == [("https://x.openai.azure.com/openai/v1/chat/completions",
                     {"model": "gpt-4o-prod", "messages": []}, "k")]


def test_the_gateway_declares_the_v1_paths():
    from function_app import build_app

    # a fresh app: get_functions() may be called once per app (the host does so exactly once)
    functions = build_app(Settings()).get_functions()
    routes = {(f.get_trigger().route, tuple(f.get_trigger().methods or ())) for f in functions
              if f.get_trigger() is not None and getattr(f.get_trigger(), "route", None)}
    assert ("openai/v1/chat/completions", ("POST",)) in {(r, tuple(str(m) for m in ms)) for r, ms in routes}
    assert any(r == "openai/v1/embeddings" for r, _ in routes)
