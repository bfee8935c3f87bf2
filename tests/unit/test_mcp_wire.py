"""The MCP upstream wires (shared/pillars/tools/mcp/wire.py, http1.py): SSE lines across chunk boundaries,
keep-alive reuse, one socket write per request, egress checks on connect, httpx error classes, no unasked
compression, LeanWire's framing limits — against a real HTTP server on 127.0.0.1 (asyncio.start_server), and
McpUpstream over each wire end to end."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from shared.egress import EgressPolicy
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.session import UpstreamSession
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream, UpstreamFailure
from shared.upstreams.lean_http import LeanHttp as LeanWire
from shared.pillars.tools.mcp.wire import HttpxWire, UnsupportedEncoding, lines
from shared.upstreams.egress_transport import guarded_client
from shared.upstreams.egress_transport import EgressRefused


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def test_lines_across_chunk_boundaries():
    got = [line async for line in lines(_chunks(b"data: a\r", b"\ndata: \xc3", b"\xa9\r\n\r", b"tail"),
                                        max_line_bytes=100)]
    assert got == ["data: a", "data: é", "", "tail"]


async def test_an_endless_line_is_refused():
    with pytest.raises(ValueError):
        _ = [line async for line in lines(_chunks(b"x" * 60, b"y" * 60), max_line_bytes=100)]


class ClosingHttpxWire(HttpxWire):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(guarded_client(policy))
        self.lean = False

    async def aclose(self) -> None:
        await self._client.aclose()


@pytest.fixture(params=["httpx", "lean"])
def make_wire(request):
    def make(policy: EgressPolicy):
        if request.param == "httpx":
            return ClosingHttpxWire(policy)
        wire = LeanWire(policy, max_connections=10)
        wire.lean = True  # type: ignore[attr-defined]
        return wire
    return make


class Server:
    """A minimal real HTTP/1.1 server: records each connection's reads; answers from a queue of raw responses."""

    def __init__(self) -> None:
        self.connections = 0
        self.first_reads: list[bytes] = []
        self.answers: list[bytes | Callable[[dict], bytes]] = []  # raw, or built from the request's JSON
        self.server: asyncio.Server | None = None
        self.hang_up = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                self.first_reads.append(data)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                while len(body) < length:
                    body += await reader.read(65536)
                answer = self.answers.pop(0)
                writer.write(answer(orjson.loads(body)) if callable(answer) else answer)
                await writer.drain()
                if self.hang_up:
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/mcp"


def json_answer(body: dict, extra: bytes = b"") -> bytes:
    raw = orjson.dumps(body)
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra +
            b"content-length: " + str(len(raw)).encode() + b"\r\n\r\n" + raw)


def sse_answer(*messages: dict) -> bytes:
    payload = b"".join(b"event: message\ndata: " + orjson.dumps(m) + b"\n\n" for m in messages)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 7]), payload[i:i + 7]) for i in range(0, len(payload), 7))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: s-1\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")


async def test_wire_keeps_connections_alive_and_sends_each_request_in_one_piece(make_wire):
    wire = make_wire(EgressPolicy(allow_loopback=True))
    async with Server() as srv:
        srv.answers += [json_answer({"n": 1}, b"X-Upper: Yes\r\n"), json_answer({"n": 2})]
        for n in (1, 2):
            async with wire.post(srv.url, b'{"ping":true}', {"Content-Type": "application/json"}) as resp:
                body = b"".join([c async for c in resp.chunks])
            assert resp.status == 200 and orjson.loads(body) == {"n": n}
        assert resp.headers["content-type"] == "application/json"
        assert srv.connections == 1  # kept alive
        if wire.lean:  # head and body in one write; compression never asked for
            assert all(r.endswith(b'{"ping":true}') and b"POST /mcp HTTP/1.1" in r for r in srv.first_reads)
            assert b"accept-encoding" not in srv.first_reads[0].lower()
    await wire.aclose()


