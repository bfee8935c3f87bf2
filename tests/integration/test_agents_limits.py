"""Per-agent and per-key limits through the real local host, one test per limit family, against a real a2a-sdk
1.x agent (its "slow" text sleeps 30 s): rate (the agent's own limit and an `agent`-scope quota), concurrent
tasks, max turns, message size, task time, allowed skills per key — each refusal in the request log."""
from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY, new_key
from tests.integration.test_agents_a2a import _serve
from tests.support.processes import wait_until


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    proc, url = _serve(sys.executable, "a2a_v1_agent.py")
    yield url
    proc.kill()  # its "slow" tasks would hold a graceful shutdown for 30 s
    proc.wait(10)


@pytest.fixture(scope="module")
def lab(gateway, echo_url) -> Iterator[dict]:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20) as admin:
        pid = "p-" + uuid.uuid4().hex[:10]
        r = admin.post("/manage/projects", json={"id": pid, "name": pid, "pillars": {"agents": {"enabled": True}}})
        assert r.status_code == 201, r.text

        def agent(aid: str, limits: dict | None = None, skills: list[str] = ("echo",)) -> str:
            spec = {"name": aid, "interfaces": [{"url": echo_url + "/"}], "limits": limits or {},
                    "skills": [{"id": s, "name": s.title()} for s in skills]}
            r = admin.post(f"/manage/projects/{pid}/agents", json={"id": aid, "spec": spec})
            assert r.status_code == 201, r.text
            r = admin.post(f"/manage/projects/{pid}/agents/{aid}/transitions", json={"to": "published"})
            assert r.status_code in (200, 201), r.text
            return aid

        yield {"pid": pid, "admin": admin, "agent": agent, "key": new_key(admin, pid), "url": gateway.url,
               "new_key": lambda: new_key(admin, pid)}


def rpc(lab: dict, agent: str, text: str, *, key: str | None = None, context: str | None = None,
        skill: str | None = None, rid: str | None = None, timeout: float = 30) -> httpx.Response:
    message: dict = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
    if context:
        message["contextId"] = context
    if skill:
        message["metadata"] = {"skillId": skill}
    headers = {"Authorization": f"Bearer {key or lab['key']}", "A2A-Version": "1.0"}
    if rid:
        headers["x-request-id"] = rid
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    return httpx.post(f"{lab['url']}/agents/{agent}", json=body, headers=headers, timeout=timeout)


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["data"]["error"]["code"] == code, r.text


def key_id(lab: dict, secret: str) -> str:
    keys = lab["admin"].get(f"/manage/projects/{lab['pid']}/keys").json()["items"]
    return next(k["id"] for k in keys if secret.startswith(k["prefix"]))


def log_rows(emulators, rid: str) -> list[dict]:
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(emulators.storage_connection_string, "gatewayrequests") as t:
        return list(t.query_entities(f"request_id eq '{rid}'"))


def test_rate_per_agent_and_the_agent_quota_scope(lab, emulators):
    lab["agent"]("rated", {"requests_per_minute": 2})
    assert [rpc(lab, "rated", "a").status_code for _ in range(2)] == [200, 200]
    rid = "lim-" + uuid.uuid4().hex[:8]
    r = rpc(lab, "rated", "a", rid=rid)
    refused(r, 429, "rate_limit_exceeded")
    row = wait_until(lambda: log_rows(emulators, rid), timeout=10, message="the refusal's log row")[0]
    assert (row["resource"], row["status"], row["error_code"]) == ("rated", 429, "rate_limit_exceeded")

    lab["agent"]("quoted")
    r = lab["admin"].put(f"/manage/projects/{lab['pid']}/quotas/agent/quoted", json={"requests_per_minute": 1})
    assert r.status_code in (200, 201), r.text
    assert lab["admin"].put(f"/manage/projects/{lab['pid']}/quotas/agent/nobody",
                            json={"requests_per_minute": 1}).status_code == 404
    assert rpc(lab, "quoted", "a").status_code == 200
    refused(rpc(lab, "quoted", "a"), 429, "rate_limit_exceeded")


def test_concurrent_tasks(lab):
    lab["agent"]("single", {"concurrent_tasks": 1})
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": {
        "messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "slow"}]}}}
    headers = {"Authorization": f"Bearer {lab['key']}", "A2A-Version": "1.0"}
    with httpx.stream("POST", f"{lab['url']}/agents/single", json=body, headers=headers, timeout=30) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: a dropped iterator would close the connection
        next(lines)  # the task is running upstream
        r = rpc(lab, "single", "again")
        refused(r, 429, "agent_concurrency_exceeded")
        assert r.headers["retry-after"] == "1"
    # the slot is given back when the stream ends (the client went away)
    wait_until(lambda: rpc(lab, "single", "after").status_code == 200, timeout=10, message="the slot released")


