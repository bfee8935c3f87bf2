"""First-run demo seed for `make run`: a project whose models pillar is on, a model backed by the local sample
upstream (dev/sample_upstream.py), a quota, and a virtual key — created through the public admin API, exactly as
an admin would. The key is shown once and kept in the git-ignored .local/demo.json for later runs."""
from __future__ import annotations

import json
from pathlib import Path

import httpx

PROJECT, MODEL, EMBED = "demo", "sample-chat", "sample-embed"


def seed(gateway: str, admin_key: str, upstream: str, state_file: Path) -> dict[str, str]:
    saved = json.loads(state_file.read_text()) if state_file.exists() else {}
    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        if admin.get(f"/manage/projects/{PROJECT}").status_code == 404:
            admin.post("/manage/projects", json={
                "id": PROJECT, "name": "Demo project", "key_issuance": "auto",
                "description": "Seeded by make run: a sample model behind the governed front door.",
                "pillars": {"models": {"enabled": True}}}).raise_for_status()
            saved = {}  # a new registry: any saved key is gone with it
        for name, caps in ((MODEL, ["chat", "streaming"]), (EMBED, ["embeddings"])):
            if admin.get(f"/manage/projects/{PROJECT}/models/{name}").status_code == 404:
                admin.post(f"/manage/projects/{PROJECT}/models", json={
                    "name": name, "description": "Echo model served by dev/sample_upstream.py",
                    "capabilities": caps, "context_window": 8192, "input_price_per_1k": 0.0005,
                    "output_price_per_1k": 0.0015,
                    "backends": [{"id": "sample", "kind": "openai_compatible", "endpoint": f"{upstream}/v1",
                                  "deployment": name}]}).raise_for_status()
        admin.put(f"/manage/projects/{PROJECT}/quotas/project/{PROJECT}",
                  json={"requests_per_minute": 20, "tokens_per_minute": 20_000,
                        "tokens_per_day": 1_000_000}).raise_for_status()
        if "key" not in saved:
            created = admin.post(f"/manage/projects/{PROJECT}/keys", json={"name": "demo key"})
            created.raise_for_status()
            saved = {"key": created.json()["secret"], "key_id": created.json()["id"]}
            state_file.parent.mkdir(parents=True, exist_ok=True)
            state_file.write_text(json.dumps(saved))
            state_file.chmod(0o600)
    return saved
