"""What reaches an MCP server from a client's request through the toolbox: the gateway's own protocol headers and
the server's configured outbound auth — never the client's credential, cookies or any other header it sent
(allow-list by construction: the upstream request is built from the endpoint, not copied from the inbound one)."""
from __future__ import annotations

import httpx
import orjson

from tests.unit.test_mcp_hot_path import CALL, HEADERS, KEY, plane

CLIENT = {**HEADERS, "authorization": "Bearer sk-gw-client-secret", "cookie": "session=abc",
          "x-api-key": "client-key", "x-forwarded-for": "10.0.0.1", "x-custom": "1"}
ALLOWED = {"host", "accept", "accept-encoding", "connection", "content-type", "content-length", "user-agent",
           "mcp-protocol-version", "mcp-method", "mcp-name", "traceparent", "tracestate"}


def recording(headers: list[dict[str, str]]):
    def factory(seen: list[dict]) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            msg = orjson.loads(request.content)
            seen.append(msg)
            headers.append(dict(request.headers))
            res = ({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "resultType": "complete"}
                   if msg["method"] == "server/discover" else {"content": [], "resultType": "complete"})
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": res})
        return httpx.MockTransport(handle)
    return factory


async def test_no_client_header_reaches_the_server():
    sent: list[dict[str, str]] = []
    transport, _, usage, seen = await plane(False, recording(sent))
    reply = await transport.post(KEY, "box", CLIENT, CALL, "r1")
    await usage.close()
    assert reply.status == 200 and [m["method"] for m in seen][-1] == "tools/call"
    for headers in sent:
        assert set(headers) <= ALLOWED, set(headers) - ALLOWED
        assert "sk-gw-client-secret" not in str(headers) and "client-key" not in str(headers)
