"""MCP over HTTP at `/mcp/{toolbox}`: streamable HTTP for every revision, stateless on the gateway side.

POST: one JSON-RPC message. `initialize` opens a 2025-era session whose id is sealed state (`mcp/session.py`);
later requests carry it and may land on any instance. A request with the 2026 envelope needs no session. Answers
are JSON, or SSE when the reply streams messages first (elicitation while an approval is pending, the
subscription acknowledgement). GET opens the server→client stream of a 2025 session (a priming event, then the
server closes and the client polls, as 2025-11-25 allows); DELETE ends a session. Malformed input is answered with
a JSON-RPC error and a 4xx; nothing a client sends produces a 5xx.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ...auth.principal import Principal
from ...errors import GatewayError, NotFound
from .context import McpContext, Reply
from .directory import ToolDirectory
from .input_relay import InputRelay
from .gateway import ToolboxServer
from .mcp import batch
from .mcp import jsonrpc as rpc
from .mcp import revisions as rev
from .mcp.session import SessionCodec, SessionInvalid, SessionState
from .mcp.sse import encode
from .upstreams import AuthHeaders, SessionPool, endpoints

log = logging.getLogger(__name__)

_BAD_REQUEST_CODES = frozenset({rpc.PARSE_ERROR, rpc.INVALID_REQUEST, rpc.HEADER_MISMATCH,
                                rpc.UNSUPPORTED_PROTOCOL_VERSION})


@dataclass
class HttpReply:
    status: int
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = "application/json"


def _json(status: int, message: dict[str, Any], headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(status, rpc.dumps(message), headers=headers or {})


def _fault(fault: rpc.Fault, status: int | None = None) -> HttpReply:
    return _json(status or (400 if fault.code in _BAD_REQUEST_CODES else 200), fault.body())


class McpTransport:
    def __init__(self, server: ToolboxServer, directory: ToolDirectory, codec: SessionCodec, pool: SessionPool,
                 auth: AuthHeaders, relay: InputRelay | None = None) -> None:
        self._server = server
        self._directory = directory
        self._codec = codec
        self._pool = pool
        self._auth = auth
        self._relay = relay

    async def post(self, principal: Principal, toolbox: str, headers: dict[str, str], body: bytes,
                   request_id: str, started: float = 0.0) -> HttpReply:
        if batch.is_batch(body):
            return await self._batch(principal, toolbox, headers, body, request_id, started)
        parsed = rpc.parse(body)
        if isinstance(parsed, rpc.Fault):
            return _fault(parsed)
        msg = parsed
        if not msg.is_request:  # notifications; answers to our elicitations (an approval's: nothing to keep)
            if msg.is_response and self._relay is not None and self._relay.owns(msg.id):
                await self._relay.answer(principal.project_id or "", _bound(principal), msg.raw)
            return HttpReply(202, media_type=None)
        base = dict(principal=principal, project_id=principal.project_id or "", toolbox=toolbox,
                    request_id=request_id, headers=headers, started=started)
        try:
            if msg.method == "initialize":
                return await self._initialize(McpContext(client_version="", **base), msg)
            ctx = await self._context(base, msg, headers)
        except rpc.Fault as fault:
            return _fault(fault)
        except SessionInvalid:
            return _json(404, rpc.error(msg.id, rpc.INVALID_REQUEST, "Session not found; initialize again."))
        except NotFound as exc:
            return _json(404, rpc.error(msg.id, rpc.INVALID_PARAMS, exc.message))
        except GatewayError as exc:
            return _json(200, rpc.error(msg.id, rpc.GOVERNANCE_REFUSED, exc.message, {"code": exc.code}))
        reply = await self._server.handle(ctx, msg)
        return self._respond(reply, headers)

    async def _batch(self, principal: Principal, toolbox: str, headers: dict[str, str], body: bytes,
                     request_id: str, started: float) -> HttpReply:
        """A JSON array body: answered as a batch only on a 2025-03-26 session (`mcp/batch.py`)."""
        items = batch.load(body)
        if isinstance(items, rpc.Fault):
            return _fault(items)
        session_id = headers.get(rev.SESSION_HEADER)
        if not session_id or rev.is_modern(headers.get(rev.VERSION_HEADER, "")):
            return _fault(batch.refusal(headers.get(rev.VERSION_HEADER)), 400)
        try:
            state = self._codec.open(session_id, toolbox=toolbox, principal=_bound(principal))
        except SessionInvalid:
            return _json(404, rpc.error(None, rpc.INVALID_REQUEST, "Session not found; initialize again."))
        if not batch.allowed(state.client_version):
            return _fault(batch.refusal(state.client_version), 400)

        async def one(msg: rpc.Message) -> dict[str, Any] | None:
            ctx = McpContext(principal=principal, project_id=principal.project_id or "", toolbox=toolbox,
                             request_id=request_id, headers=headers, started=started,
                             client_version=state.client_version, elicitation=state.elicitation, session=state)
            reply = await self._server.handle(ctx, msg)
            if reply.wait is not None:  # no stream for a batch: the single-request fallback answer
                reply.wait.close()
                return reply.fallback
            return reply.message

        answers = await batch.answer(items, one)
        return HttpReply(200, rpc.dumps(answers)) if answers else HttpReply(202, media_type=None)

    async def _context(self, base: dict[str, Any], msg: rpc.Message, headers: dict[str, str]) -> McpContext:
        meta = msg.params.get("_meta")
        if rev.is_modern(headers.get(rev.VERSION_HEADER, "")) or (
                isinstance(meta, dict) and rev.PROTOCOL_VERSION_KEY in meta):
            env = rev.read_envelope(msg, headers)
            await self._directory.toolbox(base["principal"], base["project_id"], base["toolbox"])
            return McpContext(client_version=env.version,
                              elicitation=isinstance(env.capabilities.get("elicitation"), dict), **base)
        session_id = headers.get(rev.SESSION_HEADER)
        if not session_id:
            raise rpc.Fault(rpc.INVALID_REQUEST, "Bad Request: send initialize first (no Mcp-Session-Id), or "
                                                 "the 2026-07-28 request envelope.", msg.id)
        state = self._codec.open(session_id, toolbox=base["toolbox"], principal=_bound(base["principal"]))
        sent = headers.get(rev.VERSION_HEADER)
        if sent is not None and sent != state.client_version:
            raise rpc.Fault(rpc.INVALID_REQUEST, "Bad Request: MCP-Protocol-Version does not match the session.",
                            msg.id)
        return McpContext(client_version=state.client_version, elicitation=state.elicitation, session=state,
                          **base)

    async def _initialize(self, ctx: McpContext, msg: rpc.Message) -> HttpReply:
        version = rev.choose_handshake(msg.params.get("protocolVersion"))
        await self._directory.toolbox(ctx.principal, ctx.project_id, ctx.toolbox)
        caps = msg.params.get("capabilities")
        elicitation = rev.has_elicitation(version) and isinstance(caps, dict) and \
            isinstance(caps.get("elicitation"), dict)
        ctx.client_version = version
        state = SessionState(principal=_bound(ctx.principal), toolbox=ctx.toolbox, client_version=version,
                             elicitation=elicitation, upstreams=await self._connect_all(ctx),
                             expires=self._codec.expiry())
        result = rpc.result(msg.id, self._server.initialize_result(version))
        return _json(200, result, {"Mcp-Session-Id": self._codec.seal(state)})

    async def _connect_all(self, ctx: McpContext) -> dict[str, Any]:
        """Negotiate with every server of the toolbox now, so the session id carries their sessions and no
        instance has to handshake again. A server that is down is simply negotiated later, on first use."""
        tools = await self._directory.list_tools(ctx.principal, ctx.project_id, ctx.toolbox)
        servers = [s for sid in dict.fromkeys(t.server_id for t in tools if t.source == "mcp")
                   if (s := await self._directory.server(ctx.project_id, sid)) is not None]

        async def one(server: Any) -> tuple[str, Any] | None:
            try:
                ep = (await endpoints(server, self._auth))[0]
                return ep.id, await self._pool.session(ep, ctx.caller)
            except Exception as exc:  # noqa: BLE001 - negotiated again on first use; logged, not fatal
                log.warning("toolbox %s: could not pre-connect server %s: %s", ctx.toolbox, server.id, exc)
                return None

        return dict(r for r in await asyncio.gather(*(one(s) for s in servers[:64])) if r is not None)

    def _respond(self, reply: Reply, headers: dict[str, str]) -> HttpReply:
        accept = headers.get("accept", "")
        streams = "text/event-stream" in accept
        if not reply.before and reply.wait is None:
            assert reply.message is not None
            error = reply.message.get("error")
            status = 400 if isinstance(error, dict) and error.get("code") in _BAD_REQUEST_CODES else 200
            if reply.body is not None:
                return HttpReply(status, reply.body, headers=reply.headers)
            return _json(status, reply.message, reply.headers)
        if not streams:
            if reply.wait is not None:
                reply.wait.close()  # never started; the client cannot receive an elicitation
                return _json(200, reply.fallback or rpc.error(None, rpc.APPROVAL_PENDING, "Approval pending."))
            assert reply.message is not None
            return _json(200, reply.message, reply.headers)
        return HttpReply(200, chunks=_stream(reply), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", **reply.headers})

    async def get(self, principal: Principal, toolbox: str, headers: dict[str, str]) -> HttpReply:
        if "text/event-stream" not in headers.get("accept", ""):
            return HttpReply(406, media_type=None)
        if rev.is_modern(headers.get(rev.VERSION_HEADER, "")):
            return HttpReply(405, headers={"Allow": "POST"}, media_type=None)
        try:
            self._codec.open(headers.get(rev.SESSION_HEADER, ""), toolbox=toolbox, principal=_bound(principal))
        except SessionInvalid:
            return HttpReply(404 if headers.get(rev.SESSION_HEADER) else 400, media_type=None)

        async def priming() -> AsyncIterator[bytes]:
            # An event id and a retry hint, then the server closes: the client reconnects later (SSE polling).
            yield b"id: 0\nretry: 30000\ndata: \n\n"

        return HttpReply(200, chunks=priming(), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache"})


def _bound(principal: Principal) -> str:
    return principal.key_id or principal.subject


async def _stream(reply: Reply) -> AsyncIterator[bytes]:
    for message in reply.before:
        yield encode(message)
    final = reply.message
    if reply.wait is not None:
        final = await _settle(reply.wait)
    if final is not None:
        yield encode(final)


async def _settle(wait: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        return await wait
    except rpc.Fault as fault:
        return fault.body()
