"""The alert timer: measure each enabled rule, move its state (ok ↔ firing), notify on every change.

A rule fires when its value exceeds its threshold; rate rules (error rate, latency) need `min_requests` calls in
the window, else they report no value and keep their state. State, last value and the last 20 deliveries are
kept on the rule document (ETag-checked update: an admin's edit in between is not overwritten).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.monitoring import AlertRule, Delivery, LogFilter
from ..errors import GatewayError
from ..storage.repository import Repository
from .sources import AlertSources
from .webhook import Outcome

log = logging.getLogger("gateway.alerts")
MAX_DELIVERIES = 20

Notify = Callable[[AlertRule, str, dict[str, Any]], Awaitable[Outcome]]


async def measure(rule: AlertRule, sources: AlertSources, now: datetime) -> float | None:
    spec, project = rule.spec, rule.project_id
    since = now - timedelta(minutes=spec.window_minutes)
    if spec.kind == "budget":
        return await sources.budget_used_pct(project, now)
    if spec.kind == "sync_failure":
        return await sources.sync_failures(project, since)
    if spec.kind == "approvals_waiting":  # the window is the approval SLA
        return await sources.approvals_waiting(project, timedelta(minutes=spec.window_minutes), now)
    if spec.kind == "tools_quarantined":
        return await sources.tools_quarantined(project)
    stats = await sources.window_stats(project, LogFilter(since=since, until=now, pillar=spec.pillar,
                                                          resource=spec.resource), now)
    if spec.kind == "failover_spike":
        return stats.failovers
    if spec.kind == "breaker_open":
        return stats.breaker_refusals
    if stats.requests < max(1, spec.min_requests):
        return None
    if spec.kind == "error_rate":
        return round(100 * stats.server_errors / stats.requests, 4)
    return stats.p95_ms  # latency_slo


def payload(rule: AlertRule, event: str, value: float | None, now: datetime) -> dict[str, Any]:
    s = rule.spec
    return {"event": event, "project": rule.project_id, "rule": s.id, "kind": s.kind, "value": value,
            "threshold": s.threshold, "window_minutes": s.window_minutes, "pillar": s.pillar,
            "resource": s.resource, "at": now.isoformat()}


@dataclass
class AlertRun:
    evaluated: int = 0
    fired: int = 0
    resolved: int = 0
    failed: int = 0  # rules whose source or update failed (logged; retried next run)


async def evaluate_rule(rule: AlertRule, rules: Repository[AlertRule], sources: AlertSources, notify: Notify,
                        now: datetime, run: AlertRun) -> None:
    value = await measure(rule, sources, now)
    firing = rule.state == "firing" if value is None else value > rule.spec.threshold
    event = None
    if firing != (rule.state == "firing"):
        event = "firing" if firing else "resolved"
    delivery = None
    if event and rule.spec.webhook_url:
        outcome = await notify(rule, event, payload(rule, event, value, now))
        delivery = Delivery(at=now, event=event, attempts=outcome.attempts,
                            status="delivered" if outcome.delivered else "failed", last_error=outcome.last_error)

    def apply(r: AlertRule) -> None:
        r.value, r.evaluated_at = value, now
        if event:
            r.state, r.changed_at = ("firing" if firing else "ok"), now
        if delivery:
            r.deliveries = [*r.deliveries, delivery][-MAX_DELIVERIES:]

    await rules.update(rule.project_id, rule.id, apply)
    run.evaluated += 1
    run.fired += event == "firing"
    run.resolved += event == "resolved"


async def run_alerts(rules: Repository[AlertRule], projects: list[str], sources: AlertSources, notify: Notify,
                     now: datetime) -> AlertRun:
    run = AlertRun()
    for project in projects:
        cursor = None
        while True:
            page = await rules.list(project, limit=200, cursor=cursor)
            for rule in page.items:
                if not rule.spec.enabled:
                    continue
                try:
                    await evaluate_rule(rule, rules, sources, notify, now, run)
                except (GatewayError, OSError) as exc:  # one rule's source must not stop the others
                    run.failed += 1
                    log.warning("alert rule %s/%s not evaluated: %s", project, rule.id, exc)
            cursor = page.cursor
            if not cursor:
                break
    return run
