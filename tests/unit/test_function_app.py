"""`function_app.py` indexes as a valid v2 app: unique names, valid bindings, and the OpenAPI lists every route."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

from azurefunctions.extensions.http.fastapi import Request

import pytest

from function_app import build_app
from shared.config import Settings, load_settings
from shared.web.openapi import build_openapi, openapi_path
from shared.web.worker_http import FASTAPI_DEFAULT_PATHS
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
              for t in (f.get_trigger().get_dict_repr() for f in fns) if t["type"] == "httpTrigger"
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
    assert fn.get_trigger().get_dict_repr()["route"] == "spec/openapi.json"  # the canonical address
    response = _invoke(fn)
    return json.loads(response.body)


def _invoke(fn, method: str = "GET", path: str = "/"):
    import asyncio

    from starlette.requests import Request as StarletteRequest

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    return asyncio.run(fn.get_user_function()(StarletteRequest(scope)))


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


def _index(fns) -> set[tuple]:
    """What the host indexes of each function: name, trigger route/methods, and every binding."""
    return {(f.get_function_name(), f.get_function_json()) for f in fns}


def test_a_malformed_setting_keeps_every_function_indexed_and_each_answers_configuration_error(monkeypatch):
    healthy = build_app(Settings()).get_functions()
    monkeypatch.setenv("FLAG_CACHE_TTL_SECONDS", "5s-NOT-FOR-EYES")
    monkeypatch.setenv("MAX_DATA_BODY_BYTES", "-1")
    with pytest.raises(Exception):
        Settings()  # what used to happen at import: zero functions indexed
    settings, problems = load_settings()
    assert {p.setting for p in problems} == {"FLAG_CACHE_TTL_SECONDS", "MAX_DATA_BODY_BYTES"}
    broken = build_app(settings, problems=problems).get_functions()
    assert _index(broken) == _index(healthy)  # same functions, routes, methods and bindings
    for fn in broken:
        name = fn.get_function_name()
        if fn.get_trigger().get_dict_repr()["type"] != "httpTrigger":
            continue  # timers: tests/unit/agents/test_agents_sync_timer.py (they log configuration_error, run nothing)
        response = _invoke(fn, next(iter(fn.get_trigger().get_dict_repr()["methods"])).value)
        text = response.body.decode()
        assert "NOT-FOR-EYES" not in text  # a value is never echoed (it may be a secret)
        if name in ("healthz", "openapi", "openapi_root"):
            assert response.status_code == 200, name
            continue
        assert response.status_code == 503, name
        body = json.loads(text)
        if name == "readyz":
            check = body["checks"]["configuration"]
            assert body["status"] == "misconfigured" and check["error"] == "configuration_error"
            assert {s["setting"] for s in check["settings"]} == {"FLAG_CACHE_TTL_SECONDS", "MAX_DATA_BODY_BYTES"}
            continue
        error = body["error"]
        assert error["code"] == "configuration_error", name
        assert "FLAG_CACHE_TTL_SECONDS" in error["message"] and "MAX_DATA_BODY_BYTES" in error["message"]
        reasons = {d["setting"]: d["reason"] for d in error["details"]["settings"]}
        assert reasons["FLAG_CACHE_TTL_SECONDS"].startswith("Input should be a valid number")
        assert reasons["MAX_DATA_BODY_BYTES"] == "Input should be greater than 0"


def test_import_with_a_malformed_setting_indexes_every_function():
    code = "import function_app; print(len(function_app.app.get_functions()))"
    env = {"PATH": "/usr/bin:/bin", "FLAG_CACHE_TTL_SECONDS": "5s"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(functions())
    assert "FLAG_CACHE_TTL_SECONDS" in out.stderr  # logged for the operator at import


def _worker_web_app():
    """The web app exactly as the Functions worker builds it for HTTP streaming
    (azure_functions_runtime.http_v2.initialize_http_server): the extension module found through the base
    package's tracker, its WebApp(), and one catch-all route that hands the request to the invocation."""
    import importlib

    import azurefunctions.extensions.base as ext_base
    from fastapi.responses import PlainTextResponse

    extension = importlib.import_module(ext_base.ModuleTrackerMeta.get_module())
    app = extension.WebApp()
    request_type = ext_base.RequestTrackerMeta.get_request_type()

    async def catch_all(request):
        return PlainTextResponse("invocation " + request.url.path)

    # a real annotation object (this module has postponed, string annotations), as in the worker's module
    catch_all.__annotations__ = {"request": request_type}
    app.route(catch_all)
    return app.get_app()


def test_the_workers_http_app_routes_fastapi_default_paths_to_the_invocation():
    from starlette.testclient import TestClient

    build_app(Settings())  # the worker imports (indexes) the app first, then builds its HTTP app
    with TestClient(_worker_web_app()) as client:
        for path in sorted(FASTAPI_DEFAULT_PATHS) + ["/spec/openapi.json", "/healthz"]:
            r = client.get(path)
            assert (r.status_code, r.text) == (200, "invocation " + path), path


def test_with_the_real_functions_runtime_get_openapi_json_reaches_the_invocation():
    runtime = pytest.importorskip("azure_functions_runtime.http_v2")  # pinned with Python 3.13 (issue 7)
    import asyncio

    import httpx
    from fastapi.responses import JSONResponse

    build_app(Settings())
    runtime.HttpV2Registry._http_v2_enabled_checked = False  # the worker checks once, after indexing
    assert runtime.HttpV2Registry.http_v2_enabled()

    async def scenario() -> tuple[str, httpx.Response]:
        url = runtime.initialize_http_server("127.0.0.1")
        port = int(url.rsplit(":", 1)[1])
        for _ in range(250):  # the server task starts on the next loop iterations
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            request = asyncio.create_task(client.get("/openapi.json", headers={"x-ms-invocation-id": "inv-1"}))
            seen = await asyncio.wait_for(runtime.http_coordinator.get_http_request_async("inv-1"), 5)
            runtime.http_coordinator.set_http_response("inv-1", JSONResponse({"from": "our function"}))
            return seen.url.path, await request

    path, response = asyncio.run(scenario())
    assert path == "/openapi.json" and response.json() == {"from": "our function"}
