"""Wave 9 hardening of the tools pillar, in process (httpx.MockTransport, memory stores): the legacy HTTP+SSE
endpoint event may not downgrade the scheme; replicas are probed and pin-checked like the primary; an unreachable
legacy server is a `reachable` finding; the list-time pin memo follows the pins; API-to-MCP header/cookie
parameters cannot shadow the admin's auth header."""
from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.pillars.tools.domain import McpServer, McpServerSpec
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.revisions import LEGACY_SSE
from shared.pillars.tools.mcp.session import UpstreamSession
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream, UpstreamFailure
from shared.pillars.tools.outbound_auth import OutboundAuthenticator
from shared.pillars.tools.probe import Prober


def legacy_server(endpoint: str, tools: list[str], posts: list[httpx.Request] | None = None) -> httpx.MockTransport:
    """A 2024-11-05 server: GET streams an `endpoint` event, then answers each POSTed request on the stream."""
    queues: list[asyncio.Queue] = []

    async def stream(q: asyncio.Queue):
        yield f"event: endpoint\ndata: {endpoint}\n\n".encode()
        while (msg := await q.get()) is not None:
            yield f"event: message\ndata: {orjson.dumps(msg).decode()}\n\n".encode()

    def handle(req: httpx.Request) -> httpx.Response:
        if req.method == "GET":
            queues.append(asyncio.Queue())
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream(queues[-1]))
        if posts is not None:
            posts.append(req)
        msg = orjson.loads(req.content)
        q = queues[-1]
        if msg.get("method") == "initialize":
            q.put_nowait(rpc.result(msg["id"], {"protocolVersion": "2024-11-05", "capabilities": {},
                                                "serverInfo": {"name": "legacy", "version": "1"}}))
        elif msg.get("method") == "tools/list":
            q.put_nowait(rpc.result(msg["id"], {"tools": [{"name": n, "inputSchema": {"type": "object"}}
                                                          for n in tools]}))
            q.put_nowait(None)
        return httpx.Response(202)

    return httpx.MockTransport(handle)


# ---- 1. the legacy endpoint event cannot move our credentialed POSTs to plain http


async def _legacy_list(endpoint: str, url: str = "https://mcp.example.com/sse"):
    posts: list[httpx.Request] = []
    upstream = McpUpstream(httpx.AsyncClient(transport=legacy_server(endpoint, ["a"], posts)), timeout=5,
                           max_bytes=1 << 20)
    ep = Endpoint("srv", url, transport="sse", headers={"Authorization": "Bearer SECRET"})
    return posts, upstream.request(ep, UpstreamSession(version=LEGACY_SSE), "tools/list", {})


@pytest.mark.parametrize("endpoint", ["http://mcp.example.com/messages", "http://mcp.example.com:443/messages",
                                      "https://elsewhere.example/messages", "//elsewhere.example/messages"])
async def test_legacy_endpoint_on_another_scheme_or_host_gets_no_post(endpoint):
    posts, call = await _legacy_list(endpoint)
    with pytest.raises(UpstreamFailure, match="another origin"):
        await call
    assert posts == []  # the credential never left


async def test_legacy_endpoint_on_the_same_origin_is_used_with_the_credential():
    for endpoint in ("/messages?session=1", "https://MCP.example.com/messages", "HTTPS://mcp.example.com/m"):
        posts, call = await _legacy_list(endpoint)
        assert [t["name"] for t in (await call)["tools"]] == ["a"]
        assert posts and all(p.url.scheme == "https" and p.headers["authorization"] == "Bearer SECRET"
                             for p in posts)
