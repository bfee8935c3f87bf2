"""Helpers for the models-pillar tests: fake upstreams, a project with a model, clients."""
from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import UPSTREAM_KEYS, new_key, new_project
from tests.support.fake_openai import FakeOpenAI


def backend(fake: FakeOpenAI, bid: str, *, kind: str = "openai_compatible", priority: int = 0, weight: int = 1,
            timeout: float = 10, key: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": bid, "kind": kind, "deployment": f"{bid}-deploy", "priority": priority,
                            "weight": weight, "timeout_seconds": timeout}
    if kind == "azure_openai":
        spec.update(endpoint=fake.url, api_version="2024-10-21")
    else:
        spec.update(endpoint=fake.url + "/v1")
    if key:
        spec["api_key_setting"] = key
    return spec


def setup_model(admin: httpx.Client, backends: list[dict[str, Any]], *, name: str | None = None,
                routing: dict | None = None, prices: tuple[float, float] = (0.0, 0.0),
                capabilities: list[str] | None = None, project: str | None = None,
                key_spec: dict | None = None) -> tuple[str, str, str]:
    """→ (project, model name, virtual key secret)"""
    pid = project or new_project(admin)
    name = name or "m-" + uuid.uuid4().hex[:6]
    spec: dict[str, Any] = {"name": name, "backends": backends, "input_price_per_1k": prices[0],
                            "output_price_per_1k": prices[1],
                            "capabilities": capabilities or ["chat", "streaming", "embeddings"]}
    if routing:
        spec["routing"] = routing
    r = admin.post(f"/manage/projects/{pid}/models", json=spec)
    assert r.status_code == 201, r.text
    return pid, name, new_key(admin, pid, **(key_spec or {}))


def chat(gw_url: str, secret: str, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
    return httpx.post(f"{gw_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"},
                      timeout=30)


__all__ = ["backend", "setup_model", "chat", "UPSTREAM_KEYS", "new_key", "new_project"]


def log_row(storage_connection_string: str, request_id: str, timeout: float = 10) -> dict[str, Any]:
    """The request-log row of one call, once the batch writer has flushed it."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    from tests.support.processes import wait_until

    table = TableClient.from_connection_string(storage_connection_string, "gatewayrequests")

    def find():
        try:
            return next(iter(table.query_entities(f"request_id eq '{request_id}'")), None)
        except ResourceNotFoundError:  # the table is created by the first flush
            return None

    return wait_until(find, timeout=timeout, message=f"request log row {request_id}")
