"""Task-augmented `tools/call` through a toolbox: 2025-11-25's tasks utility and 2026-07-28's tasks extension,
passed through or bridged between the two (`mcp/task_shapes.py`).

Creation is an ordinary governed `tools/call` (resolve, scopes, approval and pinning, arguments, per-call
approval, quotas, failover, request log): only the upstream's answer differs. The upstream's task id never
reaches the client: the client gets a **task handle** — the upstream task id, the server replica that owns it,
the upstream session it lives in, the caller and the toolbox, sealed like session ids (`shared/sealed.py`,
deterministic: one task, one id, so `tasks/list` names the ids `tools/call` returned). So any instance serves
`tasks/get` (no sticky routing, no store), a handle presented by another caller or at another toolbox does not
open (-32602 "task not found", as the spec asks for tasks outside the requestor's authorization context), and a
server no longer serving this caller in this toolbox (removed, revoked, every tool out of scope) makes its tasks
unreadable. A task lives as long as its server keeps it (its ttl); rotating the session secrets ends every
handle.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field

from ...domain.base import AppModel
from ...errors import GatewayError
from .context import McpContext, Reply
from .directory import ToolDirectory
from .mcp import bridge
from .mcp import jsonrpc as rpc
from .mcp import revisions as rev
from .mcp import task_shapes as shapes
from ...sealed import Sealer, SealedInvalid
from .mcp.session import UpstreamSession
from .mcp.upstream import Endpoint, UpstreamFailure
from .upstreams import AuthHeaders, SessionPool, endpoints

log = logging.getLogger(__name__)
PURPOSE = "mcptask1"
_SUPPORT_TTL = 60.0   # seconds a server's per-tool taskSupport (from its live tools/list) is reused
_MAX_LIST_PAGES = 5
Handler = Callable[[McpContext, rpc.Message], Awaitable[dict[str, Any] | Reply]]


class TaskHandle(AppModel):
    principal: str = Field(max_length=256)
    toolbox: str = Field(max_length=128)
    server: str = Field(max_length=128)
    endpoint: str = Field(max_length=256)      # the replica that owns the task
    upstream_task: str = Field(max_length=512)
    upstream: UpstreamSession


def _task_support(tool: dict[str, Any]) -> str:
    execution = tool.get("execution")
    value = execution.get("taskSupport") if isinstance(execution, dict) else None
    return value if isinstance(value, str) else "forbidden"


def _not_found(msg: rpc.Message) -> rpc.Fault:
    return rpc.Fault(rpc.INVALID_PARAMS, "Failed to retrieve task: Task not found", msg.id)


class TaskBridge:
    def __init__(self, directory: ToolDirectory, pool: SessionPool, auth: AuthHeaders, sealer: Sealer, *,
                 wait_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._directory, self._pool, self._auth, self._sealer = directory, pool, auth, sealer
        self._wait, self._mono = wait_seconds, monotonic
        self._support: dict[str, tuple[float, dict[str, str]]] = {}

    # ---- what the toolbox advertises

    @staticmethod
    def capabilities(version: str) -> dict[str, Any]:
        shape = shapes.speaks_tasks(version)
        if shape == "2025":
            return {"tasks": shapes.SERVER_CAPABILITY_2025}
        return {"extensions": {shapes.TASKS_EXTENSION: {}}} if shape == "2026" else {}

    def methods(self) -> dict[str, Handler]:
        return {"tasks/get": self.get, "tasks/result": self.result, "tasks/list": self.list_tasks,
                "tasks/cancel": self.cancel, "tasks/update": self.update}

    # ---- tools/call: shape the upstream request, wrap the upstream's task

    @staticmethod
    def mode(ctx: McpContext, msg: rpc.Message) -> str | None:
        """The task shape this call may create: a 2025-11-25 client asked with `params.task`, or a 2026 client
        declared the extension in this request's capabilities."""
        if ctx.client_version == shapes.TASK_REVISION and isinstance(msg.params.get("task"), dict):
            return "2025"
        meta = msg.params.get("_meta")
        if ctx.modern and isinstance(meta, dict) and shapes.declares_extension(meta.get(rev.CLIENT_CAPABILITIES_KEY)):
            return "2026"
        return None

    async def outbound(self, ctx: McpContext, mode: str | None, tool: str, params: dict[str, Any],
                       target: Endpoint) -> dict[str, Any]:
        asked = params.get("task")
        params = {k: v for k, v in params.items() if k != "task"}
        if mode is None:
            return params
        session = await self._pool.session(target, ctx.caller, ctx.carried)
        upstream = shapes.speaks_tasks(session.version)
        if upstream == "2026":  # declare the extension as the gateway's own capability on this request
            meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
            caps = {**meta.get(rev.CLIENT_CAPABILITIES_KEY, {}), "extensions": {shapes.TASKS_EXTENSION: {}}}
            return {**params, "_meta": {**meta, rev.CLIENT_CAPABILITIES_KEY: caps}}
        if upstream == "2025" and mode == "2025":
            return {**params, "task": asked}  # the client's own (its ttl)
        if upstream == "2025" and await self._supports(ctx, target, tool):
            return {**params, "task": {}}  # a 2026 client meets a 2025-11-25 server: ask where the tool allows
        return params

    async def inbound(self, ctx: McpContext, mode: str | None, server: str, target: Endpoint,
                      result: dict[str, Any]) -> dict[str, Any]:
        task = shapes.created(result)
        if task is None:
            return result
        if mode is None:
            raise rpc.Fault(rpc.UPSTREAM_ERROR, "The MCP server answered with a task the client did not ask for.")
        session = await self._pool.session(target, ctx.caller, ctx.carried)
        return shapes.created_for(mode, task, self._handle(ctx, server, target, task["taskId"], session),
                                  result.get("_meta"))

    def _handle(self, ctx: McpContext, server: str, ep: Endpoint, upstream_task: str,
                session: UpstreamSession) -> str:
        return self._sealer.seal(TaskHandle(principal=ctx.caller, toolbox=ctx.toolbox, server=server,
                                            endpoint=ep.id, upstream_task=upstream_task, upstream=session),
                                 bound_to=ctx.toolbox)

    async def _supports(self, ctx: McpContext, target: Endpoint, tool: str) -> bool:
        support = await self._support_of(ctx, target.id.split("/", 1)[0], target)
        return support.get(tool) in ("optional", "required")

    def note_listing(self, project_id: str, server_id: str, tools: list[Any]) -> None:
        """A server's live `tools/list` (read anyway by the list-time pinning check): its tools' taskSupport."""
        if len(self._support) > 10_000:
            self._support.clear()
        self._support[f"{project_id}/{server_id}"] = (self._mono() + _SUPPORT_TTL, {
            t["name"]: _task_support(t) for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)})

    async def _support_of(self, ctx: McpContext, server_id: str, target: Endpoint) -> dict[str, str]:
        key = f"{ctx.project_id}/{server_id}"
        found = self._support.get(key)
        if found is None or found[0] < self._mono():
            listed = await self._pool.request(target, ctx.caller, ctx.carried, "tools/list", {})
            self.note_listing(ctx.project_id, server_id, listed.get("tools") or [])
            found = self._support[key]
        return found[1]

    async def annotate(self, ctx: McpContext, tools: list[Any], views: list[dict[str, Any]]) -> None:
        """2025-11-25 clients may only task-augment tools whose `execution.taskSupport` allows it: show each
        tool's as its server lists it now (not pinned: how a tool may run is not what it is)."""
        if ctx.client_version != shapes.TASK_REVISION:
            return
        known: dict[str, dict[str, str]] = {}
        for tool, view in zip(tools, views):
            if tool.source != "mcp":
                continue
            if tool.server_id not in known:
                known[tool.server_id] = await self._support_for_listing(ctx, tool.server_id)
            support = known[tool.server_id].get(tool.original_name)
            if support in ("optional", "required"):
                view["execution"] = {"taskSupport": support}

    async def _support_for_listing(self, ctx: McpContext, server_id: str) -> dict[str, str]:
        try:
            server = await self._server(ctx, server_id)
            if server is None or server.spec.transport == "sse":  # no tasks over the legacy transport
                return {}
            return await self._support_of(ctx, server_id, (await endpoints(server, self._auth))[0])
        except (rpc.Fault, UpstreamFailure, GatewayError, IndexError) as exc:
            log.info("toolbox %s: taskSupport of %s's tools unknown: %s", ctx.toolbox, server_id, exc)
            self.note_listing(ctx.project_id, server_id, [])  # not asked again on every list for a while
            return {}

    # ---- the task methods

    def _shape(self, ctx: McpContext, msg: rpc.Message, *allowed: str) -> str:
        shape = shapes.speaks_tasks(ctx.client_version)
        if shape not in allowed:
            raise rpc.Fault(rpc.METHOD_NOT_FOUND, f"Method not found: {msg.method}", msg.id)
        return shape

    async def _open(self, ctx: McpContext, msg: rpc.Message) -> tuple[str, TaskHandle, Endpoint]:
        token = msg.params.get("taskId")
        try:
            h = self._sealer.open(token, TaskHandle, bound_to=ctx.toolbox)
        except SealedInvalid:
            raise _not_found(msg) from None
        if h.principal != ctx.caller or h.toolbox != ctx.toolbox:
            raise _not_found(msg)
        server = await self._server(ctx, h.server) if h.server in await self._serving(ctx) else None
        ep = next((e for e in await endpoints(server, self._auth) if e.id == h.endpoint), None) if server else None
        if ep is None:
            raise _not_found(msg)
        return token, h, ep

    async def _serving(self, ctx: McpContext) -> list[str]:
        """The servers with at least one tool this caller may use in this toolbox (the directory's rules)."""
        tools = await self._directory.list_tools(ctx.principal, ctx.project_id, ctx.toolbox)
        return list(dict.fromkeys(t.server_id for t in tools if t.source == "mcp"))

    async def _server(self, ctx: McpContext, server_id: str) -> Any:
        try:
            return await self._directory.server(ctx.project_id, server_id)
        except GatewayError:
            return None

    async def _up(self, ctx: McpContext, h: TaskHandle, ep: Endpoint, method: str,
                  params: dict[str, Any]) -> dict[str, Any]:
        return await self._pool.request(ep, ctx.caller, {ep.id: h.upstream}, method,
                                        {"taskId": h.upstream_task, **params})

    async def get(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        shape = self._shape(ctx, msg, "2025", "2026")
        token, h, ep = await self._open(ctx, msg)
        task = await self._up(ctx, h, ep, "tasks/get", {})
        if shape == "2025":
            return shapes.to_2025(task, token)
        if shapes.speaks_tasks(h.upstream.version) == "2025":
            task = await self._inline(ctx, h, ep, task)
        return {**shapes.to_2026(task, token), "resultType": "complete"}

    async def _inline(self, ctx: McpContext, h: TaskHandle, ep: Endpoint, task: dict[str, Any]
                      ) -> dict[str, Any]:
        """A 2025-11-25 server's task as 2026 sees it: terminal tasks carry their result or error inline."""
        status = task.get("status")
        if status == "input_required":  # its input requests travel on a tasks/result stream we cannot bridge
            return {**task, "status": "working", "statusMessage": "The server waits for input this gateway "
                                                                  "cannot relay between protocol revisions."}
        if status not in ("completed", "failed"):
            return task
        try:
            return {**task, "status": "completed", "result": await self._up(ctx, h, ep, "tasks/result", {})}
        except rpc.Fault as fault:
            return {**task, "status": "failed", "error": {"code": fault.code, "message": fault.message,
                                                          **({"data": fault.data} if fault.data else {})}}

    async def result(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        self._shape(ctx, msg, "2025")
        token, h, ep = await self._open(ctx, msg)
        if shapes.speaks_tasks(h.upstream.version) == "2025":
            return self._result(ctx, await self._up(ctx, h, ep, "tasks/result", {}), token)
        deadline = self._mono() + self._wait  # a 2026 server has no blocking tasks/result: poll tasks/get
        while True:
            task = await self._up(ctx, h, ep, "tasks/get", {})
            status = task.get("status")
            if status == "completed" and isinstance(task.get("result"), dict):
                return self._result(ctx, task["result"], token)
            if status in ("failed", "cancelled"):
                err = task.get("error") if isinstance(task.get("error"), dict) else {}
                raise rpc.Fault(err.get("code") if isinstance(err.get("code"), int) else rpc.INVALID_PARAMS,
                                str(err.get("message") or f"The task is {status}.")[:1000], msg.id, err.get("data"))
            if self._mono() >= deadline:
                raise rpc.Fault(rpc.REQUEST_TIMEOUT, "The task is not finished yet; poll tasks/get.", msg.id)
            poll = task.get("pollIntervalMs")
            await asyncio.sleep(min(max(poll / 1000, 0.05), 5.0) if isinstance(poll, int) else 0.5)

    @staticmethod
    def _result(ctx: McpContext, result: dict[str, Any], token: str) -> dict[str, Any]:
        """The call's own result as the client's revision shows a tools/call result, naming the client's task."""
        return shapes.with_related(bridge.to_client(result, method="tools/call", client_version=ctx.client_version),
                                   token)

    async def cancel(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        shape = self._shape(ctx, msg, "2025", "2026")
        token, h, ep = await self._open(ctx, msg)
        answer = await self._up(ctx, h, ep, "tasks/cancel", {})
        if shape == "2026":
            return {"resultType": "complete"}  # the extension's empty acknowledgement
        if shapes.speaks_tasks(h.upstream.version) == "2026":
            answer = await self._up(ctx, h, ep, "tasks/get", {})  # 2025 answers cancel with the Task
        return shapes.to_2025(answer, token)

    async def update(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        self._shape(ctx, msg, "2026")
        token, h, ep = await self._open(ctx, msg)
        if shapes.speaks_tasks(h.upstream.version) != "2026":
            raise rpc.Fault(rpc.INVALID_PARAMS, "This task's server takes no tasks/update (2025-11-25 tasks).",
                            msg.id)
        responses = msg.params.get("inputResponses")
        if not isinstance(responses, dict):
            raise rpc.Fault(rpc.INVALID_PARAMS, "Invalid params: 'inputResponses' must be an object.", msg.id)
        await self._up(ctx, h, ep, "tasks/update", {"inputResponses": responses})
        return {"resultType": "complete"}

    async def list_tasks(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        """2025-11-25 only (the 2026 extension dropped it): the caller's tasks on every server of the toolbox,
        read in the caller's own upstream sessions (never another caller's)."""
        self._shape(ctx, msg, "2025")
        async def one(sid: str) -> list[dict[str, Any]]:
            server = await self._server(ctx, sid)
            eps = await endpoints(server, self._auth) if server else []
            return [t for part in await asyncio.gather(*(self._list_one(ctx, sid, ep) for ep in eps)) for t in part]

        parts = await asyncio.gather(*(one(sid) for sid in await self._serving(ctx)))
        return {"tasks": [t for part in parts for t in part]}

    async def _list_one(self, ctx: McpContext, server: str, ep: Endpoint) -> list[dict[str, Any]]:
        if ep.transport == "sse":
            return []
        try:
            session = await self._pool.session(ep, ctx.caller, ctx.carried)
            if shapes.speaks_tasks(session.version) != "2025":
                return []
            out, cursor = [], None
            for _ in range(_MAX_LIST_PAGES):
                page = await self._pool.request(ep, ctx.caller, ctx.carried, "tasks/list",
                                                {"cursor": cursor} if cursor else {})
                for task in page.get("tasks") or []:
                    if isinstance(task, dict) and isinstance(task.get("taskId"), str):
                        out.append(shapes.to_2025(task, self._handle(ctx, server, ep, task["taskId"], session)))
                cursor = page.get("nextCursor")
                if not cursor:
                    return out
            return out
        except rpc.Fault as fault:  # a server without tasks/list contributes nothing
            log.info("toolbox %s: tasks/list on %s: %s", ctx.toolbox, ep.id, fault.message)
            return []
        except (UpstreamFailure, GatewayError) as exc:  # nor does one that cannot be reached now
            log.warning("toolbox %s: tasks/list on %s failed: %s", ctx.toolbox, ep.id, exc)
            return []
