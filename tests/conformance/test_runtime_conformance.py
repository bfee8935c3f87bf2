"""The app under the pinned Functions Python runtime, driven the way the Functions host drives it.

A worker process (tests/conformance/worker_main.py, the transport the host ships) runs the pinned
`azure-functions-runtime` against this repository's function_app.py; tests/conformance/host.py plays the host over
gRPC and forwards HTTP calls to the worker's own HTTP-streaming server. Settings: the Bicep's literal app settings
on top of the emulators' connection strings.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from concurrent import futures
from typing import Any

import pytest

from function_app import build_app
from shared.config import Settings
from tests.conformance import host_rules
from tests.conformance.host import FunctionsHost
from tests.conftest import ADMIN_KEY
from tests.integration.models_support import backend
from tests.support import fake_openai
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import REPO

SPEC_PATHS = ("/spec/openapi.json", "/openapi.json")


def _status_ok(host: FunctionsHost, result: Any) -> bool:
    return result.status == host.protos.StatusResult.Success


def test_worker_initialises_with_its_http_streaming_server(functions_host: FunctionsHost) -> None:
    init = functions_host.init_response
    assert _status_ok(functions_host, init.result), init.result.exception.message
    assert init.worker_metadata.runtime_version == "3.13"
    # The runtime answering is the one requirements.txt pins (what the host's proxy loads from the app's packages).
    pinned = re.search(r"^azure-functions-runtime==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned and init.worker_metadata.worker_version == pinned.group(1)
    # The FastAPI extension is active: the worker serves HTTP itself and tells the host where.
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", init.capabilities["HttpUri"])
    assert init.capabilities["RequiresRouteParameters"] == "true"
    md = functions_host.metadata_response
    assert _status_ok(functions_host, md.result) and not md.use_default_metadata_indexing


def test_every_function_indexes_and_loads_with_names_the_host_accepts(functions_host: FunctionsHost) -> None:
    expected = {f.get_function_name() for f in build_app(Settings()).get_functions()}
    indexed = {f.name for f in functions_host.functions}
    assert indexed == expected
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for fn in functions_host.functions:
        if not _status_ok(functions_host, functions_host.load_responses[fn.name].result):
            problems.append(f"{fn.name}: load failed")
        problems += filter(None, [host_rules.function_name_error(fn.name)])
        problems += filter(None, (host_rules.binding_name_error(b["name"]) for b in fn.bindings))
        trig = fn.trigger
        if trig["type"] == "httpTrigger":
            problems += filter(None, [host_rules.route_error(trig["route"])])
            # no methods = every method (the catch-all that answers unknown paths with the gateway's error body)
            for method in trig.get("methods") or ["*"]:
                key = (trig["route"].strip("/").lower(), method.upper())
                if key in seen:
                    problems.append(f"{fn.name} and {seen[key]} both serve {key}")
                seen[key] = fn.name
    assert not problems, problems


def test_timer_and_queue_functions_have_valid_schedules_and_connections(functions_host: FunctionsHost) -> None:
    # None exist yet; any that appear are checked against the schedule and connection rules the host applies.
    errors = [f"{fn.name}: {e}" for fn in functions_host.functions
              for e in host_rules.trigger_errors(fn.bindings, functions_host.env)]
    assert not errors, errors


def _spec(host: FunctionsHost) -> dict[str, Any]:
    """The OpenAPI document as the worker serves it at its spec path, else (before that path exists) from the
    app object in process."""
    try:
        with host.http("GET", SPEC_PATHS[0], timeout=5) as (resp, done):
            resp.read()
            if resp.status_code == 200 and _status_ok(host, done.result(5).result):
                return resp.json()
    except LookupError:
        pass  # no function routes the spec path on this branch
    from starlette.requests import Request

    fns = build_app(Settings()).get_functions()
    fn = next(f for f in fns if f.get_trigger().get_dict_repr().get("route", "").endswith("openapi.json"))

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    return json.loads(asyncio.run(fn.get_user_function()(Request(scope))).body)


def test_every_spec_route_reaches_its_own_function(functions_host: FunctionsHost) -> None:
    spec = _spec(functions_host)
    calls = [(m.upper(), re.sub(r"\{[^}]+\}", "conformance", p)) for p, item in spec["paths"].items() for m in item]
    # every HTTP function but /openapi.json's own is in the spec; timer and queue functions have no route
    http = [f for f in functions_host.functions if f.trigger.get("type", "").lower() == "httptrigger"]
    assert len(http) < len(functions_host.functions)  # the tools pillar's queue and timer functions are indexed
    assert len(calls) >= len(http) - 1
    wrong: list[str] = []
    for method, path in calls:
        if path in SPEC_PATHS[1:]:
            continue  # FastAPI's own route shadows it; test_openapi_json_through_the_worker_answers covers it
        fn, _ = functions_host.match(method, path)
        with functions_host.http(method, path, timeout=5) as (resp, done):
            body = resp.read()
            try:
                result = done.result(5).result
            except futures.TimeoutError:
                wrong.append(f"{method} {path}: invocation of {fn.name} never completed (HTTP {resp.status_code})")
                continue
        data = json.loads(body) if body else None
        ours = resp.status_code < 400 or (isinstance(data, dict) and {"code", "message"} <= set(data["error"]))
        if not _status_ok(functions_host, result) or not ours or "x-request-id" not in resp.headers:
            wrong.append(f"{method} {path} -> {fn.name}: HTTP {resp.status_code} {body[:120]!r}")
    assert not wrong, wrong


def test_openapi_json_through_the_worker_answers(functions_host: FunctionsHost) -> None:
    # The extension's internal FastAPI app keeps FastAPI's default /openapi.json route, which matches before the
    # catch-all that hands requests to invocations: the caller gets FastAPI's own schema and the invocation waits
    # for an HTTP request that never comes (in Azure: until functionTimeout, then the worker is recycled).
    with functions_host.http("GET", "/openapi.json", timeout=5) as (resp, done):
        body = resp.read()
        try:
            result = done.result(5).result
        except futures.TimeoutError:
            pytest.fail(f"invocation never completed; HTTP {resp.status_code} answered by {body[:80]!r}")
    assert _status_ok(functions_host, result)
    if resp.status_code in (301, 302, 307, 308):
        assert resp.headers["location"].endswith(SPEC_PATHS[0])
    else:
        assert resp.status_code == 200 and resp.json()["info"]["title"] != "FastAPI"


def test_unknown_paths_reach_the_catch_all_and_get_the_gateways_error_body(functions_host: FunctionsHost) -> None:
    r = functions_host.call("GET", "/no/such/path")
    assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"
    assert set(r.json()["error"]) == {"code", "message", "type", "details"}
    r = functions_host.call("DELETE", "/healthz")  # a known path with another method
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_a_placeholder_worker_specialised_by_environment_reload_serves_the_app(
        specialised_host: FunctionsHost, functions_host: FunctionsHost) -> None:
    reload = specialised_host.init_response
    assert _status_ok(specialised_host, reload.result), reload.result.exception.message
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", reload.capabilities["HttpUri"])
    assert {f.name for f in specialised_host.functions} == {f.name for f in functions_host.functions}
    assert all(_status_ok(specialised_host, r.result) for r in specialised_host.load_responses.values())
    assert specialised_host.call("GET", "/healthz").json() == {"status": "ok"}
    # The settings arrived with the reload, not at process start: the admin key from them is in force.
    assert specialised_host.call("GET", "/manage/projects").json()["error"]["code"] == "missing_credentials"
    r = specialised_host.call("GET", "/manage/projects", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def upstream() -> Any:
    with FakeOpenAI("conformance") as fake:
        yield fake


def _chat_model(host: FunctionsHost, upstream: FakeOpenAI, pid: str, capabilities: list[str]) -> str:
    """A project with one `chat` model on the fake upstream, through the real worker; → a virtual key's secret."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = host.call("POST", "/manage/projects", headers=admin,
                  json_body={"id": pid, "name": pid, "pillars": {"models": {"enabled": True}}})
    assert r.status_code == 201, r.text
    r = host.call("POST", f"/manage/projects/{pid}/models", headers=admin, json_body={
        "name": "chat", "backends": [backend(upstream, "b1")], "capabilities": capabilities})
    assert r.status_code == 201, r.text
    r = host.call("POST", f"/manage/projects/{pid}/keys", headers=admin, json_body={"name": "k"})
    assert r.status_code == 201, r.text
    return r.json()["secret"]


