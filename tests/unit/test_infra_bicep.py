"""Static checks of infra/ (the Bicep CLI is unavailable): parse every file with
tree-sitter-bicep and assert the facts the Python code and azd depend on."""
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

tree_sitter_bicep = pytest.importorskip("tree_sitter_bicep")
tree_sitter = pytest.importorskip("tree_sitter")

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Exactly what the Python settings read (plus the host's own storage/telemetry settings).
EXPECTED_APP_SETTINGS = {
    "AzureWebJobsStorage__accountName", "COSMOS_ENDPOINT", "COSMOS_DATABASE",
    "COSMOS_CONTAINER", "COSMOS_CREATE_IF_MISSING", "ENTRA_TENANT_ID", "ENTRA_AUDIENCE",
    "GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET", "FLAG_CACHE_TTL_SECONDS",
    "FAIL_STATIC_MAX_SECONDS", "PYTHON_ENABLE_INIT_INDEXING",
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "COSMOS_CACHE_CONTAINER", "CACHE_VECTOR_SEARCH",
    "TOOLS_APPROVALS_QUEUE", "TOOLS_PINNING_SCHEDULE",  # tools pillar: approvals queue, pinning timer
    # monitoring (issue 12)
    "REQUEST_LOG_RETENTION_DAYS", "REQUEST_LOG_RETENTION_SCHEDULE", "ANALYTICS_ROLLUP_SCHEDULE",
    "ANALYTICS_ROLLUP_LOOKBACK_HOURS", "ALERTS_SCHEDULE", "TELEMETRY_ENABLED",
    "AGENTS_SYNC_BEDROCK_SCHEDULE", "AGENTS_SYNC_VERTEX_SCHEDULE", "AGENTS_SYNC_CONNECTIONS",
    "AGENT_CARD_SIGNING_JWK",  # agents pillar: signs the gateway's agent cards (a Key Vault reference)
}
LITERAL_SETTINGS = {
    "COSMOS_CREATE_IF_MISSING": "false", "FLAG_CACHE_TTL_SECONDS": "5",
    "FAIL_STATIC_MAX_SECONDS": "300", "PYTHON_ENABLE_INIT_INDEXING": "1", "CACHE_VECTOR_SEARCH": "true",
    "TOOLS_PINNING_SCHEDULE": "0 */15 * * * *",
    "REQUEST_LOG_RETENTION_SCHEDULE": "0 17 3 * * *", "ANALYTICS_ROLLUP_SCHEDULE": "0 */5 * * * *",
    "ALERTS_SCHEDULE": "30 * * * * *", "TELEMETRY_ENABLED": "true",
    "AGENTS_SYNC_BEDROCK_SCHEDULE": "0 */15 * * * *", "AGENTS_SYNC_VERTEX_SCHEDULE": "0 */15 * * * *",
}
ROLE_GUIDS = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
    "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
    "00000000-0000-0000-0000-000000000002",  # Cosmos DB Built-in Data Contributor
}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@lru_cache(maxsize=None)
def parse(path: Path):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    return parser.parse(path.read_bytes()).root_node


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def text(node) -> str:
    return node.text.decode()


def literal(node):
    """Python value of a string/boolean/number literal, else the source text."""
    if node.type == "string" and not any(c.type == "interpolation" for c in node.children):
        return text(node)[1:-1].replace("\\'", "'")
    if node.type == "boolean":
        return text(node) == "true"
    return text(node)


def named(node):
    return [c for c in node.children if c.is_named]


def props(obj) -> dict:
    """Key -> value node of an object literal's direct properties."""
    out = {}
    for prop in (c for c in obj.children if c.type == "object_property"):
        key, value = named(prop)[0], named(prop)[-1]
        out[literal(key)] = value
    return out


def declarations(path: Path, kind: str):
    return [n for n in named(parse(path)) if n.type == kind]


def params(path: Path) -> dict:
    """Param name -> has default (nullable types count as optional)."""
    out = {}
    for decl in declarations(path, "parameter_declaration"):
        parts = named(decl)
        nullable = any(n.type == "nullable_type" for n in walk(parts[1]))
        out[text(parts[0])] = len(parts) > 2 or nullable
    return out


