"""Against the running gateway and the real emulators (issue 6 #4, #8, #14): bounded contracts, a stored document
that no longer validates does not take its project down, deletes check the resource type, and keys and whole
projects can be purged."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from azure.cosmos import CosmosClient

from tests.conftest import new_key, new_project
from tests.integration.models_support import backend, chat, setup_model
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import HostProcess, wait_until


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI("integrity") as f:
        yield f


def registry(gateway: HostProcess):
    """The gateway's own Cosmos container, to write documents the API would refuse (older versions, hand edits)."""
    parts = dict(p.split("=", 1) for p in gateway.env["COSMOS_CONNECTION_STRING"].split(";") if "=" in p)
    client = CosmosClient(parts["AccountEndpoint"], credential=parts["AccountKey"], connection_verify=False,
                          enable_endpoint_discovery=False)
    return client.get_database_client(gateway.env["COSMOS_DATABASE"]).get_container_client("registry")


def write_raw_model(gateway: HostProcess, pid: str, name: str, **spec: Any) -> None:
    container = registry(gateway)
    doc = {k: v for k, v in container.read_item(next(iter(_model_ids(container, pid))), partition_key=pid).items()
           if not k.startswith("_")}
    doc["id"], doc["spec"] = name, {**doc["spec"], "name": name, **spec}
    container.create_item(doc)


def _model_ids(container, pid: str) -> list[str]:
    return [d["id"] for d in container.query_items("SELECT * FROM c WHERE c.pk = @pk AND c.kind = 'model'",
                                                   parameters=[{"name": "@pk", "value": pid}], partition_key=pid)]


# ---- item 4


