"""What the Functions host checks on indexed functions before it runs any, as predicates over raw bindings.

Each returns None when the host would accept the value, else the reason. The conformance suite applies them to
whatever the pinned runtime indexes, so a timer or queue function added later is covered without a new test.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The host's own patterns for function and binding names (`$return` is the output binding of a return value).
FUNCTION_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_\-]{0,127}$")
BINDING_NAME = re.compile(r"^([a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$")
RESERVED_ROUTE_PREFIXES = ("admin", "runtime")  # the host owns /admin/* and /runtime/*

_NAMES = {"month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
          "dow": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}
# NCRONTAB with seconds: second minute hour day month day-of-week. Day-of-week is 0-6 (0 = Sunday); 7 is refused.
_FIELDS = [("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("dow", 0, 6)]
_SETTING_REF = re.compile(r"^%([^%]+)%$")


def function_name_error(name: str) -> str | None:
    return None if FUNCTION_NAME.match(name) else f"function name {name!r} is not a valid host function name"


def binding_name_error(name: str) -> str | None:
    return None if BINDING_NAME.match(name) else f"binding name {name!r} is invalid (letters and digits only)"


def route_error(route: str) -> str | None:
    first = route.strip("/").split("/")[0].lower()
    if any(first.startswith(p) for p in RESERVED_ROUTE_PREFIXES):
        return f"route {route!r} starts with a prefix the host reserves"
    return None


def _value(token: str, field: str) -> int:
    names = _NAMES.get(field)
    if names and token.upper() in names:
        return names.index(token.upper()) + (1 if field == "month" else 0)
    if not token.isdigit():
        raise ValueError(f"{token!r} is not a number")
    return int(token)


def _field_error(text: str, field: str, lo: int, hi: int) -> str | None:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"{field}: step {step!r} is not a positive number"
        if base == "*":
            continue
        try:
            bounds = [_value(b, field) for b in base.split("-", 1)]
        except ValueError as exc:
            return f"{field}: {exc}"
        if any(not lo <= b <= hi for b in bounds):
            return f"{field}: {base!r} is outside {lo}-{hi}"
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            return f"{field}: range {base!r} is reversed"
    return None


def schedule_error(schedule: str, settings: Mapping[str, str]) -> str | None:
    """An NCRONTAB timer schedule as the host accepts it on Flex Consumption (no TimeSpan form there)."""
    ref = _SETTING_REF.match(schedule.strip())
    if ref:
        if ref.group(1) not in settings:
            return f"schedule refers to app setting {ref.group(1)!r}, which is not set"
        schedule = settings[ref.group(1)]
    if re.match(r"^\d+(\.\d+)?:\d{2}(:\d{2})?$", schedule.strip()):
        return f"schedule {schedule!r} is a TimeSpan, which Flex Consumption does not support"
    parts = schedule.split()
    if len(parts) == 5:  # the host also takes the 5-field form (no seconds)
        parts = ["0", *parts]
    if len(parts) != 6:
        return f"schedule {schedule!r} has {len(parts)} fields, NCRONTAB needs 6 (or 5)"
    for text, (field, lo, hi) in zip(parts, _FIELDS, strict=True):
        if err := _field_error(text, field, lo, hi):
            return f"schedule {schedule!r}: {err}"
    return None


def connection_error(binding: Mapping[str, Any], settings: Mapping[str, str]) -> str | None:
    """A storage-queue binding's connection resolves to a setting: `NAME` (a connection string) or an
    identity-based `NAME__serviceUri` / `NAME__queueServiceUri` / `NAME__accountName`."""
    name = binding.get("connection") or "AzureWebJobsStorage"
    keys = (name, f"{name}__serviceUri", f"{name}__queueServiceUri", f"{name}__accountName")
    if any(settings.get(k) for k in keys):
        return None
    return f"queue binding {binding.get('name')!r}: connection {name!r} has no app setting ({', '.join(keys)})"


def trigger_errors(bindings: list[Mapping[str, Any]], settings: Mapping[str, str]) -> list[str]:
    errors = []
    for b in bindings:
        kind = str(b.get("type", ""))
        if kind == "timerTrigger":
            if err := schedule_error(str(b.get("schedule", "")), settings):
                errors.append(err)
        elif kind in ("queueTrigger", "queue"):
            if not b.get("queueName"):
                errors.append(f"queue binding {b.get('name')!r} names no queue")
            if err := connection_error(b, settings):
                errors.append(err)
    return errors