def resources(path: Path):
    """(type@version, body object) for every resource declaration, loops included."""
    for decl in declarations(path, "resource_declaration"):
        body = next((n for n in walk(decl) if n.type == "object"), None)
        yield literal(named(decl)[1]), body


def find_all(key: str):
    """Every value node whose property key is `key`, across all files."""
    return [v for f in BICEP_FILES for v in find_in(f, key)]


def find_in(path: Path, key: str):
    """Every value node whose property key is `key`, in one file."""
    return [
        named(n)[-1] for n in walk(parse(path))
        if n.type == "object_property" and literal(named(n)[0]) == key
    ]


def test_layout():
    assert MAIN in BICEP_FILES and (INFRA / "main.parameters.json").is_file()
    assert (ROOT / "azure.yaml").is_file()


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_parses_cleanly(path):
    bad = [n for n in walk(parse(path)) if n.is_error or n.is_missing]
    assert not bad, [(n.start_point, text(n)[:60]) for n in bad]
    assert not parse(path).has_error


def test_modules_exist_and_receive_their_params():
    for path in BICEP_FILES:
        for decl in declarations(path, "module_declaration"):
            ref = literal(named(decl)[1])
            if re.match(r"^(br|ts)[:/]", ref):
                continue
            target = (path.parent / ref).resolve()
            assert target.is_file(), f"{path.name}: module '{ref}' not found"
            body = next(n for n in walk(decl) if n.type == "object")
            given = set(props(props(body)["params"])) if "params" in props(body) else set()
            declared = params(target)
            assert given <= set(declared), f"{ref}: unknown params {given - set(declared)}"
            required = {p for p, has_default in declared.items() if not has_default}
            assert required <= given, f"{ref}: missing params {required - given}"


def test_parameters_file_supplies_required_params():
    supplied = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = params(MAIN)
    assert set(supplied) <= set(declared), set(supplied) - set(declared)
    required = {p for p, has_default in declared.items() if not has_default}
    assert required <= set(supplied), required - set(supplied)
    values = {k: v["value"] for k, v in supplied.items()}
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["principalId"] == "${AZURE_PRINCIPAL_ID}"


def app_settings_object(body):
    """The literal settings of `properties: union({...}, upstreamSecretSettings)`."""
    value = props(body)["properties"]
    return value if value.type == "object" else next(n for n in walk(value) if n.type == "object")


def test_app_settings():
    found = [
        body for f in BICEP_FILES for rtype, body in resources(f)
        if rtype.startswith("Microsoft.Web/sites/config@") and literal(props(body)["name"]) == "appsettings"
    ]
    assert len(found) == 1
    settings = props(app_settings_object(found[0]))
    assert set(settings) == EXPECTED_APP_SETTINGS
    for name, value in LITERAL_SETTINGS.items():
        assert literal(settings[name]) == value, name
    for name in ("GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET", "AGENT_CARD_SIGNING_JWK"):
        assert text(settings[name]).startswith("'@Microsoft.KeyVault(SecretUri=${"), name
    main_vars = {text(named(d)[0]): literal(named(d)[-1]) for d in declarations(MAIN, "variable_declaration")}
    assert main_vars["cosmosDatabaseName"] == "gateway"
    assert main_vars["cosmosContainerName"] == "registry"


def test_flex_consumption_function_app():
    runtime = props(find_all("runtime")[0])
    assert (literal(runtime["name"]), literal(runtime["version"])) == ("python", "3.13")
    assert any(literal(props(v).get("name")) == "FC1" for v in find_all("sku") if v.type == "object")
    assert "instanceMemoryMB" in props(find_all("scaleAndConcurrency")[0])
    assert [literal(v) for v in find_all("azd-service-name")] == ["api"]
    assert "SystemAssigned" in [literal(props(v)["type"]) for v in find_all("identity")]
    storage = props(props(find_all("deployment")[0])["storage"])
    assert literal(storage["type"]) == "blobContainer"


