"""The sync timer functions: thin adapters that pass the host's past-due flag on and never raise into the host."""
from __future__ import annotations

from types import SimpleNamespace

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
    app.register_functions(agents_sync.build(SimpleNamespace(agents=pillar), problems))  # type: ignore[arg-type]
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
