"""Resources, prompts and `subscriptions/listen` of a toolbox, in process: the toolbox fronts MCP servers simulated
with `httpx.MockTransport` (a 2026-07-28 one and a 2025-11-25 one), through the real `McpUpstream`/`SessionPool`
and, where the wire matters, the real `McpTransport`. 2026 answers are checked against the schema's own types
(`mcp_types`, the 2026-07-28 module)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import mcp_types.methods as schema_methods
import orjson
import pytest
from mcp_types import _v2026_07_28 as v2026

from shared.auth.principal import Principal
from shared.pillars.tools.context import McpContext, Reply
from shared.pillars.tools.directory import MemoryToolDirectory
from shared.pillars.tools.domain import (McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox,
                                         ToolboxOwner, ToolboxSpec, namespaced_name)
from shared.pillars.tools.gateway import MAX_LIST_PAGES, SUBSCRIPTION_ID_KEY, ToolboxServer
from shared.pillars.tools.mcp import bridge
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.session import SessionCodec
from shared.pillars.tools.mcp.upstream import McpUpstream
from shared.pillars.tools.transport import McpTransport
from shared.pillars.tools.upstreams import SessionPool

P = "proj"
MODERN = "2026-07-28"
KEY = Principal(kind="virtual_key", subject="k1", project_id=P, key_id="k1", key_prefix="sk-gw-k1")
Answer = Callable[[str, dict[str, Any]], dict[str, Any]]  # (method, params) → result (raise rpc.Fault for errors)


class Down(Exception):
    """Raised by an `Answer`: the server answers HTTP 502 (unreachable behind its proxy)."""


class Server:
    """One simulated MCP server at https://<name>.example/mcp: answers discovery/handshake itself, the rest with
    `answer`; records every request it got."""

    def __init__(self, name: str, answer: Answer, *, modern: bool) -> None:
        self.name, self.answer, self.modern = name, answer, modern
        self.seen: list[dict[str, Any]] = []

    def handle(self, msg: dict[str, Any]) -> httpx.Response:
        method, params = msg["method"], msg.get("params") or {}
        if "id" not in msg:
            return httpx.Response(202)
        if method == "server/discover":
            if not self.modern:
                return httpx.Response(200, json=rpc.error(msg["id"], rpc.METHOD_NOT_FOUND, "Method not found"))
            res = {"supportedVersions": [MODERN], "capabilities": {"resources": {}, "prompts": {}},
                   "resultType": "complete"}
        elif method == "initialize":
            res = {"protocolVersion": "2025-11-25", "capabilities": {"resources": {}, "prompts": {}},
                   "serverInfo": {"name": self.name, "version": "1"}}
        else:
            self.seen.append(msg)
            try:
                res = self.answer(method, params)
            except rpc.Fault as fault:
                return httpx.Response(200, json=rpc.error(msg["id"], fault.code, fault.message))
            except Down:
                return httpx.Response(502, text="bad gateway")
        return httpx.Response(200, json=rpc.result(msg["id"], res))

    def listed(self, method: str) -> list[dict[str, Any]]:
        return [m["params"] for m in self.seen if m["method"] == method]


def toolbox(servers: list[Server], *, ttl_ms: int = 0) -> tuple[ToolboxServer, McpTransport]:
    """A toolbox `box` with one approved tool `<name>__t` on each server."""
    by_host = {f"{s.name}.example": s for s in servers}
    directory = MemoryToolDirectory()
    tools = []
    for s in servers:
        full = namespaced_name(s.name, "t")
        tools.append(full)
        directory.add(
            McpServer(id=s.name, project_id=P, spec=McpServerSpec(id=s.name, url=f"https://{s.name}.example/mcp",
                                                                  namespace=s.name),
                      lifecycle="published", approval="approved"),
            ToolDefinition(id=full, project_id=P, server_id=s.name, original_name="t", name=full,
                           definition=PinnedDefinition(name="t"), pinned_hash="sha256:" + "0" * 64,
                           status="approved"))
    directory.add(Toolbox(id="box", project_id=P, spec=ToolboxSpec(id="box", tools=tools), owner=ToolboxOwner()))

    def route(request: httpx.Request) -> httpx.Response:
        return by_host[request.url.host].handle(orjson.loads(request.content))

    async def no_auth(server: McpServer) -> dict[str, str]:
        return {}

    async def no_calls(ctx: McpContext, msg: rpc.Message) -> Reply:
        raise AssertionError("tools/call is not part of these tests")

    pool = SessionPool(McpUpstream(httpx.AsyncClient(transport=httpx.MockTransport(route)), timeout=5,
                                   max_bytes=1 << 20))
    server = ToolboxServer(directory, pool, no_auth, no_calls, list_ttl_ms=ttl_ms)
    return server, McpTransport(server, directory, SessionCodec([b"s"], ttl_seconds=60), pool, no_auth)


def ctx(version: str) -> McpContext:
    return McpContext(principal=KEY, project_id=P, toolbox="box", request_id="r", client_version=version)


async def ask(server: ToolboxServer, version: str, method: str, params: dict[str, Any] | None = None,
              id_: rpc.RequestId = 1) -> dict[str, Any]:
    msg = rpc.parse(orjson.dumps(rpc.request(id_, method, params or {})))
    assert isinstance(msg, rpc.Message)
    reply = await server.handle(ctx(version), msg)
    assert reply.message is not None
    return reply.message


def paged(key: str, items: list[dict[str, Any]], size: int = 2) -> Answer:
    """A list method answered `size` items at a time; the cursor is the next offset (as text)."""
    def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
        start = int(params.get("cursor") or 0)
        out: dict[str, Any] = {key: items[start:start + size], "resultType": "complete", "ttlMs": 0,
                               "cacheScope": "public"}
        if start + size < len(items):
            out["nextCursor"] = str(start + size)
        return out
    return answer


# ---- pagination of the pass-through lists


RESOURCES = [{"uri": f"notes://n/{i}", "name": f"n{i}"} for i in range(7)]
PROMPTS = [{"name": f"p{i}"} for i in range(5)]
TEMPLATES = [{"uriTemplate": f"t{i}://x/{{id}}", "name": f"t{i}"} for i in range(3)]


def _lists(method: str, params: dict[str, Any]) -> dict[str, Any]:
    key, items = {"resources/list": ("resources", RESOURCES), "prompts/list": ("prompts", PROMPTS),
                  "resources/templates/list": ("resourceTemplates", TEMPLATES)}[method]
    return paged(key, items)(method, params)


@pytest.mark.parametrize("version", ["2025-03-26", "2025-11-25", MODERN])
async def test_every_page_of_every_server_is_merged_under_its_namespace(version):
    a, b = Server("aa", _lists, modern=True), Server("bb", _lists, modern=False)
    server, _ = toolbox([a, b])
    res = (await ask(server, version, "resources/list"))["result"]
    assert [r["uri"] for r in res["resources"]] == [f"{s}+notes://n/{i}" for s in ("aa", "bb") for i in range(7)]
    assert "nextCursor" not in res  # one complete list
    assert [p["cursor"] if "cursor" in p else None for p in a.listed("resources/list")] == [None, "2", "4", "6"]
    prompts = (await ask(server, version, "prompts/list"))["result"]["prompts"]
    assert [p["name"] for p in prompts] == [f"{s}__p{i}" for s in ("aa", "bb") for i in range(5)]
    templates = (await ask(server, version, "resources/templates/list"))["result"]["resourceTemplates"]
    assert [t["uriTemplate"] for t in templates] == [f"{s}+t{i}://x/{{id}}" for s in ("aa", "bb") for i in range(3)]
    if version == MODERN:
        v2026.ListResourcesResult.model_validate(res)
        assert res["cacheScope"] == "private"  # filtered by the key, whatever the server said
    else:
        assert not {"resultType", "ttlMs", "cacheScope"} & set(res)


async def test_pages_are_bounded_and_a_repeated_cursor_ends_the_list():
    def endless(method: str, params: dict[str, Any]) -> dict[str, Any]:
        n = int(params.get("cursor") or 0)
        return {"resources": [{"uri": f"x://{n}", "name": str(n)}], "nextCursor": str(n + 1)}

    def looping(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"resources": [{"uri": "y://same", "name": "same"}], "nextCursor": "again"}

    e, loop = Server("ee", endless, modern=True), Server("loop", looping, modern=True)
    server, _ = toolbox([e, loop])
    res = (await ask(server, MODERN, "resources/list"))["result"]["resources"]
    assert len(e.listed("resources/list")) == MAX_LIST_PAGES
    assert [r["uri"] for r in res if r["uri"].startswith("ee+")] == [f"ee+x://{n}" for n in range(MAX_LIST_PAGES)]
    assert [p.get("cursor") for p in loop.listed("resources/list")] == [None, "again"]  # then stops
    assert [r["uri"] for r in res if r["uri"].startswith("loop+")] == ["loop+y://same"] * 2


async def test_a_server_failing_mid_list_keeps_its_earlier_pages_and_a_server_without_the_method_is_skipped():
    def flaky(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("cursor"):
            raise rpc.Fault(rpc.INTERNAL_ERROR, "boom")
        return {"resources": [{"uri": "f://1", "name": "1"}], "nextCursor": "2"}

    def falls_over(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("cursor"):
            raise Down()
        return {"resources": [{"uri": "d://1", "name": "1"}], "nextCursor": "2"}

    def tools_only(method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise rpc.Fault(rpc.METHOD_NOT_FOUND, "Method not found")

    server, _ = toolbox([Server("ff", flaky, modern=True), Server("dd", falls_over, modern=True),
                         Server("none", tools_only, modern=False)])
    res = (await ask(server, MODERN, "resources/list"))["result"]
    assert [r["uri"] for r in res["resources"]] == ["ff+f://1", "dd+d://1"]


# ---- resources/read and prompts/get


def _reader(ttl: int | None) -> Answer:
    def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "prompts/get":
            return {"messages": [{"role": "user", "content": {"type": "text", "text": f"hi {params['arguments']}"}}]}
        out: dict[str, Any] = {"contents": [{"uri": params["uri"], "mimeType": "text/plain", "text": "body"}]}
        if ttl is not None:  # a 2026 server's own freshness hint
            out.update(resultType="complete", ttlMs=ttl, cacheScope="public")
        return out
    return answer


@pytest.mark.parametrize(("upstream_ttl", "toolbox_ttl", "expected"),
                         [(None, 0, 0), (None, 30_000, 30_000), (5_000, 30_000, 5_000), (60_000, 30_000, 30_000)])
async def test_a_2026_client_reading_gets_a_cacheable_result_whatever_the_server_speaks(upstream_ttl, toolbox_ttl,
                                                                                        expected):
    s = Server("ss", _reader(upstream_ttl), modern=upstream_ttl is not None)
    server, _ = toolbox([s], ttl_ms=toolbox_ttl)
    res = (await ask(server, MODERN, "resources/read", {"uri": "ss+docs://a"}))["result"]
    v2026.ReadResourceResult.model_validate(res)
    assert (res["ttlMs"], res["cacheScope"], res["resultType"]) == (expected, "private", "complete")
    assert res["contents"] == [{"uri": "ss+docs://a", "mimeType": "text/plain", "text": "body"}]
    assert s.listed("resources/read")[0]["uri"] == "docs://a"  # the server's own URI upstream
    old = (await ask(server, "2025-06-18", "resources/read", {"uri": "ss+docs://a"}))["result"]
    assert not {"resultType", "ttlMs", "cacheScope"} & set(old)


async def test_prompts_get_goes_to_the_owner_with_its_own_name():
    s = Server("ss", _reader(None), modern=False)
    server, _ = toolbox([s])
    res = (await ask(server, MODERN, "prompts/get", {"name": "ss__greet", "arguments": {"who": "Ann"}}))["result"]
    v2026.GetPromptResult.model_validate(res)
    assert res["messages"][0]["content"]["text"] == "hi {'who': 'Ann'}"
    assert s.listed("prompts/get") == [{"name": "greet", "arguments": {"who": "Ann"}}]
    assert "ttlMs" not in res  # a prompt is not a cacheable result in the schema


@pytest.mark.parametrize(("method", "params"), [
    ("resources/read", {"uri": "notes://no-namespace"}), ("resources/read", {"uri": "other+docs://a"}),
    ("resources/read", {"uri": 7}), ("resources/read", {}), ("prompts/get", {"name": "no_namespace"}),
    ("prompts/get", {"name": "other__greet"}), ("prompts/get", {})])
async def test_unknown_or_malformed_names_are_invalid_params(method, params):
    s = Server("ss", _reader(None), modern=True)
    server, _ = toolbox([s])
    out = await ask(server, MODERN, method, params)
    assert out["error"]["code"] == rpc.INVALID_PARAMS and not s.seen


def test_the_cacheable_methods_are_the_schemas():
    assert bridge.CACHEABLE_METHODS == schema_methods.CACHEABLE_METHODS


# ---- subscriptions/listen


LISTEN = {"notifications": {"toolsListChanged": True, "resourceSubscriptions": ["ss+docs://a"]}}
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def events(chunks: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line[5:]) for c in chunks for line in c.decode().splitlines() if line.startswith("data:")]


@pytest.mark.parametrize("id_", [9, "listen-1"])
async def test_listen_acknowledges_then_closes_with_the_subscription_id_on_both(id_):
    server, transport = toolbox([Server("ss", _reader(None), modern=True)])
    body = orjson.dumps(rpc.request(id_, "subscriptions/listen", {**LISTEN, "_meta": META}))
    headers = {"mcp-protocol-version": MODERN, "mcp-method": "subscriptions/listen",
               "accept": "application/json, text/event-stream"}
    reply = await transport.post(KEY, "box", headers, body, "r1")
    assert reply.status == 200 and reply.media_type == "text/event-stream" and reply.chunks is not None
    ack, closed = events([c async for c in reply.chunks])
    v2026.SubscriptionsAcknowledgedNotification.model_validate(ack)
    assert ack["params"]["_meta"][SUBSCRIPTION_ID_KEY] == id_
    assert ack["params"]["notifications"] == {}  # the toolbox honours none of them (yet)
    assert closed["id"] == id_
    result = v2026.SubscriptionsListenResult.model_validate(closed["result"])
    assert result.meta.io_modelcontextprotocol_subscription_id == id_


@pytest.mark.parametrize("params", [{}, {"notifications": None}, {"notifications": ["toolsListChanged"]}])
async def test_listen_without_a_notifications_object_is_invalid_params(params):
    server, _ = toolbox([Server("ss", _reader(None), modern=True)])
    out = await ask(server, MODERN, "subscriptions/listen", params)
    assert out["error"]["code"] == rpc.INVALID_PARAMS


async def test_listen_is_not_a_method_of_the_2025_revisions():
    server, _ = toolbox([Server("ss", _reader(None), modern=True)])
    out = await ask(server, "2025-11-25", "subscriptions/listen", LISTEN)
    assert out["error"]["code"] == rpc.METHOD_NOT_FOUND
