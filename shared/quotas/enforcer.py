"""Admitting a call against every quota that applies (key, project, model) and settling it with real usage."""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..domain.quotas import Quota
from ..errors import Forbidden, GatewayError
from .leases import LeasedCounter
from .store import CounterStore


class RateLimited(GatewayError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"
    retryable = True


class BudgetExhausted(Forbidden):
    code = "budget_exhausted"


# metric → (window, kind, unit)
_METRICS = {
    "requests_per_minute": ("minute", "rate", "requests"),
    "tokens_per_minute": ("minute", "rate", "tokens"),
    "tokens_per_day": ("day", "budget", "tokens"),
    "tokens_per_month": ("month", "budget", "tokens"),
    "cost_per_month_usd": ("month", "budget", "cost"),
}


def window(kind: str, now: datetime) -> tuple[str, float]:
    """(window id, seconds until it ends). Fixed UTC windows: minute, day, month."""
    if kind == "minute":
        return now.strftime("m%Y%m%d%H%M"), 60 - now.second - now.microsecond / 1e6
    if kind == "day":
        return now.strftime("d%Y%m%d"), 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    nxt = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)
    return now.strftime("mo%Y%m"), (nxt - now).total_seconds()


@dataclass
class Admission:
    taken: list[tuple[LeasedCounter, int, str]] = field(default_factory=list)  # (counter, amount, unit)
    estimated_tokens: int = 0
    estimated_cost_micros: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class QuotaEnforcer:
    def __init__(self, store: CounterStore, *, lease_fraction: float = 0.02,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._store = store
        self._fraction = lease_fraction
        self._clock = clock
        self._counters: dict[tuple[str, str], LeasedCounter] = {}
        self._last_purge = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()

    def _counter(self, partition: str, metric: str, window_id: str, limit: int, left: float) -> LeasedCounter:
        key = (partition, f"{metric}:{window_id}")
        counter = self._counters.get(key)
        if counter is None or counter.limit != limit:
            counter = self._counters[key] = LeasedCounter(self._store, partition, key[1], limit, self._fraction)
            counter.ends_at = time.monotonic() + left
            self._purge()
        return counter

    def _purge(self) -> None:
        # Now and then drop counters whose window has ended (their budget is gone anyway).
        now = time.monotonic()
        if now - self._last_purge < 60:
            return
        self._last_purge = now
        for key in [k for k, c in self._counters.items() if c.ends_at < now]:
            del self._counters[key]

    async def admit(self, quotas: list[Quota], *, tokens: int, cost_micros: int) -> Admission:
        now = self._clock()
        adm = Admission(estimated_tokens=tokens, estimated_cost_micros=cost_micros)
        for quota in quotas:
            partition = f"{quota.project_id}|{quota.scope}|{quota.target}"
            for metric, (wkind, kind, unit) in _METRICS.items():
                limit = getattr(quota.limits, metric)
                if limit is None:
                    continue
                limit = int(limit * 1_000_000) if unit == "cost" else int(limit)
                amount = {"requests": 1, "tokens": tokens, "cost": cost_micros}[unit]
                wid, left = window(wkind, now)
                counter = self._counter(partition, metric, wid, limit, left)
                if not await counter.take(amount):
                    self.release(adm)
                    raise self._refusal(quota, metric, kind, unit, limit, left)
                adm.taken.append((counter, amount, unit))
                if kind == "rate":
                    name = f"x-ratelimit-remaining-{unit}"
                    remaining = counter.remaining()
                    adm.headers[name] = str(min(remaining, int(adm.headers.get(name, remaining))))
                    adm.headers[f"x-ratelimit-limit-{unit}"] = str(limit)
        return adm

    @staticmethod
    def _refusal(quota: Quota, metric: str, kind: str, unit: str, limit: int, left: float) -> GatewayError:
        where = f"{quota.scope} '{quota.target}'"
        if kind == "rate":
            return RateLimited(f"Rate limit {metric.replace('_', ' ')} ({limit}) reached for {where}.",
                               details={"quota": quota.id, "limit": metric},
                               headers={"retry-after": str(max(1, math.ceil(left))),
                                        f"x-ratelimit-remaining-{unit}": "0",
                                        f"x-ratelimit-limit-{unit}": str(limit)})
        code = "cost_budget_exhausted" if unit == "cost" else "budget_exhausted"
        return BudgetExhausted(f"The {metric.replace('_', ' ')} budget is used up for {where}.", code=code,
                               details={"quota": quota.id, "limit": metric})

    async def reserve_backend(self, key: str, capacity: int, tokens: int) -> LeasedCounter | None:
        """Take `tokens` from a backend's own per-minute capacity (shared across instances like any quota)."""
        wid, left = window("minute", self._clock())
        counter = self._counter(f"backend|{key}", "tokens_per_minute", wid, capacity, left)
        return counter if await counter.take(tokens) else None

    def reconcile(self, counter: LeasedCounter, taken: int, actual: int) -> None:
        if actual < taken:
            counter.give_back(taken - actual)
        elif actual > taken:
            task = asyncio.create_task(self._charge(counter, actual - taken))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def release(self, adm: Admission) -> None:
        """Undo an admission that never reached an upstream (refused elsewhere, or nothing was sent)."""
        for counter, amount, _ in adm.taken:
            counter.give_back(amount)
        adm.taken.clear()

    def settle(self, adm: Admission, *, tokens: int, cost_micros: int) -> None:
        """Reconcile with real usage, off the hot path: refunds locally, extra usage charged in the background."""
        for counter, amount, unit in adm.taken:
            if unit != "requests":
                self.reconcile(counter, amount, tokens if unit == "tokens" else cost_micros)

    @staticmethod
    async def _charge(counter: LeasedCounter, extra: int) -> None:
        try:
            await counter.charge(extra)
        except Exception:  # noqa: BLE001 - counters unreachable: the usage log still has the truth
            pass

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
