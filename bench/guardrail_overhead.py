"""Added latency of the guardrail step per request, in process (no network): the input step (policy lookup through
the cached book + extraction + checks + rewrite) with no policy attached and with a typical policy set (PII
redaction + a 50-phrase deny-list + injection heuristics), for small and large prompts; plus output checks on a
whole answer and per streamed chunk. Usage: `.venv/bin/python -m bench.guardrail_overhead [--n 2000]`."""
from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import time

from shared.domain.base import Pillar
from shared.guardrails.book import GuardrailBook
from shared.guardrails.engine import GuardrailEngine
from shared.guardrails.policy import GuardrailPolicy, PolicySpec
from shared.guardrails.segments import apply_chat_input, apply_chat_output, chat_input, chat_output
from shared.guardrails.step import GuardrailRun, GuardrailStep
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

TYPICAL = [{"type": "pii", "name": "pii", "stage": "both"},
           {"type": "deny_list", "name": "words", "phrases": [f"forbidden phrase {i}" for i in range(50)]},
           {"type": "prompt_injection", "name": "injection"}]
PROSE = ("The quarterly report shows revenue grew in every region, driven by new subscriptions and lower churn. "
         "Please summarise the main drivers and list three risks for next quarter. ")


def body(chars: int, pii: bool) -> dict:
    user = (PROSE * (chars // len(PROSE) + 1))[:chars]
    if pii:
        user += " Contact jane.doe@example.com or +1 415 555 0100."
    return {"model": "m", "messages": [{"role": "system", "content": "You are a helpful analyst."},
                                       {"role": "user", "content": user}]}


async def step_with(project: str, checks: list[dict] | None) -> GuardrailStep:
    repo = Repository(MemoryDocumentStore(), GuardrailPolicy)
    if checks:
        await repo.create(GuardrailPolicy(id="typical", project_id=project, spec=PolicySpec.model_validate(
            {"id": "typical", "attach": {"scope": "project"}, "checks": checks})))
    return GuardrailStep(GuardrailBook(repo, ttl=3600, max_stale=3600), GuardrailEngine())


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * q))]


async def measure(step: GuardrailStep, payload: dict, n: int) -> str:
    """CPU time of this thread per call (p50 / p99), and the wall-clock p50: on a shared machine the wall clock
    also counts time spent waiting for a core, which is not the step's cost."""
    cpu, wall = [], []
    for _ in range(n):
        b = copy.deepcopy(payload)  # the pipeline owns a freshly parsed body per call; copy outside the timing
        t0, c0 = time.perf_counter(), time.thread_time()
        await step.on_input(GuardrailRun(), project_id="proj", pillar=Pillar.models, resource="m", key_id="k",
                            payload=b, extract=chat_input, apply=apply_chat_input)
        cpu.append((time.thread_time() - c0) * 1e6)
        wall.append((time.perf_counter() - t0) * 1e6)
    return f"{statistics.median(cpu):8.1f} / {pct(cpu, 0.99):8.1f} µs CPU   (wall p50 {statistics.median(wall):.1f} µs)"


async def main(n: int) -> None:
    none, typical = await step_with("proj", None), await step_with("proj", TYPICAL)
    print(f"guardrail input step, {n} calls each (per request: p50 / p99)")
    print(f"  no policy attached              : {await measure(none, body(200, True), n)}")
    for size in (200, 2_000, 20_000):
        for pii in (False, True):
            line = await measure(typical, body(size, pii), n if size < 20_000 else n // 4)
            print(f"  typical set, {size:>6} chars, {'with PII' if pii else 'clean   '}: {line}")
    run = GuardrailRun()
    await typical.on_input(run, project_id="proj", pillar=Pillar.models, resource="m", key_id="k",
                           payload=body(10, False), extract=chat_input, apply=apply_chat_input)
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": (PROSE * 8) + " a@b.co"}}]}
    times = []
    for _ in range(n):
        a = copy.deepcopy(answer)
        t0 = time.thread_time()
        typical.on_output(run, a, chat_output, apply_chat_output)
        times.append((time.thread_time() - t0) * 1e6)
    print(f"  output check, 1.2 KB answer     : {statistics.median(times):8.1f} / {pct(times, 0.99):8.1f} µs CPU")
    guard = typical.stream(run)
    assert guard is not None
    chunks = [b'data: {"choices":[{"index":0,"delta":{"content":"' + w.encode() + b' "},"finish_reason":null}]}\n\n'
              for w in (PROSE * 4).split()]
    t0 = time.thread_time()
    for c in chunks:
        guard.events(c)
    per = (time.thread_time() - t0) * 1e6 / len(chunks)
    print(f"  stream output, per chunk        : {per:8.1f} µs CPU ({len(chunks)} chunks; held back ≤ "
          f"{next(iter(guard.guards.values())).window} chars)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    asyncio.run(main(ap.parse_args().n))
