"""Gateway CPU per models call, end to end in process (issue 13): the real ASGI app of the local Functions host
(`dev.host.app.LocalHost` over `function_app.build_app`) driven with raw ASGI messages, memory registry / counters
/ request log, the upstream answered by an in-process `httpx.MockTransport` (no sockets, no uvicorn). What is
measured is `time.process_time()` per call over a batch, so the machine's other load barely moves it.

    .venv/bin/python bench/percall_cpu.py                       # this tree: µs/call, rounds, median
    .venv/bin/python bench/percall_cpu.py --ab BASE_TREE        # interleaved A/B: BASE_TREE vs this tree
    .venv/bin/python bench/percall_cpu.py --profile [--top 30]  # cProfile of the measured calls (this tree)

`--ab`: one long-lived child per tree (each warmed up once), asked for a batch in turn (order alternating per
round), medians of the rounds. BASE_TREE: e.g. `git archive <commit> | tar -x -C /tmp/base` (needs no venv of its
own; this script is run with the same interpreter and cwd=tree). Loopback only, nothing listens.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

BODY = b'{"model":"fake-model","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}'
ANSWER = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fake-model","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"Hello there, how are you?"},"finish_reason":"stop"}],'
          b'"usage":{"prompt_tokens":14,"completion_tokens":7,"total_tokens":21}}')
ADMIN = "bench-admin-key-0123456789abcdef0123"
T = TypeVar("T")


async def _asgi(app, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]],
                marks: list[float] | None = None) -> tuple[int, bytes]:
    """One request through the ASGI app; `marks` gets the process time at which the last body byte was sent."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:7071"), (b"content-length", str(len(body)).encode()), *headers],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 7071)}
    sent = False
    status, out = 0, []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a server: the client stays until the response is done

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))
            if marks is not None and not message.get("more_body"):
                marks.append(time.process_time())

    await app(scope, receive, send)
    return status, b"".join(out)


async def _host():
    """The app as `python -m dev.host` serves it, with memory stores and the in-process upstream."""
    sys.path.insert(0, os.getcwd())
    os.environ.update({"GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_KEY_HASH_SECRET": "bench-pepper-0123456789abcdef",
                       "GATEWAY_USAGE_FLUSH_SECONDS": "3600"})
    import httpx
    import shared.pillars.models.assemble as assemble
    from dev.host.app import LocalHost
    from dev.host.config import HostConfig
    from function_app import build_app
    from shared.config import Settings
    from shared.quotas.enforcer import QuotaEnforcer
    from shared.quotas.store import MemoryCounterStore
    from shared.services import Services
    from shared.storage.memory import MemoryDocumentStore
    from shared.usage.log import MemoryUsageSink, UsageLog

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})

    assemble.guarded_client = lambda *a, **k: httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    settings = Settings()
    services = Services(settings, store=MemoryDocumentStore())
    services.enforcer = QuotaEnforcer(MemoryCounterStore())  # cached properties: the Tables-backed ones, replaced
    services.usage_log = UsageLog(MemoryUsageSink(), flush_seconds=3600, max_buffer=10_000_000)
    env = {**json.load(open("local.settings.sample.json"))["Values"], **os.environ}  # timers' %SCHEDULE% names
    host = LocalHost(build_app(settings, services), HostConfig(), env)  # not started: no timers, no queues
    admin = [(b"authorization", f"Bearer {ADMIN}".encode()), (b"content-type", b"application/json")]
    for path, body in (("/api/manage/projects", {"id": "bench", "name": "bench", "pillars": {"models": {"enabled": True}}}),
                       ("/api/manage/projects/bench/models", {
                           "name": "fake-model", "capabilities": ["chat", "streaming"],
                           "backends": [{"id": "up", "kind": "openai_compatible", "endpoint": "https://up.example/v1",
                                         "deployment": "fake-model"}]})):
        status, out = await _asgi(host, "POST", path, json.dumps(body).encode(), admin)
        assert status in (200, 201), (path, status, out)
    status, out = await _asgi(host, "PUT", "/api/manage/projects/bench/quotas/project/bench",
                              b'{"requests_per_minute":1000000000,"tokens_per_minute":1000000000000}', admin)
    assert status == 200, out
    status, out = await _asgi(host, "POST", "/api/manage/projects/bench/keys", b'{"name":"bench"}', admin)
    assert status in (200, 201), out
    secret = json.loads(out)["secret"]
    headers = [(b"authorization", f"Bearer {secret}".encode()), (b"content-type", b"application/json"),
               (b"user-agent", b"bench/1"), (b"accept", b"*/*")]

    async def call() -> None:
        status, out = await _asgi(host, "POST", "/api/v1/chat/completions", BODY, headers)
        if status != 200:
            raise SystemExit(f"chat: HTTP {status} {out[:300]!r}")

    return call, services


