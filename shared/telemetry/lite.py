"""Lean spans on the SDK's pipeline: the gateway's own spans (the call and its stages) without the SDK `Span`'s
per-span machinery.

Why: an SDK span costs ~30-40 µs of CPU to start and end (a lock per operation, `BoundedAttributes` cleaning each
value through ABC checks, `BoundedList`s for events and links, the sampler for every child, a `ReadableSpan` copy
at the end) — five per governed call was most of telemetry's cost. These spans keep the contract every exporter
and processor relies on — the span processor gets `on_start(span, parent_context)` with a live span (readable
`attributes`, `set_attribute`), `_on_ending(span)`, and `on_end(ReadableSpan)` with the provider's resource and
this tracer's scope — and produce the same exported span: name, ids, parent, kind, attributes, events, status,
times. What they do not do:
- no lock: a span belongs to one call, one task;
- children are not sampled again: a child of a recorded call is recorded and carries the call's flags, trace
  state and sampler attributes (what the parent-based samplers the gateway configures decide anyway, and what a
  trace-id-ratio sampler such as Application Insights' decides for every span of a trace);
- attribute values are checked with plain type tests (the SDK's rules: str, bool, int, float, or a homogeneous
  sequence of them; anything else is dropped), and the provider's span limits (count, value length) apply once,
  at the end.
Used only with the SDK's own `Tracer` (whose sampler, id generator, resource, processors and limits it reads);
any other tracer (a no-op, a vendor's) gets the regular API path (spans.py)."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import islice
from time import time_ns
from types import MappingProxyType
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import Event, ReadableSpan, Tracer
from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .rate_sampling import RootRateLimited

log = logging.getLogger("gateway.telemetry")
_SCALARS = (str, bool, int, float)
_UNSET = Status(StatusCode.UNSET)
# one TraceFlags object per (sampled, random trace id), not a new int subclass instance per span
_FLAGS = {(sampled, random_id): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
                                           | (TraceFlags.RANDOM_TRACE_ID if random_id else 0))
          for sampled in (False, True) for random_id in (False, True)}


def root_ratio_bound(sampler: Any) -> int | None:
    """The trace-id bound of the SDK's parent-based ratio sampler (what `TracerProvider(sampler=
    ParentBasedTraceIdRatio(r))` in setup.py builds), for deciding a root call without the sampler's context walks:
    a root's decision there is `trace_id & TRACE_ID_LIMIT < bound` with the sampler's attributes being the span's
    own and no trace state. Any other sampler (Application Insights', a vendor's, a subclass): None, it decides."""
    if type(sampler) not in (ParentBased, ParentBasedTraceIdRatio):
        return None
    root = getattr(sampler, "_root", None)
    return root.bound if type(root) is TraceIdRatioBased else None


def valid_value(value: Any) -> Any:
    """The value as the SDK would keep it, or None to drop it."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        kinds = {type(v) for v in value}
        if len(kinds) <= 1 and all(isinstance(v, _SCALARS) for v in value):
            return tuple(value)
    return None


class LiteTracer:
    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self.sampler = tracer.sampler
        self.ids = tracer.id_generator
        self.resource = tracer.resource
        self.processor = tracer.span_processor
        self.scope = tracer._instrumentation_scope
        self.info = tracer.instrumentation_info
        limits = tracer._span_limits
        self.max_attributes: int | None = limits.max_span_attributes
        self.max_length: int | None = limits.max_span_attribute_length
        self.root_bound = root_ratio_bound(self.sampler)
        self.root_rate = RootRateLimited.of(self.sampler) if self.root_bound is None else None
        self._on_ending = getattr(self.processor, "_on_ending", None)

    @classmethod
    def of(cls, tracer: Any) -> LiteTracer | None:
        if type(tracer) is not Tracer:
            return None
        try:
            return cls(tracer)
        except AttributeError:  # an SDK whose internals moved: the regular path, never a broken span
            log.warning("telemetry: lean spans unavailable for this OpenTelemetry SDK; using the SDK's spans")
            return None

    def enabled(self) -> bool:
        is_enabled = getattr(self._tracer, "_is_enabled", None)  # the SDK's tracer configurator may switch it off
        return is_enabled is None or bool(is_enabled())

    def start_call(self, name: str, parent_ctx: Any, kind: SpanKind, attributes: dict[str, Any]) -> Any:
        """The call's span: the sampler decides (as `Tracer.start_span` would); a dropped call is non-recording."""
        parent = trace_api.get_current_span(parent_ctx).get_span_context()
        if not parent.is_valid:
            trace_id = self.ids.generate_trace_id()
            random_id = self.ids.is_trace_id_random()
            parent = None
            if self.root_bound is not None:  # root_ratio_bound: the sampler's own decision, computed here
                sampled = trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < self.root_bound
                context = SpanContext(trace_id, self.ids.generate_span_id(), False, _FLAGS[sampled, random_id])
                return self._started(name, context, None, kind, attributes, attributes if sampled else None,
                                     parent_ctx) if sampled else NonRecordingSpan(context)
            if self.root_rate is not None:  # rate_sampling.py: the rate-limited sampler's own decision, lean
                sampled, sampler_attributes = self.root_rate.decide(trace_id, attributes)
                context = SpanContext(trace_id, self.ids.generate_span_id(), False, _FLAGS[sampled, random_id])
                return self._started(name, context, None, kind, attributes, sampler_attributes,
                                     parent_ctx) if sampled else NonRecordingSpan(context)
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        result = self.sampler.should_sample(parent_ctx, trace_id, name, kind, attributes, ())
        context = SpanContext(trace_id, self.ids.generate_span_id(), is_remote=False,
                              trace_flags=_FLAGS[result.decision.is_sampled(), bool(random_id)],
                              trace_state=result.trace_state)
        if not result.decision.is_recording():
            return NonRecordingSpan(context)
        return self._started(name, context, parent, kind, attributes, result.attributes, parent_ctx)

    def _started(self, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
                 attributes: dict[str, Any], sampler_attributes: Any, parent_ctx: Any) -> LiteSpan:
        # as the SDK: the span starts with the sampler's attributes (its samplers echo the ones passed in); what the
        # sampler added (a sample rate) goes on every child too
        own = dict(sampler_attributes) if sampler_attributes else {}
        inherited = {k: v for k, v in own.items() if k not in attributes}
        span = LiteSpan(self, name, context, parent, kind, own, inherited)
        self.processor.on_start(span, parent_context=parent_ctx)
        return span

    def start_child(self, parent: LiteSpan, parent_ctx: Any, name: str, kind: SpanKind,
                    attributes: dict[str, Any] | None) -> LiteSpan:
        pc = parent.context
        context = SpanContext(pc.trace_id, self.ids.generate_span_id(), is_remote=False, trace_flags=pc.trace_flags,
                              trace_state=pc.trace_state)
        inherited = parent.inherited
        attrs = {**inherited, **attributes} if attributes else dict(inherited)
        span = LiteSpan(self, name, context, pc, kind, attrs, inherited)
        self.processor.on_start(span, parent_context=parent_ctx)
        return span


class LiteSpan(trace_api.Span):
    __slots__ = ("_tracer", "_name", "context", "parent", "kind", "_attrs", "inherited", "_events", "_status",
                 "_start", "_end")

    def __init__(self, tracer: LiteTracer, name: str, context: SpanContext, parent: SpanContext | None,
                 kind: SpanKind, attributes: dict[str, Any], inherited: dict[str, Any]) -> None:
        self._tracer, self._name, self.context, self.parent, self.kind = tracer, name, context, parent, kind
        self._attrs = attributes  # our own values (valid types by construction); others' go through set_attribute
        self.inherited = inherited  # the sampler's attributes, repeated on every span of the call
        self._events: list[Any] = []
        self._status = _UNSET
        self._start = time_ns()
        self._end: int | None = None

    # ---- what processors read

    @property
    def name(self) -> str:
        return self._name

    @property
    def attributes(self) -> Mapping[str, Any]:
        return MappingProxyType(self._attrs)

    @property
    def status(self) -> Status:
        return self._status

    @property
    def start_time(self) -> int:
        return self._start

    @property
    def end_time(self) -> int | None:
        return self._end

    @property
    def resource(self) -> Any:
        return self._tracer.resource

    @property
    def instrumentation_scope(self) -> Any:
        return self._tracer.scope

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self._end is None

    # ---- the API

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end is None:
            for key, value in attributes.items():
                self.set_attribute(key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end is None and isinstance(key, str) and key:
            value = valid_value(value)
            if value is not None:
                self._attrs[key] = value

    def set_own_attributes(self, attributes: Mapping[str, Any]) -> None:
        """The gateway's own values (str/int/float/bool by construction): no per-value check."""
        if self._end is None:
            self._attrs.update(attributes)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        if self._end is None:
            clean = {k: v for k, v in (attributes or {}).items() if valid_value(v) is not None}
            self._events.append(Event(name, clean, timestamp if timestamp is not None else time_ns()))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(self, exception: BaseException, attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        # the type only: an exception's text may quote an upstream or a payload (never in telemetry)
        self.add_event("exception", {**(attributes or {}), "exception.type": type(exception).__name__}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        if self._tracer._on_ending is not None:
            self._tracer._on_ending(self)  # processors may still add attributes (the span is still recording)
        self._end = end_time if end_time is not None else time_ns()
        t = self._tracer
        t.processor.on_end(_readable(self, self._limited(), t))

    def _limited(self) -> dict[str, Any]:
        attrs, t = self._attrs, self._tracer
        if t.max_length is not None:
            for key, value in attrs.items():
                if isinstance(value, str) and len(value) > t.max_length:
                    attrs[key] = value[:t.max_length]
        if t.max_attributes is not None and len(attrs) > t.max_attributes:
            attrs = dict(islice(attrs.items(), t.max_attributes))
        return attrs

    def __repr__(self) -> str:
        return f'LiteSpan(name="{self._name}", context={self.context})'


def _readable(span: LiteSpan, attributes: dict[str, Any], t: LiteTracer) -> ReadableSpan:
    return ReadableSpan(name=span.name, context=span.context, parent=span.parent, resource=t.resource,
                        attributes=attributes, events=tuple(span._events), links=(), kind=span.kind,
                        instrumentation_info=t.info, status=span._status, start_time=span._start,
                        end_time=span._end, instrumentation_scope=t.scope)
