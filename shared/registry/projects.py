"""Projects, their pillar switches and the global kill switches. Every write drops the caches it affects on this
instance (other instances see it within the cache TTL: docs/runbook.md)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..domain.base import GLOBAL_PARTITION, Pillar
from ..domain.projects import GlobalFlags, Project, ProjectCreate, ProjectUpdate
from ..errors import AlreadyExists, Conflict, NotFound, ValidationFailed
from ..flags.service import FlagService
from ..storage.purge import purge_project
from ..storage.repository import Page, Repository


class ProjectRegistry:
    def __init__(self, projects: Repository[Project], global_flags: Repository[GlobalFlags], flags: FlagService,
                 *, owned: Callable[[], Sequence[Repository[Any]]], invalidate: Sequence[Callable[[str], None]],
                 on_purge: Callable[[object], None]) -> None:
        """`owned`: every repository whose documents live in a project's partition; `invalidate`: the caches
        keyed by project (catalogs, quota books) to drop after a delete; `on_purge`: called per purged entity."""
        self._projects, self._globals, self._flags = projects, global_flags, flags
        self._owned, self._invalidate, self._on_purge = owned, invalidate, on_purge

    async def create(self, spec: ProjectCreate) -> Project:
        project = Project(id=spec.id, name=spec.name, description=spec.description, key_issuance=spec.key_issuance,
                          log_payloads=spec.log_payloads, **({"pillars": spec.pillars} if spec.pillars else {}))
        try:
            created = await self._projects.create(project)
        except AlreadyExists:
            raise AlreadyExists(f"Project '{spec.id}' already exists.", details={"field": "id"}) from None
        self._flags.invalidate(created.id)
        return created

    async def list(self, *, limit: int, cursor: str | None) -> Page[Project]:
        return await self._projects.list(None, limit=limit, cursor=cursor)

    async def require(self, pid: str) -> str:
        """`pid` once the project is known to exist (404 `project_not_found` otherwise): for routes under it."""
        await self.get(pid)
        return pid

    async def get(self, pid: str) -> Project:
        return await self._projects.get(pid, pid)

    async def update(self, pid: str, change: ProjectUpdate, if_match: str | None) -> Project:
        def apply(p: Project) -> None:
            for field, value in change.model_dump(exclude_unset=True).items():
                if value is None:
                    raise ValidationFailed(f"'{field}' cannot be null.", details=[{"field": field,
                                                                                  "message": "null"}])
                setattr(p, field, value)

        updated = await self._projects.update(pid, pid, apply, if_match=if_match)
        self._flags.invalidate(pid)
        return updated

    async def delete(self, pid: str, *, cascade: bool, if_match: str | None) -> None:
        try:
            if cascade:
                await purge_project(self._projects, list(self._owned()), pid, if_match=if_match,
                                    on_delete=self._on_purge)
                return
            if await self._projects.find_raw(pid, pid) is None:
                raise NotFound(f"project '{pid}' does not exist.")
            for repo in self._owned():
                page = await repo.list(pid, limit=1)
                if page.items or page.invalid:  # a document that no longer validates is still owned
                    raise Conflict(f"Project '{pid}' still owns resources; delete or revoke and purge them first, "
                                   "or delete with ?cascade=true.", code="project_not_empty")
            await self._projects.delete(pid, pid, if_match)
        finally:  # also after a partial cascade: this instance must not serve from a stale cache
            self._flags.invalidate(pid)
            for invalidate in self._invalidate:
                invalidate(pid)

    async def global_flags(self) -> GlobalFlags:
        return await self._globals.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) or GlobalFlags()

    async def set_project_flag(self, pid: str, pillar: Pillar, enabled: bool, if_match: str | None) -> Project:
        def apply(p: Project) -> None:
            p.pillars[pillar].enabled = enabled

        updated = await self._projects.update(pid, pid, apply, if_match=if_match)
        self._flags.invalidate(pid)
        return updated

    async def set_global_flag(self, pillar: Pillar, enabled: bool, if_match: str | None) -> GlobalFlags:
        if await self._globals.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) is None:
            try:
                await self._globals.create(GlobalFlags())
            except AlreadyExists:
                pass  # another admin created it first; the conditional update below still applies

        def apply(g: GlobalFlags) -> None:
            g.pillars[pillar].enabled = enabled

        updated = await self._globals.update(GLOBAL_PARTITION, GlobalFlags.DOC_ID, apply, if_match=if_match)
        self._flags.invalidate(None)
        return updated
