from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dev.host.config import HostConfig, load_local_settings, parse_timespan
from dev.host.http import compile_template
from dev.host.ncrontab import Schedule, ScheduleError, expand_settings
from dev.host.validation import FunctionsInError, validate_functions
from shared.config import Settings

T0 = datetime(2026, 11, 26, 6, 59, 58, tzinfo=timezone.utc)  # a Thursday


@pytest.mark.parametrize("expr,expected", [
    ("*/5 * * * * *", datetime(2026, 11, 26, 7, 0, 0, tzinfo=timezone.utc)),
    ("0 */5 * * * *", datetime(2026, 11, 26, 7, 0, 0, tzinfo=timezone.utc)),
    ("0 30 9 * * MON-FRI", datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)),
    ("0 30 9 * * SAT", datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)),
    ("0 0 0 1 JAN *", datetime(2027, 1, 1, tzinfo=timezone.utc)),
    ("0 0 12 29 2 *", datetime(2028, 2, 29, 12, tzinfo=timezone.utc)),
    ("10,20 * * * * *", datetime(2026, 11, 26, 7, 0, 10, tzinfo=timezone.utc)),
    ("0 0 0 * * 0", datetime(2026, 11, 29, tzinfo=timezone.utc)),  # Sunday is 0 (only)
    ("0 0 0 * * SUN", datetime(2026, 11, 29, tzinfo=timezone.utc)),
    ("00:00:10", T0 + timedelta(seconds=10)),
    ("*/5 * * * *", datetime(2026, 11, 26, 7, 0, 0, tzinfo=timezone.utc)),  # five fields: at second 0, as Azure
    ("30 9 * * MON-FRI", datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)),
])
def test_next_occurrence(expr: str, expected: datetime):
    assert Schedule.parse(expr).next_after(T0) == expected


@pytest.mark.parametrize("bad", ["* * * *", "* * * * * * *", "61 * * * * *", "* * * * 13 *", "*/0 * * * * *", "5-1 * * * * *",
                                 "0 0 0 31 2 *", "00:00:00"])
def test_bad_schedules(bad: str):
    with pytest.raises(ScheduleError):
        Schedule.parse(bad).next_after(T0)


def test_day_of_week_7_is_refused_like_ncrontab():
    # NCrontab (the Functions timer's parser) has day-of-week 0-6; some Unix crons accept 7 for Sunday, Azure not.
    with pytest.raises(ScheduleError, match=r"^7 is higher than the maximum allowable value for the \[DayOfWeek\] "
                                            r"field\. Value must be between 0 and 6 \(all inclusive\)\.$"):
        Schedule.parse("0 0 0 * * 7")
    with pytest.raises(ScheduleError, match="DayOfWeek"):
        Schedule.parse("0 0 0 * * 5-7")


def test_setting_expansion():
    assert expand_settings("%A% and %B%", {"A": "1", "B": "2"}) == "1 and 2"
    with pytest.raises(ScheduleError, match="MISSING"):
        expand_settings("%MISSING%", {})


def test_local_settings_and_host_json(tmp_path: Path):
    (tmp_path / "local.settings.json").write_text('{"Values": {"A": "from-file", "B": "from-file"}}')
    env = {"B": "from-env"}
    load_local_settings(tmp_path / "local.settings.json", env)
    assert env == {"A": "from-file", "B": "from-env"}  # the environment wins, like Core Tools
    (tmp_path / "host.json").write_text('{"extensions": {"http": {"routePrefix": ""}, "queues": '
                                        '{"messageEncoding": "none", "maxDequeueCount": 2}}}')
    cfg = HostConfig.load(tmp_path / "host.json")
    assert cfg.route_prefix == "" and cfg.queues.message_encoding == "none" and cfg.queues.max_dequeue_count == 2
    assert parse_timespan("00:00:00.500") == timedelta(milliseconds=500)
    (tmp_path / "host.json").write_text('{"extensions": {"queues": {"messageEncoding": "utf8"}}}')
    with pytest.raises(ValueError, match="messageEncoding"):
        HostConfig.load(tmp_path / "host.json")


def test_app_settings_override_host_json_as_in_azure(tmp_path: Path):
    (tmp_path / "host.json").write_text('{"extensions": {"queues": {"maxPollingInterval": "00:00:02", '
                                        '"batchSize": 4}}}')
    env = {"AzureFunctionsJobHost__extensions__Queues__maxPollingInterval": "00:01:00",
           "AzureFunctionsJobHost__extensions__http__routePrefix": "gw", "AzureFunctionsJobHost__": "ignored"}
    cfg = HostConfig.load(tmp_path / "host.json", env)
    assert cfg.queues.max_polling_interval == timedelta(minutes=1)  # keys match case-insensitively
    assert cfg.queues.batch_size == 4 and cfg.route_prefix == "gw"  # the rest of host.json stands
    assert HostConfig.load(tmp_path / "host.json").queues.max_polling_interval == timedelta(seconds=2)


