"""Admitting a call against every quota that applies (key, project, model) and settling it with real usage."""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..domain.quotas import Quota
from ..errors import BudgetExhausted, CostBudgetExhausted, GatewayError, RateLimited, RequestExceedsQuota
from .leases import LeasedCounter
from .store import CounterStore

log = logging.getLogger("gateway.quotas")

# Completion tokens reserved for a call that sets no max_tokens, unless its model or the gateway says otherwise.
DEFAULT_COMPLETION_ESTIMATE = 256


# metric → (window, kind, unit)
_METRICS = {
    "requests_per_minute": ("minute", "rate", "requests"),
    "tokens_per_minute": ("minute", "rate", "tokens"),
    "tokens_per_day": ("day", "budget", "tokens"),
    "tokens_per_month": ("month", "budget", "tokens"),
    "cost_per_month_usd": ("month", "budget", "cost"),
}
_REMAINING = {unit: f"x-ratelimit-remaining-{unit}" for _, _, unit in _METRICS.values()}
_LIMIT = {unit: f"x-ratelimit-limit-{unit}" for _, _, unit in _METRICS.values()}


def window(kind: str, now: datetime) -> tuple[str, float]:
    """(window id, seconds until it ends). Fixed UTC windows: minute, day, month."""
    # Integer arithmetic, not strftime or zero-padded f-string fields: this runs for every call, and an aware
    # datetime's strftime costs ~8× more, a padded field ~4× (issue 13 profiles). For 4-digit years the digits
    # are exactly the padded ones ("m202611261729"); `_padded` keeps any other year identical too.
    y = now.year
    if y < 1000:
        return _padded(kind, now)
    if kind == "minute":
        return (f"m{y * 100000000 + now.month * 1000000 + now.day * 10000 + now.hour * 100 + now.minute}",
                60 - now.second - now.microsecond / 1e6)
    if kind == "day":
        return f"d{y * 10000 + now.month * 100 + now.day}", 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    return f"mo{y * 100 + now.month}", _month_left(now)


def _month_left(now: datetime) -> float:
    nxt = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)
    return (nxt - now).total_seconds()


def _padded(kind: str, now: datetime) -> tuple[str, float]:
    if kind == "minute":
        return (f"m{now.year:04d}{now.month:02d}{now.day:02d}{now.hour:02d}{now.minute:02d}",
                60 - now.second - now.microsecond / 1e6)
    if kind == "day":
        return f"d{now.year:04d}{now.month:02d}{now.day:02d}", 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    return f"mo{now.year:04d}{now.month:02d}", _month_left(now)


