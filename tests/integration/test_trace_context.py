"""W3C trace context end to end through a real MCP server (the `mcp` SDK server) and a real a2a-sdk 1.x agent.

The pipelines run in process with an in-memory span exporter (the gateway's spans must be readable); the
upstreams are real processes that report what they received. One trace: the client's span → the gateway's call
span (`execute_tool …` / `invoke_agent …`, parent taken from the client's `_meta` / `traceparent`) → the attempt
span → the upstream, which received the attempt span as its parent in MCP `params._meta` / the A2A HTTP headers
and message metadata. The request-log rows carry the correlation id (the trace id)."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.flags.service import FlagService
from shared.pillars.agents.a2a.protocol import RpcCall
from shared.pillars.agents.domain import Agent, AgentSpec, MemoryAgentDirectory
from shared.pillars.agents.spec import AgentsSpec
from shared.pillars.tools.calls import ToolCalls
from shared.pillars.tools.context import McpContext
from shared.pillars.tools.directory import MemoryToolDirectory
from shared.pillars.tools.domain import (McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox,
                                         ToolboxOwner, ToolboxSpec, namespaced_name)
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.upstream import McpUpstream
from shared.pillars.tools.runner import ToolCallRunner
from shared.pillars.tools.spec import ToolsSpec
from shared.pillars.tools.upstreams import SessionPool
from shared.pipeline import Exchange, Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.telemetry.hooks import OtelTelemetry
from shared.telemetry.propagation import carrier, install
from shared.usage.log import MemoryUsageSink, UsageLog
from tests.integration.test_agents_a2a import _serve
from tests.support.mcp_servers import NPM_DIR, _wait_port, launch
from dev.emulators import free_port

P = "p1"


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = launch("sdk", [sys.executable, str(NPM_DIR / "sdk_server.py"), str(port)], port, "/mcp",
                    tmp_path_factory.mktemp("mcp-trace"))
    try:
        _wait_port(port, server.proc, server.log)
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def a2a_agent() -> Iterator[str]:
    proc, url = _serve(sys.executable, "a2a_v1_agent.py")
    yield url
    proc.terminate()
    proc.wait(10)


class World:
    """The gateway side: OpenTelemetry to memory, the client's own tracer, a request log in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.telemetry = OtelTelemetry(provider.get_tracer("gateway"),
                                       MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("gateway"))
        self.client_tracer = provider.get_tracer("client")
        store = MemoryDocumentStore()
        self.sink = MemoryUsageSink()
        self.usage = UsageLog(self.sink, flush_seconds=60)
        self.flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60, max_stale=600)
        self.quotas = QuotaBook(Repository(store, Quota), ttl=60, max_stale=600)
        # the gateway's upstream client with the telemetry's hook (what Services._instrument installs)
        self.http = install(httpx.AsyncClient(timeout=20))

    def pipeline(self, spec) -> Pipeline:
        return Pipeline(spec, quotas=self.quotas, enforcer=QuotaEnforcer(MemoryCounterStore()), breakers=Breakers(),
                        usage=self.usage, flags=self.flags, telemetry=self.telemetry)

    async def rows(self):
        await self.usage.close()
        return self.sink.records

    def by_name(self, prefix: str):
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(prefix)]


def principal() -> Principal:
    return Principal(kind="virtual_key", subject="k1", project_id=P, key_id="k1", key_prefix="sk-gw-k1")


def _ids(traceparent: str) -> tuple[int, int]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


