"""Cold start: `import function_app` (what the Functions worker does to index the app, and what every cold start
pays) declares every function without loading what only a call needs — the SDKs, the HTTP client, the MCP/A2A
machinery, the guardrail engine. A behaviour test (which modules are loaded), not a timing test: the timing is in
docs/benchmarks.md "Start-up". Each case runs in a fresh interpreter so nothing imported by other tests counts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Loaded on first use (a call, a timer run, a client made), never by the import that indexes the app.
LAZY = (
    "azure.cosmos", "azure.data.tables", "azure.core", "azure.identity", "azure.storage.queue", "aiohttp",
    "httpx", "jwt", "jsonschema", "opentelemetry.sdk", "azure.monitor", "tiktoken", "boto3", "botocore",
    "google.auth", "a2a", "mcp",
    # the gateway's own heavy parts: pipelines, the MCP probe/client, the guardrail engine, the counters' store
    "shared.pipeline.pipeline", "shared.storage.tables", "shared.quotas.store",
    "shared.usage.log", "shared.guardrails.engine", "shared.pillars.tools.probe", "shared.pillars.tools.gateway",
    "shared.pillars.tools.mcp.upstream", "shared.pillars.agents.pillar",
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_importing_the_app_declares_every_function_without_the_heavy_modules():
    p = run(f"""
        import json, sys
        import function_app
        names = [f.get_function_name() for f in function_app.app.get_functions()]
        print(json.dumps({{"loaded": [m for m in {LAZY!r} if m in sys.modules], "functions": len(names)}}))
    """)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["functions"] > 100  # the whole surface is declared (tests/conformance checks it in the runtime)


def test_the_first_use_loads_them():
    """Lazy, not gone: the first request's path (the Cosmos client, the Tables counters, the models pipeline's
    pieces) imports them, so the list above is checked against modules that exist."""
    p = run(f"""
        import importlib, json, sys
        import function_app
        from shared.storage.cosmos import make_cosmos_client
        from shared.storage.tables import StorageProbe
        make_cosmos_client(connection_string="AccountEndpoint=http://127.0.0.1:1/;AccountKey=a2V5", endpoint=None,
                           credential=None, timeout=1)
        for m in ("shared.pipeline.pipeline", "shared.quotas.store", "shared.pillars.tools.probe",
                  "shared.guardrails.engine", "shared.pillars.agents.pillar"):
            importlib.import_module(m)
        print(json.dumps([m for m in ("azure.cosmos", "aiohttp", "azure.data.tables", "httpx", "jsonschema")
                          if m not in sys.modules]))
    """)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


def test_a_missing_sdk_still_fails_loudly_at_first_use():
    """The app imports (and indexes) without the Cosmos SDK; the first use names the missing module."""
    p = run("""
        import importlib.abc, sys

        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "azure.cosmos" or name.startswith("azure.cosmos."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Missing())
        import function_app  # indexing does not need the SDK
        from shared.storage.cosmos import make_cosmos_client
        try:
            make_cosmos_client(connection_string="AccountEndpoint=http://127.0.0.1:1/;AccountKey=a2V5",
                               endpoint=None, credential=None, timeout=1)
        except ModuleNotFoundError as exc:
            print("missing:", exc.name)
    """)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "missing: azure.cosmos"


def test_every_deferred_model_builds():
    """Models build their validators on first use (`defer_build`); a model that could not (an unresolvable
    annotation) would fail at its first request, so every one the app declares is built here."""
    from pydantic import BaseModel

    import function_app  # noqa: F401  (declares every model the app serves)

    def subclasses(cls: type) -> list[type]:
        return [s for c in cls.__subclasses__() for s in (c, *subclasses(c))]

    ours = {m for m in subclasses(BaseModel) if m.__module__.startswith(("shared.", "functions."))
            and not m.__pydantic_generic_metadata__["parameters"]}  # unparametrised generics are templates
    assert len(ours) > 200
    for model in ours:
        model.model_rebuild(raise_errors=True)
        assert model.__pydantic_complete__, model
