"""`gateway.job.outcomes`: queue messages, sync runs and timers counted by outcome, through the real function
adapters (agents sync timers, tools approvals queue) and Services.job_outcome (telemetry on and off)."""
from __future__ import annotations

from types import SimpleNamespace

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from functions import agents_sync, tools_approvals
from shared.config import Settings
from shared.services import Services
from tests.unit.monitoring.test_telemetry import Otel


class Outcomes(list):
    def __call__(self, job: str, outcome: str) -> None:
        self.append((job, outcome))


def functions_of(bp) -> dict:
    app = func.FunctionApp()
    app.register_functions(bp)
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


class SyncPillar:
    def __init__(self, statuses=(), fail=False):
        self.statuses, self.fail = statuses, fail

    async def sync(self, cloud, *, past_due=False):
        if self.fail:
            raise RuntimeError("registry down")
        counts = SimpleNamespace(created=0, updated=0, retired=0, unchanged=0)
        return [SimpleNamespace(connection=f"c{i}", status=s, counts=counts, errors=[], duration_ms=1.0)
                for i, s in enumerate(self.statuses)]


async def test_each_sync_run_is_counted_by_status_and_a_run_that_cannot_start_as_error():
    seen = Outcomes()
    fns = functions_of(agents_sync.build(lambda: SyncPillar(["succeeded", "failed"]), outcome=seen))
    await fns["agentsSyncBedrock"](TimerRequest())
    fns = functions_of(agents_sync.build(lambda: SyncPillar(fail=True), outcome=seen))
    await fns["agentsSyncVertex"](TimerRequest())
    assert seen == [("agents_sync_bedrock", "succeeded"), ("agents_sync_bedrock", "failed"),
                    ("agents_sync_vertex", "error")]


class Message:
    id, dequeue_count = "m1", 1

    def get_body(self) -> bytes:
        return b"{}"


class Approvals:
    def __init__(self, results):
        self.results = list(results)

    async def process(self, body):
        r = self.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    async def poisoned(self, body):
        return "poisoned"


async def test_approval_queue_messages_are_counted_by_outcome_and_a_redelivery_as_retry():
    seen = Outcomes()
    tools = SimpleNamespace(approvals=Approvals(["probed", "auto_approved", OSError("cosmos down")]))
    fns = functions_of(tools_approvals.background(tools, outcome=seen))
    await fns["toolsprobesubmission"](Message())
    await fns["toolsprobesubmission"](Message())
    with pytest.raises(OSError):
        await fns["toolsprobesubmission"](Message())  # raised: the host redelivers it
    await fns["toolspoisonsubmission"](Message())
    assert seen == [("tools_approvals_queue", "probed"), ("tools_approvals_queue", "auto_approved"),
                    ("tools_approvals_queue", "retry"), ("tools_approvals_queue", "poison")]


def test_services_count_outcomes_only_with_telemetry_on():
    off = Services(Settings())
    off.job_outcome("alertsEvaluate", "ok")
    assert "telemetry" not in off.__dict__  # nothing built, nothing recorded
    on = Services(Settings(TELEMETRY_ENABLED=True))
    otel = Otel()
    on.__dict__["telemetry"] = otel.telemetry
    on.job_outcome("alertsEvaluate", "ok")
    on.job_outcome("alertsEvaluate", "ok")
    [point] = otel.metrics()["gateway.job.outcomes"]
    assert point.value == 2 and dict(point.attributes) == {"gateway.job": "alertsEvaluate", "gateway.outcome": "ok"}


async def test_pinning_runs_are_counted(monkeypatch):
    seen = Outcomes()
    found = [[], ["p1/gh__x"]]

    async def check_all(registry, prober, pinning):
        return SimpleNamespace(servers=2, quarantined=found.pop(0), unreachable=[])

    from shared.pillars.tools import pin_check  # imported by the timer on its first run (cold start)

    monkeypatch.setattr(pin_check, "check_all", check_all)
    tools = SimpleNamespace(registry=None, prober=None, pinning=None)
    fns = functions_of(tools_approvals.background(tools, outcome=seen))
    await fns["toolspinningcheck"](TimerRequest())
    await fns["toolspinningcheck"](TimerRequest())
    assert seen == [("tools_pinning", "ok"), ("tools_pinning", "quarantined")]
