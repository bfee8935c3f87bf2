"""Liveness, readiness and the OpenAPI document of the whole HTTP surface."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from shared.config import SettingProblem
from shared.web.api import ApiBlueprint, Call, Endpoint
from shared.web.misconfigured import configuration_error
from shared.web.openapi import build_openapi
from shared.web.responses import json_response

VERSION = "0.1.0"
# The canonical address of the document. `/openapi.json` is FastAPI's conventional path, which the Functions
# worker's internal FastAPI app used to claim in Azure (shared/web/worker_http.py); `/spec/…` never collides.
SPEC_ROUTE = "spec/openapi.json"


def build(readiness: Callable[[], Awaitable[dict[str, dict[str, Any]]]], endpoints: Callable[[], list[Endpoint]],
          problems: Sequence[SettingProblem] = (), *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("meta", max_body_bytes=max_body_bytes)

    @api.route("healthz", "GET", name="healthz", summary="Liveness: the worker answers.", guard=None)
    async def healthz(call: Call):
        return json_response({"status": "ok"})

    @api.route("readyz", "GET", name="readyz",
               summary="Readiness: the configuration is valid and Cosmos DB and Storage are reachable.", guard=None)
    async def readyz(call: Call):
        if problems:  # nothing would work: say why, without probing dependencies with half-valid settings
            error = configuration_error(problems).to_body()["error"]
            return json_response({"status": "misconfigured", "checks": {"configuration": {
                "status": "invalid", "error": error["code"], "settings": error["details"]["settings"]}}}, 503)
        checks = await readiness()
        ready = all(c["status"] == "ok" for c in checks.values())
        return json_response({"status": "ready" if ready else "degraded", "checks": checks}, 200 if ready else 503)

    async def document(call: Call):
        return json_response(build_openapi(endpoints(), title="AI Gateway Governance", version=VERSION))

    api.route(SPEC_ROUTE, "GET", name="openapi", summary="OpenAPI 3.1 document of every HTTP operation.",
              guard=None)(document)
    api.route("openapi.json", "GET", name="openapi_root", guard=None,
              summary="The same OpenAPI document at FastAPI's conventional path (canonical: /spec/openapi.json).",
              )(document)
    return api
