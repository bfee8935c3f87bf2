"""Timer functions: the cross-cloud agent sync, one per cloud, each on its own NCRONTAB schedule from an app
setting. A thin adapter: the pillar runs every enabled connection of the cloud and records each run; a failure is
recorded on the run (and logged), never raised into the host (which would only retry the whole batch).

Past-due runs: the host keeps the schedule status (useMonitor) and, after downtime, runs a missed occurrence once
at start-up with `past_due` set; the run records that flag."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import azure.functions as func

from shared.config import SettingProblem

if TYPE_CHECKING:  # imported lazily: the pillar (and its cloud SDKs) load on first use
    from shared.pillars.agents.pillar import AgentsPillar

log = logging.getLogger("gateway.agents.sync")


def build(agents: Callable[[], AgentsPillar], problems: Sequence[SettingProblem] = (),
          outcome: Callable[[str, str], None] | None = None) -> func.Blueprint:
    """`agents`: the pillar, assembled on the first run (inside the worker's event loop); `outcome(job, result)`:
    the `gateway.job.outcomes` metric (one per connection run: its status; `error` when the run could not start)."""
    count = outcome if outcome is not None else (lambda job, result: None)
    bp = func.Blueprint()

    async def run(cloud: str, timer: func.TimerRequest) -> None:
        if problems:  # the app refuses work until its settings are fixed (docs/runbook.md); timers too
            log.error("agent sync (%s) skipped: configuration_error (%s)", cloud,
                      ", ".join(p.setting for p in problems))
            return
        try:
            runs = await agents().sync(cloud, past_due=bool(timer.past_due))
        except Exception:  # noqa: BLE001 - e.g. the registry is down: logged; the next occurrence tries again
            log.exception("agent sync (%s) could not run", cloud)
            count(f"agents_sync_{cloud}", "error")
            return
        for r in runs:
            count(f"agents_sync_{cloud}", str(r.status))
            log.info("agent sync %s/%s: %s created=%d updated=%d retired=%d unchanged=%d errors=%d (%.0f ms)",
                     cloud, r.connection, r.status, r.counts.created, r.counts.updated, r.counts.retired,
                     r.counts.unchanged, len(r.errors), r.duration_ms)

    @bp.function_name("agentsSyncBedrock")
    @bp.timer_trigger(arg_name="timer", schedule="%AGENTS_SYNC_BEDROCK_SCHEDULE%", run_on_startup=False,
                      use_monitor=True)
    async def sync_bedrock(timer: func.TimerRequest) -> None:
        await run("bedrock", timer)

    @bp.function_name("agentsSyncVertex")
    @bp.timer_trigger(arg_name="timer", schedule="%AGENTS_SYNC_VERTEX_SCHEDULE%", run_on_startup=False,
                      use_monitor=True)
    async def sync_vertex(timer: func.TimerRequest) -> None:
        await run("vertex", timer)

    return bp
