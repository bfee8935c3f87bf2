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
_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
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


def mismatch(mapping: HeaderMap, arguments: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """Why a 2026 client's `Mcp-Param-*` headers (lower-cased names) disagree with its arguments, or None. Each
    marked argument and its header go together: both absent (null counts as absent), or equal once the header is
    decoded (an integer argument also matches its canonical decimal form, `42` for `42.0`). An intermediary in front
    of the gateway may route on the header while the gateway acts on the body: they must say the same thing."""
    expected = headers_for(mapping, arguments)
    for _path, token in mapping:
        name = PREFIX + token
        sent, want = headers.get(name.lower()), expected.get(name)
        if sent is None and want is None:
            continue
        if sent is None:
            return f"{name} header is missing; the request body has the argument it mirrors."
        if want is None:
            return f"{name} header is present but the request body has no value for it."
        got = header_values.decode(sent)
        if got != header_values.decode(want) and not _same_integer(got, header_values.decode(want)):
            return f"{name} header does not match the request body's argument."
    return None


def _same_integer(sent: str | None, body: str | None) -> bool:
    if sent is None or body is None or not _DECIMAL.fullmatch(sent) or not _DECIMAL.fullmatch(body):
        return False
    whole, _, fraction = sent.partition(".")
    b_whole, _, b_fraction = body.partition(".")
    return set(fraction) <= {"0"} and set(b_fraction) <= {"0"} and int(whole) == int(b_whole)


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
