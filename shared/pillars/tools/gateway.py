"""The toolbox as one virtual MCP server: answers every method a toolbox offers, whatever the revision.

`tools/list` shows only what the caller may use (the key's tools scope ∩ the toolbox ∩ approved and not
quarantined — the directory's rules, checked at list time); `tools/call` goes through `ToolCalls` and the
pipeline; resources and prompts of the toolbox's servers pass through with namespaced names/URIs. A pass-through
list follows each server's `nextCursor` for at most `MAX_LIST_PAGES` pages and answers one merged, complete list
(no `nextCursor` of its own).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ...errors import GatewayError, NotFound
from .context import McpContext, Reply
from .directory import ToolDirectory
from .domain import NAMESPACE_SEPARATOR, McpServer, ToolDefinition
from .mcp import bridge
from .mcp import jsonrpc as rpc
from .mcp import revisions as rev
from .mcp.upstream import UpstreamFailure
from .upstreams import AuthHeaders, SessionPool, endpoints

if TYPE_CHECKING:
    from .tasks import TaskBridge

log = logging.getLogger(__name__)

SERVER_INFO = {"name": "ai-gateway-toolbox", "version": "1.0"}
CAPABILITIES = {"tools": {"listChanged": False}, "resources": {}, "prompts": {}}
ToolCallRunner = Callable[[McpContext, rpc.Message], Awaitable[Reply]]
PinCheck = Callable[[str, str, list[dict[str, Any]]], Awaitable[Any]]
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
# Pages read from one server for one pass-through list (`nextCursor` followed); what lies beyond is left out, logged.
MAX_LIST_PAGES = 20


def tool_view(t: ToolDefinition) -> dict[str, Any]:
    d = t.definition
    out: dict[str, Any] = {"name": t.name, "inputSchema": d.input_schema}
    for key, value in (("title", d.title), ("description", d.description), ("outputSchema", d.output_schema),
                       ("annotations", d.annotations)):
        if value is not None:
            out[key] = value
    return out


class ToolboxServer:
    def __init__(self, directory: ToolDirectory, pool: SessionPool, auth: AuthHeaders, call: ToolCallRunner, *,
                 list_ttl_ms: int = 0, pin_check: PinCheck | None = None, pin_check_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, tasks: "TaskBridge | None" = None) -> None:
        self._directory = directory
        self._pool = pool
        self._auth = auth
        self._call = call
        self._ttl = list_ttl_ms
        self._pin_check = pin_check
        self._pin_every = pin_check_seconds
        self._clock = clock
        self._pinned_at: dict[tuple[str, str], float] = {}
        self._methods: dict[str, Callable[[McpContext, rpc.Message], Awaitable[dict[str, Any] | Reply]]] = {
            "ping": self._ping, "server/discover": self._discover, "tools/list": self._tools,
            "resources/list": self._resources, "resources/templates/list": self._templates,
            "resources/read": self._read, "prompts/list": self._prompts, "prompts/get": self._prompt,
            "subscriptions/listen": self._listen,
        }
        self._tasks = tasks
        if tasks is not None:  # tasks/get, tasks/result, tasks/list, tasks/cancel, tasks/update (tasks.py)
            self._methods.update(tasks.methods())

    async def handle(self, ctx: McpContext, msg: rpc.Message) -> Reply:
        """A JSON-RPC request → its reply. Every failure is a JSON-RPC error, never an exception."""
        try:
            if msg.method == "tools/call":
                return await self._call(ctx, msg)
            handler = self._methods.get(msg.method or "")
            if handler is None or (msg.method in ("server/discover", "subscriptions/listen") and not ctx.modern):
                raise rpc.Fault(rpc.METHOD_NOT_FOUND, f"Method not found: {str(msg.method)[:64]}", msg.id)
            out = await handler(ctx, msg)
            return out if isinstance(out, Reply) else Reply(rpc.result(msg.id, out))
        except rpc.Fault as fault:
            return Reply(rpc.error(msg.id, fault.code, fault.message, fault.data))
        except NotFound as exc:
            return Reply(rpc.error(msg.id, rpc.INVALID_PARAMS, exc.message))
        except GatewayError as exc:
            return Reply(rpc.error(msg.id, rpc.GOVERNANCE_REFUSED if exc.status < 500 else rpc.UPSTREAM_ERROR,
                                   exc.message, {"code": exc.code}))
        except UpstreamFailure as exc:
            log.warning("toolbox %s: upstream failure on %s: %s", ctx.toolbox, msg.method, exc)
            return Reply(rpc.error(msg.id, rpc.UPSTREAM_ERROR, "The MCP server could not be reached.",
                                   {"reason": str(exc)[:300]}))

    def initialize_result(self, version: str) -> dict[str, Any]:
        return {"protocolVersion": version, "capabilities": self._capabilities(version), "serverInfo": SERVER_INFO,
                "instructions": "A governed toolbox: tool names are <namespace>__<tool>."}

    def _capabilities(self, version: str) -> dict[str, Any]:
        return {**CAPABILITIES, **self._tasks.capabilities(version)} if self._tasks is not None else CAPABILITIES

    # ---- methods

    async def _ping(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        return bridge.to_client({}, method="ping", client_version=ctx.client_version)

    async def _discover(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        return {"supportedVersions": list(rev.KNOWN), "capabilities": self._capabilities(rev.LATEST_MODERN),
                "instructions": "A governed toolbox: tool names are <namespace>__<tool>.",
                "_meta": {rev.SERVER_INFO_KEY: SERVER_INFO}, "resultType": "complete",
                "ttlMs": self._ttl, "cacheScope": "private"}

    async def _tools(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        if self._pin_check is not None:
            await self._check_pins(ctx)
        tools = await self._directory.list_tools(ctx.principal, ctx.project_id, ctx.toolbox)
        views = [tool_view(t) for t in tools]
        if self._tasks is not None:  # 2025-11-25 clients: each tool's execution.taskSupport (tasks.py)
            await self._tasks.annotate(ctx, tools, views)
        return bridge.to_client({"tools": views}, method="tools/list",
                                client_version=ctx.client_version, ttl_ms=self._ttl, private=True)

    async def _check_pins(self, ctx: McpContext) -> None:
        """List-time pinning: each server's live `tools/list` goes to the registry's pinning check (a drifted
        definition is quarantined before this very list is read). At most once per server per interval on each
        instance, so a busy toolbox does not pay an upstream round trip on every list; the timer covers the rest."""
        assert self._pin_check is not None
        now = self._clock()
        due = [s for s in await self._servers(ctx) if now - self._pinned_at.get((ctx.project_id, s.id), -1e9)
               >= self._pin_every]

        async def one(server: McpServer) -> None:
            self._pinned_at[(ctx.project_id, server.id)] = now
            try:
                listed = await self._upstream(ctx, server, "tools/list", {})
                await self._pin_check(ctx.project_id, server.id, listed.get("tools") or [])
                if self._tasks is not None:
                    self._tasks.note_listing(ctx.project_id, server.id, listed.get("tools") or [])
            except (rpc.Fault, UpstreamFailure, GatewayError) as exc:
                log.warning("toolbox %s: pinning check of %s skipped: %s", ctx.toolbox, server.id, exc)

        await asyncio.gather(*(one(s) for s in due))
        if len(self._pinned_at) > 50_000:
            self._pinned_at.clear()

    async def _listen(self, ctx: McpContext, msg: rpc.Message) -> Reply:
        # The toolbox emits no list-changed or resource notifications yet: acknowledge the empty subset the spec
        # lets a server agree to, then end the stream (nothing to wait for on a serverless instance). The
        # subscription's id is the listen request's JSON-RPC id, on the acknowledgement and on the closing result.
        if not isinstance(msg.params.get("notifications"), dict):
            raise rpc.Fault(rpc.INVALID_PARAMS, "Invalid params: subscriptions/listen needs a notifications object.",
                            msg.id)
        sub = {SUBSCRIPTION_ID_KEY: msg.id}
        ack = rpc.notification("notifications/subscriptions/acknowledged", {"notifications": {}, "_meta": sub})
        return Reply(rpc.result(msg.id, {"resultType": "complete", "_meta": {**sub, rev.SERVER_INFO_KEY: SERVER_INFO}}),
                     before=[ack])

    # ---- pass-through of resources and prompts (servers that have at least one usable tool in the toolbox)

    async def _servers(self, ctx: McpContext) -> list[McpServer]:
        tools = await self._directory.list_tools(ctx.principal, ctx.project_id, ctx.toolbox)
        ids = dict.fromkeys(t.server_id for t in tools if t.source == "mcp")
        found = [await self._directory.server(ctx.project_id, sid) for sid in ids]
        return [s for s in found if s is not None]

    async def _upstream(self, ctx: McpContext, server: McpServer, method: str, params: dict[str, Any]
                        ) -> dict[str, Any]:
        last: Exception | None = None
        for ep in await endpoints(server, self._auth):
            try:
                return await self._pool.request(ep, ctx.caller, ctx.carried, method, bridge.strip_envelope(params))
            except UpstreamFailure as exc:
                last = exc
        raise last or UpstreamFailure("no replica")

    async def _fan_out(self, ctx: McpContext, method: str, key: str, rename: Callable[[McpServer, dict], dict]
                       ) -> dict[str, Any]:
        lists = await asyncio.gather(*(self._pages(ctx, s, method, key, rename) for s in await self._servers(ctx)))
        return bridge.to_client({key: [i for part in lists for i in part]}, method=method,
                                client_version=ctx.client_version, ttl_ms=self._ttl, private=True)

    async def _pages(self, ctx: McpContext, server: McpServer, method: str, key: str,
                     rename: Callable[[McpServer, dict], dict]) -> list[dict[str, Any]]:
        """One server's whole list: its pages in order, following `nextCursor` (at most `MAX_LIST_PAGES`, a cursor
        seen before ends it). A server that fails contributes the pages it already gave."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_LIST_PAGES):
            try:
                res = await self._upstream(ctx, server, method, {"cursor": cursor} if cursor is not None else {})
            except rpc.Fault as fault:
                if fault.code != rpc.METHOD_NOT_FOUND:
                    log.info("toolbox %s: %s on %s failed: %s", ctx.toolbox, method, server.id, fault.message)
                return out  # a server that does not offer resources/prompts contributes nothing
            except (UpstreamFailure, GatewayError) as exc:
                log.warning("toolbox %s: %s on %s failed: %s", ctx.toolbox, method, server.id, exc)
                return out
            items = res.get(key)
            if isinstance(items, list):
                out.extend(rename(server, i) for i in items if isinstance(i, dict))
            nxt = res.get("nextCursor")
            if not isinstance(nxt, str) or not nxt or nxt in seen:
                return out
            seen.add(nxt)
            cursor = nxt
        log.warning("toolbox %s: %s on %s stopped after %d pages", ctx.toolbox, method, server.id, MAX_LIST_PAGES)
        return out

    async def _owner(self, ctx: McpContext, namespace: str) -> McpServer:
        for server in await self._servers(ctx):
            if server.spec.namespace == namespace:
                return server
        raise NotFound(f"nothing in this toolbox has the namespace '{namespace[:32]}'.")

    async def _resources(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        return await self._fan_out(ctx, "resources/list", "resources", _rename_uri)

    async def _templates(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        return await self._fan_out(ctx, "resources/templates/list", "resourceTemplates", _rename_template)

    async def _prompts(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        return await self._fan_out(ctx, "prompts/list", "prompts", _rename_name)

    async def _read(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        uri = msg.params.get("uri")
        namespace, original = split_uri(uri) if isinstance(uri, str) else (None, None)
        if namespace is None or original is None:
            raise rpc.Fault(rpc.INVALID_PARAMS, "Resource not found.", msg.id)
        server = await self._owner(ctx, namespace)
        res = await self._upstream(ctx, server, "resources/read", {**msg.params, "uri": original})
        for item in res.get("contents") or []:
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                item["uri"] = f"{namespace}+{item['uri']}"
        # 2026 clients: cacheable like a list, `private` (read on this key's behalf); the server's own hint, if any,
        # can only shorten the toolbox's.
        hint = res.get("ttlMs")
        ttl = min(hint, self._ttl) if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 0 else self._ttl
        return bridge.to_client(res, method="resources/read", client_version=ctx.client_version, ttl_ms=ttl,
                                private=True)

    async def _prompt(self, ctx: McpContext, msg: rpc.Message) -> dict[str, Any]:
        name = msg.params.get("name")
        if not isinstance(name, str) or NAMESPACE_SEPARATOR not in name:
            raise rpc.Fault(rpc.INVALID_PARAMS, "Invalid params: unknown prompt.", msg.id)
        namespace, original = name.split(NAMESPACE_SEPARATOR, 1)
        server = await self._owner(ctx, namespace)
        res = await self._upstream(ctx, server, "prompts/get", {**msg.params, "name": original})
        return bridge.to_client(res, method="prompts/get", client_version=ctx.client_version)


def split_uri(uri: str) -> tuple[str | None, str | None]:
    """`<namespace>+<original uri>` (a valid URI scheme: the namespace is [a-z0-9-]) → its two parts."""
    head, sep, rest = uri.partition("+")
    if not sep or not head or not rest or ":" in head:
        return None, None
    return head, rest


def _rename_uri(server: McpServer, item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "uri": f"{server.spec.namespace}+{item.get('uri', '')}"}


def _rename_template(server: McpServer, item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "uriTemplate": f"{server.spec.namespace}+{item.get('uriTemplate', '')}"}


def _rename_name(server: McpServer, item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "name": f"{server.spec.namespace}{NAMESPACE_SEPARATOR}{item.get('name', '')}"}
