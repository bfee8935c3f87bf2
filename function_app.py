"""Composition root of the Azure Functions app (Python v2 programming model).

It only wires: Settings → Services → one Blueprint per surface. No business logic lives here.
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Sequence

import azure.functions as func

from functions import (admin_api, agents_admin_api, agents_api, agents_portal_api, agents_sync, credentials_api, health_api,
                       keys_api, models_admin_api, models_api, portal_api)
from shared.config import SettingProblem, Settings, load_settings
from shared.services import Services
from shared.web.api import ApiBlueprint, Operation
from shared.web.misconfigured import configuration_error, refusing
from shared.web.worker_http import free_worker_routes

log = logging.getLogger("gateway")


def build_app(settings: Settings, services: Services | None = None, *,
              problems: Sequence[SettingProblem] = ()) -> func.FunctionApp:
    """`problems`: malformed settings (see `load_settings`). The app then declares the very same functions, but
    every one except /healthz answers `503 configuration_error` (and /readyz says why)."""
    # Before the worker builds its HTTP-streaming app (it does so right after indexing this module).
    free_worker_routes()
    services = services or Services(settings)
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    surfaces: list[ApiBlueprint] = [
        admin_api.build(services),
        keys_api.build(services),
        models_admin_api.build(services),
        portal_api.build(services),
        credentials_api.build(services),
        models_api.build(services),
        agents_admin_api.build(services),
        agents_portal_api.build(services),
        agents_api.build(services),
    ]

    def operations() -> list[Operation]:
        return [op for s in (*surfaces, health) for op in s.operations]

    health = health_api.build(services, operations, problems)
    served = [refusing(s, problems) for s in surfaces] if problems else list(surfaces)
    served.append(health)
    for surface in served:
        app.register_functions(surface.blueprint)
    # Timers carry no HTTP surface; a misconfigured app still indexes them (they log and return).
    app.register_functions(agents_sync.build(services, problems))
    app.services = services  # type: ignore[attr-defined]  # for the local host's shutdown and for tests
    # Everything imported and built so far lives as long as the worker: keep it out of full GC passes.
    gc.freeze()
    return app


def _load() -> func.FunctionApp:
    settings, problems = load_settings()
    if problems:  # the first thing an operator sees in the log stream / Application Insights
        log.error("%s %s", configuration_error(problems).message,
                  "; ".join(f"{p.setting}: {p.reason}" for p in problems))
    return build_app(settings, problems=problems)


app = _load()
