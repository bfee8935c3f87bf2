"""The lean upstream client (shared/upstreams/lean_http.py, http1.py, lean_transport.py) against a real HTTP/1.1
server on 127.0.0.1: keep-alive reuse, body framing, lazily streamed bodies and when a connection may be reused,
stale idle connections, per-request timeouts and slot limits, refusals (oversize head, header injection, egress),
and OpenAIHttp's direct path (trace hook headers, backend timeouts, streamed httpx.Response)."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Backend
from shared.pillars.models.openai_http import OpenAIHttp
from shared.upstreams.egress_transport import EgressRefused, guarded_client
from shared.upstreams.http1 import MAX_HEAD
from shared.upstreams.lean_http import LeanHttp, Timeouts

LOOPBACK = EgressPolicy(allow_loopback=True)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunked(*parts: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nx-trailer: t\r\n\r\n")


class Server:
    """Answers each request (head + content-length body) with the next queued raw answer; bytes may be a list to
    send in pieces with a pause between them (a stream). Records connections and request heads."""

    def __init__(self) -> None:
        self.answers: list[bytes | list[bytes]] = []
        self.heads: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.close_after_answer = False
        self.open = self.peak = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if not self.answers:
                    continue  # silent: the client's read timeout
                answer = self.answers.pop(0)
                for piece in answer if isinstance(answer, list) else [answer]:
                    writer.write(piece)
                    await writer.drain()
                    if isinstance(answer, list):
                        await asyncio.sleep(0.01)
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for w in self.writers:
            w.close()


async def fetch(lean: LeanHttp, url: str, **kw) -> tuple[int, bytes]:
    response = await lean.request("POST", url, b'{"a":1}', {"content-type": "application/json"}, **kw)
    try:
        return response.status, await response.read()
    finally:
        await response.aclose()


async def test_keep_alive_reuse_with_content_length_and_chunked_bodies():
    async with Server() as srv, LeanHttp(LOOPBACK) as lean:
        srv.answers += [ok(b"one"), chunked(b"tw", b"o"), ok(b"three")]
        assert await fetch(lean, srv.url + "/v1/x?q=1") == (200, b"one")
        assert await fetch(lean, srv.url + "/v1/x") == (200, b"two")
        assert await fetch(lean, srv.url + "/v1/x") == (200, b"three")
        assert lean.opened == 1 and srv.connections == 1
        assert srv.heads[0].startswith(b"POST /v1/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"accept-encoding" not in srv.heads[0].lower()  # compression never asked for


async def test_a_streamed_body_arrives_lazily_and_an_abandoned_stream_closes_its_connection():
    async with Server() as srv, guarded_client(LOOPBACK) as client:
        srv.answers += [[b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                         b"6\r\ndata:1\r\n", b"6\r\ndata:2\r\n", b"0\r\n\r\n"]]
        async with client.stream("POST", srv.url + "/s", content=b"{}") as r:
            got = [part async for part in r.aiter_raw()]
        assert got == [b"data:1", b"data:2"] and srv.connections == 1
        srv.answers += [ok(b"again")]
        assert (await client.post(srv.url, content=b"{}")).content == b"again"
        assert srv.connections == 1  # read to the end and closed: reused
        srv.answers += [[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"6\r\ndata:1\r\n",
                         b"6\r\ndata:2\r\n", b"0\r\n\r\n"], ok(b"fresh")]
        async with client.stream("POST", srv.url + "/s", content=b"{}") as r:
            async for _ in r.aiter_raw():
                break  # the caller went away mid-stream
        assert (await client.post(srv.url, content=b"{}")).content == b"fresh"
        assert srv.connections == 2  # the half-read connection was closed, never reused


async def test_a_server_closing_an_idle_connection_means_a_fresh_one():
    async with Server() as srv, LeanHttp(LOOPBACK) as lean:
        srv.close_after_answer = True  # says keep-alive, closes anyway
        srv.answers += [ok(b"a"), ok(b"b")]
        assert await fetch(lean, srv.url) == (200, b"a")
        await asyncio.sleep(0.05)
        assert await fetch(lean, srv.url) == (200, b"b")  # no error: the stale one was noticed before writing
        assert lean.opened == 2 and srv.connections == 2 and len(srv.heads) == 2


async def test_read_connect_and_pool_timeouts_are_httpx_timeouts():
    async with Server() as srv, LeanHttp(LOOPBACK, max_connections=1) as lean:
        with pytest.raises(httpx.ReadTimeout):  # the server never answers
            await fetch(lean, srv.url, timeouts=Timeouts(read=0.05))
        srv.answers += [[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"ok"]]
        held = await lean.request("GET", srv.url)  # the only slot, its body not yet read
        with pytest.raises(httpx.PoolTimeout):
            await fetch(lean, srv.url, timeouts=Timeouts(pool=0.05))
        assert await held.read() == b"ok"
        await held.aclose()
        srv.answers += [ok(b"free")]
        assert await fetch(lean, srv.url, timeouts=Timeouts(pool=0.05)) == (200, b"free")

    async def hanging_dns(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["127.0.0.1"]

    async with LeanHttp(EgressPolicy(allow_loopback=True, resolver=hanging_dns)) as lean:
        with pytest.raises(httpx.ConnectTimeout):
            await fetch(lean, "http://upstream.test/", timeouts=Timeouts(connect=0.05))


async def test_an_oversize_head_is_refused_and_the_connection_dropped():
    async with Server() as srv, LeanHttp(LOOPBACK) as lean:
        srv.answers += [b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", ok(b"next")]
        with pytest.raises(httpx.RemoteProtocolError, match="too large"):
            await fetch(lean, srv.url)
        assert await fetch(lean, srv.url) == (200, b"next") and lean.opened == 2


@pytest.mark.parametrize("headers", [{"x-a": "v\r\nx-evil: 1"}, {"x-a": "v\nx"}, {"bad name": "v"}, {"x-a": "€"}])
async def test_header_injection_is_refused_before_any_connection(headers):
    async with Server() as srv, LeanHttp(LOOPBACK) as lean:
        with pytest.raises(httpx.LocalProtocolError):
            await lean.request("POST", srv.url, b"{}", headers)
        assert srv.connections == 0 and lean.opened == 0
        srv.answers += [ok(b"x")]
        assert await fetch(lean, srv.url) == (200, b"x")  # the refused request took no slot for good


def test_header_lines_are_checked_once_per_pair_and_refused_every_time():
    from shared.upstreams import http1
    ok_pair, bad_pair = (b"X-Tool", b"shout"), (b"X-Tool", b"shout\r\nX-Evil: 1")
    for _ in range(3):  # a valid pair is remembered; a refused one never is, so it is refused on every call
        head = http1.request_head("POST", b"/mcp", b"h", [ok_pair, (b"Host", b"other")], 2)
        assert b"X-Tool: shout\r\n" in head and head.count(b"Host:") == 1  # framing headers are the client's
        with pytest.raises(httpx.LocalProtocolError):
            http1.request_head("POST", b"/mcp", b"h", [ok_pair, bad_pair], 2)
    assert ok_pair in http1._LINES and bad_pair not in http1._LINES


class _Buffered:
    """A connection whose bytes have all arrived (`fill` past them: the server closed)."""

    def __init__(self, data: bytes) -> None:
        self.buf, self.timeout = data, None

    async def fill(self) -> None:
        raise httpx.RemoteProtocolError("the server closed the connection mid-answer")


@pytest.mark.parametrize("wire", [
    b"5\r\nhello\r\n0\r\n\r\nNEXT",                    # plain: taken at once, the next answer's bytes left
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",          # two chunks
    b"5;ext=1\r\nhello\r\n0\r\n\r\n",                  # a chunk extension: left to the streaming parser
    b"5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n",         # a trailer: likewise
    b"5\r\nhelloXX0\r\n\r\n",                         # a malformed chunk end
    b"zz\r\nhello\r\n0\r\n\r\n",                       # a malformed size
    b"5\r\nhel",                                       # incomplete
])
async def test_a_buffered_chunked_body_is_taken_at_once_only_when_plain_and_whole(wire):
    from shared.upstreams.http1 import Body
    fast, slow = _Buffered(wire), _Buffered(wire)
    names = {"transfer-encoding": "chunked"}
    body = Body(fast, names, 200, "POST")  # type: ignore[arg-type]
    taken = body.buffered()
    streamed: bytes | Exception
    try:
        streamed = b"".join([p async for p in Body(slow, names, 200, "POST").chunks()])  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        streamed = exc
    if taken is None:
        assert fast.buf == wire and not body.complete  # nothing consumed: the streaming parser decides
    else:
        assert taken == streamed and fast.buf == slow.buf and body.complete  # same body, same bytes left
    assert (taken is not None) == (wire.startswith(b"5\r\nhello\r\n") and b";" not in wire
                                   and b"trailer" not in wire and not wire.startswith(b"5\r\nhelloXX"))


async def test_a_body_partly_read_as_chunks_is_never_taken_again_from_the_buffer():
    from shared.upstreams.http1 import Body
    conn = _Buffered(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
    body = Body(conn, {"transfer-encoding": "chunked"}, 200, "POST")  # type: ignore[arg-type]
    parts = body.chunks()
    assert await parts.__anext__() == b"hello"
    assert body.buffered() is None  # what is left is not a whole body
    assert [p async for p in parts] == [b"world"]


async def test_egress_refuses_a_private_address_when_the_policy_forbids_it():
    async def dns(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    async with LeanHttp(EgressPolicy(resolver=dns)) as lean:
        with pytest.raises(EgressRefused):
            await fetch(lean, "https://internal.example/")
    async with Server() as srv, LeanHttp(EgressPolicy()) as lean:  # loopback not allowed
        with pytest.raises(httpx.ConnectError):
            await fetch(lean, srv.url)
        assert srv.connections == 0


async def test_openai_http_goes_lean_with_trace_hooks_and_backend_timeouts():
    seen: list[str] = []

    async def trace(request: httpx.Request) -> None:
        request.headers["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        seen.append(request.method)

    async with Server() as srv, guarded_client(LOOPBACK) as client:
        client.event_hooks = {"request": [trace], "response": []}
        http = OpenAIHttp(client, UpstreamCredentials(Settings(), TokenCache(lambda: None)))
        backend = Backend(id="b", kind="openai_compatible", endpoint=f"{srv.url}/v1", deployment="m",
                          timeout_seconds=1)
        srv.answers += [ok(b'{"id":"x"}', b"content-type: application/json\r\n"),
                        [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"8\r\ndata: 1\n\r\n", b"0\r\n\r\n"]]
        r = await http.send(backend, "chat", {"messages": []}, {}, stream=False)
        assert r.status_code == 200 and r.json() == {"id": "x"} and r.request.method == "POST"
        r = await http.send(backend, "chat", {"messages": []}, {}, stream=True)
        assert [c async for c in r.aiter_bytes()] == [b"data: 1\n"]
        await r.aclose()
        srv.answers += [ok(b"{}")]
        r = await http.request(backend, "GET", f"{srv.url}/v1/responses/resp 1", None, {}, stream=False)
        assert r.status_code == 200 and r.json() == {}
        assert srv.heads[-1].startswith(b"GET /v1/responses/resp%201 HTTP/1.1") and b"content-length" not in \
            srv.heads[-1].lower()
        assert all(b"traceparent: 00-111" in h for h in srv.heads) and seen == ["POST", "POST", "GET"]
        assert srv.connections == 1
        with pytest.raises(httpx.ReadTimeout):  # the backend's timeout_seconds bounds each read
            await http.send(backend.model_copy(update={"timeout_seconds": 0.05}), "chat", {}, {}, stream=False)



async def test_openai_http_merges_dict_hooks_without_building_a_request():
    """Telemetry's trace hook hands its headers over as a dict (`hook.headers()`): merged into the lean request,
    the hook's request form never called."""
    async def trace(request: httpx.Request) -> None:
        raise AssertionError("the dict form must be used")

    trace.headers = lambda: {"traceparent": "00-" + "3" * 32 + "-" + "4" * 16 + "-01"}  # type: ignore[attr-defined]
    async with Server() as srv, guarded_client(LOOPBACK) as client:
        client.event_hooks = {"request": [trace], "response": []}
        http = OpenAIHttp(client, UpstreamCredentials(Settings(), TokenCache(lambda: None)))
        backend = Backend(id="b", kind="openai_compatible", endpoint=f"{srv.url}/v1", deployment="m",
                          timeout_seconds=1)
        srv.answers += [ok(b'{"id":"x"}', b"content-type: application/json\r\n")]
        r = await http.send(backend, "chat", {"messages": []}, {}, stream=False)
        assert r.status_code == 200 and r.json() == {"id": "x"}
        assert b"traceparent: 00-333" in srv.heads[-1]

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_pool_limits_idle_allowance_and_expiry_on_the_clock():
    clock = Clock()
    async with Server() as srv, LeanHttp(LOOPBACK, max_connections=3, max_idle_per_origin=2, idle_seconds=5,
                                         clock=clock) as lean:
        srv.answers += [ok(b"x")] * 20
        results = await asyncio.gather(*(fetch(lean, srv.url) for _ in range(20)))
        assert results == [(200, b"x")] * 20
        assert srv.peak <= 3  # max_connections kept, queued calls all completed
        srv.answers += [[b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n", b"h"]] * 3
        held = await asyncio.gather(*(lean.request("GET", srv.url) for _ in range(3)))  # all three open at once
        for r in held:
            assert await r.read() == b"h"
            await r.aclose()
        idle = lean._idle[("http", "127.0.0.1", int(srv.url.rsplit(":", 1)[1]))]
        assert len(idle) == 2  # the idle allowance per origin; the surplus connection was closed
        opened = lean.opened
        clock.now += 6  # past idle_seconds: the idle connections are not reused
        srv.answers += [ok(b"y")]
        assert await fetch(lean, srv.url) == (200, b"y") and lean.opened == opened + 1


async def test_response_header_lines_are_parsed_once_and_a_malformed_one_refused_every_time():
    from shared.upstreams import http1
    good = b"HTTP/1.1 200 OK\r\nX-Seen: a\r\nContent-Type: application/json\r\nx-seen:  b \r\n\r\n"
    bad = b"HTTP/1.1 200 OK\r\nX-Seen: a\r\nno colon here\r\n\r\n"
    for _ in range(3):  # remembered lines give the same head as parsing them: names combined, raw pairs kept
        head = await http1.read_head(_Buffered(good))  # type: ignore[arg-type]
        assert head.names == {"x-seen": "a, b", "content-type": "application/json"}
        assert head.raw == [(b"X-Seen", b"a"), (b"Content-Type", b"application/json"), (b"x-seen", b"b")]
        with pytest.raises(httpx.RemoteProtocolError):
            await http1.read_head(_Buffered(bad))  # type: ignore[arg-type]
    assert b"X-Seen: a" in http1._RESPONSE_LINES and b"no colon here" not in http1._RESPONSE_LINES
