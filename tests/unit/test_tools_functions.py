"""The tools pillar's queue and timer functions: bindings from settings, and refusal while misconfigured."""
from __future__ import annotations

import json

import pytest

from function_app import build_app
from shared.config import Settings, load_settings
from shared.errors import ConfigurationError


def _background(app):
    return {f.get_function_name(): f for f in app.get_functions()
            if f.get_trigger().get_dict_repr()["type"] != "httpTrigger"}


def test_queue_and_timer_bindings_read_settings():
    fns = {n: f for n, f in _background(build_app(Settings())).items() if n.startswith("tools")}
    assert set(fns) == {"toolsprobesubmission", "toolspoisonsubmission", "toolspinningcheck"}
    bindings = {n: json.loads(f.get_function_json())["bindings"][0] for n, f in fns.items()}
    assert bindings["toolsprobesubmission"]["queueName"] == "%TOOLS_APPROVALS_QUEUE%"
    assert bindings["toolspoisonsubmission"]["queueName"] == "%TOOLS_APPROVALS_QUEUE%-poison"
    assert bindings["toolsprobesubmission"]["connection"] == "AzureWebJobsStorage"
    assert bindings["toolspinningcheck"]["schedule"] == "%TOOLS_PINNING_SCHEDULE%"


async def test_background_functions_refuse_while_misconfigured(monkeypatch):
    monkeypatch.setenv("FLAG_CACHE_TTL_SECONDS", "nope")
    settings, problems = load_settings()
    fns = _background(build_app(settings, problems=problems))
    with pytest.raises(ConfigurationError):
        await fns["toolspinningcheck"].get_user_function()(None)
    with pytest.raises(ConfigurationError):
        await fns["toolsprobesubmission"].get_user_function()(None)
