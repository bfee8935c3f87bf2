from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dev.host.config import HostConfig, load_local_settings, parse_timespan
from dev.host.http import compile_template
from dev.host.ncrontab import Schedule, ScheduleError, expand_settings
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
    ("0 0 0 * * 7", datetime(2026, 11, 29, tzinfo=timezone.utc)),  # 7 is Sunday too
    ("00:00:10", T0 + timedelta(seconds=10)),
])
def test_next_occurrence(expr: str, expected: datetime):
    assert Schedule.parse(expr).next_after(T0) == expected


@pytest.mark.parametrize("bad", ["* * * * *", "61 * * * * *", "* * * * 13 *", "*/0 * * * * *", "5-1 * * * * *",
                                 "0 0 0 31 2 *", "00:00:00"])
def test_bad_schedules(bad: str):
    with pytest.raises(ScheduleError):
        Schedule.parse(bad).next_after(T0)


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
