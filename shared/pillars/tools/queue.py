"""The approvals queue: a submission is a small JSON message {project_id, submission_id} on an Azure Storage
queue (the Functions host base64-decodes it, retries it, and after maxDequeueCount moves it to
`<queue>-poison`, where a second function records it). A memory queue with the same contract for unit tests."""
from __future__ import annotations

import base64
import json
from typing import Any, Protocol

from pydantic import Field, ValidationError

from ...domain.base import AppModel
from ...errors import DependencyUnavailable


class SubmissionMessage(AppModel):
    project_id: str = Field(max_length=64)
    submission_id: str = Field(max_length=128)

    @classmethod
    def parse(cls, body: str | bytes) -> "SubmissionMessage | None":
        """None for a message that is not ours (logged by the caller, never retried forever)."""
        try:
            return cls.model_validate(json.loads(body))
        except (ValueError, ValidationError):
            return None


class SubmissionQueue(Protocol):
    async def send(self, message: SubmissionMessage) -> None: ...


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.available = True

    async def send(self, message: SubmissionMessage) -> None:
        if not self.available:
            raise DependencyUnavailable("The approvals queue is unreachable.", details={"dependency": "queue"})
        self.messages.append(message.model_dump_json())


class AzureSubmissionQueue:
    """azure-storage-queue, base64 text (host.json `messageEncoding: base64`)."""

    def __init__(self, client: Any) -> None:
        self._client = client  # azure.storage.queue.aio.QueueClient

    async def send(self, message: SubmissionMessage) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        text = base64.b64encode(message.model_dump_json().encode()).decode()
        try:
            try:
                await self._client.send_message(text)
            except ResourceNotFoundError:  # first use against a fresh account (Azurite): Bicep creates it in Azure
                await self._client.create_queue()
                await self._client.send_message(text)
        except AzureError as exc:
            raise DependencyUnavailable("The approvals queue is unreachable.",
                                        details={"dependency": "queue", "reason": type(exc).__name__}) from exc

    async def close(self) -> None:
        await self._client.close()
