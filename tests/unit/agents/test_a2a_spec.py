"""The agents spec on the real pipeline, in process: upstream calls over httpx.MockTransport, memory stores.
What is sent upstream (allow-listed headers, the upstream's version, its credential), how failures are answered
(JSON-RPC errors, never a raw 5xx body), limits, and the request log's attributes."""
from __future__ import annotations

import json
import time

import httpx
import orjson
import pytest

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.errors import PayloadTooLarge, ResourceNotAllowed
from shared.flags.service import FlagService
from shared.pillars.agents.a2a.protocol import RpcCall
from shared.pillars.agents.domain import Agent, AgentSpec, MemoryAgentDirectory
from shared.pillars.agents.spec import AgentsSpec
from shared.pipeline import Exchange, Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog


def agent(version: str = "0.3", **limits) -> Agent:
    spec = AgentSpec.model_validate({"name": "A", "interfaces": [{"url": "http://up.test/rpc", "protocol_version": version}],
                                     "auth": {"type": "secret", "setting": "UPSTREAM_SECRET_A", "header": "X-Api-Key",
                                              "prefix": ""}, "limits": limits})
    return Agent(id="a", project_id="p1", spec=spec, lifecycle="published")


class StaticCredentials:
    """The agent's credential headers (AgentCredentials is tested with the registry's tests)."""

    async def headers(self, agent: Agent) -> dict[str, str]:
        return {"x-api-key": "s3cret"}


class World:
    def __init__(self, handler, ag: Agent) -> None:
        self.seen: list[httpx.Request] = []

        def record(req: httpx.Request) -> httpx.Response:
            self.seen.append(req)
            return handler(req)

        store = MemoryDocumentStore()
        self.sink = MemoryUsageSink()
        self.usage = UsageLog(self.sink, flush_seconds=60)
        flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60, max_stale=600)
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(record))
        spec = AgentsSpec(directory=MemoryAgentDirectory([ag]), http=self.http, credentials=StaticCredentials())
        self.pipeline = Pipeline(spec, quotas=QuotaBook(Repository(store, Quota), ttl=60, max_stale=600),
                                 enforcer=QuotaEnforcer(MemoryCounterStore()), breakers=Breakers(), usage=self.usage,
                                 flags=flags)

    async def call(self, method: str, params: dict, version: str = "1.0", scopes=None, size: int = 10,
                   stream: bool = False):
        p = Principal(kind="virtual_key", subject="k1", project_id="p1", key_id="k1", key_prefix="sk-gw-k1",
                      scopes=scopes or {})
        x = Exchange(Pillar.agents, method, p, "r1", RpcCall(1, method, params, version),
                     {"authorization": "Bearer sk-gw-client"}, time.perf_counter(), stream=stream, resource="a")
        x.scratch["body_bytes"] = size
        return await self.pipeline.run(x)

    async def rows(self):
        await self.usage.close()
        return self.sink.records


MSG = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}


async def test_a_v1_call_reaches_a_v03_upstream_in_its_version_with_its_credential_only():
    task03 = {"kind": "task", "id": "t9", "contextId": "c", "status": {"state": "completed"},
              "metadata": {"usage": {"totalTokens": 42}}}
    w = World(lambda req: httpx.Response(200, json={"jsonrpc": "2.0", "id": "x", "result": task03}), agent())
    r = await w.call("SendMessage", MSG)
    body = orjson.loads(r.body)
    assert body == {"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "t9", "contextId": "c",
                    "status": {"state": "TASK_STATE_COMPLETED"}, "metadata": {"usage": {"totalTokens": 42}}}}}
    sent = w.seen[0]
    upstream = json.loads(sent.content)
    assert upstream["method"] == "message/send" and upstream["params"]["message"]["role"] == "user"
    assert sent.headers["x-api-key"] == "s3cret" and "authorization" not in sent.headers
    assert "a2a-version" not in sent.headers  # a 0.3 upstream gets no 1.0 header
    [row] = await w.rows()
    assert row.attributes["task_id"] == "t9" and row.attributes["task_state"] == "TASK_STATE_COMPLETED"
    assert row.attributes["total_tokens"] == 42 and row.attributes["upstream_version"] == "0.3"


async def test_an_upstream_http_failure_is_a_json_rpc_error_and_logged():
    w = World(lambda req: httpx.Response(400, text="<html>oops"), agent("1.0"))
    r = await w.call("GetTask", {"id": "t"})
    assert r.status_code == 502 and orjson.loads(r.body)["error"]["code"] == -32006
    assert w.seen[0].headers["a2a-version"] == "1.0"
    [row] = await w.rows()
    assert row.status == 502 and row.attributes["upstream_status"] == 400


async def test_a_non_json_rpc_answer_is_an_invalid_agent_response():
    w = World(lambda req: httpx.Response(200, json=[1, 2]), agent("1.0"))
    r = await w.call("GetTask", {"id": "t"})
    assert orjson.loads(r.body)["error"]["code"] == -32006


async def test_a_stream_is_bridged_and_a_broken_one_ends_with_an_error_event():
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'data: {"jsonrpc":"2.0","id":"x","result":{"kind":"status-update","taskId":"t","contextId":"c",' \
                  b'"status":{"state":"working"},"final":false}}\n\n'
            raise httpx.ReadError("gone")

    w = World(lambda req: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken()),
              agent())
    r = await w.call("SendStreamingMessage", MSG, version="1.0", stream=True)
    chunks = [c async for c in r.body_iterator]
    first = orjson.loads(chunks[0][6:])
    assert first["result"] == {"statusUpdate": {"taskId": "t", "contextId": "c",
                                                "status": {"state": "TASK_STATE_WORKING"}}}
    assert orjson.loads(chunks[-1][6:])["error"]["code"] == -32006
    [row] = await w.rows()
    assert row.error_code == "upstream_stream_broken" and row.streamed


async def test_limits_and_scopes_refuse_before_any_upstream_call():
    w = World(lambda req: httpx.Response(500), agent(max_message_bytes=100))
    with pytest.raises(PayloadTooLarge):
        await w.call("SendMessage", MSG, size=101)
    with pytest.raises(ResourceNotAllowed) as e:
        await w.call("SendMessage", MSG, scopes={Pillar.agents: frozenset({"other"})})
    assert e.value.code == "agent_not_allowed"
    assert w.seen == []
