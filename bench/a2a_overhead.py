"""Added latency of A2A SendMessage through the gateway's agents pipeline vs calling the agent directly.

    .venv/bin/python -m bench.a2a_overhead [--rates 20,50] [--seconds 10] [--limits] [--binding http_json]

`--limits`: the agent and the key carry every limit (rate, concurrent tasks, max turns, message size, task time),
none of them reached — what enforcing them costs per call. `--binding http_json`: the answer framed for the
HTTP+JSON binding instead of JSON-RPC.

Upstream: the real a2a-sdk 1.x echo agent (tests/agents/a2a_v1_agent.py) on 127.0.0.1, in its own process.
Gateway path: the same objects the host builds — Pipeline(AgentsSpec) with the memory registry stores, the real
quota enforcer/book, breakers and UsageLog (memory sink), the egress-guarded upstream client — driven in process
(no Functions host, no HTTP hop into the gateway: that part is the same for every pillar and measured in
docs/benchmarks.md's gateway sections). Direct path: the same JSON-RPC POST with a plain httpx client.
Calls are paced at fixed rates (open loop); per rate: p50/p99 of both paths, the added p50/p99, and the gateway
path's extra CPU per call (process CPU time, minus the direct path's, per call). The gateway path goes through the
A2A front (services.agents_front: composite agents dispatched to their own pipeline), as the HTTP adapter does.
A second table: a one-hop composite agent (router → echo) against the same direct call — the composite's own
pipeline run, its task record and the hop's governed call.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.egress import EgressPolicy
from shared.flags.service import FlagService
from shared.pillars.agents.a2a.protocol import RpcCall
from shared.pillars.agents.composition.assemble import assemble_front
from shared.pillars.agents.composition.contracts import Composition
from shared.pillars.agents.domain import Agent, AgentSpec, MemoryAgentDirectory
from shared.pillars.agents.spec import AgentsSpec
from shared.pipeline import Exchange, Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.upstreams.egress_transport import guarded_client
from shared.usage.log import MemoryUsageSink, UsageLog

ROOT = Path(__file__).resolve().parent.parent


class NoCredentials:
    async def headers(self, agent: Agent) -> dict[str, str]:
        return {}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _params() -> dict:
    return {"message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "bench"}]}}


async def _paced(rate: float, seconds: float, call) -> tuple[list[float], float]:
    latencies: list[float] = []
    tasks = []
    cpu0, start = time.process_time(), time.perf_counter()
    n = int(rate * seconds)

    async def one() -> None:
        t = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - t) * 1000)

    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, (time.process_time() - cpu0) / n * 1e6


def _q(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1]


async def _table(label: str, rates: list[float], seconds: float, direct, other) -> None:
    """One markdown table: per rate, the direct path against `other` (latency percentiles, added CPU)."""
    print(f"| rate (calls/s) | direct p50 / p99 (ms) | {label} p50 / p99 (ms) | added p50 / p99 (ms) "
          "| added CPU per call (µs) |")
    print("|---|---|---|---|---|")
    for rate in rates:
        d, d_cpu = await _paced(rate, seconds, direct)
        g, g_cpu = await _paced(rate, seconds, other)
        print(f"| {rate:g} | {_q(d, 50):.2f} / {_q(d, 99):.2f} | {_q(g, 50):.2f} / {_q(g, 99):.2f} | "
              f"{_q(g, 50) - _q(d, 50):.2f} / {_q(g, 99) - _q(d, 99):.2f} | {g_cpu - d_cpu:.0f} |")


def _limited(store: MemoryDocumentStore, quotas: QuotaBook, counters: MemoryCounterStore, agent: Agent) -> tuple:
    """The spec's policies, turns and the rate-limit QuotaBook, with a key policy for key `k`."""
    from shared.pillars.agents.limits import KeyAgentPolicy, KeyPolicies, LimitQuotas, Turns

    policies = KeyPolicies(Repository(store, KeyAgentPolicy), ttl=60, max_stale=600)

    async def agent_of(pid: str, aid: str) -> Agent:
        return agent

    return policies, Turns(counters), LimitQuotas(quotas, agent_of, policies)