async def test_mcp_upstream_over_the_wire_reads_json_and_sse(make_wire):
    wire = make_wire(EgressPolicy(allow_loopback=True))
    async with httpx.AsyncClient() as http, Server() as srv:
        up = McpUpstream(http, timeout=5, max_bytes=1 << 20, wire=wire)
        ep = Endpoint(id="s/a", url=srv.url, modern=False)
        srv.answers += [lambda req: sse_answer({"jsonrpc": "2.0", "id": "x", "method": "ping"},  # answered first
                                               {"jsonrpc": "2.0", "id": req["id"],
                                                "result": {"protocolVersion": "2025-11-25"}}),
                        b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
                        b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"]
        session = await up.connect(ep)
        assert session.version == "2025-11-25" and session.session_id == "s-1"
        srv.answers.append(json_answer({"jsonrpc": "2.0", "id": 0, "error": {"code": -32602, "message": "nope"}}))
        with pytest.raises(rpc.Fault) as fault:
            await up.request(ep, session, "tools/call", {"name": "t"})
        assert fault.value.code == -32602
        if wire.lean:
            srv.answers.append(json_answer({"n": 1}, b"Content-Encoding: gzip\r\n"))
            with pytest.raises(UpstreamFailure, match="content-encoding"):
                await up.request(ep, UpstreamSession(version="2025-11-25"), "tools/list", {})
    await wire.aclose()


async def test_wire_connects_only_where_the_egress_policy_allows(make_wire):
    wire = make_wire(EgressPolicy())  # loopback refused
    async with Server() as srv:
        with pytest.raises(EgressRefused):
            async with wire.post(srv.url, b"{}", {}):
                pass
        assert srv.connections == 0  # refused before any packet
    await wire.aclose()


async def test_wire_errors_are_httpx_transport_errors(make_wire):
    wire = make_wire(EgressPolicy(allow_loopback=True))
    async with Server() as srv:
        url = srv.url
    await asyncio.sleep(0)
    with pytest.raises(httpx.ConnectError):  # the failover's "unreachable replica"
        async with wire.post(url, b"{}", {}):
            pass
    if wire.lean:
        async with Server() as srv:
            srv.answers.append(json_answer({"n": 1}, b"Content-Encoding: br\r\n"))
            with pytest.raises(UnsupportedEncoding):
                async with wire.post(srv.url, b"{}", {}):
                    pass
    await wire.aclose()


# ---- LeanWire's own framing and pool rules


async def _post(wire, url: str) -> tuple[int, bytes]:
    async with wire.post(url, b"{}", {"Content-Type": "application/json"}) as resp:
        return resp.status, b"".join([c async for c in resp.chunks])


async def test_lean_wire_framing_and_reuse_rules():
    wire = LeanWire(EgressPolicy(allow_loopback=True))
    async with Server() as srv:
        srv.answers += [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",  # 1xx skipped
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbye",    # not reused
                        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz"]
        assert await _post(wire, srv.url) == (200, b"ok")
        assert await _post(wire, srv.url) == (200, b"bye")
        assert await _post(wire, srv.url) == (200, b"z")
        srv.answers += [b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"]
        async with wire.post(srv.url, b"{}", {}) as resp:  # a notification's 202: nothing read, still reusable
            assert resp.status == 202
        assert await _post(wire, srv.url) == (204, b"")
        assert wire.opened == 2 and srv.connections == 2
    await wire.aclose()


async def test_lean_wire_body_until_close_and_a_stale_idle_connection():
    wire = LeanWire(EgressPolicy(allow_loopback=True))
    async with Server() as srv:
        srv.hang_up = True  # answers keep-alive, then closes the connection anyway
        srv.answers += [b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na", b"HTTP/1.0 200 OK\r\n\r\nuntil-close"]
        assert await _post(wire, srv.url) == (200, b"a")
        await asyncio.sleep(0.05)
        # the pooled connection is noticed dead at checkout (readable: EOF) and never written to
        assert await _post(wire, srv.url) == (200, b"until-close")
        assert wire.opened == 2 and srv.connections == 2
        assert not any(wire._idle.values())  # a body that ends with the connection is never pooled
    await wire.aclose()


@pytest.mark.parametrize("answer", [b"HTTP/1.1 2x0 OK\r\n\r\n", b"SPDY/3 200 OK\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n"])
async def test_lean_wire_refuses_malformed_answers(answer):
    wire = LeanWire(EgressPolicy(allow_loopback=True))
    async with Server() as srv:
        srv.answers.append(answer)
        with pytest.raises(httpx.RemoteProtocolError):
            await _post(wire, srv.url)
    await wire.aclose()


async def test_lean_wire_refuses_header_injection_before_connecting():
    wire = LeanWire(EgressPolicy(allow_loopback=True))
    async with Server() as srv:
        with pytest.raises(httpx.LocalProtocolError):
            async with wire.post(srv.url, b"{}", {"Mcp-Name": "x\r\nX-Evil: 1"}):
                pass
        assert srv.connections == 0 and wire.opened == 0
    await wire.aclose()


@pytest.mark.parametrize("sse", [False, True])
async def test_an_answer_over_the_size_limit_is_a_fault_and_the_connection_is_dropped(make_wire, sse):
    wire = make_wire(EgressPolicy(allow_loopback=True))
    big = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x" * 5000}]}}
    async with httpx.AsyncClient() as http, Server() as srv:
        up = McpUpstream(http, timeout=5, max_bytes=1000, wire=wire)
        ep = Endpoint(id="s/a", url=srv.url)
        srv.answers.append((lambda req: sse_answer({**big, "id": req["id"]})) if sse else json_answer(big))
        with pytest.raises(rpc.Fault) as fault:
            await up.request(ep, UpstreamSession(version="2026-07-28"), "tools/call", {"name": "big"})
        assert fault.value.code == rpc.RESULT_TOO_LARGE
        srv.answers.append(json_answer({"jsonrpc": "2.0", "id": 2, "result": {}}))  # the wire still works
        assert await up.request(ep, UpstreamSession(version="2026-07-28"), "tools/call", {"name": "t"}) == {}
    await wire.aclose()
