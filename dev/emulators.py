"""Local emulators as real servers, from npm (no Docker): Azurite (Blob, Queue, Table) and
`@vercel/cosmosdb-server` (Cosmos DB wire protocol, in memory). Installed from dev/package.json, started as child
processes with their data under a git-ignored folder, health-waited, and stopped cleanly.

    python -m dev.emulators start|stop|status   (the ports below; data in .local/)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEV = Path(__file__).resolve().parent
ROOT = DEV.parent
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The well-known emulator key; the local Cosmos server accepts any key, the SDK needs a base64 one.
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ensure_node_modules() -> None:
    """`npm ci` when node_modules is missing or older than the lock file."""
    marker = DEV / "node_modules" / ".package-lock.json"
    lock = DEV / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    print("installing emulators (npm ci in dev/) …", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=DEV, check=True)


@dataclass
class Ports:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    cosmos: int = 8081

    @classmethod
    def free(cls) -> "Ports":
        """Four distinct free ports: the sockets are held open together while chosen, so the OS cannot hand the
        same port out twice (it did: Cosmos then found Azurite on its port)."""
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(socket.socket()) for _ in range(4)]
            for sock in socks:
                sock.bind(("127.0.0.1", 0))
            return cls(*(sock.getsockname()[1] for sock in socks))


class Emulators:
    def __init__(self, data_dir: Path, ports: Ports | None = None) -> None:
        self.data_dir = data_dir
        self.ports = ports or Ports()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def storage_connection_string(self) -> str:
        p, base = self.ports, "http://127.0.0.1"
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={base}:{p.blob}/{AZURITE_ACCOUNT};QueueEndpoint={base}:{p.queue}/{AZURITE_ACCOUNT};"
                f"TableEndpoint={base}:{p.table}/{AZURITE_ACCOUNT};")

    @property
    def cosmos_connection_string(self) -> str:
        return f"AccountEndpoint=http://127.0.0.1:{self.ports.cosmos}/;AccountKey={COSMOS_KEY};"

    def _ports_of(self, name: str) -> list[int]:
        p = self.ports
        return [p.blob, p.queue, p.table] if name == "azurite" else [p.cosmos]

    def _command(self, name: str) -> list[str]:
        bin_dir = DEV / "node_modules" / ".bin"
        if name == "azurite":
            location = self.data_dir / "azurite"
            location.mkdir(parents=True, exist_ok=True)
            p = self.ports
            return [str(bin_dir / "azurite"), "--silent", "--location", str(location), "--blobHost", "127.0.0.1",
                    "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1", "--blobPort", str(p.blob),
                    "--queuePort", str(p.queue), "--tablePort", str(p.table), "--skipApiVersionCheck",
                    "--disableProductStyleUrl"]
        return ["node", str(DEV / "cosmos-server.js"), "--host", "127.0.0.1", "--port", str(self.ports.cosmos),
                "--data", str(self.data_dir / "cosmos.json")]

    def start(self, *names: str, timeout: float = 60) -> None:
        ensure_node_modules()
        for name in names or ("azurite", "cosmos"):
            busy = [p for p in self._ports_of(name) if port_open(p)]
            if busy:
                raise RuntimeError(f"{name}: port(s) {busy} already in use — is another copy running? "
                                   "(`python -m dev.emulators stop`)")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.data_dir / f"{name}.log", "ab")
            # Own process group, so stopping also ends anything the npm shim started.
            self.procs[name] = subprocess.Popen(self._command(name), stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
            self._wait(name, timeout)

    def _wait(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.data_dir / (name + '.log')}")
            if all(port_open(p) for p in self._ports_of(name)):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not open its ports within {timeout}s")

    def stop(self, *names: str) -> None:
        for name in names or list(self.procs):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            deadline = time.monotonic() + 10
            while any(port_open(p) for p in self._ports_of(name)) and time.monotonic() < deadline:
                time.sleep(0.05)

    def write_pids(self) -> None:
        (self.data_dir / "emulators.json").write_text(json.dumps({n: p.pid for n, p in self.procs.items()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dev.emulators")
    parser.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    emu = Emulators(ROOT / ".local")
    pid_file = emu.data_dir / "emulators.json"
    if args.action == "start":
        emu.start()
        emu.write_pids()
        print("emulators running:", emu.ports)
    elif args.action == "stop":
        for name, pid in (json.loads(pid_file.read_text()) if pid_file.exists() else {}).items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
                print("stopped", name)
        pid_file.unlink(missing_ok=True)
    else:
        for name in ("azurite", "cosmos"):
            print(name, "up" if all(port_open(p) for p in emu._ports_of(name)) else "down")


if __name__ == "__main__":
    sys.exit(main())
