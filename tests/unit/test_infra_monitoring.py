"""infra/ for monitoring (issue 12): the Azure Monitor workbook (every query reads a metric or span attribute the
gateway really emits) and the upstream secrets kept across deploys as Key Vault references."""
from __future__ import annotations

import json
import re

import pytest

from tests.unit.test_infra_bicep import (INFRA, MAIN, ROOT, declarations, literal, named, parse, props,
                                         resources, text, walk)

WORKBOOK_JSON = INFRA / "modules" / "workbook.json"
WORKBOOK = INFRA / "modules" / "workbook.bicep"
APPSETTINGS = INFRA / "modules" / "appsettings.bicep"
HOOKS = "".join((ROOT / "shared" / "telemetry" / f).read_text() for f in ("hooks.py", "metrics.py"))


def queries() -> dict[str, str]:
    out: dict[str, str] = {}

    def visit(items):
        for item in items:
            content = item["content"]
            if item["type"] == 3:
                out[content["title"]] = content["query"]
            visit(content.get("items", []))

    visit(json.loads(WORKBOOK_JSON.read_text())["items"])
    return out


def test_workbook_covers_each_dashboard_and_reads_what_the_gateway_emits():
    wb = json.loads(WORKBOOK_JSON.read_text())
    assert wb["version"] == "Notebook/1.0"
    groups = {i["name"] for i in wb["items"] if i["type"] == 12}
    assert groups == {"pillars", "tokens", "cache-guardrails", "resilience", "approvals-sync"}
    qs = queries()
    assert len(qs) >= 15
    for title, q in qs.items():
        assert q.startswith(("requests", "customMetrics")), title
        # metric names: each one is an instrument the telemetry hooks create
        for name in re.findall(r'"(gateway\.[a-z_.]+)"', q):
            if not name.startswith(("gateway.pillar", "gateway.target", "gateway.verdict", "gateway.job",
                                    "gateway.outcome", "gateway.breaker.state", "gateway.error_code",
                                    "gateway.overhead_ms", "gateway.cost_usd")):
                assert f'"{name}"' in HOOKS, (title, name)
        # span and metric attributes: each one is set by the hooks
        for attr in re.findall(r'customDimensions\["([^"]+)"\]|d\["([^"]+)"\]', q):
            key = attr[0] or attr[1]
            assert f'"{key}"' in HOOKS, (title, key)
    # job names the adapters count (functions/tools_approvals.py, agents_sync.py, monitoring_timers.py)
    assert 'startswith "tools_"' in qs["Approvals queue and pinning outcomes"]
    assert 'startswith "agents_sync"' in qs["Agent sync runs by outcome"]


def test_workbook_resource_loads_the_json_and_is_wired_to_app_insights():
    [(rtype, body)] = [r for r in resources(WORKBOOK) if r[0].startswith("Microsoft.Insights/workbooks@")]
    p = props(body)
    assert literal(p["kind"]) == "shared" and text(p["name"]).startswith("guid(")
    inner = props(p["properties"])
    assert text(inner["serializedData"]) == "loadTextContent('workbook.json')"
    assert text(inner["sourceId"]) == "appInsights.id" and literal(inner["category"]) == "workbook"
    [module] = [d for d in declarations(MAIN, "module_declaration") if literal(named(d)[1]) == "modules/workbook.bicep"]
    given = props(props(next(n for n in walk(module) if n.type == "object"))["params"])
    assert text(given["appInsightsName"]) == "monitoring.outputs.appInsightsName"


# The Bicep guard, clause by clause (each clause is asserted to be in appsettings.bicep, so this mirror is the
# template's own rule); `uriComponent(x) == x` holds exactly for RFC 3986 unreserved characters.
UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*")
NAME_CLAUSES = {
    "!startsWith(s.name, 'UPSTREAM_SECRET_')": lambda n: not n.startswith("UPSTREAM_SECRET_"),
    "length(s.name) < 17": lambda n: len(n) < 17,
    "length(s.name) > 116": lambda n: len(n) > 116,
    "uriComponent(s.name) != s.name": lambda n: not UNRESERVED.fullmatch(n),
    "toUpper(s.name) != s.name": lambda n: n.upper() != n,
    "contains(s.name, '-')": lambda n: "-" in n,
    "contains(s.name, '.')": lambda n: "." in n,
    "contains(s.name, '~')": lambda n: "~" in n,
}
SECRET_CLAUSES = {
    "empty(s.keyVaultSecretName)": lambda k: not k,
    "length(s.keyVaultSecretName) > 127": lambda k: len(k) > 127,
    "uriComponent(s.keyVaultSecretName) != s.keyVaultSecretName": lambda k: not UNRESERVED.fullmatch(k),
    "contains(s.keyVaultSecretName, '_')": lambda k: "_" in k,
    "contains(s.keyVaultSecretName, '.')": lambda k: "." in k,
    "contains(s.keyVaultSecretName, '~')": lambda k: "~" in k,
}


