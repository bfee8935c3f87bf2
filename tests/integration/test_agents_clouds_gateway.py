"""Bedrock and Vertex agents through the gateway's A2A front, end to end: a gateway of its own whose sync
connections point at moto + the local Bedrock front and at the local Vertex Agent Engine; agents arrive by a
sync run, and a2a-sdk 1.x clients (JSON-RPC and HTTP+JSON, streaming and not) and raw v0.3 JSON-RPC call them.
InvokeAgent's event stream (chunks, traces with token usage, returnControl) and :query/:streamQuery become A2A
tasks; the request log has the agent, caller, method, task and tokens."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import ADMIN_KEY, new_key
from tests.integration.test_agents_clouds import PARENT, bedrock_conn, create_agents, service_account, vertex_conn
from tests.support.fake_bedrock import FakeBedrock
from tests.support.fake_vertex import FakeVertex, engine
from tests.support.processes import wait_until


@pytest.fixture(scope="module")
def clouds() -> Iterator[dict]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    bedrock, vertex = FakeBedrock(moto_url).start(), FakeVertex().start()
    [aid] = create_agents(moto_url, ["concierge"])
    bedrock.add_alias(aid, "LIVE000009", "live")
    vertex.engines[PARENT] = [engine(PARENT, "301", "planner")]
    yield {"bedrock": bedrock, "vertex": vertex, "aws_agent": f"aws-{aid.lower()}"}
    bedrock.stop()
    vertex.stop()
    moto.stop()


@pytest.fixture(scope="module")
def front(start_gateway, clouds) -> Iterator[dict]:
    pid = "p-" + uuid.uuid4().hex[:10]
    conns = [bedrock_conn(clouds["bedrock"].url, project=pid), vertex_conn(clouds["vertex"].url, project=pid)]
    gw = start_gateway(AGENTS_SYNC_CONNECTIONS=json.dumps(conns), UPSTREAM_SECRET_AWS_KEY="AKIAFAKEFAKEFAKE",
                       UPSTREAM_SECRET_AWS_SECRET="fake-secret",
                       UPSTREAM_SECRET_GCP_SA=service_account(f"{clouds['vertex'].url}/token"))
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin:
        r = admin.post("/manage/projects", json={"id": pid, "name": pid, "pillars": {"agents": {"enabled": True}}})
        assert r.status_code == 201, r.text
        assert admin.put(f"/manage/projects/{pid}/agent-policy", json={"publish_synced": True}).status_code == 200
        runs = admin.post(f"/manage/projects/{pid}/agent-sync", json={}).json()["runs"]
        assert {r["cloud"]: r["status"] for r in runs} == {"bedrock": "succeeded", "vertex": "succeeded"}, runs
        yield {"url": gw.url, "key": new_key(admin, pid), "pid": pid, **clouds}


def rpc(front: dict, agent: str, method: str, params: dict, *, version: str | None = "1.0",
        rid: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {front['key']}"}
    if version:
        headers["A2A-Version"] = version
    if rid:
        headers["x-request-id"] = rid
    return httpx.post(f"{front['url']}/agents/{agent}", headers=headers, timeout=30,
                      json={"jsonrpc": "2.0", "id": "c1", "method": method, "params": params})


async def test_a2a_sdk_clients_reach_bedrock_and_vertex_agents(front):
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import A2ACardResolver
    from a2a.types import Message, Part, Role, SendMessageRequest

    expect = {front["aws_agent"]: ("You said: sdk (from Bedrock)", "You said: sdk (from Bedrock)"),
              "gcp-301": ("Vertex heard: sdk", "Vertex streams: sdk (done)")}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {front['key']}"}, timeout=30) as http:
        for agent, (sent, streamed) in expect.items():
            card = await A2ACardResolver(http, f"{front['url']}/agents/{agent}").get_agent_card()
            assert front["bedrock"].url not in json.dumps(str(card)) and front["vertex"].url not in str(card)
            for binding in ("JSONRPC", "HTTP+JSON"):
                for streaming in (False, True):
                    config = ClientConfig(httpx_client=http, streaming=streaming,
                                          supported_protocol_bindings=[binding])
                    client = ClientFactory(config).create(card)
                    msg = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text="sdk")])
                    events = [e async for e in client.send_message(SendMessageRequest(message=msg))]
                    if streaming:
                        texts = "".join(p.text for e in events if e.HasField("artifact_update")
                                        for p in e.artifact_update.artifact.parts)
                        assert texts == streamed, (agent, binding, events)
                        assert events[-1].status_update.status.state == 3  # TASK_STATE_COMPLETED
                    else:
                        task = events[-1].task
                        assert task.status.state == 3 and task.artifacts[0].parts[0].text == sent, (agent, binding)


def test_bedrock_return_control_usage_and_the_v03_bridge(front, emulators):
    agent = front["aws_agent"]
    rid = "bedrock-" + uuid.uuid4().hex[:8]
    msg = {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hello there"}]}}
    task = rpc(front, agent, "SendMessage", msg, rid=rid).json()["result"]["task"]
    assert task["artifacts"][0]["parts"][0]["text"] == "You said: hello there (from Bedrock)"
    assert front["bedrock"].invocations[-1]["session"] == task["contextId"]  # contextId ↔ sessionId

    ask = {"message": {"messageId": "m2", "role": "ROLE_USER", "parts": [{"text": "what is the weather?"}]}}
    waiting = rpc(front, agent, "SendMessage", ask).json()["result"]["task"]
    assert waiting["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    control = waiting["status"]["message"]["parts"][0]["data"]["returnControl"]
    answer = {"message": {"messageId": "m3", "role": "ROLE_USER", "contextId": waiting["contextId"], "parts": [
        {"data": {"invocationId": control["invocationId"], "returnControlInvocationResults": [
            {"functionResult": {"actionGroup": "weather", "function": "get_weather",
                                "responseBody": {"TEXT": {"body": "sunny"}}}}]}}]}}
    done = rpc(front, agent, "SendMessage", answer).json()["result"]["task"]
    assert done["artifacts"][0]["parts"][0]["text"] == "It is sunny in Paris."

    old = rpc(front, agent, "message/send", {"message": {"kind": "message", "messageId": "m4", "role": "user",
                                                         "parts": [{"kind": "text", "text": "old"}]}}, version=None)
    res = old.json()["result"]
    assert res["kind"] == "task" and res["status"]["state"] == "completed"
    assert res["artifacts"][0]["parts"][0] == {"kind": "text", "text": "You said: old (from Bedrock)"}

    unsupported = rpc(front, agent, "GetTask", {"id": task["id"]}).json()
    assert unsupported["error"]["code"] == -32004  # no task store behind InvokeAgent
    bad = rpc(front, agent, "SendMessage", {"message": {"role": "ROLE_USER"}}).json()
    assert bad["error"]["code"] == -32602

    def row() -> list[dict]:
        from azure.data.tables import TableClient

        with TableClient.from_connection_string(emulators.storage_connection_string, "gatewayrequests") as t:
            return list(t.query_entities(f"request_id eq '{rid}'"))

    logged = wait_until(row, timeout=10, message="the Bedrock call's request-log row")[0]
    assert (logged["resource"], logged["operation"], logged["status"], logged["target"]) == (
        agent, "SendMessage", 200, "bedrock")
    assert logged["task_id"] == task["id"] and logged["task_state"] == "TASK_STATE_COMPLETED"
    assert (logged["input_tokens"], logged["output_tokens"], logged["total_tokens"]) == (11, 7, 18)
    assert logged["caller"] and logged["latency_ms"] > 0


def test_a_failing_bedrock_stream_ends_with_a_failed_task(front):
    body = {"message": {"messageId": "m5", "role": "ROLE_USER", "parts": [{"text": "boom"}]}}
    headers = {"Authorization": f"Bearer {front['key']}", "A2A-Version": "1.0"}
    with httpx.stream("POST", f"{front['url']}/agents/{front['aws_agent']}/message:stream", json=body,
                      headers=headers, timeout=30) as r:
        assert r.status_code == 200
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_FAILED"
