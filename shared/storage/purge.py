"""Deleting a project with everything it owns, in an order that is safe to interrupt and to run again.

Cosmos has no transaction across documents, so "nothing half-written" is reached by ordering: first the project
stops serving (every pillar off), then each owned document is deleted, then — only when the partition holds
nothing of the project any more — the project document itself. A failure at any step leaves a project that
exists, serves nothing and can be purged again with the same call.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..domain.projects import Project
from ..errors import Conflict, InvalidStoredDocument, NotFound
from .repository import Repository

log = logging.getLogger("gateway.registry")

_BATCH = 200


async def stop_serving(projects: Repository[Project], pid: str, if_match: str | None) -> None:
    def off(p: Project) -> None:
        for state in p.pillars.values():
            state.enabled = False

    try:
        await projects.update(pid, pid, off, if_match=if_match)
    except InvalidStoredDocument:
        # A project document that no longer validates already serves nothing (flag checks refuse it).
        log.warning("purging project %s whose document no longer validates", pid)


async def delete_owned(repo: Repository[Any], pid: str, on_delete: Callable[[Any], None]) -> int:
    """Delete every document of `repo`'s kind in the project, valid or not. Always re-reads the first page:
    deleting shifts any cursor, and a re-run starts from whatever is left."""
    deleted, previous = 0, None
    while True:
        page = await repo.list(pid, limit=_BATCH)
        ids = [e.id for e in page.items] + [bad.id for bad in page.invalid]
        if not ids:
            return deleted
        if ids == previous:  # listed again though "already deleted": never loop forever on an inconsistent read
            raise Conflict(f"Could not delete every {repo.kind.replace('_', ' ')} of project '{pid}'; run the "
                           "purge again.", code="project_not_empty")
        previous = ids
        for entity in page.items:
            on_delete(entity)
        for id in ids:
            try:
                await repo.delete(pid, id)
                deleted += 1
            except NotFound:
                pass  # deleted meanwhile (a concurrent purge): the goal is reached either way


async def purge_project(projects: Repository[Project], owned: Sequence[Repository[Any]], pid: str, *,
                        if_match: str | None = None,
                        on_delete: Callable[[Any], None] = lambda _e: None) -> dict[str, int]:
    """→ how many documents of each kind were deleted. NotFound when the project does not exist."""
    if await projects.find_raw(pid, pid) is None:
        raise NotFound(f"project '{pid}' does not exist.")
    await stop_serving(projects, pid, if_match)
    counts = {repo.kind: await delete_owned(repo, pid, on_delete) for repo in owned}
    for repo in owned:  # something created while we were deleting: refuse rather than orphan it
        page = await repo.list(pid, limit=1)
        if page.items or page.invalid:
            raise Conflict(f"Project '{pid}' gained a {repo.kind.replace('_', ' ')} during the purge; run the "
                           "purge again.", code="project_not_empty")
    await projects.delete(pid, pid)
    log.info("purged project %s: %s", pid, counts)
    return counts
