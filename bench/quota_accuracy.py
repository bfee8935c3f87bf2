"""Quota accuracy across instances: how many tokens do 3 gateway processes admit in one minute against a shared
`tokens_per_minute` limit?

    .venv/bin/python bench/quota_accuracy.py                    # 4 windows, alternating the two request shapes
    .venv/bin/python bench/quota_accuracy.py --windows 2 --mode max_tokens

Set-up (all loopback, all stopped on exit): emulators from dev.emulators on free ports (core 0); the reference fake
upstream on :9001 (started on core 0 unless one already answers); 3 gateway processes (`python -m dev.host`, ports
4101-4103, core 1 by default) sharing the emulators, COSMOS_DATABASE and GATEWAY_KEY_HASH_SECRET; one project with a
project quota of --tpm tokens per minute (nothing else), one model, one key.

Each window: wait for a minute boundary, then --clients-per-gateway x 3 concurrent clients send chat requests,
round-robin across the 3 gateways, until --stop-at seconds into the minute (before it ends). admitted = the sum of
`usage.total_tokens` of the 200 responses; overshoot = (admitted - limit) / limit; under-admission = limit - admitted
when positive (budget leased by an instance and not used by the end of the window).

Request shapes (--mode, a comma list; the windows cycle through it):
  max_tokens     the harness body (max_tokens 16): estimate = prompt + 16 > the upstream's usage (19 tokens), so each
                 call is refunded locally after the call;
  no_max_tokens  no max_tokens: the estimate is the prompt only, below the usage, so every call charges the excess
                 (to the local pool, else to the shared row) — the path that can overshoot;
  stream_long    stress case, not in the default: streamed, no max_tokens, against a second fake upstream (:9002,
                 FAKE_STREAM_CHUNKS=--long-chunks) whose usage is 12 + chunks tokens, far above the estimate.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prepare  # noqa: E402  (bench/prepare.py)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = prepare.SHARED_BENCH
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/gw-bench"))
UP = "http://127.0.0.1:9001"


def port_open(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Procs:
    """Everything this script starts; stopped in reverse order."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen] = []
        self.emulators = None

    def start(self, cmd: list[str], log: Path, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        self.items.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.items):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.items):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.items.clear()
        if self.emulators is not None:
            self.emulators.stop()
            self.emulators = None


UP_LONG_PORT = 9002
MODES = ("max_tokens", "no_max_tokens", "stream_long")


def body_for(mode: str) -> dict:
    body = json.loads((SHARED / "body.json").read_text())
    if mode in ("no_max_tokens", "stream_long"):
        body.pop("max_tokens", None)
    if mode == "stream_long":
        body.update(model="fake-model-long", stream=True, stream_options={"include_usage": True})
    return body


def gateway_estimate(body: dict) -> int | None:
    """The admission estimate the gateway makes for this body (its own estimator, imported from the repo)."""
    try:
        sys.path.insert(0, str(ROOT))
        from shared.pillars.models.tokens import TokenEstimator

        t = TokenEstimator()
        return t.estimate_chat_prompt(body, body["model"], body["model"]) + t.requested_completion(body, 0)
    except Exception as exc:  # noqa: BLE001 - informative only
        print(f"(could not compute the gateway's estimate: {exc!r})")
        return None


async def run_window(gateways: list[str], secret: str, body: dict, *, clients: int, stop_at: float,
                     backoff_429: float) -> dict:
    """Start right after the next minute boundary; stop sending at `stop_at` s into the minute."""
    now = time.time()
    start = (int(now // 60) + 1) * 60
    await asyncio.sleep(start - now + 0.15)
    window_id = datetime.fromtimestamp(start, timezone.utc).strftime("%H:%M")
    stop = start + stop_at
    raw = json.dumps(body).encode()
    stream = bool(body.get("stream"))
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    stats = {"ok": 0, "tokens": 0, "429": 0, "other": {}, "errors": {}, "late": 0, "first_429_s": None,
             "by_gateway": {g: {"ok": 0, "tokens": 0, "429": 0} for g in gateways}}
    rr = 0
    lat: list[float] = []
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal rr
            while time.time() < stop:
                g = gateways[rr % len(gateways)]
                rr += 1
                t0 = time.time()
                n = None
                try:
                    if stream:
                        async with client.stream("POST", f"{g}/v1/chat/completions", content=raw,
                                                 headers=headers) as r:
                            if r.status_code == 200:
                                async for line in r.aiter_lines():
                                    if line.startswith("data: {") and '"usage"' in line:
                                        u = json.loads(line[6:]).get("usage")
                                        n = int(u["total_tokens"]) if u else n
                            else:
                                await r.aread()
                    else:
                        r = await client.post(f"{g}/v1/chat/completions", content=raw, headers=headers)
                except httpx.HTTPError as exc:
                    stats["errors"][type(exc).__name__] = stats["errors"].get(type(exc).__name__, 0) + 1
                    await asyncio.sleep(0.05)
                    continue
                t1 = time.time()
                if t1 >= start + 60:
                    stats["late"] += 1  # answered after the window ended: not counted
                    continue
                if r.status_code == 200 and stream and n is None:
                    stats["other"]["200 without usage"] = stats["other"].get("200 without usage", 0) + 1
                elif r.status_code == 200:
                    n = n if stream else int(r.json()["usage"]["total_tokens"])
                    stats["ok"] += 1
                    stats["tokens"] += n
                    stats["by_gateway"][g]["ok"] += 1
                    stats["by_gateway"][g]["tokens"] += n
                    lat.append((t1 - t0) * 1000)
                elif r.status_code == 429:
                    stats["429"] += 1
                    stats["by_gateway"][g]["429"] += 1
                    if stats["first_429_s"] is None:
                        stats["first_429_s"] = round(t0 - start, 2)
                    await asyncio.sleep(backoff_429)
                else:
                    stats["other"][str(r.status_code)] = stats["other"].get(str(r.status_code), 0) + 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker() for _ in range(clients)))
    stats["window"] = window_id
    stats["p50_ms"] = round(statistics.median(lat), 2) if lat else None
    stats["sent_until_s"] = round(time.time() - start, 2)
    return stats


