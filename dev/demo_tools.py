"""`make run`'s tools demo: a local reference MCP server registered, probed, approved and served as toolbox
`demo-tools` in project `demo` — all through the admin API, as an operator would."""
from __future__ import annotations

import time

import httpx

PROJECT = "demo"
SERVER = "glossary"
TOOLBOX = "demo-tools"


def seed_tools(gateway: str, admin_key: str, server_url: str) -> str:
    base = f"/manage/projects/{PROJECT}"
    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        admin.put(f"{base}/flags/tools", json={"enabled": True}).raise_for_status()
        if admin.get(f"{base}/toolboxes").json().get("items"):
            return TOOLBOX  # seeded on an earlier run (the registry lives in .local/)
        admin.post(f"{base}/mcp-servers", json={"id": SERVER, "url": server_url, "namespace": SERVER,
                                                "description": "make run's sample MCP server"}).raise_for_status()
        sub = admin.post(f"{base}/submissions", json={"subject_kind": "mcp_server", "subject_id": SERVER})
        sub.raise_for_status()
        sid = sub.json()["id"]
        deadline = time.monotonic() + 60
        while admin.get(f"{base}/submissions/{sid}").json()["state"] != "probed":
            if time.monotonic() > deadline:
                raise RuntimeError("the demo MCP server was not probed within 60 s")
            time.sleep(0.2)  # the approvals queue function probes it
        admin.post(f"{base}/submissions/{sid}/approve", json={"reason": "make run demo"}).raise_for_status()
        tools = [t["name"] for t in admin.get(f"{base}/tools").json()["items"]]
        admin.post(f"{base}/toolboxes", json={"id": TOOLBOX, "tools": tools}).raise_for_status()
    return TOOLBOX
