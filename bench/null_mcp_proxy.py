"""A governance-free Python proxy for the MCP benchmark's floor (bench/mcp_toolbox.py `--floor`): uvicorn (the
server the Functions FastAPI extension runs in Azure) and the gateway's own lean upstream client, forwarding each
POST body to one upstream URL and its answer back — no key, toolbox, schema, quota, log or telemetry. What any
Python proxy hop costs on this machine; the gateway's own cost is what it adds above this line.

    python bench/null_mcp_proxy.py PORT UPSTREAM_URL"""
from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shared.egress import EgressPolicy  # noqa: E402
from shared.upstreams.lean_http import LeanHttp  # noqa: E402

UPSTREAM = sys.argv[2] if len(sys.argv) > 2 else ""
FORWARD = (b"content-type", b"accept", b"mcp-protocol-version", b"mcp-method", b"mcp-name", b"mcp-session-id")
_wire: list[LeanHttp] = []


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if not _wire:
        _wire.append(LeanHttp(EgressPolicy(allow_loopback=True)))
    body, more = b"", True
    while more:
        event = await receive()
        body += event.get("body", b"")
        more = event.get("more_body", False)
    headers = [(k, v) for k, v in scope["headers"] if k in FORWARD]
    upstream = await _wire[0].request("POST", UPSTREAM, body, headers)
    try:
        answer = await upstream.read()
    finally:
        await upstream.aclose()
    ctype = upstream.headers.get("content-type", "application/json").encode()
    await send({"type": "http.response.start", "status": upstream.status, "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
