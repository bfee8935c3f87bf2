"""Pure logic of the models pillar: breaker states, backend order, quota leases, SSE relay."""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timezone

import pytest

from shared.pillars.models.domain import Backend
from shared.domain.quotas import Quota, QuotaLimits
from shared.domain.routing import BreakerPolicy
from shared.pillars.models.sse import SseRelay
from shared.quotas.enforcer import BudgetExhausted, QuotaEnforcer, RateLimited, window
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.routing.failover import plan


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_breaker_by_count_and_by_ratio():
    clock, p = Clock(), BreakerPolicy(failure_count=3, window_seconds=10, trip_seconds=5, min_calls=4,
                                      failure_ratio=0.5)
    b = Breakers(clock)
    for _ in range(2):
        b.record("x", p, failed=True)
    assert b.state("x", p) == "closed"
    b.record("x", p, failed=True)
    assert b.state("x", p) == "open" and not b.available("x", p)
    clock.t += 5
    assert b.available("x", p) and b.state("x", p) == "half_open"
    b.begin("x")
    assert not b.available("x", p)  # one probe at a time
    b.record("x", p, failed=False)
    assert b.state("x", p) == "closed"
    # ratio: 2 failures out of 4 calls (count threshold 3 not reached)
    for failed in (False, True, False, True):
        b.record("y", p, failed=failed)
    assert b.state("y", p) == "open"
    # old failures leave the window
    for _ in range(2):
        b.record("z", p, failed=True)
    clock.t += 11
    b.record("z", p, failed=True)
    assert b.state("z", p) == "closed"
    assert [e.transition for e in b.events][:3] == ["opened", "half_open", "closed"]


def test_retry_after_cool_down():
    clock, p = Clock(), BreakerPolicy()
    b = Breakers(clock)
    b.cool_down("x", 2)
    assert not b.available("x", p)
    clock.t += 2
    assert b.available("x", p)


def mk(bid: str, priority: int = 0, weight: int = 1) -> Backend:
    return Backend(id=bid, kind="openai", endpoint="https://example.com/v1", deployment="d", priority=priority,
                   weight=weight)


def test_plan_priority_then_weight():
    rng = random.Random(7)
    backends = [mk("low", 1), mk("a", 0, 3), mk("b", 0, 1)]
    firsts = Counter(plan(backends, rng)[0].id for _ in range(4000))
    assert firsts["low"] == 0 and 0.72 < firsts["a"] / 4000 < 0.78
    assert all(plan(backends, rng)[-1].id == "low" for _ in range(50))


def q(scope: str, target: str, **limits) -> Quota:
    return Quota(id=f"{scope}.{target}", project_id="p", scope=scope, target=target, limits=QuotaLimits(**limits))


async def test_leases_never_exceed_the_limit_across_instances():
    store = MemoryCounterStore()
    gateways = [QuotaEnforcer(store, lease_fraction=0.05) for _ in range(3)]
    quota = [q("project", "p", tokens_per_minute=10_000)]
    admitted = 0

    async def one(gw: QuotaEnforcer) -> None:
        nonlocal admitted
        try:
            await gw.admit(quota, tokens=37, cost_micros=0)
            admitted += 37
        except RateLimited:
            pass

    await asyncio.gather(*(one(gateways[i % 3]) for i in range(600)))
    assert admitted <= 10_000 and admitted >= 10_000 - 3 * 500  # at most one chunk stranded per instance
    assert store.calls < 100  # leased in chunks, not a round trip per request


async def test_settle_refunds_and_charges():
    store = MemoryCounterStore()
    gw = QuotaEnforcer(store, lease_fraction=0.1)
    quota = [q("key", "k", tokens_per_day=1000)]
    adm = await gw.admit(quota, tokens=100, cost_micros=0)
    gw.settle(adm, tokens=40, cost_micros=0)  # refund 60 locally
    counter = adm.taken[0][0]
    assert counter.local == 60
    adm = await gw.admit(quota, tokens=50, cost_micros=0)
    gw.settle(adm, tokens=2000, cost_micros=0)  # far above the estimate: charged to the shared row
    await gw.drain()
    with pytest.raises(BudgetExhausted):
        await gw.admit(quota, tokens=1, cost_micros=0)


async def test_refusal_releases_other_quotas():
    store = MemoryCounterStore()
    gw = QuotaEnforcer(store, lease_fraction=1.0)
    quotas = [q("project", "p", requests_per_minute=100), q("key", "k", requests_per_minute=1)]
    await gw.admit(quotas, tokens=0, cost_micros=0)
    with pytest.raises(RateLimited) as err:
        await gw.admit(quotas, tokens=0, cost_micros=0)
    assert err.value.headers["retry-after"]
    project_counter = next(c for c in gw._counters.values() if c.partition.endswith("project|p"))
    assert project_counter.remaining() == 99  # the refused call's request was given back


def test_windows():
    t = datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc)
    assert window("minute", t) == ("m202612312359", 30.0)
    assert window("day", t)[0] == "d20261231" and window("day", t)[1] == 30
    assert window("month", t) == ("mo202612", 30.0)


def test_sse_relay_strips_usage_and_keeps_events_whole():
    relay = SseRelay(strip_usage_chunk=True, collect_content=True)
    out = relay.feed(b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\ndata: {"choi')
    assert out == b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'  # the partial event waits
    out = relay.feed(b'ces":[{"delta":{"content":"lo"}}]}\r\n\r\ndata: {"choices":[],"usage":{"total_tokens":5}}\n\n'
                     b"data: [DONE]\n\n")
    assert b'"lo"' in out and b"usage" not in out and out.endswith(b"data: [DONE]\n\n")
    assert relay.tally.usage == {"total_tokens": 5} and relay.tally.done and "".join(relay.tally.content) == "Hello"


async def test_excess_usage_is_never_dropped_when_the_shared_row_is_briefly_unreachable():
    class Flaky(MemoryCounterStore):
        def __init__(self) -> None:
            super().__init__()
            self.fail_adds = 1

        async def add(self, partition, row, amount):
            if self.fail_adds:
                self.fail_adds -= 1
                raise OSError("contention / outage")
            return await super().add(partition, row, amount)

    store = Flaky()
    gw = QuotaEnforcer(store, lease_fraction=0.01)
    quota = [q("project", "p", tokens_per_minute=1000)]
    adm = await gw.admit(quota, tokens=10, cost_micros=0)
    gw.settle(adm, tokens=500, cost_micros=0)  # 490 over the estimate; the first write of it fails
    await gw.drain()
    counter = adm.taken[0][0]
    assert counter.debt > 0  # owed, not lost
    adm2 = await gw.admit(quota, tokens=10, cost_micros=0)  # the next lease pays the debt first
    assert counter.debt == 0
    assert sum(store.totals.values()) >= 500
    gw.release(adm2)
