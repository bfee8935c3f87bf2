"""The models pillar on the pipeline, in process: real ModelsSpec, OpenAIHttp over httpx.MockTransport, memory
registry/counters/log, injected clocks. What the integration tests prove against real processes, in ms."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx
import orjson
import pytest

from shared.auth.principal import Principal
from shared.config import Settings
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.errors import CapacityExhausted, ModelNotAllowed, ModelNotFound
from shared.flags.service import FlagService
from shared.pillars.models.catalog import ModelCatalog
from shared.pillars.models.contracts import parse
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

NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=timezone.utc)
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def sse(*, usage: bool) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in ("Hel", "lo")]
    if usage:
        chunks.append({"choices": [], "usage": USAGE})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


async def _chunked(data: bytes):
    for i in range(0, len(data), 40):  # an open stream, in pieces that split events
        yield data[i:i + 40]


class Upstream:
    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.stream_usage = True
        self.bodies: list[dict] = []
        self.usage = USAGE
        self.script: list[int] = []  # statuses answered once each, before `status`

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        host = request.url.host
        status = self.script.pop(0) if self.script else self.status.get(host, 200)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "busy"}})
        if body.get("stream"):
            asked = (body.get("stream_options") or {}).get("include_usage")
            return httpx.Response(200, content=_chunked(sse(usage=bool(asked) and self.stream_usage)),
                                  headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "Hello"}}],
                                         "usage": self.usage, "id": "x"}, headers={"openai-version": "2020-10-01"})


class NoToken:
    async def get_token(self, scope: str):
        raise RuntimeError("not used: the backends are keyless openai_compatible")


@pytest.fixture
async def gw():
    store = MemoryDocumentStore()
    models, quotas = Repository(store, Model), Repository(store, Quota)
    await models.create(Model(id="m", project_id="p", spec=ModelSpec(
        name="m", tokenizer="gpt-4o", input_price_per_1k=1.0, output_price_per_1k=2.0, backends=[
            {"id": "a", "kind": "openai_compatible", "endpoint": "https://a.example/v1", "deployment": "gpt-4o",
             "tpm_capacity": 60},
            {"id": "b", "kind": "openai_compatible", "endpoint": "https://b.example/v1", "deployment": "gpt-4o",
             "priority": 1}])))
    await models.create(Model(id="old", project_id="p", spec=ModelSpec(
        name="old", lifecycle="retired", backends=[{"id": "a", "kind": "openai", "endpoint": "https://a.example/v1",
                                                    "deployment": "x"}])))
    upstream = Upstream()
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    enforcer = QuotaEnforcer(MemoryCounterStore(), clock=lambda: NOW)
    catalog = ModelCatalog(models, ttl=60, max_stale=600)
    sink = MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    spec = ModelsSpec(catalog=catalog, http=OpenAIHttp(http, UpstreamCredentials(Settings(), TokenCache(NoToken))),
                      tokens=TokenEstimator(), enforcer=enforcer)
    pipeline = Pipeline(spec, quotas=QuotaBook(quotas, ttl=60, max_stale=600), enforcer=enforcer,
                        breakers=Breakers(), usage=usage,
                        flags=FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60,
                                          max_stale=600))

    async def call(body: dict, *, scopes=None):
        parsed, name = parse("chat", orjson.dumps(body), None)
        who = Principal(kind="virtual_key", subject="k", project_id="p", key_id="k", key_prefix="sk-gw-x",
                        scopes=scopes or {})
        return await pipeline.run(Exchange(Pillar.models, "chat", who, "r", parsed, {}, time.perf_counter(),
                                           resource=name))

    async def rows():
        await usage.flush()
        return sink.records

    yield call, upstream, rows, quotas
    await usage.close()
    await http.aclose()


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def test_a_call_is_relayed_settled_and_logged_with_its_token_columns(gw):
    call, upstream, rows, _ = gw
    r = await call(CHAT)
    assert r.status_code == 200 and r.headers["x-gateway-backend"] == "a"
    assert r.headers["openai-version"] == "2020-10-01" and upstream.bodies[0]["model"] == "gpt-4o"
    [row] = await rows()
    assert (row.pillar, row.resource, row.target, row.status) == ("models", "m", "a", 200)
    assert row.attributes == {**USAGE, "usage_estimated": False}
    assert row.cost_usd == pytest.approx((7 * 1.0 + 3 * 2.0) / 1000)
    entity = row.to_entity()
    assert entity["total_tokens"] == 10 and entity["resource"] == "m" and "attributes" not in entity


async def test_a_stream_asks_for_usage_and_strips_it_when_the_client_did_not(gw):
    call, upstream, rows, _ = gw
    r = await call({**CHAT, "stream": True})
    text = b"".join([c async for c in r.body_iterator])
    assert upstream.bodies[0]["stream_options"] == {"include_usage": True}
    assert b'"usage"' not in text and text.endswith(b"data: [DONE]\n\n")
    [row] = await rows()
    assert row.streamed and row.attributes["total_tokens"] == 10 and row.attributes["usage_estimated"] is False


async def test_a_stream_without_usage_is_counted_from_our_estimate(gw):
    call, upstream, rows, _ = gw
    upstream.stream_usage = False
    r = await call({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    _ = [c async for c in r.body_iterator]
    [row] = await rows()
    assert row.attributes["usage_estimated"] is True and row.attributes["completion_tokens"] >= 1


async def test_backend_capacity_fails_over_then_refuses_and_gives_back(gw):
    call, upstream, rows, quotas = gw
    await quotas.create(Quota(id="key.k", project_id="p", scope="key", target="k",
                              limits=QuotaLimits(requests_per_minute=4)))
    big = {**CHAT, "max_tokens": 40}  # ~48 tokens: backend a (60 TPM) holds one of these per minute
    upstream.usage = {"prompt_tokens": 8, "completion_tokens": 40, "total_tokens": 48}  # settles at 48 used
    assert (await call(big)).headers["x-gateway-backend"] == "a"
    assert (await call(big)).headers["x-gateway-backend"] == "b"  # a is full: skipped without an attempt
    upstream.status["b.example"] = 503
    r = await call(big)
    assert r.status_code == 503  # b's own answer is relayed (the last upstream answer)
    with pytest.raises(CapacityExhausted):  # a full, b cooling down after its 503
        await call(big)
    log = await rows()
    assert [x.target for x in log] == ["a", "b", "b", None] and log[1].attempts[0]["target"] == "b"
    assert log[2].error_code == "upstream_error" and log[2].attributes["total_tokens"] == 0  # nothing charged
    assert log[3].status == 429 and log[3].error_code == "backend_capacity_exhausted"
    # the refused call gave its request back: a 5th call fits the key's 4 requests per minute
    assert (await call({**CHAT, "max_tokens": 1})).headers["x-gateway-backend"] == "a"  # a still has ~12 left


async def test_unknown_retired_and_out_of_scope_models_are_refused_before_anything_is_taken(gw):
    call, upstream, rows, _ = gw
    with pytest.raises(ModelNotFound):
        await call({**CHAT, "model": "nope"})
    with pytest.raises(ModelNotFound):
        await call({**CHAT, "model": "old"})  # retired: not served
    with pytest.raises(ModelNotAllowed):
        await call(CHAT, scopes={Pillar.models: frozenset({"other"})})
    assert upstream.bodies == [] and await rows() == []


async def test_a_retry_on_the_same_backend_reuses_its_capacity_hold(gw):
    call, upstream, rows, _ = gw
    upstream.status["b.example"] = 500  # a first, then b: both fail once …
    upstream.script = [500]  # … a's first answer is a 500; the retry goes back to a (b is 500 too)
    upstream.usage = {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}
    r = await call({**CHAT, "max_tokens": 45})  # ~53 of a's 60 tokens per minute: a second hold would not fit
    log = await rows()
    assert r.status_code == 200 and r.headers["x-gateway-backend"] == "a", [x.attempts for x in log]
    assert [a["target"] for a in log[0].attempts] == ["a", "b", "a"]
    assert (await call({**CHAT, "max_tokens": 40})).headers["x-gateway-backend"] == "a"  # settled to 9 used
