"""The two shapes of MCP tasks, and the conversions between them.

- 2025-11-25 (experimental utility, basic/utilities/tasks): the client asks with `params.task` on `tools/call`;
  the server answers `CreateTaskResult = {task: Task}`; `Task` has `ttl`/`pollInterval`; `tasks/get` returns the
  Task, `tasks/result` blocks for the call's own result (or its JSON-RPC error), `tasks/list`, `tasks/cancel`
  (returns the Task). A tool result with `isError` makes the task `failed`.
- 2026-07-28 (the `io.modelcontextprotocol/tasks` extension, SEP-2663): the client declares the extension in its
  per-request capabilities and the server decides; `CreateTaskResult` is the flat Task with `resultType: "task"`,
  `ttlMs`/`pollIntervalMs`; `tasks/get` inlines `result` (completed) or `error` (failed) or `inputRequests`;
  `tasks/update` answers input requests; `tasks/cancel` is an empty acknowledgement; no `tasks/list`, no
  `tasks/result`. `failed` means a JSON-RPC error only (an `isError` tool result is `completed`).
"""
from __future__ import annotations

from typing import Any

from . import revisions as rev

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
IMMEDIATE_RESPONSE = "io.modelcontextprotocol/model-immediate-response"
_RESERVED = "io.modelcontextprotocol/"
TASK_REVISION = "2025-11-25"  # the one handshake revision with the tasks utility
TERMINAL = frozenset({"completed", "failed", "cancelled"})
_COMMON = ("status", "statusMessage", "createdAt", "lastUpdatedAt")
SERVER_CAPABILITY_2025 = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}


def declares_extension(capabilities: Any) -> bool:
    ext = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(ext, dict) and TASKS_EXTENSION in ext


def speaks_tasks(version: str) -> str | None:
    """Which task shape a peer of this revision speaks: "2025", "2026" or None."""
    if version == TASK_REVISION:
        return "2025"
    return "2026" if rev.is_modern(version) else None


def created(result: dict[str, Any]) -> dict[str, Any] | None:
    """The Task inside a CreateTaskResult of either shape, else None (an ordinary result)."""
    nested = result.get("task")
    if isinstance(nested, dict) and isinstance(nested.get("taskId"), str):
        return nested
    if result.get("resultType") == "task" and isinstance(result.get("taskId"), str):
        return result
    return None


def to_2025(task: dict[str, Any], task_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"taskId": task_id, **{k: task[k] for k in _COMMON if k in task}}
    ttl = task.get("ttl", task.get("ttlMs"))
    out["ttl"] = ttl if isinstance(ttl, int) else None
    poll = task.get("pollInterval", task.get("pollIntervalMs"))
    if isinstance(poll, int):
        out["pollInterval"] = poll
    result = task.get("result")
    if out.get("status") == "completed" and isinstance(result, dict) and result.get("isError"):
        out["status"] = "failed"  # 2025-11-25: an isError tool result fails the task
    return out


def to_2026(task: dict[str, Any], task_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"taskId": task_id, **{k: task[k] for k in _COMMON if k in task}}
    ttl = task.get("ttlMs", task.get("ttl"))
    out["ttlMs"] = ttl if isinstance(ttl, int) else None
    poll = task.get("pollIntervalMs", task.get("pollInterval"))
    if isinstance(poll, int):
        out["pollIntervalMs"] = poll
    for key in ("result", "error", "inputRequests"):
        if key in task:
            out[key] = task[key]
    return out


def created_for(shape: str, task: dict[str, Any], task_id: str, meta: Any = None) -> dict[str, Any]:
    """A CreateTaskResult for a client speaking `shape`, naming the gateway's own task id."""
    if shape == "2026":
        out = {"resultType": "task", **to_2026(task, task_id)}
    else:
        out = {"task": to_2025(task, task_id)}
    # the server's own `io.modelcontextprotocol/*` stamps (serverInfo, …) are its side's; the model hint is kept
    kept = {k: v for k, v in meta.items() if not k.startswith(_RESERVED) or k == IMMEDIATE_RESPONSE} \
        if isinstance(meta, dict) else {}
    if kept:
        out["_meta"] = kept
    return out


def with_related(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    """`tasks/result` MUST carry the related-task `_meta` (with the id the client knows)."""
    meta = result.get("_meta") if isinstance(result.get("_meta"), dict) else {}
    return {**result, "_meta": {**meta, RELATED_TASK: {"taskId": task_id}}}
