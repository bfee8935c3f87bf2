"""Declaring HTTP operations once: the Azure Functions route, the guard, the contracts, and the OpenAPI entry.

`ApiBlueprint.route` registers a v2-model HTTP function on a `func.Blueprint` (FastAPI request/response types from
`azurefunctions-extensions-http-fastapi`, so streaming works in Azure), wraps the handler with request ids,
authentication and the one error mapping, and records an `Endpoint` (what OpenAPI calls an operation) for the
OpenAPI document.
"""
# No `from __future__ import annotations` here: the Functions worker binds the HTTP extension by the *runtime*
# annotations of the generated function, which must be the real Request/Response classes, not strings.
import re
import time
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response
from pydantic import BaseModel
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse

from ..auth.principal import Principal
from ..errors import GatewayError, MethodNotAllowed, RouteNotFound
from .admission import AdmissionGate
from .after_send import AfterSend
from .inputs import header_dict, read_model
from .responses import error_response, json_response

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TEMPLATE_PARAM = re.compile(r"\{(\*?)[A-Za-z_][A-Za-z0-9_]*(?::[^}?]*)?\??\}")
FALLBACK_FUNCTION = "route_not_found"


def request_id_of(req: StarletteRequest) -> str:
    """The client's x-request-id when it is a safe token, else a fresh one (echoed on every response)."""
    incoming = header_dict(req).get("x-request-id", "")
    return incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()  # 128 random bits, no UUID object


class Guard(Protocol):
    """Authenticates and authorises a request, or raises a GatewayError (401/403/…)."""

    scheme: str  # OpenAPI security scheme name

    async def __call__(self, req: StarletteRequest) -> Principal: ...


@dataclass
class Call:
    req: StarletteRequest
    request_id: str
    principal: Principal | None
    body: Any = None
    started: float = 0.0  # perf_counter at arrival, for the gateway-overhead figure

    def path(self, name: str) -> str:
        return str(self.req.path_params[name])


Handler = Callable[[Call], Awaitable[StarletteResponse | BaseModel]]


@dataclass(frozen=True)
class Endpoint:
    """One HTTP endpoint as declared once (route, guard, contracts); OpenAPI calls it an operation."""

    name: str
    route: str
    methods: tuple[str, ...]
    summary: str
    tag: str
    guard_scheme: str | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    headers: tuple[tuple[str, str], ...] = ()
    media_type: str = "application/json"
    parse_body: bool = True


