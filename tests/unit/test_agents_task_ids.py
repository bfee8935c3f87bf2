"""A2A task ids bound to the key that created the task (shared/pillars/agents/a2a/task_ids.py): sealed on every
answer that names a task, opened on every request that names one, TASK_NOT_FOUND for any other key/project/agent."""
from __future__ import annotations

import pytest

from shared.pillars.agents.a2a.protocol import TASK_NOT_FOUND, UNSUPPORTED_OPERATION, A2AError
from shared.pillars.agents.a2a.task_ids import PURPOSE, Owner, TaskIds
from shared.sealed import Sealer

A = Owner("key-a", "p1", "echo")
B = Owner("key-b", "p1", "echo")


def ids(secret: bytes = b"s" * 32) -> TaskIds:
    return TaskIds(Sealer([secret], purpose=PURPOSE, deterministic=True))


def refused(fn, *args) -> None:
    with pytest.raises(A2AError) as err:
        fn(*args)
    assert err.value.code == TASK_NOT_FOUND


def test_an_id_opens_for_its_key_on_any_instance_and_for_no_one_else():
    token = ids().seal(A, "up-1")
    assert "up-1" not in token and token == ids().seal(A, "up-1")  # deterministic: any instance, same id
    assert ids().open(A, token) == "up-1"  # another instance with the same secret
    refused(ids().open, B, token)  # another key
    refused(ids().open, Owner("key-a", "p2", "echo"), token)  # another project
    refused(ids().open, Owner("key-a", "p1", "other"), token)  # another agent
    refused(ids(b"x" * 32).open, A, token)  # another gateway's secret
    refused(ids().open, A, "up-1")  # a raw upstream id
    refused(ids().open, A, None)
    refused(ids().open, A, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))  # tampered


def test_requests_are_opened_and_another_keys_ids_refused():
    t = ids()
    token = t.seal(A, "up-1")
    assert t.open_params(A, "GetTask", {"id": token, "historyLength": 2}) == {"id": "up-1", "historyLength": 2}
    assert t.open_params(A, "CancelTask", {"id": token})["id"] == "up-1"
    assert t.open_params(A, "SubscribeToTask", {"id": token})["id"] == "up-1"
    for method in ("GetTask", "CancelTask", "SubscribeToTask"):
        refused(t.open_params, B, method, {"id": token})
    follow = {"message": {"messageId": "m", "taskId": token, "referenceTaskIds": [token], "parts": []}}
    opened = t.open_params(A, "SendMessage", follow)
    assert opened["message"]["taskId"] == "up-1" and opened["message"]["referenceTaskIds"] == ["up-1"]
    assert follow["message"]["taskId"] == token  # the client's params are not mutated
    refused(t.open_params, B, "SendStreamingMessage", follow)
    fresh = {"message": {"messageId": "m", "parts": []}}
    assert t.open_params(B, "SendMessage", fresh) == fresh
    with pytest.raises(A2AError) as err:
        t.open_params(A, "ListTasks", {})
    assert err.value.code == UNSUPPORTED_OPERATION


def test_every_answer_shape_names_the_sealed_id():
    t = ids()
    sealed = t.seal(A, "up-1")
    msg = {"messageId": "m", "role": "ROLE_AGENT", "taskId": "up-1", "parts": []}
    task = {"id": "up-1", "contextId": "c", "status": {"state": "TASK_STATE_WORKING", "message": msg},
            "history": [msg]}
    got = t.seal_result(A, "SendMessage", {"task": task})["task"]
    assert got["id"] == sealed and got["status"]["message"]["taskId"] == sealed
    assert got["history"][0]["taskId"] == sealed and task["id"] == "up-1"
    assert t.seal_result(A, "GetTask", task)["id"] == sealed
    assert t.seal_result(A, "CancelTask", task)["id"] == sealed
    assert t.seal_result(A, "SendMessage", {"message": msg})["message"]["taskId"] == sealed
    update = {"taskId": "up-1", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"}}
    assert t.seal_result(A, "SendStreamingMessage", {"statusUpdate": update})["statusUpdate"]["taskId"] == sealed
    art = {"taskId": "up-1", "contextId": "c", "artifact": {"artifactId": "a", "parts": []}}
    assert t.seal_result(A, "SubscribeToTask", {"artifactUpdate": art})["artifactUpdate"]["taskId"] == sealed
    direct = {"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": []}}  # no task: nothing to seal
    assert t.seal_result(A, "SendMessage", direct) == direct
    with pytest.raises(A2AError):
        t.seal(A, "x" * 2000)
