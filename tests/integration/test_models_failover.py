"""Failover rules, Retry-After, circuit breaker and streams that break, against real fake upstreams."""
from __future__ import annotations

import time

import httpx
import pytest

from dev.emulators import free_port
from tests.integration.models_support import backend, chat, log_row, setup_model
from tests.support.fake_openai import FakeOpenAI, close_connection, cut_stream, error, hang, ok

FAST_BREAKER = {"breaker": {"failure_count": 2, "window_seconds": 30, "trip_seconds": 1.5, "min_calls": 100}}


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI("a") as a, FakeOpenAI("b") as b:
        yield a, b


@pytest.fixture
def ab(fakes):
    a, b = fakes
    a.reset()
    b.reset()
    return a, b


def pair(admin, a, b, **kw):
    return setup_model(admin, [backend(a, "a", priority=0), backend(b, "b", priority=1)], **kw)


@pytest.mark.parametrize("failure", [error(500), error(503), error(502), error(408)])
def test_retryable_status_fails_over(gateway, admin, ab, failure):
    a, b = ab
    _, name, secret = pair(admin, a, b)
    a.script(failure)
    r = chat(gateway.url, secret, name)
    assert r.status_code == 200 and r.headers["x-gateway-backend"] == "b" and r.headers["x-gateway-retries"] == "1"
    assert len(a.requests) == 1 and len(b.requests) == 1


def test_client_errors_are_not_retried(gateway, admin, ab):
    a, b = ab
    _, name, secret = pair(admin, a, b)
    a.script(error(400, {"error": {"message": "bad param", "type": "invalid_request_error", "code": "bad"}}))
    r = chat(gateway.url, secret, name)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad"  # the upstream's answer, untouched
    assert len(b.requests) == 0


def test_connect_error_fails_over(gateway, admin, ab):
    a, b = ab
    dead = FakeOpenAI("dead")  # never started: its port refuses connections
    dead.url = f"http://127.0.0.1:{free_port()}"
    _, name, secret = setup_model(admin, [backend(dead, "dead", priority=0), backend(b, "b", priority=1)])
    r = chat(gateway.url, secret, name)
    assert r.status_code == 200 and r.headers["x-gateway-backend"] == "b"
    a.script(close_connection())  # a connection dropped before any answer counts the same
    _, name2, secret2 = pair(admin, a, b)
    assert chat(gateway.url, secret2, name2).headers["x-gateway-backend"] == "b"


def test_timeout_fails_over(gateway, admin, ab):
    a, b = ab
    _, name, secret = setup_model(admin, [backend(a, "a", priority=0, timeout=0.5), backend(b, "b", priority=1)])
    a.script(hang(5))
    started = time.monotonic()
    r = chat(gateway.url, secret, name)
    assert r.status_code == 200 and r.headers["x-gateway-backend"] == "b"
    assert time.monotonic() - started < 4


def test_retry_after_is_honoured(gateway, admin, ab):
    a, b = ab
    _, name, secret = pair(admin, a, b)
    a.script(error(429, retry_after=2))
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "b"
    # during the cool-down the first backend is skipped, not tried
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "b"
    assert len(a.requests) == 1
    time.sleep(2.1)
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "a"


def test_all_backends_fail_returns_last_upstream_answer(gateway, admin, ab):
    a, b = ab
    _, name, secret = pair(admin, a, b, routing={"retry": {"max_attempts": 2}})
    a.script(error(500))
    b.script(error(429, retry_after=7))
    r = chat(gateway.url, secret, name)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"


def test_retry_budget_limits_attempts(gateway, admin, ab):
    a, b = ab
    c = FakeOpenAI("c").start()
    try:
        _, name, secret = setup_model(admin, [backend(a, "a", priority=0), backend(b, "b", priority=1),
                                              backend(c, "c", priority=2)], routing={"retry": {"max_attempts": 2}})
        a.script(error(500))
        b.script(error(500))
        r = chat(gateway.url, secret, name)
        assert r.status_code == 500 and len(c.requests) == 0
    finally:
        c.stop()


def test_priority_and_weights(gateway, admin, ab):
    a, b = ab
    c = FakeOpenAI("c").start()
    try:
        _, name, secret = setup_model(admin, [backend(a, "a", priority=0, weight=3), backend(b, "b", priority=0,
                                                                                           weight=1),
                                              backend(c, "c", priority=1)])
        counts = {"a": 0, "b": 0, "c": 0}
        for _ in range(120):
            counts[chat(gateway.url, secret, name).headers["x-gateway-backend"]] += 1
        assert counts["c"] == 0  # a lower priority group is only for failover
        assert 0.6 < counts["a"] / 120 < 0.9, counts  # 3:1 spread (expected 0.75)
    finally:
        c.stop()


