"""The A2A gateway end to end, against real a2a-sdk agents and clients of both protocol versions.

Upstreams: an a2a-sdk 1.x agent (A2A 1.0, no 0.3 compatibility layer) and an a2a-sdk 0.3 agent from its own venv.
Clients: the a2a-sdk 1.x client in this process, the a2a-sdk 0.3 client from its venv, and raw JSON-RPC. Every call
goes through the real local host: virtual key, agents flag, directory (lifecycle), pipeline, request log."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, new_key
from tests.support.processes import wait_until

AGENTS = REPO_ROOT / "tests" / "agents"
VENV03 = AGENTS / ".venv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def a2a03_python() -> Path:
    """a2a-sdk 0.3 cannot share a venv with 1.x: its own, built once (pins in tests/agents/requirements-a2a03.txt)."""
    python = VENV03 / "bin" / "python"
    marker = VENV03 / ".installed"
    reqs = (AGENTS / "requirements-a2a03.txt").read_text()
    if not marker.exists() or marker.read_text() != reqs:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV03)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(AGENTS / "requirements-a2a03.txt")],
                       check=True, timeout=600)
        marker.write_text(reqs)
    return python


def _serve(python: Path | str, script: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([str(python), str(AGENTS / script), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/.well-known/agent-card.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=30, message=f"{script} serving")
    return proc, url


@pytest.fixture(scope="module")
def upstreams(a2a03_python: Path) -> Iterator[dict[str, str]]:
    v1, v1_url = _serve(sys.executable, "a2a_v1_agent.py")
    v03, v03_url = _serve(a2a03_python, "a2a_v03_agent.py")
    yield {"echo1": v1_url, "echo03": v03_url}
    for proc in (v1, v03):
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def world(gateway, upstreams) -> Iterator[dict[str, str]]:
    from tests.conftest import ADMIN_KEY
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20) as admin:
        pid = "p-" + uuid.uuid4().hex[:10]
        r = admin.post("/manage/projects", json={"id": pid, "name": pid, "pillars": {"agents": {"enabled": True}}})
        assert r.status_code == 201, r.text
        for agent, url in upstreams.items():
            r = admin.post(f"/manage/projects/{pid}/agents",
                           json={"id": agent, "card_url": f"{url}/.well-known/agent-card.json"})
            assert r.status_code == 201, r.text
            r = admin.post(f"/manage/projects/{pid}/agents/{agent}/transitions", json={"to": "published"})
            assert r.status_code in (200, 201), r.text
        r = admin.post(f"/manage/projects/{pid}/agents", json={"id": "restonly", "spec": {
            "name": "REST only", "interfaces": [{"url": upstreams["echo1"] + "/rest", "binding": "http_json"}]}})
        assert r.status_code == 201, r.text
        r = admin.post(f"/manage/projects/{pid}/agents/restonly/transitions", json={"to": "published"})
        assert r.status_code in (200, 201), r.text
        r = admin.post(f"/manage/projects/{pid}/agents", json={"id": "hidden", "spec": {
            "name": "Hidden", "interfaces": [{"url": upstreams["echo1"] + "/"}]}})
        assert r.status_code == 201, r.text
        key = new_key(admin, pid)
        narrow = new_key(admin, pid, agents=["echo1"])
        other = new_key(admin, pid)  # a second key of the same project: it may not touch the first one's tasks
        yield {"pid": pid, "key": key, "narrow": narrow, "other": other, "url": gateway.url, "admin_key": ADMIN_KEY}


def _rpc(world: dict[str, str], agent: str, method: str, params: dict, *, key: str | None = None,
         version: str | None = "1.0", raw: bytes | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or world['key']}"}
    if version:
        headers["A2A-Version"] = version
    body = raw if raw is not None else json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    return httpx.post(f"{world['url']}/agents/{agent}", content=body, headers=headers, timeout=30)


def _msg_v1(text: str) -> dict:
    return {"message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}}


def _msg_v03(text: str) -> dict:
    return {"message": {"kind": "message", "messageId": uuid.uuid4().hex, "role": "user",
                        "parts": [{"kind": "text", "text": text}]}}


# ---- cards

def test_the_card_points_at_the_gateway_in_both_shapes(world, upstreams):
    headers = {"Authorization": f"Bearer {world['key']}"}
    base = f"{world['url']}/agents/echo03"
    v1 = httpx.get(f"{base}/.well-known/agent-card.json", headers={**headers, "A2A-Version": "1.0"}).json()
    assert [(i["protocolBinding"], i["protocolVersion"]) for i in v1["supportedInterfaces"]] == [
        ("JSONRPC", "1.0"), ("JSONRPC", "0.3"), ("HTTP+JSON", "1.0")]
    assert all(i["url"] == base for i in v1["supportedInterfaces"])
    assert v1["securitySchemes"]["gatewayVirtualKey"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert v1["skills"][0]["id"] == "echo"
    v03 = httpx.get(f"{base}/.well-known/agent-card.json", headers=headers).json()
    assert v03["url"] == base and v03["protocolVersion"] == "0.3.0" and v03["security"] == [{"gatewayVirtualKey": []}]
    # nothing of the upstream's address leaks
    assert upstreams["echo03"] not in json.dumps(v1) + json.dumps(v03)


# ---- raw JSON-RPC: both directions of the bridge

def test_a_v1_client_reaches_a_v03_agent_and_the_reverse(world):
    r = _rpc(world, "echo03", "SendMessage", _msg_v1("hello"))
    assert r.status_code == 200, r.text
    task = r.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"][0]["text"] == "echo(v0.3): hello"
    assert "kind" not in task and task["history"][0]["role"] == "ROLE_USER"
    # a task started through one call is found by the next (no gateway state: ids are the upstream's)
    got = _rpc(world, "echo03", "GetTask", {"id": task["id"]}).json()["result"]
    assert got["id"] == task["id"] and got["status"]["state"] == "TASK_STATE_COMPLETED"

    r = _rpc(world, "echo1", "message/send", _msg_v03("hi"), version=None)
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["kind"] == "task" and res["status"]["state"] == "completed"
    assert res["artifacts"][0]["parts"][0] == {"kind": "text", "text": "echo(v1): hi"}


def test_streaming_is_bridged_event_by_event(world):
    body = json.dumps({"jsonrpc": "2.0", "id": "s1", "method": "message/stream", "params": _msg_v03("flow")})
    headers = {"Authorization": f"Bearer {world['key']}"}
    with httpx.stream("POST", f"{world['url']}/agents/echo1", content=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    kinds = [e["result"]["kind"] for e in events]
    assert kinds[0] == "task" and "artifact-update" in kinds and kinds[-1] == "status-update"
    assert events[-1]["result"]["status"]["state"] == "completed" and events[-1]["result"]["final"] is True
    assert all(e["id"] == "s1" for e in events)


# ---- protocol errors in the protocol's format, never a 5xx

def test_protocol_errors_are_json_rpc_errors(world):
    assert _rpc(world, "echo1", "", {}, raw=b"{nope").json()["error"]["code"] == -32700
    assert _rpc(world, "echo1", "", {}, raw=b'{"jsonrpc":"2.0","id":1}').json()["error"]["code"] == -32600
    assert _rpc(world, "echo1", "tasks/teleport", {}).json()["error"]["code"] == -32601
    assert _rpc(world, "echo1", "SendMessage", _msg_v1("x"), version="9.9").json()["error"]["code"] == -32009
    assert _rpc(world, "echo1", "CreateTaskPushNotificationConfig", {}).json()["error"]["code"] == -32003
    assert _rpc(world, "echo03", "ListTasks", {}).json()["error"]["code"] == -32004
    missing = _rpc(world, "echo1", "GetTask", {"id": "no-such-task"})
    assert missing.status_code == 200 and missing.json()["error"]["code"] == -32001


def test_governance_refusals(world):
    r = _rpc(world, "echo03", "SendMessage", _msg_v1("x"), key=world["narrow"])
    assert r.status_code == 403 and r.json()["error"]["data"]["error"]["code"] == "agent_not_allowed"
    r = _rpc(world, "hidden", "SendMessage", _msg_v1("x"))  # a draft is not visible
    assert r.status_code == 404 and r.json()["error"]["code"] == -32000
    assert _rpc(world, "echo1", "SendMessage", _msg_v1("x"), key="sk-gw-wrong").status_code == 401


# ---- real a2a-sdk clients of both versions

async def test_a2a_sdk_1x_client_through_the_gateway(world):
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import A2ACardResolver
    from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {world['key']}"}, timeout=30) as http:
        for agent, tag in (("echo1", "v1"), ("echo03", "v0.3")):
            card = await A2ACardResolver(http, f"{world['url']}/agents/{agent}").get_agent_card()
            for streaming in (False, True):
                client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)
                msg = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text="sdk")])
                events = [e async for e in client.send_message(SendMessageRequest(message=msg))]
                final = events[-1]
                task_id = final.task.id if final.HasField("task") else final.status_update.task_id
                got = await client.get_task(GetTaskRequest(id=task_id))
                assert got.status.state == 3, (agent, streaming, got)  # TASK_STATE_COMPLETED
                assert got.artifacts[0].parts[0].text == f"echo({tag}): sdk"
                if streaming:
                    assert any(e.HasField("artifact_update") for e in events), events


async def test_a2a_sdk_1x_http_json_client_through_the_gateway(world):
    """The HTTP+JSON binding the gateway's card lists, used by a2a-sdk's RestTransport, in front of upstreams that
    speak only JSON-RPC (1.0 and 0.3): send, stream, get, list, cancel, and the spec's errors."""
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import A2ACardResolver
    from a2a.types import (CancelTaskRequest, GetTaskRequest, ListTasksRequest, Message, Part, Role,
                           SendMessageRequest)
    from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError

    seen: list[str] = []

    async def note(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {world['key']}"}, timeout=30,
                                 event_hooks={"request": [note]}) as http:
        for agent, tag in (("echo1", "v1"), ("echo03", "v0.3")):
            card = await A2ACardResolver(http, f"{world['url']}/agents/{agent}").get_agent_card()
            config = ClientConfig(httpx_client=http, supported_protocol_bindings=["HTTP+JSON"])
            for streaming in (False, True):
                config.streaming = streaming
                client = ClientFactory(config).create(card)
                msg = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text="rest")])
                events = [e async for e in client.send_message(SendMessageRequest(message=msg))]
                final = events[-1]
                task_id = final.task.id if final.HasField("task") else final.status_update.task_id
                got = await client.get_task(GetTaskRequest(id=task_id))
                assert got.status.state == 3 and got.artifacts[0].parts[0].text == f"echo({tag}): rest"
                if streaming:
                    assert any(e.HasField("artifact_update") for e in events), events
            with pytest.raises(TaskNotCancelableError):  # a completed task: the agent's error, REST-framed
                await client.cancel_task(CancelTaskRequest(id=task_id))
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id="no-such-task"))
            # refused on both (0.3 has no ListTasks; a 1.0 agent would list every key's tasks), REST-framed
            with pytest.raises(UnsupportedOperationError):
                await client.list_tasks(ListTasksRequest())
    base = "/agents/echo1"
    assert f"POST {base}/message:send" in seen and f"POST {base}/message:stream" in seen
    assert any(s.endswith(":cancel") for s in seen) and any(s.endswith(":cancel") for s in seen)
    assert not any(s == f"POST {base}" for s in seen)  # never the JSON-RPC endpoint


