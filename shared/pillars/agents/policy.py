"""A project's agents policy: what happens to agents the cloud sync brings in. One document per project."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from pydantic import Field

from ...domain.base import Contract, Entity
from ...storage.repository import Repository


class AgentsPolicySpec(Contract):
    publish_synced: bool = Field(default=False, description=(
        "true: agents a sync discovers are published at once; false (default): they enter as draft and an admin "
        "publishes each."))


class AgentsPolicy(Entity):
    kind: ClassVar[str] = "agents_policy"
    DOC_ID: ClassVar[str] = "agents-policy"
    id: str = DOC_ID
    publish_synced: bool = False


def policy_reader(policies: Repository[AgentsPolicy],
                  project_exists: Callable[[str], Awaitable[object]]) -> Callable[[str], Awaitable[AgentsPolicy]]:
    """project id → its policy (the default when it has none); NotFound when the project does not exist."""

    async def read(project_id: str) -> AgentsPolicy:
        await project_exists(project_id)
        found = await policies.find(project_id, AgentsPolicy.DOC_ID)
        return found or AgentsPolicy(project_id=project_id)

    return read