async def _batch(call, n: int) -> float:
    gc.collect()
    t0 = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - t0) / n * 1e6


async def _child(calls: int, warm: int) -> None:
    call, _ = await _host()
    for _ in range(warm):
        await call()
    gc.freeze()  # like the worker after warm-up (shared/services.py)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        print(f"{await _batch(call, calls):.1f}", flush=True)


async def _solo(rounds: int, calls: int, warm: int, profile: bool, top: int, callers: str | None) -> None:
    call, _ = await _host()
    for _ in range(warm):
        await call()
    gc.freeze()
    if profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        await _batch(call, calls)
        prof.disable()
        stats = pstats.Stats(prof).sort_stats("tottime")
        stats.print_stats(top)
        if callers:
            stats.print_callers(callers)
        return
    xs = [await _batch(call, calls) for _ in range(rounds)]
    print(f"µs/call per round: {' '.join(f'{x:.0f}' for x in xs)}; median {statistics.median(xs):.0f}")


def interleaved(procs: dict[str, subprocess.Popen[str]], rounds: int, parse: Callable[[str], T]
                ) -> dict[str, list[T]]:
    """Each long-lived child asked for one batch per round ("go" → one line), the order reversed every other round
    so neither tree always runs first; then the children are closed and waited for."""
    got: dict[str, list[T]] = {label: [] for label in procs}
    for r in range(rounds):
        for label in (list(procs) if r % 2 == 0 else list(reversed(procs))):
            p = procs[label]
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write("go\n")
            p.stdin.flush()
            got[label].append(parse(p.stdout.readline()))
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    return got


def _ab(base: str, rounds: int, calls: int, warm: int) -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"before": os.path.abspath(base), "after": here}
    procs = {}
    for label, tree in trees.items():
        procs[label] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", "--calls", str(calls), "--warm", str(warm)],
            cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert procs[label].stdout.readline().strip() == "ready", f"{label}: child failed"
    got = interleaved(procs, rounds, float)
    load = os.getloadavg()[0]
    for label, xs in got.items():
        print(f"{label:6s} µs/call: median {statistics.median(xs):6.0f}  rounds {' '.join(f'{x:.0f}' for x in xs)}")
    b, a = statistics.median(got["before"]), statistics.median(got["after"])
    paired = statistics.median(x / y for x, y in zip(got["after"], got["before"]))
    print(f"after/before: {a / b:.3f} of the medians, {paired:.3f} median of the per-round ratios "
          f"({(b - a):.0f} µs less per call); load average {load:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ab", metavar="BASE_TREE")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--warm", type=int, default=500)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--callers", help="with --profile: who calls the functions matching this regex")
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        asyncio.run(_child(a.calls, a.warm))
    elif a.ab:
        _ab(a.ab, a.rounds, a.calls, a.warm)
    else:
        asyncio.run(_solo(a.rounds, a.calls, a.warm, a.profile, a.top, a.callers))


if __name__ == "__main__":
    main()
