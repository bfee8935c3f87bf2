"""A 2026-07-28 server on the official `mcp` Python SDK that offers the `io.modelcontextprotocol/tasks` extension
(SEP-2663), through the SDK's own extension mechanism: when a request declares the extension, `tools/call`
answers a CreateTaskResult (`resultType: "task"`) and the call runs in the background; `tasks/get` inlines the
result; `tasks/cancel` acknowledges. Tasks are bound to nothing but their unguessable id (a test server: the
gateway in front of it is what binds them to a caller). No released reference server offers the 2026 extension
yet; server-everything covers the 2025-11-25 tasks utility."""
from __future__ import annotations

import asyncio
import secrets
import sys
from datetime import datetime, timezone
from typing import Any

from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import MCPServer
from mcp_types._types import RequestParams
from pydantic import BaseModel, ConfigDict

EXTENSION = "io.modelcontextprotocol/tasks"
TASKS: dict[str, dict[str, Any]] = {}
RUNNING: set[asyncio.Task[Any]] = set()


class TaskParams(RequestParams):
    model_config = ConfigDict(extra="allow")
    taskId: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _dump(result: Any) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True) if isinstance(result, BaseModel) \
        else dict(result or {})


class Tasks(Extension):
    identifier = EXTENSION

    async def intercept_tool_call(self, params, ctx, call_next):
        caps = ctx.session.client_capabilities
        if not caps or not caps.extensions or EXTENSION not in caps.extensions:
            return await call_next(ctx)
        tid = secrets.token_urlsafe(16)
        task = TASKS[tid] = {"taskId": tid, "status": "working", "createdAt": _now(), "lastUpdatedAt": _now(),
                             "ttlMs": 60000, "pollIntervalMs": 100}

        async def run() -> None:
            try:
                result = _dump(await call_next(ctx))
                if task["status"] == "working":
                    task.update(status="completed", result=result, lastUpdatedAt=_now())
            except Exception as exc:  # noqa: BLE001 - becomes the task's JSON-RPC error
                task.update(status="failed", error={"code": -32603, "message": str(exc)}, lastUpdatedAt=_now())

        job = asyncio.get_running_loop().create_task(run())
        RUNNING.add(job)
        job.add_done_callback(RUNNING.discard)
        return {"resultType": "task", **{k: v for k, v in task.items() if k not in ("result", "error")}}

    def methods(self):
        async def get(ctx, params: TaskParams):
            if params.taskId not in TASKS:
                raise ValueError("Task not found")
            return dict(TASKS[params.taskId])

        async def cancel(ctx, params: TaskParams):
            task = TASKS.get(params.taskId)
            if task is not None and task["status"] == "working":
                task.update(status="cancelled", lastUpdatedAt=_now())
            return {}

        return [MethodBinding("tasks/get", TaskParams, get), MethodBinding("tasks/cancel", TaskParams, cancel)]


app = MCPServer("sdk-tasks", extensions=[Tasks()])


@app.tool()
async def slow_report(topic: str, seconds: float = 0.5) -> str:
    """Writes a report after a while (returned as a task to clients that declare the tasks extension)."""
    await asyncio.sleep(min(seconds, 5))
    return f"report on {topic}"


if __name__ == "__main__":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
