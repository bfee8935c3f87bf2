"""Build: what a developer sees — who they are and which projects and pillars are open to them."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.domain.base import AppModel, Pillar
from shared.domain.lifecycle import serves
from shared.domain.quotas import QuotaLimits
from shared.auth.owned_keys import owned_key
from shared.flags.service import FlagService
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard


class Me(AppModel):
    subject: str
    name: str | None
    roles: list[str]
    via: str


class CatalogProject(AppModel):
    id: str
    name: str
    description: str
    pillars: list[Pillar]


class CatalogProjects(AppModel):
    items: list[CatalogProject]
    next_cursor: str | None


class ModelPrices(AppModel):
    input_per_1k: float
    output_per_1k: float
    cached_input_per_1k: float | None
    reasoning_per_1k: float | None


class LimitLeft(AppModel):
    limit: str  # requests_per_minute | tokens_per_minute | tokens_per_day | tokens_per_month | cost_per_month_usd
    allowed: float
    remaining: float = Field(description="Left in the current window (USD for cost), read without consuming.")
    resets_in_seconds: float


class ModelLimit(AppModel):
    scope: str  # project | model | key: the project's shared limits, this model's own, the `?key=` key's own
    limits: QuotaLimits
    remaining: list[LimitLeft] = Field(default_factory=list)


class CatalogModel(AppModel):
    name: str
    description: str
    capabilities: list[str]
    context_window: int | None
    lifecycle: str
    prices: ModelPrices
    cache: bool = Field(description="Answers may come from the response cache (x-gateway-cache).")
    semantic_cache: bool
    limits: list[ModelLimit]


class CatalogModels(AppModel):
    items: list[CatalogModel]


def build(projects: ProjectRegistry, flags: FlagService, developer: Guard, *, max_body_bytes: int,
          catalog: Any = None, quota_book: Any = None, enforcer: Any = None, keys: Any = None) -> ApiBlueprint:
    """`catalog`/`quota_book`: the models pillar's, for the developer model catalog; `enforcer()`: the quota
    enforcer (built on first use), which reads what is left of each limit without consuming; `keys`: the
    virtual keys, for `?key=` (one of the caller's own keys: its scope and its own quota too)."""
    api = ApiBlueprint("portal", max_body_bytes=max_body_bytes)

    @api.route("portal/me", "GET", name="portal_me", summary="The signed-in principal and its roles.",
               guard=developer, response=Me)
    async def me(call: Call):
        p = call.principal
        assert p is not None
        return Me(subject=p.subject, name=p.name, roles=sorted(r.value for r in p.roles), via=p.kind)

    @api.route("portal/projects", "GET", name="portal_projects",
               summary="Projects and the pillars that are currently open for traffic.", guard=developer,
               response=CatalogProjects, query=(("cursor", "Opaque cursor from the previous page."),))
    async def list_projects(call: Call):
        page = await projects.list(limit=100, cursor=call.req.query_params.get("cursor") or None)
        glob = await flags.global_flags()
        items = [CatalogProject(id=p.id, name=p.name, description=p.description,
                                pillars=[k for k, v in flags.views(p, glob).items() if v.effective])
                 for p in page.items]
        return CatalogProjects(items=items, next_cursor=page.cursor)

    if catalog is not None and quota_book is not None:
        _model_catalog(api, developer, catalog, quota_book, enforcer, keys)
    return api


async def _limits(quotas: list[Any], enforcer: Any) -> list[ModelLimit]:
    left: dict[str, list[LimitLeft]] = {}
    for quota, metric, limit, remaining, resets in (await enforcer().remaining(quotas) if enforcer else []):
        scale = 1e6 if metric == "cost_per_month_usd" else 1  # the enforcer counts cost in micro-dollars
        left.setdefault(quota.id, []).append(LimitLeft(limit=metric, allowed=limit / scale,
                                                       remaining=remaining / scale, resets_in_seconds=round(resets, 3)))
    return [ModelLimit(scope=q.scope, limits=q.limits, remaining=left.get(q.id, [])) for q in quotas]


def _model_catalog(api: ApiBlueprint, developer: Guard, catalog: Any, quota_book: Any, enforcer: Any,
                   keys: Any) -> None:
    @api.route("portal/projects/{project}/models", "GET", name="portal_project_models",
               summary="The model catalog of a project: capabilities, limits, prices, lifecycle, cache, and what "
               "is left of each limit.", guard=developer, response=CatalogModels,
               query=(("key", "One of your own key ids: only the models it may call, with its own limits too."),))
    async def project_models(call: Call):
        project = call.path("project")
        key = None
        if call.req.query_params.get("key") and keys is not None:
            assert call.principal is not None
            key = await owned_key(keys, call.principal, project, call.req.query_params["key"])
        scope = key.scopes().get(Pillar.models) if key is not None else None
        models = [m for m in await catalog.models(project) if serves(m.spec.lifecycle)
                  and (scope is None or m.spec.name in scope)]
        items = []
        for m in sorted(models, key=lambda m: m.spec.name):
            s, cache = m.spec, m.spec.cache
            quotas = await quota_book.for_call(project, key.id if key else None, Pillar.models, s.name)
            items.append(CatalogModel(
                name=s.name, description=s.description, capabilities=list(s.capabilities),
                context_window=s.context_window, lifecycle=s.lifecycle.value,
                prices=ModelPrices(input_per_1k=s.input_price_per_1k, output_per_1k=s.output_price_per_1k,
                                   cached_input_per_1k=s.cached_input_price_per_1k,
                                   reasoning_per_1k=s.reasoning_price_per_1k),
                cache=bool(cache and cache.enabled), semantic_cache=bool(cache and cache.enabled and cache.semantic),
                limits=await _limits(quotas, enforcer)))
        return CatalogModels(items=items)