def test_out_of_range_and_non_finite_numbers_are_422_naming_the_field(admin: httpx.Client, fake: FakeOpenAI):
    pid, name, _ = setup_model(admin, [backend(fake, "a")])
    spec = {"name": "big", "backends": [backend(fake, "a")]}
    r = admin.post(f"/manage/projects/{pid}/models", json={**spec, "context_window": 10**22})
    assert r.status_code == 422 and "context_window" in r.json()["error"]["message"], r.text
    for token in ("Infinity", "NaN", "-Infinity"):  # Python's json accepts these; JSON does not
        body = json.dumps(spec)[:-1] + f', "input_price_per_1k": {token}}}'
        r = admin.post(f"/manage/projects/{pid}/models", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (token, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == ["input_price_per_1k"]
    routing = {"breaker": {"failure_count": 10**22}, "retry": {"total_timeout_seconds": 1e300}}
    r = admin.put(f"/manage/projects/{pid}/models/{name}", json={"name": name, "backends": [backend(fake, "a")],
                                                                  "routing": routing})
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["error"]["details"]} == {"routing.breaker.failure_count",
                                                                   "routing.retry.total_timeout_seconds"}
    r = admin.put(f"/manage/projects/{pid}/quotas/project/{pid}", json={"tokens_per_day": 10**22})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "tokens_per_day"
    assert admin.get(f"/manage/projects/{pid}/models/big").status_code == 404  # nothing was written
    assert admin.get(f"/manage/projects/{pid}/quotas").json()["items"] == []


def test_a_stored_model_that_no_longer_validates_does_not_break_its_project(admin, gateway, fake):
    fake.reset()
    pid, good, secret = setup_model(admin, [backend(fake, "a")])
    write_raw_model(gateway, pid, "bad-window", context_window=10**22)  # read back by Cosmos as 1e22
    write_raw_model(gateway, pid, "bad-weight", backends=[{**backend(fake, "a"), "weight": 0}])
    r = admin.get(f"/manage/projects/{pid}/models")
    assert r.status_code == 200, r.text
    assert [m["name"] for m in r.json()["items"]] == [good]
    invalid = {d["id"]: d for d in r.json()["invalid"]}
    assert set(invalid) == {"bad-window", "bad-weight"} and invalid["bad-window"]["kind"] == "model"
    assert invalid["bad-window"]["errors"][0]["field"] == "spec.context_window"
    r = admin.get(f"/manage/projects/{pid}/models/bad-window")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_stored_document"
    # the data plane keeps serving the project's other models
    r = chat(gateway.url, secret, good)
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert listed.status_code == 200 and [m["id"] for m in listed.json()["data"]] == [good]
    assert chat(gateway.url, secret, "bad-window").status_code == 404
    # the admin repairs it by deleting it
    assert admin.delete(f"/manage/projects/{pid}/models/bad-window").status_code == 204
    assert [d["id"] for d in admin.get(f"/manage/projects/{pid}/models").json()["invalid"]] == ["bad-weight"]
    r = admin.put(f"/manage/projects/{pid}/models/bad-weight", json={"name": "bad-weight",
                                                                     "backends": [backend(fake, "a")]})
    assert r.status_code == 200, r.text  # or a full PUT repairs it
    listed = admin.get(f"/manage/projects/{pid}/models").json()
    assert [m["name"] for m in listed["items"]] == ["bad-weight", good] and listed["invalid"] == []
    assert "kind=model id=bad-window" in gateway.output()  # logged with its id and kind


# ---- item 8


def test_deletes_check_the_resource_type(admin: httpx.Client, anon: httpx.Client, fake: FakeOpenAI):
    pid, _, secret = setup_model(admin, [backend(fake, "a")], name="gpt-4.1")
    setup_model(admin, [backend(fake, "a")], name="model.gpt-4", project=pid)
    kid = admin.get(f"/manage/projects/{pid}/keys").json()["items"][0]["id"]
    r = admin.delete(f"/manage/projects/{pid}/quotas/gpt-4/1")  # used to delete the model gpt-4.1
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_scope"
    r = admin.delete(f"/manage/projects/{pid}/quotas/model/gpt-4")  # a quota id equal to a model's id
    assert r.status_code == 404, r.text
    r = admin.delete(f"/manage/projects/{pid}/models/{kid}")  # used to delete the key, with no revocation
    assert r.status_code == 404, r.text
    r = admin.delete(f"/manage/projects/{pid}/models/{pid}")  # used to delete the project document
    assert r.status_code == 404, r.text
    assert admin.get(f"/manage/projects/{pid}/models/gpt-4.1").status_code == 200
    assert admin.get(f"/manage/projects/{pid}/models/model.gpt-4").status_code == 200
    assert admin.get(f"/manage/projects/{pid}/keys/{kid}").json()["state"] == "active"
    assert admin.get(f"/manage/projects/{pid}").status_code == 200
    assert anon.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    r = admin.post(f"/manage/projects/{pid}/models", json={"name": pid, "backends": [backend(fake, "a")]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "id_taken"  # never lands on the project


# ---- item 14


def test_revoked_and_expired_keys_can_be_purged_then_the_project_deleted(admin: httpx.Client, anon: httpx.Client):
    pid = new_project(admin)
    created = admin.post(f"/manage/projects/{pid}/keys", json={"name": "ci"}).json()
    kid, secret = created["id"], created["secret"]
    assert admin.put(f"/manage/projects/{pid}/quotas/key/{kid}", json={"requests_per_minute": 5}).status_code == 200
    # a past expires_at is refused at creation (422), so let a short-lived key run out
    new_key(admin, pid, expires_at=(datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat())
    expired = [k["id"] for k in admin.get(f"/manage/projects/{pid}/keys").json()["items"] if k["id"] != kid][0]
    time.sleep(1.2)
    r = admin.delete(f"/manage/projects/{pid}/keys/{kid}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "key_active"  # revoke first
    assert admin.delete(f"/manage/projects/{pid}").json()["error"]["code"] == "project_not_empty"
    admin.post(f"/manage/projects/{pid}/keys/{kid}/revoke")
    assert admin.delete(f"/manage/projects/{pid}/keys/{kid}").status_code == 204
    assert admin.delete(f"/manage/projects/{pid}/keys/{expired}").status_code == 204
    assert admin.get(f"/manage/projects/{pid}/keys/{kid}").status_code == 404
    assert admin.get(f"/manage/projects/{pid}/keys").json()["items"] == []
    assert admin.get(f"/manage/projects/{pid}/quotas").json()["items"] == []  # the key's quota went with it
    r = anon.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401
    assert admin.delete(f"/manage/projects/{pid}").status_code == 204


def test_cascade_deletes_a_project_with_everything_it_owns(admin, anon, gateway, fake):
    fake.reset()
    pid, name, secret = setup_model(admin, [backend(fake, "a")])
    kid = admin.get(f"/manage/projects/{pid}/keys").json()["items"][0]["id"]
    admin.put(f"/manage/projects/{pid}/quotas/key/{kid}", json={"requests_per_minute": 50})
    admin.put(f"/manage/projects/{pid}/quotas/project/{pid}", json={"tokens_per_day": 10_000})
    write_raw_model(gateway, pid, "bad", context_window=10**22)
    assert chat(gateway.url, secret, name).status_code == 200
    assert admin.delete(f"/manage/projects/{pid}").json()["error"]["code"] == "project_not_empty"
    r = admin.delete(f"/manage/projects/{pid}", params={"cascade": "yes"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query"
    r = admin.delete(f"/manage/projects/{pid}", params={"cascade": "true"}, headers={"If-Match": '"stale"'})
    assert r.status_code == 412 and admin.get(f"/manage/projects/{pid}").status_code == 200
    assert admin.delete(f"/manage/projects/{pid}", params={"cascade": "true"}).status_code == 204
    assert admin.get(f"/manage/projects/{pid}").status_code == 404
    wait_until(lambda: anon.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 401,
               timeout=5, message="the purged key is refused")
    assert admin.delete(f"/manage/projects/{pid}", params={"cascade": "true"}).status_code == 404
    # the id is free again, and nothing of the old project comes back with it
    assert admin.post("/manage/projects", json={"id": pid, "name": "again"}).status_code == 201
    assert admin.get(f"/manage/projects/{pid}/models").json() == {"items": [], "next_cursor": None, "invalid": []}
    assert admin.get(f"/manage/projects/{pid}/quotas").json()["items"] == []
    assert admin.get(f"/manage/projects/{pid}/keys").json()["items"] == []


def test_purge_operations_are_in_the_openapi_spec(admin: httpx.Client):
    spec = admin.get("/openapi.json").json()
    ops = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    key_delete = next(op for (p, m), op in ops.items() if p.endswith("/keys/{key}") and m == "delete")
    assert key_delete["operationId"] == "manage_delete_key"
    project_delete = next(op for (p, m), op in ops.items() if p.endswith("/projects/{project}") and m == "delete")
    assert "cascade" in [prm["name"] for prm in project_delete.get("parameters", [])]
