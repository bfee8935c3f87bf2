"""API-to-MCP: an OpenAPI 3.0/3.1 document becomes MCP tools. Each chosen operation is one tool; its
inputSchema holds the parameters (path, query, header, cookie) as properties and the JSON request body as `body`; its
outputSchema is the JSON object schema of the success response, when there is one. The `ApiBinding` kept with
each tool says how a call's arguments map back onto the HTTP request (`api_executor.py`).

Local `$ref`s (`#/...`) are inlined (bounded depth, cycles cut); remote refs are refused: fetching them would be
a second, unchecked egress path.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

import httpx

from ...errors import GatewayError
from .domain import ApiBinding, ApiSource, Finding, ParamBinding, PinnedDefinition
from .probe import ProbeResult, check_schemas
from .scanner import scan

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_MAX_DOCUMENT = 2 * 1024 * 1024
_MAX_DEPTH = 32
_LOCATIONS = ("path", "query", "header", "cookie")
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")
# Header parameters the gateway never lets a tool argument set (names compared lower-cased); the source's own
# outbound auth header is added to these per source (`gateway_headers`).
_RESERVED = frozenset({"host", "authorization", "cookie", "content-length", "content-type", "transfer-encoding",
                       "connection", "proxy-authorization", "x-forwarded-for", "forwarded", "accept",
                       "accept-encoding", "te", "upgrade", "keep-alive", "expect"})
# Header and cookie parameter names must be RFC 9110 tokens: anything else is not a tool argument.
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


def gateway_headers(auth: Any) -> frozenset[str]:
    """The header names (lower-cased) the gateway sets on every request of an API source: the reserved ones and
    the admin-configured outbound auth header, which a tool argument may never set nor shadow."""
    if getattr(auth, "type", "none") == "none":
        return _RESERVED
    return _RESERVED | {str(getattr(auth, "header", "authorization")).lower()}


class OpenApiError(Exception):
    pass


def _parse(text: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OpenApiError(f"the document is neither JSON nor YAML: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise OpenApiError("the document is not an object")
    return doc


async def load_document(source: ApiSource, http: httpx.AsyncClient) -> dict[str, Any]:
    if source.spec.document is not None:
        return source.spec.document
    url = str(source.spec.document_url)
    try:
        async with http.stream("GET", url, timeout=15.0, headers={"accept": "application/json, application/yaml"}
                               ) as resp:
            if resp.status_code != 200:
                raise OpenApiError(f"fetching the document answered HTTP {resp.status_code}")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > _MAX_DOCUMENT:
                    raise OpenApiError(f"the document is larger than {_MAX_DOCUMENT} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise OpenApiError(f"cannot fetch the document: {type(exc).__name__}: {exc}") from None
    return _parse(b"".join(chunks))


class _Refs:
    def __init__(self, doc: dict[str, Any]) -> None:
        self._doc = doc

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise OpenApiError(f"only local $refs are supported: {ref[:200]}")
        node: Any = self._doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise OpenApiError(f"unresolvable $ref {ref[:200]}")
            node = node[part]
        return node

    def inline(self, node: Any, depth: int = 0, seen: tuple[str, ...] = ()) -> Any:
        if depth > _MAX_DEPTH:
            return {}
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref in seen:
                    return {}  # a recursive schema: cut, the tool still validates its outer shape
                return self.inline(self._target(ref), depth + 1, (*seen, ref))
            return {k: self.inline(v, depth + 1, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [self.inline(v, depth + 1, seen) for v in node]
        return node


def _json_schema(schema: Any, v30: bool) -> dict[str, Any]:
    """OpenAPI 3.0's schema dialect → JSON Schema (3.1's already is): `nullable` becomes a null type."""
    if not isinstance(schema, dict):
        return {}
    out = {k: (_json_schema(v, v30) if k in ("items", "additionalProperties", "not") else v)
           for k, v in schema.items() if k not in ("nullable", "example", "xml", "externalDocs", "discriminator")}
    if "properties" in schema and isinstance(schema["properties"], dict):
        out["properties"] = {k: _json_schema(v, v30) for k, v in schema["properties"].items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            out[key] = [_json_schema(v, v30) for v in schema[key]]
    if v30 and schema.get("nullable") is True and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    return out


def _json_media(content: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(content, dict):
        return None
    for media, body in content.items():
        if isinstance(body, dict) and (media == "application/json" or media.endswith("+json")):
            return media, body.get("schema") or {}
    return None


def _operation_tool(path: str, method: str, op: dict[str, Any], shared_params: list[Any], source_id: str,
                    v30: bool, owned: frozenset[str] = _RESERVED) -> tuple[PinnedDefinition, ApiBinding]:
    params: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for p in [*shared_params, *(op.get("parameters") or [])]:
        if isinstance(p, dict) and p.get("in") in _LOCATIONS and isinstance(p.get("name"), str):
            name = p["name"].lower() if p["in"] == "header" else p["name"]  # header names are case-insensitive
            params[(p["in"], name)] = (p["name"], p)  # the operation's own parameter overrides the path's
    # Header and cookie parameters: only token names, and never one the gateway sets itself (reserved headers,
    # the source's auth header): such a parameter is left out of the tool, so a model cannot even try it.
    params = {k: v for k, v in params.items() if k[0] not in ("header", "cookie") or (
        TOKEN.match(v[0]) and (k[0] == "cookie" or v[0].lower() not in owned))}
    names = [w for w, _ in params.values()]
    properties: dict[str, Any] = {}
    required: list[str] = []
    bindings: list[ParamBinding] = []
    for (location, _), (wire, p) in params.items():
        arg = wire if names.count(wire) == 1 else f"{location}_{wire}"
        schema = _json_schema(p.get("schema") or {"type": "string"}, v30)
        if p.get("description") and "description" not in schema:
            schema["description"] = p["description"]
        properties[arg] = schema
        if p.get("required") or location == "path":
            required.append(arg)
        bindings.append(ParamBinding(name=arg[:128], wire_name=wire[:128], location=location))
    body_arg = media = None
    request_body = op.get("requestBody")
    json_body = _json_media(request_body.get("content")) if isinstance(request_body, dict) else None
    if json_body is not None:
        media, schema = json_body
        body_arg = "body" if "body" not in properties else "request_body"
        properties[body_arg] = _json_schema(schema, v30)
        if request_body.get("required"):  # type: ignore[union-attr]
            required.append(body_arg)
    output = None
    for status, response in (op.get("responses") or {}).items():
        if str(status).startswith("2") and isinstance(response, dict):
            found = _json_media(response.get("content"))
            if found and isinstance(found[1], dict) and found[1].get("type") == "object":
                output = _json_schema(found[1], v30)
            break
    op_id = op.get("operationId") if isinstance(op.get("operationId"), str) else f"{method}_{path}"
    name = _TOOL_NAME.sub("_", op_id).strip("_")[:128] or method
    description = "\n\n".join(x for x in (op.get("summary"), op.get("description")) if isinstance(x, str))
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    definition = PinnedDefinition(name=name, title=op.get("summary") if isinstance(op.get("summary"), str) else None,
                                  description=description[:16_384] or None, input_schema=input_schema,
                                  output_schema=output, annotations=_annotations(method))
    binding = ApiBinding(api_source_id=source_id, operation_id=op_id[:256], method=method.upper(),  # type: ignore[arg-type]
                         path=path, params=bindings, body_argument=body_arg, body_media_type=media)
    return definition, binding


def _annotations(method: str) -> dict[str, Any]:
    read_only = method in ("get", "head", "options")
    return {"readOnlyHint": read_only, "idempotentHint": method in ("get", "head", "options", "put", "delete"),
            "destructiveHint": method == "delete", "openWorldHint": True}


def convert(doc: dict[str, Any], source: ApiSource) -> ProbeResult:
    """Tools (with bindings) and findings for the chosen operations of `doc`."""
    result = ProbeResult()
    owned = gateway_headers(source.spec.auth)
    version = str(doc.get("openapi", ""))
    if not version.startswith(("3.0", "3.1")):
        raise OpenApiError(f"only OpenAPI 3.0 and 3.1 documents are supported (got '{version[:20]}')")
    refs, v30 = _Refs(doc), version.startswith("3.0")
    wanted = set(source.spec.operations)
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict) or not isinstance(path, str) or not path.startswith("/"):
            continue
        item = refs.inline(item)
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            if wanted and op.get("operationId") not in wanted and f"{method.upper()} {path}" not in wanted:
                continue
            definition, binding = _operation_tool(path, method, op, item.get("parameters") or [], source.id, v30,
                                                  owned)
            result.tools.append(definition)
            result.bindings[definition.name] = binding
            result.findings.extend(check_schemas(definition) + scan(definition))
    return result


def base_url(doc: dict[str, Any], source: ApiSource) -> str | None:
    if source.spec.base_url is not None:
        return str(source.spec.base_url)
    servers = doc.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        url = str(servers[0].get("url", ""))
        if url.startswith(("http://", "https://")):
            return url
        if source.spec.document_url is not None:  # a relative server URL is relative to the document
            return urljoin(str(source.spec.document_url), url or "/")
    return None


async def inspect(source: ApiSource, http: httpx.AsyncClient, egress_check) -> ProbeResult:
    """The approval probe of an API source: fetch (egress-checked), parse, convert, check the base URL."""
    try:
        doc = await load_document(source, http)
        result = convert(doc, source)
        base = base_url(doc, source)
        if base is None:
            raise OpenApiError("no base URL: set base_url, or give the document an absolute server URL")
        await egress_check(base, "base_url")
        result.server_info = {"base_url": base, "title": str((doc.get("info") or {}).get("title", ""))[:200],
                              "openapi": str(doc.get("openapi"))}
        result.findings.append(Finding(check="openapi", severity="info",
                                       message=f"{len(result.tools)} operations became tools"))
    except OpenApiError as exc:
        result = ProbeResult(findings=[Finding(check="openapi", severity="error", message=str(exc)[:2000])])
    except GatewayError as exc:  # the egress policy refused the base URL
        result = ProbeResult(findings=[Finding(check="egress", severity="error", message=exc.message[:2000])])
    return result
