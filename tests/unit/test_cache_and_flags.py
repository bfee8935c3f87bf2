"""Fail-static cache and pillar flags, on the in-memory store with a controllable clock."""
from __future__ import annotations

import asyncio

import pytest

from shared.cache import FailStaticCache
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, PillarState, Project
from shared.errors import DependencyUnavailable, NotFound, PillarDisabled
from shared.flags.service import FlagService
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_fresh_then_reload_then_fail_static_then_fail_closed():
    clock, calls, state = Clock(), [], {"up": True, "value": 1}

    async def load(key: str) -> int:
        calls.append(key)
        if not state["up"]:
            raise DependencyUnavailable("down")
        return state["value"]

    cache = FailStaticCache(load, ttl=5, max_stale=60, clock=clock)
    assert await cache.get("a") == 1 and await cache.get("a") == 1 and len(calls) == 1  # fresh: no reload
    state["value"] = 2
    clock.now += 5
    assert await cache.get("a") == 2 and len(calls) == 2  # TTL elapsed: reloaded
    state["up"] = False
    clock.now += 30
    assert await cache.get("a") == 2 and cache.stale_served == 1  # outage: last good value
    clock.now += 40  # 70 s past the last load > ttl + max_stale
    with pytest.raises(DependencyUnavailable):
        await cache.get("a")
    state["up"] = True
    assert await cache.get("a") == 2  # recovery is automatic


async def test_cache_single_flight():
    started = 0
    release = asyncio.Event()

    async def load(key: str) -> str:
        nonlocal started
        started += 1
        await release.wait()
        return key.upper()

    cache = FailStaticCache(load, ttl=5, max_stale=0)
    tasks = [asyncio.create_task(cache.get("k")) for _ in range(20)]
    await asyncio.sleep(0.01)
    release.set()
    assert set(await asyncio.gather(*tasks)) == {"K"} and started == 1


@pytest.fixture
def world():
    store, clock = MemoryDocumentStore(), Clock()
    projects, globals_ = Repository(store, Project), Repository(store, GlobalFlags)
    flags = FlagService(projects, globals_, ttl=5, max_stale=300, clock=clock)
    return store, clock, projects, globals_, flags


async def test_project_flag_disable_and_enable(world):
    store, clock, projects, _, flags = world
    await projects.create(Project(id="acme", name="Acme", pillars={Pillar.models: PillarState(enabled=True)}))
    await flags.check("acme", Pillar.models)
    with pytest.raises(PillarDisabled):
        await flags.check("acme", Pillar.tools)  # not opted in
    await projects.update("acme", "acme", lambda p: setattr(p.pillars[Pillar.models], "enabled", False))
    await flags.check("acme", Pillar.models)  # still cached on this instance ...
    clock.now += 5  # ... until the TTL: the documented propagation bound
    with pytest.raises(PillarDisabled) as err:
        await flags.check("acme", Pillar.models)
    assert err.value.code == "pillar_disabled" and err.value.status == 403
    with pytest.raises(NotFound):
        await flags.check("nobody", Pillar.models)


async def test_global_kill_switch_wins(world):
    store, clock, projects, globals_, flags = world
    await projects.create(Project(id="acme", name="Acme", pillars={Pillar.models: PillarState(enabled=True)}))
    await globals_.create(GlobalFlags())
    await globals_.update("_global", GlobalFlags.DOC_ID, lambda g: setattr(g.pillars[Pillar.models], "enabled", False))
    flags.invalidate(None)  # the writing instance drops its entry at once
    with pytest.raises(PillarDisabled) as err:
        await flags.check("acme", Pillar.models)
    assert err.value.code == "pillar_disabled_globally"


async def test_flags_fail_static_during_outage(world):
    store, clock, projects, _, flags = world
    await projects.create(Project(id="acme", name="Acme", pillars={Pillar.models: PillarState(enabled=True)}))
    await flags.check("acme", Pillar.models)
    store.available = False
    clock.now += 200
    await flags.check("acme", Pillar.models)  # served from cache
    clock.now += 200
    with pytest.raises(DependencyUnavailable):
        await flags.check("acme", Pillar.models)


async def test_refresh_ahead_serves_current_value_and_reloads_in_background():
    clock, state, calls = Clock(), {"value": 1}, []

    async def load(key: str) -> int:
        calls.append(key)
        return state["value"]

    cache = FailStaticCache(load, ttl=4, max_stale=0, clock=clock)
    assert await cache.get("k") == 1
    state["value"] = 2
    clock.now += 3.5  # past the (jittered, ≤ 85 %) refresh point: still answered from memory, reload behind it
    assert await cache.get("k") == 1
    await asyncio.sleep(0)  # let the background reload run
    await asyncio.sleep(0)
    assert len(calls) == 2 and await cache.get("k") == 2  # refreshed without any caller waiting


async def test_an_invalidation_during_a_load_is_never_undone_by_that_older_load():
    # A refresh-ahead reload that read the store BEFORE an admin's change, and finishes after the change's
    # invalidate(), must neither be stored nor be what the next caller gets (the change is seen at once).
    clock, state = Clock(), {"value": "old"}
    started, release = asyncio.Event(), asyncio.Event()

    async def load(key: str) -> str:
        value = state["value"]  # read now...
        started.set()
        await release.wait()  # ...answered later
        return value

    cache = FailStaticCache(load, ttl=10, max_stale=60, clock=clock)
    release.set()
    assert await cache.get("k") == "old"
    release.clear()
    started.clear()
    clock.now += 9  # past refresh-ahead: the caller gets the current value, a reload starts in the background
    assert await cache.get("k") == "old"
    await started.wait()  # the reload has read "old"
    state["value"] = "new"
    cache.invalidate("k")  # the admin API's change on this instance
    release.set()
    assert await cache.get("k") == "new"  # a fresh load, not the in-flight older one
    await asyncio.sleep(0)
    assert await cache.get("k") == "new"  # and the older load did not overwrite it when it finished
