"""The response cache on the real models pipeline (ModelsSpec + Pipeline + CacheStep), in process: memory registry,
counters and cache store, the real UsageLog over a memory sink, an OpenAI-compatible upstream on
httpx.MockTransport whose /embeddings answers with all-MiniLM-L6-v2 (a real embedding model, numpy), so the
cache's embeddings go through the pillar's own upstream client, failover and breakers."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import orjson
import pytest

from shared.auth.principal import Principal
from shared.cache_semantic.service import ResponseCache
from shared.cache_semantic.settings import CacheSettings
from shared.cache_semantic.stores import MemoryCacheStore
from shared.cache_semantic.embedder import UpstreamEmbedder
from shared.config import Settings
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.errors import GatewayError
from shared.flags.service import FlagService
from shared.pillars.models.cache_step import CacheStep
from shared.pillars.models.contracts import exchange
from shared.pillars.models.catalog import ModelCatalog
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Model, ModelSpec
from shared.pillars.models.openai_http import OpenAIHttp
from shared.pillars.models.spec import ModelsSpec
from shared.pillars.models.tokens import TokenEstimator
from shared.pipeline import Exchange, Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog

PID = "p1"
NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=timezone.utc)


class Chunks(httpx.AsyncByteStream):
    """An open response stream, as a real upstream's SSE is (the spec relays only streams still open)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self):
        for i in range(0, len(self._data), 40):
            yield self._data[i:i + 40]


