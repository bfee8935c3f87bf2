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
    found = {n: f for n, f in timers(build_app(Settings())).items()
             if not n.startswith(("agentsSync", "tools"))}  # the agents and tools pillars have their own
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


def test_an_existing_local_settings_file_gains_the_new_schedules(tmp_path):
    import json
    from pathlib import Path

    from dev.run import ensure_local_settings

    sample = Path(__file__).parents[3] / "local.settings.sample.json"
    old = tmp_path / "local.settings.json"
    old.write_text(json.dumps({"Values": {"GATEWAY_ADMIN_KEY": "mine", "GATEWAY_KEY_HASH_SECRET": "pep",
                                          "FLAG_CACHE_TTL_SECONDS": "9"}}))
    values = ensure_local_settings(old, sample)
    assert values["ALERTS_SCHEDULE"] and values["ANALYTICS_ROLLUP_SCHEDULE"]
    assert (values["GATEWAY_ADMIN_KEY"], values["FLAG_CACHE_TTL_SECONDS"]) == ("mine", "9")  # kept
    assert json.loads(old.read_text())["Values"]["REQUEST_LOG_RETENTION_SCHEDULE"] == "0 17 3 * * *"