async def main(rates: list[float], seconds: float, limits: bool = False, binding: str = "jsonrpc") -> None:
    port = _port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/agents/a2a_v1_agent.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        async with httpx.AsyncClient() as direct:
            for _ in range(100):
                try:
                    (await direct.get(url + ".well-known/agent-card.json")).raise_for_status()
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            store = MemoryDocumentStore()
            every = {"requests_per_minute": 10**6, "concurrent_tasks": 10**4, "max_turns": 10**4,
                     "max_message_bytes": 10**6, "task_timeout_seconds": 60} if limits else {}
            agent = Agent(id="echo", project_id="p1", lifecycle="published", spec=AgentSpec.model_validate(
                {"name": "Echo", "interfaces": [{"url": url}], "limits": every}))
            usage = UsageLog(MemoryUsageSink(), flush_seconds=1)
            upstream = guarded_client(EgressPolicy(allow_loopback=True, allow_private=False, allowed_hosts=frozenset()))
            counters = MemoryCounterStore()
            quotas = QuotaBook(Repository(store, Quota), ttl=60, max_stale=600)
            policies = turns = None
            if limits:
                from shared.pillars.agents.limits import KeyAgentPolicy

                policies, turns, quotas = _limited(store, quotas, counters, agent)
                await policies.repo.create(KeyAgentPolicy(id="agent-key.k", key_id="k", project_id="p1",
                                                          limits=AgentSpec.model_validate(
                                                              {"name": "x", "interfaces": [{"url": url}],
                                                               "limits": every}).limits))
            solo = Agent(id="solo", project_id="p1", lifecycle="published", spec=AgentSpec(
                name="Solo", source="composite", composition=Composition(mode="router", default="echo")))
            directory = MemoryAgentDirectory([agent, solo])
            enforcer = QuotaEnforcer(counters)
            flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60, max_stale=600)
            spec = AgentsSpec(directory=directory, http=upstream, credentials=NoCredentials(),
                              policies=policies, turns=turns)
            pipeline = Pipeline(spec, quotas=quotas,  # type: ignore[arg-type]
                                enforcer=enforcer, breakers=Breakers(), usage=usage, flags=flags)
            front = assemble_front(directory, lambda: pipeline, store=store, credentials=NoCredentials(),
                                   quotas=quotas, enforcer=enforcer, usage=usage, flags=flags)
            principal = Principal(kind="virtual_key", subject="k", project_id="p1", key_id="k", key_prefix="sk-gw-k")

            async def via_direct() -> None:
                body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": _params()}
                r = await direct.post(url, json=body, headers={"A2A-Version": "1.0"})
                assert "result" in r.json()

            async def via(agent_id: str) -> None:
                x = Exchange(Pillar.agents, "SendMessage", principal, uuid.uuid4().hex,
                             RpcCall(1, "SendMessage", _params(), "1.0", binding), {}, time.perf_counter(),
                             resource=agent_id)
                x.scratch["body_bytes"] = 200
                r = await front.run(x)
                assert r.status_code == 200 and b'"TASK_STATE_COMPLETED"' in r.body, r.body

            async def via_gateway() -> None:
                await via("echo")

            async def via_composite() -> None:
                await via("solo")

            for warm in (via_direct, via_gateway, via_composite):
                for _ in range(50):
                    await warm()
            await _table("gateway", rates, seconds, via_direct, via_gateway)
            print("\nComposite agent, one hop (router → echo) vs the direct call:\n")
            await _table("composite", rates, seconds, via_direct, via_composite)
            await usage.close()
            await upstream.aclose()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="20,50")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--limits", action="store_true")
    ap.add_argument("--binding", choices=("jsonrpc", "http_json"), default="jsonrpc")
    a = ap.parse_args()
    asyncio.run(main([float(r) for r in a.rates.split(",")], a.seconds, a.limits, a.binding))
