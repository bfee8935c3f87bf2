"""Which guardrail policies apply to a call: a project's policies read (and compiled) once through the fail-static
cache, then filtered per call by (pillar, resource) and key. A change made through the admin API invalidates this
instance at once; other instances see it within the cache TTL (FLAG_CACHE_TTL_SECONDS)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..cache import FailStaticCache
from ..domain.base import Pillar
from ..storage.repository import Repository
from .policy import GuardrailPolicy

if TYPE_CHECKING:  # the engine (compiled checks) loads with the first policy read, not with the app
    from .engine import CompiledPolicy

log = logging.getLogger("gateway.guardrails")


class GuardrailBook:
    def __init__(self, repo: Repository[GuardrailPolicy], *, ttl: float, max_stale: float) -> None:
        self._repo = repo
        self._cache: FailStaticCache[str, list[tuple[GuardrailPolicy, CompiledPolicy]]] = FailStaticCache(
            self._load, ttl=ttl, max_stale=max_stale)

    async def _load(self, project_id: str) -> list[tuple[GuardrailPolicy, CompiledPolicy]]:
        from .engine import compile_policy

        out, cursor = [], None
        while True:
            page = await self._repo.list(project_id, limit=200, cursor=cursor)
            for p in page.items:
                if not p.spec.enabled:
                    continue
                try:
                    out.append((p, compile_policy(p)))
                except Exception as exc:  # noqa: BLE001 - one bad stored policy must not disable the others
                    log.error("guardrail policy %s/%s does not compile (%s); skipped", project_id, p.id, exc)
            if page.cursor is None:
                return out
            cursor = page.cursor

    async def for_resources(self, project_id: str, pillar: Pillar, resources: Sequence[str | None],
                            key_id: str | None) -> list[CompiledPolicy]:
        """The policies that apply to any of `resources` (a tool call: its toolbox and its tool), each once, in
        the project's order: one read of the project's policies, however many names."""
        return [c for p, c in await self._cache.get(project_id)
                if any(p.applies(pillar, r, key_id) for r in resources)]

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)
