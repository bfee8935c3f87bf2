"""Which calls belong together across pillars (an agent's own model and tool calls): the correlation id.

Read from what the caller sent, in this order: an explicit `x-correlation-id` header, else the trace id of a W3C
`traceparent` (the HTTP header, or an MCP request's `params._meta.traceparent`). An OpenTelemetry-instrumented
agent that the gateway called with a `traceparent` sends the same trace id on its own calls back through the
gateway, so its model and tool calls carry the agent call's correlation id without any code of its own.

Pure string checks, no OpenTelemetry import: this runs on every governed call, telemetry on or off, and allocates
nothing when the caller sent neither header."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HEADER = "x-correlation-id"
_HEADER_B, _TRACEPARENT_B = HEADER.encode(), b"traceparent"
_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32


def trace_id_of(traceparent: Any) -> str | None:
    """The trace id of a valid W3C traceparent (version ff and the all-zero id are invalid), else None."""
    if not isinstance(traceparent, str) or len(traceparent) < 55:
        return None
    m = _TRACEPARENT.match(traceparent[:55])
    if m is None or traceparent.startswith("ff") or m.group(1) == _ZERO_TRACE:
        return None
    return m.group(1)


def correlation_of(headers: Mapping[str, str], carrier: Mapping[str, Any] | None = None) -> str | None:
    raw = getattr(headers, "raw", None)
    if raw is not None:  # Starlette's Headers: one pass over the ASGI (lower-case) pairs, no per-lookup allocation
        explicit_b = parent_b = None
        for name, value in raw:
            if name == _HEADER_B:
                explicit_b = value
            elif name == _TRACEPARENT_B:
                parent_b = value
        if explicit_b is None and parent_b is None and carrier is None:
            return None
        explicit = explicit_b.decode("latin-1") if explicit_b is not None else None
        parent = parent_b.decode("latin-1") if parent_b is not None else None
    else:
        explicit, parent = headers.get(HEADER), headers.get("traceparent")
    if explicit is not None and _ID.fullmatch(explicit):
        return explicit
    if carrier is not None:
        found = trace_id_of(carrier.get("traceparent"))
        if found is not None:
            return found
    return trace_id_of(parent)


def new_correlation(request_id: str) -> str:
    """A correlation id for a call that brought none (an agent call: the agent sends it back on its own calls)."""
    if _ID.fullmatch(request_id):
        return request_id
    import secrets

    return secrets.token_hex(16)


def with_meta(params: dict[str, Any], carrier: Mapping[str, str]) -> dict[str, Any]:
    """MCP request params with W3C trace context in `_meta` (`traceparent`/`tracestate`: the unprefixed keys MCP
    reserves for it, SEP-414); the gateway's values replace a client's (the gateway's span is the parent)."""
    if not carrier:
        return params
    meta = params.get("_meta")
    return {**params, "_meta": {**(meta if isinstance(meta, dict) else {}), **carrier}}


def with_message_metadata(params: dict[str, Any], carrier: Mapping[str, str]) -> dict[str, Any]:
    """A2A SendMessage params with the same keys in `message.metadata` (A2A carries trace context in HTTP headers;
    the metadata copy reaches agents behind non-HTTP hops, e.g. a queue)."""
    message = params.get("message")
    if not carrier or not isinstance(message, dict):
        return params
    meta = message.get("metadata")
    return {**params, "message": {**message, "metadata": {**(meta if isinstance(meta, dict) else {}), **carrier}}}
