"""Keep the Functions worker's internal HTTP app from answering for our routes.

In Azure (HTTP streaming), the Python worker (`azure_functions_runtime.http_v2.initialize_http_server`) builds the
web app of the imported HTTP extension — `azurefunctions.extensions.http.fastapi.web.WebApp`, whose `__init__` is
a bare `FastAPI()` — and adds ONE catch-all route that hands each request to the invocation the host started for
it. A bare `FastAPI()` also carries FastAPI's documentation routes (`/openapi.json`, `/docs`,
`/docs/oauth2-redirect`, `/redoc`), registered first, so they match first: `GET /openapi.json` got FastAPI's
"Catch All" schema while the host's invocation of our `openapi` function waited for a request that never came,
until `functionTimeout`.

The worker imports the app (indexing) *before* it builds that web app — it has to: only the import tells it which
extension is in use — so the composition root can adjust the extension's class first. There is no configuration
hook for it in extension 1.0.x, so this wraps the extension's own `WebApp.__init__` (keeping whatever it does) and
then removes exactly those four documentation routes. If the extension's shape ever changes, this logs an error
and changes nothing; `/spec/openapi.json` (a path FastAPI never claims) keeps serving the document either way, and
tests drive the worker's own construction of the app (tests/unit/test_function_app.py).
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("gateway.worker_http")

# FastAPI(openapi_url="/openapi.json", docs_url="/docs", redoc_url="/redoc",
#         swagger_ui_oauth2_redirect_url="/docs/oauth2-redirect") — its defaults.
FASTAPI_DEFAULT_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_MARK = "_gateway_default_routes_removed"


def strip_default_routes(web_app: Any) -> list[str]:
    """Remove FastAPI's documentation routes from `web_app`; returns the paths removed."""
    from fastapi.routing import APIRoute

    kept, removed = [], []
    for route in web_app.router.routes:
        # FastAPI adds its documentation endpoints as plain Starlette routes; an APIRoute is someone's endpoint.
        if getattr(route, "path", None) in FASTAPI_DEFAULT_PATHS and not isinstance(route, APIRoute):
            removed.append(route.path)
        else:
            kept.append(route)
    web_app.router.routes[:] = kept
    # So that nothing (e.g. a later `setup()`) re-adds them.
    web_app.openapi_url = web_app.docs_url = web_app.redoc_url = web_app.swagger_ui_oauth2_redirect_url = None
    return removed


def free_worker_routes() -> bool:
    """Make every web app the HTTP extension builds from now on free of FastAPI's documentation routes.
    Idempotent. Returns whether the adjustment is in place."""
    try:
        from azurefunctions.extensions.http.fastapi import web
    except ImportError:  # no streaming extension installed: the worker builds no internal app
        return False
    cls = web.WebApp
    if getattr(cls, _MARK, False):
        return True
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            strip_default_routes(self.get_app())
        except Exception:  # noqa: BLE001 - never break the worker's start-up over this; say so loudly
            log.exception("could not remove FastAPI's default routes from the worker's HTTP app: GET /openapi.json "
                          "and /docs may not reach their functions; use /spec/openapi.json")

    cls.__init__ = __init__  # type: ignore[method-assign]
    setattr(cls, _MARK, True)
    return True
