"""Helpers for bench/run_gateway_bench.sh and bench/quota_accuracy.py (run with the project venv).

    prepare.py up --dir D [--cpu 0]        emulators (dev.emulators, free ports) pinned to --cpu, plus a generated
                                           local.settings.json and gw.env in D; stays in the foreground until
                                           SIGTERM/SIGINT, then stops the emulators.
    prepare.py provision --gw URL --env D/gw.env --out D/key.txt [--tpm N --rpm N]
                                           project "bench", model "fake-model" -> http://127.0.0.1:9001/v1, a key,
                                           a project quota; then checks that body.json is answered with 200.
    prepare.py coldstart [-n 5] [--cpu 1]  median import time of function_app in fresh processes.
    prepare.py watch --pid-file F --emu D/emulators.json --out F.json
                                           samples the gateway's VmRSS/VmHWM and the emulators' CPU until stopped.
    prepare.py profile-summary RAW [--top N]
                                           top frames of a `py-spy record -f raw` profile (self and inclusive).
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
    }


# What the gateway process gets in its environment (the rest comes from the settings file).
GW_ENV = ("COSMOS_CONNECTION_STRING", "AzureWebJobsStorage", "GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET",
          "EGRESS_ALLOW_LOOPBACK", "LOG_LEVEL")


def start_emulators(data_dir: Path, cpu: int | None):
    """dev.emulators on free ports. With `cpu`, this process is pinned first so the children inherit it, and the
    children's threads are pinned again afterwards (belt and braces)."""
    sys.path.insert(0, str(ROOT))
    from dev.emulators import Emulators, Ports

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
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
    emu, placement = start_emulators(d / "emulators", a.cpu)
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
        print(f"emulators up (cpu {a.cpu}): {emu.ports} placement={placement}", flush=True)
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

def cmd_coldstart(a: argparse.Namespace) -> None:
    code = "import time;t=time.perf_counter();import function_app;print(time.perf_counter()-t)"
    env = dict(os.environ)
    if a.env:
        env.update(read_env(Path(a.env)))
    cmd = ([] if a.cpu is None else ["taskset", "-c", str(a.cpu)]) + [a.python, "-c", code]
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120)  # .pyc warm, not counted
    times = []
    for _ in range(a.n):
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        times.append(float(p.stdout.strip().splitlines()[-1]))
    res = {"coldstart_s": times, "coldstart_median_s": statistics.median(times)}
    if a.importtime:
        p = subprocess.run(cmd[:-2] + ["-X", "importtime", "-c", "import function_app"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        rows = []
        for line in p.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cum, name = (x.strip() for x in line[12:].split("|"))
                with contextlib.suppress(ValueError):
                    rows.append((int(cum), name))
        top = [(us, n) for us, n in sorted(rows, reverse=True) if not n.startswith(" ") or n.count(" ") <= 4]
        res["importtime_top"] = [[round(us / 1000, 1), n.strip()] for us, n in top[:25]]
    print(json.dumps(res))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


# ---------------------------------------------------------------- watch (RSS, emulator CPU)

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
    pid_file = Path(a.pid_file) if a.pid_file else None
    rec: dict = {"samples": []}
    pid = None
    while not stop:
        if pid is None and pid_file is not None and pid_file.exists() and pid_file.read_text().strip():
            pid = int(pid_file.read_text().strip())
        elif pid is None and a.port:
            pid = listener_pid(a.port)
        if pid is not None and "pid" not in rec:
            rec["pid"] = pid
            with contextlib.suppress(OSError):
                rec["cmdline"] = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")[:300]
        if pid is not None:
            rss, hwm = status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")
            if rss is None:
                break  # the gateway has exited: keep the last sample
            rec.update(last_rss_kb=rss, hwm_kb=hwm, last_sample=time.strftime("%H:%M:%S"))
            rec["samples"].append([round(time.time(), 1), rss])
        rec["emulators_cpu_s"] = round(cpu_seconds(emu_pids) - emu0, 2)
        Path(a.out).write_text(json.dumps(rec))
        time.sleep(a.interval)
    Path(a.out).write_text(json.dumps(rec))


# ---------------------------------------------------------------- profile summary

def cmd_profile_summary(a: argparse.Namespace) -> None:
    """py-spy `-f raw` lines: 'frame;frame;...;leaf count' (root first)."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in open(a.raw):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n

    def short(f: str) -> str:
        f = f.replace(str(ROOT) + "/", "").replace("/work/main/.venv/lib/python3.11/site-packages/", "")
        return f.replace("/usr/local/lib/python3.11/", "").replace("/usr/lib/python3.11/", "")

    out = [f"samples: {total}"]
    out.append("top self time:")
    for f, v in sorted(self_t.items(), key=lambda kv: -kv[1])[:a.top]:
        out.append(f"  {100 * v / total:5.1f}%  {short(f)}")
    out.append("top inclusive (gateway + libraries, excluding the event-loop root frames):")
    roots = ("<module>", "run (uvicorn", "main (", "_run (asyncio/events", "run_forever", "_run_once", "run_until",
             "run (asyncio", "serve (uvicorn", "_serve (uvicorn", "startup", "_main (", "_run_module", "_run_code")
    for f, v in sorted(incl.items(), key=lambda kv: -kv[1]):
        if any(f.startswith(r) or r in f for r in roots):
            continue
        out.append(f"  {100 * v / total:5.1f}%  {short(f)}")
        if len(out) > 2 * a.top + 3:
            break
    print("\n".join(out))


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
                 f"{fmt(cs.get('coldstart_median_s'), 3)} | – | – |")
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
    best = max((v["rps"] for v in S["ours"]["closed"].values()), default=0)
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
    p.add_argument("--out")
    p = sub.add_parser("watch")
    p.add_argument("--pid-file")
    p.add_argument("--port", type=int, help="watch the process listening on this port instead")
    p.add_argument("--emu")
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p = sub.add_parser("profile-summary")
    p.add_argument("raw")
    p.add_argument("--top", type=int, default=25)
    p = sub.add_parser("report")
    p.add_argument("--run", required=True)
    a = ap.parse_args()
    {"up": cmd_up, "provision": cmd_provision, "coldstart": cmd_coldstart, "watch": cmd_watch,
     "profile-summary": cmd_profile_summary, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
