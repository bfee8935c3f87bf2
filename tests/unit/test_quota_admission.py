"""Quota admission under hostile and bursty input: oversized calls never park a quota (issue 6 item 2), a refused
or failed admission hands back everything it took, and calls without max_tokens reserve a completion estimate so
a burst cannot overshoot a tokens-per-minute limit (item 16). Memory counter store, fixed clock."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.pillars.models.domain import ModelSpec
from shared.domain.quotas import Quota, QuotaLimits
from shared.errors import DependencyUnavailable, RequestExceedsQuota
from shared.quotas.enforcer import BudgetExhausted, QuotaEnforcer, RateLimited
from shared.quotas.store import MemoryCounterStore

NOON = datetime(2026, 11, 26, 12, 0, 5, tzinfo=timezone.utc)


def at_noon() -> datetime:
    return NOON


def q(scope: str, target: str, **limits) -> Quota:
    return Quota(id=f"{scope}.{target}", project_id="p", scope=scope, target=target, limits=QuotaLimits(**limits))


def gw(store: MemoryCounterStore, **kw) -> QuotaEnforcer:
    return QuotaEnforcer(store, clock=at_noon, **kw)


def row_total(store: MemoryCounterStore, partition_suffix: str) -> int:
    return sum(v for (p, _), v in store.totals.items() if p.endswith(partition_suffix))


async def test_an_oversized_call_is_refused_without_touching_the_shared_counter():
    store = MemoryCounterStore()
    day = [q("project", "p", tokens_per_day=100_000)]
    a, b = gw(store), gw(store)
    with pytest.raises(RequestExceedsQuota) as err:
        await a.admit(day, tokens=1_000_000_000, cost_micros=0)
    assert err.value.status == 400 and err.value.details["allowed"] == 100_000
    assert "max_tokens" in err.value.message
    await a.drain()
    assert store.calls == 0 and sum(store.totals.values()) == 0  # not one unit parked
    # every instance (this one and another) still admits normal calls for the rest of the day
    for instance in (a, b):
        adm = await instance.admit(day, tokens=1_000, cost_micros=0)
        instance.settle(adm, tokens=1_000, cost_micros=0)
    assert row_total(store, "project|p") <= 2 * 2_000 + 2_000  # two instances' chunks, nothing more


async def test_a_lease_never_takes_budget_a_call_cannot_use():
    # Another instance used 62 % of the day; a call needing more than what is left is refused, and the rest
    # stays available to everyone instead of being leased to the refused call.
    store = MemoryCounterStore()
    day = [q("project", "p", tokens_per_day=100_000)]
    other, me = gw(store), gw(store)
    await other.admit(day, tokens=60_000, cost_micros=0)
    before = row_total(store, "project|p")
    with pytest.raises(BudgetExhausted):
        await me.admit(day, tokens=50_000, cost_micros=0)
    assert row_total(store, "project|p") == before
    adm = await other.admit(day, tokens=30_000, cost_micros=0)  # still fits for everyone
    assert adm.taken[0][1] == 30_000


async def test_a_refusal_hands_back_partial_leases_on_the_calls_other_quotas():
    store = MemoryCounterStore()
    mine = [q("key", "k1", tokens_per_day=100_000), q("project", "p", tokens_per_day=100_000)]
    theirs = [q("key", "k2", tokens_per_day=100_000), q("project", "p", tokens_per_day=100_000)]
    me, other = gw(store), gw(store)
    await other.admit(theirs, tokens=60_000, cost_micros=0)
    with pytest.raises(BudgetExhausted):  # the key quota fits 50,000, the project no longer does
        await me.admit(mine, tokens=50_000, cost_micros=0)
    await me.drain()
    # the 50,000 leased on the key were handed back to the shared row, not parked in this instance's pool
    assert row_total(store, "key|k1") <= 2 * 2_000
    third = gw(store)  # a third instance can use the key's whole day
    adm = await third.admit([q("key", "k1", tokens_per_day=100_000)], tokens=95_000, cost_micros=0)
    assert adm.taken[0][1] == 95_000


async def test_an_error_midway_through_admission_hands_back_what_was_taken():
    class FailsOnSecondQuota(MemoryCounterStore):
        async def lease(self, partition, row, want, limit, *need):
            if partition.endswith("project|p"):
                raise DependencyUnavailable("Quota counters (Azure Tables) are unreachable.")
            return await super().lease(partition, row, want, limit, *need)

    store = FailsOnSecondQuota()
    enforcer = gw(store, lease_fraction=0.1)
    quotas = [q("key", "k", requests_per_minute=10, tokens_per_minute=1_000), q("project", "p", tokens_per_day=10)]
    with pytest.raises(DependencyUnavailable):
        await enforcer.admit(quotas, tokens=5, cost_micros=0)
    counters = {c.row.split(":")[0]: c for c in enforcer._counters.values() if c.partition.endswith("key|k")}
    assert counters["requests_per_minute"].local == counters["requests_per_minute"].total_seen  # all back
    assert counters["tokens_per_minute"].local == counters["tokens_per_minute"].total_seen


async def test_a_cancelled_admission_hands_back_what_was_taken():
    gate = asyncio.Event()

    class SlowProject(MemoryCounterStore):
        async def lease(self, partition, row, want, limit, *need):
            if partition.endswith("project|p"):
                await gate.wait()
            return await super().lease(partition, row, want, limit, *need)

    store = SlowProject()
    enforcer = gw(store)
    task = asyncio.create_task(enforcer.admit([q("key", "k", tokens_per_minute=1_000),
                                               q("project", "p", tokens_per_minute=1_000)], tokens=50, cost_micros=0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await enforcer.drain()
    key = next(c for c in enforcer._counters.values() if c.partition.endswith("key|k"))
    assert key.local == key.total_seen == row_total(store, "key|k") > 0  # every unit leased is free again


async def test_the_local_pool_still_serves_a_call_when_only_its_estimate_would_need_the_shared_row():
    class DownAfterFirstLease(MemoryCounterStore):
        async def lease(self, partition, row, want, limit, *need):
            if self.calls:
                raise DependencyUnavailable("Quota counters (Azure Tables) are unreachable.")
            return await super().lease(partition, row, want, limit, *need)

    enforcer = gw(DownAfterFirstLease(), lease_fraction=0.1)  # chunks of 1,000
    tpm = [q("project", "p", tokens_per_minute=10_000)]
    await enforcer.admit(tpm, tokens=100, cost_micros=0)
    # Storage is down now: a call whose need fits the local pool is admitted (its estimate shrinks to what is
    # there); one that needs the shared row fails closed, as before
    adm = await enforcer.admit(tpm, tokens=100, cost_micros=0, extra_tokens=5_000)
    assert adm.taken[0][1] == 900
    with pytest.raises(DependencyUnavailable):
        await enforcer.admit(tpm, tokens=100, cost_micros=0)


async def test_big_refunds_go_back_to_the_shared_row():
    store = MemoryCounterStore()
    day = [q("project", "p", tokens_per_day=100_000)]
    enforcer = gw(store)
    adm = await enforcer.admit(day, tokens=80_000, cost_micros=0)  # max_tokens far above what it used
    enforcer.settle(adm, tokens=500, cost_micros=0)
    await enforcer.drain()
    assert row_total(store, "project|p") <= 500 + 2 * 2_000  # the unused 79,500 are everyone's again
    adm = await gw(store).admit(day, tokens=90_000, cost_micros=0)
    assert adm.taken[0][1] == 90_000


async def test_a_failed_hand_back_is_kept_and_rides_on_the_next_lease():
    class NoAddsOnce(MemoryCounterStore):
        fail = 1

        async def add(self, partition, row, amount):
            if self.fail:
                self.fail -= 1
                raise DependencyUnavailable("Quota counters (Azure Tables) are unreachable.")
            return await super().add(partition, row, amount)

    store = NoAddsOnce()
    day = [q("project", "p", tokens_per_day=100_000)]
    enforcer = gw(store)
    adm = await enforcer.admit(day, tokens=80_000, cost_micros=0)
    enforcer.settle(adm, tokens=0, cost_micros=0)
    await enforcer.drain()  # the hand-back write fails: a credit is owed, nothing is lost
    counter = adm.taken[0][0]
    assert counter.debt < 0
    await enforcer.admit(day, tokens=counter.local + 1, cost_micros=0)  # needs a lease → pays the credit first
    assert counter.debt == 0 and row_total(store, "project|p") < 80_000


async def test_a_burst_without_max_tokens_does_not_overshoot_tokens_per_minute():
    # 3 instances, 300 concurrent calls of 100 prompt tokens that each end up using 250 tokens: reserving only
    # the prompt admitted ~100 calls (25,000 tokens against a 10,000 limit).
    store = MemoryCounterStore()
    limit, prompt, used = 10_000, 100, 250
    tpm = [q("project", "p", tokens_per_minute=limit)]
    instances = [gw(store, default_completion_tokens=150) for _ in range(3)]
    admitted: list[tuple[QuotaEnforcer, object]] = []

    async def call(enforcer: QuotaEnforcer) -> None:
        extra = enforcer.completion_estimate(0, None)  # no max_tokens in the request
        try:
            adm = await enforcer.admit(tpm, tokens=prompt, cost_micros=0, extra_tokens=extra)
        except RateLimited:
            return
        admitted.append((enforcer, adm))

    await asyncio.gather(*(call(instances[i % 3]) for i in range(300)))
    for enforcer, adm in admitted:  # every admitted call then reports its real usage
        enforcer.settle(adm, tokens=used, cost_micros=0)
    for enforcer in instances:
        await enforcer.drain()
    consumed = len(admitted) * used
    assert consumed <= limit * 1.03, f"{len(admitted)} calls used {consumed} tokens against {limit}"
    assert consumed >= limit * 0.85  # and the limit is still usable, not stranded in reservations
    assert row_total(store, "project|p") >= consumed  # the shared row knows the real usage


async def test_a_small_quota_still_admits_a_call_that_fits_without_its_completion_estimate():
    store = MemoryCounterStore()
    enforcer = gw(store)  # default estimate 256 > the whole limit
    adm = await enforcer.admit([q("model", "m", tokens_per_minute=60)], tokens=10, cost_micros=0,
                               extra_tokens=enforcer.completion_estimate(0, None))
    assert adm.taken[0][1] == 60  # the prompt plus as much of the estimate as there is room for


def test_completion_estimate_defaults_model_override_and_bounds(monkeypatch):
    enforcer = gw(MemoryCounterStore(), default_completion_tokens=500)
    assert enforcer.completion_estimate(0, None) == 500  # the gateway default
    assert enforcer.completion_estimate(0, 40) == 40  # the model's own estimate
    assert enforcer.completion_estimate(0, 0) == 0  # a model may opt out
    assert enforcer.completion_estimate(16, 40) == 0  # the call declared max_tokens: that is reserved instead
    assert QuotaEnforcer(MemoryCounterStore()).completion_estimate(0, None) == 256
    base = {"name": "m", "backends": [{"id": "a", "kind": "openai", "endpoint": "https://x.example/v1",
                                       "deployment": "d"}]}
    assert ModelSpec(**base, completion_estimate_tokens=1000).completion_estimate_tokens == 1000
    for bad in (-1, 200_001, 10**12):
        with pytest.raises(ValidationError):
            ModelSpec(**base, completion_estimate_tokens=bad)
    monkeypatch.setenv("QUOTA_DEFAULT_COMPLETION_TOKENS", "1024")
    assert Settings().quota_default_completion_tokens == 1024
    monkeypatch.setenv("QUOTA_DEFAULT_COMPLETION_TOKENS", "9999999")
    with pytest.raises(ValidationError):
        Settings()
