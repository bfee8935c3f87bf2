"""Added latency of the guardrail step on the tools (MCP `tools/call`) and agents (A2A SendMessage) pipelines, in
process (no network): `before` (policy lookup for the call's resources + argument / message scan + rewrite) and
`after` (a whole result / answer: parse, scan, rewrite), with no policy and with the typical policy set of
bench/guardrail_overhead.py. CPU time of the calling thread per call (p50 / p99).
Usage: `.venv/bin/python -m bench.guardrail_pillars_overhead [--n 2000]`."""
from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import time
from types import SimpleNamespace
from typing import Any

import orjson

from bench.guardrail_overhead import PROSE, TYPICAL, pct, step_with
from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.pillars.agents.a2a.protocol import RpcCall
from shared.pillars.agents.guardrails import AgentsGuardrails
from shared.pillars.tools.guardrails import ToolsGuardrails
from shared.pipeline.exchange import Exchange, Relayed

WHO = Principal(kind="virtual_key", subject="k", project_id="proj", key_id="k")
TEXT = PROSE[:200] + " Contact jane.doe@example.com."
ANSWER = PROSE * 8


def tool_call() -> tuple[Exchange, Relayed]:
    req = SimpleNamespace(ctx=SimpleNamespace(toolbox="box"), answer=None,
                          call=SimpleNamespace(arguments={"query": TEXT, "filters": {"region": "emea", "n": 3}}))
    x = Exchange(Pillar.tools, "tools/call", WHO, "rid", req, {}, 0.0, resource="crm__search")
    req.answer = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": ANSWER}]}}
    return x, Relayed(200, {}, body=orjson.dumps(req.answer))


def agent_call() -> tuple[Exchange, Relayed]:
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": TEXT}]}}
    x = Exchange(Pillar.agents, "SendMessage", WHO, "rid", RpcCall(1, "SendMessage", params, "1.0"), {}, 0.0,
                 resource="echo")
    task = {"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "t", "contextId": "c", "status": {
        "state": "TASK_STATE_COMPLETED"}, "artifacts": [{"artifactId": "a", "parts": [{"text": ANSWER}]}]}}}
    return x, Relayed(200, {}, body=orjson.dumps(task))


async def measure(step: Any, make: Any, n: int) -> str:
    before, after = [], []
    for _ in range(n):
        x, relayed = make()
        relayed = copy.copy(relayed)
        c0 = time.thread_time()
        await step.before(x)
        c1 = time.thread_time()
        step.after(x, relayed)
        c2 = time.thread_time()
        before.append((c1 - c0) * 1e6)
        after.append((c2 - c1) * 1e6)
    return (f"before {statistics.median(before):7.1f} / {pct(before, 0.99):7.1f} µs   "
            f"after {statistics.median(after):7.1f} / {pct(after, 0.99):7.1f} µs")


async def main(n: int) -> None:
    none, typical = await step_with("proj", None), await step_with("proj", TYPICAL)
    print(f"guardrail step on the tools and agents pipelines, {n} calls each (CPU per call, p50 / p99)")
    for label, cls, make in (("tools  tools/call ", ToolsGuardrails, tool_call),
                             ("agents SendMessage", AgentsGuardrails, agent_call)):
        print(f"  {label}, no policy  : {await measure(cls(none), make, n)}")
        print(f"  {label}, typical set: {await measure(cls(typical), make, n)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
