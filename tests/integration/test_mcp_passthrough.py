"""Resources and prompts of real MCP servers through a toolbox, for a client of each revision: server-everything
(TypeScript SDK, speaks 2025-11-25), the `mcp` Python SDK server (2026-07-28) and a `fastmcp` server that pages
every list two items at a time (tests/mcp_servers/paged_server.py). The toolbox runs in process (the real
`McpTransport`, `ToolboxServer`, `SessionPool` and `McpUpstream`, a directory in memory); the servers are real
processes on 127.0.0.1. Names come back namespaced (`<namespace>__<prompt>`, `<namespace>+<uri>`), every page of
a paged server is listed, and a 2026 client's answers validate against the 2026-07-28 schema types."""
from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from mcp_types import _v2026_07_28 as v2026

from dev.emulators import free_port
from shared.auth.principal import Principal
from shared.pillars.tools.context import McpContext, Reply
from shared.pillars.tools.directory import MemoryToolDirectory
from shared.pillars.tools.domain import (McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox,
                                         ToolboxOwner, ToolboxSpec, namespaced_name)
from shared.pillars.tools.gateway import ToolboxServer
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.session import SessionCodec
from shared.pillars.tools.mcp.upstream import McpUpstream
from shared.pillars.tools.transport import McpTransport
from shared.pillars.tools.upstreams import SessionPool
from tests.support.mcp_servers import BIN, NPM_DIR, ServerProcess, _wait_port, fastmcp_python, launch, npm_ci

