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
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
}
LITERAL_SETTINGS = {
    "COSMOS_CREATE_IF_MISSING": "false", "FLAG_CACHE_TTL_SECONDS": "5",
    "FAIL_STATIC_MAX_SECONDS": "300", "PYTHON_ENABLE_INIT_INDEXING": "1",
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
    return [
        named(n)[-1] for f in BICEP_FILES for n in walk(parse(f))
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


def test_app_settings():
    found = [
        body for f in BICEP_FILES for rtype, body in resources(f)
        if rtype.startswith("Microsoft.Web/sites/config@") and literal(props(body)["name"]) == "appsettings"
    ]
    assert len(found) == 1
    settings = props(props(found[0])["properties"])
    assert set(settings) == EXPECTED_APP_SETTINGS
    for name, value in LITERAL_SETTINGS.items():
        assert literal(settings[name]) == value, name
    for name in ("GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET"):
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
    assert names == {"gateway-admin-key", "gateway-key-hash-secret"}


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
