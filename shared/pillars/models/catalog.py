"""The models a project exposes, read through the fail-static cache (the hot path never waits on Cosmos)."""
from __future__ import annotations

from shared.cache import FailStaticCache
from shared.domain.base import InvalidDocument
from .domain import Model
from shared.storage.repository import Repository


class ModelCatalog:
    def __init__(self, repo: Repository[Model], *, ttl: float, max_stale: float) -> None:
        self._repo = repo
        self._cache: FailStaticCache[str, dict[str, Model]] = FailStaticCache(self._load, ttl=ttl,
                                                                              max_stale=max_stale)

    async def _collect(self, project_id: str) -> tuple[dict[str, Model], list[InvalidDocument]]:
        found: dict[str, Model] = {}
        invalid: list[InvalidDocument] = []
        cursor = None
        while True:
            page = await self._repo.list(project_id, limit=200, cursor=cursor)
            found.update((m.spec.name, m) for m in page.items)
            invalid.extend(page.invalid)  # skipped (and logged) by the repository: the other models keep serving
            if page.cursor is None:
                return found, invalid
            cursor = page.cursor

    async def _load(self, project_id: str) -> dict[str, Model]:
        return (await self._collect(project_id))[0]

    async def models(self, project_id: str) -> list[Model]:
        return sorted((await self._cache.get(project_id)).values(), key=lambda m: m.spec.name)

    async def get(self, project_id: str, name: str) -> Model | None:
        return (await self._cache.get(project_id)).get(name)

    async def fresh(self, project_id: str) -> tuple[list[Model], list[InvalidDocument]]:
        """For the control plane: always read the registry (admins expect to see their last write), and report
        the stored models that no longer validate."""
        found, invalid = await self._collect(project_id)
        return sorted(found.values(), key=lambda m: m.spec.name), invalid

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)
