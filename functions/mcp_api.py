"""Tools data plane: toolboxes as MCP servers at /mcp/{toolbox} (streamable HTTP, every MCP revision).
Virtual keys only; the tools pillar must be on. The protocol lives in shared/pillars/tools."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field
from starlette.responses import Response, StreamingResponse

from shared.domain.base import AppModel
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import header_dict, read_body

if TYPE_CHECKING:  # only for types: the pillar loads on first use
    from shared.pillars.tools.transport import McpTransport

HEADERS = (("Mcp-Session-Id", "The session of a 2025-era client (from its initialize answer)."),
           ("MCP-Protocol-Version", "The negotiated protocol revision."),
           ("Mcp-Method", "2026-07-28: the JSON-RPC method (must match the body)."),
           ("Mcp-Name", "2026-07-28: the tool/prompt name or resource URI (must match the body)."))


class JsonRpcMessage(AppModel):
    """One JSON-RPC 2.0 message (request, notification or response). Malformed ones get JSON-RPC errors."""

    jsonrpc: str = Field("2.0", max_length=8)
    id: Annotated[str, Field(max_length=256)] | Annotated[int, Field(ge=-(2**53), le=2**53)] | None = None
    method: str | None = Field(None, max_length=128)
    params: dict[str, Any] | None = None


def _response(reply: Any) -> Response:
    if reply.chunks is not None:
        return StreamingResponse(reply.chunks, status_code=reply.status, media_type=reply.media_type,
                                 headers=reply.headers)
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers)


def build(transport: Callable[[], McpTransport], guard: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    """`transport`: the MCP data plane, built on first call inside the worker's event loop (its clients bind to it).
    `guard`: a DataPlaneGuard for Pillar.tools."""
    api = ApiBlueprint("tools", max_body_bytes=max_body_bytes)
    limit = max_body_bytes

    def headers(call: Call) -> dict[str, str]:
        return dict(header_dict(call.req))  # a copy: the request's own dict is shared read-only

    @api.route("mcp/{toolbox}", "POST", name="mcp_post", guard=guard, body=JsonRpcMessage, parse_body=False,
               headers=HEADERS, summary="Send one MCP JSON-RPC message to a toolbox (JSON or SSE answer).")
    async def post(call: Call):
        assert call.principal is not None
        raw = await read_body(call.req, limit)
        reply = await transport().post(call.principal, call.path("toolbox"), headers(call), raw,
                                                  call.request_id, call.started)
        return _response(reply)

    @api.route("mcp/{toolbox}", "GET", name="mcp_stream", guard=guard, headers=HEADERS,
               summary="Open the server-to-client SSE stream of a 2025-era MCP session.")
    async def stream(call: Call):
        assert call.principal is not None
        return _response(await transport().get(call.principal, call.path("toolbox"), headers(call)))

    # No DELETE: a session id is sealed state any instance opens until it expires, so it cannot be ended early; MCP
    # lets a server say so with 405 (what the fallback answers, `Allow: GET, POST`), and the official clients
    # treat that as "the server keeps the session" — instead of a 204 for a session that would still work.
    return api
