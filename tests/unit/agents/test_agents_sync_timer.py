"""The sync timer functions: thin adapters that pass the host's past-due flag on and never raise into the host."""
from __future__ import annotations


import azure.functions as func
from azure.functions.timer import TimerRequest

from functions import agents_sync
from shared.config import SettingProblem


class Pillar:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail = fail

    async def sync(self, cloud: str, *, past_due: bool = False):
        self.calls.append((cloud, past_due))
        if self.fail:
            raise RuntimeError("registry down")
        return []


def timers(pillar: Pillar, problems=()) -> dict:
    app = func.FunctionApp()
    app.register_functions(agents_sync.build(lambda: pillar, problems))
    return {f.get_function_name(): f for f in app.get_functions()}


async def test_each_cloud_has_its_timer_on_a_setting_schedule_and_past_due_is_passed_on():
    pillar = Pillar()
    fns = timers(pillar)
    assert {n: f.get_trigger().get_dict_repr()["schedule"] for n, f in fns.items()} == {
        "agentsSyncBedrock": "%AGENTS_SYNC_BEDROCK_SCHEDULE%", "agentsSyncVertex": "%AGENTS_SYNC_VERTEX_SCHEDULE%"}
    await fns["agentsSyncBedrock"].get_user_function()(TimerRequest(past_due=True))
    await fns["agentsSyncVertex"].get_user_function()(TimerRequest(past_due=False))
    assert pillar.calls == [("bedrock", True), ("vertex", False)]


async def test_a_failure_is_logged_not_raised_and_a_misconfigured_app_runs_nothing(caplog):
    await timers(Pillar(fail=True))["agentsSyncVertex"].get_user_function()(TimerRequest())
    assert "could not run" in caplog.text
    pillar = Pillar()
    await timers(pillar, [SettingProblem("FLAG_CACHE_TTL_SECONDS", "bad")])["agentsSyncVertex"].get_user_function()(
        TimerRequest())
    assert pillar.calls == [] and "configuration_error" in caplog.text


async def test_an_occurrence_missed_during_downtime_runs_once_at_start_up_and_is_recorded_past_due(monkeypatch):
    """The local host's useMonitor semantics (dev/host/timers.py) driving the real timer function and pillar."""
    import asyncio
    import json
    from datetime import datetime, timedelta, timezone

    from dev.host.timers import StatusStore, TimerFunction, run_timer
    from shared.config import Settings
    from shared.domain.projects import Project
    from shared.egress import EgressPolicy
    from shared.pillars.agents.pillar import AgentsPillar
    from shared.pillars.agents.sync.engine import Listing
    from shared.storage.memory import MemoryDocumentStore
    from shared.storage.repository import Repository

    monkeypatch.setenv("AGENTS_SYNC_CONNECTIONS", json.dumps([{
        "name": "gcp", "cloud": "vertex", "project": "acme", "gcp_project": "acme-prod", "location": "us-central1"}]))
    store = MemoryDocumentStore()
    projects = Repository(store, Project)
    await projects.create(Project(id="acme", name="Acme"))
    pillar = AgentsPillar(Settings(), store, EgressPolicy(), None,  # type: ignore[arg-type]
                          project_exists=lambda pid: projects.get(pid, pid))

    class Empty:
        cloud = "vertex"

        async def list_agents(self) -> Listing:
            return Listing([])

    monkeypatch.setattr(pillar, "catalog", lambda conn: Empty())
    fn = timers(pillar)["agentsSyncVertex"]  # type: ignore[arg-type]

    class Missed(StatusStore):  # the host was down across the occurrence it had scheduled
        async def read(self, name: str):
            then = datetime.now(timezone.utc) - timedelta(hours=1)
            return {"Last": (then - timedelta(minutes=15)).isoformat(), "Next": then.isoformat(), "LastUpdated": ""}

    t = TimerFunction.of(fn, {"AGENTS_SYNC_VERTEX_SCHEDULE": "0 0 0 1 1 *"})
    task = asyncio.create_task(run_timer(t, Missed(None, "test")))
    try:
        for _ in range(200):
            runs = (await pillar.repos.runs.list("acme")).items
            if runs:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert [(r.status, r.past_due, r.trigger) for r in runs] == [("succeeded", True, "timer")]
