"""The call's child spans, without the generic machinery of `start_as_current_span` (a generator-based context
manager, `use_span`, and an attach/detach for every span).

- A stage that may call out (an upstream attempt, a policy step: a remote guardrail, a cache) is made current, so
  the W3C trace context injected into its requests (and any instrumented library) names it as the parent;
- the pipeline's own stages (resolve, admit, route) only call storage, so they are started with the call span as
  explicit parent and never attached;
- a call that was sampled out gets no child spans at all: its attempts and steps only put the call's (non-recording)
  span context in place, so upstreams still receive the trace id with the not-sampled flag.
An exception ends a stage as an error with the exception's type only (its text may quote an upstream)."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .lite import LiteSpan, LiteTracer

NULL: AbstractContextManager[Any] = nullcontext()
DETACHED = frozenset({"resolve", "admit", "route"})  # the pipeline's stages: storage only, never outgoing calls


class Stage:
    __slots__ = ("_tracer", "_lite", "_call", "_parent", "_name", "_kind", "_attrs", "_current", "_span", "_token")

    def __init__(self, tracer: Any, lite: LiteTracer | None, call: Any, parent: Any, name: str, kind: SpanKind,
                 attrs: dict[str, Any] | None, current: bool) -> None:
        self._tracer, self._lite, self._call, self._parent = tracer, lite, call, parent
        self._name, self._kind, self._attrs, self._current = name, kind, attrs, current
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        if self._lite is not None and isinstance(self._call, LiteSpan):
            span = self._span = self._lite.start_child(self._call, self._parent, self._name, self._kind, self._attrs)
        else:
            span = self._span = self._tracer.start_span(self._name, context=self._parent, kind=self._kind,
                                                        attributes=self._attrs, record_exception=False,
                                                        set_status_on_exception=False)
        if self._current:
            self._token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self._token is not None:
            otel_context.detach(self._token)
        if exc_type is not None:
            self._span.set_status(Status(StatusCode.ERROR, exc_type.__name__))
        self._span.end()
        return False


class Current:
    """A sampled-out call's outgoing stage: only the call's span context, made current for propagation."""

    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._ctx)

    def __exit__(self, *exc: Any) -> bool:
        otel_context.detach(self._token)
        return False


def stage(tracer: Any, lite: LiteTracer | None, call_span: Any, call_ctx: Any, name: str,
          attributes: dict[str, Any]) -> Any:
    current = name not in DETACHED
    if call_span is None:
        return NULL
    if not call_span.is_recording():
        return Current(call_ctx) if current else NULL
    attrs = {f"gateway.{k}": str(v) for k, v in attributes.items()} if attributes else None
    if name == "attempt":
        return Stage(tracer, lite, call_span, call_ctx, f"attempt {attributes.get('target', '')}".strip(),
                     SpanKind.CLIENT, attrs, True)
    return Stage(tracer, lite, call_span, call_ctx, name, SpanKind.INTERNAL, attrs, current)
