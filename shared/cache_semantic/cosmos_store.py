"""Cached answers in a Cosmos DB container partitioned by `/pk` = the cache scope.

`mode="vector"` (Azure): the container has a vector embedding policy on `/vector` (cosine, float32) and a
`quantizedFlat`/`diskANN` index (infra/modules/cosmos.bicep); the nearest entries come from one query ordered
by `VectorDistance`, which with the cosine function returns a similarity (higher is closer).
`mode="portable"` (the local Cosmos server, which has no `VectorDistance`): the scope's newest live entries,
at most `max_candidates`, are read and ranked here by cosine similarity — same answers, more RUs.

Every document is re-validated on read; one that does not validate is skipped (counted), never served. Expiry
is enforced on read (`expires_at`) as well as by the container's per-item `ttl`, so an emulator without TTL
still never serves a stale answer."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from azure.cosmos import exceptions
from pydantic import ValidationError

from .entry import CacheEntry
from .stores import rank

log = logging.getLogger(__name__)
_FIELDS = "c.id, c.pk, c.prompt, c.vector, c.answer, c.created_at, c.expires_at"


class CosmosCacheStore:
    def __init__(self, container: Callable[[], Awaitable[Any]], *, mode: Literal["vector", "portable"],
                 timeout: float = 2.0, max_candidates: int = 200, clock: Callable[[], float] = time.time) -> None:
        self._container = container
        self._mode = mode
        self._timeout = timeout
        self._max_candidates = max(1, min(max_candidates, 1000))
        self._clock = clock
        self.invalid_documents = 0

    async def get_exact(self, scope: str, key: str) -> CacheEntry | None:
        c = await self._container()
        try:
            doc = await asyncio.wait_for(c.read_item(key, partition_key=scope), self._timeout)
        except exceptions.CosmosResourceNotFoundError:
            return None
        entry = self._parse(doc)
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def nearest(self, scope: str, vector: Sequence[float], limit: int) -> list[tuple[CacheEntry, float]]:
        limit = max(1, min(limit, 50))
        params: list[dict[str, Any]] = [{"name": "@scope", "value": scope}, {"name": "@now", "value": self._clock()}]
        if self._mode == "vector":
            params.append({"name": "@v", "value": list(vector)})
            query = (f"SELECT TOP {limit} {_FIELDS}, VectorDistance(c.vector, @v) AS similarity FROM c "
                     "WHERE c.pk = @scope AND c.expires_at > @now ORDER BY VectorDistance(c.vector, @v)")
        else:
            query = (f"SELECT TOP {self._max_candidates} {_FIELDS} FROM c WHERE c.pk = @scope "
                     "AND c.expires_at > @now ORDER BY c.created_at DESC")
        docs = await asyncio.wait_for(self._query(query, params, scope), self._timeout)
        parsed = [(self._parse(d), d) for d in docs]
        if self._mode == "vector":
            return [(e, float(d["similarity"])) for e, d in parsed
                    if e is not None and isinstance(d.get("similarity"), (int, float))][:limit]
        return rank([e for e, _ in parsed if e is not None], vector, limit)

    async def put(self, entry: CacheEntry) -> None:
        doc = {**entry.model_dump(mode="json", exclude={"scope"}), "pk": entry.scope,
               "ttl": max(1, int(entry.expires_at - entry.created_at))}
        c = await self._container()
        await asyncio.wait_for(c.upsert_item(doc), self._timeout)

    async def _query(self, query: str, params: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
        c = await self._container()
        return [d async for d in c.query_items(query, parameters=params, partition_key=scope)]

    def _parse(self, doc: dict[str, Any]) -> CacheEntry | None:
        try:
            return CacheEntry.model_validate({**doc, "scope": doc.get("pk")})
        except ValidationError as exc:
            self.invalid_documents += 1
            log.warning("cache: skipped an invalid cached document %s (%d errors)", str(doc.get("id"))[:64],
                        exc.error_count())
            return None