async def test_an_upstream_that_speaks_only_http_json(world):
    """A REST-only 1.0 agent (a Vertex-hosted A2A agent is one) reached by JSON-RPC clients of both versions and
    by the HTTP+JSON binding: requests become REST calls, answers and errors come back in each client's terms."""
    r = _rpc(world, "restonly", "SendMessage", _msg_v1("via rest"))
    assert r.status_code == 200, r.text
    task = r.json()["result"]["task"]
    assert task["artifacts"][0]["parts"][0]["text"] == "echo(v1): via rest"
    assert r.headers["x-gateway-backend"] == "rest-1.0@0"
    assert _rpc(world, "restonly", "GetTask", {"id": task["id"]}).json()["result"]["id"] == task["id"]
    assert _rpc(world, "restonly", "GetTask", {"id": "nope"}).json()["error"]["code"] == -32001  # 404 reason
    assert _rpc(world, "restonly", "CancelTask", {"id": task["id"]}).json()["error"]["code"] == -32002
    # tasks are bound to their key; the agent would list every key's: refused
    assert _rpc(world, "restonly", "ListTasks", {"pageSize": 10}).json()["error"]["code"] == -32004
    old = _rpc(world, "restonly", "message/send", _msg_v03("old client"), version=None).json()["result"]
    assert old["kind"] == "task" and old["artifacts"][0]["parts"][0]["text"] == "echo(v1): old client"
    body = json.dumps({"jsonrpc": "2.0", "id": "s", "method": "SendStreamingMessage", "params": _msg_v1("flow")})
    headers = {"Authorization": f"Bearer {world['key']}", "A2A-Version": "1.0"}
    with httpx.stream("POST", f"{world['url']}/agents/restonly", content=body, headers=headers, timeout=30) as s:
        events = [json.loads(line[5:]) for line in s.iter_lines() if line.startswith("data:")]
    assert "artifactUpdate" in json.dumps(events) and events[-1]["result"]["statusUpdate"]["status"]["state"] == \
        "TASK_STATE_COMPLETED" and all(e["id"] == "s" for e in events)
    rest = httpx.post(f"{world['url']}/agents/restonly/message:send", json=_msg_v1("rest to rest"), headers=headers)
    assert rest.json()["task"]["artifacts"][0]["parts"][0]["text"] == "echo(v1): rest to rest"


