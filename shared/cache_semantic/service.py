"""The response cache in front of a chat call: exact match first, then (when on) the nearest cached prompt of
the same scope that clears the similarity threshold and survives the false-hit veto.

The cache is an optimisation, so it fails open: a store or embeddings failure is a miss (logged, counted),
never an error for the client."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import GatewayError
from .embedder import Embedder
from .entry import CachedAnswer, CacheEntry
from .keys import CacheKey, cache_key
from .settings import BYPASS_HEADER, CacheSettings
from .stores import CacheStore
from .veto import veto_reason

log = logging.getLogger(__name__)
Status = Literal["hit", "miss", "bypass"]
_CANDIDATES = 5  # the veto may refuse the best candidate and accept the next


@dataclass
class Lookup:
    status: Status
    key: CacheKey | None = None
    answer: CachedAnswer | None = None
    match: Literal["exact", "semantic"] | None = None
    similarity: float | None = None
    vetoed: list[str] = field(default_factory=list)  # veto reasons of close candidates that were refused
    vector: list[float] | None = None
    embedding_tokens: int = 0
    lookup_ms: float = 0.0

    def attributes(self) -> dict[str, Any]:
        """What the request log records about the cache (usage record attributes)."""
        out: dict[str, Any] = {"cache": self.status, "cache_lookup_ms": round(self.lookup_ms, 3)}
        if self.match:
            out["cache_match"] = self.match
        if self.similarity is not None:
            out["cache_similarity"] = round(self.similarity, 4)
        if self.vetoed:
            out["cache_vetoed"] = ",".join(sorted(set(self.vetoed)))
        if self.embedding_tokens:
            out["cache_embedding_tokens"] = self.embedding_tokens
        if self.status == "hit" and self.answer is not None:
            out["cache_saved_tokens"] = self.answer.prompt_tokens + self.answer.completion_tokens
        return out


def cacheable(body: dict[str, Any]) -> bool:
    """Only single-choice text answers are replayed; anything else goes upstream (status miss, never stored)."""
    n = body.get("n", 1)
    return isinstance(body.get("messages"), list) and (n in (None, 1))


class ResponseCache:
    def __init__(self, store: CacheStore, embedder: Embedder | None, *, clock: Callable[[], float] = time.time,
                 perf: Callable[[], float] = time.perf_counter) -> None:
        self._store, self._embedder = store, embedder
        self._clock, self._perf = clock, perf
        self.failures = 0  # store/embeddings failures served as misses

    async def lookup(self, settings: CacheSettings, *, project_id: str, key_id: str | None, model: str,
                     body: dict[str, Any], headers: dict[str, str]) -> Lookup:
        started = self._perf()
        result = await self._lookup(settings, project_id, key_id, model, body, headers)
        result.lookup_ms = (self._perf() - started) * 1000
        return result

    async def _lookup(self, settings: CacheSettings, project_id: str, key_id: str | None, model: str,
                      body: dict[str, Any], headers: dict[str, str]) -> Lookup:
        if settings.allow_bypass and headers.get(BYPASS_HEADER, "").strip().lower() == "bypass":
            return Lookup("bypass")
        if not cacheable(body):
            return Lookup("miss")
        key = cache_key(settings, project_id=project_id, key_id=key_id, model=model, body=body)
        try:
            entry = await self._store.get_exact(key.scope, key.exact)
            if entry is not None:
                return Lookup("hit", key, entry.answer, "exact", 1.0)
            if not settings.semantic or not key.prompt or len(key.prompt) > settings.max_prompt_chars:
                return Lookup("miss", key)
            assert settings.embeddings_model and self._embedder is not None
            emb = await self._embedder.embed(project_id, settings.embeddings_model, key.prompt)
            result = Lookup("miss", key, vector=emb.vector, embedding_tokens=emb.tokens)
            for candidate, similarity in await self._store.nearest(key.scope, emb.vector, _CANDIDATES):
                if similarity < settings.similarity_threshold:
                    break
                reason = veto_reason(candidate.prompt, key.prompt)
                if reason is None:
                    result.status, result.answer, result.match = "hit", candidate.answer, "semantic"
                    result.similarity = similarity
                    return result
                result.vetoed.append(reason)
            return result
        except (GatewayError, OSError, TimeoutError) as exc:
            return self._failed("lookup", exc, key)
        except Exception as exc:  # the Cosmos SDK's own errors: any of them is a miss, never a failed call
            return self._failed("lookup", exc, key)

    def _failed(self, what: str, exc: BaseException, key: CacheKey) -> Lookup:
        self.failures += 1
        log.warning("cache %s failed, served as a miss: %s", what, type(exc).__name__)
        return Lookup("miss", key)

    async def save(self, settings: CacheSettings, lookup: Lookup, answer: CachedAnswer) -> bool:
        """Store the upstream's answer after a miss; False when it was not stored (and why is logged)."""
        if lookup.status != "miss" or lookup.key is None or not answer.content:
            return False
        now = self._clock()
        entry = CacheEntry(id=lookup.key.exact, scope=lookup.key.scope, prompt=lookup.key.prompt[:100_000],
                           vector=lookup.vector, answer=answer, created_at=now, expires_at=now + settings.ttl_seconds)
        try:
            await self._store.put(entry)
            return True
        except Exception as exc:  # noqa: BLE001 — a lost cache write costs one future miss, nothing else
            self.failures += 1
            log.warning("cache store failed, answer not cached: %s", type(exc).__name__)
            return False
