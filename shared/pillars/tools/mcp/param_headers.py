"""2026-07-28 `Mcp-Param-*` headers: a tool's inputSchema may mark a top-level-reachable string, integer or boolean
property with `"x-mcp-header": "<Token>"`, and a `tools/call` then mirrors that argument into the HTTP header
`Mcp-Param-<Token>` (so intermediaries can route without reading the body). A 2026 server may refuse a call whose
headers do not match its body (-32020), so the gateway, as that server's client, sends them — read from the
pinned inputSchema, which is the server's own.

The rules are the transports spec's, as the official SDKs apply them: the annotation counts only on a property
reached from the root through `properties` alone, its value must be an RFC 9110 token, the property's type one of
string/integer/boolean, and tokens unique case-insensitively; a schema breaking any rule marks no header (a
conforming client drops such a tool's headers). Values: `true`/`false`, else `str()`, wrapped as `=?base64?…?=`
when not plain ASCII (`header_values`). Absent and null arguments send no header."""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from . import header_values

PREFIX = "Mcp-Param-"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TYPES = frozenset({"string", "integer", "boolean"})
# Schema keywords whose values are subschemas: an annotation below any of them is off the `properties` chain.
_NESTED = frozenset({"items", "contains", "unevaluatedItems", "additionalProperties", "propertyNames",
                     "unevaluatedProperties", "not", "if", "then", "else", "contentSchema", "allOf", "anyOf",
                     "oneOf", "prefixItems", "patternProperties", "dependentSchemas", "$defs", "definitions"})
HeaderMap = tuple[tuple[tuple[str, ...], str], ...]
_maps: dict[str, HeaderMap] = {}  # by pinned hash: a schema is walked once, not per call


def header_map(schema: Any, key: str | None = None) -> HeaderMap:
    """(argument path, token) of every valid annotation; () when there is none or the schema breaks a rule."""
    if key is not None and (found := _maps.get(key)) is not None:
        return found
    out: list[tuple[tuple[str, ...], str]] = []
    seen: set[str] = set()
    for path, node in _positions(schema):
        if "x-mcp-header" not in node:
            continue
        token = node["x-mcp-header"]
        if not path or not isinstance(token, str) or not _TOKEN.fullmatch(token) or node.get("type") not in _TYPES \
                or token.lower() in seen:
            out = []
            break
        seen.add(token.lower())
        out.append((path, token))
    result = tuple(out)
    if key is not None:
        if len(_maps) >= 10_000:
            _maps.clear()
        _maps[key] = result
    return result


def headers_for(mapping: HeaderMap, arguments: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, token in mapping:
        value: Any = arguments
        for step in path:
            value = value.get(step) if isinstance(value, Mapping) else None
        if isinstance(value, bool):
            out[PREFIX + token] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[PREFIX + token] = header_values.encode(str(value))
    return out


def _positions(root: Any) -> Iterator[tuple[tuple[str, ...] | None, dict[str, Any]]]:
    """Every subschema with its `properties` path from the root (None once another keyword was crossed)."""
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        for keyword, value in node.items():
            if keyword == "properties" and isinstance(value, dict):
                stack.extend(((*path, name) if path is not None else None, sub) for name, sub in value.items())
            elif keyword in _NESTED:
                subs = value.values() if isinstance(value, dict) and keyword in (
                    "patternProperties", "dependentSchemas", "$defs", "definitions") else \
                    value if isinstance(value, list) else [value]
                stack.extend((None, sub) for sub in subs)
