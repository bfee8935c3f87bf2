"""Added latency of the A/B experiment step per models call, in process: no experiment on the model (every call
pays this), and a running experiment (assignment + the variant's pool). The book is warm (as in steady state:
experiments are read through the fail-static cache).

    .venv/bin/python -m bench.experiment_overhead [--calls 20000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import orjson

from shared.auth.principal import Principal
from shared.experiments.book import ExperimentBook
from shared.experiments.domain import Experiment, ExperimentSpec
from shared.experiments.registry import ExperimentRegistry
from shared.pillars.models.contracts import exchange
from shared.pillars.models.domain import Model, ModelSpec
from shared.pillars.models.experiment_step import ExperimentStep
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


async def per_call_us(step: ExperimentStep, model: Model, calls: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        xs = []
        for i in range(calls):  # distinct keys: a real spread of assignments
            who = Principal(kind="virtual_key", subject="k", project_id="p", key_id=f"k{i}")
            x = exchange("chat", BODY, None, principal=who, request_id="r", headers={}, started=0.0)
            x.entity = model
            xs.append(x)
        started = time.perf_counter()
        for x in xs:
            await step.before(x)
            step.after  # noqa: B018 - the header is a dict write; before() is the cost
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def main(calls: int, repeats: int) -> None:
    store = MemoryDocumentStore()
    models, experiments = Repository(store, Model), Repository(store, Experiment)
    model = await models.create(Model(id="m", project_id="p", spec=ModelSpec(name="m", backends=[
        {"id": b, "kind": "openai_compatible", "endpoint": f"https://{b}.example/v1", "deployment": "d"}
        for b in "abc"])))
    book = ExperimentBook(experiments, ttl=3600, max_stale=60)
    step = ExperimentStep(book)
    none = await per_call_us(step, model, calls, repeats)
    registry = ExperimentRegistry(experiments, find_model=models.find, on_change=book.invalidate)
    await registry.create("p", ExperimentSpec(name="exp", model="m", variants=[
        {"id": "control", "weight": 70, "backends": ["a"]},
        {"id": "mini", "weight": 30, "backends": ["b", "c"], "deployment": "mini"}]), "bench")
    await registry.transition("p", "exp", "start", "bench")
    running = await per_call_us(step, model, calls, repeats)
    print(f"experiment step per call: no experiment {none:.2f} µs, running experiment {running:.2f} µs "
          f"(best of {repeats} × {calls} calls)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeats))