def test_http_json_errors_and_refusals_are_google_rpc_status(world):
    headers = {"Authorization": f"Bearer {world['key']}", "A2A-Version": "1.0"}
    base = f"{world['url']}/agents/echo1"
    r = httpx.post(f"{base}/message:send", content=b"{nope", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["details"][0]["reason"] == "INVALID_REQUEST"
    r = httpx.get(f"{base}/tasks", params={"pageSize": "0"}, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = httpx.post(f"{base}/tasks/abc:teleport", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["details"][0]["reason"] == "METHOD_NOT_FOUND"
    r = httpx.post(f"{base}/message:send", json=_msg_v1("x"), headers={**headers, "A2A-Version": "0.3"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["reason"] == "VERSION_NOT_SUPPORTED"
    narrow = {**headers, "Authorization": f"Bearer {world['narrow']}"}
    r = httpx.post(f"{world['url']}/agents/echo03/message:send", json=_msg_v1("x"), headers=narrow)
    err = r.json()["error"]
    assert r.status_code == 403 and err["status"] == "PERMISSION_DENIED"
    assert err["details"][0]["reason"] == "AGENT_NOT_ALLOWED" and err["details"][0]["metadata"]["code"] == \
        "agent_not_allowed"
    card = httpx.get(f"{base}/extendedAgentCard", headers=headers).json()
    assert card["supportedInterfaces"][2] == {"url": base, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}


@pytest.mark.parametrize("agent,tag", [("echo1", "v1"), ("echo03", "v0.3")])
def test_a2a_sdk_03_client_through_the_gateway(world, a2a03_python, agent, tag):
    out = subprocess.run([str(a2a03_python), str(AGENTS / "a2a_v03_client.py"), f"{world['url']}/agents/{agent}",
                          world["key"], "old", world["other"]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["card_url"] == f"{world['url']}/agents/{agent}"
    assert res["send"]["task_id"].startswith("a2atask1.")  # the gateway's sealed id, never the upstream's
    assert "-32001" in res["other"]["get"] and "-32001" in res["other"]["cancel"], res["other"]  # another key
    assert res["send"]["state"] == "completed" and res["send"]["text"] == f"echo({tag}): old"
    assert res["stream"]["state"] == "completed" and "artifact-update" in res["stream"]["events"]
    assert res["get"] == {"state": "completed", "text": f"echo({tag}): old"}


# ---- tasks belong to the key that created them

@pytest.mark.parametrize("agent", ["echo1", "echo03"])
def test_a_task_is_bound_to_the_key_that_created_it(world, agent):
    task = _rpc(world, agent, "SendMessage", _msg_v1("mine")).json()["result"]["task"]
    tid, other = task["id"], world["other"]
    assert tid.startswith("a2atask1.") and task["history"][0].get("taskId", tid) == tid
    for method, version in (("GetTask", "1.0"), ("CancelTask", "1.0"), ("SubscribeToTask", "1.0"),
                            ("tasks/get", None), ("tasks/cancel", None), ("tasks/resubscribe", None)):
        r = _rpc(world, agent, method, {"id": tid}, key=other, version=version)
        assert r.status_code == 200 and r.json()["error"]["code"] == -32001, (method, r.text)
    follow = _msg_v1("again")
    follow["message"]["taskId"] = tid
    assert _rpc(world, agent, "SendMessage", follow, key=other).json()["error"]["code"] == -32001
    assert _rpc(world, agent, "GetTask", {"id": "a-raw-upstream-id"}).json()["error"]["code"] == -32001
    base, mine, theirs = (f"{world['url']}/agents/{agent}", {"Authorization": f"Bearer {world['key']}"},
                          {"Authorization": f"Bearer {other}"})
    for r in (httpx.get(f"{base}/tasks/{tid}", headers=theirs), httpx.post(f"{base}/tasks/{tid}:cancel", headers=theirs)):
        assert r.status_code == 404 and r.json()["error"]["details"][0]["reason"] == "TASK_NOT_FOUND", r.text
    # the key that created it: every binding reaches the upstream's task (completed: not cancelable)
    got = _rpc(world, agent, "GetTask", {"id": tid}).json()["result"]
    assert got["id"] == tid and got["status"]["state"] == "TASK_STATE_COMPLETED"
    assert _rpc(world, agent, "tasks/get", {"id": tid}, version=None).json()["result"]["id"] == tid
    assert _rpc(world, agent, "CancelTask", {"id": tid}).json()["error"]["code"] == -32002
    assert httpx.get(f"{base}/tasks/{tid}", headers=mine).json()["id"] == tid


def test_a_task_id_opens_on_another_instance_for_its_key_only(world, gateway_twin):
    """No store, no sticky routing: the sealed id opens on any instance of the deployment."""
    tid = _rpc(world, "echo1", "SendMessage", _msg_v1("scale out")).json()["result"]["task"]["id"]
    twin = {**world, "url": gateway_twin.url}
    got = _rpc(twin, "echo1", "GetTask", {"id": tid}).json()["result"]
    assert got["id"] == tid and got["artifacts"][0]["parts"][0]["text"] == "echo(v1): scale out"
    assert _rpc(twin, "echo1", "GetTask", {"id": tid}, key=world["other"]).json()["error"]["code"] == -32001


# ---- the request log and the lifecycle (last: it deprecates and suspends)

def test_every_call_is_in_the_request_log(world, emulators):
    from azure.data.tables import TableClient

    rid = "a2a-" + uuid.uuid4().hex[:10]
    r = httpx.post(f"{world['url']}/agents/echo03", headers={"Authorization": f"Bearer {world['key']}",
                                                             "A2A-Version": "1.0", "x-request-id": rid},
                   content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": _msg_v1("log")}))
    task_id = r.json()["result"]["task"]["id"]

    def rows() -> list[dict]:
        with TableClient.from_connection_string(emulators.storage_connection_string, "gatewayrequests") as t:
            return list(t.query_entities(f"request_id eq '{rid}'"))

    row = wait_until(rows, timeout=10, message="the call's request-log row")[0]
    assert (row["pillar"], row["resource"], row["operation"], row["status"]) == ("agents", "echo03", "SendMessage", 200)
    assert row["task_id"] == task_id and row["task_state"] == "TASK_STATE_COMPLETED"
    assert row["client_version"] == "1.0" and row["upstream_version"] == "0.3" and row["agent"] == "echo03"
    assert row["caller"] and row["latency_ms"] > 0


def test_deprecated_agents_answer_with_the_notice_and_suspended_ones_do_not_answer(world):
    admin = {"Authorization": f"Bearer {world['admin_key']}"}
    base = f"{world['url']}/manage/projects/{world['pid']}/agents"
    r = httpx.post(f"{base}/echo03/transitions", headers=admin,
                   json={"to": "deprecated", "reason": "use echo1", "replacement": "echo1"})
    assert r.status_code in (200, 201), r.text
    ok = wait_until(lambda: (a := _rpc(world, "echo03", "SendMessage", _msg_v1("old"))).headers.get("Deprecation")
                    and a, timeout=10, message="the deprecation notice")  # the directory caches for 1 s here
    assert ok.status_code == 200 and ok.headers["Deprecation"].startswith("@")
    assert 'rel="successor-version"' in ok.headers["Link"] and "echo1" in ok.headers["Link"]
    r = httpx.post(f"{base}/echo1/transitions", headers=admin, json={"to": "suspended", "reason": "incident"})
    assert r.status_code in (200, 201), r.text
    r = wait_until(lambda: (a := _rpc(world, "echo1", "SendMessage", _msg_v1("x"))).status_code == 403 and a,
                   timeout=10, message="the suspension")
    assert r.status_code == 403 and r.json()["error"]["data"]["error"]["code"] == "agent_suspended"