def test_max_turns_per_key(lab):
    lab["agent"]("chatty")
    secret = lab["new_key"]()
    r = lab["admin"].put(f"/manage/projects/{lab['pid']}/keys/{key_id(lab, secret)}/agent-policy",
                         json={"limits": {"max_turns": 2}})
    assert r.status_code == 200, r.text
    first = rpc(lab, "chatty", "one", key=secret)  # no contextId: the gateway names the conversation
    context = first.json()["result"]["task"]["contextId"]
    assert rpc(lab, "chatty", "two", key=secret, context=context).status_code == 200
    refused(rpc(lab, "chatty", "three", key=secret, context=context), 403, "max_turns_exceeded")
    assert rpc(lab, "chatty", "fresh", key=secret).status_code == 200  # a new conversation
    assert rpc(lab, "chatty", "three", context=context).status_code == 200  # other keys: the agent has no limit


def test_message_size(lab):
    lab["agent"]("small", {"max_message_bytes": 300})
    assert rpc(lab, "small", "short").status_code == 200
    refused(rpc(lab, "small", "x" * 400), 413, "payload_too_large")


def test_task_time(lab):
    lab["agent"]("hasty", {"task_timeout_seconds": 1})
    r = rpc(lab, "hasty", "slow")
    refused(r, 504, "upstream_timeout")
    body = {"jsonrpc": "2.0", "id": 9, "method": "SendStreamingMessage", "params": {"message": {
        "messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "slow"}]}}}
    headers = {"Authorization": f"Bearer {lab['key']}", "A2A-Version": "1.0"}
    with httpx.stream("POST", f"{lab['url']}/agents/hasty", json=body, headers=headers, timeout=30) as stream:
        events = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
    assert "time limit" in events[-1]["error"]["message"] and events[-1]["id"] == 9


def test_allowed_skills_per_key(lab):
    lab["agent"]("skilled", skills=["echo", "summarize"])
    secret = lab["new_key"]()
    r = lab["admin"].put(f"/manage/projects/{lab['pid']}/keys/{key_id(lab, secret)}/agent-policy",
                         json={"skills": {"skilled": ["summarize"]}})
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {secret}", "A2A-Version": "1.0"}
    card = httpx.get(f"{lab['url']}/agents/skilled/.well-known/agent-card.json", headers=headers).json()
    assert [s["id"] for s in card["skills"]] == ["summarize"]
    refused(rpc(lab, "skilled", "hi", key=secret), 403, "skill_not_allowed")
    refused(rpc(lab, "skilled", "hi", key=secret, skill="echo"), 403, "skill_not_allowed")
    refused(rpc(lab, "skilled", "hi", key=secret, skill="nope"), 422, "unknown_skill")
    assert rpc(lab, "skilled", "hi", key=secret, skill="summarize").status_code == 200
    assert rpc(lab, "skilled", "hi", skill="echo").status_code == 200  # an unrestricted key
    assert lab["admin"].delete(f"/manage/projects/{lab['pid']}/keys/{key_id(lab, secret)}/agent-policy"
                               ).status_code == 200
    assert rpc(lab, "skilled", "hi", key=secret).status_code == 200


def test_purging_a_key_deletes_its_agent_policy(lab, gateway):
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    from tests.integration.test_admin_integrity import registry

    secret = lab["new_key"]()
    kid, pid, admin = key_id(lab, secret), lab["pid"], lab["admin"]
    assert admin.put(f"/manage/projects/{pid}/keys/{kid}/agent-policy",
                     json={"skills": {"skilled": ["summarize"]}}).status_code == 200
    container = registry(gateway)
    assert container.read_item(f"agent-key.{kid}", partition_key=pid)["key_id"] == kid
    assert admin.post(f"/manage/projects/{pid}/keys/{kid}/revoke").status_code == 200
    assert admin.delete(f"/manage/projects/{pid}/keys/{kid}").status_code == 204
    with pytest.raises(CosmosResourceNotFoundError):
        container.read_item(f"agent-key.{kid}", partition_key=pid)
    # a key without a policy purges as before
    bare = key_id(lab, lab["new_key"]())
    assert admin.post(f"/manage/projects/{pid}/keys/{bare}/revoke").status_code == 200
    assert admin.delete(f"/manage/projects/{pid}/keys/{bare}").status_code == 204