P = "p-pass"
MODERN = "2026-07-28"
VERSIONS = ["2025-03-26", "2025-11-25", MODERN]
KEY = Principal(kind="virtual_key", subject="k1", project_id=P, key_id="k1", key_prefix="sk-gw-k1")
# server → (one of its tools put in the toolbox)
TOOLS = {"paged": "ping", "everything": "echo", "sdk": "shout"}
DOCS = ["architecture", "extension", "features", "how-it-works", "instructions", "startup", "structure"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    npm_ci()
    logs = tmp_path_factory.mktemp("mcp-passthrough")
    ports = {name: free_port() for name in TOOLS}
    plan = {"paged": [fastmcp_python(), str(NPM_DIR / "paged_server.py"), str(ports["paged"])],
            "everything": ["node", str(BIN / "mcp-server-everything"), "streamableHttp"],
            "sdk": [sys.executable, str(NPM_DIR / "sdk_server.py"), str(ports["sdk"])]}
    started: dict[str, ServerProcess] = {}
    try:
        for name, argv in plan.items():
            env = {"PORT": str(ports[name])} if name == "everything" else None
            started[name] = launch(name, argv, ports[name], "/mcp", logs, env)
        for name, server in started.items():
            _wait_port(ports[name], server.proc, server.log)
        yield {name: s.url for name, s in started.items()}
    finally:
        for s in started.values():
            s.stop()


def _server(name: str, url: str) -> McpServer:
    return McpServer(id=name, project_id=P, spec=McpServerSpec(id=name, url=url, namespace=name),
                     lifecycle="published", approval="approved")


def _tool(server: str, tool: str) -> ToolDefinition:
    full = namespaced_name(server, tool)
    return ToolDefinition(id=full, project_id=P, server_id=server, original_name=tool, name=full,
                          definition=PinnedDefinition(name=tool), pinned_hash="sha256:" + "0" * 64,
                          status="approved")


@pytest.fixture(scope="module")
async def transport(servers: dict[str, str]) -> AsyncIterator[McpTransport]:
    """Toolbox `box`: one tool of each server. `hidden` (the sdk server again, under another namespace) is in the
    project with an approved tool, but not in the toolbox: nothing of it may show."""
    directory = MemoryToolDirectory()
    for name, url in servers.items():
        directory.add(_server(name, url), _tool(name, TOOLS[name]))
    directory.add(_server("hidden", servers["sdk"]), _tool("hidden", "shout"),
                  Toolbox(id="box", project_id=P, owner=ToolboxOwner(),
                          spec=ToolboxSpec(id="box", tools=[namespaced_name(n, t) for n, t in TOOLS.items()])))

    async def no_auth(server: McpServer) -> dict[str, str]:
        return {}

    async def no_calls(ctx: McpContext, msg: rpc.Message) -> Reply:
        raise AssertionError("tools/call is not part of these tests")

    async with httpx.AsyncClient() as http:
        pool = SessionPool(McpUpstream(http, timeout=20, max_bytes=4 << 20))
        server = ToolboxServer(directory, pool, no_auth, no_calls)
        yield McpTransport(server, directory, SessionCodec([b"pass-secret"], ttl_seconds=600), pool, no_auth)


class Client:
    """A client of one revision speaking to the toolbox over the transport (a 2025 one initializes a session)."""

    def __init__(self, transport: McpTransport, version: str) -> None:
        self.transport, self.version = transport, version
        self.headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        self.ids = iter(range(1, 10_000))

    async def start(self) -> "Client":
        if self.version != MODERN:
            body = rpc.request(0, "initialize", {"protocolVersion": self.version, "capabilities": {},
                                                 "clientInfo": {"name": "t", "version": "1"}})
            reply = await self.transport.post(KEY, "box", self.headers, orjson.dumps(body), "init")
            assert reply.status == 200, reply.body
            self.headers["mcp-session-id"] = reply.headers["Mcp-Session-Id"]
            if self.version != "2025-03-26":
                self.headers["mcp-protocol-version"] = self.version
        return self

    async def ask(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params, headers = dict(params or {}), dict(self.headers)
        if self.version == MODERN:
            params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                               "io.modelcontextprotocol/clientCapabilities": {}}
            headers.update({"mcp-protocol-version": MODERN, "mcp-method": method})
            named = params.get("uri", params.get("name"))
            if method in ("resources/read", "prompts/get") and isinstance(named, str):
                headers["mcp-name"] = named
        id_ = next(self.ids)
        reply = await self.transport.post(KEY, "box", headers, orjson.dumps(rpc.request(id_, method, params)), "r")
        assert reply.status == 200, (method, reply.status, reply.body)  # never an HTTP error for these
        answer = orjson.loads(reply.body or b"{}")
        assert answer["id"] == id_
        return answer


@pytest.fixture(params=VERSIONS)
async def client(request: pytest.FixtureRequest, transport: McpTransport) -> Client:
    return await Client(transport, request.param).start()


def _revision_fields(client: Client, result: dict[str, Any], model: type, *, cacheable: bool) -> None:
    if client.version == MODERN:
        model.model_validate(result)
        assert result["resultType"] == "complete"
        if cacheable:
            assert result["cacheScope"] == "private" and result["ttlMs"] == 0
    else:
        assert not {"resultType", "ttlMs", "cacheScope"} & set(result)


async def test_lists_show_every_page_of_every_server_in_the_toolbox_namespaced(client: Client):
    res = (await client.ask("resources/list"))["result"]
    _revision_fields(client, res, v2026.ListResourcesResult, cacheable=True)
    uris = [r["uri"] for r in res["resources"]]
    assert sorted(uris) == sorted([f"paged+notes://note/{i}" for i in range(1, 6)]  # three pages upstream
                                  + [f"everything+demo://resource/static/document/{d}.md" for d in DOCS]
                                  + ["sdk+weather://cities"])
    assert "nextCursor" not in res

    res = (await client.ask("resources/templates/list"))["result"]
    _revision_fields(client, res, v2026.ListResourceTemplatesResult, cacheable=True)
    assert sorted(t["uriTemplate"] for t in res["resourceTemplates"]) == sorted(
        [f"paged+{k}://item/{{item_id}}" for k in ("alpha", "beta", "gamma")]
        + [f"everything+demo://resource/dynamic/{k}/{{resourceId}}" for k in ("text", "blob")])

    res = (await client.ask("prompts/list"))["result"]
    _revision_fields(client, res, v2026.ListPromptsResult, cacheable=True)
    assert sorted(p["name"] for p in res["prompts"]) == sorted(
        [f"paged__greet-{i}" for i in range(1, 4)] + ["sdk__travel"]
        + [f"everything__{n}" for n in ("simple-prompt", "args-prompt", "completable-prompt", "resource-prompt")])


@pytest.mark.parametrize(("uri", "text"), [
    ("paged+notes://note/3", "note number 3"), ("paged+beta://item/7", "beta 7"), ("sdk+weather://cities",
                                                                                   "Paris,Berlin"),
    ("everything+demo://resource/dynamic/text/1", "Resource 1: This is a plaintext resource")])
async def test_read_goes_to_the_owner_and_comes_back_namespaced(client: Client, uri: str, text: str):
    res = (await client.ask("resources/read", {"uri": uri}))["result"]
    # everything speaks only 2025-11-25: a 2026 client still gets ttlMs/cacheScope (ReadResourceResult)
    _revision_fields(client, res, v2026.ReadResourceResult, cacheable=True)
    [content] = res["contents"]
    assert content["uri"] == uri and content["text"].startswith(text)


@pytest.mark.parametrize(("name", "arguments", "text"), [
    ("paged__greet-2", {"who": "Ann"}, "Greeting 2 for Ann."), ("sdk__travel", {"city": "Oslo"},
                                                                "Plan a trip to Oslo."),
    ("everything__simple-prompt", {}, "This is a simple prompt without arguments.")])
async def test_prompts_get_goes_to_the_owner_under_its_own_name(client: Client, name: str,
                                                               arguments: dict[str, str], text: str):
    res = (await client.ask("prompts/get", {"name": name, "arguments": arguments}))["result"]
    _revision_fields(client, res, v2026.GetPromptResult, cacheable=False)
    assert res["messages"][0]["content"]["text"] == text


@pytest.mark.parametrize(("method", "params"), [
    ("resources/read", {"uri": "hidden+weather://cities"}), ("prompts/get", {"name": "hidden__travel"}),
    ("resources/read", {"uri": "weather://cities"}), ("prompts/get", {"name": "travel"})])
async def test_what_the_toolbox_does_not_serve_is_invalid_params(client: Client, method: str,
                                                                 params: dict[str, Any]):
    """Not in the toolbox (`hidden` is the project's, with an approved tool) or not namespaced: refused by the
    toolbox itself."""
    assert (await client.ask(method, params))["error"]["code"] == rpc.INVALID_PARAMS


@pytest.mark.parametrize(("method", "params"), [
    ("resources/read", {"uri": "sdk+weather://nowhere"}), ("resources/read", {"uri": "everything+demo://nowhere"}),
    ("prompts/get", {"name": "everything__nothing"}), ("prompts/get", {"name": "paged__nothing"})])
async def test_what_the_server_refuses_comes_back_as_its_json_rpc_error(client: Client, method: str,
                                                                        params: dict[str, Any]):
    error = (await client.ask(method, params))["error"]  # HTTP 200 (checked in `ask`), the server's own code
    assert isinstance(error["code"], int) and error["code"] != rpc.UPSTREAM_ERROR and error["message"]
