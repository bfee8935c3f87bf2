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
    is_async: bool = False  # decided once per function, not per request
    first: str | None = None  # the template's first segment after the prefix when literal, else None

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.func)

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
        head = route.strip("/").split("/", 1)[0]
        routes.append(HttpRoute(fn.get_function_name(), route, methods, regex, trigger["name"],
                                fn.get_user_function(), literals,
                                first=head if head and _PARAM.fullmatch(head) is None else None))
    return sorted(routes, key=HttpRoute.specificity)


class RouteIndex:
    """Which routes can serve a (method, path), in the host's order (most specific first), built once per app.

    A route whose first segment after the prefix is literal can only match a path with that very segment there
    (segments are split on '/', and a literal never spans one); every other route (a parameter or catch-all
    first, or no segment at all) is a candidate for every path. So a request tries only its own bucket merged with
    those, instead of every route's regex in turn (~120 regex matches per models call before, issue 13)."""

    def __init__(self, routes: list[HttpRoute], prefix: str) -> None:
        self._skip = len([p for p in prefix.strip("/").split("/") if p]) + 1  # '' before the first '/', prefix
        order = {id(r): i for i, r in enumerate(routes)}
        wild = [r for r in routes if r.first is None]
        heads = {r.first for r in routes if r.first is not None}
        by_head = {h: sorted([r for r in routes if r.first == h] + wild, key=lambda r: order[id(r)]) for h in heads}
        methods = set().union(*(r.methods for r in routes)) if routes else set()
        self._wild = {m: [r for r in wild if m in r.methods] for m in methods}
        self._by = {(m, h): [r for r in rs if m in r.methods] for h, rs in by_head.items() for m in methods}

    def candidates(self, method: str, path: str) -> list[HttpRoute]:
        parts = path.split("/", self._skip + 1)
        head = parts[self._skip] if len(parts) > self._skip else None
        found = self._by.get((method, head)) if head is not None else None
        return found if found is not None else self._wild.get(method, [])


class HttpDispatcher:
    def __init__(self, routes: list[HttpRoute], prefix: str = "api") -> None:
        self.routes = routes
        self._index = RouteIndex(routes, prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        for route in self._index.candidates(method, path):
            m = route.regex.match(path)
            if m is None:
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
            if route.is_async:
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
