"""Liveness, readiness and the OpenAPI document of the whole HTTP surface."""
from __future__ import annotations

from collections.abc import Callable

from shared.services import Services
from shared.web.api import ApiBlueprint, Call, Operation
from shared.web.openapi import build_openapi
from shared.web.responses import json_response

VERSION = "0.1.0"


def build(services: Services, operations: Callable[[], list[Operation]]) -> ApiBlueprint:
    api = ApiBlueprint("meta", max_body_bytes=services.settings.max_admin_body_bytes)

    @api.route("healthz", "GET", name="healthz", summary="Liveness: the worker answers.", guard=None)
    async def healthz(call: Call):
        return json_response({"status": "ok"})

    @api.route("readyz", "GET", name="readyz", summary="Readiness: Cosmos DB and Storage are reachable.",
               guard=None)
    async def readyz(call: Call):
        checks = await services.readiness()
        ready = all(c["status"] == "ok" for c in checks.values())
        return json_response({"status": "ready" if ready else "degraded", "checks": checks}, 200 if ready else 503)

    @api.route("openapi.json", "GET", name="openapi", summary="OpenAPI 3.1 document of every HTTP operation.",
               guard=None)
    async def openapi(call: Call):
        return json_response(build_openapi(operations(), title="AI Gateway Governance", version=VERSION))

    return api