def shared_row_total(conn: str, project: str, window_start_utc: str) -> int | None:
    """The shared counter row of the window (what the instances leased + excess charged)."""
    try:
        from azure.data.tables import TableClient

        day = datetime.now(timezone.utc).strftime("%Y%m%d")
        row = f"tokens_per_minute:m{day}{window_start_utc.replace(':', '')}"
        with TableClient.from_connection_string(conn, "gatewayquotas") as t:
            return int(t.get_entity(f"{project}|project|{project}", row)["total"])
    except Exception as exc:  # noqa: BLE001 - informative only
        print(f"(shared row not read: {type(exc).__name__})")
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--mode", default="max_tokens,no_max_tokens", help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--long-chunks", type=int, default=100, help="stream_long: content chunks (= completion tokens)")
    ap.add_argument("--tpm", type=int, default=60_000)
    ap.add_argument("--clients-per-gateway", type=int, default=30)
    ap.add_argument("--ports", default="4101,4102,4103")
    ap.add_argument("--gw-cpus", default="1", help="taskset list for the gateways ('' = no pinning)")
    ap.add_argument("--stop-at", type=float, default=56.0, help="seconds into the minute to stop sending")
    ap.add_argument("--backoff-429", type=float, default=0.02)
    ap.add_argument("--lease-fraction", help="QUOTA_LEASE_FRACTION for the gateways (default: theirs, 0.02)")
    a = ap.parse_args()
    modes = [m for m in a.mode.split(",") if m]
    if not modes or set(modes) - set(MODES):
        raise SystemExit(f"--mode: a comma list of {MODES}")
    run = WORK / "quota" / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    run.mkdir(parents=True, exist_ok=True)
    ports = [int(p) for p in a.ports.split(",")]
    for p in ports:
        if port_open(p):
            raise SystemExit(f"port {p} is in use")
    procs = Procs()

    def on_signal(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results = []
    try:
        # emulators on core 0: pin this process first (the node children inherit it); the gateways are re-pinned
        procs.emulators, placement = prepare.start_emulators(run / "emulators", 0)
        emu = procs.emulators
        print(f"emulators: {emu.ports} {placement}  (this process, the clients and the upstream: core 0)")
        admin_key = "gwadmin-" + __import__("secrets").token_urlsafe(24)
        values = prepare.settings_values(emu, database="quota", admin_key=admin_key,
                                         hash_secret=__import__("secrets").token_urlsafe(32))
        if a.lease_fraction:
            values["QUOTA_LEASE_FRACTION"] = a.lease_fraction
        settings = run / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2))
        env_file = run / "gw.env"
        env_file.write_text("".join(f"export {k}={__import__('shlex').quote(values[k])}\n" for k in prepare.GW_ENV)
                            + f"export GW_SETTINGS={settings}\n"
                            + (f"export QUOTA_LEASE_FRACTION={a.lease_fraction}\n" if a.lease_fraction else ""))

        if port_open(9001):
            print("fake upstream: reusing the one on :9001")
        else:
            uvicorn = WORK / "venv-up" / "bin" / "uvicorn"
            cmd = ([str(uvicorn)] if uvicorn.exists() else [sys.executable, "-m", "uvicorn"]) + [
                "--app-dir", str(SHARED), "fake_upstream:app", "--host", "127.0.0.1", "--port", "9001",
                "--no-access-log", "--log-level", "warning"]
            up = procs.start(cmd, run / "upstream.log")
            wait_http(f"{UP}/health", 30, up)
        usage = httpx.post(f"{UP}/v1/chat/completions", json=body_for("max_tokens"), timeout=5).json()["usage"]
        print(f"fake upstream usage per call: {usage}")
        usage_of = {"max_tokens": usage["total_tokens"], "no_max_tokens": usage["total_tokens"],
                    "stream_long": 12 + a.long_chunks}
        if "stream_long" in modes:
            if port_open(UP_LONG_PORT):
                raise SystemExit(f"port {UP_LONG_PORT} is in use")
            uvicorn = WORK / "venv-up" / "bin" / "uvicorn"
            cmd = ([str(uvicorn)] if uvicorn.exists() else [sys.executable, "-m", "uvicorn"]) + [
                "--app-dir", str(SHARED), "fake_upstream:app", "--host", "127.0.0.1", "--port", str(UP_LONG_PORT),
                "--no-access-log", "--log-level", "warning"]
            up2 = procs.start(cmd, run / "upstream-long.log",
                              env={**os.environ, "FAKE_STREAM_CHUNKS": str(a.long_chunks)})
            wait_http(f"http://127.0.0.1:{UP_LONG_PORT}/health", 30, up2)

        gws = []
        for port in ports:
            pre = ["taskset", "-c", a.gw_cpus] if a.gw_cpus else []
            p = procs.start(pre + ["bash", str(BENCH / "gateway.sh"), str(env_file), str(port), str(run / f"gw{port}.pid")],
                            run / f"gateway-{port}.log")
            gws.append((f"http://127.0.0.1:{port}", p))
        for url, p in gws:
            wait_http(f"{url}/healthz", 120, p)
        gateways = [u for u, _ in gws]
        secret = prepare.provision(gateways[0], admin_key, rpm=None, tpm=a.tpm)
        if "stream_long" in modes:
            httpx.post(f"{gateways[0]}/manage/projects/bench/models", headers={"Authorization": f"Bearer {admin_key}"},
                       timeout=30, json={"name": "fake-model-long", "capabilities": ["chat", "streaming"],
                                         "backends": [{"id": "up", "kind": "openai_compatible", "deployment": "fake-model",
                                                       "endpoint": f"http://127.0.0.1:{UP_LONG_PORT}/v1"}]}
                       ).raise_for_status()
        for g in gateways:  # each instance must answer (its caches are its own)
            prepare.check_chat(g, secret)
        print(f"3 gateways up on {ports} (cpus {a.gw_cpus or 'any'}); project quota tokens_per_minute={a.tpm}")

        estimates = {m: gateway_estimate(body_for(m)) for m in modes}
        for i in range(a.windows):
            mode = modes[i % len(modes)]
            body = body_for(mode)
            print(f"window {i + 1}/{a.windows} ({mode}, gateway estimate {estimates[mode]} tokens/call, "
                  f"upstream usage {usage_of[mode]}): waiting for the minute boundary …", flush=True)
            s = asyncio.run(run_window(gateways, secret, body, clients=a.clients_per_gateway * len(gateways),
                                       stop_at=a.stop_at, backoff_429=a.backoff_429))
            s.update(mode=mode, limit=a.tpm, estimate_per_call=estimates[mode], usage_per_call=usage_of[mode])
            s["overshoot_pct"] = round(100 * (s["tokens"] - a.tpm) / a.tpm, 2)
            s["under_admission_tokens"] = max(0, a.tpm - s["tokens"])
            s["under_admission_pct"] = round(100 * s["under_admission_tokens"] / a.tpm, 2)
            s["shared_row_total"] = shared_row_total(values["AzureWebJobsStorage"], "bench", s["window"])
            time.sleep(2.5)  # still inside the minute: excess charges that were in flight land on the row meanwhile
            s["shared_row_total_later"] = shared_row_total(values["AzureWebJobsStorage"], "bench", s["window"])
            results.append(s)
            print(f"  {s['window']} UTC  admitted {s['tokens']} / limit {a.tpm}  overshoot {s['overshoot_pct']:+.2f}%"
                  f"  under-admission {s['under_admission_tokens']} ({s['under_admission_pct']:.2f}%)  "
                  f"200s {s['ok']}  429s {s['429']}  first 429 at {s['first_429_s']} s  other {s['other']} "
                  f"errors {s['errors']} late {s['late']}  shared row {s['shared_row_total']} "
                  f"(+2.5 s: {s['shared_row_total_later']})", flush=True)
            print("    per gateway:", {g.rsplit(':', 1)[1]: v for g, v in s["by_gateway"].items()}, flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        procs.stop()
    (run / "results.json").write_text(json.dumps(results, indent=1))
    with open(WORK / "quota" / "results.jsonl", "a") as f:
        for r in results:
            f.write(json.dumps(dict(r, run=run.name)) + "\n")
    if results:
        print("\n| window (UTC) | request shape | estimate/usage per call | admitted | limit | overshoot | "
              "under-admission | 200s | 429s | first 429 | shared row at stop / +2.5 s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for s in results:
            print(f"| {s['window']} | {s['mode']} | {s['estimate_per_call']}/{s['usage_per_call']} | {s['tokens']} | "
                  f"{s['limit']} | {s['overshoot_pct']:+.2f}% | {s['under_admission_tokens']} "
                  f"({s['under_admission_pct']:.2f}%) | {s['ok']} | {s['429']} | {s['first_429_s']} s | "
                  f"{s['shared_row_total']} / {s.get('shared_row_total_later')} |")
        worst = max(s["overshoot_pct"] for s in results)
        print(f"\nworst overshoot {worst:+.2f}% (target ≤ 5%): {'met' if worst <= 5 else 'NOT MET'}; results: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