class Upstream:
    """Chat answers name the question; embeddings come from MiniLM."""

    def __init__(self) -> None:
        from tests.support.minilm import load

        self.model = load()
        self.calls: list[str] = []
        self.fail_embeddings = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path = request.url.path
        self.calls.append(path)
        if path.endswith("/embeddings"):
            if self.fail_embeddings:
                return httpx.Response(400, json={"error": {"message": "bad"}})
            vec = [float(v) for v in self.model.embed([body["input"]])[0]]
            return httpx.Response(200, json={"data": [{"embedding": vec, "index": 0}],
                                             "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        question = body["messages"][-1]["content"]
        answer = f"Answer to: {question}"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if body.get("stream"):
            chunks = [{"choices": [{"index": 0, "delta": {"content": w + " "}}]} for w in answer.split()]
            chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            chunks.append({"choices": [], "usage": usage})
            sse = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            return httpx.Response(200, stream=Chunks(sse), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "model": "up", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": usage})


def backend(bid: str = "a") -> dict:
    return {"id": bid, "kind": "openai_compatible", "endpoint": f"http://{bid}.test/v1", "deployment": "m"}


@pytest.fixture
async def world():
    store = MemoryDocumentStore()
    models = Repository(store, Model)
    quotas = Repository(store, Quota)
    upstream = Upstream()
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    catalog = ModelCatalog(models, ttl=0, max_stale=0)
    enforcer = QuotaEnforcer(MemoryCounterStore(), clock=lambda: NOW)
    openai = OpenAIHttp(http, UpstreamCredentials(Settings(), TokenCache(lambda: None)))
    spec = ModelsSpec(catalog=catalog, http=openai, tokens=TokenEstimator(), enforcer=enforcer)
    breakers = Breakers()
    book = QuotaBook(quotas, ttl=0, max_stale=0)
    cache = ResponseCache(MemoryCacheStore(), UpstreamEmbedder(find_model=catalog.get, http=openai,
                                                                breakers=breakers))
    step = CacheStep(cache, quotas=book, enforcer=enforcer)
    sink = MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60, max_stale=600)
    pipeline = Pipeline(spec, quotas=book, enforcer=enforcer, breakers=breakers, usage=usage, flags=flags,
                        steps=[step])
    await models.create(Model(id="emb", project_id=PID, spec=ModelSpec(
        name="emb", capabilities=["embeddings"], backends=[backend("e")])))

    class W:
        pass

    w = W()
    w.__dict__.update(pipeline=pipeline, models=models, quotas=quotas, upstream=upstream, sink=sink, usage=usage,
                      step=step, cache=cache)
    yield w
    await usage.close()
    await http.aclose()


async def chat_model(w, **cache) -> None:
    settings = CacheSettings(enabled=True, **cache)
    await w.models.create(Model(id="chat", project_id=PID, spec=ModelSpec(
        name="chat", backends=[backend()], cache=settings)))


def principal(key: str = "k1") -> Principal:
    return Principal(kind="virtual_key", subject=key, project_id=PID, key_id=key, key_prefix="sk-gw-abc", scopes={})


_n = 0


async def ask(w, text: str, *, stream: bool = False, key: str = "k1", system: str | None = None,
              headers: dict | None = None, **extra) -> tuple[httpx.Response, str]:
    global _n
    _n += 1
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    body = {"model": "chat", "messages": messages, **extra}
    if stream:
        body["stream"] = True
    response = await w.pipeline.run(exchange("chat", orjson.dumps(body), None, principal=principal(key),
                                             request_id=f"r{_n}", headers=headers or {}, started=0.0))
    if hasattr(response, "body_iterator"):
        text_out = b"".join([c async for c in response.body_iterator]).decode()
    else:
        text_out = response.body.decode()
    await w.step.drain()
    return response, text_out


def content(text: str) -> str:
    if text.startswith("data:"):
        out = []
        for line in text.split("\n"):
            if line.startswith("data: {"):
                for c in json.loads(line[6:]).get("choices") or []:
                    out.append((c.get("delta") or {}).get("content") or "")
        return "".join(out)
    return json.loads(text)["choices"][0]["message"]["content"]


async def rows(w) -> list:
    await w.usage.flush()
    return w.sink.records


def chat_calls(w) -> int:
    return sum(1 for c in w.upstream.calls if c.endswith("/chat/completions"))


async def test_exact_hit_spends_no_upstream_call_and_is_logged(world):
    w = world
    await chat_model(w)
    first, body1 = await ask(w, "How do I reset my password?")
    assert first.headers["x-gateway-cache"] == "miss"
    again, body2 = await ask(w, "How do I reset my password?")
    assert again.headers["x-gateway-cache"] == "hit" and "x-gateway-backend" not in again.headers
    assert content(body2) == content(body1) and chat_calls(w) == 1
    assert json.loads(body2)["usage"]["total_tokens"] == 0
    log = await rows(w)
    assert [r.attributes["cache"] for r in log] == ["miss", "hit"]
    hit = log[1]
    assert hit.attributes["cache_match"] == "exact" and hit.attributes["cache_saved_tokens"] == 15
    assert hit.target is None and hit.status == 200 and hit.attributes["total_tokens"] == 0


async def test_semantic_hit_for_a_paraphrase_and_the_veto_for_the_opposite(world):
    w = world
    await chat_model(w, semantic=True, embeddings_model="emb", similarity_threshold=0.8)
    await ask(w, "How do I enable multi-factor authentication on my account?")
    para, text = await ask(w, "How can I turn on multi-factor authentication for my account?")
    assert para.headers["x-gateway-cache"] == "hit"
    assert content(text) == "Answer to: How do I enable multi-factor authentication on my account?"
    opposite, text = await ask(w, "How do I disable multi-factor authentication on my account?")
    assert opposite.headers["x-gateway-cache"] == "miss"
    assert content(text) == "Answer to: How do I disable multi-factor authentication on my account?"
    log = await rows(w)
    assert log[1].attributes["cache_match"] == "semantic" and log[1].attributes["cache_similarity"] >= 0.8
    assert log[2].attributes["cache_vetoed"] == "opposite_action"
    assert sum(1 for c in w.upstream.calls if c.endswith("/embeddings")) == 3  # through the upstream layer


async def test_stream_miss_is_stored_and_a_hit_streams(world):
    w = world
    await chat_model(w)
    miss, text = await ask(w, "What is compound interest?", stream=True)
    assert miss.headers["x-gateway-cache"] == "miss"
    assert content(text).strip() == "Answer to: What is compound interest?"
    hit, text = await ask(w, "What is compound interest?", stream=True, stream_options={"include_usage": True})
    assert hit.headers["x-gateway-cache"] == "hit" and hit.headers["content-type"].startswith("text/event-stream")
    assert content(text).strip() == "Answer to: What is compound interest?" and text.endswith("data: [DONE]\n\n")
    assert '"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}' in text
    plain, text = await ask(w, "What is compound interest?")  # `stream` is delivery: the same entry answers
    assert plain.headers["x-gateway-cache"] == "hit" and json.loads(text)["object"] == "chat.completion"
    assert chat_calls(w) == 1


async def test_bypass_header_and_scopes(world):
    w = world
    await chat_model(w, vary_by=["key", "system_prompt"])
    await ask(w, "Why is the sky blue?")
    bypass, _ = await ask(w, "Why is the sky blue?", headers={"x-gateway-cache": "bypass"})
    assert bypass.headers["x-gateway-cache"] == "bypass"
    other_key, _ = await ask(w, "Why is the sky blue?", key="k2")
    other_system, _ = await ask(w, "Why is the sky blue?", system="Answer like a pirate.")
    other_field, _ = await ask(w, "Why is the sky blue?", temperature=1.5)
    assert [r.headers["x-gateway-cache"] for r in (other_key, other_system, other_field)] == ["miss"] * 3
    same, _ = await ask(w, "Why is the sky blue?")
    assert same.headers["x-gateway-cache"] == "hit" and chat_calls(w) == 5


async def test_entries_expire(world):
    w = world
    await chat_model(w, ttl_seconds=60)
    clock = [1000.0]
    w.cache._clock = w.cache._store._clock = lambda: clock[0]
    await ask(w, "What is the speed of light?")
    clock[0] += 59
    assert (await ask(w, "What is the speed of light?"))[0].headers["x-gateway-cache"] == "hit"
    clock[0] += 2
    assert (await ask(w, "What is the speed of light?"))[0].headers["x-gateway-cache"] == "miss"


async def test_a_hit_still_counts_against_the_request_rate(world):
    w = world
    await chat_model(w)
    await w.quotas.create(Quota(id=Quota.doc_id("key", "k1"), project_id=PID, scope="key", target="k1",
                                limits=QuotaLimits(requests_per_minute=2)))
    await ask(w, "Who discovered penicillin?")
    assert (await ask(w, "Who discovered penicillin?"))[0].headers["x-gateway-cache"] == "hit"
    with pytest.raises(GatewayError) as refused:
        await ask(w, "Who discovered penicillin?")
    assert refused.value.status == 429 and chat_calls(w) == 1


async def test_embeddings_failure_is_a_miss_not_an_error(world):
    w = world
    await chat_model(w, semantic=True, embeddings_model="emb")
    w.upstream.fail_embeddings = True
    first, text = await ask(w, "How do I thicken a soup?")
    assert first.status_code == 200 and first.headers["x-gateway-cache"] == "miss"
    assert w.cache.failures == 1
    # the answer was still stored for exact matches
    assert (await ask(w, "How do I thicken a soup?"))[0].headers["x-gateway-cache"] == "hit"


async def test_no_cache_settings_no_header(world):
    w = world
    await w.models.create(Model(id="chat", project_id=PID, spec=ModelSpec(name="chat", backends=[backend()])))
    response, _ = await ask(w, "hello")
    assert "x-gateway-cache" not in response.headers
    assert "cache" not in (await rows(w))[0].attributes


def test_settings_are_bounded_and_semantic_needs_an_embeddings_model():
    with pytest.raises(ValueError):
        CacheSettings(enabled=True, semantic=True)
    with pytest.raises(ValueError):
        CacheSettings(similarity_threshold=1.5)
    with pytest.raises(ValueError):
        CacheSettings(vary_fields=["bad field!"])
