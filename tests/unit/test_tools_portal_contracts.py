"""The tools portal's contracts and the catalog in process: what a developer may submit (no outbound credentials),
what the catalog's tag search finds, the bounds on key scopes, and the per-tool rate limit's bounded memory."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from functions.mcp_api import JsonRpcMessage
from functions.tools_portal_api import DeveloperSubmission, catalog_of
from shared.domain.base import Pillar
from shared.domain.key_requests import KeyRequestCreate
from shared.domain.keys import KeyCreate
from shared.pillars.tools.directory import ProjectTools
from shared.pillars.tools.domain import McpServer, McpServerSpec
from shared.pillars.tools.spec import ToolQuotaBook
from tests.unit.test_tools_domain import P, tool

URL = "http://127.0.0.1:9/mcp"


@pytest.mark.parametrize("auth", [{"type": "upstream_secret", "setting": "UPSTREAM_SECRET_OPENAI"},
                                  {"type": "managed_identity", "scope": "https://vault.azure.net/.default"},
                                  {"type": "oauth_client_credentials", "token_url": "https://x.example/token",
                                   "client_id": "c", "client_secret_setting": "UPSTREAM_SECRET_X"}])
def test_a_developer_submission_names_no_credentials(auth):
    for body, field in (({"mcp_server": {"id": "devsrv", "url": URL, "namespace": "devsrv", "auth": auth}},
                         ("mcp_server", "auth")),
                        ({"api_source": {"id": "devapi", "document_url": URL, "namespace": "devapi", "auth": auth}},
                         ("api_source", "auth"))):
        with pytest.raises(ValidationError) as err:
            DeveloperSubmission.model_validate(body)
        assert [e["loc"] for e in err.value.errors()] == [field]
    ok = DeveloperSubmission.model_validate({"mcp_server": {"id": "devsrv", "url": URL, "namespace": "devsrv"}})
    assert ok.mcp_server is not None and ok.mcp_server.auth.type == "none"


def test_the_catalog_finds_tools_by_their_servers_registration_tags():
    snap = ProjectTools(P)
    snap.servers["gh"] = McpServer(id="gh", project_id=P, lifecycle="published", approval="approved",
                                   spec=McpServerSpec(id="gh", url=URL, namespace="gh", tags=["code"]))
    snap.tools["gh__a"], snap.tools["gh__b"] = tool("a", tags=["issues"]), tool("b")
    assert [t.name for t in catalog_of(snap, "", None, "code")] == ["gh__a", "gh__b"]
    assert [t.name for t in catalog_of(snap, "", None, "issues")] == ["gh__a"]
    assert [t.tags for t in catalog_of(snap, "", None, None)] == [["issues", "code"], ["code"]]
    assert catalog_of(snap, "", "other", None) == []


def test_key_scopes_and_metadata_are_bounded():
    for bad in ({"tools": ["x" * 257]}, {"tools": [""]}, {"metadata": {"k": "v" * 1025}}, {"metadata": {"": "v"}}):
        with pytest.raises(ValidationError):
            KeyCreate.model_validate({"name": "k", **bad})
    with pytest.raises(ValidationError):
        KeyRequestCreate.model_validate({"name": "k", "models": ["m" * 257]})
    assert KeyCreate.model_validate({"name": "k", "tools": ["gh__a"], "metadata": {"owner": "alice"}}).tools == ["gh__a"]


def test_the_published_json_rpc_contract_bounds_ids_as_the_parser_does():
    for bad in ("x" * 257, 2**53 + 1):
        with pytest.raises(ValidationError):
            JsonRpcMessage.model_validate({"id": bad})
    assert JsonRpcMessage.model_validate({"id": 2**53}).id == 2**53


class _NoQuotas:
    async def for_call(self, project_id, key_id, pillar, resource):
        return []


async def test_a_tools_rate_limit_applies_however_many_tools_were_noted():
    book = ToolQuotaBook(_NoQuotas())  # type: ignore[arg-type]
    for i in range(100_000):
        book.note(P, f"t{i}", 5)
    book.note(P, "late", 7)  # past the bound: noted all the same (older entries make room)
    [limit] = await book.for_call(P, "k1", Pillar.tools, "late")
    assert limit.limits.requests_per_minute == 7
    book.note(P, "late", None)
    assert await book.for_call(P, "k1", Pillar.tools, "late") == []
