"""A counter this instance consumes locally from budget it leased from the shared store.

The hot path only touches the local pool; a lease round trip happens when the pool runs dry, and a background
prefetch tops the pool up before that under steady load. Leases are conditional on the row's total staying
within the limit, so instances together never hand out more than the limit.
"""
from __future__ import annotations

import asyncio
import math

from .store import CounterStore


class LeasedCounter:
    def __init__(self, store: CounterStore, partition: str, row: str, limit: int, fraction: float) -> None:
        self._store = store
        self.partition, self.row, self.limit = partition, row, limit
        self.chunk = max(1, math.ceil(limit * fraction))
        self.local = 0  # units leased to this instance and not yet used
        self.total_seen = 0  # the shared total after our last lease
        self.exhausted = False  # the shared total reached the limit in this window: stop asking
        # Usage above estimates not yet added to the shared row. Kept until it lands (a failed or contended
        # write is retried with the next lease or charge), so no excess is ever silently dropped.
        self.debt = 0
        self._lock = asyncio.Lock()
        self._prefetch: asyncio.Task[None] | None = None
        self.ends_at = float("inf")  # monotonic time the window ends; set by the enforcer

    def remaining(self) -> int:
        return max(0, self.limit - self.total_seen + self.local)

    async def _pay_debt(self) -> None:
        """Add the accumulated excess in one write (caller holds the lock); on failure it stays owed."""
        if self.debt <= 0:
            return
        amount = self.debt
        total = await self._store.add(self.partition, self.row, amount)
        self.debt -= amount
        self.total_seen = max(self.total_seen, total)
        if total >= self.limit:
            self.exhausted = True

    async def _lease(self, want: int) -> None:
        await self._pay_debt()  # the lease must see the real total
        if self.exhausted:
            return
        granted, total = await self._store.lease(self.partition, self.row, want, self.limit)
        self.local += granted
        self.total_seen = max(self.total_seen, total)
        if granted < want:
            self.exhausted = True

    async def take(self, n: int) -> bool:
        if self.local < n and not self.exhausted:
            async with self._lock:
                if self.local < n and not self.exhausted:
                    await self._lease(max(self.chunk, n - self.local))
        if self.local < n:
            return False
        self.local -= n
        if self.local < self.chunk // 2 and not self.exhausted and (self._prefetch is None or self._prefetch.done()):
            self._prefetch = asyncio.create_task(self._top_up())
        return True

    async def _top_up(self) -> None:
        async with self._lock:
            if self.local < self.chunk // 2 and not self.exhausted:
                try:
                    await self._lease(self.chunk)
                except Exception:  # noqa: BLE001 - a failed prefetch is retried on demand by take()
                    pass

    def give_back(self, n: int) -> None:
        # Refunds stay in this instance's pool for the rest of the window (no round trip to return them).
        self.local += n

    async def charge(self, n: int) -> None:
        """Usage above what was admitted. From the local pool when it can, else owed to the shared total —
        the one source of overshoot, bounded by how far estimates undershoot real usage. Concurrent charges
        coalesce into one write (single flight with leases), which keeps contention on the shared row low."""
        if self.local >= n:
            self.local -= n
            return
        self.debt += n - self.local
        self.local = 0
        if self._lock.locked():
            return  # a lease or payment is in flight; it (or the next one) carries this debt
        async with self._lock:
            await self._pay_debt()
