"""While an app setting is malformed, every operation is still declared — same function names, routes, methods and
bindings, so the app indexes exactly as it would when healthy — but each answers `503 configuration_error`
naming the setting(s). Operators see the problem on the first request and in `/readyz`, instead of an app with
zero functions (issue 7)."""
from __future__ import annotations

from collections.abc import Sequence

from ..config import SettingProblem
from ..errors import ConfigurationError
from .api import ApiBlueprint, Call


def configuration_error(problems: Sequence[SettingProblem]) -> ConfigurationError:
    names = ", ".join(p.setting for p in problems)
    return ConfigurationError(
        f"The gateway is misconfigured: app setting(s) {names} are invalid. Fix them and restart the app "
        "(docs/runbook.md, 'configuration_error').",
        details={"settings": [{"setting": p.setting, "reason": p.reason} for p in problems]})


def refusing(surface: ApiBlueprint, problems: Sequence[SettingProblem]) -> ApiBlueprint:
    """A blueprint declaring `surface`'s operations, each answering `configuration_error`."""
    out = ApiBlueprint(surface.tag, max_body_bytes=1)  # no body is ever read

    async def refuse(call: Call):
        raise configuration_error(problems)

    for op in surface.endpoints:
        [method] = op.methods  # ApiBlueprint declares one method per function
        out.route(op.route, method, name=op.name, summary=op.summary, guard=None, status=op.status,
                  media_type=op.media_type, parse_body=False)(refuse)
    return out
