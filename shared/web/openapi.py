"""The OpenAPI 3.1 document of the whole HTTP surface, built from the declared operations."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .api import Endpoint

_PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?\??\}")
_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def openapi_path(route: str) -> str:
    return "/" + _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.strip("/"))


def _error_ref() -> dict[str, Any]:
    return {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def build_openapi(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {m for op in endpoints for m in (op.body, op.response) if m is not None}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "Stable, machine-readable error code."},
            "message": {"type": "string"}, "type": {"type": "string"},
            "details": {"description": "Field paths for validation errors, or context."}}}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in endpoints:
        path = openapi_path(op.route)
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in _PARAM.findall(op.route)]
        params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in op.query]
        params += [{"name": n, "in": "header", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in op.headers]
        ok: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
        if op.response is not None:
            ok["content"] = {op.media_type: {"schema": {"$ref": f"#/components/schemas/{op.response.__name__}"}}}
        elif op.status != 204:
            ok["content"] = {op.media_type: {"schema": {}}}
        entry: dict[str, Any] = {
            "operationId": op.name, "summary": op.summary, "tags": [op.tag], "parameters": params,
            "responses": {str(op.status): ok, "default": _error_ref()},
        }
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}}}
        entry["security"] = [{op.guard_scheme: []}] if op.guard_scheme else []
        for method in op.methods:
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "controlPlane": {"type": "http", "scheme": "bearer",
                                 "description": "Bootstrap admin key or Entra ID access token (app roles)."},
                "virtualKey": {"type": "http", "scheme": "bearer", "description": "Virtual key (sk-gw-…)."},
            },
        },
    }
