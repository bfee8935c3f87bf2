"""Timers of the monitoring jobs (thin: settings → job → one log line). Schedules are six-field NCRONTAB app
settings (Flex Consumption has no TimeSpan form):
- REQUEST_LOG_RETENTION_SCHEDULE: delete request-log rows older than REQUEST_LOG_RETENTION_DAYS;
- ANALYTICS_ROLLUP_SCHEDULE: recompute the hourly aggregates of the last ANALYTICS_ROLLUP_LOOKBACK_HOURS;
- ALERTS_SCHEDULE: evaluate every enabled alert rule and notify on state changes.
With malformed settings (`problems`) the timers log and do nothing, like the HTTP surface refuses work."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import azure.functions as func

from shared.config import SettingProblem
from shared.domain.base import utcnow
from shared.services import Services

log = logging.getLogger("gateway.monitoring")


async def project_ids(services: Services) -> list[str]:
    from shared.monitoring.paging import list_all

    return [p.id for p in await list_all(services.projects, None)]


async def retention(services: Services) -> Any:
    from shared.monitoring.retention import purge_expired

    s = services.settings
    return await purge_expired(services.request_log_table, utcnow(), s.request_log_retention_days,
                               max_rows=s.request_log_retention_max_rows)


async def analytics_rollup(services: Services) -> Any:
    from shared.monitoring.rollup import rollup

    await services.analytics_table.ensure()
    return await rollup(services.request_log_table, services.analytics_table, await project_ids(services), utcnow(),
                        services.settings.analytics_rollup_lookback_hours)


async def alerts(services: Services) -> Any:
    from shared.alerts.evaluate import run_alerts

    return await run_alerts(services.alert_rules, await project_ids(services), services.alert_sources,
                            services.alert_notifier, utcnow())


def build(services: Services, problems: Sequence[SettingProblem] = ()) -> func.Blueprint:
    bp = func.Blueprint()

    def timer(name: str, setting: str, job: Any) -> None:
        async def run(timer: func.TimerRequest) -> None:
            if problems:
                log.error("%s skipped: app settings are malformed (%s)", name, ", ".join(p.setting for p in problems))
                return
            try:
                result = await job(services)
            except Exception:
                services.job_outcome(name, "error")  # the host logs the exception; the next occurrence retries
                raise
            services.job_outcome(name, "ok")
            log.info("%s done%s: %s", name, " (past due)" if timer.past_due else "", result)

        run.__name__ = run.__qualname__ = name
        bp.function_name(name)(bp.timer_trigger(schedule=f"%{setting}%", arg_name="timer")(run))

    timer("requestLogRetention", "REQUEST_LOG_RETENTION_SCHEDULE", retention)
    timer("analyticsRollup", "ANALYTICS_ROLLUP_SCHEDULE", analytics_rollup)
    timer("alertsEvaluate", "ALERTS_SCHEDULE", alerts)
    return bp
