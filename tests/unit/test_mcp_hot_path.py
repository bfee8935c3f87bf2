"""The lean `tools/call` path keeps every check: the decoded-session cache (bounded, per id, still bound to the
caller/toolbox/expiry), replica routes per server object (a registry change is seen), the plain-shape inputSchema
fast path (never more permissive than jsonschema, same errors), and the answer bytes the transport sends (the
pipeline's, after guardrails rewrote them)."""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from shared.auth.principal import Principal
from shared.domain.projects import GlobalFlags, PillarState, Project
from shared.domain.quotas import Quota
from shared.flags.service import FlagService
from shared.guardrails.book import GuardrailBook
from shared.guardrails.engine import GuardrailEngine
from shared.guardrails.policy import GuardrailPolicy, PolicySpec
from shared.guardrails.step import GuardrailStep
from shared.pillars.tools.arguments import ArgumentsInvalid, SchemaCache, _plain_checker
from shared.pillars.tools.calls import ToolCalls
from shared.pillars.tools.directory import MemoryToolDirectory
from shared.pillars.tools.domain import (
    McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox, ToolboxOwner, ToolboxSpec, ToolLimits)
from shared.pillars.tools.gateway import ToolboxServer
from shared.pillars.tools.guardrails import ToolsGuardrails
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.session import SessionCodec, SessionInvalid, SessionState
from shared.pillars.tools.mcp.upstream import McpUpstream
from shared.pillars.tools.runner import ToolCallRunner
from shared.pillars.tools.spec import ToolsSpec
from shared.pillars.tools.transport import McpTransport
from shared.pillars.tools.upstreams import SessionPool, _Routes, endpoints
from shared.pipeline.pipeline import Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog

P = "proj"


# ---- decoded sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _sealed(codec: SessionCodec, principal: str = "k1", toolbox: str = "box") -> str:
    return codec.seal(SessionState(principal=principal, toolbox=toolbox, client_version="2025-11-25",
                                   expires=codec.expiry()))


def test_session_cache_is_bounded_and_serves_the_same_decoded_state():
    codec = SessionCodec([b"s"], ttl_seconds=600, cache_entries=2)
    ids = [_sealed(codec, principal=f"k{i}") for i in range(3)]
    first = codec.open(ids[0], toolbox="box", principal="k0")
    assert codec.open(ids[0], toolbox="box", principal="k0") is first  # decoded once
    for i, sid in enumerate(ids):
        assert codec.open(sid, toolbox="box", principal=f"k{i}").principal == f"k{i}"
    assert len(codec._opened) == 2 and ids[0] not in codec._opened  # oldest out
    assert codec.open(ids[0], toolbox="box", principal="k0") == first  # decoded again, same state


def test_a_cached_session_is_still_refused_to_another_caller_toolbox_or_after_expiry():
    clock = Clock()
    codec = SessionCodec([b"s"], ttl_seconds=60, clock=clock)
    sid = _sealed(codec)
    codec.open(sid, toolbox="box", principal="k1")  # now cached
    for toolbox, principal in (("box", "k2"), ("other", "k1")):
        with pytest.raises(SessionInvalid):
            codec.open(sid, toolbox=toolbox, principal=principal)
    assert codec.open(sid, toolbox="box", principal="k1").principal == "k1"  # the owner still gets it
    clock.now += 61
    with pytest.raises(SessionInvalid):
        codec.open(sid, toolbox="box", principal="k1")
    assert sid not in codec._opened


def test_a_session_id_that_does_not_authenticate_is_never_cached():
    codec = SessionCodec([b"s"], ttl_seconds=60)
    sid = _sealed(codec)
    tampered = sid[:-2] + ("A" if sid[-2] != "A" else "B") + sid[-1]
    for bad in (tampered, "mcpgw1.nokey.abc", "x" * 5000):
        with pytest.raises(SessionInvalid):
            codec.open(bad, toolbox="box", principal="k1")
    assert not codec._opened
    other_secret = SessionCodec([b"other"], ttl_seconds=60)  # rotation: another key set opens nothing of ours
    with pytest.raises(SessionInvalid):
        other_secret.open(sid, toolbox="box", principal="k1")


# ---- replica routes


def _server(url: str = "https://a.example/mcp", **spec) -> McpServer:
    return McpServer(id="fs", project_id=P, spec=McpServerSpec(id="fs", url=url, namespace="fs", **spec),
                     lifecycle="published", approval="approved")