class ApiBlueprint:
    def __init__(self, tag: str, *, max_body_bytes: int) -> None:
        self.blueprint = func.Blueprint()
        self.tag = tag
        self.endpoints: list[Endpoint] = []
        self._max_body = max_body_bytes
        self.admission: AdmissionGate | None = None  # data-plane surfaces: set by `admit_through`

    def admit_through(self, gate: AdmissionGate) -> "ApiBlueprint":
        """Every operation of this surface passes `gate` first (read per call, so it may be set after routes)."""
        self.admission = gate
        return self

    def route(self, route: str, method: str, *, name: str, summary: str, guard: Guard | None,
              body: type[BaseModel] | None = None, response: type[BaseModel] | None = None, status: int = 200,
              query: tuple[tuple[str, str], ...] = (), headers: tuple[tuple[str, str], ...] = (),
              media_type: str = "application/json", parse_body: bool = True) -> Callable[[Handler], Handler]:
        """`parse_body=False`: `body` only documents the contract; the handler reads the raw body itself
        (pass-through proxies keep unknown fields byte-for-byte)."""
        op = Endpoint(name=name, route=route, methods=(method,), summary=summary, tag=self.tag,
                       guard_scheme=guard.scheme if guard else None, body=body, response=response, status=status,
                       query=query, headers=headers, media_type=media_type, parse_body=parse_body)

        def register(handler: Handler) -> Handler:
            self.endpoints.append(op)
            self._register(op, guard, handler)
            return handler

        return register

    def _register(self, op: Endpoint, guard: Guard | None, handler: Handler) -> None:
        max_body = self._max_body

        # The worker binds by annotation: the parameter must be the extension's Request type.
        # One coroutine per request (admission, after-send scope, guard, handler, the error mapping) rather than a
        # chain of three: every level of an await chain is passed through again each time the call resumes (an MCP
        # call resumes ~3 times), and on a request's cold caches each level costs a few µs.
        async def function(req: Request) -> Response:  # type: ignore[valid-type]
            started = time.perf_counter()
            request_id = request_id_of(req)
            gate = self.admission
            # Before authentication and before the body is read: a shed call takes nothing (docs/runbook.md).
            if gate is not None and not gate.try_enter():
                shed = await gate.wait()
                if shed is not None:
                    return gate.shed_response(shed, request_id)
            # Release-and-log work the pipeline defers runs after the response is written (after_send.py).
            after = AfterSend()
            after.open()
            try:
                try:
                    try:
                        principal = await guard(req) if guard else None
                        call = Call(req=req, request_id=request_id, principal=principal, started=started)
                        if op.body is not None and op.parse_body:
                            call.body = await read_model(req, op.body, max_body)
                        result = await handler(call)
                        if isinstance(result, BaseModel):
                            result = json_response(result, op.status)
                        result.headers.setdefault("x-request-id", request_id)
                    except Exception as exc:  # noqa: BLE001 - mapped in exactly one place
                        result = error_response(exc, request_id)
                except BaseException:
                    after.abandon()  # cancelled: nothing will be sent, the holds are released now
                    raise
                return after.close(result)
            finally:
                if gate is not None:
                    gate.leave()

        function.__name__ = function.__qualname__ = op.name
        routed = self.blueprint.route(route=op.route, methods=list(op.methods), auth_level=func.AuthLevel.ANONYMOUS)
        self.blueprint.function_name(op.name)(routed(function))


def route_pattern(route: str) -> re.Pattern[str]:
    """An Azure route template (`{x}`, `{x:int}`, `{x?}`, `{*rest}`) as a regex over the path without slashes
    around it (routePrefix is "")."""
    parts = []
    for seg in route.strip("/").split("/"):
        m = _TEMPLATE_PARAM.fullmatch(seg)
        parts.append(re.escape(seg) if m is None else (".*" if m.group(1) else "[^/]+"))
    return re.compile("/".join(parts))


def fallback_blueprint(endpoints: Callable[[], list[Endpoint]]) -> func.Blueprint:
    """One catch-all function for every path and method no operation serves, so those answer the gateway's error
    body too (code, message, type, details) instead of the host's bare 404: `405 method_not_allowed` with `Allow`
    when the path exists with other methods, else `404 route_not_found`. Azure and the local host both route the
    most specific template first, so `{*path}` only gets what nothing else matches. Not an OpenAPI operation."""
    blueprint = func.Blueprint()
    table: list[tuple[re.Pattern[str], tuple[str, ...]]] = []

    async def function(req: Request) -> Response:  # type: ignore[valid-type]
        if not table:
            table.extend((route_pattern(op.route), op.methods) for op in endpoints())
        path = req.url.path.strip("/")
        allowed = sorted({m for pattern, methods in table if pattern.fullmatch(path) for m in methods})
        error: GatewayError
        if allowed:
            error = MethodNotAllowed(f"{req.method} is not allowed on /{path}; use {', '.join(allowed)}.",
                                     headers={"allow": ", ".join(allowed)},
                                     details={"method": req.method, "allowed": allowed})
        else:
            error = RouteNotFound(f"No operation serves {req.method} /{path}; see /openapi.json.",
                                  details={"method": req.method, "path": "/" + path})
        return error_response(error, request_id_of(req))

    function.__name__ = function.__qualname__ = FALLBACK_FUNCTION
    routed = blueprint.route(route="{*path}", auth_level=func.AuthLevel.ANONYMOUS)
    blueprint.function_name(FALLBACK_FUNCTION)(routed(function))
    return blueprint