def test_keyless_data_services():
    assert [literal(v) for v in find_all("disableLocalAuth")] == [True]
    assert [literal(v) for v in find_all("allowSharedKeyAccess")] == [False]
    assert [literal(v) for v in find_all("enableRbacAuthorization")] == [True]
    pk = props(find_all("partitionKey")[0])
    assert [literal(p) for p in named(pk["paths"])] == ["/pk"]
    assert "'EnableServerless'" in text(find_all("capabilities")[0])


def test_key_vault_secrets():
    kv = INFRA / "modules" / "keyvault.bicep"
    names = {literal(props(b)["name"]) for t, b in resources(kv) if t.startswith("Microsoft.KeyVault/vaults/secrets@")}
    assert names == {"gateway-admin-key", "gateway-key-hash-secret", "agent-card-signing-jwk"}


def test_role_definition_guids():
    guids = {
        literal(n) for f in BICEP_FILES for n in walk(parse(f))
        if n.type == "string" and GUID.match(str(literal(n)))
    }
    assert guids == ROLE_GUIDS
    types = {t.split("@")[0] for f in BICEP_FILES for t, _ in resources(f)}
    assert {"Microsoft.Authorization/roleAssignments",
            "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"} <= types


def test_azure_yaml():
    doc = (ROOT / "azure.yaml").read_text()
    for line in ("name: ai-gateway-governance", "provider: bicep", "path: infra",
                 "project: .", "language: python", "host: function"):
        assert re.search(rf"^\s*{re.escape(line)}\s*$", doc, re.M), line
    assert re.search(r"^services:\s*\n\s+api:\s*$", doc, re.M)


# --- Flex Consumption scale and concurrency -------------------------------------------
# The plan's documented limits (Microsoft Learn, "Azure Functions Flex Consumption plan
# hosting": Instance sizes; Considerations/Scale: lowest maximum 1 (older versions: 40),
# highest 1000). perInstanceConcurrency: 1..1000 as exposed here (the API type is an int).
FLEX_MEMORY_MB = {512, 2048, 4096}
FLEX_MAX_INSTANCES = (1, 1000)
HTTP_CONCURRENCY = (1, 1000)
FUNCTIONAPP = INFRA / "modules" / "functionapp.bicep"
NETWORK = INFRA / "modules" / "network.bicep"


def param_specs(path: Path) -> dict:
    """Param name -> {"default": value node or None, "decorators": {name: [argument nodes]}}."""
    out, pending = {}, []
    for node in named(parse(path)):
        if node.type == "decorators":
            pending = [c for c in node.children if c.type == "decorator"]
            continue
        if node.type == "parameter_declaration":
            parts = named(node)
            decorators = {}
            for dec in pending:
                call = named(dec)[0]
                decorators[text(named(call)[0])] = named(named(call)[1])
            out[text(parts[0])] = {"default": parts[2] if len(parts) > 2 else None, "decorators": decorators}
        pending = []
    return out


def number(node) -> int:
    return int(text(node))


def module_params(name: str) -> dict:
    decl = next(d for d in declarations(MAIN, "module_declaration") if text(named(d)[0]) == name)
    body = next(n for n in walk(decl) if n.type == "object")
    return props(props(body)["params"])


def site_properties() -> dict:
    site = next(b for t, b in resources(FUNCTIONAPP) if t.startswith("Microsoft.Web/sites@"))
    return props(props(site)["properties"])


def scale_and_concurrency() -> dict:
    return props(props(site_properties()["functionAppConfig"])["scaleAndConcurrency"])


def assert_bounded(spec: dict, low: int, high: int) -> int:
    decorators = spec["decorators"]
    assert number(decorators["minValue"][0]) >= low, decorators
    assert number(decorators["maxValue"][0]) <= high, decorators
    default = number(spec["default"])
    assert number(decorators["minValue"][0]) <= default <= number(decorators["maxValue"][0])
    return default


