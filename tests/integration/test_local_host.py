"""The local host runs the very same function definitions as Azure: HTTP (routes, methods, streaming), timers
(NCRONTAB, %SETTING% expansion, run_on_startup, past due) and queues (encoding, retries, poison, crash)."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from dev.emulators import Emulators
from tests.support.processes import REPO, HostProcess, start_host, wait_until

SAMPLE = REPO / "tests" / "fixtures" / "sample_root"


def events(path: Path, fn: str | None = None) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if fn is None or r["fn"] == fn]


@pytest.fixture
def sample(emulators: Emulators, tmp_path: Path):
    hosts: list[HostProcess] = []

    def start(**env: str) -> tuple[HostProcess, Path, str]:
        queue = "work-" + uuid.uuid4().hex[:8]
        events_file = tmp_path / f"events-{len(hosts)}.jsonl"
        base = {"AzureWebJobsStorage": emulators.storage_connection_string, "EVENTS_FILE": str(events_file),
                "GATE_FILE": str(tmp_path / "gate"), "TICK_SCHEDULE": "0 0 0 1 1 *", "WORK_QUEUE": queue}
        host = start_host(root=SAMPLE, app="function_app:app", env={**base, **env}, log_dir=tmp_path,
                          name="sample", health_path="/api/items/health", extra_args=("--queue-lease-seconds", "4"))
        hosts.append(host)
        return host, events_file, env.get("WORK_QUEUE", queue)

    yield start
    for h in hosts:
        h.stop()


def send(emulators: Emulators, queue: str, text: str) -> None:
    client = QueueClient.from_connection_string(emulators.storage_connection_string, queue)
    try:
        client.create_queue()
    except Exception:
        pass
    client.send_message(base64.b64encode(text.encode()).decode())  # host.json: messageEncoding base64


def test_http_routes_methods_and_errors(sample):
    host, _, _ = sample()
    r = httpx.post(f"{host.url}/api/items/42?q=x", content=b"hello")
    assert r.status_code == 200 and r.headers["x-sample"] == "1"
    assert r.json() == {"id": "42", "method": "POST", "q": "x", "body": "hello"}
    assert httpx.get(f"{host.url}/api/items/special").json() == {"special": True}  # literal beats {id}
    assert httpx.delete(f"{host.url}/api/items/42").status_code == 404  # method not declared
    assert httpx.get(f"{host.url}/items/42").status_code == 404  # routePrefix from host.json is "api"
    assert httpx.get(f"{host.url}/api/boom").status_code == 500


def test_streaming_is_not_buffered(sample, tmp_path: Path):
    host, _, _ = sample()
    with httpx.stream("GET", f"{host.url}/api/stream", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        # The function holds the second chunk until the gate opens; we can read the first only if it was flushed.
        assert next(lines) == "data: first"
        (tmp_path / "gate").touch()
        rest = [line for line in lines if line]
    assert rest == ["data: second"]


def test_timer_schedule_from_setting_and_run_on_startup(sample):
    host, ev, _ = sample(TICK_SCHEDULE="*/1 * * * * *")
    wait_until(lambda: len(events(ev, "tick")) >= 3, timeout=8, message="three ticks")
    ticks = events(ev, "tick")
    assert all(t["past_due"] is False for t in ticks)
    assert 0.5 < ticks[2]["t"] - ticks[1]["t"] < 1.8  # one per second
    assert [e["past_due"] for e in events(ev, "on_startup")] == [False]


def test_timer_missed_occurrence_runs_past_due(sample, emulators: Emulators):
    # The schedule status says the next run was due an hour ago (the host was down): it runs once, past due.
    blobs = BlobServiceClient.from_connection_string(emulators.storage_connection_string)
    try:
        blobs.create_container("azure-webjobs-hosts")
    except Exception:
        pass
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    status = {"Last": (hour_ago - timedelta(days=365)).isoformat(), "Next": hour_ago.isoformat(),
              "LastUpdated": hour_ago.isoformat()}
    blobs.get_blob_client("azure-webjobs-hosts", "timers/localhost/tick/status").upload_blob(
        json.dumps(status), overwrite=True)
    host, ev, _ = sample()
    wait_until(lambda: events(ev, "tick"), timeout=8, message="past-due tick")
    assert events(ev, "tick")[0]["past_due"] is True
    # and the status then points at the next real occurrence (1 January)
    def next_occurrence():
        saved = json.loads(blobs.get_blob_client("azure-webjobs-hosts", "timers/localhost/tick/status")
                           .download_blob().readall())
        nxt = datetime.fromisoformat(saved["Next"])
        return nxt if nxt > datetime.now(timezone.utc) else None

    nxt = wait_until(next_occurrence, timeout=5, message="schedule status updated")
    assert (nxt.month, nxt.day, nxt.hour) == (1, 1, 0)


def test_queue_happy_path(sample, emulators: Emulators):
    host, ev, queue = sample()
    send(emulators, queue, "hello")
    wait_until(lambda: events(ev, "work"), message="queue message processed")
    [e] = events(ev, "work")
    assert e["body"] == "hello" and e["dequeue_count"] == 1
    client = QueueClient.from_connection_string(emulators.storage_connection_string, queue)
    wait_until(lambda: client.get_queue_properties().approximate_message_count == 0, message="message deleted")


def test_queue_retries_then_poison(sample, emulators: Emulators):
    host, ev, queue = sample()
    send(emulators, queue, "fail please")
    poison = QueueClient.from_connection_string(emulators.storage_connection_string, f"{queue}-poison")

    def poisoned():
        try:
            return list(poison.peek_messages(max_messages=5))
        except Exception:
            return []

    [msg] = wait_until(poisoned, timeout=20, message="poison message")
    assert base64.b64decode(msg.content).decode() == "fail please"  # same content, same encoding
    assert [e["dequeue_count"] for e in events(ev, "work")] == [1, 2, 3]  # host.json maxDequeueCount: 3
    main = QueueClient.from_connection_string(emulators.storage_connection_string, queue)
    assert main.get_queue_properties().approximate_message_count == 0


def test_queue_message_redelivered_after_crash(sample, emulators: Emulators):
    host, ev, queue = sample()
    send(emulators, queue, "crash-once")
    wait_until(lambda: events(ev, "work"), message="first delivery")
    host.kill()  # crash mid-message: no delete, no retry bookkeeping
    second, ev2, _ = sample(WORK_QUEUE=queue, EVENTS_FILE=str(ev))
    wait_until(lambda: len(events(ev, "work")) >= 2, timeout=20, message="re-delivery after the lease expired")
    assert [e["dequeue_count"] for e in events(ev, "work")] == [1, 2]


def test_not_a_base64_message_is_retried_then_poisoned(sample, emulators: Emulators):
    host, ev, queue = sample()
    client = QueueClient.from_connection_string(emulators.storage_connection_string, queue)
    try:
        client.create_queue()
    except Exception:
        pass
    client.send_message("not base64 !!!")
    poison = QueueClient.from_connection_string(emulators.storage_connection_string, f"{queue}-poison")

    def poisoned():
        try:
            return list(poison.peek_messages())
        except Exception:
            return []

    wait_until(poisoned, timeout=20, message="undecodable message poisoned")
    assert events(ev, "work") == []  # the function never saw it


# ---- the local host refuses every definition the Functions host refuses, with the host's own words

REFUSED = REPO / "tests" / "fixtures" / "refused_root"
BUILT_IN = "The specified route conflicts with one or more built in routes."


REFUSALS = {
    "admin_prefix": f"report: {BUILT_IN}",
    "runtime_prefix": f"status: {BUILT_IN}",
    "admin_by_name": f"adminstats: {BUILT_IN}",
    "binding_name": "things: The binding name http_req is invalid. Please assign a valid name to the binding.",
    "route_conflict": "items_again: The route specified conflicts with the route defined by function 'items'.",
    "dow7": "sundays: The schedule expression '0 0 0 * * 7' was not recognized as a valid cron expression or "
            "timespan string.",
    "timespan": "every: The schedule expression '00:05:00' is a TimeSpan, which Azure Functions supports only on "
                "App Service plans, not on WEBSITE_SKU 'FlexConsumption'",
}


def test_refuses_what_the_functions_host_refuses(tmp_path: Path):
    # One process for all cases (each is also unit-tested alone in tests/unit/test_ncrontab_and_config.py).
    with pytest.raises(RuntimeError) as refused:
        start_host(root=REFUSED, app="function_app:app", env={"REFUSE": ",".join(REFUSALS), "EVERY": "00:05:00"},
                   log_dir=tmp_path, name="refused", health_path="/api/items")
    output = str(refused.value)
    assert "host exited with 1" in output
    assert f"The following {len(REFUSALS)} functions are in error:" in output
    for case, expected in REFUSALS.items():
        assert f"  {expected}" in output, case


def test_a_timespan_schedule_runs_when_the_plan_is_an_app_service_plan(tmp_path: Path):
    host = start_host(root=REFUSED, app="function_app:app", env={"REFUSE": "timespan", "EVERY": "00:05:00",
                                                                 "WEBSITE_SKU": "Dedicated"},
                      log_dir=tmp_path, name="dedicated", health_path="/api/items")
    try:
        assert httpx.get(f"{host.url}/api/items").json() == {"ok": True}
    finally:
        host.stop()
    assert "does not support it" in host.output()  # warned: this app deploys to Flex Consumption


def test_serves_on_the_asyncio_loop_like_azure_unless_uvloop_is_asked_for(sample):
    host, _, _ = sample()
    assert httpx.get(f"{host.url}/api/loop").json() == {"loop": "asyncio.unix_events"}
    pytest.importorskip("uvloop")
    fast, _, _ = sample(LOCAL_HOST_LOOP="uvloop")
    assert httpx.get(f"{fast.url}/api/loop").json()["loop"].startswith("uvloop")


# ---- a malformed app setting: every function still indexed, each answering 503 configuration_error

def test_a_malformed_setting_leaves_the_gateway_indexed_and_answering_configuration_error(start_gateway):
    host = start_gateway(FLAG_CACHE_TTL_SECONDS="5s")  # started: /healthz answers 200
    for line in ("healthz", "v1_chat_completions", "manage_list_projects", "openapi", "openapi_root"):
        assert f"  {line}: " in host.output()  # indexed and served
    spec = httpx.get(f"{host.url}/spec/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"] and "/manage/projects" in spec["paths"]
    assert httpx.get(f"{host.url}/openapi.json").json() == spec
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/manage/projects"), ("GET", "/v1/models")):
        r = httpx.request(method, f"{host.url}{path}", headers={"Authorization": "Bearer sk-gw-anything"},
                          json={"model": "m", "messages": []})
        assert r.status_code == 503, (path, r.text)
        error = r.json()["error"]
        assert error["code"] == "configuration_error" and "FLAG_CACHE_TTL_SECONDS" in error["message"]
        assert error["details"]["settings"] == [{"setting": "FLAG_CACHE_TTL_SECONDS", "reason":
                                                 "Input should be a valid number, unable to parse string as a number"}]
        assert "5s" not in r.text
    ready = httpx.get(f"{host.url}/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "misconfigured"
    assert ready.json()["checks"]["configuration"]["settings"][0]["setting"] == "FLAG_CACHE_TTL_SECONDS"
    assert "FLAG_CACHE_TTL_SECONDS" in host.output()  # and the operator's log says so at start