def test_circuit_breaker_opens_half_opens_and_closes(gateway, admin, ab):
    a, b = ab
    _, name, secret = pair(admin, a, b, routing=FAST_BREAKER)
    a.set_default(error(500))
    for _ in range(2):
        assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "b"
    tried = len(a.requests)
    for _ in range(3):  # open: a is not even tried
        assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "b"
    assert len(a.requests) == tried
    time.sleep(1.6)  # trip time over: half-open lets one probe through, it fails → open again
    chat(gateway.url, secret, name)
    assert len(a.requests) == tried + 1
    chat(gateway.url, secret, name)
    assert len(a.requests) == tried + 1
    a.set_default(ok())
    time.sleep(1.6)
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "a"  # probe succeeded: closed
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "a"


def test_broken_stream_ends_with_an_error_event_and_no_retry(gateway, admin, ab):
    a, b = ab
    _, name, secret = pair(admin, a, b)
    a.script(cut_stream(after_chunks=2, content="one two three four five"))
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=20,
                      headers={"Authorization": f"Bearer {secret}"},
                      json={"model": name, "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert '"error"' in events[-1] and "upstream_stream" in events[-1]
    assert "[DONE]" not in "".join(events)
    assert len(b.requests) == 0  # once bytes reached the client, no failover


def test_stream_failover_before_first_byte(gateway, admin, ab):
    a, b = ab
    _, name, secret = pair(admin, a, b)
    a.script(error(503))
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=20,
                      headers={"Authorization": f"Bearer {secret}"},
                      json={"model": name, "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
        assert r.headers["x-gateway-backend"] == "b"
        body = "".join(r.iter_text())
    assert body.rstrip().endswith("data: [DONE]")


def test_failover_is_recorded_in_the_request_log(gateway, admin, ab, emulators):
    a, b = ab
    pid, name, secret = pair(admin, a, b)
    a.script(error(500))
    row = log_row(emulators.storage_connection_string, chat(gateway.url, secret, name).headers["x-request-id"])
    assert row["target"] == "b" and row["retries"] == 1 and row["failovers"] == 1 and row["status"] == 200
    assert '"a"' in row["attempts"] and row["project_id"] == pid and row["total_tokens"] > 0


def test_backend_tpm_capacity_spills_over_then_429(gateway, admin, ab):
    a, b = ab
    spec_a = {**backend(a, "a", priority=0), "tpm_capacity": 50}
    spec_b = {**backend(b, "b", priority=1), "tpm_capacity": 50}
    _, name, secret = setup_model(admin, [spec_a, spec_b])
    a.set_default(ok("x", completion_tokens=60))  # one call uses up a's minute
    b.set_default(ok("x", completion_tokens=60))
    if time.gmtime().tm_sec > 50:
        time.sleep(61 - time.gmtime().tm_sec)
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "a"
    time.sleep(0.3)  # the excess over the estimate is charged in the background
    assert chat(gateway.url, secret, name).headers["x-gateway-backend"] == "b"  # a is full: spill, no attempt
    assert len(a.requests) == 1
    time.sleep(0.3)
    r = chat(gateway.url, secret, name)
    assert r.status_code == 429 and r.json()["error"]["code"] == "backend_capacity_exhausted"
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_no_backend_available_reports_the_real_wait(gateway, admin, ab):
    a, _ = ab
    _, name, secret = setup_model(admin, [backend(a, "a")])
    a.script(error(429, retry_after=30))  # the upstream parks its only backend for 30 s
    first = chat(gateway.url, secret, name)
    assert first.status_code == 429 and first.headers["retry-after"] == "30"  # the upstream's own answer
    r = chat(gateway.url, secret, name)
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_backend_available"
    assert 27 <= int(r.headers["retry-after"]) <= 30  # the real wait, not "1"
    assert len(a.requests) == 1  # the parked backend was not tried


def test_a_retry_on_the_same_backend_reuses_its_capacity_hold(gateway, admin, ab):
    a, _ = ab
    _, name, secret = setup_model(admin, [{**backend(a, "a"), "tpm_capacity": 300}])
    a.script(error(500))  # first attempt fails, the retry goes to the same (only) backend
    a.set_default(ok("x", completion_tokens=5))
    if time.gmtime().tm_sec > 50:
        time.sleep(61 - time.gmtime().tm_sec)
    r = chat(gateway.url, secret, name, max_tokens=250)  # needs ~260 of the backend's 300 tokens per minute
    # a second hold for the retry would not fit (and the first would never be given back)
    assert r.status_code == 200 and r.headers["x-gateway-retries"] == "1", r.text
