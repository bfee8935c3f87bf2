"""The registry-backed AgentDirectory the gateway resolves agents through: a bounded in-process cache (the same
propagation delay as flags and keys: FLAG_CACHE_TTL_SECONDS), fail-static for FAIL_STATIC_MAX_SECONDS while the
registry is unreachable, and the lifecycle rules of `check_invocable` on every resolve."""
from __future__ import annotations

import time
from collections.abc import Callable

from ...auth.principal import Principal
from ...errors import DependencyUnavailable, NotFound
from ...storage.repository import Repository
from .domain import INVOCABLE, Agent, Invocation, check_invocable, check_scope, visible_to

_MAX_ENTRIES = 4096


class RepositoryAgentDirectory:
    def __init__(self, agents: Repository[Agent], *, ttl: float, max_stale: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._agents, self._ttl, self._max_stale, self._clock = agents, ttl, max_stale, clock
        self._cache: dict[tuple[str, str], tuple[float, Agent | None]] = {}

    def invalidate(self, project_id: str, agent_id: str | None = None) -> None:
        for key in [k for k in self._cache if k[0] == project_id and (agent_id is None or k[1] == agent_id)]:
            self._cache.pop(key, None)

    async def _get(self, project_id: str, agent_id: str) -> Agent | None:
        key, now = (project_id, agent_id), self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            agent = await self._agents.find(project_id, agent_id)
        except DependencyUnavailable:
            if hit is not None and hit[0] + self._max_stale > now:
                return hit[1]  # fail-static: the last known answer, for a bounded time
            raise
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, agent)
        return agent

    async def resolve(self, project_id: str, agent_id: str, principal: Principal | None = None) -> Invocation:
        agent = await self._get(project_id, agent_id) if visible_to(principal, project_id) else None
        if agent is None:
            raise NotFound(f"agent '{agent_id}' does not exist.")
        check_scope(principal, agent_id)
        return check_invocable(agent)

    async def list_published(self, project_id: str) -> list[Agent]:
        out, cursor = [], None
        while True:
            page = await self._agents.list(project_id, limit=200, cursor=cursor)
            out += [a for a in page.items if a.lifecycle in INVOCABLE]
            if page.cursor is None:
                return sorted(out, key=lambda a: a.id)
            cursor = page.cursor
