"""W3C trace context to upstreams: the `traceparent`/`tracestate` of the current span (the upstream attempt's)
added to each outgoing request by an httpx request hook. The gateway sets these headers itself; a client's own
`traceparent` is not forwarded (forwarded headers are allow-listed), so the upstream sees the gateway's span as
its parent. MCP `_meta` and A2A metadata carriers use `carrier()` for the same values."""
from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.propagate import inject


def carrier() -> dict[str, str]:
    out: dict[str, str] = {}
    inject(out)
    return out


async def inject_trace_context(request: httpx.Request) -> None:
    for name, value in carrier().items():
        request.headers[name] = value


def install(client: httpx.AsyncClient) -> Any:
    hooks = client.event_hooks
    hooks.setdefault("request", []).append(inject_trace_context)
    client.event_hooks = hooks
    return client
