"""Pillar feature flags: project opt-in × global kill switch, read through the fail-static cache.

Rollback RTO: an admin's flip is visible on the instance that wrote it at once (its cache entry is dropped) and on
every other instance within `ttl` seconds plus one registry read. See docs/runbook.md.
"""
from __future__ import annotations

from collections.abc import Callable

from ..cache import FailStaticCache
from ..domain.base import GLOBAL_PARTITION, Pillar
from ..domain.projects import GlobalFlags, PillarView, Project
from ..errors import NotFound, PillarDisabled
from ..storage.repository import Repository

_GLOBAL = "__global__"


class FlagService:
    def __init__(self, projects: Repository[Project], global_flags: Repository[GlobalFlags], *, ttl: float,
                 max_stale: float, clock: Callable[[], float] | None = None) -> None:
        self._projects = projects
        self._globals = global_flags
        extra = {"clock": clock} if clock else {}
        self._project_cache: FailStaticCache[str, Project | None] = FailStaticCache(
            self._load_project, ttl=ttl, max_stale=max_stale, **extra)
        self._global_cache: FailStaticCache[str, GlobalFlags] = FailStaticCache(
            self._load_global, ttl=ttl, max_stale=max_stale, **extra)

    async def _load_project(self, project_id: str) -> Project | None:
        return await self._projects.find(project_id, project_id)

    async def _load_global(self, _key: str) -> GlobalFlags:
        return await self._globals.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) or GlobalFlags()

    async def project(self, project_id: str) -> Project | None:
        return await self._project_cache.get(project_id)

    async def global_flags(self) -> GlobalFlags:
        return await self._global_cache.get(_GLOBAL)

    def invalidate(self, project_id: str | None = None) -> None:
        if project_id is None:
            self._global_cache.invalidate(_GLOBAL)
        else:
            self._project_cache.invalidate(project_id)

    async def check(self, project_id: str, pillar: Pillar) -> Project:
        """Raise unless traffic for `pillar` may flow for this project right now. (Every data-plane call: the
        caches are read directly, not through `global_flags`/`project`.)"""
        glob = await self._global_cache.get(_GLOBAL)
        if not glob.pillars[pillar].enabled:
            raise PillarDisabled(f"The {pillar.value} pillar is switched off globally by an administrator.",
                                 code="pillar_disabled_globally", details={"pillar": pillar.value})
        project = await self._project_cache.get(project_id)
        if project is None:
            raise NotFound(f"Project '{project_id}' does not exist.")
        if not project.pillars[pillar].enabled:
            raise PillarDisabled(f"The {pillar.value} pillar is not enabled for project '{project_id}'.",
                                 details={"pillar": pillar.value, "project": project_id})
        return project

    @staticmethod
    def views(project: Project, glob: GlobalFlags) -> dict[Pillar, PillarView]:
        return {
            p: PillarView(enabled=project.pillars[p].enabled, globally_enabled=glob.pillars[p].enabled,
                          effective=project.pillars[p].enabled and glob.pillars[p].enabled)
            for p in Pillar
        }
