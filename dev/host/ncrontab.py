"""NCRONTAB schedules as the Functions timer trigger reads them: six fields
`{second} {minute} {hour} {day} {month} {day-of-week}` (or five, without the seconds), with `*`, lists, ranges, steps and month/day names.
Ranges as NCrontab (the Functions timer's parser) has them: day-of-week is 0-6 (0 = Sunday; 7 is refused).
A TimeSpan (`hh:mm:ss`) is a fixed interval, as on App Service plans (dev/host/validation.py refuses it on
Flex Consumption)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# (name, lowest, highest, names)
_FIELDS = [("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day", 1, 31, {}),
           ("month", 1, 12, _MONTHS), ("day-of-week", 0, 6, _DAYS)]
_KINDS = {"second": "Second", "minute": "Minute", "hour": "Hour", "day": "Day", "month": "Month",
          "day-of-week": "DayOfWeek"}  # NCrontab's CrontabFieldKind names, used in its messages
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


class ScheduleError(ValueError):
    pass


def _value(token: str, lo: int, hi: int, names: dict[str, int], field: str) -> int:
    v = names.get(token.upper()) if not token.isdigit() else int(token)
    kind = _KINDS[field]
    if v is None:
        raise ScheduleError(f"'{token}' is not a valid [{kind}] crontab field value.")
    # NCrontab's own wording. Day-of-week is 0-6 there: unlike some Unix crons, 7 is NOT Sunday.
    if v > hi:
        raise ScheduleError(f"{v} is higher than the maximum allowable value for the [{kind}] field. "
                            f"Value must be between {lo} and {hi} (all inclusive).")
    if v < lo:
        raise ScheduleError(f"{v} is lower than the minimum allowable value for the [{kind}] field. "
                            f"Value must be between {lo} and {hi} (all inclusive).")
    return v


def _parse_field(text: str, field: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if step_s and (not step_s.isdigit() or step < 1):
            raise ScheduleError(f"{field}: bad step '{step_s}'")
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, lo, hi, names, field), _value(b, lo, hi, names, field)
        else:
            start = _value(base, lo, hi, names, field)
            end = hi if step_s else start
        if start > end:
            raise ScheduleError(f"{field}: range '{base}' runs backwards")
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Schedule:
    fields: tuple[frozenset[int], ...] | None = None
    interval: timedelta | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        text = text.strip()
        if m := _TIMESPAN.match(text):
            days, h, mi, s = (int(x) if x else 0 for x in m.groups())
            interval = timedelta(days=days, hours=h, minutes=mi, seconds=s)
            if interval <= timedelta(0):
                raise ScheduleError("a TimeSpan schedule must be positive")
            return cls(interval=interval, text=text)
        parts = text.split()
        if len(parts) == 5:  # the timer extension also takes five fields (CronSchedule.HasSeconds): second 0
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ScheduleError(f"'{text}': NCRONTAB needs six fields (second minute hour day month day-of-week), "
                                "or five without the seconds")
        return cls(fields=tuple(_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS)), text=text)

    def next_after(self, after: datetime) -> datetime:
        """The first occurrence strictly after `after` (same tzinfo)."""
        if self.interval is not None:
            return after + self.interval
        assert self.fields is not None
        sec, minute, hour, day, month, dow = self.fields
        t = after.replace(microsecond=0) + timedelta(seconds=1)
        limit = after + timedelta(days=366 * 5)
        while t <= limit:
            if t.month not in month:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            # cron semantics: when both day fields are restricted, either may match
            day_any, dow_any = len(day) == 31, len(dow) == 7
            dom_ok, dow_ok = t.day in day, (t.isoweekday() % 7) in dow
            if not ((dom_ok and dow_ok) if (day_any or dow_any) else (dom_ok or dow_ok)):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in hour:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in minute:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in sec:
                t += timedelta(seconds=1)
                continue
            return t
        raise ScheduleError(f"'{self.text}' never fires")


def expand_settings(text: str, env: dict[str, str]) -> str:
    """`%NAME%` → the app setting NAME, as the Functions host does for binding expressions."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise ScheduleError(f"app setting '{name}' (used as %{name}%) is not defined")
        return env[name]

    return re.sub(r"%([A-Za-z0-9_:.-]+)%", sub, text)
