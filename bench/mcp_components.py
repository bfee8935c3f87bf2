"""Benchmark (not a test, not a code path of the gateway): how much of a toolbox `tools/call`'s CPU is the governance
work itself and how much the layers it passes through.

Three things are called in turn, one call each, over the app `bench/mcp_host_path.py` builds (memory registry,
counters and request log, `bench/fast_mcp_upstream.py` in its own process):

- *through*: the real request — local host, blueprint, guard, MCP transport, toolbox server, tool-call runner,
  pipeline (steps, admission, failover), spec, the MCP client;
- *components*: a bare ASGI function that calls the same components the real path uses for one happy-path call and
  nothing else — the key service, the flag check, the tool directory's resolve, the argument check against the
  pinned schema, the quota book and enforcer (admit, settle), the upstream's auth headers and session pool, the
  answer bridge, one request-log row. It skips everything a production path must still do (route matching, request
  ids, admission control, JSON-RPC validation, envelope and toolbox checks, breakers and failover, guardrail and
  task hooks, the error mapping): it is a lower bound for a reshaped hot path over today's components, not one;
- *direct*: the gateway's MCP client alone.

`--gaps`: idle ms before each call (0 = hot caches; 5 and 50 ms: what a call at ~200 and ~20 calls/s pays). Prints
this process's CPU per call (median), up to the moment the answer's last byte is handed over.

    .venv/bin/python -m bench.mcp_components [--calls 300] [--gaps 50,5,0]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

import orjson

import bench.mcp_inprocess as inprocess
from bench.percall_cpu import _asgi

_CAPTURED: dict[str, Any] = {}


def _capturing_build(store: Any) -> Any:
    services, sink = _BUILD(store)
    _CAPTURED["services"] = services
    return services, sink


_BUILD = inprocess.build
inprocess.build = _capturing_build  # _setup builds the app through this module: keep a handle on its Services


def components_app(services: Any) -> Any:
    """The bare ASGI function described above, over the components of `services`' tools plane."""
    from shared.domain.base import Pillar
    from shared.pillars.tools.mcp import bridge
    from shared.pillars.tools.mcp import jsonrpc as rpc
    from shared.pillars.tools.upstreams import endpoints
    from shared.usage.log import UsageRecord

    transport = services.tools.mcp.transport
    pipeline = transport._server._call._pipeline  # the tools pipeline's own collaborators, not copies
    calls = pipeline.spec._calls
    keys, flags, directory, pool = services.key_service, services.flags, transport._directory, transport._pool
    schemas, enforcer, book, usage, auth = calls._schemas, pipeline._enforcer, pipeline.spec._book, pipeline._usage, \
        calls._auth

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        principal = await keys.authenticate(headers.get("authorization", "")[len("Bearer "):])
        principal.project = await flags.check(principal.project_id, Pillar.tools)
        req = orjson.loads((await receive())["body"])
        arguments = req["params"].get("arguments") or {}
        box = scope["path"].rsplit("/", 1)[1]
        tool = await directory.resolve(principal, principal.project_id, box, req["params"]["name"])
        d = tool.definition
        schemas.check(d.definition.input_schema, arguments, d.pinned_hash)
        quotas = await book.for_call(principal.project_id, principal.key_id, Pillar.tools, d.name)
        admission = await enforcer.admit(quotas, tokens=0, cost_micros=0, extra_tokens=0, extra_cost_micros=0)
        target = (await endpoints(tool.server, auth))[0]
        result = await pool.request(target, principal.key_id, None, "tools/call",
                                    {"name": d.original_name, "arguments": arguments}, timeout=30, max_bytes=1 << 20)
        body = rpc.dumps(rpc.result(req["id"], bridge.to_client(result, method="tools/call",
                                                                 client_version="2026-07-28")))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        enforcer.settle(admission, tokens=0, cost_micros=0)
        usage.record(UsageRecord(request_id="bench", project_id=principal.project_id, key_id=principal.key_id,
                                 pillar="tools", operation="tools/call", resource=d.name, target=target.id,
                                 status=200, latency_ms=(time.perf_counter() - started) * 1000, overhead_ms=0.0,
                                 attributes={"toolbox": box, "tool": d.name}))

    return app


async def _main(calls: int, gaps: list[float]) -> None:
    from bench.mcp_host_path import _setup

    through, direct, proc = await _setup()
    try:
        app = components_app(_CAPTURED["services"])
        cells = {c.cell_contents for c in through.__closure__ or () if isinstance(c.cell_contents, bytes)}
        body = next(iter(cells))  # the request the real path sends: the same body and headers
        headers = next(c.cell_contents for c in through.__closure__ or () if isinstance(c.cell_contents, list))

        async def bare(marks: list[float]) -> None:
            status, out = await _asgi(app, "POST", f"/api/mcp/{inprocess.BOX}", body, headers, marks)
            if status != 200 or b'"HI"' not in out:
                raise SystemExit(f"components: HTTP {status} {out[:300]!r}")

        async def client(marks: list[float]) -> None:
            await direct()
            marks.append(time.process_time())

        paths = {"through": through, "components": bare, "direct": client}
        for _ in range(300):
            for f in paths.values():
                await f([])
        gc.freeze()
        print("| idle before each call | through µs | components µs | MCP client alone µs | through − client | "
              "components − client |")
        print("|---|---|---|---|---|---|")
        for gap in gaps:
            got: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(calls):
                for name, f in paths.items():
                    if gap:
                        await asyncio.sleep(gap / 1000)
                    marks: list[float] = []
                    t0 = time.process_time()
                    await f(marks)
                    got[name].append((marks[0] - t0) * 1e6)
            med = {name: statistics.median(v) for name, v in got.items()}
            print(f"| {gap:g} ms | {med['through']:.0f} | {med['components']:.0f} | {med['direct']:.0f} | "
                  f"{med['through'] - med['direct']:.0f} | {med['components'] - med['direct']:.0f} |")
    finally:
        proc.terminate()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--gaps", default="50,5,0")
    a = ap.parse_args()
    asyncio.run(_main(a.calls, [float(g) for g in a.gaps.split(",")]))


if __name__ == "__main__":
    main()
