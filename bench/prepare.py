"""Helpers for bench/run_gateway_bench.sh and bench/quota_accuracy.py (run with the project venv).

    prepare.py up --dir D [--cpu 0] [--sched idle]  emulators (dev.emulators, free ports) pinned to --cpu, plus a generated
                                           local.settings.json and gw.env in D; stays in the foreground until
                                           SIGTERM/SIGINT, then stops the emulators.
    prepare.py provision --gw URL --env D/gw.env --out D/key.txt [--tpm N --rpm N]
                                           project "bench", model "fake-model" -> http://127.0.0.1:9001/v1, a key,
                                           a project quota; then checks that body.json is answered with 200.
    prepare.py coldstart [-n 5] [--cpu 1]  median import time of function_app in fresh processes.
    prepare.py watch --pid-file F|--port P [--emu D/emulators.json] [--root-pid PID] --out F.json
                                           samples a process's VmRSS/VmHWM, the emulators' CPU and the CPU used
                                           outside PID's process tree (noise) until stopped.
    prepare.py profile-summary RAW [--top N]
                                           where a `py-spy record -f raw` profile's time goes (buckets, top frames).
    prepare.py stall-summary PROBE.json WINDOW.json
                                           event-loop stalls recorded by bench/gcprobe (LOOP_PROBE_MS), grouped.
    prepare.py report --run D              markdown table from the harness results + the extras in D.

Loopback only. Everything started here is stopped on exit.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED_BENCH = Path(os.environ.get("SHARED_BENCH", "/work/shared/bench"))
BODY = SHARED_BENCH / "body.json"
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes and /proc

def tree_pids(root: int) -> list[int]:
    """root and all its descendants."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                s = open(f"/proc/{d}/stat").read()
                parents[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
    out, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        if p in out or (p != root and p not in parents):
            continue
        out.append(p)
        frontier += [c for c, pp in parents.items() if pp == p]
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            s = open(f"/proc/{p}/stat").read()
            rest = s[s.rindex(")") + 2:].split()
            total += (int(rest[11]) + int(rest[12])) / CLK
    return total


def status_kb(pid: int, field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def listener_pid(port: int) -> int | None:
    """PID of the process holding a listening TCP socket on 127.0.0.1/0.0.0.0:port (from /proc/net/tcp)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for line in open("/proc/net/tcp").readlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
                inodes.add(f[9])
    if not inodes:
        return None
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{d}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{d}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return int(d)
    return None


def pin_tree(root: int, cpus: set[int]) -> list[tuple[int, list[int]]]:
    """Set the affinity of every thread of root and its descendants (threads made later inherit it)."""
    done = []
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), cpus)
            done.append((pid, sorted(os.sched_getaffinity(pid))))
    return done


# ---------------------------------------------------------------- up: emulators + settings

def settings_values(emu, *, database: str, admin_key: str, hash_secret: str) -> dict[str, str]:
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": emu.storage_connection_string,
        "COSMOS_CONNECTION_STRING": emu.cosmos_connection_string,
        "COSMOS_DATABASE": database,
        "COSMOS_CONTAINER": "registry",
        "COSMOS_CREATE_IF_MISSING": "true",
        "GATEWAY_ADMIN_KEY": admin_key,
        "GATEWAY_KEY_HASH_SECRET": hash_secret,
        "EGRESS_ALLOW_LOOPBACK": "true",
        "LOG_LEVEL": "WARNING",
        **trigger_settings(),
    }


def trigger_settings() -> dict[str, str]:
    """The settings the app's triggers name (`%..._SCHEDULE%`, `%..._QUEUE%`, listed in local.settings.sample.json).
    Timer schedules are set to once a year: the host refuses to start with an undefined one, and a timer firing mid-run (rollups, alerts, sync)
    would be noise in a data-plane measurement. Timer costs are measured on their own."""
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    out = {k: "0 0 0 1 1 *" for k in sample if k.endswith("_SCHEDULE")}
    out.update({k: v for k, v in sample.items() if k.endswith("_QUEUE")})  # queue triggers name theirs by setting
    # In Azure the Functions host polls the queues, not the worker: the local host polls on the worker's own loop,
    # where each poll (the Azure SDK, 1–7 ms of CPU) would be a local-only stall in the data-plane tail. Azure's
    # default interval (1 min) instead of the 2 s host.json asks for approvals.
    out["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] = "00:01:00"
    return out


# What the gateway process gets in its environment (the rest comes from the settings file).
GW_ENV = ("COSMOS_CONNECTION_STRING", "AzureWebJobsStorage", "GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET",
          "EGRESS_ALLOW_LOOPBACK", "LOG_LEVEL")


def start_emulators(data_dir: Path, cpu: int | None, sched: str = "normal"):
    """dev.emulators on free ports. With `cpu`, this process is pinned first so the children inherit it, and the
    children's threads are pinned again afterwards (belt and braces). sched="idle": the emulators get SCHED_IDLE
    (inherited by the node processes), so on their core they only use time the fake upstream and the load
    generator leave free — closer to Azure, where Tables and Cosmos DB are remote services."""
    sys.path.insert(0, str(ROOT))
    from dev.emulators import Emulators, Ports

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if sched == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    emu = Emulators(data_dir, Ports.free())
    emu.start()
    placement = {}
    if cpu is not None:
        for name, proc in emu.procs.items():
            placement[name] = pin_tree(proc.pid, {cpu})
    return emu, placement


def cmd_up(a: argparse.Namespace) -> None:
    d = Path(a.dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu, placement = start_emulators(d / "emulators", a.cpu, a.sched)
    try:
        values = settings_values(emu, database=a.database, admin_key="gwadmin-" + secrets.token_urlsafe(24),
                                 hash_secret=secrets.token_urlsafe(32))
        settings = d / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n")
        settings.chmod(0o600)
        env = "".join(f"export {k}={shlex.quote(values[k])}\n" for k in GW_ENV)
        env += f"export GW_SETTINGS={shlex.quote(str(settings))}\n"
        (d / "emulators.json").write_text(json.dumps(
            {"pids": {n: p.pid for n, p in emu.procs.items()}, "ports": emu.ports.__dict__,
             "placement": {n: [[pid, cpus] for pid, cpus in v] for n, v in placement.items()}}))
        tmp = d / "gw.env.tmp"
        tmp.write_text(env)
        tmp.chmod(0o600)
        tmp.rename(d / "gw.env")  # the shell script waits for this file
        pol = {n: os.sched_getscheduler(p.pid) for n, p in emu.procs.items()}
        print(f"emulators up (cpu {a.cpu}, sched {a.sched}: policy {pol}): {emu.ports} placement={placement}",
              flush=True)
        while not stop:
            if any(p.poll() is not None for p in emu.procs.values()):
                print("an emulator exited", file=sys.stderr, flush=True)
                break
            time.sleep(0.5)
    finally:
        emu.stop()
        print("emulators stopped", flush=True)


# ---------------------------------------------------------------- provision

def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            out[k] = shlex.split(v)[0] if v else ""
    return out


def provision(gw: str, admin_key: str, *, upstream: str = "http://127.0.0.1:9001/v1", rpm: int | None = 10_000_000,
              tpm: int | None = 1_000_000_000, project: str = "bench", model: str = "fake-model") -> str:
    """Create (or reuse) the project, the model and the quota; issue a key and return its secret."""
    import httpx

    with httpx.Client(base_url=gw, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        r = admin.post("/manage/projects", json={"id": project, "name": project,
                                                 "pillars": {"models": {"enabled": True}}})
        if r.status_code != 409:
            r.raise_for_status()
        r = admin.post(f"/manage/projects/{project}/models", json={
            "name": model, "capabilities": ["chat", "streaming"],
            "backends": [{"id": "up", "kind": "openai_compatible", "endpoint": upstream, "deployment": model}]})
        if r.status_code != 409:
            r.raise_for_status()
        limits = {k: v for k, v in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)) if v}
        admin.put(f"/manage/projects/{project}/quotas/project/{project}", json=limits).raise_for_status()
        r = admin.post(f"/manage/projects/{project}/keys", json={"name": "bench"})
        r.raise_for_status()
        return r.json()["secret"]


def check_chat(gw: str, secret: str, tries: int = 20) -> dict:
    """POST the harness's body.json; 200 expected (the new key/model may take a cache TTL to be seen)."""
    import httpx

    last = None
    for _ in range(tries):
        last = httpx.post(f"{gw}/v1/chat/completions", content=BODY.read_bytes(), timeout=10,
                          headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
        if last.status_code == 200:
            return last.json()
        time.sleep(0.5)
    raise SystemExit(f"gateway check failed: HTTP {last.status_code} {last.text[:500]}")


def cmd_provision(a: argparse.Namespace) -> None:
    env = read_env(Path(a.env))
    secret = provision(a.gw, env["GATEWAY_ADMIN_KEY"], rpm=a.rpm, tpm=a.tpm)
    out = Path(a.out)
    out.write_text(secret)
    out.chmod(0o600)
    body = check_chat(a.gw, secret)
    print(f"provisioned: project bench, model fake-model, key {secret[:8]}…; body.json -> 200 "
          f"usage={body.get('usage')}", flush=True)


# ---------------------------------------------------------------- cold start

def _import_times(cmd: list[str], env: dict[str, str], n: int) -> list[float]:
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120)  # warm-up, not counted
    times = []
    for _ in range(n):
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        times.append(float(p.stdout.strip().splitlines()[-1]))
    return times


def cmd_coldstart(a: argparse.Namespace) -> None:
    """`import function_app` in fresh processes, median of n. Two variants:
    - as configured: this shell's environment (here PYTHONDONTWRITEBYTECODE=1 may be set, so modules whose .pyc is
      missing or stale are compiled from source on every start);
    - bytecode cached: PYTHONPYCACHEPREFIX=<work dir> (outside the repo), bytecode writing allowed; the warm-up
      run fills the cache, as a deployed app's second start would find it."""
    code = "import time;t=time.perf_counter();import function_app;print(time.perf_counter()-t)"
    env = dict(os.environ)
    if a.env:
        env.update(read_env(Path(a.env)))
    cmd = ([] if a.cpu is None else ["taskset", "-c", str(a.cpu)]) + [a.python, "-c", code]
    times = _import_times(cmd, env, a.n)
    res = {"coldstart_s": times, "coldstart_median_s": statistics.median(times),
           "PYTHONDONTWRITEBYTECODE": env.get("PYTHONDONTWRITEBYTECODE", "")}
    if a.pycache:
        env2 = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env2["PYTHONPYCACHEPREFIX"] = a.pycache
        cached = _import_times(cmd, env2, a.n)
        res.update(coldstart_cached_s=cached, coldstart_cached_median_s=statistics.median(cached))
    if a.importtime:
        p = subprocess.run(cmd[:-2] + ["-X", "importtime", "-c", "import function_app"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        rows = []
        for line in p.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cum, name = (x.strip() for x in line[12:].split("|"))
                with contextlib.suppress(ValueError):
                    rows.append((int(cum), name))
        res["importtime_top"] = [[round(us / 1000, 1), name] for us, name in sorted(rows, reverse=True)[:25]]
    print(json.dumps({k: v for k, v in res.items() if k != "importtime_top"}))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


# ---------------------------------------------------------------- watch (RSS, emulator CPU)

def _stat_cpu() -> tuple[float, float]:
    """(user+nice+system, steal) seconds of all cores, from /proc/stat (irq/softirq excluded: not charged to tasks)."""
    f = open("/proc/stat").readline().split()
    v = list(map(int, f[1:]))
    return (v[0] + v[1] + v[2]) / CLK, (v[7] if len(v) > 7 else 0) / CLK


def _cpu_with_children(pid: int) -> float:
    """utime+stime+cutime+cstime: a child's CPU moves into its parent's cutime when it is reaped, so the sum over a
    live process tree does not drop when a member (wrk, openloop …) exits."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        s = open(f"/proc/{pid}/stat").read()
        rest = s[s.rindex(")") + 2:].split()
        return sum(int(x) for x in rest[11:15]) / CLK
    return 0.0


class ForeignCpu:
    """CPU used on this machine outside our own process tree (another user's tests, builds …) plus steal time:
    the noise the harness cannot see. Our tree = root_pid and its descendants."""

    def __init__(self, root_pid: int) -> None:
        self.root = root_pid
        self.ours0 = self._ours()
        self.busy0, self.steal0 = _stat_cpu()

    def _ours(self) -> float:
        return sum(_cpu_with_children(p) for p in tree_pids(self.root))

    def sample(self) -> tuple[float, float]:
        ours = self._ours()
        busy, steal = _stat_cpu()
        return round(busy - self.busy0 - (ours - self.ours0), 2), round(steal - self.steal0, 2)


def cmd_watch(a: argparse.Namespace) -> None:
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu_roots = list(json.loads(Path(a.emu).read_text())["pids"].values()) if a.emu else []
    emu_pids = [p for r in emu_roots for p in tree_pids(r)]
    emu0 = cpu_seconds(emu_pids)
    foreign = ForeignCpu(a.root_pid) if a.root_pid else None
    pid_file = Path(a.pid_file) if a.pid_file else None
    # samples: [unix time, gateway VmRSS kB | None, foreign CPU s (cumulative), steal s (cumulative)]
    rec: dict = {"samples": []}
    pid = None
    gone = False
    while not stop:
        if pid is None and pid_file is not None and pid_file.exists() and pid_file.read_text().strip():
            pid = int(pid_file.read_text().strip())
        elif pid is None and a.port:
            pid = listener_pid(a.port)
        if pid is not None and "pid" not in rec:
            rec["pid"] = pid
            with contextlib.suppress(OSError):
                rec["cmdline"] = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")[:300]
        rss = None
        if pid is not None and not gone:
            rss, hwm = status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")
            if rss is None:
                gone = True  # the process has exited: keep its last sample
                if not foreign:
                    break
            else:
                rec.update(last_rss_kb=rss, hwm_kb=hwm, last_sample=time.strftime("%H:%M:%S"))
        f, st = foreign.sample() if foreign else (None, None)
        rec["samples"].append([round(time.time(), 1), rss, f, st])
        rec["emulators_cpu_s"] = round(cpu_seconds(emu_pids) - emu0, 2)
        Path(a.out).write_text(json.dumps(rec))
        time.sleep(a.interval)
    Path(a.out).write_text(json.dumps(rec))


def foreign_during(samples: list, t_end: float, seconds: float) -> tuple[float | None, float | None]:
    """% of one core used by foreign processes, and steal %, in [t_end - seconds, t_end]."""
    pts = [s for s in samples if len(s) > 3 and s[2] is not None]
    before = [s for s in pts if s[0] <= t_end - seconds]
    after = [s for s in pts if s[0] >= t_end]
    if not before or not after:
        return None, None
    a, b = before[-1], after[0]
    dt = b[0] - a[0]
    return round(100 * (b[2] - a[2]) / dt, 1), round(100 * (b[3] - a[3]) / dt, 1)


# Where a sample's time goes: the leaf-most frame that matches one of these (file path substrings, "^" = at the
# start of py-spy's shortened path; first match wins per frame) names the bucket; stdlib frames are charged to
# their nearest matching caller.
BUCKETS = (
    ("circuit breaker (shared/routing/breaker.py)", ("shared/routing/breaker.py",)),
    ("failover / routing (shared/routing)", ("shared/routing/",)),
    ("quota admission + settle (shared/quotas)", ("shared/quotas/",)),
    ("token estimate (shared/pillars/models/tokens, tiktoken)", ("shared/pillars/models/tokens/", "tiktoken")),
    ("usage log (shared/usage)", ("shared/usage/",)),
    ("auth, keys, flags, caches", ("shared/auth/", "shared/flags/", "shared/cache.py", "shared/pillars/models/catalog.py",
                                   "shared/quotas/book.py")),
    ("pydantic (validation/serialisation)", ("pydantic",)),
    ("upstream HTTP client (shared/upstreams, openai_http, httpx)", ("shared/upstreams/", "shared/pillars/models/openai_http.py",
                                                                    "^httpx/", "^httpcore/", "^anyio/", "^h11/", "^sniffio")),
    ("Azure SDK / aiohttp (Tables, Cosmos)", ("^azure/", "^aiohttp/", "^tables/", "^cosmos/", "^core/")),
    ("HTTP server (uvicorn/httptools)", ("uvicorn/", "httptools")),
    ("starlette request/response", ("starlette/",)),
    ("local host dispatch (dev/host)", ("dev/host/",)),
    ("pipeline + pillar + web layer (shared/pipeline, shared/pillars, shared/web, functions)", ("shared/", "functions/")),
    ("event loop (asyncio/uvloop internals)", ("asyncio/", "uvloop", "selectors.py")),
    ("threads (executor: netrc, DNS, tiktoken load)", ("threading.py", "concurrent/")),
)


def bucket_of(frames: list[str]) -> str:
    for f in reversed(frames):
        loc = f[f.rfind("(") + 1:] if "(" in f else f
        for name, pats in BUCKETS:
            if any(loc.startswith(p[1:]) if p[0] == "^" else p in loc for p in pats):
                return name
    return "other"


def profile_summary(raw: str, top: int = 25) -> str:
    """py-spy `-f raw` lines: 'frame;frame;...;leaf count' (root first)."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    buckets: dict[str, int] = {}
    total = 0
    for line in open(raw):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
        b = bucket_of(frames)
        buckets[b] = buckets.get(b, 0) + n
    if not total:
        return "no samples"

    def short(f: str) -> str:
        return f.replace(str(ROOT) + "/", "")

    out = [f"samples: {total} (non-idle; py-spy drops idle samples)", "where the time goes (leaf-most attribution):"]
    for b, v in sorted(buckets.items(), key=lambda kv: -kv[1]):
        out.append(f"  {100 * v / total:5.1f}%  {b}")
    out.append("top self time:")
    for f, v in sorted(self_t.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * v / total:5.1f}%  {short(f)}")
    out.append("top inclusive (excluding the event-loop/server root frames):")
    roots = ("<module>", "run (uvicorn", "main (", "_run (asyncio/events", "run_forever", "_run_once", "run_until",
             "run (asyncio", "serve (uvicorn", "_serve (uvicorn", "startup", "_main (", "_run_module", "_run_code")
    n = 0
    for f, v in sorted(incl.items(), key=lambda kv: -kv[1]):
        if any(f.startswith(r) or r in f for r in roots):
            continue
        out.append(f"  {100 * v / total:5.1f}%  {short(f)}")
        n += 1
        if n >= top:
            break
    return "\n".join(out)


def stall_summary(probe: dict, t0: float, t1: float, top: int = 8) -> list[str]:
    """Event-loop stalls recorded by bench/gcprobe (LOOP_PROBE_MS) within [t0, t1], grouped by what ran; a stall
    that contains a gen-2 collection is counted as GC."""
    gcs = [(t, ms) for t, gen, ms in probe.get("timed_gen1_gen2", []) if gen == 2 and t0 <= t <= t1]
    slow = [x for x in probe.get("slow_callbacks", []) if t0 <= x[0] <= t1]
    groups: dict[str, list[float]] = {}
    for t, ms, what, *_details in slow:  # gcprobe rows may carry a 4th field (CPU, GC, samples)
        in_gc = any(t - ms / 1000 - 0.001 <= gt <= t + 0.001 for gt, _ in gcs)
        key = ("[contains a gen-2 GC] " if in_gc else "") + " > ".join(what.split(" > ")[:3])
        groups.setdefault(key, []).append(ms)
    out = [f"loop callbacks > {probe.get('loop_probe_ms')} ms in {t1 - t0:.0f} s: {len(slow)}; gen-2 GCs: {len(gcs)} "
           f"(max {max((m for _, m in gcs), default=0):.1f} ms)"]
    for key, v in sorted(groups.items(), key=lambda kv: -sum(kv[1]))[:top]:
        out.append(f"  {len(v):4}x  max {max(v):6.1f} ms  median {statistics.median(v):5.1f} ms  {key}")
    return out


def cmd_stall_summary(a: argparse.Namespace) -> None:
    w = json.loads(Path(a.window).read_text())
    print("\n".join(stall_summary(json.loads(Path(a.probe).read_text()), w["t0"], w["t1"])))


def cmd_profile_summary(a: argparse.Namespace) -> None:
    print(profile_summary(a.raw, a.top))


# ---------------------------------------------------------------- report

def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarise(results: Path, names: tuple[str, ...]) -> dict:
    recs = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    S: dict = {n: {"rate": {}, "closed": {}, "ttfb": {}} for n in names}
    for n in names:
        mine = [r for r in recs if r["name"] == n]
        for rate in sorted({r["target_rps"] for r in mine if r["mode"] == "rate"}):
            g = [r for r in mine if r["mode"] == "rate" and r["target_rps"] == rate]
            S[n]["rate"][rate] = {k: _med([r.get(k) for r in g]) for k in
                                  ("p50_ms", "p90_ms", "p99_ms", "rps", "server_cpu_ms_per_req")}
            S[n]["rate"][rate]["errors"] = sum(r["errors"] for r in g)
            S[n]["rate"][rate]["p99_range"] = [min(r["p99_ms"] for r in g), max(r["p99_ms"] for r in g)]
            S[n]["rate"][rate]["p50_range"] = [min(r["p50_ms"] for r in g), max(r["p50_ms"] for r in g)]
        for c in sorted({r["conc"] for r in mine if r["mode"] == "closed"}):
            g = [r for r in mine if r["mode"] == "closed" and r["conc"] == c]
            S[n]["closed"][c] = {k: _med([r.get(k) for r in g]) for k in ("rps", "p50_ms", "p99_ms",
                                                                          "server_cpu_ms_per_req")}
            S[n]["closed"][c]["errors"] = sum(r["errors"] for r in g)
            S[n]["closed"][c]["core0"] = _med([r["core_busy_pct"].get("cpu0") for r in g])
            S[n]["closed"][c]["core1"] = _med([r["core_busy_pct"].get("cpu1") for r in g])
        g = [r for r in mine if r["mode"] == "ttfb"]
        if g:
            S[n]["ttfb"] = {k: _med([r.get(k) for r in g]) for k in
                            ("headers_p50_ms", "first_content_p50_ms", "total_p50_ms", "first_content_p90_ms")}
            S[n]["ttfb"]["errors"] = sum(r["errors"] for r in g)
    return S


def fmt(v, nd=2, plus=False):
    if v is None:
        return "–"
    s = f"{v:.{nd}f}"
    return ("+" + s if plus and v >= 0 else s)


def cmd_report(a: argparse.Namespace) -> None:
    run = Path(a.run)
    harness = run / "harness"
    names = ("direct", "litellm", "ours")
    S = summarise(harness / "results.jsonl", names)
    extras = {}
    for f in ("coldstart.json", "watch.json", "litellm_watch.json"):
        with contextlib.suppress(OSError, ValueError):
            extras[f] = json.loads((run / f).read_text())
    d = S["direct"]
    lines = []
    rates = sorted(d["rate"])
    lines.append("| metric | ours | LiteLLM | direct |")
    lines.append("|---|---|---|---|")
    for rate in rates:
        for q in ("p50", "p99"):
            row = [f"overhead {q} @ {rate:g} req/s (ms)"]
            for n in ("ours", "litellm"):
                r = S[n]["rate"].get(rate)
                row.append(fmt(r[f"{q}_ms"] - d["rate"][rate][f"{q}_ms"], 2, True) if r else "–")
            row.append(f"{fmt(d['rate'][rate][f'{q}_ms'])} (abs)")
            lines.append("| " + " | ".join(row) + " |")
    for rate in rates:
        row = [f"server CPU ms/req @ {rate:g} req/s"]
        for n in ("ours", "litellm"):
            r = S[n]["rate"].get(rate)
            row.append(fmt(r["server_cpu_ms_per_req"], 3) if r else "–")
        row.append(fmt(d["rate"][rate]["server_cpu_ms_per_req"], 3) + " (upstream)")
        lines.append("| " + " | ".join(row) + " |")
    row = ["max throughput, closed loop (req/s)"]
    for n in ("ours", "litellm", "direct"):
        best = max(S[n]["closed"].items(), key=lambda kv: kv[1]["rps"] or 0, default=None)
        row.append(f"{best[1]['rps']:.0f} (c={best[0]})" if best else "–")
    lines.append("| " + " | ".join(row) + " |")
    for n_key, label in (("headers_p50_ms", "TTFB headers p50"), ("first_content_p50_ms", "time to first content p50"),
                         ("total_p50_ms", "stream total p50")):
        row = [f"{label}, delta vs direct (ms)"]
        for n in ("ours", "litellm"):
            t = S[n]["ttfb"]
            row.append(fmt(t[n_key] - d["ttfb"][n_key], 2, True) if t and d["ttfb"] else "–")
        row.append(f"{fmt(d['ttfb'].get(n_key))} (abs)" if d["ttfb"] else "–")
        lines.append("| " + " | ".join(row) + " |")
    w, lw = extras.get("watch.json", {}), extras.get("litellm_watch.json", {})
    lines.append(f"| RSS after the run (MB) | {fmt((w.get('last_rss_kb') or 0) / 1024, 0)} "
                 f"(peak {fmt((w.get('hwm_kb') or 0) / 1024, 0)}) | "
                 f"{fmt((lw.get('last_rss_kb') or 0) / 1024, 0) if lw else '–'} | – |")
    cs = extras.get("coldstart.json", {})
    lines.append(f"| cold import of function_app (s, median of {len(cs.get('coldstart_s', []))}) | "
                 f"{fmt(cs.get('coldstart_median_s'), 3)}"
                 + (f" (bytecode cached: {fmt(cs.get('coldstart_cached_median_s'), 3)})"
                    if cs.get("coldstart_cached_median_s") is not None else "") + " | – | – |")
    errs = {n: sum(v["errors"] for m in ("rate", "closed") for v in S[n][m].values()) for n in names}
    lines.append(f"| errors (all rate+closed runs) | {errs['ours']} | {errs['litellm']} | {errs['direct']} |")
    table = "\n".join(lines)

    # targets
    T = []
    def chk(label, ok, value):
        T.append(f"| {label} | {value} | {'met' if ok else '**not met**'} |")
    for rate in (100.0, 200.0):
        r = S["ours"]["rate"].get(rate)
        if r and rate in d["rate"]:
            o50 = r["p50_ms"] - d["rate"][rate]["p50_ms"]
            o99 = r["p99_ms"] - d["rate"][rate]["p99_ms"]
            chk(f"overhead p50 ≤ 1 ms @ {rate:g}/s", o50 <= 1.0, f"{o50:+.2f} ms")
            chk(f"overhead p99 ≤ 3 ms @ {rate:g}/s", o99 <= 3.0, f"{o99:+.2f} ms")
    cpu = [S["ours"]["rate"][r]["server_cpu_ms_per_req"] for r in (100.0, 200.0) if r in S["ours"]["rate"]]
    if cpu:
        chk("CPU ≤ 1.5 ms/request (100 and 200/s)", max(cpu) <= 1.5, " / ".join(f"{c:.3f}" for c in cpu) + " ms")
    if S["ours"]["closed"]:
        best = max(v["rps"] for v in S["ours"]["closed"].values())
        chk("max throughput ≥ 600 req/s", best >= 600, f"{best:.0f} req/s")
    if S["ours"]["ttfb"] and d["ttfb"]:
        dt = S["ours"]["ttfb"]["first_content_p50_ms"] - d["ttfb"]["first_content_p50_ms"]
        chk("+TTFB (first content) ≤ 1.5 ms", dt <= 1.5, f"{dt:+.2f} ms")
    if w.get("last_rss_kb"):
        chk("RSS ≤ 200 MB", w["last_rss_kb"] / 1024 <= 200, f"{w['last_rss_kb'] / 1024:.0f} MB")
    if cs.get("coldstart_median_s") is not None:
        chk("cold import ≤ 1 s", cs["coldstart_median_s"] <= 1.0, f"{cs['coldstart_median_s']:.3f} s")
    targets = "| target | measured | |\n|---|---|---|\n" + "\n".join(T)
    emu = w.get("emulators_cpu_s")
    text = f"## Results ({run.name})\n\n{table}\n\n### Targets\n\n{targets}\n"
    if emu is not None:
        recs = [json.loads(x) for x in (harness / "results.jsonl").read_text().splitlines() if x.strip()]
        req = sum(r.get("requests", 0) for r in recs if r["name"] == "ours" and r["mode"] in ("rate", "closed"))
        text += (f"\nEmulators (Azurite + Cosmos server, core 0) used {emu:.1f} CPU-s during the harness run "
                 f"(≈ {1000 * emu / req:.2f} ms per gateway request over {req} rate+closed requests; not "
                 f"included in the gateway's CPU/request).\n" if req else "")
    samples = w.get("samples") or []
    if samples and len(samples[0]) > 3:
        recs = [json.loads(x) for x in (harness / "results.jsonl").read_text().splitlines() if x.strip()]
        rows = []
        for r in recs:
            if r["mode"] not in ("rate", "closed"):
                continue
            t_end = time.mktime(time.strptime(r["ts"], "%Y-%m-%dT%H:%M:%S"))
            f, st = foreign_during(samples, t_end, float(r.get("duration_s") or 10) + 1)
            f = None if f is None else max(0.0, f)  # ±1 % is sampling noise; clamp the small negatives
            load = f"{r['target_rps']:g}/s" if r["mode"] == "rate" else f"c={r['conc']}"
            rows.append((r["name"], r["mode"], load, r.get("rep"), f, st))
        known = [x for x in rows if x[4] is not None]
        if known:
            worst = max(known, key=lambda x: x[4])
            noisy = [x for x in known if x[4] > 10 or (x[5] or 0) > 5]
            text += (f"\nNoise (CPU used outside this benchmark's processes, % of one core, per run): median "
                     f"{statistics.median(x[4] for x in known):.1f}%, worst {worst[4]:.1f}% ({' '.join(map(str, worst[:4]))});"
                     f" steal max {max((x[5] or 0) for x in known):.1f}%. "
                     + (f"Runs above 10% foreign CPU or 5% steal: {', '.join(f'{x[0]} {x[1]} {x[2]} rep {x[3]} ({x[4]}%)' for x in noisy)}."
                        if noisy else "No run above 10% foreign CPU or 5% steal.") + "\n")
            (run / "noise.json").write_text(json.dumps(rows))
    for name, label in (("prof-rate", "open loop"), ("prof-closed", "closed loop")):
        if (run / f"{name}.raw").exists():
            summary = profile_summary(str(run / f"{name}.raw"), 12)
            head = summary.split("top self time:")[0].splitlines()
            text += f"\n### Profile, {label} ({name}.raw / {name}.svg)\n\n```\n" + "\n".join(
                [h for h in head if not h.strip().startswith(("0.", "0%"))][:12]) + "\n```\n"
    gcp, win = run / "gc-prof.json", run / "prof-rate-window.json"
    if gcp.exists() and win.exists():
        g, wnd = json.loads(gcp.read_text()), json.loads(win.read_text())
        span = wnd["t1"] - wnd["t0"]
        inside = [x for x in g.get("timed_gen1_gen2", []) if wnd["t0"] <= x[0] <= wnd["t1"]]
        g2 = sorted(x[2] for x in inside if x[1] == 2)
        g1 = sorted(x[2] for x in inside if x[1] == 1)
        text += (f"\nGC pauses during the {span:.0f} s open-loop profile load ({wnd['rate']} req/s, bench/gcprobe): "
                 f"gen2 {len(g2)}× (max {g2[-1] if g2 else 0:.1f} ms, {sum(g2):.0f} ms total), gen1 {len(g1)}× "
                 f"(max {g1[-1] if g1 else 0:.2f} ms); gen0 over the whole process life: "
                 f"{g['gen0']['count']}× (max {g['gen0']['max_ms']} ms). Thresholds {g['thresholds']}.\n")
    stall, swin = run / "gc-stall.json", run / "stall-window.json"
    if stall.exists() and swin.exists():
        wnd = json.loads(swin.read_text())
        text += (f"\n### Event-loop stalls at {wnd['rate']} req/s (diagnosis run on the asyncio loop, as in Azure; "
                 f"bench/gcprobe LOOP_PROBE_MS)\n\n```\n"
                 + "\n".join(stall_summary(json.loads(stall.read_text()), wnd["t0"], wnd["t1"])) + "\n```\n")
        with contextlib.suppress(OSError, ValueError, IndexError):
            o = json.loads((run / "stall-load.json").read_text())
            text += (f"\nLatency seen by the client in that run: p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, "
                     f"max {o['max_ms']} ms.\n")
    (run / "report.md").write_text(text)
    (run / "summary.json").write_text(json.dumps({"summary": S, "extras": extras}, indent=1, default=str))
    print(text)


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--dir", required=True)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--database", default="bench")
    p.add_argument("--sched", choices=["normal", "idle"], default="normal")
    p = sub.add_parser("provision")
    p.add_argument("--gw", default="http://127.0.0.1:4100")
    p.add_argument("--env", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rpm", type=int, default=10_000_000)
    p.add_argument("--tpm", type=int, default=1_000_000_000)
    p = sub.add_parser("coldstart")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--env")
    p.add_argument("--importtime", action="store_true")
    p.add_argument("--pycache", help="also measure with bytecode cached under this folder (PYTHONPYCACHEPREFIX)")
    p.add_argument("--out")
    p = sub.add_parser("watch")
    p.add_argument("--pid-file")
    p.add_argument("--port", type=int, help="watch the process listening on this port instead")
    p.add_argument("--root-pid", type=int, help="also record CPU used outside this process tree (noise)")
    p.add_argument("--emu")
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p = sub.add_parser("profile-summary")
    p.add_argument("raw")
    p.add_argument("--top", type=int, default=25)
    p = sub.add_parser("stall-summary")
    p.add_argument("probe")
    p.add_argument("window")
    p = sub.add_parser("report")
    p.add_argument("--run", required=True)
    a = ap.parse_args()
    {"up": cmd_up, "provision": cmd_provision, "coldstart": cmd_coldstart, "watch": cmd_watch,
     "profile-summary": cmd_profile_summary, "stall-summary": cmd_stall_summary, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
