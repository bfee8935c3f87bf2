"""Degraded dependencies, with real emulators stopped and restarted: the data plane serves from its caches for a
bounded time (fail-static), the control plane answers 503 and writes nothing, and recovery needs no action."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from dev.emulators import Emulators, Ports
from shared.auth.key_format import KeyMac
from tests.conftest import ADMIN_KEY, gateway_env
from tests.support.processes import REPO, start_host, wait_until

pytestmark = pytest.mark.slow
FAIL_STATIC = 4.0


@pytest.fixture
def own_emulators(tmp_path):
    emu = Emulators(tmp_path / "emu", Ports.free())
    emu.start()
    yield emu
    emu.stop()


def test_outage_fail_static_then_fail_closed_then_recovery(own_emulators: Emulators, jwks, tmp_path):
    pepper = "test-pepper-" + uuid.uuid4().hex
    host = start_host(root=REPO, app="function_app:app", log_dir=tmp_path, name="degraded",
                      env=gateway_env(own_emulators, jwks, FAIL_STATIC_MAX_SECONDS=str(FAIL_STATIC),
                                      GATEWAY_KEY_HASH_SECRET=pepper))
    admin = httpx.Client(base_url=host.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    try:
        assert admin.post("/manage/projects", json={"id": "resilient", "name": "R",
                                                    "pillars": {"models": {"enabled": True}}}).status_code == 201
        secret = admin.post("/manage/projects/resilient/keys", json={"name": "k"}).json()["secret"]
        data = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(host.url + "/v1/models", headers=data).status_code == 200  # caches warm
        assert httpx.get(host.url + "/readyz").status_code == 200

        own_emulators.stop("cosmos")
        outage_started = time.monotonic()
        time.sleep(1.2)  # past the 1 s cache TTL: every data-plane read now needs Cosmos
        assert httpx.get(host.url + "/v1/models", headers=data).status_code == 200  # fail-static
        write = admin.post("/manage/projects", json={"id": "during-outage", "name": "x"})
        assert write.status_code == 503 and write.json()["error"]["code"] == "dependency_unavailable"
        assert write.headers["retry-after"]
        never_seen = KeyMac(pepper.encode()).mint()  # well-formed, carries this deployment's MAC
        unknown = httpx.get(host.url + "/v1/models", headers={"Authorization": f"Bearer {never_seen}"})
        assert unknown.status_code == 503  # cannot tell: never a false 401 during an outage
        forged = httpx.get(host.url + "/v1/models", headers={"Authorization": "Bearer sk-gw-never-seen"})
        assert forged.status_code == 401  # malformed: refused locally, outage or not
        ready = httpx.get(host.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["cosmos"]["status"] == "unavailable"
        assert ready.json()["checks"]["storage"]["status"] == "ok"

        own_emulators.stop("azurite")
        assert httpx.get(host.url + "/readyz").json()["checks"]["storage"]["status"] == "unavailable"

        # bounded: after TTL + FAIL_STATIC_MAX_SECONDS the data plane fails closed
        time.sleep(max(0.0, 1 + FAIL_STATIC + 0.5 - (time.monotonic() - outage_started)))
        closed = httpx.get(host.url + "/v1/models", headers=data)
        assert closed.status_code == 503 and closed.json()["error"]["code"] == "dependency_unavailable"

        own_emulators.start("cosmos", "azurite")
        wait_until(lambda: httpx.get(host.url + "/readyz").status_code == 200, timeout=15, message="ready again")
        assert httpx.get(host.url + "/v1/models", headers=data).status_code == 200
        assert admin.get("/manage/projects/during-outage").status_code == 404  # nothing half-written
        assert admin.get("/manage/projects/resilient").status_code == 200  # data survived the restart
    finally:
        admin.close()
        host.stop()
