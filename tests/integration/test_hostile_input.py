"""Hostile and careless input end to end, through the real host: structured 4xx/502 instead of 500s, strict OpenAI
types, the error body on unknown routes, `AzureOpenAI(...).models.list()`, and limit headers on 429s."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.integration.models_support import backend, chat, log_row, setup_model
from tests.support.fake_openai import FakeOpenAI, error, ok


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI("h") as f:
        yield f


@pytest.fixture
def model(admin, fake):
    fake.reset()
    return setup_model(admin, [backend(fake, "h")])


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and set(err) == {"code", "message", "type", "details"}, err
    return err


def test_admin_body_nested_a_thousand_deep_is_a_400(admin):
    raw = '{"id": "p-deep", "name": "x", "description": ' + nested(1000) + "}"
    r = admin.post("/manage/projects", content=raw, headers={"content-type": "application/json"})
    err = assert_error(r, 400, "json_too_deep")
    assert err["details"] == {"max_depth": 64} and "deep" in err["message"]
    assert admin.get("/manage/projects/p-deep").status_code == 404


@pytest.mark.parametrize("limit", ["¹", "٣", "1_0", "+5", "99999999999999999999999"])
def test_query_numbers_are_ascii_digits_only(admin, limit):
    err = assert_error(admin.get("/manage/projects", params={"limit": limit}), 400, "invalid_query")
    assert err["details"][0]["field"] == "limit"


def test_data_plane_body_nested_deep_is_a_400_before_any_admission(gateway, admin, model, fake):
    pid, name, secret = model
    admin.put(f"/manage/projects/{pid}/quotas/project/{pid}", json={"requests_per_minute": 1})
    if time.gmtime().tm_sec > 50:
        time.sleep(61 - time.gmtime().tm_sec)
    for depth in (255, 300, 1023):
        raw = '{"model": "%s", "messages": [{"role": "user", "content": "x"}], "meta": %s}' % (name, nested(depth))
        r = httpx.post(f"{gateway.url}/v1/chat/completions", content=raw, timeout=10,
                       headers={"Authorization": f"Bearer {secret}", "content-type": "application/json"})
        assert_error(r, 400, "json_too_deep")
    assert not fake.requests
    assert chat(gateway.url, secret, name).status_code == 200  # the minute's one request was never taken


def test_string_stream_flag_is_a_400_naming_the_field(gateway, model, fake):
    pid, name, secret = model
    r = chat(gateway.url, secret, name, stream="false")
    err = assert_error(r, 400, "invalid_request")
    assert err["type"] == "invalid_request_error" and err["details"][0]["field"] == "stream"
    assert_error(chat(gateway.url, secret, name, max_tokens="10"), 400, "invalid_request")
    assert not fake.requests
    r = chat(gateway.url, secret, name, stream=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert fake.requests[-1].body["stream"] is False and "stream_options" not in fake.requests[-1].body


def test_non_json_success_with_payload_logging_is_a_logged_502(gateway, admin, model, fake):
    pid, name, secret = model
    assert admin.patch(f"/manage/projects/{pid}", json={"log_payloads": True}).status_code == 200
    time.sleep(1.2)  # the flag cache (1 s in tests)
    fake.script(error(200, body="<html>not json</html>"))
    r = chat(gateway.url, secret, name)
    assert_error(r, 502, "upstream_bad_response")
    row = log_row(gateway.env["AzureWebJobsStorage"], r.headers["x-request-id"])
    assert row["status"] == 502 and row["error_code"] == "upstream_bad_response" and row["total_tokens"] == 0


@pytest.mark.parametrize("usage", ["12", {"prompt_tokens": "3", "completion_tokens": -1},
                                   {"prompt_tokens": 1e300, "completion_tokens": 2.5}, {"prompt_tokens": [{}]}])
def test_odd_upstream_usage_is_passed_on_and_estimated(gateway, model, fake, usage):
    pid, name, secret = model
    fake.script(ok("fine", extra={"usage": usage}))
    r = chat(gateway.url, secret, name)
    assert r.status_code == 200 and r.json()["usage"] == usage  # the client sees the upstream's body as it was
    row = log_row(gateway.env["AzureWebJobsStorage"], r.headers["x-request-id"])
    assert row["usage_estimated"] is True and row["prompt_tokens"] > 0


def test_unknown_routes_and_methods_answer_the_error_body(anon, admin):
    err = assert_error(anon.get("/no/such/route"), 404, "route_not_found")
    assert err["type"] == "invalid_request_error" and err["details"]["path"] == "/no/such/route"
    assert_error(admin.post("/v1/nothing-here", json={}), 404, "route_not_found")
    r = admin.delete("/v1/models")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET" and r.headers["x-request-id"]
    # an MCP session cannot be ended early (sealed state, valid until it expires): DELETE is 405, as MCP allows
    r = anon.delete("/mcp/any-toolbox", headers={"Mcp-Session-Id": "x"})
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, POST"


def test_azure_openai_sdk_lists_models(gateway, model):
    pid, name, secret = model
    client = openai.AzureOpenAI(azure_endpoint=gateway.url, api_key=secret, api_version="2024-10-21",
                                max_retries=0)
    assert [m.id for m in client.models.list()] == [name]
    plain = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {secret}"}).json()
    azure = httpx.get(f"{gateway.url}/openai/models", params={"api-version": "2024-10-21"},
                      headers={"api-key": secret}).json()
    assert azure == plain


def test_429_carries_limit_headers(gateway, admin, model, fake):
    pid, name, secret = model
    admin.put(f"/manage/projects/{pid}/quotas/project/{pid}", json={"requests_per_minute": 1,
                                                                    "tokens_per_minute": 5000})
    if time.gmtime().tm_sec > 50:
        time.sleep(61 - time.gmtime().tm_sec)
    first = chat(gateway.url, secret, name)
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-requests"] == "1"
    r = chat(gateway.url, secret, name)
    assert_error(r, 429, "rate_limit_exceeded")
    assert r.headers["x-ratelimit-limit-requests"] == "1" and r.headers["x-ratelimit-remaining-requests"] == "0"
    pid, name, secret = setup_model(admin, [backend(fake, "t")])  # a fresh minute's token counter
    admin.put(f"/manage/projects/{pid}/quotas/project/{pid}", json={"tokens_per_minute": 150})
    fake.set_default(ok("x", completion_tokens=100))  # the first call really uses ~110 of the 150
    first = chat(gateway.url, secret, name, max_tokens=100)
    assert first.status_code == 200, first.text
    r = chat(gateway.url, secret, name, max_tokens=100)  # fits the limit, not what is left of it
    assert_error(r, 429, "rate_limit_exceeded")
    assert r.headers["x-ratelimit-limit-tokens"] == "150" and r.headers["x-ratelimit-remaining-tokens"] == "0"


@pytest.mark.parametrize("raw", ['{"id": "p-x1", "name": "\\ud800"}', '{"id": "p-x2", "name": "a", "description": '
                                 '"\\udfff\\ud800"}', '{"id": "p-x3", "name": ' + "9" * 5000 + "}",
                                 '{"id": "p-x4", "name": "n", "log_payloads": NaN}'])
def test_admin_json_oddities_are_4xx_and_write_nothing(admin, raw):
    r = admin.post("/manage/projects", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and set(r.json()["error"]) == {"code", "message", "type", "details"}, r.text
    pid = raw.split('"')[3]
    assert admin.get(f"/manage/projects/{pid}").status_code == 404
