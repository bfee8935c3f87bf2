"""Which experiment is live on a model: a project's experiments read once through the fail-static cache (like
models, keys and policies). A change made through the admin API invalidates this instance at once; other
instances see it within the cache TTL (FLAG_CACHE_TTL_SECONDS). Only running and paused experiments matter to
routing; a draft or stopped one is invisible to the data plane."""
from __future__ import annotations

from ..cache import FailStaticCache
from ..storage.repository import Repository
from .domain import Experiment

_ACTIVE = ("running", "paused")


class ExperimentBook:
    def __init__(self, repo: Repository[Experiment], *, ttl: float, max_stale: float) -> None:
        self._repo = repo
        self._cache: FailStaticCache[str, dict[str, Experiment]] = FailStaticCache(self._load, ttl=ttl,
                                                                                   max_stale=max_stale)

    async def _load(self, project_id: str) -> dict[str, Experiment]:
        live: list[Experiment] = []
        cursor = None
        while True:
            page = await self._repo.list(project_id, limit=200, cursor=cursor)  # invalid documents are skipped
            live += [e for e in page.items if e.status in _ACTIVE]
            if page.cursor is None:
                break
            cursor = page.cursor
        # The registry allows one active experiment per model; should two instances race past that check, every
        # instance still picks the same one (the earliest started, then by name).
        live.sort(key=lambda e: (e.started_at is None, e.started_at or e.created_at, e.id))
        by_model: dict[str, Experiment] = {}
        for e in live:
            by_model.setdefault(e.spec.model, e)
        return by_model

    async def active(self, project_id: str, model: str) -> Experiment | None:
        return (await self._cache.get(project_id)).get(model)

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)
