"""The composition root's shutdown (one exit stack, reverse creation order, failures logged and counted) and the
counters that replace silent `except: pass` (deferred quota writes, lease failures, cache refresh-ahead)."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import pytest

from shared.cache import FailStaticCache
from shared.config import Settings
from shared.quotas.enforcer import QuotaEnforcer
from shared.services import Services


class Closing:
    def __init__(self, name: str, order: list[str], fail: bool = False) -> None:
        self.name, self.order, self.fail = name, order, fail

    async def close(self) -> None:
        self.order.append(self.name)
        if self.fail:
            raise OSError(f"{self.name} would not close")


async def test_shutdown_unwinds_in_reverse_order_and_a_failure_stops_nothing(caplog):
    order: list[str] = []
    store = Closing("store", order)
    services = Services(Settings(), store=store, storage=Closing("storage", order, fail=True))  # type: ignore[arg-type]
    services._on_close("request log", Closing("request log", order).close)  # created last → closed first
    with caplog.at_level(logging.WARNING, logger="gateway.services"):
        await services.close()
    assert order == ["request log", "storage", "store"]
    assert services.close_failures == 1 and "closing storage failed" in caplog.text


class Unreachable:
    async def lease(self, *a, **k):
        raise OSError("storage down")

    async def add(self, *a, **k):
        raise OSError("storage down")


async def test_counter_writes_that_fail_are_counted_not_swallowed():
    enforcer = QuotaEnforcer(Unreachable(), clock=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))
    counter = enforcer._counter("p|key|k", "tokens_per_minute", "m1", 1000, 60)
    enforcer.reconcile(counter, 10, 50)  # usage above the estimate, nothing local: charged in the background
    await enforcer.drain()
    assert enforcer.deferred_charges == 1 and counter.debt == 40  # owed, paid with the next lease
    counter.local = 100 * counter.chunk  # a big refund to hand back to the shared row: fails too
    enforcer._give_back(counter, 1)
    await enforcer.drain()
    assert enforcer.deferred_returns == 1
    stats = enforcer.stats()
    assert stats["deferred_charges"] == 1 and stats["deferred_returns"] == 1


async def test_a_lease_failure_is_counted():
    enforcer = QuotaEnforcer(Unreachable(), clock=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))
    counter = enforcer._counter("p|key|k", "tokens_per_minute", "m1", 1000, 60)
    with pytest.raises(OSError):
        await counter.take(5)  # the shared row is needed for this call: fail closed
    assert counter.lease_failures == 1 and enforcer.stats()["lease_failures"] == 1


async def test_a_failed_refresh_ahead_is_counted_and_the_value_keeps_serving():
    calls = {"n": 0}
    now = {"t": 0.0}

    async def load(key: str) -> str:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("registry down")
        return "v1"

    cache: FailStaticCache[str, str] = FailStaticCache(load, ttl=10, max_stale=600, clock=lambda: now["t"])
    assert await cache.get("k") == "v1"
    now["t"] = 9.9  # inside the refresh-ahead window: a background refresh starts and fails
    assert await cache.get("k") == "v1"
    for _ in range(5):
        await asyncio.sleep(0)
    assert cache.refresh_failures == 1


async def test_tool_quotas_name_an_existing_tool_and_the_tools_pillar_closes_with_the_app():
    """The tools pillar registers the `tool` quota scope (existence check on its registry) and opens its clients
    through the composition root's exit stack."""
    from shared.domain.quotas import QuotaLimits
    from shared.errors import NotFound
    from shared.pillars.tools.domain import PinnedDefinition, ToolDefinition
    from shared.storage.memory import MemoryDocumentStore

    services = Services(Settings(), store=MemoryDocumentStore())
    registry = services.quota_registry
    limits = QuotaLimits(requests_per_minute=5)
    with pytest.raises(NotFound):
        await registry.set("p1", "tool", "wx__forecast", limits)  # no such tool
    await services.tools.registry.tools.create(ToolDefinition(
        id="wx__forecast", project_id="p1", server_id="wx", original_name="forecast", name="wx__forecast",
        definition=PinnedDefinition(name="forecast")))
    saved = await registry.set("p1", "tool", "wx__forecast", limits)
    assert (saved.scope, saved.target) == ("tool", "wx__forecast")
    http = services.tools.upstream_http
    await services.close()
    assert http.is_closed and services.close_failures == 0
