"""`function_app.py` indexes as a valid v2 app: unique names, valid bindings, and the OpenAPI lists every route."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

from azurefunctions.extensions.http.fastapi import Request

from function_app import build_app
from shared.config import Settings
from shared.web.api import FALLBACK_FUNCTION
from shared.web.openapi import build_openapi, openapi_path
from tests.support.processes import REPO


def functions():
    return build_app(Settings()).get_functions()


def test_names_unique_and_bindings_valid():
    fns = functions()
    names = [f.get_function_name() for f in fns]
    assert len(names) == len(set(names))
    for fn in fns:
        # function.json is what the host reads; every binding must serialise and name a direction and type
        spec = json.loads(fn.get_function_json())
        assert spec["bindings"] and all({"type", "direction", "name"} <= set(b) for b in spec["bindings"])
        trigger = fn.get_trigger().get_dict_repr()
        if trigger["type"] == "httpTrigger":
            assert not fn.get_function_name().lower().startswith("admin")
            route = trigger["route"]
            assert route.split("/")[0].lower() != "admin", "Azure reserves /admin for the host"
            assert trigger["authLevel"].value == "anonymous"  # the gateway authenticates itself
            user = fn.get_user_function()
            assert inspect.iscoroutinefunction(user)
            params = list(inspect.signature(user).parameters.values())
            # the HTTP-streaming extension binds by annotation
            assert [p.annotation for p in params] == [Request] and params[0].name == trigger["name"]


def test_routes_and_openapi_match():
    fns = build_app(Settings()).get_functions()  # the host calls this exactly once per app
    routes = {(openapi_path(t["route"]), m.value.lower())
              for f in fns if f.get_function_name() != FALLBACK_FUNCTION
              for t in [f.get_trigger().get_dict_repr()] if t["type"] == "httpTrigger"
              for m in t["methods"]}
    document = _served_openapi(fns)
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    assert listed == routes
    assert document["openapi"] == "3.1.0"
    for item in document["paths"].values():
        for op in item.values():
            assert op["operationId"] and op["responses"]
            for ref in _refs(op):
                assert ref.split("/")[-1] in document["components"]["schemas"]


def _served_openapi(fns) -> dict:
    import asyncio

    from starlette.requests import Request as StarletteRequest

    fn = next(f for f in fns if f.get_function_name() == "openapi")
    scope = {"type": "http", "method": "GET", "path": "/openapi.json", "headers": [], "query_string": b""}
    response = asyncio.run(fn.get_user_function()(StarletteRequest(scope)))
    return json.loads(response.body)


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_import_needs_no_configuration_and_prints_cold_start():
    # A fresh interpreter with no settings must still index the app (the host imports before any request).
    code = "import time; t=time.perf_counter(); import function_app; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True)
    print(f"cold import of function_app: {float(out.stdout):.3f}s")  # figure, not an assertion
    assert build_openapi([], title="t", version="v")["paths"] == {}