async def test_routes_follow_the_server_object_and_see_every_change():
    async def auth(server):
        return {"authorization": f"Bearer {server.id}"}

    server = _server(replicas=[{"id": "r1", "url": "https://b.example/mcp", "priority": 1, "weight": 3}])
    eps = await endpoints(server, auth)
    assert [(e.id, e.url, e.priority, e.weight, e.headers) for e in eps] == [
        ("fs/primary", "https://a.example/mcp", 0, 1, {"authorization": "Bearer fs"}),
        ("fs/r1", "https://b.example/mcp", 1, 3, {"authorization": "Bearer fs"})]
    routes = _Routes(max_entries=2)
    assert routes.of(server) is routes.of(server)  # computed once per server object
    moved = _server(url="https://c.example/mcp")  # a registry change: a new snapshot object
    assert routes.of(moved)[0][1] == "https://c.example/mcp"
    server.spec.url = "https://d.example/mcp"  # edited in place: not served from the entry
    assert routes.of(server)[0][1] == "https://d.example/mcp"
    routes.of(_server(url="https://e.example/mcp"))
    assert len(routes._by_server) == 2


# ---- inputSchema fast path


SCHEMAS = [
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    {"type": "object", "properties": {"n": {"type": "integer", "description": "x"}, "f": {"type": "number"},
                                      "b": {"type": "boolean"}, "z": {"type": "null"}, "l": {"type": "array"},
                                      "o": {"type": "object"}}, "additionalProperties": False},
    {"type": "object", "properties": {}, "title": "no arguments"},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
     "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": True},
]
VALUES = ["hi", 1, 1.0, 2.5, True, None, [], {}, [1], {"a": 1}]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_plain_checker_never_accepts_what_jsonschema_refuses(schema):
    plain = _plain_checker(schema)
    assert plain is not None
    full = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
    names = list(schema["properties"]) + ["extra"]
    for k in range(3):
        for keys in itertools.combinations(names, k):
            for values in itertools.product(VALUES, repeat=len(keys)):
                args = dict(zip(keys, values))
                if plain(args):
                    assert full.is_valid(args), (schema, args)


