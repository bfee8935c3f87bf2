"""Benchmark (not a test): `tools/call` direct to an MCP server vs through a gateway toolbox vs through IBM
ContextForge fronting the same server, in one run on this machine.

    .venv/bin/python -m bench.mcp_toolbox [--seconds 8] [--rates 20,100] [--concurrency 16] [--no-contextforge]
                                          [--floor] [--pin]

Starts: the emulators, one MCP server (bench/fast_mcp_upstream.py: minimal, so the upstream is not the bottleneck), the
gateway (dev.host) with a toolbox over that server, and ContextForge (`mcp-contextforge-gateway` from PyPI, installed
into its own venv under /tmp on first use, its default local setup: SQLite, JWT auth) with the server registered as
a gateway. Measures, for each path: latency p50/p99 at fixed open-loop rates, CPU per call of the proxy process
tree (utime+stime from /proc), and max calls/s with a closed loop of --concurrency workers.
Added latency = proxy percentile − direct percentile at the same rate. Prints a markdown table.

`--floor` adds a governance-free Python proxy (bench/null_mcp_proxy.py: uvicorn + the gateway's lean upstream
client, nothing else) as a path: what one Python proxy hop costs on this machine, measured in the same minutes.
`--pin` gives the proxies one core of their own (the last CPU; every thread, like the reference harness) and keeps
this load generator, the MCP server and the emulators on the others, so a proxy is not descheduled by the client
whose latency it is measured by (2-core machines)."""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev.emulators import Emulators, Ports, free_port  # noqa: E402
from tests.integration.mcp_support import seed  # noqa: E402
from tests.support.mcp_servers import Fleet, NPM_DIR, _wait_port, launch  # noqa: E402
from bench.mcp_fixture import bench_key, gateway, gateway_env, stop_all  # noqa: E402

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
CF_VENV = Path("/tmp/contextforge-venv")
CF_VERSION = os.environ.get("CONTEXTFORGE_VERSION", "")  # empty: the newest on PyPI


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its children (live descendants), in seconds."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


Call = Callable[[httpx.AsyncClient], Awaitable[None]]
ERRORS = [0]


def modern_call(url: str, name: str, headers: dict[str, str]) -> Call:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": "hello"}, "_meta": META}}
    h = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
         "Mcp-Name": name, **headers}

    async def call(client: httpx.AsyncClient) -> None:
        r = await client.post(url, json=body, headers=h)
        if r.status_code != 200 or b"HELLO" not in r.content:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")

    return call


async def open_loop(call: Call, rate: float, seconds: float) -> list[float]:
    """Calls started at a fixed rate (independent of answers), each one's latency in ms."""
    lat: list[float] = []
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        for _ in range(3):
            await call(client)  # warm connections and caches
        tasks, start = [], time.perf_counter()

        async def one() -> None:
            t0 = time.perf_counter()
            try:
                await call(client)
            except httpx.TransportError:  # a kept-alive connection the server closed: counted, not timed
                ERRORS[0] += 1
                return
            lat.append((time.perf_counter() - t0) * 1000)

        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return lat


async def closed_loop(call: Call, workers: int, seconds: float) -> int:
    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=workers)) as client:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                try:
                    await call(client)
                except httpx.TransportError:
                    ERRORS[0] += 1
                    continue
                done += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return done


def _median(values: list[float | None]) -> float | None:
    return None if values[0] is None else statistics.median(v for v in values if v is not None)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 10 else max(values)


