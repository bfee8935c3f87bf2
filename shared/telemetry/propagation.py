"""W3C trace context to upstreams: the `traceparent`/`tracestate` of the current span (the upstream attempt's)
added to each outgoing request by an httpx request hook. The gateway sets these headers itself; a client's own
`traceparent` is not forwarded (forwarded headers are allow-listed), so the upstream sees the gateway's span as
its parent. MCP `_meta` and A2A metadata carriers use `carrier()` for the same values.

With the default propagators (W3C trace context + baggage) the headers are formatted here, from the current span
context, as the trace-context propagator formats them — without the composite propagator's generic carrier and
setter machinery on every request. Any other global propagator (b3, a vendor's) goes through `inject`."""
from __future__ import annotations

from typing import Any

import httpx
from opentelemetry import baggage, context, trace
from opentelemetry.propagate import get_global_textmap, inject
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_checked: list[Any] = [None, False]  # [the global propagator last seen, whether it is the default pair]


def _default_propagators() -> bool:
    textmap = get_global_textmap()
    if textmap is not _checked[0]:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        inner = getattr(textmap, "_propagators", None) if isinstance(textmap, CompositePropagator) else None
        ok = inner is not None and all(type(p) in (TraceContextTextMapPropagator, W3CBaggagePropagator)
                                       for p in inner)
        _checked[:] = [textmap, ok]
    return bool(_checked[1])


def carrier() -> dict[str, str]:
    if not _default_propagators():
        out: dict[str, str] = {}
        inject(out)
        return out
    ctx = context.get_current()
    out = {}
    sc = trace.get_current_span(ctx).get_span_context()
    if sc.is_valid:
        out["traceparent"] = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
        if sc.trace_state:
            out["tracestate"] = sc.trace_state.to_header()
    if baggage.get_all(ctx):  # rare: the slow path for the baggage header only
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        W3CBaggagePropagator().inject(out, ctx)
    return out


async def inject_trace_context(request: httpx.Request) -> None:
    for name, value in carrier().items():
        request.headers[name] = value


# For a sender that bypasses httpx's request object (the upstream lean wire): the same headers as a dict to merge,
# instead of building an `httpx.Request` only to run this hook on it.
inject_trace_context.headers = carrier  # type: ignore[attr-defined]


def install(client: httpx.AsyncClient) -> Any:
    hooks = client.event_hooks
    hooks.setdefault("request", []).append(inject_trace_context)
    client.event_hooks = hooks
    return client
