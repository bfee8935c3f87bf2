"""The monitoring timers as the app declares them: NCRONTAB from settings, thin, refusing work when misconfigured."""
from __future__ import annotations

import asyncio
import logging

from azure.functions.timer import TimerRequest

from function_app import build_app
from shared.config import SettingProblem, Settings
from shared.services import Services
from shared.storage.memory import MemoryDocumentStore


def timers(app):
    return {f.get_function_name(): f for f in app.get_functions()
            if f.get_trigger().get_dict_repr()["type"] == "timerTrigger"}


def test_three_timers_on_setting_schedules():
    found = timers(build_app(Settings()))
    assert {n: f.get_trigger().get_dict_repr()["schedule"] for n, f in found.items()} == {
        "requestLogRetention": "%REQUEST_LOG_RETENTION_SCHEDULE%", "analyticsRollup": "%ANALYTICS_ROLLUP_SCHEDULE%",
        "alertsEvaluate": "%ALERTS_SCHEDULE%"}


def test_a_misconfigured_app_runs_no_job(caplog):
    services = Services(Settings(), store=MemoryDocumentStore())  # no storage: a job would fail if it ran
    app = build_app(Settings(), services, problems=[SettingProblem("ANALYTICS_ROLLUP_LOOKBACK_HOURS", "bad")])
    fn = timers(app)["analyticsRollup"].get_user_function()
    with caplog.at_level(logging.ERROR, "gateway.monitoring"):
        asyncio.run(fn(TimerRequest(past_due=False)))
    assert "analyticsRollup skipped" in caplog.text and "ANALYTICS_ROLLUP_LOOKBACK_HOURS" in caplog.text
