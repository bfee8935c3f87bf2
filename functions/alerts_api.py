"""Operate: alert rules per project (state, last value and delivery status included). Admin only."""
from __future__ import annotations

from pydantic import Field
from starlette.responses import Response

from shared.domain.base import AppModel, InvalidDocument
from shared.domain.monitoring import AlertRule, AlertRuleOut, AlertRuleSpec
from shared.errors import ValidationFailed
from shared.egress import EgressPolicy
from shared.registry.projects import ProjectRegistry
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import query_int


class AlertRuleList(AppModel):
    items: list[AlertRuleOut]
    next_cursor: str | None
    invalid: list[InvalidDocument] = Field(default_factory=list)


def build(rules: Repository[AlertRule], projects: ProjectRegistry, egress: EgressPolicy, admin: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("alerts", max_body_bytes=max_body_bytes)

    @api.route("manage/projects/{project}/alert-rules", "POST", name="manage_create_alert_rule",
               summary="Create an alert rule (evaluated every minute by the alerts timer).", guard=admin,
               body=AlertRuleSpec, response=AlertRuleOut, status=201)
    async def create(call: Call):
        spec: AlertRuleSpec = call.body
        if spec.webhook_url:  # refused now rather than at 3 a.m.; checked again on every connection
            await egress.check(spec.webhook_url, "webhook_url")
        pid = call.path("project")
        await projects.get(pid)
        created = await rules.create(AlertRule(id=spec.id, project_id=pid, spec=spec))
        return AlertRuleOut.of(created)

    @api.route("manage/projects/{project}/alert-rules", "GET", name="manage_list_alert_rules",
               summary="A project's alert rules with their state and recent deliveries.", guard=admin,
               response=AlertRuleList, query=(("limit", "1-200 (default 50)."), ("cursor", "Opaque cursor.")))
    async def list_rules(call: Call):
        page = await rules.list(call.path("project"), limit=query_int(call.req, "limit", 50, 1, 200),
                                cursor=call.req.query_params.get("cursor") or None)
        return AlertRuleList(items=[AlertRuleOut.of(r) for r in page.items], next_cursor=page.cursor,
                             invalid=page.invalid)

    @api.route("manage/projects/{project}/alert-rules/{rule}", "GET", name="manage_get_alert_rule",
               summary="One alert rule.", guard=admin, response=AlertRuleOut)
    async def get(call: Call):
        return AlertRuleOut.of(await rules.get(call.path("project"), call.path("rule")))

    @api.route("manage/projects/{project}/alert-rules/{rule}", "PUT", name="manage_replace_alert_rule",
               summary="Replace an alert rule's definition (its state is kept).", guard=admin, body=AlertRuleSpec,
               response=AlertRuleOut)
    async def replace(call: Call):
        spec: AlertRuleSpec = call.body
        if spec.id != call.path("rule"):
            raise ValidationFailed("The body's id must match the path.", details=[{"field": "id",
                                                                                   "message": "mismatch"}])
        if spec.webhook_url:
            await egress.check(spec.webhook_url, "webhook_url")

        def apply(r: AlertRule) -> None:
            r.spec = spec

        return AlertRuleOut.of(await rules.update(call.path("project"), spec.id, apply,
                                                  if_match=call.req.headers.get("if-match")))

    @api.route("manage/projects/{project}/alert-rules/{rule}", "DELETE", name="manage_delete_alert_rule",
               summary="Delete an alert rule.", guard=admin, status=204)
    async def delete(call: Call):
        await rules.delete(call.path("project"), call.path("rule"))
        return Response(status_code=204)

    return api
