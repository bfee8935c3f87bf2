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

from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..domain.base import Pillar

PAYLOAD_CHARS = 8192
_OPERATION = {Pillar.tools: "execute_tool", Pillar.agents: "invoke_agent"}
_NAME_ATTR = {Pillar.models: "gen_ai.request.model", Pillar.tools: "gen_ai.tool.name",
              Pillar.agents: "gen_ai.agent.name"}
_USAGE = {"prompt_tokens": "gen_ai.usage.input_tokens", "completion_tokens": "gen_ai.usage.output_tokens",
          "cached_tokens": "gen_ai.usage.cache_read.input_tokens",
          "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens"}
_PROVIDERS = {"azure_openai": "azure.ai.openai", "openai": "openai", "openai_compatible": "openai"}
_QUOTA_CODES = frozenset({"rate_limit_exceeded", "quota_exceeded", "request_exceeds_quota",
                          "backend_capacity_exhausted"})


def operation_name(x: Any) -> str:
    return _OPERATION.get(x.pillar, x.operation)


class OtelTelemetry:
    def __init__(self, tracer: Any, meter: Any) -> None:
        self._tracer = tracer
        m = meter
        self.requests = m.create_counter("gateway.requests", unit="{request}", description="Governed calls.")
        self.tokens = m.create_histogram("gen_ai.client.token.usage", unit="{token}")
        self.duration = m.create_histogram("gen_ai.client.operation.duration", unit="s")
        self.latency = m.create_histogram("gateway.latency", unit="ms")
        self.overhead = m.create_histogram("gateway.overhead", unit="ms", description="Time not spent upstream.")
        self.cost = m.create_counter("gateway.cost", unit="USD")
        self.cache_hits = m.create_counter("gateway.cache.hits", unit="{request}")
        self.guardrail = m.create_counter("gateway.guardrail.verdicts", unit="{verdict}")
        self.failovers = m.create_counter("gateway.failovers", unit="{failover}")
        self.quota_refusals = m.create_counter("gateway.quota.refusals", unit="{request}")
        self.breaker_refusals = m.create_counter("gateway.breaker.refusals", unit="{request}")
        self.tool_calls = m.create_counter("gateway.tool.calls", unit="{call}")
        self.agent_calls = m.create_counter("gateway.agent.calls", unit="{call}")
        self.outcomes = m.create_counter("gateway.job.outcomes", unit="{outcome}",
                                         description="Queue messages and sync runs by outcome.")
        self._meter = meter
        self._breakers: list[Any] = []

    # ---- pipeline hooks

    def call_started(self, x: Any) -> None:
        # The caller's W3C trace context (an MCP request's `_meta`, else its HTTP headers) is the call's parent,
        # so a client's trace, an agent's trace, and the upstream's spans join into one.
        parent = extract(x.trace_carrier) if x.trace_carrier is not None else extract(x.headers)
        span = self._tracer.start_span(operation_name(x), context=parent, kind=SpanKind.SERVER,
                                       record_exception=False,
                                       attributes={"gateway.pillar": x.pillar.value,
                                                   "gateway.request_id": x.request_id})
        x.scratch["otel.span"] = span
        x.scratch["otel.ctx"] = trace.set_span_in_context(span)
        if x.correlation_id is None and x.pillar == Pillar.agents:
            # the agent receives this trace id in its traceparent and sends it back on its own calls
            x.correlation_id = format(span.get_span_context().trace_id, "032x")

    def span(self, x: Any, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        attempt = name == "attempt"
        return self._tracer.start_as_current_span(  # current: the upstream request's traceparent is this span
            f"attempt {attributes.get('target', '')}".strip() if attempt else name, context=x.scratch.get("otel.ctx"),
            kind=SpanKind.CLIENT if attempt else SpanKind.INTERNAL, record_exception=False,
            attributes={f"gateway.{k}": str(v) for k, v in attributes.items()})

    def call_finished(self, x: Any, record: Any) -> None:
        span = x.scratch.pop("otel.span", None)
        x.scratch.pop("otel.ctx", None)
        attrs = record.attributes if record is not None else {}
        op = operation_name(x)
        if span is not None:
            self._annotate(span, x, record, attrs, op)
            span.end()
        self._measure(x, record, attrs, op)

    # ---- the call span's attributes

    def _annotate(self, span: Any, x: Any, record: Any, attrs: dict[str, Any], op: str) -> None:
        if x.resource:
            span.update_name(f"{op} {x.resource}")
        a: dict[str, Any] = {"gen_ai.operation.name": op, "gateway.project_id": x.principal.project_id or "",
                             "http.response.status_code": x.status}
        if x.resource:
            a[_NAME_ATTR[x.pillar]] = x.resource
        if x.principal.key_id:
            a["gateway.key_id"] = x.principal.key_id  # an id, never the secret or its prefix
        if x.correlation_id is not None:
            a["gateway.correlation_id"] = x.correlation_id
        if x.pillar == Pillar.tools:
            _tool_attributes(a, x, attrs)
        elif x.pillar == Pillar.agents:
            _agent_attributes(a, x, attrs)
        target = x.outcome.target if x.outcome is not None else None
        if target is not None:
            a["gateway.target"] = target.id
            kind = getattr(target, "kind", None)
            if x.pillar == Pillar.models:
                a["gen_ai.provider.name"] = _PROVIDERS.get(str(getattr(kind, "value", kind)), "openai")
        for src, dst in _USAGE.items():
            if isinstance(attrs.get(src), int):
                a[dst] = attrs[src]
        if record is not None:
            a.update({"gateway.overhead_ms": round(record.overhead_ms, 3), "gateway.failovers": record.failovers,
                      "gateway.retries": record.retries})
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
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(a)

    # ---- metrics (low-cardinality attributes: no key, no request id)

    def _measure(self, x: Any, record: Any, attrs: dict[str, Any], op: str) -> None:
        dims = {"gateway.pillar": x.pillar.value, "gen_ai.operation.name": op, "gateway.resource": x.resource or "-",
                "http.response.status_code": x.status}
        if x.error_code:
            dims["error.type"] = x.error_code
        self.requests.add(1, dims)
        if x.pillar == Pillar.tools:
            self.tool_calls.add(1, dims)
        elif x.pillar == Pillar.agents:
            self.agent_calls.add(1, dims)
        if x.status == 429 and x.error_code in _QUOTA_CODES:
            self.quota_refusals.add(1, dims)
        if x.error_code == "no_backend_available":
            self.breaker_refusals.add(1, dims)
        if record is None:
            return
        self.latency.record(record.latency_ms, dims)
        self.duration.record(record.latency_ms / 1000, dims)
        self.overhead.record(record.overhead_ms, dims)
        for src, kind in (("prompt_tokens", "input"), ("completion_tokens", "output")):
            if isinstance(attrs.get(src), int):
                self.tokens.record(attrs[src], {**dims, "gen_ai.token.type": kind})
        if record.cost_usd:
            self.cost.add(record.cost_usd, dims)
        if attrs.get("cache") == "hit":
            self.cache_hits.add(1, dims)
        if isinstance(attrs.get("guardrail"), str):
            self.guardrail.add(1, {**dims, "gateway.verdict": attrs["guardrail"]})
        for attempt in record.attempts[:-1] if record.failovers else ():
            self.failovers.add(1, {**dims, "gateway.target": str(attempt.get("target"))})

    # ---- for other jobs (queue consumers, sync runs) and the breakers

    def outcome(self, job: str, outcome: str) -> None:
        self.outcomes.add(1, {"gateway.job": job, "gateway.outcome": outcome})

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


# ---- the GenAI conventions for the other pillars (semconv gen-ai agent spans: execute_tool, invoke_agent; MCP)

def _tool_attributes(a: dict[str, Any], x: Any, attrs: dict[str, Any]) -> None:
    """execute_tool: the tool the client named, MCP method and revision, the server that ran it."""
    a["gen_ai.tool.type"] = "extension"  # run by an external service (an MCP server or an HTTP API)
    a["mcp.method.name"] = x.operation
    for src, dst in (("mcp_version", "mcp.protocol.version"), ("server", "gateway.tool.server"),
                     ("toolbox", "gateway.toolbox"), ("jsonrpc_error", "rpc.jsonrpc.error_code")):
        if attrs.get(src) not in (None, ""):
            a[dst] = attrs[src]
    call_id = getattr(getattr(x.request, "msg", None), "id", None)
    if isinstance(call_id, (str, int)) and not isinstance(call_id, bool):
        a["jsonrpc.request.id"] = str(call_id)[:128]  # MCP semconv; gen_ai.tool.call.id is the model's own id


def _agent_attributes(a: dict[str, Any], x: Any, attrs: dict[str, Any]) -> None:
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
