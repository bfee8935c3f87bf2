"""An upstream 2025 session the server no longer knows (it restarted, or expired it; also a session carried in a
sealed client session id from another instance) answers 404: the pool forgets it, negotiates a new one and sends
the request once more — the caller never sees the loss, and a server that keeps losing it is not retried forever."""
from __future__ import annotations

import httpx
import orjson
import pytest

from shared.pillars.tools.mcp.session import UpstreamSession
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream, UpstreamFailure
from shared.pillars.tools.upstreams import SessionPool

EP = Endpoint(id="s/primary", url="https://s.example/mcp")


class Server:
    """A 2025-11-25 server (no `server/discover`) that forgets every session in `lost`."""

    def __init__(self) -> None:
        self.sessions = 0
        self.lost: set[str] = set()
        self.calls: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        msg = orjson.loads(request.content)
        sid = request.headers.get("mcp-session-id")
        if msg.get("method") == "server/discover":
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"],
                                             "error": {"code": -32601, "message": "Method not found"}})
        if msg.get("method") == "initialize":
            self.sessions += 1
            return httpx.Response(200, headers={"mcp-session-id": f"u{self.sessions}"}, json={
                "jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                              "serverInfo": {"name": "s", "version": "1"}}})
        if "id" not in msg:
            return httpx.Response(202)
        if sid in self.lost:
            return httpx.Response(404, json={"jsonrpc": "2.0", "id": None,
                                             "error": {"code": -32600, "message": "Session not found"}})
        self.calls.append(sid)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [], "sid": sid}})


def _pool(server: Server) -> SessionPool:
    return SessionPool(McpUpstream(httpx.AsyncClient(transport=httpx.MockTransport(server)), timeout=5,
                                   max_bytes=1 << 16))


async def test_a_lost_pooled_session_is_renegotiated_and_the_request_sent_once_more():
    server = Server()
    pool = _pool(server)
    assert (await pool.request(EP, "k1", None, "tools/call", {"name": "t"}))["sid"] == "u1"
    server.lost.add("u1")  # the server restarted
    assert (await pool.request(EP, "k1", None, "tools/call", {"name": "t"}))["sid"] == "u2"
    assert server.calls == ["u1", "u2"] and server.sessions == 2
    assert (await pool.request(EP, "k1", None, "tools/call", {"name": "t"}))["sid"] == "u2"  # the new one is kept


async def test_a_lost_carried_session_is_dropped_from_what_the_client_session_carries():
    server = Server()
    pool = _pool(server)
    carried = {EP.id: UpstreamSession(version="2025-11-25", session_id="gone")}
    server.lost.add("gone")
    assert (await pool.request(EP, "k1", carried, "tools/call", {"name": "t"}))["sid"] == "u1"
    assert EP.id not in carried


async def test_a_server_that_loses_every_session_is_a_transport_failure_not_a_loop():
    """Lost again right after renegotiating (a stateful server behind a balancer without affinity): a transport
    failure — the pipeline fails over to another replica or answers -32033 — never an unhandled error (a 5xx)."""
    server = Server()
    pool = _pool(server)
    server.lost.update({"u1", "u2", "u3"})
    with pytest.raises(UpstreamFailure):
        await pool.request(EP, "k1", None, "tools/call", {"name": "t"})
    assert server.sessions == 2  # the first session and one renegotiation
    assert (EP.id, "k1") not in pool._pool  # nothing lost is kept
