"""Running the local host as a real process, the way users run it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dev.emulators import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class HostProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """A crash: no shutdown hooks run."""
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_host(*, root: Path, app: str, env: dict[str, str], log_dir: Path, name: str = "host",
               extra_args: tuple[str, ...] = (), health_path: str | None = "/healthz",
               timeout: float | None = None, repo: Path = REPO) -> HostProcess:
    """`repo`: the checkout whose code the host runs (another one only for before/after benchmarks). `timeout`:
    default 30 s, or TEST_HOST_START_TIMEOUT (a machine loaded by other work imports the app slowly)."""
    timeout = timeout or float(os.environ.get("TEST_HOST_START_TIMEOUT", "30"))
    port = free_port()
    log = log_dir / f"{name}-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("COSMOS_", "GATEWAY_", "ENTRA_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.host", "--root", str(root), "--app", app, "--port", str(port),
         "--settings", "no-local-settings.json", *extra_args],
        cwd=repo, env=full_env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    host = HostProcess(f"http://127.0.0.1:{port}", proc, log, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"host exited with {proc.returncode}:\n{host.output()}")
        try:
            if health_path is None:
                httpx.get(host.url + "/", timeout=1)
            else:
                httpx.get(host.url + health_path, timeout=1).raise_for_status()
            return host
        except httpx.HTTPError:
            time.sleep(0.1)
    host.kill()
    raise RuntimeError(f"host did not become healthy:\n{host.output()}")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
