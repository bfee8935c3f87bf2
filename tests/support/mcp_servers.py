"""Real third-party MCP servers on 127.0.0.1 for the tools-pillar tests, and registry seeding.

npm packages are pinned in tests/mcp_servers/package.json + package-lock.json and installed with `npm ci` on first
use (CI starts from a fresh clone). Python servers run from the test venv (`mcp`, `fastmcp` in
requirements-dev.txt)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

from dev.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / "tests" / "mcp_servers"
BIN = NPM_DIR / "node_modules" / ".bin"
FASTMCP_VENV = NPM_DIR / ".venv-fastmcp"


def fastmcp_python() -> str:
    """fastmcp cannot share the test venv (its OpenTelemetry pins differ from the app's): its own, built once."""
    python = FASTMCP_VENV / "bin" / "python"
    marker = FASTMCP_VENV / ".installed"
    reqs = (NPM_DIR / "requirements-fastmcp.txt").read_text()
    if not marker.exists() or marker.read_text() != reqs:
        venv.EnvBuilder(with_pip=True, clear=True).create(FASTMCP_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        str(NPM_DIR / "requirements-fastmcp.txt")], check=True, timeout=600)
        marker.write_text(reqs)
    return str(python)


def npm_ci() -> None:
    marker = NPM_DIR / "node_modules" / ".package-lock.json"
    lock = NPM_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NPM_DIR, check=True,
                   timeout=600)


@dataclass
class ServerProcess:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open: {log.read_text()[-2000:]}")


def launch(name: str, argv: list[str], port: int, path: str, log_dir: Path, env: dict[str, str] | None = None
           ) -> ServerProcess:
    log = log_dir / f"{name}-{port}.log"
    proc = subprocess.Popen(argv, cwd=NPM_DIR, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    return ServerProcess(name, f"http://127.0.0.1:{port}{path}", proc, log)


@dataclass
class Fleet:
    servers: dict[str, ServerProcess] = field(default_factory=dict)

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()


def start_fleet(log_dir: Path, files_dir: Path) -> Fleet:
    """The five implementations: server-everything (TS SDK, streamable HTTP), an `mcp` Python SDK server,
    a fastmcp server, and two stdio-only reference servers behind supergateway (memory: legacy HTTP+SSE output;
    filesystem: stateful streamable HTTP output); plus an `mcp` SDK server offering the 2026 tasks extension.
Started together, then waited for."""
    npm_ci()
    py = sys.executable
    sg = ["node", str(BIN / "supergateway")]
    ports = {name: free_port() for name in ("everything", "sdk", "fastmcp", "memory", "filesystem", "tasks")}
    plan = {
        "everything": (["node", str(BIN / "mcp-server-everything"), "streamableHttp"], "/mcp",
                       {"PORT": str(ports["everything"])}),
        "sdk": ([py, str(NPM_DIR / "sdk_server.py"), str(ports["sdk"])], "/mcp", None),
        "tasks": ([py, str(NPM_DIR / "tasks_server.py"), str(ports["tasks"])], "/mcp", None),
        "fastmcp": ([fastmcp_python(), str(NPM_DIR / "fastmcp_server.py"), str(ports["fastmcp"])], "/mcp", None),
        "memory": ([*sg, "--stdio", f"node {BIN / 'mcp-server-memory'}", "--port", str(ports["memory"]),
                    "--logLevel", "none"], "/sse", {"MEMORY_FILE_PATH": str(files_dir / "memory.jsonl")}),
        "filesystem": ([*sg, "--stdio", f"node {BIN / 'mcp-server-filesystem'} {files_dir}", "--outputTransport",
                        "streamableHttp", "--stateful", "--port", str(ports["filesystem"]), "--logLevel", "none"],
                       "/mcp", None),
    }
    fleet = Fleet()
    try:
        for name, (argv, path, env) in plan.items():
            fleet.servers[name] = launch(name, argv, ports[name], path, log_dir, env)
        for name, server in fleet.servers.items():
            _wait_port(ports[name], server.proc, server.log)
    except BaseException:
        fleet.stop()
        raise
    return fleet
