"""Composite tasks are the gateway's own (no upstream holds them), so GetTask must work on any instance: the task
is stored in the registry container (kind `agent_composite_task`, the project's partition) when it ends (and, for
a stream, when it starts). Only the key that started a task can read or cancel it (others get TASK_NOT_FOUND, as
if it did not exist).

CancelTask works across instances through the stored document: it writes the task CANCELED (conditional on its
ETag); the instance running the stream reads the document before each hop and stops; its own final write then
loses the ETag race on purpose, so the stored task stays CANCELED."""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, JsonValue

from ....domain.base import Entity
from ....errors import GatewayError, PreconditionFailed
from ....storage.repository import Repository
from ..wire import TERMINAL_STATES, Task, TaskStatus

log = logging.getLogger("gateway.agents.composition")
CANCELED = "TASK_STATE_CANCELED"
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # what the gateway generates; anything else is not one


class CompositeTask(Entity):
    kind: ClassVar[str] = "agent_composite_task"
    agent_id: str = Field(max_length=64)
    owner: str = Field(max_length=256, description="The key id (or subject) that started the task.")
    state: str = Field(max_length=40)
    task: dict[str, JsonValue]


class TaskStore:
    def __init__(self, repo: Repository[CompositeTask]) -> None:
        self._repo = repo
        self.write_failures = 0

    async def save(self, project_id: str, agent_id: str, owner: str, task: Task,
                   stored: CompositeTask | None = None) -> CompositeTask | None:
        """Create (first call) or replace; a failed write is logged and counted — the caller still gets its
        answer, only a later GetTask would miss it."""
        doc = CompositeTask(id=task.id, project_id=project_id, agent_id=agent_id, owner=owner[:256],
                            state=task.status.state, task=task.dump())
        try:
            if stored is None:
                return await self._repo.create(doc)
            doc.etag = stored.etag
            return await self._repo.replace(doc)
        except PreconditionFailed:  # canceled meanwhile (see cancel): the stored CANCELED stands
            log.info("composite task %s of %s/%s was changed meanwhile (canceled); kept", task.id, project_id,
                     agent_id)
            return stored
        except GatewayError as exc:
            self.write_failures += 1
            log.error("composite task %s of %s/%s not stored: %s", task.id, project_id, agent_id, exc.code)
            return stored

    async def _find(self, project_id: str, agent_id: str, owner: str, task_id: Any) -> CompositeTask | None:
        if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
            return None
        found = await self._repo.find(project_id, task_id)
        if found is None or found.agent_id != agent_id or found.owner != owner[:256]:
            return None
        return found

    async def get(self, project_id: str, agent_id: str, owner: str, task_id: Any) -> Task | None:
        found = await self._find(project_id, agent_id, owner, task_id)
        return None if found is None else Task.model_validate(found.task)

    async def is_canceled(self, project_id: str, task_id: str) -> bool:
        found = await self._repo.find(project_id, task_id)
        return found is not None and found.state == CANCELED

    async def cancel(self, project_id: str, agent_id: str, owner: str, task_id: Any) -> tuple[Task | None, bool]:
        """(the task, whether it was canceled now); (None, False) when there is no such task for this caller;
        (task, False) when it had already ended. Conditional on the version read: if the run wrote the task
        meanwhile, read it again (it may have ended: then there is nothing to cancel)."""
        for _ in range(3):
            found = await self._find(project_id, agent_id, owner, task_id)
            if found is None:
                return None, False
            task = Task.model_validate(found.task)
            if found.state in TERMINAL_STATES:
                return task, False
            task.status = TaskStatus(state=CANCELED, timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"))
            meta = dict(task.metadata or {})
            meta["gateway"] = {**(meta.get("gateway") or {}), "reason": "canceled",
                               "detail": "canceled by the caller (CancelTask)"}
            task.metadata = meta
            found.state, found.task = CANCELED, task.dump()
            try:
                await self._repo.replace(found)
            except PreconditionFailed:
                continue
            return task, True
        return None, False

def owner_of(principal: Any) -> str:
    return principal.key_id or principal.subject