@dataclass
class Admission:
    taken: list[tuple[LeasedCounter, int, str]] = field(default_factory=list)  # (counter, amount, unit)
    estimated_tokens: int = 0
    estimated_cost_micros: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class QuotaEnforcer:
    def __init__(self, store: CounterStore, *, lease_fraction: float = 0.02,
                 default_completion_tokens: int = DEFAULT_COMPLETION_ESTIMATE,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._store = store
        self._default_completion = default_completion_tokens
        self._fraction = lease_fraction
        self._clock = clock
        self._counters: dict[tuple[str, str], LeasedCounter] = {}
        self._last_purge = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()
        # Counter writes deferred because the shared rows were unreachable (settled with the next lease); shown
        # in /readyz so an operator sees quota accounting lag during a Storage outage.
        self.deferred_charges = 0
        self.deferred_returns = 0

    @property
    def store(self) -> CounterStore:
        """The shared counter table, for pillars that count something else across instances (agent turns)."""
        return self._store

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

    def completion_estimate(self, requested: int, model_default: int | None) -> int:
        """Completion tokens to reserve, beyond what the call itself declares, for a call without max_tokens:
        the model's `completion_estimate_tokens`, else the gateway default. Reconciled with real usage after."""
        if requested:
            return 0
        return self._default_completion if model_default is None else model_default

    def _plan(self, quotas: list[Quota]) -> list[tuple[Quota, str, str, str, int]]:
        """(quota, metric, window kind, unit, limit) for every limit that applies."""
        out = []
        for quota in quotas:
            for metric, (wkind, _, unit) in _METRICS.items():
                limit = getattr(quota.limits, metric)
                if limit is not None:
                    out.append((quota, metric, wkind, unit, int(limit * 1_000_000) if unit == "cost" else int(limit)))
        return out

    async def admit(self, quotas: list[Quota], *, tokens: int, cost_micros: int, extra_tokens: int = 0,
                    extra_cost_micros: int = 0) -> Admission:
        """Admit a call needing `tokens` / `cost_micros` (prompt + the completion it declares) on every quota, also
        reserving up to `extra_*` more where available (a completion estimate for calls that declare none).
        All or nothing: a refusal, or any error on the way, hands back everything taken on every quota."""
        now = self._clock()
        need = {"requests": 1, "tokens": tokens, "cost": cost_micros}
        extra = {"requests": 0, "tokens": max(0, extra_tokens), "cost": max(0, extra_cost_micros)}
        plan = self._plan(quotas)
        for quota, metric, _, unit, limit in plan:
            if need[unit] > limit:  # can never fit: refused before any counter is touched
                raise RequestExceedsQuota(
                    f"This call needs {need[unit]} {unit} but the {metric.replace('_', ' ')} limit of "
                    f"{quota.scope} '{quota.target}' is {limit}; lower max_tokens / max_completion_tokens "
                    f"or the input.", details={"quota": quota.id, "limit": metric, "allowed": limit,
                                                "requested": need[unit]})
        adm = Admission(estimated_tokens=tokens, estimated_cost_micros=cost_micros)
        admitted = False
        windows: dict[str, tuple[str, float]] = {}  # one window computation per kind per call, not per metric
        remaining_of: dict[str, int] = {}  # rate unit → the smallest remainder over the quotas
        last: Quota | None = None
        partition = ""
        try:
            for quota, metric, wkind, unit, limit in plan:
                if quota is not last:
                    last, partition = quota, f"{quota.project_id}|{quota.scope}|{quota.target}"
                wid, left = windows.get(wkind) or windows.setdefault(wkind, window(wkind, now))
                counter = self._counter(partition, metric, wid, limit, left)
                got = counter.take_now(need[unit], need[unit] + extra[unit])  # no coroutine in the steady state
                if got is False:
                    got = await counter.take(need[unit], need[unit] + extra[unit])
                if got is None:
                    raise self._refusal(quota, metric, _METRICS[metric][1], unit, limit, left)
                adm.taken.append((counter, got, unit))
                if _METRICS[metric][1] == "rate":
                    remaining = counter.remaining()
                    low = remaining_of.get(unit)
                    remaining_of[unit] = remaining if low is None or remaining < low else low
                    adm.headers[_REMAINING[unit]] = str(remaining_of[unit])
                    adm.headers[_LIMIT[unit]] = str(limit)
            admitted = True
            return adm
        finally:
            if not admitted:
                self.release(adm)

    async def remaining(self, quotas: list[Quota]) -> list[tuple[Quota, str, int, int, float]]:
        """(quota, metric, limit, remaining, seconds until the window resets) for every limit of `quotas`, read
        from the shared counters without taking anything; budget this instance leased but has not used counts as
        remaining. Cost limits and remainders are in micro-dollars."""
        now, out = self._clock(), []
        for quota, metric, wkind, _, limit in self._plan(quotas):
            wid, left = window(wkind, now)
            partition, row = f"{quota.project_id}|{quota.scope}|{quota.target}", f"{metric}:{wid}"
            total = await self._store.read(partition, row)
            local = self._counters.get((partition, row))
            used = total - (local.local if local is not None else 0)
            out.append((quota, metric, limit, max(0, min(limit, limit - used)), left))
        return out

    @staticmethod
    def _refusal(quota: Quota, metric: str, kind: str, unit: str, limit: int, left: float) -> GatewayError:
        where = f"{quota.scope} '{quota.target}'"
        if kind == "rate":
            return RateLimited(f"Rate limit {metric.replace('_', ' ')} ({limit}) reached for {where}.",
                               details={"quota": quota.id, "limit": metric},
                               headers={"retry-after": str(max(1, math.ceil(left))),
                                        f"x-ratelimit-remaining-{unit}": "0",
                                        f"x-ratelimit-limit-{unit}": str(limit)})
        error = CostBudgetExhausted if unit == "cost" else BudgetExhausted
        return error(f"The {metric.replace('_', ' ')} budget is used up for {where}.",
                     details={"quota": quota.id, "limit": metric})

    async def reserve_backend(self, key: str, capacity: int, tokens: int,
                              extra_tokens: int = 0) -> tuple[LeasedCounter, int] | None:
        """Take `tokens` (and up to `extra_tokens` more) from a backend's own per-minute capacity, shared across
        instances like any quota → (counter, taken), or None when the backend cannot take this call now."""
        wid, left = window("minute", self._clock())
        counter = self._counter(f"backend|{key}", "tokens_per_minute", wid, capacity, left)
        got = counter.take_now(tokens, tokens + max(0, extra_tokens))
        if got is False:
            got = await counter.take(tokens, tokens + max(0, extra_tokens))
        return None if got is None else (counter, got)

    def reconcile(self, counter: LeasedCounter, taken: int, actual: int) -> None:
        if actual < taken:
            self._give_back(counter, taken - actual)
        elif actual > taken:
            self._spawn(self._charge(counter, actual - taken))

    def release(self, adm: Admission) -> None:
        """Undo an admission that never reached an upstream (refused elsewhere, or nothing was sent)."""
        for counter, amount, _ in adm.taken:
            self._give_back(counter, amount)
        adm.taken.clear()

    def _give_back(self, counter: LeasedCounter, amount: int) -> None:
        counter.give_back(amount)
        if counter.surplus() > 0:  # a big refund: hand it back to the shared row, off the hot path
            self._spawn(self._return(counter))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def settle(self, adm: Admission, *, tokens: int, cost_micros: int) -> None:
        """Reconcile with real usage, off the hot path: refunds locally, extra usage charged in the background."""
        for counter, amount, unit in adm.taken:
            if unit != "requests":
                self.reconcile(counter, amount, tokens if unit == "tokens" else cost_micros)

    async def _charge(self, counter: LeasedCounter, extra: int) -> None:
        try:
            await counter.charge(extra)
        except Exception:  # noqa: BLE001 - counters unreachable: owed (counter.debt), paid with the next lease
            self.deferred_charges += 1
            log.warning("quota charge deferred for %s/%s", counter.partition, counter.row, exc_info=True)

    async def _return(self, counter: LeasedCounter) -> None:
        try:
            await counter.return_surplus()
        except Exception:  # noqa: BLE001 - counters unreachable: the credit rides on the next lease
            self.deferred_returns += 1
            log.warning("quota hand-back deferred for %s/%s", counter.partition, counter.row, exc_info=True)

    def stats(self) -> dict[str, int]:
        failures = sum(c.lease_failures for c in self._counters.values())
        return {"counters": len(self._counters), "deferred_charges": self.deferred_charges,
                "deferred_returns": self.deferred_returns, "lease_failures": failures}

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
