"""A counter this instance consumes locally from budget it leased from the shared store.

The hot path only touches the local pool; a lease round trip happens when the pool runs dry, and a background
prefetch tops the pool up before that under steady load. Leases are conditional on the row's total staying
within the limit, so instances together never hand out more than the limit.
"""
from __future__ import annotations

import asyncio
import logging
import math

from .store import CounterStore

log = logging.getLogger("gateway.quotas")


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
        self.lease_failures = 0  # leases/prefetches the shared row did not answer (QuotaEnforcer.stats)

    def remaining(self) -> int:
        return max(0, self.limit - self.total_seen + self.local)

    async def _pay_debt(self) -> None:
        """Settle with the shared row in one write (caller holds the lock): excess usage owed (debt > 0) or
        leased units handed back (debt < 0). On failure it stays owed and rides on the next lease."""
        if self.debt == 0:
            return
        amount = self.debt
        total = await self._store.add(self.partition, self.row, amount)
        self.debt -= amount
        # Under the lock our writes are serialised, so this read is the freshest view of the shared total.
        self.total_seen = total
        self.exhausted = total >= self.limit

    async def _lease(self, want: int, need: int) -> None:
        await self._pay_debt()  # the lease must see the real total
        if self.exhausted:
            return
        granted, total = await self._store.lease(self.partition, self.row, want, self.limit, need)
        self.local += granted
        self.total_seen = max(self.total_seen, total)
        if total >= self.limit:
            self.exhausted = True

    async def take(self, need: int, want: int | None = None) -> int | None:
        """Take `need` units — and up to `want` if they are there (an estimate the call may or may not use).
        Returns how many were taken, or None when `need` does not fit (then nothing was taken). A lease asks the
        shared row only for what this call (plus one chunk for the next calls) can use, and only when `need`
        fits: a call that cannot be admitted never parks budget other instances need."""
        want = max(need, want if want is not None else need)
        if need > self.limit:
            return None  # can never fit in this window: refused without touching the shared row
        if self._wants_lease(want):
            async with self._lock:
                if self.local < want and (not self.exhausted or self.debt < 0):
                    try:
                        await self._lease(max(self.chunk, want - self.local), need - self.local)
                    except Exception:  # noqa: BLE001 - counted; re-raised when this call needs the row
                        self.lease_failures += 1
                        if self.local < need:
                            raise  # the shared row is needed for this call: fail closed
                        # only the optional part is missing; the local pool serves the call through an outage
                        log.debug("quota lease failed for %s/%s", self.partition, self.row, exc_info=True)
        return self._take_local(need, want)

    def _wants_lease(self, want: int) -> bool:
        return self.local < want and (not self.exhausted or self.debt < 0)

    def take_now(self, need: int, want: int | None = None) -> int | None | bool:
        """`take` without a coroutine when it would not ask the shared row (the steady state: the local pool
        covers the call, or the window is used up) — the same answer `take` gives then; `False` when a lease is
        needed (then await `take`)."""
        want = max(need, want if want is not None else need)
        if need > self.limit:
            return None
        if self._wants_lease(want):
            return False
        return self._take_local(need, want)

    def _take_local(self, need: int, want: int) -> int | None:
        if self.local < need:
            return None
        got = min(want, self.local)
        self.local -= got
        if self.local < self.chunk // 2 and not self.exhausted and (self._prefetch is None or self._prefetch.done()):
            self._prefetch = asyncio.create_task(self._top_up())
        return got

    async def _top_up(self) -> None:
        async with self._lock:
            if self.local < self.chunk // 2 and not self.exhausted:
                try:
                    await self._lease(self.chunk, 0)
                except Exception:  # noqa: BLE001 - a failed prefetch is retried on demand by take()
                    self.lease_failures += 1  # counted (readiness), logged at debug: an outage would flood
                    log.debug("quota prefetch failed for %s/%s", self.partition, self.row, exc_info=True)

    def give_back(self, n: int) -> None:
        # Refunds stay in this instance's pool (no round trip); a pool grown far past one chunk (a big refund)
        # is trimmed back to the shared row by `return_surplus`, which the enforcer schedules.
        self.local += n

    def surplus(self) -> int:
        """Units held beyond what this instance should keep between leases (more than two chunks)."""
        return self.local - self.chunk if self.local > 2 * self.chunk else 0

    async def return_surplus(self) -> None:
        """Hand units this instance will not need back to the shared row, so other instances can use them."""
        async with self._lock:
            n = self.surplus()
            if n <= 0:
                return
            self.local -= n
            self.debt -= n  # a credit: paid now, or with the next lease if this write fails
            await self._pay_debt()

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
