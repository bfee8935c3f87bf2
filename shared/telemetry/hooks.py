"""The pipeline's telemetry hooks on OpenTelemetry: one span per governed call, a child span per stage and per
upstream attempt, and the gateway's metrics — following the GenAI semantic conventions.

Span names: models `chat {model}` / `embeddings {model}`, tools `execute_tool {tool}`, agents `invoke_agent
{agent}`. Attributes: `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.tool.name`,
`gen_ai.agent.name`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
`gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.reasoning.output_tokens`, plus `gateway.*` (project, key
id, target, status, error code, overhead, failovers, cost, correlation id) and `error.type`. Tools add
`gen_ai.tool.type`, `mcp.method.name`, `mcp.protocol.version`, `jsonrpc.request.id`; agents `gen_ai.agent.id`,
`gen_ai.provider.name`, `gen_ai.conversation.id` (the A2A context id), `rpc.method`. The call span's parent is the
caller's W3C trace context (its headers, or an MCP request's `params._meta`).

Never a prompt, completion, key secret or header value: the usage row's payload fields are copied only when the
project opted into payload logging (`gen_ai.input.messages` / `gen_ai.output.messages`, clipped); exceptions are
not recorded (their text may quote an upstream), only their type. Pillar attributes read from the usage row:
prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cache ("hit"), guardrail (the verdict).
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..domain.base import Pillar
from .lite import LiteSpan, LiteTracer
from .metrics import SERIES_LIMIT, BoundedCache, GatewayMetrics
from .spans import stage

PAYLOAD_CHARS = 8192
_OPERATION = {Pillar.tools: "execute_tool", Pillar.agents: "invoke_agent"}
_NAME_ATTR = {Pillar.models: "gen_ai.request.model", Pillar.tools: "gen_ai.tool.name",
              Pillar.agents: "gen_ai.agent.name"}
_USAGE = {"prompt_tokens": "gen_ai.usage.input_tokens", "completion_tokens": "gen_ai.usage.output_tokens",
          "cached_tokens": "gen_ai.usage.cache_read.input_tokens",
          "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens"}
_PROVIDERS = {"azure_openai": "azure.ai.openai", "openai": "openai", "openai_compatible": "openai"}
_CONTEXT_KEYS = ("traceparent", "baggage")  # what the W3C propagators read; without them extract() finds nothing
_ERROR = Status(StatusCode.ERROR)
_ROOT = Context()


def operation_name(x: Any) -> str:
    return _OPERATION.get(x.pillar, x.operation)


def parent_context(carrier: Mapping[str, Any]) -> Any:
    """The caller's W3C context, or an empty one (a root span, whatever is current) without the propagators'
    generic carrier walk when the carrier holds none of their keys (most calls)."""
    for name in _CONTEXT_KEYS:
        if name in carrier:
            return extract(carrier)
    return _ROOT


class OtelTelemetry:
    def __init__(self, tracer: Any, meter: Any, *, cache_limit: int = SERIES_LIMIT) -> None:
        self._tracer = tracer
        self._lite = LiteTracer.of(tracer)  # lean spans on the SDK's pipeline (lite.py); else the SDK's own
        self.metrics = GatewayMetrics(meter, cache_limit)
        self._static = BoundedCache(cache_limit)  # per (pillar, operation, resource, target) span attributes
        self._meter = meter
        self._breakers: list[Any] = []

    # ---- pipeline hooks

    def call_started(self, x: Any) -> None:
        # The caller's W3C trace context (an MCP request's `_meta`, else its HTTP headers) is the call's parent,
        # so a client's trace, an agent's trace, and the upstream's spans join into one.
        parent = parent_context(x.trace_carrier if x.trace_carrier is not None else x.headers)
        attributes = {"gateway.pillar": x.pillar.value, "gateway.request_id": x.request_id}
        lite = self._lite
        if lite is not None and lite.enabled():
            span = lite.start_call(operation_name(x), parent, SpanKind.SERVER, attributes)
        else:
            span = self._tracer.start_span(operation_name(x), context=parent, kind=SpanKind.SERVER,
                                           record_exception=False, attributes=attributes)
        x.scratch["otel.span"] = span
        x.scratch["otel.ctx"] = trace.set_span_in_context(span)
        if x.correlation_id is None and x.pillar == Pillar.agents:
            # the agent receives this trace id in its traceparent and sends it back on its own calls
            x.correlation_id = format(span.get_span_context().trace_id, "032x")

    def span(self, x: Any, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        scratch = x.scratch
        return stage(self._tracer, self._lite, scratch.get("otel.span"), scratch.get("otel.ctx"), name, attributes)

    def call_finished(self, x: Any, record: Any) -> None:
        span = x.scratch.pop("otel.span", None)
        x.scratch.pop("otel.ctx", None)
        attrs = record.attributes if record is not None else {}
        op = operation_name(x)
        if span is not None:
            if span.is_recording():  # a sampled-out call: no attribute work at all
                self._annotate(span, x, record, attrs, op)
            span.end()
        self.metrics.measure(x, record, attrs, op)

    # ---- the call span's attributes

    def _static_attributes(self, x: Any, op: str) -> tuple[str, dict[str, Any]]:
        """The span name and the attributes fixed by the resource and the target that answered, built once."""
        target = x.outcome.target if x.outcome is not None else None
        target_id = target.id if target is not None else None
        kind = getattr(target, "kind", None) if x.pillar == Pillar.models else None
        key = (x.pillar, op, x.operation, x.resource, target_id, str(getattr(kind, "value", kind)))
        return self._static.get(key, lambda: _static(x.pillar, op, x.operation, x.resource, target_id, key[-1]))

    def _annotate(self, span: Any, x: Any, record: Any, attrs: Mapping[str, Any], op: str) -> None:
        name, static = self._static_attributes(x, op)
        if x.resource:
            span.update_name(name)
        a = dict(static)
        a["gateway.project_id"] = x.principal.project_id or ""
        a["http.response.status_code"] = x.status
        if x.principal.key_id:
            a["gateway.key_id"] = x.principal.key_id  # an id, never the secret or its prefix
        if x.correlation_id is not None:
            a["gateway.correlation_id"] = x.correlation_id
        if x.pillar == Pillar.tools:
            _tool_attributes(a, x, attrs)
        elif x.pillar == Pillar.agents:
            _agent_attributes(a, x, attrs)
        for src, dst in _USAGE.items():
            value = attrs.get(src)
            if isinstance(value, int):
                a[dst] = value
        if record is not None:
            a["gateway.overhead_ms"] = round(record.overhead_ms, 3)
            a["gateway.failovers"] = record.failovers
            a["gateway.retries"] = record.retries
            if record.cost_usd is not None:
                a["gateway.cost_usd"] = record.cost_usd
            if x.log_payloads:  # the project opted in; otherwise no payload ever reaches telemetry
                if record.prompt:
                    a["gen_ai.input.messages"] = record.prompt[:PAYLOAD_CHARS]
                if record.completion:
                    a["gen_ai.output.messages"] = record.completion[:PAYLOAD_CHARS]
        if x.status >= 400 or x.error_code:
            a["error.type"] = x.error_code or str(x.status)
            a["gateway.error_code"] = x.error_code or ""
            span.set_status(_ERROR)
        if isinstance(span, LiteSpan):
            span.set_own_attributes(a)  # our values, valid by construction: no per-value check
        else:
            span.set_attributes(a)

    # ---- for other jobs (queue consumers, sync runs) and the breakers

    def outcome(self, job: str, outcome: str) -> None:
        self.metrics.outcome(job, outcome)

    def observe_breakers(self, breakers: Any) -> None:
        """`gateway.breaker.open`: targets whose breaker is open (or half open) in this worker, over every pillar's
        breakers — one observable gauge, created with the first pillar (an instrument name registers once)."""
        self._breakers.append(breakers)
        if len(self._breakers) > 1:
            return
        from opentelemetry.metrics import Observation

        def observe(_options: Any) -> list[Any]:
            states = [b.state for group in list(self._breakers)
                      for b in list(getattr(group, "_backends", {}).values())]
            return [Observation(sum(s == "open" for s in states), {"gateway.breaker.state": "open"}),
                    Observation(sum(s == "half_open" for s in states), {"gateway.breaker.state": "half_open"})]

        self._meter.create_observable_gauge("gateway.breaker.open", callbacks=[observe], unit="{target}")


def _static(pillar: Pillar, op: str, method: str, resource: str, target_id: str | None,
            kind: str) -> tuple[str, dict[str, Any]]:
    a: dict[str, Any] = {"gen_ai.operation.name": op}
    if resource:
        a[_NAME_ATTR[pillar]] = resource
    if target_id is not None:
        a["gateway.target"] = target_id
        if pillar == Pillar.models:
            a["gen_ai.provider.name"] = _PROVIDERS.get(kind, "openai")
    if pillar == Pillar.tools:
        a["gen_ai.tool.type"] = "extension"  # run by an external service (an MCP server or an HTTP API)
        a["mcp.method.name"] = method
    return f"{op} {resource}", a


# ---- the GenAI conventions for the other pillars (semconv gen-ai agent spans: execute_tool, invoke_agent; MCP)

def _tool_attributes(a: dict[str, Any], x: Any, attrs: Mapping[str, Any]) -> None:
    """execute_tool: MCP revision, the server that ran it, the JSON-RPC id (tool type and method: `_static`)."""
    for src, dst in (("mcp_version", "mcp.protocol.version"), ("server", "gateway.tool.server"),
                     ("toolbox", "gateway.toolbox"), ("jsonrpc_error", "rpc.jsonrpc.error_code")):
        if attrs.get(src) not in (None, ""):
            a[dst] = attrs[src]
    call_id = getattr(getattr(x.request, "msg", None), "id", None)
    if isinstance(call_id, (str, int)) and not isinstance(call_id, bool):
        a["jsonrpc.request.id"] = str(call_id)[:128]  # MCP semconv; gen_ai.tool.call.id is the model's own id


def _agent_attributes(a: dict[str, Any], x: Any, attrs: Mapping[str, Any]) -> None:
    """invoke_agent: the agent's registry id and name, where it runs, the A2A method, task and context ids."""
    agent = x.entity
    if agent is not None:
        a["gen_ai.agent.id"] = str(getattr(agent, "id", x.resource))
        source = getattr(getattr(agent, "spec", None), "source", None)
        a["gen_ai.provider.name"] = _AGENT_PROVIDERS.get(str(getattr(source, "value", source)), "a2a")
    for src, dst in (("method", "rpc.method"), ("context_id", "gen_ai.conversation.id"),
                     ("task_id", "gateway.a2a.task_id"), ("task_state", "gateway.a2a.task_state"),
                     ("upstream_version", "gateway.a2a.upstream_version")):
        if attrs.get(src) not in (None, ""):
            a[dst] = attrs[src]


_AGENT_PROVIDERS = {"bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai", "foundry": "azure.ai.inference"}
