"""Benchmark (not a test, not a code path of the gateway): the added latency a reshaped `tools/call` hot path could
at best reach on this stack, served and measured the way bench/mcp_latency.py measures the gateway.

Five paths, call by call over raw keep-alive sockets (bench/mcp_latency.py's `RawPath` and `measure`):

- *direct*: bench/fast_mcp_upstream.py itself;
- *floor*: bench/null_mcp_proxy.py — uvicorn and the gateway's lean upstream client, no governance;
- *components*: bench/mcp_components.py's bare ASGI function — the same governance components the gateway uses
  (key check, flag check, tool directory, argument check, quota admit/settle, outbound auth, session pool and MCP
  client, answer bridge, one request-log row) and nothing else — under uvicorn: the lower bound of any reshaping;
- *minimal*: what any proxy that governs MCP calls does at the least, in the fewest Python steps — read the body,
  parse the JSON-RPC request, check the bearer key (a SHA-256 digest looked up in a dict), look the tool up in a
  dict, rewrite its name and the id, send it with the same lean client, parse the answer, restore the id, send it;
- *gateway*: the whole app (`LocalHost` over `function_app.build_app`) under uvicorn.

Components and gateway each run in their own process over a memory registry, counters and request log (the seed of
bench/mcp_inprocess.py; no emulator in the measurement), each with its own upstream server. If *components* already
adds more than a target, no reshaping of the layers around the same components reaches it.

    .venv/bin/python -m bench.mcp_bound [--calls 600] [--gaps 50,5,0]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def _serve(kind: str, port: int) -> None:
    """Child: build the app, print what a client needs (one JSON line), serve it on `port` until killed."""
    import uvicorn

    import bench.mcp_components as comp  # patches bench.mcp_inprocess.build to capture the Services
    from bench.mcp_host_path import _setup

    through, direct, proc = await _setup()
    try:
        cells = [c.cell_contents for c in through.__closure__ or ()]
        host = next(c for c in cells if hasattr(c, "describe"))
        headers = next(c for c in cells if isinstance(c, list))
        upstream = next(c.cell_contents for c in direct.__closure__ or () if hasattr(c.cell_contents, "url")).url
        key = dict(headers)[b"authorization"].decode().removeprefix("Bearer ")
        from bench.mcp_inprocess import BOX, TOOL

        app = host if kind == "gateway" else minimal_app(upstream, key, BOX, TOOL, "shout") if kind == "minimal" \
            else comp.components_app(comp._CAPTURED["services"])

        print(json.dumps({"key": key, "box": BOX, "tool": TOOL, "upstream": upstream}), flush=True)
        gc.collect()
        gc.freeze()  # like the worker after warm-up
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               access_log=False, lifespan="off"))
        await server.serve()
    finally:
        proc.terminate()


def minimal_app(upstream: str, key: str, box: str, tool: str, original: str) -> Callable[..., Any]:
    """The *minimal* path above (no quota, log or schema: what is left is the floor plus the JSON-RPC work)."""
    import hashlib
    import itertools

    import orjson

    from shared.egress import EgressPolicy
    from shared.upstreams.lean_http import LeanHttp

    keys = {hashlib.sha256(key.encode()).digest(): "bench"}
    tools = {(box, tool): original}
    wire = LeanHttp(EgressPolicy(allow_loopback=True))
    ids = itertools.count(1)
    forward = (b"content-type", b"accept", b"mcp-protocol-version")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        head = dict(scope["headers"])
        if hashlib.sha256(head.get(b"authorization", b"")[7:]).digest() not in keys:
            raise SystemExit("minimal: key refused")
        msg = orjson.loads((await receive())["body"])
        params = msg["params"]
        params["name"] = tools[(scope["path"].rsplit("/", 1)[1], params["name"])]
        client_id, msg["id"] = msg["id"], next(ids)
        upstream_answer = await wire.request("POST", upstream, orjson.dumps(msg),
                                             [(k, v) for k, v in scope["headers"] if k in forward])
        try:
            answer = orjson.loads(await upstream_answer.read())
        finally:
            await upstream_answer.aclose()
        answer["id"] = client_id
        body = orjson.dumps(answer)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    return app


def _child(kind: str, work: Path, stop: list[Callable[[], None]]) -> tuple[str, dict[str, str]]:
    from bench.mcp_toolbox import free_port
    from tests.support.mcp_servers import _wait_port

    port = free_port()
    log = work / f"{kind}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bench.mcp_bound", "--serve", kind, str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
    stop.append(proc.terminate)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline() or "{}")
    if not info:
        raise SystemExit(f"{kind}: no start line; see {log}")
    _wait_port(port, proc, log)
    return f"http://127.0.0.1:{port}", info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--gaps", default="50,5,0")
    ap.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        asyncio.run(_serve(a.serve[0], int(a.serve[1])))
        return
    from bench.mcp_fixture import stop_all
    from bench.mcp_latency import RawPath, run_gaps
    from bench.mcp_toolbox import free_port
    from tests.support.mcp_servers import _wait_port

    work = Path(tempfile.mkdtemp(prefix="mcp-bound-"))
    stop: list[Callable[[], None]] = []
    try:
        gw_url, gw = _child("gateway", work, stop)
        comp_url, comp = _child("components", work, stop)
        min_url, mini = _child("minimal", work, stop)
        floor_port = free_port()
        floor = subprocess.Popen([sys.executable, str(ROOT / "bench" / "null_mcp_proxy.py"), str(floor_port),
                                  gw["upstream"]], stdout=subprocess.DEVNULL, stderr=(work / "floor.log").open("wb"))
        stop.append(floor.terminate)
        _wait_port(floor_port, floor, work / "floor.log")
        paths = {"direct": RawPath(gw["upstream"], "shout", None),
                 "floor": RawPath(f"http://127.0.0.1:{floor_port}/mcp", "shout", None),
                 "minimal": RawPath(f"{min_url}/api/mcp/{mini['box']}", mini["tool"], mini["key"]),
                 "components (bound)": RawPath(f"{comp_url}/api/mcp/{comp['box']}", comp["tool"], comp["key"]),
                 "gateway": RawPath(f"{gw_url}/api/mcp/{gw['box']}", gw["tool"], gw["key"])}
        run_gaps(paths, a.calls, a.gaps)
    finally:
        stop_all(stop)


if __name__ == "__main__":
    main()
