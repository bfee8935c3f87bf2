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
        spec = {"id": SERVER, "url": server_url, "namespace": SERVER, "description": "make run's sample MCP server"}
        r = admin.post(f"{base}/mcp-servers", json=spec)
        if r.status_code == 409:  # registered by an earlier run that stopped half-way: make it this run's
            r = admin.put(f"{base}/mcp-servers/{SERVER}", json=spec)
        r.raise_for_status()
        sub = admin.post(f"{base}/submissions", json={"subject_kind": "mcp_server", "subject_id": SERVER})
        sub.raise_for_status()
        state = _probed(admin, base, sub.json()["id"])
        if state["state"] == "probed":
            admin.post(f"{base}/submissions/{state['id']}/approve", json={"reason": "make run demo"}
                       ).raise_for_status()
        tools = [t["name"] for t in admin.get(f"{base}/tools").json()["items"]]
        admin.post(f"{base}/toolboxes", json={"id": TOOLBOX, "tools": tools}).raise_for_status()
    return TOOLBOX


def _probed(admin: httpx.Client, base: str, sid: str) -> dict:
    """The submission once the approvals queue function has probed it (or a policy approved it)."""
    deadline = time.monotonic() + 60
    while True:
        state = admin.get(f"{base}/submissions/{sid}").json()
        if state["state"] in ("probed", "approved"):
            return state
        if state["state"] in ("rejected", "poisoned") or time.monotonic() > deadline:
            raise RuntimeError(f"the demo MCP server was not probed: {state['state']} {state.get('findings')}")
        time.sleep(0.2)  # the approvals queue function probes it