def test_route_templates():
    rx, literals = compile_template("", "manage/projects/{project}/keys/{key:int}")
    assert rx.match("/manage/projects/a/keys/12").groupdict() == {"project": "a", "key": "12"}
    assert rx.match("/manage/projects/a/keys/x") is None and literals == 3
    rx, _ = compile_template("api", "files/{*rest}")
    assert rx.match("/api/files/a/b/c").group("rest") == "a/b/c"
    rx, _ = compile_template("api", "items/{id?}")
    assert rx.match("/api/items") and rx.match("/api/items/3").group("id") == "3"


def test_settings_treat_unresolved_key_vault_references_as_missing(monkeypatch):
    monkeypatch.setenv("GATEWAY_KEY_HASH_SECRET", "@Microsoft.KeyVault(SecretUri=https://kv/secrets/x)")
    monkeypatch.setenv("FLAG_CACHE_TTL_SECONDS", "")
    s = Settings()
    assert s.key_hash_secret is None and s.flag_cache_ttl_seconds == 5.0
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "acct")
    assert Settings().table_endpoint == "https://acct.table.core.windows.net"


# ---- the local host refuses what the Functions host refuses, in its words (dev/host/validation.py)

def _app(*define):
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for d in define:
        d(app)
    return app


def _http(route, name="fn", methods=("GET",), arg="req"):
    def define(app):
        async def handler(**kwargs):
            return None

        handler.__name__ = name
        handler.__signature__ = inspect.Signature([inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY)])
        decorated = app.route(route=route, methods=list(methods), trigger_arg_name=arg)(handler)
        return decorated
    return define


def _timer(schedule, name="tick"):
    def define(app):
        def handler(timer):
            return None

        handler.__name__ = name
        app.timer_trigger(schedule=schedule, arg_name="timer")(handler)
    return define


def _errors(app, env=None) -> list[tuple[str, str]]:
    with pytest.raises(FunctionsInError) as caught:
        validate_functions(app.get_functions(), env or {})
    return caught.value.errors


RESERVED = "The specified route conflicts with one or more built in routes."


@pytest.mark.parametrize("route", ["admin", "admin/foo", "administration/report", "/Admin/x", "runtime",
                                   "runtime/webhooks/x", "runtimeinfo"])
def test_routes_starting_with_admin_or_runtime_are_refused(route):
    assert _errors(_app(_http(route))) == [("fn", RESERVED)]


def test_a_route_defaults_to_the_function_name_and_is_checked_as_such():
    assert _errors(_app(_http(None, name="admin_report"))) == [("admin_report", RESERVED)]
    validate_functions(_app(_http("reports/admin"), _http("my-runtime", name="other")).get_functions(), {})


@pytest.mark.parametrize("arg", ["http_req", "_req", "req2_", "r" * 129])
def test_binding_names_outside_the_hosts_pattern_are_refused(arg):
    assert _errors(_app(_http("things", arg=arg))) == [
        ("fn", f"The binding name {arg} is invalid. Please assign a valid name to the binding.")]


def test_two_functions_with_the_same_route_and_a_common_method_conflict():
    app = _app(_http("items", name="first", methods=("GET",)), _http("Items/", name="second", methods=("POST", "GET")))
    assert _errors(app) == [("second", "The route specified conflicts with the route defined by function 'first'.")]
    # same route, disjoint methods: allowed, as in the host
    validate_functions(_app(_http("items", name="a", methods=("GET",)),
                            _http("items", name="b", methods=("POST",))).get_functions(), {})


def test_an_unknown_day_of_week_is_refused_with_the_timer_extensions_message():
    [(name, message)] = _errors(_app(_timer("0 0 0 * * 7")))
    assert name == "tick" and message.startswith(
        "The schedule expression '0 0 0 * * 7' was not recognized as a valid cron expression or timespan string.")
    assert "[DayOfWeek]" in message


def test_timespan_schedules_are_refused_on_flex_consumption_and_allowed_on_app_service(caplog):
    def app():  # get_functions() may be called once per app, as the worker does
        return _app(_timer("%EVERY%"))

    [(_, message)] = _errors(app(), {"EVERY": "00:05:00"})  # no WEBSITE_SKU: this app's plan, Flex Consumption
    assert "TimeSpan" in message and "'FlexConsumption'" in message
    [(_, message)] = _errors(app(), {"EVERY": "00:05:00", "WEBSITE_SKU": "Dynamic"})
    assert "'Dynamic'" in message
    validate_functions(app().get_functions(), {"EVERY": "00:05:00", "WEBSITE_SKU": "Dedicated"})  # App Service
    assert "does not support it" in caplog.text  # still warned: this app deploys to Flex


def test_every_error_is_listed_like_the_host_logs_them():
    app = _app(_http("admin"), _http("x", name="second", arg="a_b"), _timer("0 0 0 * * 8"))
    with pytest.raises(FunctionsInError, match=r"^The following 3 functions are in error:\n  fn: The specified"):
        validate_functions(app.get_functions(), {})


def test_the_gateway_passes_every_check():
    import json

    import function_app
    from tests.conformance.conftest import bicep_literal_settings

    # %SETTING% bindings (timer schedules, queue names) resolve against the app settings the Bicep deploys.
    validate_functions(function_app.app.get_functions(), bicep_literal_settings())
