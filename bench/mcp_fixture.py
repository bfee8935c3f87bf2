"""What the MCP benchmarks share: a benchmark gateway's settings, its start, its project and key, and cleanup."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.prepare import trigger_settings
from dev.emulators import Emulators
from tests.support.processes import HostProcess, start_host


def gateway_env(emu: Emulators) -> dict[str, str]:
    """A benchmark gateway's settings: the emulators, a fresh database, admin key and pepper, timers idle."""
    return {"COSMOS_CONNECTION_STRING": emu.cosmos_connection_string, "COSMOS_DATABASE": "bench-" + uuid.uuid4().hex[:6],
            "AzureWebJobsStorage": emu.storage_connection_string,
            "GATEWAY_ADMIN_KEY": "bench-admin-" + secrets.token_hex(8),
            "GATEWAY_KEY_HASH_SECRET": secrets.token_hex(16), "EGRESS_ALLOW_LOOPBACK": "true",
            "FLAG_CACHE_TTL_SECONDS": "60", "LOG_LEVEL": "WARNING", **trigger_settings(),
            "TOOLS_APPROVALS_QUEUE": "bench-submissions"}


def bench_key(url: str, admin_key: str) -> str:
    """Project `bench` with the tools pillar on, and a virtual key of it (its secret)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        admin.post("/manage/projects", json={"id": "bench", "name": "bench",
                                             "pillars": {"tools": {"enabled": True}}}).raise_for_status()
        return admin.post("/manage/projects/bench/keys", json={"name": "bench"}).json()["secret"]


def gateway(repo: Path, env: dict[str, str], work: Path, name: str) -> HostProcess:
    for attempt in range(3):  # free_port() races with other processes on a shared machine: retry on a new port
        try:
            return start_host(root=repo, repo=repo, app="function_app:app", log_dir=work, name=name, timeout=90,
                              env=env)
        except RuntimeError as exc:
            if attempt == 2 or "address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


def stop_all(stop: list[Callable[[], None]]) -> None:
    """Stop what a run started, last first; one failing stop does not keep the others running."""
    for fn in reversed(stop):
        try:
            fn()
        except Exception:  # noqa: BLE001 - best-effort cleanup of what this run started
            pass
