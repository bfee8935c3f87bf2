"""The agents control plane over real HTTP (local host → Cosmos server): registration by card URL and by hand,
lifecycle transitions and their audit trail, the developer catalog, the agents policy, and the Vertex sync run by
its timer function inside the host (every 2 s here) and by the manual trigger."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, new_project
from tests.integration.test_agents_clouds import PARENT, service_account, vertex_conn
from tests.support.fake_vertex import FakeVertex, engine
from tests.support.processes import wait_until

CARD = {"name": "Travel", "description": "Plans trips", "version": "2.0",
        "supportedInterfaces": [{"url": "http://127.0.0.1:9/a2a", "protocolBinding": "JSONRPC",
                                 "protocolVersion": "1.0"}],
        "skills": [{"id": "flights", "name": "Flights", "description": "Finds flights", "tags": ["travel"]}]}


@pytest.fixture(scope="module")
def card_url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            data = json.dumps(CARD if self.path.endswith("agent-card.json") else {"nope": 1}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def vertex() -> Iterator[FakeVertex]:
    fake = FakeVertex().start()
    fake.engines[PARENT] = [engine(PARENT, "301", "researcher"), engine(PARENT, "302", "writer")]
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def agents_gateway(start_gateway, vertex: FakeVertex) -> Iterator[httpx.Client]:
    conn = vertex_conn(vertex.url, project="agents-sync")
    host = start_gateway(AGENTS_SYNC_CONNECTIONS=json.dumps([conn]), AGENTS_SYNC_VERTEX_SCHEDULE="*/2 * * * * *",
                         UPSTREAM_SECRET_GCP_SA=service_account(f"{vertex.url}/token"))
    with httpx.Client(base_url=host.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20) as c:
        yield c


def test_register_by_card_and_by_hand_then_the_lifecycle_with_its_audit_trail(agents_gateway, card_url):
    admin = agents_gateway
    pid = new_project(admin)
    base = f"/manage/projects/{pid}/agents"
    r = admin.post(base, json={"id": "travel", "card_url": f"{card_url}/.well-known/agent-card.json",
                               "owner": "team-travel", "limits": {"requests_per_minute": 60}})
    assert r.status_code == 201, r.text
    travel = r.json()
    assert travel["lifecycle"] == "draft" and travel["skills"][0]["id"] == "flights"
    assert travel["interfaces"][0]["protocol_version"] == "1.0" and travel["owner"] == "team-travel"
    bad = admin.post(base, json={"id": "broken", "card_url": f"{card_url}/not-a-card"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_agent_card"
    both = admin.post(base, json={"id": "x", "card_url": f"{card_url}/a", "spec": {"name": "x"}})
    assert both.status_code == 422

    manual = {"name": "Helper", "interfaces": [{"url": "http://127.0.0.1:9/a2a", "protocol_version": "0.3"}]}
    assert admin.post(base, json={"id": "helper", "spec": manual}).status_code == 201
    assert admin.post(base, json={"id": "helper", "spec": manual}).json()["error"]["code"] == "already_exists"

    def move(agent: str, to: str, **extra):
        return admin.post(f"{base}/{agent}/transitions", json={"to": to, **extra})

    assert move("travel", "deprecated").json()["error"]["code"] == "invalid_transition"
    assert move("travel", "published").status_code == 200
    assert move("helper", "published").status_code == 200
    r = move("helper", "deprecated", reason="use travel", replacement="travel")
    assert r.status_code == 200 and r.json()["agent"]["replacement"] == "travel"
    assert move("travel", "suspended", reason="incident").json()["agent"]["lifecycle"] == "suspended"

    trail = admin.get(f"{base}/travel/transitions").json()["items"]
    assert [(e["action"], e["from_state"], e["to_state"]) for e in trail] == [
        ("registered", None, "draft"), ("transition", "draft", "published"),
        ("transition", "published", "suspended")]
    assert trail[-1]["actor"].startswith("admin_key") and trail[-1]["reason"] == "incident"

    listed = admin.get(base, params={"lifecycle": "deprecated"}).json()["items"]
    assert [a["id"] for a in listed] == ["helper"]
    # the developer catalog lists what can be called: the deprecated helper, not the suspended travel agent
    catalog = admin.get(f"/portal/projects/{pid}/agents").json()["items"]
    assert [(a["id"], a["lifecycle"], a["replacement"], a["source"]) for a in catalog] == [
        ("helper", "deprecated", "travel", "manual")]

    r = admin.get(f"{base}/helper")
    stale = admin.put(f"{base}/helper", json={**manual, "description": "v2"}, headers={"If-Match": '"stale"'})
    assert stale.status_code == 412
    ok = admin.put(f"{base}/helper", json={**manual, "description": "v2"}, headers={"If-Match": r.headers["etag"]})
    assert ok.status_code == 200 and ok.json()["lifecycle"] == "deprecated"  # a PUT never moves the lifecycle


def test_vertex_sync_by_timer_inside_the_host_and_by_the_manual_trigger(agents_gateway, vertex):
    admin = agents_gateway
    r = admin.post("/manage/projects", json={"id": "agents-sync", "name": "sync"})
    assert r.status_code in (201, 409), r.text
    assert admin.put("/manage/projects/agents-sync/agent-policy", json={"publish_synced": True}).status_code == 200

    def timer_runs() -> list[dict]:
        items = admin.get("/manage/projects/agents-sync/agent-sync/runs").json()["items"]
        return [i for i in items if i["trigger"] == "timer" and i["status"] == "succeeded"]

    wait_until(lambda: timer_runs(), timeout=30, message="a timer-driven sync run")
    runs = admin.get("/manage/projects/agents-sync/agent-sync/runs").json()
    assert runs["connections"] == [{"name": "gcp", "cloud": "vertex", "enabled": True, "gcp_project": "acme-prod",
                                    "location": "us-central1"}]
    agents = admin.get("/manage/projects/agents-sync/agents").json()["items"]
    assert {a["id"]: a["lifecycle"] for a in agents} == {"gcp-301": "published", "gcp-302": "published"}
    assert agents[0]["origin"]["cloud"] == "vertex"

    r = admin.post("/manage/projects/agents-sync/agent-sync", json={"cloud": "vertex"})
    assert r.status_code == 200 and r.json()["runs"][0]["trigger"] == "manual"
    assert r.json()["runs"][0]["counts"]["unchanged"] == 2
