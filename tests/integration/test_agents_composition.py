"""Composite agents end to end: two real a2a-sdk agents (1.0 and 0.3) behind the real local host, composed by the
admin API, called by the a2a-sdk 1.x client and by raw JSON-RPC of both versions, stopped by their budget, traced
in the request log under one correlation id, and tried from the developer's agent playground."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY, new_key
from tests.integration.test_agents_a2a import a2a03_python, upstreams  # noqa: F401 - shared module fixtures
from tests.support.processes import wait_until

SEQ = {"mode": "sequential", "members": ["echo1", "echo03"]}


@pytest.fixture(scope="module")
def world(gateway, upstreams) -> Iterator[dict[str, str]]:  # noqa: F811
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20) as admin:
        pid = "p-" + uuid.uuid4().hex[:10]
        r = admin.post("/manage/projects", json={"id": pid, "name": pid, "pillars": {"agents": {"enabled": True}}})
        assert r.status_code == 201, r.text
        base = f"/manage/projects/{pid}/agents"
        for agent, url in upstreams.items():
            assert admin.post(base, json={"id": agent, "card_url": f"{url}/.well-known/agent-card.json"}
                              ).status_code == 201
            assert admin.post(f"{base}/{agent}/transitions", json={"to": "published"}).status_code == 200
        composites = {
            "seq": SEQ,
            "rt": {"mode": "router", "default": "echo1", "rules": [{"agent": "echo03", "keywords": ["old"]}]},
            "tight": {**SEQ, "budget": {"max_hops": 1}},
        }
        for cid, comp in composites.items():
            r = admin.post(f"{base}/composites", json={"id": cid, "name": cid.upper(), "composition": comp,
                                                       "owner": "team-x"})
            assert r.status_code == 201, r.text
            assert admin.post(f"{base}/{cid}/transitions", json={"to": "published"}).status_code == 200
        yield {"pid": pid, "key": new_key(admin, pid), "url": gateway.url, "base": base}


def _rpc(world, agent: str, method: str, params: dict, *, version: str | None = "1.0", rid: str | None = None):
    headers = {"Authorization": f"Bearer {world['key']}"}
    if version:
        headers["A2A-Version"] = version
    if rid:
        headers["x-request-id"] = rid
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": method, "params": params})
    return httpx.post(f"{world['url']}/agents/{agent}", content=body, headers=headers, timeout=30)


def _msg(text: str) -> dict:
    return {"message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}}


async def test_an_a2a_sdk_client_uses_a_composite_like_any_agent(world):
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import A2ACardResolver
    from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {world['key']}"}, timeout=30) as http:
        card = await A2ACardResolver(http, f"{world['url']}/agents/seq").get_agent_card()
        assert card.name == "SEQ" and {s.id for s in card.skills} == {"echo"}  # the members' skills
        for streaming in (False, True):
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)
            msg = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text="sdk")])
            events = [e async for e in client.send_message(SendMessageRequest(message=msg))]
            final = events[-1]
            task_id = final.task.id if final.HasField("task") else final.status_update.task_id
            got = await client.get_task(GetTaskRequest(id=task_id))
            assert got.status.state == 3, (streaming, got)  # TASK_STATE_COMPLETED
            assert got.artifacts[-1].parts[0].text == "echo(v0.3): echo(v1): sdk"


def test_a_v03_client_reaches_the_router_and_each_rule_picks_its_member(world):
    old = {"message": {"kind": "message", "messageId": "m1", "role": "user",
                       "parts": [{"kind": "text", "text": "the old way"}]}}
    res = _rpc(world, "rt", "message/send", old, version=None).json()["result"]
    assert res["kind"] == "task" and res["status"]["state"] == "completed"
    assert res["artifacts"][-1]["parts"][0]["text"] == "echo(v0.3): the old way"
    task = _rpc(world, "rt", "SendMessage", _msg("anything")).json()["result"]["task"]
    assert task["artifacts"][-1]["parts"][0]["text"] == "echo(v1): anything"


def test_the_budget_stops_a_task_cleanly_and_every_hop_is_logged_under_one_id(world, emulators):
    from azure.data.tables import TableClient

    rid = "cmp-" + uuid.uuid4().hex[:10]
    task = _rpc(world, "tight", "SendMessage", _msg("x"), rid=rid).json()["result"]["task"]
    gw = task["metadata"]["gateway"]
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    assert (gw["reason"], gw["limit"], gw["correlationId"]) == ("budget_exhausted", "hops", rid)
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == ["echo(v1): x"]  # the partial output

    def rows() -> list[dict]:
        with TableClient.from_connection_string(emulators.storage_connection_string, "gatewayrequests") as t:
            found = list(t.query_entities(f"request_id eq '{rid}'"))
        return found if len(found) == 2 else []

    by_resource = {r["resource"]: r for r in wait_until(rows, timeout=10, message="the task's request-log rows")}
    assert by_resource["echo1"]["composite"] == "tight" and by_resource["echo1"]["hop"] == 1
    top = by_resource["tight"]
    assert (top["stop_reason"], top["budget_limit"], top["task_state"]) == ("budget_exhausted", "hops",
                                                                              "TASK_STATE_FAILED")


def test_the_admin_api_refuses_cycles_and_unpublished_members_and_shows_member_state(world):
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    base = f"{world['url']}{world['base']}"
    r = httpx.put(f"{base}/seq/composition", headers=admin, json={"mode": "sequential", "members": ["echo1", "seq"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "composition_cycle"
    r = httpx.post(f"{base}/composites", headers=admin, json={"id": "outer", "name": "O", "composition": {
        "mode": "sequential", "members": ["seq"]}})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{base}/composites", headers=admin, json={"id": "bad", "name": "B", "composition": {
        "mode": "router", "default": "outer"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "member_not_published"  # outer is a draft
    assert httpx.post(f"{base}/outer/transitions", headers=admin, json={"to": "published"}).status_code == 200
    r = httpx.put(f"{base}/seq/composition", headers=admin, json={"mode": "sequential", "members": ["outer"]})
    assert r.status_code == 422 and "seq → outer → seq" in r.json()["error"]["message"]
    view = httpx.get(f"{base}/seq/composition", headers=admin).json()
    assert [(m["id"], m["invocable"]) for m in view["members"]] == [("echo1", True), ("echo03", True)]
    assert httpx.get(f"{base}/echo1/composition", headers=admin).json()["error"]["code"] == "not_a_composite"


def test_the_playground_and_the_catalog(world):
    dev = {"Authorization": f"Bearer {ADMIN_KEY}"}  # the bootstrap admin also holds the developer role
    url = f"{world['url']}/portal/projects/{world['pid']}"
    r = httpx.post(f"{url}/agent-playground", headers=dev, json={"agent": "seq", "text": "play"}, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] and out["reply"] == "echo(v0.3): echo(v1): play"
    assert out["states"][0] == "TASK_STATE_SUBMITTED" and out["states"][-1] == "TASK_STATE_COMPLETED"
    steps = [s["step"] for s in out["trace"]]
    assert steps[:2] == ["pillar_flag", "resolve"] and "hop 1" in steps and "hop 2" in steps
    r = httpx.post(f"{url}/agent-playground", headers=dev, json={"agent": "echo03", "text": "direct"}, timeout=30)
    out = r.json()
    assert out["ok"] and out["reply"] == "echo(v0.3): direct" and "TASK_STATE_WORKING" in out["states"]
    miss = httpx.post(f"{url}/agent-playground", headers=dev, json={"agent": "nope", "text": "x"}).json()
    assert not miss["ok"] and miss["trace"][-1]["step"] == "resolve"
    items = {a["id"]: a for a in httpx.get(f"{url}/agents", headers=dev).json()["items"]}
    assert items["seq"]["source"] == "composite" and items["seq"]["composition_mode"] == "sequential"
    assert items["seq"]["members"] == ["echo1", "echo03"] and items["seq"]["owner"] == "team-x"
    assert items["echo1"]["skills"][0]["id"] == "echo" and items["echo1"]["lifecycle"] == "published"
