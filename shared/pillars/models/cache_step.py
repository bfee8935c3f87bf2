"""The response cache as a pipeline step of the models pillar (shared/pipeline/steps.py).

before: a chat call to a model with `cache.enabled` is looked up. A hit short-circuits the pipeline — no token
        admission, no upstream — but still takes one request from the caller's request-rate quotas (and is
        refused with 429 when there is none left): a cache must not become a way around a rate limit.
after:  on a miss the upstream's answer is stored (non-streamed: from the body; streamed: from the relayed
        deltas once the stream completed cleanly). Every answer carries `x-gateway-cache: hit|miss|bypass`
        and the request log row carries the lookup's attributes (`cache`, `cache_match`, similarity, vetoes,
        lookup latency, tokens saved)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from shared.cache_semantic import replay
from shared.cache_semantic.entry import CachedAnswer
from shared.cache_semantic.service import Lookup, ResponseCache
from shared.cache_semantic.settings import CacheSettings
from shared.pipeline.exchange import Exchange, Relayed

from .contracts import CLIENT_ASKED_USAGE
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer

log = logging.getLogger(__name__)
HEADER = "x-gateway-cache"
# Set by a step before this one to key the cache more finely than by model (an A/B variant: experiment_step.py).
SCOPE_MODEL = "cache.scope_model"


class CacheStep:
    name = "cache"

    def __init__(self, cache: ResponseCache, *, quotas: QuotaBook, enforcer: QuotaEnforcer) -> None:
        self._cache, self._quotas, self._enforcer = cache, quotas, enforcer
        self._saving: set[asyncio.Task[bool]] = set()  # strong references until each write ends

    @staticmethod
    def settings(x: Exchange) -> CacheSettings | None:
        spec = getattr(x.entity, "spec", None)
        cache = getattr(spec, "cache", None)
        return cache if x.operation == "chat" and cache is not None and cache.enabled else None

    async def before(self, x: Exchange) -> Relayed | None:
        settings = self.settings(x)
        if settings is None:
            return None
        p = x.principal
        lookup = await self._cache.lookup(settings, project_id=p.project_id or "", key_id=p.key_id,
                                          model=x.scratch.get(SCOPE_MODEL, x.resource), body=x.request,
                                          headers=dict(x.headers))
        x.scratch["cache"] = lookup
        x.attributes.update(lookup.attributes())
        if lookup.status != "hit" or lookup.answer is None:
            return None
        headers = await self._count_request(x)
        headers[HEADER] = "hit"
        x.attributes.update({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        if x.stream:  # the validated flags (contracts.exchange), never the raw body's
            asked_usage = bool(x.scratch.get(CLIENT_ASKED_USAGE))
            return Relayed(200, {**headers, "cache-control": "no-cache"},
                           chunks=_aiter(replay.stream(lookup.answer, x.request_id, x.resource,
                                                       include_usage=asked_usage)),
                           media_type="text/event-stream")
        return Relayed(200, headers, body=orjson.dumps(replay.completion(lookup.answer, x.request_id, x.resource)),
                       media_type="application/json")

    async def _count_request(self, x: Exchange) -> dict[str, str]:
        """One request on the request-rate quotas (none of the token/cost ones): admitted and settled at once."""
        p = x.principal
        quotas = await self._quotas.for_call(p.project_id or "", p.key_id, x.pillar, x.resource)
        admission = await self._enforcer.admit(quotas, tokens=0, cost_micros=0)
        self._enforcer.settle(admission, tokens=0, cost_micros=0)  # keeps the request, returns nothing else
        return dict(admission.headers)

    def after(self, x: Exchange, relayed: Relayed) -> Relayed:
        lookup: Lookup | None = x.scratch.get("cache")
        if lookup is None:
            return relayed
        relayed.headers[HEADER] = lookup.status
        settings = self.settings(x)
        if lookup.status != "miss" or settings is None or relayed.status >= 300:
            return relayed
        if relayed.chunks is not None:
            relayed.chunks = self._save_after_stream(x, settings, lookup, relayed.chunks)
        elif relayed.body is not None:
            answer = _answer_from_body(relayed.body, x.resource)
            if answer is not None:
                self._spawn(self._cache.save(settings, lookup, answer))
        return relayed

    async def _save_after_stream(self, x: Exchange, settings: CacheSettings, lookup: Lookup,
                                 chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        relay = x.scratch.get("relay")
        # only a stream that completed cleanly is worth replaying
        if relay is not None and relay.tally.done and x.error_code is None and relay.tally.content:
            usage = relay.tally.usage or {}
            await self._cache.save(settings, lookup, CachedAnswer(
                content="".join(relay.tally.content), model=x.resource,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def drain(self) -> None:
        """Wait for pending cache writes (tests, shutdown)."""
        while self._saving:
            await asyncio.gather(*list(self._saving), return_exceptions=True)


def _answer_from_body(body: bytes, model: str) -> CachedAnswer | None:
    try:
        data = orjson.loads(body)
        choice = data["choices"][0]
        content = choice["message"]["content"]
        if not isinstance(content, str) or choice["message"].get("tool_calls"):
            return None  # tool calls are not replayed: their effect belongs to this conversation
        usage = data.get("usage") or {}
        return CachedAnswer(content=content, finish_reason=str(choice.get("finish_reason") or "stop")[:32],
                            model=str(data.get("model") or model)[:256],
                            prompt_tokens=int(usage.get("prompt_tokens") or 0),
                            completion_tokens=int(usage.get("completion_tokens") or 0))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        return None


async def _aiter(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
