"""Admission control on the data plane (shared/web/admission.py): the in-flight limit, the bounded FIFO queue, fast
503s with Retry-After and a stable code, counters, and a shed call taking nothing (no auth, body, quota, breaker)."""
from __future__ import annotations

import asyncio
from typing import Any

import azure.functions as func
import orjson
from starlette.requests import Request

from function_app import DATA_PLANE_TAGS, build_app
from functions import models_api
from shared.config import Settings
from shared.services import Services
from shared.web.admission import AdmissionGate
from shared.web.api import ApiBlueprint, Call


def _gate(**kw: Any) -> AdmissionGate:
    return AdmissionGate(**{"max_in_flight": 2, "max_queue": 2, "queue_timeout": 5.0, "retry_after": 3, **kw})


def _request(path: str = "/v1/chat/completions", body: bytes = b"{}", headers: dict[str, str] | None = None
             ) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": path, "headers": raw, "query_string": b"",
                    "path_params": {}}, receive)


def _functions(api: ApiBlueprint) -> dict[str, Any]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(api.blueprint)
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


class Blocking:
    """Fake work: each call waits until released, so the test decides what is in flight."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()

    async def __call__(self, call: Call):
        from shared.web.responses import json_response
        self.started += 1
        await self.release.wait()
        return json_response({"ok": True})


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _surface(gate: AdmissionGate, work: Blocking, guard: Any = None) -> Any:
    api = ApiBlueprint("models", max_body_bytes=1024).admit_through(gate)
    api.route("work", "POST", name="work", summary="s", guard=guard)(work)
    return _functions(api)["work"]


async def test_the_limit_holds_the_queue_is_bounded_and_the_rest_is_shed_at_once():
    gate, work = _gate(), Blocking()
    fn = _surface(gate, work)
    calls = [asyncio.create_task(fn(_request())) for _ in range(4)]
    await _settle()
    assert work.started == 2 and gate.in_flight == 2 and gate.queued == 2  # two run, two wait
    shed = await asyncio.wait_for(fn(_request(headers={"x-request-id": "r-5"})), 1)  # no slot, queue full
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3" and shed.headers["x-request-id"] == "r-5"
    assert orjson.loads(shed.body)["error"]["code"] == "gateway_overloaded"
    assert orjson.loads(shed.body)["error"]["details"]["reason"] == "queue_full"
    work.release.set()
    done = await asyncio.gather(*calls)
    assert [r.status_code for r in done] == [200] * 4 and work.started == 4
    assert gate.stats() | {} == {"in_flight": 0, "queued": 0, "max_in_flight": 2, "max_queue": 2,
                                 "peak_in_flight": 2, "admitted": 4, "waited": 2, "shed": 1,
                                 "shed_queue_full": 1, "shed_queue_timeout": 0}


async def test_a_call_waiting_longer_than_the_queue_timeout_is_shed_and_leaves_the_queue():
    gate, work = _gate(max_in_flight=1, max_queue=4, queue_timeout=0.01), Blocking()
    fn = _surface(gate, work)
    first = asyncio.create_task(fn(_request()))
    await _settle()
    shed = await fn(_request())
    assert shed.status_code == 503 and orjson.loads(shed.body)["error"]["details"]["reason"] == "queue_timeout"
    assert gate.queued == 0 and gate.shed_queue_timeout == 1 and gate.in_flight == 1
    work.release.set()
    assert (await first).status_code == 200 and gate.in_flight == 0


async def test_a_waiter_cancelled_by_its_client_frees_its_place_and_slots_go_in_order():
    gate, work = _gate(max_in_flight=1, max_queue=3), Blocking()
    fn = _surface(gate, work)
    first = asyncio.create_task(fn(_request()))
    await _settle()
    gone = asyncio.create_task(fn(_request()))
    third = asyncio.create_task(fn(_request()))
    await _settle()
    gone.cancel()
    await _settle()
    assert gate.queued == 1
    work.release.set()
    assert (await first).status_code == 200 and (await third).status_code == 200
    assert gate.in_flight == 0 and gate.queued == 0 and work.started == 2


async def test_a_shed_call_takes_nothing_no_auth_no_body_no_pipeline():
    """The real models surface behind a full gate: the guard (auth, key lookup), the body read and the pipeline
    (quota admission, breakers, upstream) are never reached by a shed call."""
    touched: list[str] = []

    class Guard:
        scheme = "virtualKey"

        async def __call__(self, req: Request):
            touched.append("auth")
            raise AssertionError("auth ran for a shed call")

    def pipeline():
        touched.append("pipeline")
        raise AssertionError("the pipeline ran for a shed call")

    gate = _gate(max_in_flight=1, max_queue=0)
    api = models_api.build(pipeline, catalog=None, guard=Guard(), max_body_bytes=1024)  # type: ignore[arg-type]
    api.admit_through(gate)
    assert gate.try_enter()  # the one slot is busy
    chat = _functions(api)["v1_chat_completions"]
    consumed = False

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        consumed = True
        return {"type": "http.request", "body": b"{}", "more_body": False}

    req = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [],
                   "query_string": b"", "path_params": {}}, receive)
    response = await chat(req)
    assert response.status_code == 503 and response.headers["retry-after"] == "3"
    assert touched == [] and not consumed
    assert gate.stats()["shed"] == 1 and gate.in_flight == 1


def test_every_data_plane_surface_and_only_those_pass_the_gate_and_readiness_counts_it():
    services = Services(Settings(GATEWAY_MAX_IN_FLIGHT=7))
    app = build_app(Settings(), services)
    assert services.admission.max_in_flight == 7
    assert DATA_PLANE_TAGS == {"models", "tools", "agents"}
    gated, open_ = set(), set()
    for f in app.get_functions():
        owner = _closure(f.get_user_function()).get("self")
        if owner is not None:
            (gated if owner.admission is services.admission else open_).add(f.get_function_name())
    assert {"v1_chat_completions", "azure_chat_completions", "v1_embeddings", "mcp_post", "mcp_stream", "agent_jsonrpc"} <= gated
    assert {"readyz", "healthz", "manage_create_project"} <= open_


def _closure(fn: Any) -> dict[str, Any]:
    return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))


async def test_readiness_reports_the_gate_counters_and_stays_ready_while_shedding():
    services = Services(Settings(GATEWAY_MAX_IN_FLIGHT=1, GATEWAY_ADMISSION_QUEUE=0))

    async def ok() -> None:
        return None

    services._store = services._storage = type("Up", (), {"ping": staticmethod(ok)})()  # dependencies answer
    gate = services.admission
    assert gate.try_enter() and not gate.try_enter()
    assert await gate.wait() == "queue_full"
    checks = await services.readiness()
    assert checks["admission"] == {"status": "ok", **gate.stats()}
    assert checks["admission"]["in_flight"] == 1 and checks["admission"]["shed_queue_full"] == 1
    assert all(c["status"] == "ok" for c in checks.values())
