"""Composition root of the Azure Functions app (Python v2 programming model).

It only wires: Settings → Services → one Blueprint per surface. No business logic lives here.
"""
from __future__ import annotations

import gc

import azure.functions as func

from functions import admin_api, credentials_api, health_api, keys_api, models_admin_api, models_api, portal_api
from shared.config import Settings
from shared.services import Services
from shared.web.api import ApiBlueprint, Operation, fallback_blueprint


def build_app(settings: Settings, services: Services | None = None) -> func.FunctionApp:
    services = services or Services(settings)
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    surfaces: list[ApiBlueprint] = [
        admin_api.build(services),
        keys_api.build(services),
        models_admin_api.build(services),
        portal_api.build(services),
        credentials_api.build(services),
        models_api.build(services),
    ]

    def operations() -> list[Operation]:
        return [op for s in surfaces for op in s.operations]

    surfaces.append(health_api.build(services, operations))
    for surface in surfaces:
        app.register_functions(surface.blueprint)
    app.register_functions(fallback_blueprint(operations))  # unknown paths/methods: the gateway's error body
    app.services = services  # type: ignore[attr-defined]  # for the local host's shutdown and for tests
    # Everything imported and built so far lives as long as the worker: keep it out of full GC passes.
    gc.freeze()
    return app


app = build_app(Settings())