@pytest.mark.parametrize("path", [MAIN, FUNCTIONAPP], ids=["main", "functionapp"])
def test_flex_scale_parameters_within_the_plan_limits(path):
    specs = param_specs(path)
    assert assert_bounded(specs["maximumInstanceCount"], *FLEX_MAX_INSTANCES) == 100
    # A slot per in-flight request, and an SSE stream keeps its slot for the whole
    # generation: the default must be far above the platform's Python default of ~1.
    assert assert_bounded(specs["httpPerInstanceConcurrency"], *HTTP_CONCURRENCY) >= 16
    assert assert_bounded(specs["httpAlwaysReadyInstances"], 0, FLEX_MAX_INSTANCES[1]) == 0
    memory = specs["instanceMemoryMB"]
    assert {number(n) for n in named(memory["decorators"]["allowed"][0])} == FLEX_MEMORY_MB
    assert number(memory["default"]) == 2048


def test_flex_scale_parameters_are_wired_to_the_site():
    passed = module_params("functionApp")
    for name in ("maximumInstanceCount", "instanceMemoryMB", "httpPerInstanceConcurrency",
                 "httpAlwaysReadyInstances", "zoneRedundant"):
        assert text(passed[name]) == name, name
    scale = scale_and_concurrency()
    assert text(scale["maximumInstanceCount"]) == "maximumInstanceCount"
    assert text(scale["instanceMemoryMB"]) == "instanceMemoryMB"
    http = props(props(scale["triggers"])["http"])
    assert text(http["perInstanceConcurrency"]) == "httpPerInstanceConcurrency"
    # Always-ready: the `http` group, only when asked for (0 keeps scale-to-zero).
    assert text(scale["alwaysReady"]) == "httpAlwaysReadyInstances > 0 ? httpAlwaysReady : []"
    ready = next(d for d in declarations(FUNCTIONAPP, "variable_declaration") if text(named(d)[0]) == "httpAlwaysReady")
    group = props(named(named(ready)[-1])[0])
    assert (literal(group["name"]), text(group["instanceCount"])) == ("http", "httpAlwaysReadyInstances")
    plan = next(b for t, b in resources(FUNCTIONAPP) if t.startswith("Microsoft.Web/serverfarms@"))
    assert text(props(props(plan)["properties"])["zoneRedundant"]) == "zoneRedundant"


def test_site_hardening():
    site = site_properties()
    assert literal(site["httpsOnly"]) is True
    config = props(site["siteConfig"])
    assert literal(config["minTlsVersion"]) in {"1.2", "1.3"}
    assert literal(config["scmMinTlsVersion"]) in {"1.2", "1.3"}
    assert literal(config["http20Enabled"]) is True
    # FTPS does not exist on Flex Consumption: `ftpsState` is on its deprecated list, so it
    # must not be sent, and checkov's FTP check is skipped with that reason instead.
    assert "ftpsState" not in config and not find_all("ftpsState")
    assert "CKV_AZURE_78" in skips_in(FUNCTIONAPP)


def test_key_vault_hardening():
    kv = INFRA / "modules" / "keyvault.bicep"
    vault = next(b for t, b in resources(kv) if t.startswith("Microsoft.KeyVault/vaults@"))
    properties = props(props(vault)["properties"])
    assert literal(properties["enableSoftDelete"]) is True
    assert literal(properties["enablePurgeProtection"]) is True
    assert text(properties["softDeleteRetentionInDays"]) == "softDeleteRetentionInDays"
    assert_bounded(param_specs(kv)["softDeleteRetentionInDays"], 7, 90)
    assert text(module_params("keyVault")["softDeleteRetentionInDays"]) == "keyVaultSoftDeleteRetentionInDays"


def test_storage_replication_defaults_to_zone_redundant():
    storage = INFRA / "modules" / "storage.bicep"
    assert literal(param_specs(storage)["skuName"]["default"]) == "Standard_ZRS"
    assert literal(param_specs(MAIN)["storageSkuName"]["default"]) == "Standard_ZRS"
    assert text(module_params("storage")["skuName"]) == "storageSkuName"


# --- private networking ------------------------------------------------------------------
DATA_MODULES = {"storage": "storage.bicep", "cosmos": "cosmos.bicep", "keyVault": "keyvault.bicep"}