def cpu_times() -> tuple[int, int]:
    """(all, steal) jiffies of the machine: steal = time the hypervisor gave this VM's vCPUs to someone else."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields), fields[7]


async def at_rate(call: Call, pid: int | None, rate: float, seconds: float) -> dict:
    c0, (a0, s0) = (cpu_seconds(pid) if pid else 0.0), cpu_times()
    lat = await open_loop(call, rate, seconds)
    cpu = (cpu_seconds(pid) - c0) / len(lat) * 1000 if pid else None
    a1, s1 = cpu_times()
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "cpu_ms": cpu, "steal": 100 * (s1 - s0) / max(1, a1 - a0)}


async def measure(paths: list[tuple[str, Call, int | None]], rates: list[float], seconds: float, workers: int,
                  rounds: int = 1) -> list[dict]:
    """Every path at each rate before the next rate, then each closed loop: paths measured in the same minutes
    see the same background load (this machine is shared), so their differences are what the run supports.
    `rounds` > 1: each rate is measured that many times, the paths interleaved in each round (order alternating),
    and every figure is the median over the rounds (`spread` keeps each round's added p50/p99 for the report)."""
    out = [{"name": name, "rates": {}, "spread": {}} for name, _, _ in paths]
    for rate in rates:
        runs: list[list[dict]] = [[] for _ in paths]
        for r in range(rounds):
            order = list(range(len(paths))) if r % 2 == 0 else list(reversed(range(len(paths))))
            for i in order:
                _, call, pid = paths[i]
                runs[i].append(await at_rate(call, pid, rate, seconds))
        for i, res in enumerate(out):
            res["rates"][rate] = {k: _median([m[k] for m in runs[i]]) for k in ("p50", "p99", "cpu_ms")}
            res["spread"][rate] = [(m["p50"] - b["p50"], m["p99"] - b["p99"], m["steal"])
                                   for m, b in zip(runs[i], runs[0])]
            res["rates"][rate]["steal"] = max(m["steal"] for m in runs[i])
    for res, (_, call, pid) in zip(out, paths):
        c0 = cpu_seconds(pid) if pid else 0.0
        n = await closed_loop(call, workers, seconds)
        res["max_rps"] = n / seconds
        res["loop_cpu_ms"] = (cpu_seconds(pid) - c0) / max(n, 1) * 1000 if pid else None
    return out


PY_SPY = Path(os.environ.get("PY_SPY", "/tmp/gw-bench/venv-prof/bin/py-spy"))


async def profile(pid: int, call: Call, out: Path, seconds: float, workers: int) -> None:
    """py-spy (sampling, idle frames excluded) on the gateway while a closed loop drives it; the collapsed stacks
    feed `python -m bench.mcp_profile DIR/gateway.txt` (self and inclusive time by function)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
                            "250", "--format", "raw", "--output", str(out / "gateway.txt"), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # py-spy attaches
    n = await closed_loop(call, workers, seconds)
    spy.wait(timeout=60)
    print(f"profile: {n} calls in {seconds:g}s under py-spy → {out}", file=sys.stderr)


def contextforge(upstream: str, log_dir: Path) -> tuple[subprocess.Popen[bytes], Call]:
    if not (CF_VENV / "bin" / "mcpgateway").exists():
        subprocess.run([sys.executable, "-m", "venv", str(CF_VENV)], check=True)
        spec = f"mcp-contextforge-gateway=={CF_VERSION}" if CF_VERSION else "mcp-contextforge-gateway"
        subprocess.run([str(CF_VENV / "bin" / "pip"), "install", "-q", spec], check=True, timeout=1200)
    port, secret, data = free_port(), secrets.token_urlsafe(32), Path(tempfile.mkdtemp(prefix="cf-"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{data}/mcp.db", "JWT_SECRET_KEY": secret,
           "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(32), "BASIC_AUTH_PASSWORD": secrets.token_urlsafe(16),
           "PLATFORM_ADMIN_PASSWORD": "Bench-" + secrets.token_urlsafe(12), "MCPGATEWAY_UI_ENABLED": "false",
           "DEFAULT_USER_PASSWORD": "Bench-" + secrets.token_urlsafe(12),
           "MCPGATEWAY_ADMIN_API_ENABLED": "true", "SSRF_PROTECTION_ENABLED": "false", "LOG_LEVEL": "ERROR",
           # its default tiered rate limit (500/min on these endpoints) would refuse a throughput run mid-way
           "RATE_LIMITING_ENABLED": "false",
           "HOST": "127.0.0.1", "PORT": str(port)}
    log = log_dir / "contextforge.log"
    proc = subprocess.Popen([str(CF_VENV / "bin" / "mcpgateway"), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=data, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait_port(port, proc, log, timeout=120)
    token = subprocess.run([str(CF_VENV / "bin" / "python"), "-m", "mcpgateway.utils.create_jwt_token",
                            "--username", "admin@example.com", "--exp", "120", f"--secret={secret}"],  # one token: a secret may start with "-"
                           env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    for _ in range(60):
        if httpx.get(f"{base}/health", timeout=2).status_code == 200:
            break
        time.sleep(1)
    r = httpx.post(f"{base}/gateways", headers=auth, timeout=60,
                   json={"name": "bench-sdk", "url": upstream, "transport": "STREAMABLEHTTP"})
    if r.status_code >= 300:
        raise RuntimeError(f"ContextForge refused the gateway: {r.status_code} {r.text[:500]}")
    tools = httpx.get(f"{base}/tools", headers=auth, timeout=30).json()
    items = tools if isinstance(tools, list) else tools.get("items", tools.get("tools", []))
    tool = next(t for t in items if t.get("originalName", t.get("original_name")) == "shout")
    name = tool.get("name")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {"text": "hello"}}}

    async def call(client: httpx.AsyncClient) -> None:
        resp = await client.post(f"{base}/rpc", json=body, headers=auth)
        if resp.status_code != 200 or b"HELLO" not in resp.content:
            raise RuntimeError(f"ContextForge: {resp.status_code} {resp.text[:300]}")

    return proc, call


def probed(repo: Path, work: Path) -> Path:
    """`repo` as a tree of symlinks plus bench/gcprobe's sitecustomize.py: the host (whose PYTHONPATH is the tree)
    runs under the GC/loop-stall probe without a change to its code."""
    farm = work / "probed-tree"
    farm.mkdir(exist_ok=True)
    for item in repo.iterdir():
        if not (farm / item.name).exists():
            (farm / item.name).symlink_to(item)
    (farm / "sitecustomize.py").symlink_to(ROOT / "bench" / "gcprobe" / "sitecustomize.py")
    return farm


def idle(root: int) -> None:
    """SCHED_IDLE for every thread of `root` and its descendants (threads made later inherit it)."""
    from bench.prepare import tree_pids
    for pid in tree_pids(root):
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
            except OSError:
                pass  # a thread that just ended


def pin(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None:
        from bench.prepare import pin_tree
        pin_tree(pid, cpus)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rates", default="20,100")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-contextforge", action="store_true")
    ap.add_argument("--floor", action="store_true", help="also measure a governance-free Python proxy hop")
    ap.add_argument("--pin", action="store_true", help="proxies on the last CPU, everything else on the others "
                    "(the emulators at SCHED_IDLE there: in Azure, Tables and Cosmos DB are remote services)")
    ap.add_argument("--rounds", type=int, default=1, help="measure each rate this many times, paths interleaved; "
                    "report medians over the rounds")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout (e.g. `git archive main | tar -x -C DIR`) served by a second gateway over "
                         "the same registry, measured interleaved with this one: before/after in one run")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a py-spy profile (collapsed stacks) of the gateway under a closed loop here")
    ap.add_argument("--stall-probe", type=Path, default=None,
                    help="run the gateway under bench/gcprobe (GC pauses, loop steps > 3 ms with 14 frames and "
                         "their thread CPU) and write its summary here")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    proxy_cpus = rest_cpus = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--pin needs at least 2 CPUs")
        proxy_cpus, rest_cpus = {cpus[-1]}, set(cpus[:-1])
        os.sched_setaffinity(0, rest_cpus)  # inherited by the emulators and the MCP server started below
    emu = Emulators(work / "emu", Ports.free())
    stop: list[Callable[[], None]] = [emu.stop]
    results: list[dict] = []
    try:
        emu.start()
        if args.pin:
            for proc in emu.procs.values():
                idle(proc.pid)
        port = free_port()
        upstream = ROOT / "bench" / "fast_mcp_upstream.py"
        server = launch("sdk", [sys.executable, str(upstream), str(port)], port, "/mcp", work)
        stop.append(server.stop)
        _wait_port(port, server.proc, server.log)
        env = gateway_env(emu)
        admin_key = env["GATEWAY_ADMIN_KEY"]
        if args.stall_probe:
            probe_env = {**env, "GC_PROBE_OUT": str(args.stall_probe.resolve()), "LOOP_PROBE_MS": "3",
                         "LOOP_PROBE_FRAMES": "14"}
            gw = gateway(probed(ROOT, work), probe_env, work, "gateway")
        else:
            gw = gateway(ROOT, env, work, "gateway")
        stop.append(gw.stop)
        pin(gw.proc.pid, proxy_cpus)
        key = bench_key(gw.url, admin_key)
        box = await seed(emu.cosmos_connection_string, env["COSMOS_DATABASE"], "bench", Fleet(servers={"sdk": server}))
        auth = {"Authorization": f"Bearer {key}"}
        paths: list[tuple[str, Call, int | None]] = [
            ("direct (bench/fast_mcp_upstream.py)", modern_call(server.url, "shout", {}), None)]
        if args.baseline:  # the same registry and key (one database), served by the other checkout's code
            old = gateway(args.baseline.resolve(), env, work, "baseline")
            stop.append(old.stop)
            pin(old.proc.pid, proxy_cpus)
            paths.append((f"through the baseline gateway ({args.baseline.name})",
                          modern_call(f"{old.url}/mcp/{box.toolbox}", "sdk__shout", auth), old.proc.pid))
        if args.floor:
            floor_port = free_port()
            floor = launch("floor", [sys.executable, str(ROOT / "bench" / "null_mcp_proxy.py"), str(floor_port),
                                     server.url], floor_port, "/mcp", work)
            stop.append(floor.stop)
            _wait_port(floor_port, floor.proc, floor.log)
            pin(floor.proc.pid, proxy_cpus)
            paths.append(("floor: governance-free Python proxy (bench/null_mcp_proxy.py)",
                          modern_call(floor.url, "shout", {}), floor.proc.pid))
        through = modern_call(f"{gw.url}/mcp/{box.toolbox}", "sdk__shout", auth)
        paths.append(("through the gateway toolbox", through, gw.proc.pid))
        if not args.no_contextforge:
            try:
                proc, cf = contextforge(server.url, work)
                stop.append(proc.terminate)
                pin(proc.pid, proxy_cpus)
                paths.append(("through ContextForge (/rpc)", cf, proc.pid))
            except Exception as exc:  # noqa: BLE001 - reported, the rest of the run stands
                print(f"ContextForge not measured: {exc}", file=sys.stderr)
        results = await measure(paths, rates, args.seconds, args.concurrency, args.rounds)
        if args.profile:
            await profile(gw.proc.pid, through, args.profile, args.seconds, args.concurrency)
    finally:
        stop_all(stop)
    base = results[0]
    print("| path | rate (calls/s) | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU ms/call | max calls/s | "
          "CPU ms/call at max | steal % (max) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        for rate, m in res["rates"].items():
            b = base["rates"][rate]
            cpu = f"{m['cpu_ms']:.2f}" if m["cpu_ms"] is not None else "–"
            loop = f"{res['loop_cpu_ms']:.2f}" if res["loop_cpu_ms"] is not None else "–"
            print(f"| {res['name']} | {rate:g} | {m['p50']:.2f} | {m['p99']:.2f} | {m['p50'] - b['p50']:.2f} | "
                  f"{m['p99'] - b['p99']:.2f} | {cpu} | {res['max_rps']:.0f} | {loop} | {m['steal']:.0f} |")
    if args.rounds > 1:
        print(f"\nMedians over {args.rounds} rounds per rate. Each round's added p50 / p99 (ms):")
        for res in results[1:]:
            for rate, spread in res["spread"].items():
                print(f"- {res['name']} @ {rate:g}/s: " + ", ".join(f"{a:+.2f} / {b:+.2f} (steal {c:.0f} %)"
                                                                   for a, b, c in spread))
    print(f"\ntransport errors (not timed): {ERRORS[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
