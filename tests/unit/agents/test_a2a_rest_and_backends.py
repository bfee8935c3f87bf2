"""The HTTP+JSON binding's framing (requests → v1.0 params, answers → bare results or google.rpc.Status with the
spec's HTTP status) and non-A2A backends behind the A2A front, in process on the real pipeline."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.errors import AgentBusy, UpstreamTimeout
from shared.pillars.agents.a2a import rest
from shared.pillars.agents.a2a.protocol import (INVALID_PARAMS, TASK_NOT_FOUND, UNSUPPORTED_OPERATION, A2AError,
                                                RpcCall, error, result)
from shared.pillars.agents.domain import Agent, AgentSpec, InvocationContext
from shared.pillars.agents.spec import AgentsSpec
from shared.pillars.agents.wire import (Artifact, Message, Part, StreamResponse, Task, TaskArtifactUpdateEvent,
                                        TaskStatus, TaskStatusUpdateEvent)
from shared.pipeline import Exchange
from tests.unit.agents.test_a2a_spec import StaticCredentials, World


# ---- REST framing

def test_results_are_bare_and_errors_are_status_objects_with_the_spec_http_status():
    assert rest.frame(result(1, {"task": {"id": "t"}})) == (200, b'{"task":{"id":"t"}}')
    status, body = rest.frame(error(1, TASK_NOT_FOUND, "Task not found"))
    err = orjson.loads(body)["error"]
    assert status == 404 and err["code"] == 404 and err["status"] == "NOT_FOUND"
    assert err["details"][0] == {"@type": rest.ERROR_INFO, "reason": "TASK_NOT_FOUND", "domain": rest.A2A_DOMAIN,
                                 "metadata": {}}
    assert rest.frame(error(1, UNSUPPORTED_OPERATION, "no"))[0] == 400
    assert rest.frame(error(1, -31999, "odd upstream code"))[0] == 502  # unknown codes: never a client error
    refusal = error(1, -32000, "quota", {"error": {"code": "rate_limit_exceeded", "type": "rate_limit_error"}})
    _, body = rest.frame(refusal)
    info = orjson.loads(body)["error"]["details"][0]
    assert info["reason"] == "RATE_LIMIT_EXCEEDED" and info["domain"] == rest.GATEWAY_DOMAIN


def test_stream_events_and_gateway_refusals():
    assert rest.event(result(1, {"task": {"id": "t"}})) == b'data: {"task":{"id":"t"}}\n\n'
    assert rest.event(error(1, INVALID_PARAMS, "bad")).startswith(b"event: error\ndata: ")
    status, body = rest.gateway_error(AgentBusy("busy"))
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert body["error"]["details"][0]["metadata"] == {"code": "agent_concurrency_exceeded",
                                                       "type": "rate_limit_error"}


def test_rest_requests_become_v1_params():
    assert rest.get_task_params("t1", {"historyLength": "3"}) == {"id": "t1", "historyLength": 3}
    assert rest.list_tasks_params({"pageSize": "5", "contextId": "c", "includeArtifacts": "true", "x": "y"}) == {
        "pageSize": 5, "contextId": "c", "includeArtifacts": True}
    for bad in ({"pageSize": "0"}, {"pageSize": "abc"}, {"historyLength": "-1"}, {"includeArtifacts": "yes"},
                {"contextId": "c" * 513}):
        with pytest.raises(A2AError) as refused:
            rest.list_tasks_params(bad)
        assert refused.value.code == INVALID_PARAMS
    assert rest.task_action("abc:def:cancel") == ("abc:def", "CancelTask")
    assert rest.task_action("t1:subscribe") == ("t1", "SubscribeToTask")
    for bad in ("t1", ":cancel", "t1:teleport"):
        with pytest.raises(A2AError):
            rest.task_action(bad)
    assert rest.body_object(b"") == {}
    for raw in (b"{nope", b"[1]"):
        with pytest.raises(A2AError):
            rest.body_object(raw)


# ---- backends behind the A2A front

class Backend:
    """A non-A2A agent in A2A terms (the AgentBackend seam; Bedrock and Vertex are tested against their fakes)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.seen = delay, []

    async def send_message(self, agent: Agent, message: Message, context: InvocationContext) -> Task:
        import asyncio

        self.seen.append((message, context))
        await asyncio.sleep(self.delay)
        context.usage.update(input_tokens=5, output_tokens=3)
        return Task(id="t9", context_id=context.context_id or "ctx", status=TaskStatus(state="TASK_STATE_COMPLETED"),
                    artifacts=[Artifact(artifact_id="a", parts=[Part(text="hi " + message.text())])])

    async def stream_message(self, agent: Agent, message: Message,
                             context: InvocationContext) -> AsyncIterator[StreamResponse]:
        yield StreamResponse(artifact_update=TaskArtifactUpdateEvent(
            task_id="t9", context_id="ctx", artifact=Artifact(artifact_id="a", parts=[Part(text="chunk")])))
        yield StreamResponse(status_update=TaskStatusUpdateEvent(
            task_id="t9", context_id="ctx", status=TaskStatus(state="TASK_STATE_COMPLETED")))


def bedrock_agent(**limits) -> Agent:
    spec = AgentSpec.model_validate({"name": "B", "source": "bedrock", "limits": limits, "bedrock": {
        "agent_id": "AGENT12345", "alias_id": "LIVE000001", "region": "us-east-1"}})
    return Agent(id="a", project_id="p1", spec=spec, lifecycle="published")


