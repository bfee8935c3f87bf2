"""Composition root of the Azure Functions app (Python v2 programming model).

It only wires: Settings → Services (infrastructure clients, registries, one assembly function per pillar, all
closed through one exit stack) → one Blueprint per surface, each handed only what it uses. No business logic
lives here.
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Sequence

import azure.functions as func

from functions import (admin_api, agents_admin_api, agents_api, agents_composition_api, agents_keys_api,
                       agents_portal_api, agents_sync, alerts_api, analytics_api, credentials_api, experiments_api,
                       guardrails_admin_api, health_api, keys_api, mcp_api, mcp_approvals_api, models_admin_api,
                       models_api, models_playground_api, monitoring_timers, portal_api, requestlog_api,
                       tools_admin_api, tools_approvals, tools_portal_api, warmup)
from shared.auth.guards import DataPlaneGuard, RoleGuard
from shared.auth.principal import Role
from shared.config import SettingProblem, Settings, load_settings
from shared.domain.base import Pillar
from shared.services import Services
from shared.web.api import ApiBlueprint, Endpoint, fallback_blueprint
from shared.web.misconfigured import configuration_error, refusing
from shared.web.worker_http import free_worker_routes

log = logging.getLogger("gateway")
# The data-plane surfaces (models, MCP, A2A): behind the worker's admission gate (docs/runbook.md "Overload").
DATA_PLANE_TAGS = frozenset({"models", "tools", "agents"})


def build_app(settings: Settings, services: Services | None = None, *,
              problems: Sequence[SettingProblem] = ()) -> func.FunctionApp:
    """`problems`: malformed settings (see `load_settings`). The app then declares the very same functions, but
    every one except /healthz answers `503 configuration_error` (and /readyz says why)."""
    # Before the worker builds its HTTP-streaming app (it does so right after indexing this module).
    free_worker_routes()
    services = services or Services(settings)
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    admin = RoleGuard(services.control_auth, Role.admin)
    developer = RoleGuard(services.control_auth, Role.developer)
    manage = settings.max_admin_body_bytes
    projects = services.project_registry
    tools = services.tools
    surfaces: list[ApiBlueprint] = [
        admin_api.build(projects, admin, max_body_bytes=manage),
        keys_api.build(services.key_service, services.keys, projects, services.quota_registry, admin,
                       max_body_bytes=manage, max_rotation_overlap=settings.key_rotation_max_overlap_seconds,
                       on_purge=[lambda p, k: services.agents.key_policies.forget(p, k)]),
        models_admin_api.build(services.model_registry, services.quota_registry, projects, admin,
                               max_body_bytes=manage),
        guardrails_admin_api.build(services.guardrail_policies, services.guardrail_book, projects, services.keys,
                                   services.egress, admin, max_body_bytes=manage),
        portal_api.build(projects, services.flags, developer, max_body_bytes=manage, catalog=services.catalog,
                         quota_book=services.quota_book, enforcer=lambda: services.enforcer, keys=services.keys),
        credentials_api.build(services.key_service, services.key_requests, projects, developer, admin,
                              max_body_bytes=manage),
        # the pipeline is assembled on the first call, inside the worker's event loop
        models_api.build(lambda: services.models_pipeline, services.catalog,
                         DataPlaneGuard(services.key_service, services.flags, Pillar.models),
                         max_body_bytes=settings.max_data_body_bytes),
        # A/B experiments on model names: the feedback service and the request log open on first use
        experiments_api.build(services.experiment_registry, lambda: services.experiment_feedback_service,
                              lambda: services.request_log_table, projects, admin,
                              DataPlaneGuard(services.key_service, services.flags, Pillar.models),
                              max_body_bytes=manage, max_rows=settings.experiment_results_max_rows),
        models_playground_api.build(lambda: services.models_pipeline, services.keys, services.flags, projects,
                                    developer, max_body_bytes=manage),
        # the tools pillar: its parts (and the MCP data plane) are built on first use, inside the worker's loop
        tools_admin_api.build(tools, projects, admin, max_body_bytes=manage),
        tools_approvals.build(tools, projects, admin, max_body_bytes=manage),
        tools_portal_api.build(tools, projects, services.keys, developer, max_body_bytes=manage),
        mcp_approvals_api.build(lambda: tools.mcp.approvals, admin, max_body_bytes=manage),
        mcp_api.build(lambda: tools.mcp.transport, DataPlaneGuard(services.key_service, services.flags, Pillar.tools),
                      max_body_bytes=settings.max_data_body_bytes),
        # the monitoring tables open on first use, inside the worker's event loop
        requestlog_api.build(lambda: services.request_log_table, admin, max_body_bytes=manage),
        analytics_api.build(lambda: services.request_log_table, lambda: services.analytics_table, services.projects,
                            services.keys, services.key_requests, services.models, admin, max_body_bytes=manage,
                            adoption_sources=lambda: services.adoption_sources),
        alerts_api.build(services.alert_rules, projects, services.egress, admin, max_body_bytes=manage),
        # the agents pillar is assembled on first use, inside the worker's event loop
        agents_admin_api.build(lambda: services.agents, projects, admin, max_body_bytes=manage),
        agents_portal_api.build(lambda: services.agents, projects, developer, max_body_bytes=manage,
                                flags=services.flags, front=lambda: services.agents_front),
        agents_composition_api.build(lambda: services.agents, projects, admin, max_body_bytes=manage),
        agents_keys_api.build(lambda: services.agents, projects, lambda p, k: services.keys.get(p, k), admin,
                              max_body_bytes=manage),
        agents_api.build(lambda: services.agents, lambda: services.agents_pipeline, lambda: services.agents_cards,
                         DataPlaneGuard(services.key_service, services.flags, Pillar.agents),
                         max_body_bytes=settings.max_data_body_bytes, front=lambda: services.agents_front),
    ]

    for surface in surfaces:
        if surface.tag in DATA_PLANE_TAGS:
            surface.admit_through(services.admission)

    def endpoints() -> list[Endpoint]:
        return [op for s in (*surfaces, health) for op in s.endpoints]

    health = health_api.build(services.readiness, endpoints, problems, max_body_bytes=manage)
    served = [refusing(s, problems) for s in surfaces] if problems else list(surfaces)
    served.append(health)
    for surface in served:
        app.register_functions(surface.blueprint)
    app.register_functions(monitoring_timers.build(services, problems))
    # Timers carry no HTTP surface; a misconfigured app still indexes them (they log and return).
    app.register_functions(agents_sync.build(lambda: services.agents, problems, outcome=services.job_outcome))
    # approvals queue + pinning timer
    app.register_functions(tools_approvals.background(tools, problems, outcome=services.job_outcome))
    # A new instance builds its tools plane before traffic (misconfigured: nothing to build, every call answers 503)
    app.register_functions(warmup.build(services.warm if not problems else list))
    app.register_functions(fallback_blueprint(endpoints))  # unknown paths/methods: the gateway's error body
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
