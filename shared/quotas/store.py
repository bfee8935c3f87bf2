"""Shared quota counters in Azure Tables. Instances lease budget in chunks with ETag-conditional updates, so the
total handed out never exceeds the limit; the only overshoot comes from reconciling estimates with real usage."""
from __future__ import annotations

import asyncio
import random
from typing import Protocol

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from ..errors import DependencyUnavailable


class CounterStore(Protocol):
    async def lease(self, partition: str, row: str, want: int, limit: int, need: int = 0) -> tuple[int, int]:
        """Take up to `want` units if the row's total stays ≤ `limit` — nothing at all when fewer than `need`
        are left (a lease never parks budget it cannot use); return (granted, total after)."""

    async def add(self, partition: str, row: str, amount: int) -> int:
        """Unconditionally add (usage above the estimate; negative: leased units handed back, never taking the
        total below zero); return the new total."""

    async def read(self, partition: str, row: str) -> int:
        """The shared total, without taking or writing anything (0 for a window nobody used yet)."""


def grant(total: int, want: int, limit: int, need: int) -> int:
    """What a lease may take from a row at `total`: up to `want` within `limit`, all or nothing below `need`."""
    room = limit - total
    return max(0, min(want, room)) if room >= need else 0


def addition(total: int, amount: int) -> int:
    return max(amount, -total)  # a hand-back never takes the shared total below zero


class MemoryCounterStore:
    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], int] = {}
        self.calls = 0

    async def lease(self, partition: str, row: str, want: int, limit: int, need: int = 0) -> tuple[int, int]:
        self.calls += 1
        total = self.totals.get((partition, row), 0)
        granted = grant(total, want, limit, need)
        self.totals[(partition, row)] = total + granted
        return granted, total + granted

    async def add(self, partition: str, row: str, amount: int) -> int:
        self.calls += 1
        total = self.totals.get((partition, row), 0)
        self.totals[(partition, row)] = total + addition(total, amount)
        return self.totals[(partition, row)]

    async def read(self, partition: str, row: str) -> int:
        return self.totals.get((partition, row), 0)


class TableCounterStore:
    def __init__(self, table: TableClient, timeout: float) -> None:
        self._table = table
        self._timeout = timeout
        self._created = False

    async def _ensure(self) -> None:
        if not self._created:
            try:
                await self._table.create_table()
            except ResourceExistsError:
                pass
            self._created = True

    @staticmethod
    def _safe(key: str) -> str:
        # Table keys may not contain / \ # ? or control characters.
        return "".join(c if c not in "/\\#?" and c.isprintable() else f"%{ord(c):02X}" for c in key)

    async def _update(self, partition: str, row: str, change) -> tuple[int, int]:
        await self._ensure()
        partition, row = self._safe(partition), self._safe(row)
        for attempt in range(50):  # contention between instances: re-read and retry, with jittered backoff
            if attempt:
                await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * attempt)))
            try:
                entity = await self._table.get_entity(partition, row)
            except ResourceNotFoundError:
                delta = change(0)
                try:
                    await self._table.create_entity({"PartitionKey": partition, "RowKey": row, "total": delta})
                    return delta, delta
                except ResourceExistsError:
                    continue
            total = int(entity["total"])
            delta = change(total)
            if delta == 0:
                return 0, total
            entity["total"] = total + delta
            try:
                await self._table.update_entity(entity, etag=entity.metadata["etag"],
                                                match_condition=MatchConditions.IfNotModified)
                return delta, total + delta
            except ResourceModifiedError:
                continue
        raise DependencyUnavailable("Quota counter contention did not settle.", details={"dependency": "storage"})

    async def _bounded(self, coro):
        try:
            return await asyncio.wait_for(coro, self._timeout)
        except (asyncio.TimeoutError, HttpResponseError, OSError) as exc:
            raise DependencyUnavailable("Quota counters (Azure Tables) are unreachable.",
                                        details={"dependency": "storage", "reason": type(exc).__name__}) from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("aiohttp", "azure.core")):
                raise DependencyUnavailable("Quota counters (Azure Tables) are unreachable.",
                                            details={"dependency": "storage", "reason": type(exc).__name__}) from exc
            raise

    async def lease(self, partition: str, row: str, want: int, limit: int, need: int = 0) -> tuple[int, int]:
        return await self._bounded(self._update(partition, row, lambda total: grant(total, want, limit, need)))

    async def add(self, partition: str, row: str, amount: int) -> int:
        return (await self._bounded(self._update(partition, row, lambda total: addition(total, amount))))[1]

    async def read(self, partition: str, row: str) -> int:
        return await self._bounded(self._read(self._safe(partition), self._safe(row)))

    async def _read(self, partition: str, row: str) -> int:
        try:
            return int((await self._table.get_entity(partition, row))["total"])
        except ResourceNotFoundError:
            return 0
