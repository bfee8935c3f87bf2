"""Which quotas apply to a call: the project's, the key's and the resource's (pillar, name) — read through the
fail-static cache. Registry writes that change quotas call `invalidate`."""
from __future__ import annotations

from ..cache import FailStaticCache
from ..domain.base import Pillar
from ..domain.quotas import RESOURCE_SCOPES, Quota
from ..storage.repository import Repository


class QuotaBook:
    def __init__(self, repo: Repository[Quota], *, ttl: float, max_stale: float) -> None:
        self._repo = repo
        self._cache: FailStaticCache[str, list[Quota]] = FailStaticCache(self._load, ttl=ttl, max_stale=max_stale)

    async def _load(self, project_id: str) -> list[Quota]:
        out, cursor = [], None
        while True:
            page = await self._repo.list(project_id, limit=200, cursor=cursor)
            out += page.items
            if page.cursor is None:
                return out
            cursor = page.cursor

    async def for_call(self, project_id: str, key_id: str | None, pillar: Pillar, resource: str) -> list[Quota]:
        wanted = {("project", project_id), ("key", key_id), (RESOURCE_SCOPES[pillar], resource)}
        return [q for q in await self._cache.get(project_id) if (q.scope, q.target) in wanted]

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)
