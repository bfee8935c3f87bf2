"""The Responses API through the gateway with the official `openai` SDK, unmodified: create (JSON and typed SSE
events), retrieve, input items and delete routed to the backend that created the response, Azure OpenAI's v1
path, usage read from `usage` (cached and reasoning details priced apart) into the request log, and structured
4xx for bad input and ids the caller's project was never served."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY
from tests.integration.models_support import UPSTREAM_KEYS, backend, log_row, setup_model
from tests.support import fake_responses as rwire
from tests.support.fake_openai import FakeOpenAI, cut_stream, error, ok
from tests.support.processes import wait_until


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI("ra", api_key=UPSTREAM_KEYS["a"]) as a, FakeOpenAI("rb", api_key=UPSTREAM_KEYS["b"]) as b:
        yield a, b


@pytest.fixture(scope="module")
def setup(gateway, fakes):
    a, b = fakes
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        pid, name, secret = setup_model(admin, [backend(a, "ra", key="UPSTREAM_SECRET_TEST_A", priority=0),
                                                backend(b, "rb", key="UPSTREAM_SECRET_TEST_B", priority=1)],
                                        prices=(1.0, 2.0))
        spec = {k: v for k, v in admin.get(f"/manage/projects/{pid}/models/{name}").json().items()
                if k not in ("project_id", "created_at", "updated_at")}
        r = admin.put(f"/manage/projects/{pid}/models/{name}", json={
            **spec, "cached_input_price_per_1k": 0.5, "reasoning_price_per_1k": 4.0})
        assert r.status_code == 200, r.text
        _, _, other = setup_model(admin, [backend(a, "ra", key="UPSTREAM_SECRET_TEST_A")])  # another project
    return pid, name, secret, other


@pytest.fixture
def clean(fakes):
    for f in fakes:
        f.reset()
    return fakes


def client(gateway, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)


def test_create_retrieve_items_delete_with_the_sdk(gateway, setup, clean, emulators):
    a, b = clean
    pid, name, secret, _ = setup
    a.script(ok("The answer is 42", cached_tokens=3, reasoning_tokens=2, extra={"x_vendor": 1}))
    sdk = client(gateway, secret)
    raw = sdk.responses.with_raw_response.create(model=name, input="What is the answer?", instructions="Be brief",
                                                 max_output_tokens=50, extra_body={"custom": [1]})
    resp = raw.parse()
    assert resp.output_text == "The answer is 42" and resp.model_extra["x_vendor"] == 1
    assert raw.headers["x-gateway-backend"] == "ra"
    sent = a.requests[-1]
    assert sent.path == "/v1/responses" and sent.body["model"] == "ra-deploy" and sent.body["custom"] == [1]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEYS['a']}"
    assert resp.usage.input_tokens_details.cached_tokens == 3
    row = log_row(emulators.storage_connection_string, raw.headers["x-request-id"])
    inp = rwire.input_tokens(sent.body)
    assert row["operation"] == "responses" and row["prompt_tokens"] == inp and row["completion_tokens"] == 4
    assert row["cached_prompt_tokens"] == 3 and row["reasoning_tokens"] == 2
    # (inp-3)*1.0 + 3*0.5 + (4-2)*2.0 + 2*4.0 per 1k tokens
    assert row["cost_usd"] == pytest.approx(((inp - 3) * 1.0 + 1.5 + 4.0 + 8.0) / 1000, abs=1e-6)

    got = sdk.responses.retrieve(resp.id)
    assert got.id == resp.id and got.output_text == "The answer is 42"
    items = sdk.responses.input_items.list(resp.id)
    assert items.data[0].content[0].text == "What is the answer?"
    assert [r.method for r in a.requests[-2:]] == ["GET", "GET"] and not b.requests  # the backend that stores it
    sdk.responses.delete(resp.id)
    assert a.requests[-1].method == "DELETE" and resp.id not in a.responses
    with pytest.raises(openai.NotFoundError) as err:  # forgotten by the gateway once deleted
        sdk.responses.retrieve(resp.id)
    assert err.value.code == "response_not_found"


def test_stream_events_relayed_and_usage_from_completed(gateway, setup, clean, emulators):
    a, _ = clean
    _, name, secret, _ = setup
    a.script(ok("streamed words here", reasoning_tokens=1))
    sdk = client(gateway, secret)
    with sdk.responses.with_streaming_response.create(model=name, input="hi", stream=True) as raw:
        request_id = raw.headers["x-request-id"]
        events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "streamed words here"
    assert [e.sequence_number for e in events] == list(range(len(events)))  # relayed as they came
    rid = events[-1].response.id
    row = log_row(emulators.storage_connection_string, request_id)
    assert row["streamed"] is True and row["completion_tokens"] == 3 and row["reasoning_tokens"] == 1
    assert row["usage_estimated"] is False
    assert sdk.responses.retrieve(rid).output_text == "streamed words here"  # recorded from response.created


def test_previous_response_id_pins_the_backend_and_other_projects_see_nothing(gateway, setup, clean):
    a, b = clean
    _, name, secret, other = setup
    a.script(ok("first"))  # lands on ra (priority 0)
    sdk = client(gateway, secret)
    first = sdk.responses.create(model=name, input="one")
    a.set_default(ok())
    second = sdk.responses.create(model=name, input="two", previous_response_id=first.id)
    assert a.requests[-1].body["previous_response_id"] == first.id and second.id
    stranger = client(gateway, other)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(first.id)  # another project's id is an unknown id
    with pytest.raises(openai.NotFoundError) as err:
        stranger.responses.delete(first.id)
    assert err.value.body["details"] == {"field": "response_id"}
    assert first.id in a.responses  # nothing reached the upstream for the stranger
    r = httpx.post(f"{gateway.url}/v1/responses", headers={"Authorization": f"Bearer {other}"},
                   json={"model": name, "input": "x", "previous_response_id": first.id})
    assert r.status_code == 404  # (the stranger's project has no such model either)


def test_stream_cut_ends_with_an_error_event(gateway, setup, clean):
    a, b = clean
    _, name, secret, _ = setup
    a.script(cut_stream(after_chunks=3))
    sdk = client(gateway, secret)
    with pytest.raises(openai.APIError) as err:
        list(sdk.responses.create(model=name, input="hi", stream=True))
    assert "upstream_stream" in str(err.value.body)


def test_azure_v1_path_and_bad_input(gateway, setup, clean):
    a, _ = clean
    _, name, secret, _ = setup
    az = openai.OpenAI(base_url=f"{gateway.url}/openai/v1", api_key=secret, max_retries=0)
    assert az.responses.create(model=name, input="hi").output_text == "Hello from fake"
    h = {"Authorization": f"Bearer {secret}"}
    r = httpx.post(f"{gateway.url}/v1/responses", headers=h, json={"model": name, "input": "x", "stream": "yes"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "stream"
    r = httpx.post(f"{gateway.url}/v1/responses", headers=h, json={"input": "x"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "model"
    r = httpx.get(f"{gateway.url}/v1/responses/bad%20id!", headers=h)
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "response_id"


def test_playground_streams_the_answer_and_the_trace_as_the_developers_own_key(gateway, clean, jwks):
    a, _ = clean
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        pid, name, _ = setup_model(admin, [backend(a, "ra", key="UPSTREAM_SECRET_TEST_A")], prices=(1.0, 2.0))
        mine = admin.post(f"/manage/projects/{pid}/keys", json={"name": "dev", "metadata": {"owner": "dev-7"}}).json()
        theirs = admin.post(f"/manage/projects/{pid}/keys", json={"name": "x", "metadata": {"owner": "x"}}).json()
        assert admin.put(f"/manage/projects/{pid}/quotas/model/{name}",
                         json={"tokens_per_day": 100_000}).status_code in (200, 201)
        assert admin.put(f"/manage/projects/{pid}/quotas/key/{mine['id']}",
                         json={"tokens_per_day": 50_000}).status_code in (200, 201)
        assert admin.post(f"/manage/projects/{pid}/guardrails", json={
            "id": "pii-" + name, "attach": {"scope": "resource", "pillar": "models", "resource": name},
            "checks": [{"type": "pii", "name": "pii", "stage": "both"}]}).status_code == 201
    dev = {"Authorization": f"Bearer {jwks.token(roles=['Gateway.Developer'], oid='dev-7')}"}
    url = f"{gateway.url}/portal/projects/{pid}/models/{name}/playground"
    ask = {"key_id": mine["id"], "messages": [{"role": "user", "content": "hello there"}]}
    with httpx.stream("POST", url, headers=dev, json=ask, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = [e for e in body.split("\n\n") if e.strip()]
    answer = "".join(json.loads(e.split("data: ", 1)[1])["delta"] for e in events[:-1])
    assert answer.strip() == "Hello from fake" and events[-1].startswith("event: trace")
    trace = json.loads(events[-1].split("data: ", 1)[1])
    assert trace["ok"] is True and trace["backend"] == "ra" and trace["key_id"] == mine["id"]
    assert trace["prompt_tokens"] > 0 and trace["completion_tokens"] == 3 and trace["cost_usd"] > 0
    assert a.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEYS['a']}"

    assert trace["guardrails"] == [] and trace["cache"] is None  # the policy ran and found nothing; no cache
    mail = {**ask, "stream": False, "messages": [{"role": "user", "content": "mail a@b.co"}]}
    one = httpx.post(url, headers=dev, json=mail, timeout=30).json()
    assert one["answer"] == "Hello from fake" and one["trace"]["status"] == 200
    assert [(v["check"], v["action"], v["stage"]) for v in one["trace"]["guardrails"]] == [("pii", "redact", "input")]
    assert a.requests[-1].body["messages"][0]["content"] == "mail [REDACTED:email]"
    refused = httpx.post(url, headers=dev, json={**ask, "key_id": theirs["id"]}, timeout=30)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "key_not_found"
    missing = httpx.post(f"{gateway.url}/portal/projects/{pid}/models/nope/playground", headers=dev, json=ask,
                         timeout=30).json()
    assert missing["trace"]["ok"] is False and missing["trace"]["error_code"] == "model_not_found"

    # the catalog shows what is left of the model's own limit (the two playground calls' real tokens), and
    # reading it takes nothing
    used = sum(t["prompt_tokens"] + t["completion_tokens"] for t in (trace, one["trace"]))

    def left(scope: str = "model", **query: str) -> dict:
        cat = httpx.get(f"{gateway.url}/portal/projects/{pid}/models", headers=dev, params=query, timeout=10).json()
        limits = next(m for m in cat["items"] if m["name"] == name)["limits"]
        return next(lim for lim in limits if lim["scope"] == scope)["remaining"][0]

    first = left()
    assert first["limit"] == "tokens_per_day" and first["allowed"] == 100_000
    assert first["remaining"] == 100_000 - used and left()["remaining"] == first["remaining"]
    assert left("key", key=mine["id"])["remaining"] == 50_000 - used  # my own key's limit, on request
    other = httpx.get(f"{gateway.url}/portal/projects/{pid}/models", headers=dev, params={"key": theirs["id"]})
    assert other.status_code == 404 and other.json()["error"]["code"] == "key_not_found"


def test_a_response_id_is_served_by_another_instance(gateway_twin, gateway, setup, clean):
    """Two instances of one deployment (same registry and key pepper): the id recorded by one is found by the
    other (the registry, read through on a local miss), pinned to the backend that stores it."""
    a, b = clean
    _, name, secret, other = setup
    second = gateway_twin
    a.script(error(500), error(500), error(500))  # ra fails: the response lives on rb (not the pool's first)
    b.script(ok("kept on rb"))
    first = client(gateway, secret).responses.create(model=name, input="one")
    assert first.id in b.responses
    sdk2 = client(second, secret)
    got = wait_until(lambda: _retrieved(sdk2, first.id), timeout=10, message="the id on the second instance")
    assert got.output_text == "kept on rb" and b.requests[-1].method == "GET"
    b.set_default(ok())
    sdk2.responses.create(model=name, input="two", previous_response_id=first.id)
    assert b.requests[-1].body["previous_response_id"] == first.id  # pinned to rb on the other instance too
    with pytest.raises(openai.NotFoundError):
        client(second, other).responses.retrieve(first.id)  # another project: unknown there as well
    sdk2.responses.delete(first.id)
    assert first.id not in b.responses


def _retrieved(sdk: openai.OpenAI, rid: str):
    try:
        return sdk.responses.retrieve(rid)
    except openai.NotFoundError:
        return None  # the background write has not landed yet


def test_a_projects_response_ids_go_with_it(gateway, fakes):
    """Response id records live in the project's partition and count as its documents: a cascade delete removes
    them (never an orphan that a project re-created under the same id would inherit)."""
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    from tests.integration.test_admin_integrity import registry

    a, _ = fakes
    a.set_default(ok())
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        pid, name, secret = setup_model(admin, [backend(a, "ra", key="UPSTREAM_SECRET_TEST_A")])
        rid = client(gateway, secret).responses.create(model=name, input="x").id
        container = registry(gateway)
        wait_until(lambda: _stored(container, pid, rid), timeout=10, message="the response id's record")
        assert admin.delete(f"/manage/projects/{pid}", params={"cascade": "true"}).status_code == 204
        with pytest.raises(CosmosResourceNotFoundError):
            container.read_item(f"response.{rid}", partition_key=pid)


def _stored(container, pid: str, rid: str) -> bool:
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    try:
        return container.read_item(f"response.{rid}", partition_key=pid)["kind"] == "response_route"
    except CosmosResourceNotFoundError:
        return False
