"""Where cached answers live. Two lookups: by exact key (a point read) and by nearest prompt vector in a scope.

- `MemoryCacheStore`: per-process, bounded; unit tests and a single worker.
- `CosmosCacheStore` (cosmos_store.py): Cosmos DB vector search (`VectorDistance`) in Azure, or a portable scan
  of the scope's partition with cosine similarity computed here (the local Cosmos server has no
  `VectorDistance`)."""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from .entry import CacheEntry


class CacheStore(Protocol):
    async def get_exact(self, scope: str, key: str) -> CacheEntry | None: ...

    async def nearest(self, scope: str, vector: Sequence[float], limit: int) -> list[tuple[CacheEntry, float]]:
        """The scope's live entries closest to `vector`, best first, with their cosine similarity."""

    async def put(self, entry: CacheEntry) -> None: ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return -1.0  # an entry embedded by another embeddings model: never similar
    # math.sumprod / math.hypot run in C: ~100x a Python loop over 1536 floats (bench/cache_overhead.py)
    na, nb = math.hypot(*a), math.hypot(*b)
    return math.sumprod(a, b) / (na * nb) if na and nb else 0.0


def rank(entries: list[CacheEntry], vector: Sequence[float], limit: int) -> list[tuple[CacheEntry, float]]:
    scored = [(e, cosine(e.vector, vector)) for e in entries if e.vector is not None]
    scored.sort(key=lambda pair: pair[1], reverse=True)
    return scored[:limit]


class MemoryCacheStore:
    def __init__(self, *, max_entries_per_scope: int = 1000, max_scopes: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._scopes: OrderedDict[str, OrderedDict[str, CacheEntry]] = OrderedDict()
        self._per_scope = max_entries_per_scope
        self._max_scopes = max_scopes
        self._clock = clock

    async def get_exact(self, scope: str, key: str) -> CacheEntry | None:
        entry = self._scopes.get(scope, {}).get(key)
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def nearest(self, scope: str, vector: Sequence[float], limit: int) -> list[tuple[CacheEntry, float]]:
        now = self._clock()
        live = [e for e in self._scopes.get(scope, {}).values() if e.expires_at > now]
        return rank(live, vector, limit)

    async def put(self, entry: CacheEntry) -> None:
        bucket = self._scopes.setdefault(entry.scope, OrderedDict())
        self._scopes.move_to_end(entry.scope)
        bucket[entry.id] = entry
        bucket.move_to_end(entry.id)
        while len(bucket) > self._per_scope:  # oldest write first: one scope cannot grow without bound
            bucket.popitem(last=False)
        while len(self._scopes) > self._max_scopes:
            self._scopes.popitem(last=False)
