"""Gateway CPU per call in process, Chat Completions vs the Responses API on the same models pipeline (memory
registry/counters/log, an httpx.MockTransport upstream, the tiktoken estimate), alternating, median of 7 × 2,000
calls each; plus a streamed Responses API call (9 typed events) and the GuardedResponsesSse window per event.

    .venv/bin/python bench/responses_overhead.py
"""
import asyncio, gc, statistics, sys, time
import httpx, orjson
sys.path.insert(0, ".")
from shared.auth.principal import Principal
from shared.config import Settings
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.flags.service import FlagService
from shared.pillars.models import responses_contracts
from shared.pillars.models.catalog import ModelCatalog
from shared.pillars.models.contracts import exchange
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Model, ModelSpec
from shared.pillars.models.openai_http import OpenAIHttp
from shared.pillars.models.spec import ModelsSpec
from shared.pillars.models.tokens import TokenEstimator
from shared.pipeline import Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog
from tests.support import fake_responses as rwire

PROMPT = "hello " * 40
CHAT = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
RESP = orjson.dumps(rwire.response("gpt-4o", {"input": PROMPT}, "hi there", rwire.usage({"input": PROMPT}, "hi there")))
EVENTS = b"".join(rwire.events("gpt-4o", {"input": PROMPT}, "hi there", rwire.usage({"input": PROMPT}, "hi there"), "resp_1"))


async def _events():
    yield EVENTS  # an open stream, as an upstream's


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/responses"):
        if b'"stream":true' in request.content:
            return httpx.Response(200, content=_events(), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, content=RESP, headers={"content-type": "application/json"})
    return httpx.Response(200, content=CHAT, headers={"content-type": "application/json"})


async def main():
    store = MemoryDocumentStore()
    models, quotas = Repository(store, Model), Repository(store, Quota)
    await models.create(Model(id="m", project_id="p", spec=ModelSpec(name="m", tokenizer="gpt-4o", backends=[
        {"id": "a", "kind": "openai_compatible", "endpoint": "https://up.example/v1", "deployment": "gpt-4o"}])))
    await quotas.create(Quota(id="key.k", project_id="p", scope="key", target="k", limits=QuotaLimits(
        requests_per_minute=10**9, tokens_per_minute=10**12)))
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    oa = OpenAIHttp(http, UpstreamCredentials(Settings(), TokenCache(lambda: None)))
    enforcer = QuotaEnforcer(MemoryCounterStore())
    usage = UsageLog(MemoryUsageSink(), flush_seconds=0.05)
    pipe = Pipeline(ModelsSpec(catalog=ModelCatalog(models, ttl=3600, max_stale=3600), http=oa, tokens=TokenEstimator(),
                               enforcer=enforcer), quotas=QuotaBook(quotas, ttl=3600, max_stale=3600), enforcer=enforcer,
                    breakers=Breakers(), usage=usage,
                    flags=FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=3600, max_stale=3600))
    p = Principal(kind="virtual_key", subject="k", project_id="p", key_id="k", key_prefix="sk-gw-x")
    chat_raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 20})
    resp_raw = orjson.dumps({"model": "m", "input": PROMPT, "max_output_tokens": 20})
    stream_raw = orjson.dumps({"model": "m", "input": PROMPT, "max_output_tokens": 20, "stream": True})

    async def chat(i):
        return await pipe.run(exchange("chat", chat_raw, None, principal=p, request_id=f"c{i}", headers={},
                                       started=time.perf_counter()))

    async def responses(i, raw=resp_raw):
        r = await pipe.run(responses_contracts.create(raw, principal=p, request_id=f"r{i}", headers={},
                                                      started=time.perf_counter()))
        if hasattr(r, "body_iterator"):
            async for _ in r.body_iterator:
                pass
        return r

    async def streamed(i):
        return await responses(i, stream_raw)

    for f in (chat, responses, streamed):
        for i in range(300):
            r = await f(i)
        assert r.status_code == 200
    gc.collect(); gc.freeze()
    runs = {"chat": [], "responses": [], "responses stream": []}
    for _ in range(7):
        for name, f in (("chat", chat), ("responses", responses), ("responses stream", streamed)):
            t = time.process_time()
            for i in range(2000):
                await f(i)
            runs[name].append((time.process_time() - t) / 2000 * 1e6)
            await usage.flush()
    for name, r in runs.items():
        print(f"{name:>17}: median {statistics.median(r):.1f} µs CPU/call, min {min(r):.1f} (7×2000)")
    await usage.close()
    await http.aclose()

asyncio.run(main())
