"""Benchmark (not a test): what one tools-registry snapshot load costs the event loop, against the real Cosmos
wire-protocol server — one query for the four kinds (`load_project_tools`, shared/storage/repository.py
`load_kinds`) vs one query per kind (before). A snapshot reloads at every cache refresh (FLAG_CACHE_TTL_SECONDS,
5 s by default), and every step of SDK query work on the loop stalls the calls in flight. Per load: this thread's
CPU time, and the longest single loop step (the stall a call arriving meanwhile would see). Interleaved rounds.

    .venv/bin/python bench/snapshot_load.py [--loads 40] [--tools 20]
"""
from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.usage_drain import _steps, _timed_run  # noqa: E402 - its loop-step timer (thread CPU per step)
from dev.emulators import Emulators, Ports  # noqa: E402
from shared.pillars.tools.directory import ProjectTools, load_project_tools  # noqa: E402
from shared.pillars.tools.domain import ApiSource, McpServer, ToolDefinition, Toolbox  # noqa: E402
from shared.storage.cosmos import CosmosDocumentStore, make_cosmos_client  # noqa: E402
from shared.storage.repository import Repository  # noqa: E402

async def per_kind(store, project: str) -> ProjectTools:  # noqa: ANN001 - main before this change
    async def every(cls):  # noqa: ANN001
        return {e.id: e for e in (await Repository(store, cls).list(project, limit=500)).items}
    return ProjectTools(project, servers=await every(McpServer), api_sources=await every(ApiSource),
                        tools=await every(ToolDefinition), toolboxes=await every(Toolbox))


async def seed(store, project: str, tools: int) -> None:  # noqa: ANN001
    from tests.unit.test_tools_domain import box, server, tool
    await Repository(store, McpServer).create(server().model_copy(update={"project_id": project}))
    names = []
    for i in range(tools):
        t = tool(f"t{i}").model_copy(update={"project_id": project})
        await Repository(store, ToolDefinition).create(t)
        names.append(t.id)
    await Repository(store, Toolbox).create(box(names).model_copy(update={"project_id": project}))


async def run(conn: str, loads: int, tools: int) -> None:
    store = CosmosDocumentStore(lambda: make_cosmos_client(connection_string=conn, endpoint=None, credential=None,
                                                           timeout=5),
                                "bench-" + uuid.uuid4().hex[:6], "registry", create_if_missing=True, timeout=5)
    project = "proj"
    await seed(store, project, tools)
    _original = asyncio.events.Handle._run
    ways = {"one query per kind (before)": per_kind, "one query for all kinds (now)": load_project_tools}
    stats: dict[str, tuple[list[float], list[float]]] = {w: ([], []) for w in ways}
    for w, load in ways.items():  # warm both paths
        snap = await load(store, project)
        assert len(snap.tools) == tools and len(snap.toolboxes) == 1, w
    asyncio.events.Handle._run = _timed_run
    for i in range(loads):
        for w in (list(ways) if i % 2 == 0 else list(reversed(ways))):
            _steps.clear()
            t = time.thread_time()
            await ways[w](store, project)
            stats[w][0].append((time.thread_time() - t) * 1000)
            stats[w][1].append(max(_steps, default=0.0) * 1000)
    asyncio.events.Handle._run = _original
    print(f"{loads} loads each, a project of 1 server, {tools} tools, 1 toolbox (medians; p90 of the longest step)")
    print("| snapshot load | CPU ms per load | longest loop step ms (median / p90) |\n|---|---|---|")
    for w, (cpu, longest) in stats.items():
        p90 = statistics.quantiles(longest, n=10)[-1]
        print(f"| {w} | {statistics.median(cpu):.2f} | {statistics.median(longest):.2f} / {p90:.2f} |")
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", type=int, default=40)
    ap.add_argument("--tools", type=int, default=20)
    a = ap.parse_args()
    emu = Emulators(Path(tempfile.mkdtemp()), Ports.free())
    emu.start("cosmos")
    try:
        asyncio.run(run(emu.cosmos_connection_string, a.loads, a.tools))
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
