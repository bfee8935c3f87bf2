"""A small read-through cache for rarely-changing registry data on the hot path (flags, keys, projects).

- fresh for `ttl` seconds: no storage round trip;
- refresh-ahead: once an entry is past 50–85 % of its TTL (jittered per entry), a background reload starts (single flight) while callers
  keep getting the current value, so under steady traffic no request waits on storage and a change is still
  seen within `ttl`;
- past `ttl`, one caller reloads (single flight) while concurrent callers wait for that same load;
- fail-static: when the load fails with DependencyUnavailable, the last good value keeps being served for up to
  `max_stale` seconds past its freshness, then the error surfaces (fail closed);
- bounded: negative answers (the loader returned None: "no such key/project") live in their own, smaller table,
  so a flood of unknown keys can only evict other negative entries — never a known one that fail-static must
  keep serving through an outage. Each table evicts its oldest load first.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import DependencyUnavailable

log = logging.getLogger("gateway.cache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    loaded_at: float
    refresh_after: float  # age at which a background refresh starts: jittered, so entries loaded together
    # (key, project, flags, catalog, quotas) do not all reload — and burn CPU on the loop — in the same tick


class FailStaticCache(Generic[K, V]):
    def __init__(self, loader: Callable[[K], Awaitable[V]], *, ttl: float, max_stale: float,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000,
                 max_negative_entries: int = 10_000) -> None:
        self._loader = loader
        self._ttl = ttl
        self._max_stale = max_stale
        self._clock = clock
        self._max_entries = max(1, max_entries)
        self._max_negative = max(1, max_negative_entries)
        self._entries: dict[K, _Entry[V]] = {}
        self._negative: dict[K, _Entry[V]] = {}  # loads that returned None; bounded on their own
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self.stale_served = 0  # how often fail-static answered; exposed for health/metrics
        self.refresh_failures = 0  # refresh-ahead loads that failed (the stale value kept serving)
        self._background: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V:
        entry = self._entries.get(key) or self._negative.get(key)
        now = self._clock()
        if entry is not None and now - entry.loaded_at < self._ttl:
            if now - entry.loaded_at >= entry.refresh_after and key not in self._inflight:
                task = asyncio.create_task(self._refresh(key))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return entry.value
        return await self._load_now(key, entry, now)

    async def _refresh(self, key: K) -> None:
        try:
            await self._load_now(key, self._entries.get(key) or self._negative.get(key), self._clock())
        except Exception:  # noqa: BLE001 - a failed refresh-ahead is retried by the next caller
            self.refresh_failures += 1
            log.debug("cache refresh-ahead failed for %r", key, exc_info=True)

    async def _load_now(self, key: K, entry: "_Entry[V] | None", now: float) -> V:
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        current = True
        try:
            value = await self._loader(key)
        except DependencyUnavailable as exc:
            if entry is not None and now - entry.loaded_at < self._ttl + self._max_stale:
                self.stale_served += 1
                fut.set_result(entry.value)
                return entry.value
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            # invalidate() during the load dropped this flight: what it read may predate the change, so it is
            # neither stored nor allowed to end a newer flight (the callers already waiting on it still get it).
            current = self._inflight.get(key) is fut
            if current:
                del self._inflight[key]
        if current:
            self._store(key, _Entry(value, self._clock(), self._ttl * random.uniform(0.5, 0.85)))
        fut.set_result(value)
        return value

    def _store(self, key: K, entry: "_Entry[V]") -> None:
        self._entries.pop(key, None)  # re-inserted last: insertion order is load order, and a key lives in one table
        self._negative.pop(key, None)
        table, limit = ((self._negative, self._max_negative) if entry.value is None
                        else (self._entries, self._max_entries))
        while len(table) >= limit:
            del table[next(iter(table))]  # the oldest load of the same kind
        table[key] = entry

    def __len__(self) -> int:
        return len(self._entries) + len(self._negative)

    def invalidate(self, key: K) -> None:
        """Forget `key`: the next caller loads it again — also when a load is in flight, which may have read the
        store before the change that calls this (that older load is then neither stored nor shared)."""
        self._entries.pop(key, None)
        self._negative.pop(key, None)
        self._inflight.pop(key, None)