def test_schemas_outside_the_plain_shape_go_to_jsonschema():
    for schema in ({"type": "object", "properties": {"s": {"type": "string", "maxLength": 2}}},
                   {"type": "object", "properties": {"s": {"type": "string", "format": "email"}}},
                   {"type": "object", "properties": {"s": {"type": ["string", "null"]}}},
                   {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
                   {"type": "object", "properties": {"s": {"enum": ["a"]}}},
                   {"type": "object", "properties": {"s": True}},
                   {"type": "object", "properties": {"s": {"type": "string"}}, "additionalProperties": {}},
                   {"type": "object", "allOf": []}, {"not": {}}):
        assert _plain_checker(schema) is None, schema
    cache = SchemaCache()
    with pytest.raises(ArgumentsInvalid):  # maxLength still enforced on the slow path
        cache.check({"type": "object", "properties": {"s": {"type": "string", "maxLength": 2}}}, {"s": "long"}, "h1")


def test_the_fast_path_keeps_jsonschema_errors_for_invalid_arguments():
    cache = SchemaCache()
    schema = SCHEMAS[1]
    with pytest.raises(ArgumentsInvalid) as err:
        cache.check(schema, {"n": 1.5, "extra": 1}, "sha256:" + "c" * 64)
    assert {e["field"] for e in err.value.errors} == {"n", "arguments"}
    cache.check(schema, {"n": 3, "f": 1, "b": False, "z": None, "l": [], "o": {}}, "sha256:" + "c" * 64)
    cache.check(schema, {"n": 2.0}, "sha256:" + "c" * 64)  # 1.0-style integers: jsonschema decides (valid)


# ---- the answer bytes the transport sends


KEY = Principal(kind="virtual_key", subject="k1", project_id=P, key_id="k1", key_prefix="sk-gw-k1")
TOOL = "fs__read"


def mcp_server(seen: list[dict]) -> httpx.MockTransport:
    """A 2026-07-28 MCP server: discovery, and `read` answering with an email address in its text."""
    def handle(request: httpx.Request) -> httpx.Response:
        msg = orjson.loads(request.content)
        seen.append(msg)
        if msg["method"] == "server/discover":
            res = {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "resultType": "complete"}
        else:
            res = {"content": [{"type": "text", "text": "mail a@b.co"}], "resultType": "complete"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": res})
    return httpx.MockTransport(handle)


async def plane(output_policy: bool, upstream: Callable[[list[dict]], httpx.MockTransport] | None = None,
                server: McpServer | None = None, **limits: Any
                ) -> tuple[McpTransport, MemoryUsageSink, UsageLog, list[dict]]:
    store, seen = MemoryDocumentStore(), []
    await Repository(store, Project).create(Project(id=P, name=P, pillars={"tools": PillarState(enabled=True)}))
    policies = Repository(store, GuardrailPolicy)
    if output_policy:
        await policies.create(GuardrailPolicy(id="pii", project_id=P, spec=PolicySpec.model_validate(
            {"id": "pii", "attach": {"scope": "resource", "pillar": "tools", "resource": "box"},
             "checks": [{"type": "pii", "name": "pii", "stage": "output"}]})))
    directory = MemoryToolDirectory().add(
        server or _server(),
        ToolDefinition(id=TOOL, project_id=P, server_id="fs", original_name="read", name=TOOL,
                       definition=PinnedDefinition(name="read", input_schema=SCHEMAS[0]),
                       pinned_hash="sha256:" + "0" * 64, status="approved", limits=ToolLimits(**limits)),
        Toolbox(id="box", project_id=P, spec=ToolboxSpec(id="box", tools=[TOOL]), owner=ToolboxOwner()))

    async def no_auth(server):
        return {}

    pool = SessionPool(McpUpstream(httpx.AsyncClient(transport=(upstream or mcp_server)(seen)), timeout=5,
                                   max_bytes=1 << 20))
    sink = MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    pipeline = Pipeline(ToolsSpec(ToolCalls(directory, pool, no_auth, None)),
                        quotas=QuotaBook(Repository(store, Quota), ttl=60, max_stale=60),
                        enforcer=QuotaEnforcer(MemoryCounterStore()), breakers=Breakers(), usage=usage,
                        flags=FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60,
                                          max_stale=60),
                        steps=[ToolsGuardrails(GuardrailStep(GuardrailBook(policies, ttl=60, max_stale=60),
                                                             GuardrailEngine()))])
    server = ToolboxServer(directory, pool, no_auth, ToolCallRunner(pipeline))
    transport = McpTransport(server, directory, SessionCodec([b"s"], ttl_seconds=60), pool, no_auth)
    return transport, sink, usage, seen


CALL = orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
    "name": TOOL, "arguments": {"text": "x"}, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                                        "io.modelcontextprotocol/clientCapabilities": {}}}})
HEADERS = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": TOOL,
           "accept": "application/json, text/event-stream"}


@pytest.mark.parametrize("output_policy", [False, True])
async def test_the_client_gets_the_bytes_the_governed_answer_serialises_to(output_policy):
    transport, sink, usage, seen = await plane(output_policy)
    reply = await transport.post(KEY, "box", HEADERS, CALL, "r1")
    assert reply.status == 200
    answer = orjson.loads(reply.body)
    text = answer["result"]["content"][0]["text"]
    assert answer["id"] == 7 and answer["result"]["resultType"] == "complete"
    assert text == ("mail [REDACTED:email]" if output_policy else "mail a@b.co")  # after the output guardrail
    assert seen[-1]["params"]["name"] == "read" and seen[-1]["params"]["arguments"] == {"text": "x"}
    await usage.close()
    [row] = sink.records
    assert row.status == 200 and row.resource == TOOL and row.attributes["server"] == "fs"
    assert row.attributes["response_bytes"] > 0 and row.attributes["request_bytes"] > 0
    assert [v["action"] for v in row.guardrails or []] == (["redact"] if output_policy else [])


async def test_an_upstream_error_answer_is_relayed_as_json_rpc():
    transport, sink, usage, _ = await plane(False)
    bad = CALL.replace(b'"arguments":{"text":"x"}', b'"arguments":{"text":3}')
    reply = await transport.post(KEY, "box", HEADERS, bad, "r2")
    body = orjson.loads(reply.body)
    assert reply.status == 200 and body["error"]["code"] == rpc.INVALID_PARAMS
    assert body["error"]["data"]["errors"][0]["field"] == "text"
    await usage.close()
