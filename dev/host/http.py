"""HTTP functions served as one ASGI app: the declared routes and methods, streaming responses untouched."""
from __future__ import annotations

import inspect
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger("localhost.http")
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}")
_ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})


@dataclass
class HttpRoute:
    name: str
    template: str
    methods: frozenset[str]
    regex: re.Pattern[str]
    arg_name: str
    func: Any
    literal_segments: int

    def specificity(self) -> tuple[int, int]:
        # Literal segments beat parameters, like ASP.NET routing; then longer templates first.
        return (-self.literal_segments, -len(self.template))


def compile_template(prefix: str, route: str) -> tuple[re.Pattern[str], int]:
    """Azure route template → regex. `{id}`, `{id:int}`, `{id?}`, `{*rest}`."""
    full = "/".join(p for p in (prefix.strip("/"), route.strip("/")) if p)
    out, literals = "^", 0
    for seg in full.split("/") if full else []:
        m = _PARAM.fullmatch(seg)
        if m is None:
            out += "/" + re.escape(seg)
            literals += 1
            continue
        star, name, constraint, optional = m.groups()
        body = ".*" if star else (r"-?\d+" if constraint in ("int", "long") else "[^/]+")
        piece = f"/(?P<{name}>{body})"
        out += f"(?:{piece})?" if optional or star else piece
    return re.compile(out + "/?$"), literals


def build_routes(functions: list[Any], prefix: str) -> list[HttpRoute]:
    routes = []
    for fn in functions:
        trigger = fn.get_trigger().get_dict_repr()
        route = trigger.get("route") or fn.get_function_name()  # reserved routes: refused in validation.py
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.get("methods") or [])) \
            or _ALL_METHODS
        regex, literals = compile_template(prefix, route)
        routes.append(HttpRoute(fn.get_function_name(), route, methods, regex, trigger["name"],
                                fn.get_user_function(), literals))
    return sorted(routes, key=HttpRoute.specificity)


class HttpDispatcher:
    def __init__(self, routes: list[HttpRoute]) -> None:
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        for route in self.routes:
            m = route.regex.match(path)
            if m is None or method not in route.methods:
                continue
            scope["path_params"] = {k: v for k, v in m.groupdict().items() if v is not None}
            response = await self._invoke(route, Request(scope, receive))
            await response(scope, receive, send)
            return
        # Like the Functions host: no function for this path and method is a 404.
        await JSONResponse({"error": {"code": "not_found", "message": f"No function serves {method} {path}."}},
                           404)(scope, receive, send)

    async def _invoke(self, route: HttpRoute, request: Request) -> Response:
        try:
            if inspect.iscoroutinefunction(route.func):
                result = await route.func(**{route.arg_name: request})
            else:
                result = await run_in_threadpool(route.func, **{route.arg_name: request})
        except Exception:
            log.exception("function %s failed", route.name)
            return Response(status_code=500)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        if isinstance(result, (dict, list)):
            return Response(json.dumps(result), media_type="application/json")
        return PlainTextResponse(str(result))
