"""API-to-MCP: OpenAPI 3.0/3.1 → tools, and the executor that turns a call into one HTTP request."""
from __future__ import annotations

import json

import httpx
import pytest

from shared.config import Settings
from shared.pillars.tools.api_executor import ApiExecutor, build_request
from shared.pillars.tools.domain import ApiSource, ApiSourceSpec, ToolDefinition
from shared.pillars.tools.openapi import convert
from shared.pillars.tools.outbound_auth import OutboundAuthenticator

DOC = {
    "openapi": "3.0.3", "info": {"title": "Pets", "version": "1"}, "servers": [{"url": "https://api.example.com/v1"}],
    "paths": {
        "/pets/{petId}": {
            "parameters": [{"name": "petId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": "getPet", "summary": "Get a pet",
                    "parameters": [{"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                                   {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                                   {"name": "Authorization", "in": "header", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Pet"}}}}}},
            "delete": {"operationId": "deletePet", "responses": {"204": {"description": "gone"}}},
        },
        "/pets": {"post": {"operationId": "addPet", "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
            "responses": {"201": {"description": "created"}}}},
    },
    "components": {"schemas": {"Pet": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "tag": {"type": "string", "nullable": True},
        "parent": {"$ref": "#/components/schemas/Pet"}}}}},
}


def source(**kw) -> ApiSource:
    spec = {"id": "pets", "document": DOC, "namespace": "pets", **kw}
    return ApiSource(id="pets", project_id="p", spec=ApiSourceSpec(**spec),
                     resolved_base_url="https://api.example.com/v1")


def test_operations_become_tools_with_bindings_and_schemas():
    result = convert(DOC, source())
    tools = {t.name: t for t in result.tools}
    assert set(tools) == {"getPet", "deletePet", "addPet"}
    get = tools["getPet"]
    assert get.input_schema["required"] == ["petId"]
    assert set(get.input_schema["properties"]) == {"petId", "verbose", "X-Trace"}  # Authorization is never an arg
    assert get.output_schema["properties"]["tag"]["type"] == ["string", "null"]  # 3.0 nullable → JSON Schema
    assert get.annotations["readOnlyHint"] is True and tools["deletePet"].annotations["destructiveHint"] is True
    assert tools["addPet"].input_schema["required"] == ["body"]
    assert result.bindings["addPet"].body_argument == "body" and result.bindings["addPet"].method == "POST"
    assert not [f for f in result.findings if f.severity == "error"]


def test_chosen_operations_only_and_version_checked():
    assert [t.name for t in convert(DOC, source(operations=["getPet", "POST /pets"])).tools] == ["getPet", "addPet"]
    from shared.pillars.tools.openapi import OpenApiError
    with pytest.raises(OpenApiError):
        convert({"swagger": "2.0"}, source())
    with pytest.raises(OpenApiError):
        convert({**DOC, "paths": {"/x": {"get": {"parameters": [{"$ref": "https://evil/x"}]}}}}, source())


def test_path_arguments_cannot_escape_the_path():
    binding = convert(DOC, source()).bindings["getPet"]
    url, kw = build_request("https://api.example.com/v1", binding, {"petId": "../admin?x=1", "verbose": True})
    assert url == "https://api.example.com/v1/pets/..%2Fadmin%3Fx%3D1" and kw["params"] == [("verbose", "true")]


async def test_executor_sends_the_request_and_maps_the_answer():
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.method == "POST":
            return httpx.Response(400, text="name missing")
        return httpx.Response(200, json={"name": "rex", "tag": None})

    result = convert(DOC, source())
    auth = OutboundAuthenticator(Settings(), httpx.AsyncClient())
    ex = ApiExecutor(httpx.AsyncClient(transport=httpx.MockTransport(handler)), auth)
    src = source(auth={"type": "upstream_secret", "setting": "UPSTREAM_SECRET_PETS", "header": "x-api-key",
                       "scheme": None})

    def tool(name: str) -> ToolDefinition:
        d = next(t for t in result.tools if t.name == name)
        return ToolDefinition(id=f"pets__{name}", project_id="p", server_id="pets", source="api",
                              original_name=name, name=f"pets__{name}", definition=d, binding=result.bindings[name])

    import os
    os.environ["UPSTREAM_SECRET_PETS"] = "s3cret"
    try:
        ok = await ex.call(src, tool("getPet"), {"petId": "7", "X-Trace": "t1"})
        bad = await ex.call(src, tool("addPet"), {"body": {"tag": "x"}})
    finally:
        del os.environ["UPSTREAM_SECRET_PETS"]
    assert ok["structuredContent"] == {"name": "rex", "tag": None} and ok["isError"] is False
    assert seen[0].headers["x-api-key"] == "s3cret" and seen[0].headers["x-trace"] == "t1"
    assert str(seen[0].url) == "https://api.example.com/v1/pets/7"
    assert bad["isError"] is True and "HTTP 400" in bad["content"][0]["text"]
    assert json.loads(seen[1].content) == {"tag": "x"}
    too_big = await ApiExecutor(httpx.AsyncClient(transport=httpx.MockTransport(
        lambda r: httpx.Response(200, text="x" * 100))), auth).call(
        source(), tool("getPet"), {"petId": "1"}, max_result_bytes=10)
    assert too_big["isError"] is True
