"""The checks the Azure Functions host applies to indexed functions, with the host's own wording, so that nothing
starts locally that Azure would refuse.

Sources (read, not guessed): azure-functions-host `WorkerFunctionMetadataProvider.ValidateMetadata`,
`Utility.ValidateName` / `ValidateBinding` (name regexes), `ScriptHost.ValidateHttpFunction` /
`HttpRoutesConflict`; azure-webjobs-sdk-extensions `TimerSchedule.Create`; NCrontab `CrontabFieldImpl` (ranges).
The host puts such a function "in error" and starts without it (its URL answers 404 in Azure); the local host
refuses to start instead, listing every error the way the host logs them, so the mistake cannot go unnoticed.

One refusal has no host wording: Azure documents TimeSpan timer schedules ("hh:mm:ss") as supported only on App
Service plans, so on Flex Consumption (this app's plan) and Consumption they are refused. The plan comes from
`WEBSITE_SKU` (Azure sets it; "FlexConsumption" on Flex); unset locally means Flex, the plan infra/ deploys.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from .ncrontab import Schedule, ScheduleError, expand_settings

log = logging.getLogger("localhost")

# Utility.cs: FunctionNameValidationRegex / BindingNameValidationRegex ("$return" is the return-value binding).
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$(?<!^host$)", re.IGNORECASE)
_BINDING_NAME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$")
_RESERVED_ROUTE_PREFIXES = ("admin", "runtime")  # ValidateHttpFunction: StartsWith on the trimmed, lowered route
_TIMESPAN_PLANS_REFUSED = {"flexconsumption", "dynamic"}  # WEBSITE_SKU values of Flex Consumption / Consumption
DEFAULT_SKU = "FlexConsumption"

INVALID_NAME = "'{0}' is not a valid function name."
INVALID_BINDING = "The binding name {0} is invalid. Please assign a valid name to the binding."
DUPLICATE_BINDING = "Multiple bindings with name '{0}' discovered. Binding names must be unique."
NO_BINDING = "At least one binding must be declared."
RESERVED_ROUTE = "The specified route conflicts with one or more built in routes."
ROUTE_CONFLICT = "The route specified conflicts with the route defined by function '{0}'."
DUPLICATE_NAME = "The function or proxy name '{0}' must be unique within the function app."
BAD_SCHEDULE = "The schedule expression '{0}' was not recognized as a valid cron expression or timespan string."
TIMESPAN_ON_CONSUMPTION = ("The schedule expression '{0}' is a TimeSpan, which Azure Functions supports only on App "
                           "Service plans, not on WEBSITE_SKU '{1}' (see docs/developer-guide.md). Use an NCRONTAB "
                           "expression such as '0 */5 * * * *'.")


class FunctionsInError(ValueError):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {name}: {message}" for name, message in errors)
        super().__init__(f"The following {len(errors)} functions are in error:\n{lines}")


def validate_functions(functions: Iterable[Any], env: dict[str, str]) -> None:
    """Raise FunctionsInError listing every function the Functions host would refuse."""
    errors: list[tuple[str, str]] = []
    http: dict[str, tuple[str, frozenset[str]]] = {}  # name → (route, methods); empty methods = all
    sku = env.get("WEBSITE_SKU") or DEFAULT_SKU
    for fn in functions:
        name = fn.get_function_name()
        try:
            _check_metadata(fn)
            trigger = fn.get_trigger().get_dict_repr()
            if trigger["type"] == "httpTrigger":
                _check_http(name, trigger, http)
            elif trigger["type"] == "timerTrigger":
                _check_timer(trigger, env, sku)
        except ValueError as exc:
            errors.append((name, str(exc)))
    if errors:
        raise FunctionsInError(errors)


def _check_metadata(fn: Any) -> None:
    name = fn.get_function_name()
    if not _FUNCTION_NAME.match(name):
        raise ValueError(INVALID_NAME.format(name))
    seen: set[str] = set()
    bindings = [b.get_dict_repr() for b in fn.get_bindings()]
    for binding in bindings:
        bname = binding.get("name")
        if not isinstance(bname, str) or not _BINDING_NAME.match(bname):
            raise ValueError(INVALID_BINDING.format(bname))
        if bname.lower() in seen:
            raise ValueError(DUPLICATE_BINDING.format(bname))
        seen.add(bname.lower())
    if not bindings:
        raise ValueError(NO_BINDING)


def _methods(trigger: dict[str, Any]) -> frozenset[str]:
    return frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.get("methods") or []))


def _check_http(name: str, trigger: dict[str, Any], http: dict[str, tuple[str, frozenset[str]]]) -> None:
    route = (trigger.get("route") or name).strip("/")
    if route.lower().startswith(_RESERVED_ROUTE_PREFIXES):
        raise ValueError(RESERVED_ROUTE)
    methods = _methods(trigger)
    for other, (other_route, other_methods) in http.items():
        # HttpRoutesConflict: the same template (case-insensitive) and intersecting methods (none = all)
        if other_route.lower() == route.lower() and (not methods or not other_methods or methods & other_methods):
            raise ValueError(ROUTE_CONFLICT.format(other))
    if name in http:
        raise ValueError(DUPLICATE_NAME.format(name))
    http[name] = (route, methods)


def _check_timer(trigger: dict[str, Any], env: dict[str, str], sku: str) -> None:
    expression = expand_settings(trigger["schedule"], env)
    try:
        schedule = Schedule.parse(expression)
    except ScheduleError as exc:
        raise ValueError(f"{BAD_SCHEDULE.format(expression)} ({exc})") from None
    if schedule.interval is not None:
        if sku.lower() in _TIMESPAN_PLANS_REFUSED:
            raise ValueError(TIMESPAN_ON_CONSUMPTION.format(expression, sku))
        log.warning("timer schedule '%s' is a TimeSpan: allowed because WEBSITE_SKU is '%s', but this app deploys "
                    "to Flex Consumption, where Azure does not support it", expression, sku)