def bicep_rejects(name: str, secret: str) -> bool:
    return any(c(name) for c in NAME_CLAUSES.values()) or any(c(secret) for c in SECRET_CLAUSES.values())


def variable(name: str) -> str:
    [var] = [d for d in declarations(APPSETTINGS, "variable_declaration") if text(named(d)[0]) == name]
    return text(named(var)[-1])


def test_upstream_secrets_are_key_vault_references_behind_an_allow_list():
    guard = variable("invalidUpstreamSecrets")
    assert guard.startswith("filter(upstreamSecrets, s => ")
    clauses = {c.strip() for c in guard.removeprefix("filter(upstreamSecrets, s => ").removesuffix(")").split("||")}
    assert clauses == set(NAME_CLAUSES) | set(SECRET_CLAUSES)  # the mirror above is exactly the template's rule
    settings = variable("upstreamSecretSettings")
    ok, failing = settings.split(" ? ", 1)[1].split(" : json(", 1)
    assert settings.startswith("empty(invalidUpstreamSecrets) ? json(")
    assert '"${s.name}":"@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${s.keyVaultSecretName})"' in ok
    assert "invalidUpstreamSecrets" in failing  # the deployment fails naming the bad entries
    [(_, body)] = [r for r in resources(APPSETTINGS) if r[0].startswith("Microsoft.Web/sites/config@")]
    merged = text(props(body)["properties"])
    assert merged.startswith("union({") and merged.rstrip().endswith("}, upstreamSecretSettings)")
    # main.bicep: one parameter, passed on with the vault the app's identity may read
    [module] = [d for d in declarations(MAIN, "module_declaration") if literal(named(d)[1]) == "modules/appsettings.bicep"]
    given = props(props(next(n for n in walk(module) if n.type == "object"))["params"])
    assert text(given["upstreamSecrets"]) == "upstreamSecrets" and text(given["keyVaultName"]) == "keyVault.outputs.name"
    [param] = [d for d in declarations(MAIN, "parameter_declaration") if text(named(d)[0]) == "upstreamSecrets"]
    assert text(param).rstrip().endswith("upstreamSecrets array = []")


@pytest.mark.parametrize("name, ok", [
    ("UPSTREAM_SECRET_GITHUB", True), ("UPSTREAM_SECRET_A_1", True), ("UPSTREAM_SECRET_" + "X" * 100, True),
    ("UPSTREAM_SECRET_" + "X" * 101, False), ("GATEWAY_ADMIN_KEY", False), ("UPSTREAM_SECRET_", False),
    ("upstream_secret_x", False), ("UPSTREAM_SECRET_X-Y", False), ("UPSTREAM_SECRET_X.Y", False),
    ('UPSTREAM_SECRET_X","GATEWAY_ADMIN_KEY', False), ("UPSTREAM_SECRET_É", False), ("UPSTREAM_SECRET_X~", False)])
def test_the_template_accepts_exactly_the_names_the_app_may_reference(name, ok):
    """The Bicep allow-list and shared/config's UPSTREAM_SECRET_ pattern agree; so must main.parameters.json."""
    from shared.config import is_upstream_secret_name

    assert is_upstream_secret_name(name) is ok
    assert bicep_rejects(name, "upstream-github") is not ok
    assert bicep_rejects("UPSTREAM_SECRET_OK", name) is (not re.fullmatch(r"[A-Za-z0-9-]{1,127}", name))
    supplied = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for entry in (supplied.get("upstreamSecrets") or {}).get("value") or []:
        assert is_upstream_secret_name(entry["name"]), entry
