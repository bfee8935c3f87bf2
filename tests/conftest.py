"""Shared fixtures: real emulators (Azurite + the Cosmos server) for the whole session, gateway processes on top."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dev.emulators import Emulators, Ports
from tests.support.jwks import JwksServer
from tests.support.processes import REPO, HostProcess, start_host

ADMIN_KEY = "test-admin-" + secrets.token_urlsafe(16)
UPSTREAM_KEYS = {"a": "upstream-a-" + secrets.token_hex(4), "b": "upstream-b-" + secrets.token_hex(4)}


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    emu = Emulators(tmp_path_factory.mktemp("emulators"), Ports.free())
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.start()
    yield server
    server.stop()


def gateway_env(emu: Emulators, jwks: JwksServer, **overrides: str) -> dict[str, str]:
    env = {
        "COSMOS_CONNECTION_STRING": emu.cosmos_connection_string,
        # each gateway gets its own database unless a test shares one on purpose
        "COSMOS_DATABASE": "gw-" + uuid.uuid4().hex[:8],
        "AzureWebJobsStorage": emu.storage_connection_string,
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_KEY_HASH_SECRET": "test-pepper-" + uuid.uuid4().hex,
        "FLAG_CACHE_TTL_SECONDS": "1",
        "DEPENDENCY_TIMEOUT_SECONDS": "1.5",
        "ENTRA_TENANT_ID": jwks.tenant,
        "ENTRA_AUDIENCE": jwks.audience,
        "ENTRA_ISSUER": jwks.issuer,
        "ENTRA_JWKS_URL": jwks.url,
        "MAX_ADMIN_BODY_BYTES": "65536",
        "MAX_DATA_BODY_BYTES": "262144",
        "EGRESS_ALLOW_LOOPBACK": "true",  # the fake upstreams live on 127.0.0.1
        "UPSTREAM_SECRET_TEST_A": UPSTREAM_KEYS["a"],
        "UPSTREAM_SECRET_TEST_B": UPSTREAM_KEYS["b"],
        "USAGE_FLUSH_SECONDS": "0.2",
        "TOOLS_APPROVALS_QUEUE": "tool-submissions-" + uuid.uuid4().hex[:8],  # one queue per gateway
        "TOOLS_PINNING_SCHEDULE": "0 0 0 1 1 *",  # tests trigger the check themselves
        # monitoring timers (issue 12): declared by the app, effectively idle in tests (tests run the jobs directly)
        "REQUEST_LOG_RETENTION_SCHEDULE": "0 0 0 1 1 *",
        "ANALYTICS_ROLLUP_SCHEDULE": "0 0 0 1 1 *",
        "ALERTS_SCHEDULE": "0 0 0 1 1 *",
        # The agents sync timers need their schedules; once a year: tests trigger runs themselves.
        "AGENTS_SYNC_BEDROCK_SCHEDULE": "0 0 0 1 1 *",
        "AGENTS_SYNC_VERTEX_SCHEDULE": "0 0 0 1 1 *",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def start_gateway(emulators: Emulators, jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Callable[..., HostProcess]]:
    started: list[HostProcess] = []
    logs = tmp_path_factory.mktemp("gateway-logs")

    def start(**overrides: str) -> HostProcess:
        host = start_host(root=REPO, app="function_app:app", env=gateway_env(emulators, jwks, **overrides),
                          log_dir=logs, name="gateway")
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture(scope="session")
def gateway(start_gateway: Callable[..., HostProcess]) -> HostProcess:
    """One shared gateway for tests that do not need their own."""
    return start_gateway()


@pytest.fixture(scope="session")
def gateway_twin(start_gateway: Callable[..., HostProcess], gateway: HostProcess) -> HostProcess:
    """A second instance of the shared gateway's deployment (same registry, same key pepper): scale-out tests."""
    return start_gateway(COSMOS_DATABASE=gateway.env["COSMOS_DATABASE"],
                         GATEWAY_KEY_HASH_SECRET=gateway.env["GATEWAY_KEY_HASH_SECRET"])


@pytest.fixture
def admin(gateway: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as c:
        yield c


@pytest.fixture
def anon(gateway: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        yield c


def new_project(admin: httpx.Client, *, models: bool = True) -> str:
    pid = "p-" + uuid.uuid4().hex[:10]
    r = admin.post("/manage/projects", json={"id": pid, "name": pid, "pillars": {"models": {"enabled": models}}})
    assert r.status_code == 201, r.text
    return pid


def new_key(admin: httpx.Client, project: str, **spec) -> str:
    r = admin.post(f"/manage/projects/{project}/keys", json={"name": "k", **spec})
    assert r.status_code == 201, r.text
    return r.json()["secret"]


REPO_ROOT: Path = REPO
