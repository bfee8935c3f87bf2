"""Composite tasks are the gateway's own (no upstream holds them), so GetTask must work on any instance: the task
is stored in the registry container (kind `agent_composite_task`, the project's partition) when it starts and
when it ends. Only the key that started a task can read it (others get TASK_NOT_FOUND, as if it did not exist)."""
from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from pydantic import Field, JsonValue

from ....domain.base import Entity
from ....errors import GatewayError
from ....storage.repository import Repository
from ..wire import Task

log = logging.getLogger("gateway.agents.composition")
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
        except GatewayError as exc:
            self.write_failures += 1
            log.error("composite task %s of %s/%s not stored: %s", task.id, project_id, agent_id, exc.code)
            return stored

    async def get(self, project_id: str, agent_id: str, owner: str, task_id: str) -> Task | None:
        if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
            return None
        found = await self._repo.find(project_id, task_id)
        if found is None or found.agent_id != agent_id or found.owner != owner[:256]:
            return None
        return Task.model_validate(found.task)


def owner_of(principal: Any) -> str:
    return principal.key_id or principal.subject
