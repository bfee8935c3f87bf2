"""How long the request log's background flush holds the event loop, in process against a real Azurite.

Feeds models-shaped UsageRecords into a UsageLog → TableUsageSink → Azurite at a steady rate (as the pipeline's
`finally` does) while a probe task, standing for a request waiting on its socket, sleeps 1 ms in a loop and
records how late it wakes. Every loop step (task step or callback) is timed in thread CPU time
(asyncio.events.Handle._run, the pure-Python asyncio loop Azure runs). Variants run interleaved, several rounds, one process:

  old   one synchronous encode of the whole batch (no slicing), 25-row batches, a drain that keeps writing
        whatever arrived meanwhile (main before this change; the lean pipeline and build_batch are shared)
  new   entity building sliced at ~1 ms (shared/slices.py), 100-row batches

    .venv/bin/python bench/usage_drain.py [--rate 200] [--seconds 6] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import gc
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.data.tables.aio import TableServiceClient  # noqa: E402

from dev.emulators import Emulators, Ports  # noqa: E402
from shared.usage.log import UsageLog, UsageRecord  # noqa: E402
from shared.slices import Slicer  # noqa: E402
from shared.usage.table_sink import TableUsageSink  # noqa: E402

_steps: list[float] = []
_orig_run = asyncio.events.Handle._run


def _timed_run(self):  # noqa: ANN001
    # CPU time of this thread, not wall time: on a shared machine a step's wall time includes preemption by
    # other processes, which says nothing about how long our code holds the loop.
    t = time.thread_time()
    try:
        return _orig_run(self)
    finally:
        took = time.thread_time() - t
        _steps.append(took)
        if took > 0.001 and _WHY is not None:
            _WHY[_what(self)].append(took * 1000)


_WHY: dict[str, list[float]] | None = None  # --why: which steps ran longer than 1 ms


def _what(handle) -> str:  # noqa: ANN001
    cb = handle._callback
    owner = getattr(cb, "__self__", None)
    if owner is not None and hasattr(owner, "get_coro"):
        coro, frames = owner.get_coro(), []
        while coro is not None and len(frames) < 8:
            code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
            if code is None:
                break
            frames.append(code.co_qualname)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return "task " + " > ".join(frames)
    return "callback " + getattr(cb, "__qualname__", repr(cb))[:120]


def record(i: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{i}", project_id="bench-project", key_id="k1", key_prefix="gw_abcd", operation="chat",
        resource="gpt-4o-mini", target="primary", status=200, cost_usd=0.000123, latency_ms=3.2, overhead_ms=1.1,
        attempts=[{"target": "primary", "status": 200, "latency_ms": 2.1, "error": None}],
        attributes={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21, "usage_estimated": False})


class TricklingLog(UsageLog):
    """The drain before this change: after a write, it wrote whatever had arrived meanwhile (tiny batches)."""

    async def _drain(self, *, retry: bool, deadline: float | None = None, full_only: bool = False) -> None:
        await super()._drain(retry=retry, deadline=deadline)


def variant(name: str) -> tuple[type[UsageLog], dict, dict]:
    if name == "old":
        return TricklingLog, {"slicer": lambda: Slicer(float("inf"))}, {"batch_size": 25}
    return UsageLog, {}, {"batch_size": 100}


async def one_run(tables: TableServiceClient, name: str, rate: float, seconds: float) -> dict:
    table = tables.get_table_client("bench" + uuid.uuid4().hex[:8])
    await table.create_table()
    cls, sink_kw, log_kw = variant(name)
    log = cls(TableUsageSink(table, **sink_kw), flush_seconds=1.0, **log_kw)
    transactions = [0]
    write = log._sink.write

    async def counted(records: list[UsageRecord]):  # noqa: ANN202
        transactions[0] += 1
        return await write(records)

    log._sink.write = counted  # type: ignore[method-assign]
    lateness: list[float] = []
    stop = False

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not stop:
            t = loop.time()
            await asyncio.sleep(0.001)
            lateness.append(loop.time() - t - 0.001)

    probe_task = asyncio.create_task(probe())
    gc.collect()
    await asyncio.sleep(0)  # the step that ran gc.collect() ends here: not counted
    _steps.clear()
    cpu0, t0 = time.process_time(), time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        log.record(record(n))
        n += 1
        await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
    await log.flush()
    cpu = time.process_time() - cpu0
    stop = True
    await probe_task
    steps = sorted(_steps)
    await log.close()
    await table.delete_table()
    late = sorted(lateness)
    return {"rows": n, "written": log.written, "writes": transactions[0], "cpu_ms_per_row": cpu * 1000 / n,
            "max_step_ms": steps[-1] * 1000, "steps_over_1ms": sum(s > 0.001 for s in steps),
            "steps_over_3ms": sum(s > 0.003 for s in steps),
            "probe_late_p99_ms": late[int(len(late) * 0.99)] * 1000, "probe_late_max_ms": late[-1] * 1000}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default="old,new")
    ap.add_argument("--why", action="store_true", help="print which steps ran longer than 1 ms")
    args = ap.parse_args()
    global _WHY
    if args.why:
        import collections
        _WHY = collections.defaultdict(list)
    emu = Emulators(Path(tempfile.mkdtemp(prefix="usage-drain-")), Ports.free())
    emu.start("azurite")
    asyncio.events.Handle._run = _timed_run
    tables = TableServiceClient.from_connection_string(emu.storage_connection_string, use_env_settings=False,
                                                       retry_total=1)
    results: dict[str, list[dict]] = {v: [] for v in args.variants.split(",")}
    try:
        await one_run(tables, "new", args.rate, 1.0)  # warm-up (connections, imports)
        for _ in range(args.rounds):
            for name in results:
                results[name].append(await one_run(tables, name, args.rate, args.seconds))
    finally:
        await tables.close()
        emu.stop()
    print(f"rate {args.rate:.0f} rows/s, {args.seconds:.0f} s x {args.rounds} rounds (interleaved); "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{name:4s} " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in med.items()))
    for what, took in sorted((_WHY or {}).items(), key=lambda kv: -len(kv[1]))[:12]:
        print(f"  {len(took):5d}x max {max(took):6.2f} ms median {statistics.median(took):5.2f} ms  {what}")


if __name__ == "__main__":
    asyncio.run(main())
