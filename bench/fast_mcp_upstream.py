"""A minimal, fast MCP server for the benchmark (raw ASGI on uvicorn): `server/discover` and the 2026-07-28
per-request `tools/call`/`tools/list`, plus `initialize` for handshake-era clients (ContextForge). One tool,
`shout`. It exists so the upstream is not the bottleneck when the proxies' own cost is measured.

    python bench/fast_mcp_upstream.py PORT"""
from __future__ import annotations

import sys

import orjson
import uvicorn

TOOL = {"name": "shout", "description": "Upper-cases the text.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}


def answer(msg: dict) -> dict:
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "server/discover":
        res = {"supportedVersions": ["2026-07-28", "2025-11-25"], "capabilities": {"tools": {}},
               "resultType": "complete", "ttlMs": 0, "cacheScope": "public"}
    elif method == "initialize":
        res = {"protocolVersion": params.get("protocolVersion", "2025-11-25"), "capabilities": {"tools": {}},
               "serverInfo": {"name": "fast", "version": "1"}}
    elif method == "tools/list":
        res = {"tools": [TOOL], "resultType": "complete", "ttlMs": 0, "cacheScope": "public"}
    elif method == "tools/call":
        text = str((params.get("arguments") or {}).get("text", ""))
        res = {"content": [{"type": "text", "text": text.upper()}], "isError": False, "resultType": "complete"}
    else:
        return {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32601, "message": "Method not found"}}
    return {"jsonrpc": "2.0", "id": msg.get("id"), "result": res}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        event = await receive()
        body += event.get("body", b"")
        more = event.get("more_body", False)
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST")]})
        await send({"type": "http.response.body", "body": b""})
        return
    msg = orjson.loads(body)
    if "id" not in msg:  # a notification
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    out = orjson.dumps(answer(msg))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
