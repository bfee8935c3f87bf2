"""Release-and-log after the response is written (shared/web/after_send.py): the pipeline's `_finish` runs once,
after the body went out, on success and on refusal; on a failed send, a cancelled handler or a response the host
dropped unsent it still runs, exactly once; streams and calls outside a request keep finishing at once."""
from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from starlette.responses import Response, StreamingResponse

from shared.web import after_send
from shared.web.after_send import AfterSend, SendThenRun, defer
from shared.web.api import ApiBlueprint, Call
from tests.unit.test_admission import _functions, _request
from tests.unit.test_pipeline import exchange, principal, world  # noqa: F401 - the pipeline fixture


async def _send_into(response: Any, events: list[str], fail: bool = False) -> None:
    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])
        if fail:
            raise OSError("client went away")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await response({"type": "http"}, receive, send)


def test_outside_a_request_defer_declines():
    assert defer(lambda: None) is False


async def test_deferred_work_runs_once_after_the_body_in_order():
    events: list[str] = []
    scope = AfterSend()
    scope.open()
    assert defer(lambda: events.append("first")) and defer(lambda: events.append("second"))
    original = Response(b'{"ok":true}', status_code=201, headers={"x-a": "1"}, media_type="application/json")
    out = scope.close(original)
    assert defer(lambda: None) is False  # the scope ended with close
    assert isinstance(out, SendThenRun) and out.status_code == 201 and out.body == original.body
    assert out.raw_headers == original.raw_headers
    assert events == []  # nothing before the send
    await _send_into(out, events)
    assert events == ["http.response.start", "http.response.body", "first", "second"]
    await _send_into(out, events)  # a second send (never done by a host) does not run the work again
    assert events.count("first") == 1


async def test_a_failed_send_still_runs_the_work_and_one_failing_callback_does_not_stop_the_next(caplog):
    events: list[str] = []
    scope = AfterSend()
    scope.open()
    defer(lambda: 1 / 0)
    defer(lambda: events.append("released"))
    out = scope.close(Response(b"x"))
    with pytest.raises(OSError):
        await _send_into(out, events, fail=True)
    assert events == ["http.response.start", "released"]
    assert "deferred after-send work failed" in caplog.text


def test_a_response_dropped_unsent_runs_the_work_when_collected():
    events: list[str] = []
    scope = AfterSend()
    scope.open()
    defer(lambda: events.append("released"))
    out = scope.close(Response(b"x"))
    assert events == []
    del out
    gc.collect()
    assert events == ["released"]


def test_nothing_deferred_or_a_stream_is_returned_as_is_and_a_stream_runs_its_work_now():
    scope = AfterSend()
    scope.open()
    plain = Response(b"x")
    assert scope.close(plain) is plain
    events: list[str] = []
    scope = AfterSend()
    scope.open()
    defer(lambda: events.append("now"))

    async def body():
        yield b"x"

    stream = StreamingResponse(body())
    assert scope.close(stream) is stream and events == ["now"]


async def test_a_cancelled_scope_runs_its_work_at_once():
    events: list[str] = []
    scope = AfterSend()
    scope.open()
    defer(lambda: events.append("released"))
    scope.abandon()
    assert events == ["released"] and defer(lambda: None) is False


def _surface(handler) -> Any:
    api = ApiBlueprint("tools", max_body_bytes=1024)
    api.route("work", "POST", name="work", summary="s", guard=None)(handler)
    return _functions(api)["work"]


async def test_the_pipeline_logs_and_settles_after_the_answer_is_sent_through_a_blueprint(world):  # noqa: F811
    w = world
    logged: list[str] = []
    record = w.usage.record
    w.usage.record = lambda rec: (logged.append(rec.request_id), record(rec))

    async def handler(call: Call):
        return await w.pipeline.run(exchange())

    fn = _surface(handler)
    response = await fn(_request("/work"))
    assert response.status_code == 200 and logged == []  # answered, not yet logged
    events: list[str] = []
    await _send_into(response, events)
    assert events == ["http.response.start", "http.response.body"] and len(logged) == 1
    assert w.telemetry.events[-1][0] == "end"  # the call's span and metrics end with the log row


async def test_a_refused_call_is_logged_after_its_error_answer(world):  # noqa: F811
    w = world
    logged: list[int] = []
    record = w.usage.record
    w.usage.record = lambda rec: (logged.append(rec.status), record(rec))
    w.upstreams.mode.update(a="down", b="down")

    async def refused(call: Call):
        return await w.pipeline.run(exchange())

    response = await _surface(refused)(_request("/work"))
    assert response.status_code == 502 and logged == []
    await _send_into(response, [])
    assert logged == [502]


async def test_a_cancelled_call_is_released_and_logged_at_once(world):  # noqa: F811
    w = world
    logged: list[int] = []
    record = w.usage.record
    w.usage.record = lambda rec: (logged.append(rec.status), record(rec))
    started = asyncio.Event()

    async def slow(call: Call):
        x = exchange()
        w.pipeline.spec.send = _hang(started)
        return await w.pipeline.run(x)

    task = asyncio.create_task(_surface(slow)(_request("/work")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert logged == [499]  # released and logged when cancelled, with no response to wait for
    assert after_send._SCOPE.get() is None


def _hang(started: asyncio.Event):
    async def send(x: Any, target: Any) -> Any:
        started.set()
        await asyncio.sleep(60)

    return send


async def test_a_direct_pipeline_run_outside_a_request_still_logs_before_it_returns(world):  # noqa: F811
    w = world
    await w.pipeline.run(exchange())
    assert len(await _rows(w)) == 1


async def _rows(w) -> list:
    await w.usage.flush()
    return w.sink.records


async def test_a_json_response_keeps_its_rendered_body_and_headers_when_its_work_waits():
    from starlette.responses import JSONResponse

    events: list[str] = []
    scope = AfterSend()
    scope.open()
    defer(lambda: events.append("after"))
    original = JSONResponse({"a": 1}, status_code=202, headers={"x-b": "2"})
    out = scope.close(original)
    assert isinstance(out, SendThenRun) and out.body == original.body and out.raw_headers == original.raw_headers
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await out({"type": "http"}, receive, send)
    assert sent[0]["status"] == 202 and sent[1]["body"] == b'{"a":1}' and events == ["after"]