def test_private_networking_is_one_parameter_defaulting_to_public():
    spec = param_specs(MAIN)["enablePrivateNetworking"]
    assert literal(spec["default"]) is False
    decl = next(d for d in declarations(MAIN, "module_declaration") if text(named(d)[0]) == "network")
    assert literal(named(decl)[1]) == "modules/network.bicep"
    condition = next(n for n in named(decl) if n.type == "if_statement")
    assert text(named(condition)[0]) == "(enablePrivateNetworking)"
    # Nothing of the VNet exists outside that conditional module.
    for path in BICEP_FILES:
        if path != NETWORK:
            assert not [t for t, _ in resources(path) if t.startswith("Microsoft.Network/")], path
    subnet = text(module_params("functionApp")["virtualNetworkSubnetId"])
    assert subnet == "enablePrivateNetworking ? network.outputs.appSubnetId : ''"
    assert text(site_properties()["virtualNetworkSubnetId"]) == (
        "empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId")


@pytest.mark.parametrize("module,file", sorted(DATA_MODULES.items()))
def test_data_services_close_public_access_with_private_networking(module, file):
    assert text(module_params(module)["privateNetworking"]) == "enablePrivateNetworking"
    path = INFRA / "modules" / file
    assert literal(param_specs(path)["privateNetworking"]["default"]) is False
    assert [text(v) for v in find_in(path, "publicNetworkAccess")] == ["privateNetworking ? 'Disabled' : 'Enabled'"]
    # Where a firewall default exists it follows the same switch.
    assert [text(v) for v in find_in(path, "defaultAction")] in ([], ["privateNetworking ? 'Deny' : 'Allow'"])


def test_network_module_covers_every_data_endpoint():
    types = {t.split("@")[0] for t, _ in resources(NETWORK)}
    assert {"Microsoft.Network/virtualNetworks", "Microsoft.Network/privateDnsZones",
            "Microsoft.Network/privateDnsZones/virtualNetworkLinks", "Microsoft.Network/privateEndpoints",
            "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"} <= types
    endpoints = next(d for d in declarations(NETWORK, "variable_declaration") if text(named(d)[0]) == "endpoints")
    services = {literal(props(o)["service"]): text(props(o)["targetId"]) for o in named(named(endpoints)[-1])}
    assert services == {"blob": "storageAccountId", "queue": "storageAccountId", "table": "storageAccountId",
                        "Sql": "cosmosAccountId", "vault": "keyVaultId"}
    delegations = [literal(v) for v in find_all("serviceName")]
    assert delegations == ["Microsoft.App/environments"]  # the delegation Flex VNet integration needs
    subnet_names = [literal(named(d)[-1]) for d in declarations(NETWORK, "variable_declaration")
                    if text(named(d)[0]).endswith("SubnetName")]
    assert subnet_names and all("_" not in n for n in subnet_names)  # Flex rejects underscores


def test_parameters_file_defaults_match_the_template():
    supplied = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    specs = param_specs(MAIN)
    mapped = {k: v["value"] for k, v in supplied.items() if "=" in str(v["value"])}
    assert set(mapped) == {"enablePrivateNetworking", "maximumInstanceCount", "instanceMemoryMB",
                           "httpPerInstanceConcurrency", "httpAlwaysReadyInstances", "agentCardSigningJwk"}
    for name, value in mapped.items():
        default = re.fullmatch(r"\$\{[A-Z_]+=([^}]*)\}", value).group(1)
        assert default == text(specs[name]["default"]).strip("'"), name  # '' in Bicep is an empty default


# --- checkov: every remaining finding justified in the Bicep --------------------------------
SKIP = re.compile(r"^\s*//\s*checkov:skip=(?P<id>CKV2?_[A-Z]+_\d+)(?::(?P<reason>.*))?$")


def skips_in(path: Path) -> list[str]:
    return [m["id"] for line in path.read_text().splitlines() if (m := SKIP.match(line))]


