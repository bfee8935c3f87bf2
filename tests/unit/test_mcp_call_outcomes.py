"""What a `tools/call` that reached its server but did not succeed looks like: the client gets the JSON-RPC error
(HTTP 200, as MCP answers), and the request-log row says it failed — status and error code — so outcome filters,
error-rate alerts and SLA figures count it. A tool result with `isError` is the tool's own answer: a 200 row."""
from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from shared.pillars.tools.mcp import jsonrpc as rpc
from tests.unit.test_mcp_hot_path import CALL, HEADERS, KEY, _server, plane


def answering(result: dict | None = None, error: dict | None = None, delay: float = 0.0):
    """A 2026-07-28 server that answers every `tools/call` with `result` or `error` (after `delay` seconds)."""
    def factory(seen: list[dict]) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            msg = orjson.loads(request.content)
            seen.append(msg)
            if msg["method"] == "server/discover":
                return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": {
                    "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "resultType": "complete"}})
            await asyncio.sleep(delay)
            body = {"jsonrpc": "2.0", "id": msg["id"], **({"error": error} if error else {"result": result})}
            return httpx.Response(200, json=body)
        return httpx.MockTransport(handle)
    return factory


async def _one(upstream, **kw):
    transport, sink, usage, _ = await plane(False, upstream, **kw)
    reply = await transport.post(KEY, "box", HEADERS, CALL, "r1")
    await usage.close()
    [row] = sink.records
    return reply, orjson.loads(reply.body), row


@pytest.mark.parametrize("error, status", [({"code": -32603, "message": "boom"}, 502),
                                           ({"code": -32602, "message": "bad arguments"}, 400)])
async def test_the_servers_own_json_rpc_error_is_a_failed_row(error, status):
    reply, body, row = await _one(answering(error=error))
    assert reply.status == 200 and body["error"]["code"] == error["code"]
    assert (row.status, row.error_code, row.attributes["jsonrpc_error"]) == (status, f"mcp_{-error['code']}",
                                                                            error["code"])


async def test_a_timeout_is_a_504_row_and_a_json_rpc_timeout_error():
    slow = answering(result={"content": [], "resultType": "complete"}, delay=5)
    reply, body, row = await _one(slow, server=_server(timeouts={"call_seconds": 0.05}))
    assert body["error"]["code"] == rpc.REQUEST_TIMEOUT
    assert (row.status, row.error_code) == (504, "mcp_32001")


async def test_a_result_over_the_tools_limit_is_a_502_row():
    big = answering(result={"content": [{"type": "text", "text": "x" * 5000}], "resultType": "complete"})
    reply, body, row = await _one(big, max_result_bytes=1000)
    assert body["error"]["code"] == rpc.RESULT_TOO_LARGE
    assert (row.status, row.error_code) == (502, "mcp_32034")


async def test_a_tool_result_marked_is_error_is_the_tools_answer_and_a_200_row():
    reply, body, row = await _one(answering(result={"content": [{"type": "text", "text": "no such file"}],
                                                    "isError": True, "resultType": "complete"}))
    assert body["result"]["isError"] is True
    assert (row.status, row.error_code) == (200, None)
