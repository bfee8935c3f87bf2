"""Gateway task ids: the upstream's task id never reaches the client. Every answer and stream event that names a
task carries a **sealed** id instead — the key that created it, the project, the agent and the upstream task id,
AES-GCM sealed with the gateway's sealing secrets (`shared/sealed.py`, deterministic: one task, one id, so a
stream's events and a later GetTask name the same id) — and every request that names one (GetTask, CancelTask,
SubscribeToTask `id`; a follow-up message's `taskId` and `referenceTaskIds`) is opened back to the upstream id.

No store and no sticky routing: any gateway instance opens any id. An id sealed for another key, project or agent
does not open and is answered TASK_NOT_FOUND (-32001; 404 on the HTTP+JSON binding), the spec's answer for a task
outside the caller's authorization — so a key cannot read, cancel or follow another key's task. ListTasks is
refused: the upstream lists every caller's tasks and cannot tell which key created which.
Rotating the sealing secrets (MCP_SESSION_SECRETS, first one seals, every one opens) keeps ids open while the
old secret stays listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import Field

from ....domain.base import AppModel
from ....sealed import Sealer, SealedInvalid
from .protocol import INVALID_AGENT_RESPONSE, TASK_NOT_FOUND, UNSUPPORTED_OPERATION, A2AError

PURPOSE = "a2atask1"
MAX_UPSTREAM_ID = 1024
_BY_TASK = frozenset({"GetTask", "CancelTask", "SubscribeToTask"})
_SENDS = frozenset({"SendMessage", "SendStreamingMessage"})


class TaskRef(AppModel):
    key: str = Field(max_length=300)
    project: str = Field(max_length=128)
    agent: str = Field(max_length=128)
    task: str = Field(max_length=MAX_UPSTREAM_ID)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who calls which agent: the key (or, without one, the subject) in its project."""

    key: str
    project: str
    agent: str

    @property
    def bound_to(self) -> str:
        return f"{self.project}/{self.agent}"


def not_found() -> A2AError:
    return A2AError(TASK_NOT_FOUND, "Task not found.")


class TaskIds:
    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer
        # deterministic ids: a stream's events (and polls) name the same task again and again — sealed once
        self.seal = lru_cache(maxsize=4096)(self._seal)  # type: ignore[method-assign]

    # ---- ids

    def seal(self, owner: Owner, upstream_id: str) -> str:  # replaced per instance by the cached _seal
        return self._seal(owner, upstream_id)

    def _seal(self, owner: Owner, upstream_id: str) -> str:
        if len(upstream_id) > MAX_UPSTREAM_ID:
            raise A2AError(INVALID_AGENT_RESPONSE, f"The agent's task id is longer than {MAX_UPSTREAM_ID} characters.")
        ref = TaskRef(key=owner.key, project=owner.project, agent=owner.agent, task=upstream_id)
        return self._sealer.seal(ref, bound_to=owner.bound_to)

    def open(self, owner: Owner, token: Any) -> str:
        try:
            ref = self._sealer.open(token, TaskRef, bound_to=owner.bound_to)
        except SealedInvalid:
            raise not_found() from None
        if (ref.key, ref.project, ref.agent) != (owner.key, owner.project, owner.agent):
            raise not_found()
        return ref.task

    # ---- requests (v1.0 method names and params)

    def open_params(self, owner: Owner, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The params with every task id the client sent opened to the upstream's; refuses what is not its own."""
        if method == "ListTasks":
            raise A2AError(UNSUPPORTED_OPERATION, "ListTasks is not served through the gateway: tasks belong to the "
                           "key that created them and the agent cannot list one key's tasks. Keep the task ids "
                           "SendMessage returned.")
        if method in _BY_TASK:
            return {**params, "id": self.open(owner, params.get("id"))}
        message = params.get("message")
        if method not in _SENDS or not isinstance(message, dict):
            return params
        message = dict(message)
        if message.get("taskId") is not None:
            message["taskId"] = self.open(owner, message["taskId"])
        refs = message.get("referenceTaskIds")
        if isinstance(refs, list):
            message["referenceTaskIds"] = [self.open(owner, r) for r in refs[:100]]
        return {**params, "message": message}

    # ---- answers (v1.0 shapes, before any bridging to 0.3)

    def seal_result(self, owner: Owner, method: str, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if method in ("GetTask", "CancelTask"):
            return self._task(owner, value)
        out = dict(value)  # SendMessage's {task|message}, a stream's {task|message|statusUpdate|artifactUpdate}
        if isinstance(out.get("task"), dict):
            out["task"] = self._task(owner, out["task"])
        if isinstance(out.get("message"), dict):
            out["message"] = self._message(owner, out["message"])
        for name in ("statusUpdate", "artifactUpdate"):
            if isinstance(out.get(name), dict):
                out[name] = self._update(owner, out[name])
        return out

    def _id(self, owner: Owner, value: Any) -> Any:
        return self.seal(owner, value) if isinstance(value, str) and value else value

    def _task(self, owner: Owner, task: dict[str, Any]) -> dict[str, Any]:
        out = {**task, "id": self._id(owner, task.get("id"))}
        status = out.get("status")
        if isinstance(status, dict) and isinstance(status.get("message"), dict):
            out["status"] = {**status, "message": self._message(owner, status["message"])}
        if isinstance(out.get("history"), list):
            out["history"] = [self._message(owner, m) if isinstance(m, dict) else m for m in out["history"]]
        return out

    def _message(self, owner: Owner, message: dict[str, Any]) -> dict[str, Any]:
        out = dict(message)
        if "taskId" in out:
            out["taskId"] = self._id(owner, out["taskId"])
        if isinstance(out.get("referenceTaskIds"), list):
            out["referenceTaskIds"] = [self._id(owner, r) for r in out["referenceTaskIds"]]
        return out

    def _update(self, owner: Owner, update: dict[str, Any]) -> dict[str, Any]:
        out = {**update, "taskId": self._id(owner, update.get("taskId"))}
        status = out.get("status")
        if isinstance(status, dict) and isinstance(status.get("message"), dict):
            out["status"] = {**status, "message": self._message(owner, status["message"])}
        return out