def test_every_checkov_skip_is_justified_and_documented():
    gate = load_gate()
    docs = (ROOT / "docs" / "deploy.md").read_text()
    seen = []
    for path in BICEP_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" not in line:
                continue
            match = SKIP.match(line)
            assert match, f"{path.name}: malformed skip {line.strip()!r}"
            assert len((match["reason"] or "").strip()) >= gate.MIN_REASON_CHARS, line
            seen.append(match["id"])
    assert seen, "no skips found: the parser above is broken"
    undocumented = {s for s in seen if s not in docs}
    assert not undocumented, f"skips not explained in docs/deploy.md: {undocumented}"


def load_gate():
    import importlib.util
    spec = importlib.util.spec_from_file_location("checkov_gate", INFRA / "checkov_gate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(failed=(), skipped=(), parsing_errors=0, resources=10) -> dict:
    def check(cid, reason=None):
        result = {"result": "SKIPPED" if reason is not None else "FAILED"}
        if reason is not None:
            result["suppress_comment"] = reason
        return {"check_id": cid, "check_name": "n", "check_result": result,
                "file_path": "/modules/x.bicep", "file_line_range": [1, 2], "resource": "r"}
    return {"check_type": "bicep",
            "summary": {"parsing_errors": parsing_errors, "resource_count": resources},
            "results": {"failed_checks": [check(c) for c in failed],
                        "skipped_checks": [check(c, r) for c, r in skipped], "parsing_errors": []}}


def test_checkov_gate_accepts_only_justified_findings():
    gate = load_gate()
    reason = "Flex Consumption has no FTP endpoint: ftpsState is deprecated"
    assert gate.problems(report(skipped=[("CKV_AZURE_78", reason)])) == []
    assert any("FAILED CKV_AZURE_15" in p for p in gate.problems(report(failed=["CKV_AZURE_15"])))
    for weak in ("", " n/a", "false positive"):
        assert any("without a real reason" in p for p in gate.problems(report(skipped=[("CKV_AZURE_78", weak)])))
    assert gate.problems(report(parsing_errors=1))
    assert gate.problems(report(resources=0))  # a scan that saw nothing is not a clean scan


CHECKOV = load_gate().find_checkov()


@pytest.mark.skipif(CHECKOV is None, reason="checkov not installed (`make checkov` installs it in its own venv; "
                                            "or set CHECKOV=/path/to/checkov): it is a ~270 MB tool, not a test dependency")
def test_checkov_has_no_unjustified_finding():
    gate = load_gate()
    result = gate.run_checkov(CHECKOV, INFRA, timeout_s=300)
    assert gate.problems(result) == []
    assert result["summary"]["failed"] == 0 and result["summary"]["passed"] > 0


def test_response_cache_container_has_a_vector_policy_and_index():
    """The semantic cache's VectorDistance query needs the account capability, the container's vector embedding
    policy on /vector (cosine) and a vector index on the same path, with /vector out of the range index."""
    cosmos = INFRA / "modules" / "cosmos.bicep"
    assert "'EnableNoSQLVectorSearch'" in [text(v) for v in find_in(cosmos, "name")]
    policy = props(find_in(cosmos, "vectorEmbeddingPolicy")[0])
    embedding = props(named(policy["vectorEmbeddings"])[0])
    assert literal(embedding["path"]) == "/vector" and literal(embedding["distanceFunction"]) == "cosine"
    assert literal(embedding["dataType"]) == "float32"
    index = props(named(find_in(cosmos, "vectorIndexes")[0])[0])
    assert literal(index["path"]) == "/vector" and literal(index["type"]) in ("quantizedFlat", "diskANN")
    assert "/vector/*" in [literal(props(p)["path"]) for p in named(find_in(cosmos, "excludedPaths")[0])]
    assert text(find_in(cosmos, "defaultTtl")[0]) == "-1"  # per-item ttl honoured


def test_tools_approval_queues_are_declared_with_their_poison_queue():
    text = (INFRA / "modules" / "storage.bicep").read_text()
    assert "queueServices/queues@" in text and "name: '${toolsApprovalsQueue}-poison'" in text
    assert "param toolsApprovalsQueue string = 'tool-submissions'" in text