def world(backend: Backend, **limits) -> World:
    w = World(lambda req: httpx.Response(500), bedrock_agent(**limits))
    old: AgentsSpec = w.pipeline.spec
    w.pipeline.spec = AgentsSpec(directory=old._directory, http=w.http, credentials=StaticCredentials(),
                                 backend_for=lambda a: backend if a.spec.source == "bedrock" else None)
    return w


async def call(w: World, method: str, params: dict, *, version: str = "1.0", binding: str = "jsonrpc",
               stream: bool = False):
    p = Principal(kind="virtual_key", subject="k1", project_id="p1", key_id="k1", key_prefix="sk-gw-k1")
    x = Exchange(Pillar.agents, method, p, "r1", RpcCall("c1", method, params, version, binding), {},
                 time.perf_counter(), stream=stream, resource="a")
    return await w.pipeline.run(x)


MSG = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "there"}]}}


async def test_send_message_reaches_the_backend_in_every_client_shape():
    backend = Backend()
    w = world(backend)
    r = await call(w, "SendMessage", MSG)
    body = orjson.loads(r.body)
    assert body["id"] == "c1" and body["result"]["task"]["artifacts"][0]["parts"][0]["text"] == "hi there"
    r = await call(w, "SendMessage", MSG, binding="http_json")
    assert orjson.loads(r.body)["task"]["status"]["state"] == "TASK_STATE_COMPLETED"  # bare, no envelope
    r = await call(w, "SendMessage", {"message": {"kind": "message", "messageId": "m", "role": "ROLE_USER",
                                                  "parts": [{"text": "old"}]}}, version="0.3")
    assert orjson.loads(r.body)["result"]["status"]["state"] == "completed"
    rows = await w.rows()
    assert rows[0].target == "bedrock" and rows[0].attributes["total_tokens"] == 8
    assert rows[0].attributes["input_tokens"] == 5 and rows[0].attributes["task_id"] == "t9"


async def test_streams_unsupported_methods_and_bad_messages():
    w = world(Backend())
    r = await call(w, "SendStreamingMessage", MSG, stream=True, binding="http_json")
    chunks = b"".join([c async for c in r.body_iterator])
    assert chunks.count(b"data: ") == 2 and b'"statusUpdate"' in chunks and b"jsonrpc" not in chunks
    for method in ("GetTask", "ListTasks", "CancelTask"):
        with pytest.raises(A2AError) as refused:
            await call(w, method, {"id": "t9"})
        assert refused.value.code == UNSUPPORTED_OPERATION
    with pytest.raises(A2AError) as refused:
        await call(w, "SendMessage", {"message": {"role": "ROLE_USER"}})
    assert refused.value.code == INVALID_PARAMS
    assert len(await w.rows()) == 1  # protocol refusals are not governed calls


async def test_the_task_time_covers_a_backend_call():
    w = world(Backend(delay=5), task_timeout_seconds=0.05)
    with pytest.raises(UpstreamTimeout) as late:
        await call(w, "SendMessage", MSG)
    assert late.value.code == "agent_task_timeout"


# ---- upstreams that speak only HTTP+JSON

def test_rest_upstream_requests_and_answers():
    from shared.pillars.agents.a2a import rest_upstream as ru

    assert ru.request("SendMessage", {"message": {}}) == ("POST", "/message:send", {"message": {}}, {})
    assert ru.request("GetTask", {"id": "a/b", "historyLength": 2}) == ("GET", "/tasks/a%2Fb", None,
                                                                        {"historyLength": "2"})
    assert ru.request("CancelTask", {"id": "t"})[:2] == ("POST", "/tasks/t:cancel")
    assert ru.request("SubscribeToTask", {"id": "t"})[:2] == ("POST", "/tasks/t:subscribe")
    assert ru.request("ListTasks", {"pageSize": 5, "includeArtifacts": True, "x": {"no": 1}})[3] == {
        "pageSize": "5", "includeArtifacts": "true"}
    with pytest.raises(LookupError):
        ru.request("Teleport", {})
    ok = ru.answer(httpx.Response(200, json={"task": {"id": "t"}}), "r1")
    assert orjson.loads(ok.content) == {"jsonrpc": "2.0", "id": "r1", "result": {"task": {"id": "t"}}}
    _, status = rest.a2a_error(TASK_NOT_FOUND, "gone")
    missing = ru.answer(httpx.Response(404, json=status), "r1")
    assert missing.status_code == 200 and orjson.loads(missing.content)["error"]["code"] == TASK_NOT_FOUND
    for code in (429, 503):  # failures failover and breakers must see
        assert ru.answer(httpx.Response(code, json={}), "r1").status_code == code
    assert ru.status_error("r1", "not json", 400)["error"]["code"] == -32603


async def test_rest_upstream_streams_are_reframed_event_by_event():
    from shared.pillars.agents.a2a import rest_upstream as ru

    _, status = rest.a2a_error(UNSUPPORTED_OPERATION, "no")
    body = (b'data: {"task": {"id": "t"}}\r\n\r\nevent: error\ndata: ' + orjson.dumps(status) + b"\n\n"
            b'data: {"tail": 1}')
    upstream = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    framed = ru.stream(upstream, "r1")
    events = [orjson.loads(line[5:]) for line in (await framed.aread()).split(b"\n\n") if line.startswith(b"data:")]
    assert events[0]["result"] == {"task": {"id": "t"}}
    assert events[1]["error"]["code"] == UNSUPPORTED_OPERATION and events[2]["result"] == {"tail": 1}
