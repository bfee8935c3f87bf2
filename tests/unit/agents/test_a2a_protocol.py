"""A2A protocol layer in process: envelope parsing and versions, v0.3 ⇄ v1.0 bridging both ways, gateway cards."""
from __future__ import annotations

import pytest

from shared.pillars.agents.a2a import bridge
from shared.pillars.agents.a2a.card import card_v03, card_v1
from shared.pillars.agents.a2a.protocol import A2AError, parse_call, version_of
from shared.pillars.agents.domain import Agent, AgentSpec

V03_TASK = {"kind": "task", "id": "t1", "contextId": "c1",
            "status": {"state": "input-required", "message": {"kind": "message", "messageId": "m2", "role": "agent",
                                                              "parts": [{"kind": "text", "text": "which?"}]}},
            "artifacts": [{"artifactId": "a1", "parts": [
                {"kind": "file", "file": {"uri": "https://x/y.png", "mimeType": "image/png", "name": "y.png"}},
                {"kind": "data", "data": {"k": 1}}]}],
            "history": [{"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": "hi"}],
                         "extensions": ["urn:x"]}],
            "metadata": {"custom": True}}


def test_a_v03_task_becomes_v1_and_back_unchanged():
    v1 = bridge.task_to_v1(V03_TASK)
    assert "kind" not in v1 and v1["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert v1["status"]["message"]["role"] == "ROLE_AGENT"
    assert v1["artifacts"][0]["parts"][0] == {"url": "https://x/y.png", "mediaType": "image/png", "filename": "y.png"}
    assert v1["artifacts"][0]["parts"][1] == {"data": {"k": 1}}
    assert v1["history"][0]["extensions"] == ["urn:x"] and v1["metadata"] == {"custom": True}
    assert bridge.task_to_v03(v1) == V03_TASK


def test_raw_bytes_and_states_round_trip():
    part = {"raw": "aGk=", "mediaType": "text/plain", "metadata": {"m": 1}}
    assert bridge.part_to_v03(part) == {"kind": "file", "file": {"bytes": "aGk=", "mimeType": "text/plain"},
                                        "metadata": {"m": 1}}
    assert bridge.part_to_v1(bridge.part_to_v03(part)) == part
    for s in ("submitted", "working", "input-required", "auth-required", "completed", "canceled", "failed",
              "rejected", "unknown"):
        assert bridge.state_to_v03(bridge.state_to_v1(s)) == s


def test_send_results_and_stream_events_both_ways():
    msg03 = {"kind": "message", "messageId": "m", "role": "agent", "parts": [{"kind": "text", "text": "x"}]}
    assert bridge.send_result_to_v1(msg03) == {"message": {"messageId": "m", "role": "ROLE_AGENT",
                                                           "parts": [{"text": "x"}]}}
    assert bridge.send_result_to_v03(bridge.send_result_to_v1(msg03)) == msg03
    assert bridge.send_result_to_v03(bridge.send_result_to_v1(V03_TASK)) == V03_TASK
    done = {"statusUpdate": {"taskId": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"}}}
    ev = bridge.event_to_v03(done)
    assert ev == {"kind": "status-update", "taskId": "t", "contextId": "c", "status": {"state": "completed"},
                  "final": True}
    assert bridge.event_to_v1(ev) == done  # `final` does not exist in v1.0
    working = bridge.event_to_v03({"statusUpdate": {"taskId": "t", "contextId": "c",
                                                    "status": {"state": "TASK_STATE_WORKING"}}})
    assert working["final"] is False
    art = {"artifactUpdate": {"taskId": "t", "contextId": "c", "append": True, "lastChunk": False,
                              "artifact": {"artifactId": "a", "parts": [{"text": "p"}]}}}
    assert bridge.event_to_v1(bridge.event_to_v03(art)) == art


def test_params_blocking_and_push_config():
    p03 = {"message": V03_TASK["history"][0], "configuration": {"blocking": False, "historyLength": 2}}
    v1 = bridge.params_to_v1("SendMessage", p03)
    assert v1["configuration"] == {"historyLength": 2, "returnImmediately": True}
    assert bridge.params_to_v03("SendMessage", v1)["configuration"] == {"historyLength": 2, "blocking": False}
    with pytest.raises(A2AError) as e:
        bridge.params_to_v1("SendMessage", {"configuration": {"pushNotificationConfig": {"url": "http://evil"}}})
    assert e.value.code == -32003
    assert bridge.params_to_v1("GetTask", {"id": "t", "historyLength": 1, "metadata": {}}) == {"id": "t",
                                                                                               "historyLength": 1}


@pytest.mark.parametrize("raw,code", [(b"{", -32700), (b"[]", -32600), (b'{"jsonrpc":"1.0","method":"x"}', -32600),
                                      (b'{"jsonrpc":"2.0","method":"x","params":[1]}', -32602)])
def test_envelope_faults(raw, code):
    with pytest.raises(A2AError) as e:
        parse_call(raw)
    assert e.value.code == code and e.value.status == 200


def test_an_invalid_request_keeps_its_id():
    with pytest.raises(A2AError) as e:
        parse_call(b'{"jsonrpc":"2.0","id":"r7","method":"SendMessage","params":"x"}')
    assert e.value.rid == "r7"


def test_versions_from_the_method_and_the_header():
    assert version_of("SendMessage", "1.0") == "1.0" and version_of("message/send", None) == "0.3"
    assert version_of("tasks/get", "0.3.0") == "0.3"
    for method, header, code in (("Teleport", None, -32601), ("SendMessage", "2.0", -32009)):
        with pytest.raises(A2AError) as e:
            version_of(method, header)
        assert e.value.code == code


def _agent() -> Agent:
    spec = AgentSpec.model_validate({"name": "Echo", "source": "a2a", "interfaces": [
        {"url": "http://10.0.0.5:9000/rpc", "protocol_version": "0.3"}],
        "skills": [{"id": "echo", "name": "Echo", "tags": ["t"]}],
        "auth": {"type": "secret", "setting": "UPSTREAM_SECRET_ECHO"}})
    return Agent(id="echo", project_id="p1", spec=spec, lifecycle="published",
                 card={"capabilities": {"streaming": False}, "url": "http://10.0.0.5:9000/rpc"})


def test_cards_point_at_the_gateway_and_never_at_the_upstream():
    for card in (card_v1(_agent(), "https://gw.example"), card_v03(_agent(), "https://gw.example")):
        text = str(card)
        assert "10.0.0.5" not in text and "UPSTREAM_SECRET" not in text
        assert card["capabilities"] == {"streaming": False, "pushNotifications": False}
        assert card["skills"] == [{"id": "echo", "name": "Echo", "description": "Echo", "tags": ["t"]}]
    v1 = card_v1(_agent(), "https://gw.example/")
    assert {i["url"] for i in v1["supportedInterfaces"]} == {"https://gw.example/agents/echo"}
    assert v1["securityRequirements"] == [{"schemes": {"gatewayVirtualKey": {"list": []}}}]