async def test_mcp_tools_call_carries_the_attempt_span_in_meta(mcp_server):
    w = World()
    ns = "sdk"
    name = namespaced_name(ns, "trace_meta")
    directory = MemoryToolDirectory().add(
        McpServer(id=ns, project_id=P, spec=McpServerSpec(id=ns, url=mcp_server, namespace=ns),
                  lifecycle="published", approval="approved"),
        ToolDefinition(id=name, project_id=P, server_id=ns, original_name="trace_meta", name=name,
                       definition=PinnedDefinition(name="trace_meta"), pinned_hash="sha256:" + "0" * 64,
                       status="approved"),
        Toolbox(id="dev", project_id=P, spec=ToolboxSpec(id="dev", tools=[name]), owner=ToolboxOwner()))

    async def no_auth(server):
        return {}

    upstream = McpUpstream(w.http, timeout=20, max_bytes=1 << 20, trace=carrier)
    calls = ToolCalls(directory, SessionPool(upstream), no_auth, None)
    runner = ToolCallRunner(w.pipeline(ToolsSpec(calls)))
    ctx = McpContext(principal=principal(), project_id=P, toolbox="dev", request_id="req-1",
                     client_version="2025-06-18", started=time.perf_counter())
    with w.client_tracer.start_as_current_span("client tools/call", kind=SpanKind.CLIENT) as client_span:
        meta = carrier()  # the client's trace context, sent the MCP way: params._meta
        msg = rpc.parse(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                    "params": {"name": name, "arguments": {}, "_meta": meta}}).encode())
        reply = await runner(ctx, msg)

    assert "result" in reply.message, reply.message
    seen = json.loads(reply.message["result"]["content"][0]["text"])
    [call] = w.by_name(f"execute_tool {name}")
    [attempt] = w.by_name("attempt")
    client = client_span.get_span_context()
    # one trace: client → gateway call span → attempt span → the MCP server's _meta
    assert call.context.trace_id == client.trace_id and call.parent.span_id == client.span_id
    assert attempt.parent.span_id == call.context.span_id
    assert _ids(seen["traceparent"]) == (client.trace_id, attempt.context.span_id)
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"
    assert call.attributes["gen_ai.tool.name"] == name
    assert call.attributes["jsonrpc.request.id"] == "7"
    assert call.attributes["mcp.method.name"] == "tools/call"
    [row] = await w.rows()
    assert row.attributes["correlation_id"] == format(client.trace_id, "032x")
    await w.http.aclose()


async def test_a2a_agent_gets_trace_context_in_headers_and_message_metadata(a2a_agent):
    w = World()
    spec = AgentSpec.model_validate({"name": "Echo", "interfaces": [{"url": a2a_agent + "/",
                                                                     "protocol_version": "1.0"}]})
    agent = Agent(id="echo", project_id=P, spec=spec, lifecycle="published")

    class NoCredentials:
        async def headers(self, agent: Agent) -> dict[str, str]:
            return {}

    pipeline = w.pipeline(AgentsSpec(directory=MemoryAgentDirectory([agent]), http=w.http,
                                     credentials=NoCredentials(), trace=carrier))
    params = {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "trace"}]}}
    with w.client_tracer.start_as_current_span("client SendMessage", kind=SpanKind.CLIENT) as client_span:
        x = Exchange(Pillar.agents, "SendMessage", principal(), "req-2", RpcCall(1, "SendMessage", params, "1.0"),
                     carrier(), time.perf_counter(), resource="echo")  # the client's traceparent header
        response = await pipeline.run(x)

    body = json.loads(response.body)
    text = body["result"]["task"]["artifacts"][0]["parts"][0]["text"]
    seen = json.loads(text.removeprefix("echo(v1): "))
    [call] = w.by_name("invoke_agent echo")
    [attempt] = w.by_name("attempt")
    client = client_span.get_span_context()
    assert call.context.trace_id == client.trace_id and call.parent.span_id == client.span_id
    assert attempt.parent.span_id == call.context.span_id
    expected = (client.trace_id, attempt.context.span_id)
    assert _ids(seen["headers"]["traceparent"]) == expected  # HTTP header (W3C)
    assert _ids(seen["metadata"]["traceparent"]) == expected  # and A2A message metadata
    trace_hex = format(client.trace_id, "032x")
    assert seen["headers"]["x-correlation-id"] == trace_hex
    assert call.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert call.attributes["gen_ai.agent.id"] == "echo"
    assert call.attributes["gen_ai.agent.name"] == "echo"
    assert call.attributes["gen_ai.conversation.id"]  # the A2A context id
    [row] = await w.rows()
    assert row.attributes["correlation_id"] == trace_hex
    await w.http.aclose()
