"""Setting and removing quotas. A quota names a project, a key, or one resource of a pillar; the resource must
exist, which only its pillar can tell: each pillar registers a check under its scope word (`targets`)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from ..domain.base import InvalidDocument
from ..domain.quotas import Quota, QuotaLimits
from ..errors import AlreadyExists, BadRequest, NotFound
from ..storage.repository import Repository
from .book import QuotaBook

# scope word → raises NotFound unless (project, name) exists
TargetCheck = Callable[[str, str], Awaitable[object]]


class QuotaRegistry:
    def __init__(self, quotas: Repository[Quota], book: QuotaBook, targets: Mapping[str, TargetCheck]) -> None:
        self._quotas, self._book, self._targets = quotas, book, dict(targets)

    def scope(self, word: str) -> str:
        if word != "project" and word not in self._targets:
            known = ", ".join(["project", *self._targets])
            raise NotFound(f"Unknown quota scope '{word}'; use {known}.", code="unknown_scope")
        return word

    async def list(self, pid: str) -> tuple[list[Quota], list[InvalidDocument]]:
        page = await self._quotas.list(pid, limit=200)
        return page.items, page.invalid

    async def set(self, pid: str, scope: str, target: str, limits: QuotaLimits) -> Quota:
        if self.scope(scope) == "project":
            if target != pid:
                raise BadRequest("A project quota's target is the project id.", code="invalid_target")
        else:
            await self._targets[scope](pid, target)
        qid = Quota.doc_id(scope, target)
        existing = await self._quotas.find(pid, qid)
        if existing is None:
            try:
                saved = await self._quotas.create(Quota(id=qid, project_id=pid, scope=scope, target=target,
                                                        limits=limits))
            except AlreadyExists as exc:
                if exc.code == "id_taken":
                    raise
                saved = await self._quotas.update(pid, qid, lambda q: setattr(q, "limits", limits))
        else:
            saved = await self._quotas.update(pid, qid, lambda q: setattr(q, "limits", limits))
        self._book.invalidate(pid)
        return saved

    async def delete(self, pid: str, scope: str, target: str) -> None:
        await self._quotas.delete(pid, Quota.doc_id(self.scope(scope), target))
        self._book.invalidate(pid)

    async def forget_key(self, pid: str, key_id: str) -> None:
        """A deleted key's quota goes with it (a later key never inherits it)."""
        try:
            await self._quotas.delete(pid, Quota.doc_id("key", key_id))
        except NotFound:
            pass  # the key had no quota of its own
        self._book.invalidate(pid)
