"""Timer functions on their NCRONTAB schedules, with `run_on_startup` and the past-due flag.

Like the Functions host (`useMonitor`), the schedule status (last/next occurrence) is kept in blob storage
(`azure-webjobs-hosts/timers/<host>/<function>/status`), so an occurrence missed while the host was down runs once
at start-up with `past_due=True`.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.functions.timer import TimerRequest
from azure.storage.blob.aio import BlobServiceClient

from .ncrontab import Schedule, expand_settings

log = logging.getLogger("localhost.timer")
_LATE = timedelta(seconds=1)  # an invocation this much after its occurrence counts as past due


@dataclass
class TimerFunction:
    name: str
    schedule: Schedule
    run_on_startup: bool
    use_monitor: bool
    arg_name: str
    func: Any

    @classmethod
    def of(cls, fn: Any, env: dict[str, str]) -> "TimerFunction":
        t = fn.get_trigger().get_dict_repr()
        schedule = Schedule.parse(expand_settings(t["schedule"], env))
        return cls(fn.get_function_name(), schedule, bool(t.get("runOnStartup")),
                   t.get("useMonitor", True) is not False, t["name"], fn.get_user_function())


class StatusStore:
    """Schedule status blobs; None store (no storage configured) keeps status in memory only."""

    def __init__(self, blobs: BlobServiceClient | None, host_id: str) -> None:
        self._blobs = blobs
        self._host = host_id

    def _blob(self, name: str) -> Any:
        assert self._blobs is not None
        return self._blobs.get_blob_client("azure-webjobs-hosts", f"timers/{self._host}/{name}/status")

    async def read(self, name: str) -> dict[str, str] | None:
        if self._blobs is None:
            return None
        try:
            data = await (await self._blob(name).download_blob()).readall()
            return json.loads(data)
        except Exception:  # noqa: BLE001 - no status yet (or unreadable): behave as a first run
            return None

    async def write(self, name: str, status: dict[str, str]) -> None:
        if self._blobs is None:
            return
        try:
            await self._blobs.get_container_client("azure-webjobs-hosts").create_container()
        except Exception:  # noqa: BLE001 - already exists
            pass
        await self._blob(name).upload_blob(json.dumps(status), overwrite=True)


def _iso(d: datetime) -> str:
    return d.isoformat()


async def _invoke(t: TimerFunction, past_due: bool, status: dict[str, str] | None) -> None:
    req = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
    try:
        result = t.func(**{t.arg_name: req})
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("timer function %s failed", t.name)


async def run_timer(t: TimerFunction, store: StatusStore, now=lambda: datetime.now(timezone.utc)) -> None:
    status = await store.read(t.name) if t.use_monitor else None
    start = now()
    last = datetime.fromisoformat(status["Last"]) if status and status.get("Last") else None
    missed = status is not None and status.get("Next") and datetime.fromisoformat(status["Next"]) <= start
    if missed or t.run_on_startup:
        log.info("timer %s: %s", t.name, "past due, running now" if missed else "run on startup")
        await _invoke(t, bool(missed), status)
        last = start
    while True:
        occurrence = t.schedule.next_after(max(now(), last) if last else now())
        status = {"Last": _iso(last) if last else "", "Next": _iso(occurrence), "LastUpdated": _iso(now())}
        if t.use_monitor:
            await store.write(t.name, status)
        await asyncio.sleep(max(0.0, (occurrence - now()).total_seconds()))
        late = now() - occurrence > _LATE
        await _invoke(t, late, status)
        last = occurrence
