"""`make run`: the gateway locally — emulators + the local host on http://127.0.0.1:7071.

First run creates the git-ignored `local.settings.json` from the sample with a fresh bootstrap admin key.
Ctrl-C or SIGTERM stops everything.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .demo import MODEL, seed
from .demo_tools import seed_tools
from .emulators import ROOT, Emulators, Ports

PORT = 7071
UPSTREAM_PORT = 9100
MCP_PORT = 9101


def ensure_local_settings(path: Path, sample: Path) -> dict[str, str]:
    data = json.loads((path if path.exists() else sample).read_text())
    values = data.setdefault("Values", {})
    changed = not path.exists()
    # Settings added since the file was created (e.g. timer schedules, which the host needs): from the sample.
    for key, value in json.loads(sample.read_text()).get("Values", {}).items():
        if key not in values:
            values[key], changed = value, True
    for key in ("GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET"):
        if not values.get(key):
            values[key] = ("gwadmin-" if key == "GATEWAY_ADMIN_KEY" else "") + secrets.token_urlsafe(32)
            changed = True
    if changed:
        path.write_text(json.dumps(data, indent=2) + "\n")
        path.chmod(0o600)
    return values


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the local host exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def main() -> int:
    values = ensure_local_settings(ROOT / "local.settings.json", ROOT / "local.settings.sample.json")
    emulators = Emulators(ROOT / ".local", Ports())
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # explicit: a shell may start us with SIGINT ignored
    host: subprocess.Popen[bytes] | None = None
    upstream: subprocess.Popen[bytes] | None = None
    mcp: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    try:
        emulators.start()
        print(f"emulators up: Azurite {emulators.ports.blob}-{emulators.ports.table}, "
              f"Cosmos {emulators.ports.cosmos} (data in .local/)", flush=True)
        upstream = subprocess.Popen([sys.executable, "-m", "dev.sample_upstream", "--port", str(UPSTREAM_PORT)],
                                    cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{UPSTREAM_PORT}/health", 30, upstream)
        mcp = subprocess.Popen([sys.executable, "-m", "dev.sample_mcp", "--port", str(MCP_PORT)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host = subprocess.Popen([sys.executable, "-m", "dev.host", "--port", str(PORT)], cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_http(f"http://127.0.0.1:{PORT}/healthz", 60, host)
        gw = f"http://127.0.0.1:{PORT}"
        demo = seed(gw, values["GATEWAY_ADMIN_KEY"], f"http://127.0.0.1:{UPSTREAM_PORT}", ROOT / ".local" / "demo.json")
        toolbox = seed_tools(gw, values["GATEWAY_ADMIN_KEY"], f"http://127.0.0.1:{MCP_PORT}/mcp")
        # A tiny local A2A agent (a2a-sdk 1.x), published in the demo project as 'echo'.
        agent = subprocess.Popen([sys.executable, "tests/agents/a2a_v1_agent.py", str(AGENT_PORT)], cwd=ROOT,
                                 stdout=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{AGENT_PORT}/.well-known/agent-card.json", 30, agent)
        seed_agent(gw, values["GATEWAY_ADMIN_KEY"], f"http://127.0.0.1:{AGENT_PORT}/.well-known/agent-card.json")
        print(f"""
Gateway running at http://127.0.0.1:{PORT}
  OpenAPI:    http://127.0.0.1:{PORT}/spec/openapi.json
  Readiness:  http://127.0.0.1:{PORT}/readyz
  Admin key:  {values['GATEWAY_ADMIN_KEY']}   (local.settings.json → Values.GATEWAY_ADMIN_KEY)
  Try:        curl -H "Authorization: Bearer {values['GATEWAY_ADMIN_KEY']}" http://127.0.0.1:{PORT}/manage/projects

Demo project 'demo' (models pillar on, quota 20 requests/min), model '{MODEL}' on a local sample upstream.
  Virtual key: {demo['key']}   (kept in .local/demo.json)
  First governed call:
    curl {gw}/v1/chat/completions -H "Authorization: Bearer {demo['key']}" \\
         -H 'content-type: application/json' -d '{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}]}}'
Toolbox '{toolbox}' (tools pillar on): a local MCP server's approved tools at {gw}/mcp/{toolbox}
  First governed tool call (MCP 2026-07-28, no session needed):
    curl {gw}/mcp/{toolbox} -H "Authorization: Bearer {demo['key']}" -H 'content-type: application/json' \
         -H 'accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
         -H 'Mcp-Method: tools/call' -H 'Mcp-Name: glossary__lookup' -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"glossary__lookup","arguments":{{"term":"toolbox"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}'
Demo agent 'echo' (A2A, a2a-sdk): card {gw}/agents/echo/.well-known/agent-card.json
    curl {gw}/agents/echo -H "Authorization: Bearer {demo['key']}" -H 'A2A-Version: 1.0' \\
         -d '{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"message":{{"messageId":"m1","role":"ROLE_USER","parts":[{{"text":"hi"}}]}}}}}}'
Composite agent 'echo-twice' (sequential: echo → echo, one budget per task): the same call at {gw}/agents/echo-twice
  Agent playground (developer): curl {gw}/portal/projects/demo/agent-playground -H "Authorization: Bearer \\
         {values['GATEWAY_ADMIN_KEY']}" -H 'content-type: application/json' -d '{{"agent":"echo-twice","text":"hi"}}'
Ctrl-C stops the gateway and the emulators.
""", flush=True)
        host.wait()
        return 0 if stopping else (host.returncode or 0)
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (host, upstream, mcp, agent):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        emulators.stop()
        print("stopped.", flush=True)


AGENT_PORT = 7075


def seed_agent(gw: str, admin_key: str, card_url: str) -> None:
    """Agents pillar on for the demo project, the local agent registered by its card and published (idempotent)."""
    import httpx

    with httpx.Client(base_url=gw, headers={"Authorization": f"Bearer {admin_key}"}, timeout=20) as admin:
        admin.put("/manage/projects/demo/flags/agents", json={"enabled": True}).raise_for_status()
        r = admin.post("/manage/projects/demo/agents", json={"id": "echo", "card_url": card_url})
        if r.status_code == 201:
            admin.post("/manage/projects/demo/agents/echo/transitions", json={"to": "published"}).raise_for_status()
        # A composite agent over it: the message goes through 'echo' twice, one budget (4 hops) for the task.
        r = admin.post("/manage/projects/demo/agents/composites", json={
            "id": "echo-twice", "name": "Echo twice", "description": "Sequential composite: echo, then echo again.",
            "composition": {"mode": "sequential", "members": ["echo", "echo"], "budget": {"max_hops": 4}}})
        if r.status_code == 201:
            admin.post("/manage/projects/demo/agents/echo-twice/transitions",
                       json={"to": "published"}).raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