def test_streamed_chat_arrives_chunk_by_chunk(functions_host: FunctionsHost, upstream: FakeOpenAI) -> None:
    key = _chat_model(functions_host, upstream, "p-conformance", ["chat", "streaming"])

    delay = 0.25
    words = "one two three four five six"
    upstream.set_default(fake_openai.stream(words, chunk_delay=delay))
    arrivals: list[tuple[float, bytes]] = []
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with functions_host.http("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json_body=body, timeout=15, stream=True) as (resp, done):
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for raw in resp.iter_raw():
            arrivals.append((time.monotonic(), raw))
        assert _status_ok(functions_host, done.result(5).result)
    data_reads = [t for t, raw in arrivals if b"data:" in raw]
    joined = b"".join(raw for _, raw in arrivals).decode()
    content = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                      for line in joined.splitlines()
                      if line.startswith("data: {") and json.loads(line[6:]).get("choices"))
    assert content == words
    assert joined.rstrip().endswith("data: [DONE]")
    # Delivered as produced, not buffered: many separate reads, spread over the upstream's own pacing.
    assert len(data_reads) >= 4, len(data_reads)
    assert data_reads[-1] - data_reads[0] >= delay * 3, [round(t - data_reads[0], 3) for t in data_reads]


def test_a_whole_answer_is_logged_after_it_is_sent_through_the_real_worker(functions_host: FunctionsHost,
                                                                         upstream: FakeOpenAI) -> None:
    """The pipeline's release-and-log runs after the answer is written (shared/web/after_send.py): the response the
    function returns travels through the worker's FastAPI app as a `SendThenRun`, and its deferred work runs
    there — the request-log row of this call is written."""
    from azure.core.exceptions import ResourceNotFoundError

    from tests.integration.test_usage_log import _rows

    pid = "p-conformance-log"
    key = _chat_model(functions_host, upstream, pid, ["chat"])
    upstream.set_default(fake_openai.ok("logged after the send"))
    rid = "after-send-" + str(int(time.time() * 1000))
    r = functions_host.call("POST", "/v1/chat/completions", json_body={
        "model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}", "x-request-id": rid})
    assert r.status_code == 200 and "logged after the send" in r.text, r.text
    deadline = time.monotonic() + 15
    rows: list[dict] = []
    while time.monotonic() < deadline and not rows:
        try:
            rows = _rows(functions_host.env["AzureWebJobsStorage"], rid)
        except ResourceNotFoundError:  # the table is created with the first batch
            pass
        time.sleep(0.2)
    assert len(rows) == 1 and rows[0]["status"] == 200 and rows[0]["project_id"] == pid, rows
