"""The host's acceptance rules the conformance suite applies to every indexed function (so a timer or queue
function added later is checked without a new test): each rule accepts what the host accepts and refuses the rest."""
from __future__ import annotations

import pytest

from tests.conformance import host_rules
from tests.conformance.conftest import bicep_literal_settings
from tests.conformance.host import route_pattern


@pytest.mark.parametrize("schedule", ["0 */5 * * * *", "*/5 * * * *", "0 0 9-17 * * MON-FRI", "0 30 2 1,15 * 0",
                                      "0 0 0 * JAN,JUL 6", "%SCHEDULE%"])
def test_valid_ncrontab_schedules_are_accepted(schedule: str) -> None:
    assert host_rules.schedule_error(schedule, {"SCHEDULE": "0 0 * * * *"}) is None


@pytest.mark.parametrize(("schedule", "reason"), [
    ("0 0 * * * 7", "dow: '7' is outside 0-6"),
    ("00:05:00", "TimeSpan"),
    ("0 0 * * *  * *", "7 fields"),
    ("60 * * * * *", "second: '60' is outside 0-59"),
    ("0 */0 * * * *", "step '0'"),
    ("0 0 5-2 * * *", "reversed"),
    ("0 0 * 0 * *", "day: '0' is outside 1-31"),
    ("%MISSING%", "'MISSING', which is not set"),
])
def test_invalid_schedules_are_refused_with_a_reason(schedule: str, reason: str) -> None:
    assert reason in (host_rules.schedule_error(schedule, {}) or "")


def test_queue_connections_resolve_to_a_setting_or_are_refused() -> None:
    binding = {"type": "queueTrigger", "name": "msg", "queueName": "work", "connection": "Jobs"}
    assert host_rules.trigger_errors([binding], {"Jobs__queueServiceUri": "https://a.queue.core.windows.net"}) == []
    assert host_rules.trigger_errors([binding], {"Jobs": "UseDevelopmentStorage=true"}) == []
    default = {"type": "queueTrigger", "name": "msg", "queueName": "work"}
    assert host_rules.trigger_errors([default], {"AzureWebJobsStorage__accountName": "acct"}) == []
    errors = host_rules.trigger_errors([binding, {"type": "queue", "name": "out"}], {})
    assert len(errors) == 3 and "'Jobs' has no app setting" in errors[0] and "names no queue" in errors[1]


def test_timer_bindings_are_checked_among_others() -> None:
    bindings = [{"type": "timerTrigger", "name": "timer", "schedule": "0 0 * * * 7"}, {"type": "httpTrigger"}]
    assert [e.split(":")[0] for e in host_rules.trigger_errors(bindings, {})] == ["schedule '0 0 * * * 7'"]


@pytest.mark.parametrize(("name", "ok"), [("req", True), ("$return", True), ("http_req", False), ("1req", False)])
def test_binding_names(name: str, ok: bool) -> None:
    assert (host_rules.binding_name_error(name) is None) is ok


@pytest.mark.parametrize(("name", "ok"), [("v1_chat_completions", True), ("a-b", True), ("_x", False),
                                          ("x" * 129, False)])
def test_function_names(name: str, ok: bool) -> None:
    assert (host_rules.function_name_error(name) is None) is ok


@pytest.mark.parametrize(("route", "ok"), [("manage/projects", True), ("admin/x", False), ("administrator", False),
                                           ("runtime/webhooks", False), ("v1/runtime", True)])
def test_reserved_route_prefixes(route: str, ok: bool) -> None:
    assert (host_rules.route_error(route) is None) is ok


def test_route_pattern_binds_one_segment_per_parameter() -> None:
    pattern = route_pattern("manage/projects/{project}/keys/{key}")
    assert pattern.match("/manage/projects/p1/keys/k1").groupdict() == {"project": "p1", "key": "k1"}
    assert pattern.match("/manage/projects/p1/x/keys/k1") is None


def test_bicep_literal_settings_are_read_and_references_skipped() -> None:
    settings = bicep_literal_settings()
    assert settings["FLAG_CACHE_TTL_SECONDS"] == "5" and "COSMOS_CREATE_IF_MISSING" in settings
    assert "GATEWAY_ADMIN_KEY" not in settings  # a Key Vault reference, not a literal
