"""A2A v1.0 wire objects (JSON names as the spec's ProtoJSON mapping spells them), the lingua franca between the
gateway and every AgentBackend: A2A upstreams speak it natively, Bedrock and Vertex are translated to and from it.

Lenient on read (`extra="allow"`: a newer agent's extra fields pass through untouched), strict on what the gateway
builds. v0.3 shapes are bridged in `a2a/` and never appear here.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ...domain.base import AppModel

TaskState = Literal[
    "TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED",
    "TASK_STATE_COMPLETED", "TASK_STATE_CANCELED", "TASK_STATE_FAILED", "TASK_STATE_REJECTED",
]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_CANCELED", "TASK_STATE_FAILED", "TASK_STATE_REJECTED"})
# A stream ends on a terminal state or on one that waits for the client.
INTERRUPTED_STATES: frozenset[str] = frozenset({"TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"})

Role = Literal["ROLE_USER", "ROLE_AGENT"]


class Wire(AppModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Part(Wire):
    """One of text | data | url | raw (base64), with optional mediaType/filename/metadata."""

    text: str | None = None
    data: Any = None
    url: str | None = None
    raw: str | None = None
    media_type: str | None = Field(default=None, alias="mediaType")
    filename: str | None = None
    metadata: dict[str, Any] | None = None


class Message(Wire):
    message_id: str = Field(alias="messageId")
    role: Role
    parts: list[Part]
    context_id: str | None = Field(default=None, alias="contextId")
    task_id: str | None = Field(default=None, alias="taskId")
    metadata: dict[str, Any] | None = None
    reference_task_ids: list[str] | None = Field(default=None, alias="referenceTaskIds")

    def text(self) -> str:
        """The message's text parts joined: what a text-only upstream (Bedrock, Vertex) receives."""
        return "\n".join(p.text for p in self.parts if p.text is not None)


class TaskStatus(Wire):
    state: TaskState
    message: Message | None = None
    timestamp: str | None = None


class Artifact(Wire):
    artifact_id: str = Field(alias="artifactId")
    parts: list[Part]
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class Task(Wire):
    id: str
    context_id: str = Field(alias="contextId")
    status: TaskStatus
    artifacts: list[Artifact] | None = None
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(Wire):
    task_id: str = Field(alias="taskId")
    context_id: str = Field(alias="contextId")
    status: TaskStatus
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(Wire):
    task_id: str = Field(alias="taskId")
    context_id: str = Field(alias="contextId")
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = Field(default=None, alias="lastChunk")
    metadata: dict[str, Any] | None = None


class StreamResponse(Wire):
    """Exactly one of task | message | statusUpdate | artifactUpdate (the spec's oneof payload)."""

    task: Task | None = None
    message: Message | None = None
    status_update: TaskStatusUpdateEvent | None = Field(default=None, alias="statusUpdate")
    artifact_update: TaskArtifactUpdateEvent | None = Field(default=None, alias="artifactUpdate")


# SendMessage's result: a Task or a direct Message.
SendResult = Task | Message
