"""Converting results between revisions, so each side sees only what its own revision defines.

- A 2025-era client never sees 2026 fields (`resultType`, `ttlMs`, `cacheScope`), and a client before 2025-06-18
  never sees structured output (`structuredContent` is folded into text content; `outputSchema`, `title`,
  `icons` are dropped from tool definitions).
- A 2026 client always gets `resultType` (absent upstream means "complete", per the 2026 schema), and cacheable
  results (the lists and `resources/read`: the schema's `CacheableResult`s) carry `ttlMs` and `cacheScope` —
  `private` whenever the answer depends on who asks (every toolbox answer does: it is filtered by the caller's
  scopes).
"""
from __future__ import annotations

from typing import Any

import orjson

from . import revisions as rev

# The 2026-07-28 schema's CacheableResult methods (server/discover is built whole by the toolbox).
CACHEABLE_METHODS = frozenset({"server/discover", "tools/list", "resources/list", "resources/templates/list",
                               "prompts/list", "resources/read"})
_MODERN_ONLY = ("resultType", "ttlMs", "cacheScope")
_TOOL_FIELDS_SINCE = {"outputSchema": "2025-06-18", "title": "2025-06-18", "icons": "2025-11-25",
                      "execution": "2025-11-25"}


def to_client(result: dict[str, Any], *, method: str, client_version: str, ttl_ms: int = 0,
              private: bool = True) -> dict[str, Any]:
    if rev.is_modern(client_version):
        out = dict(result)
        out.setdefault("resultType", "complete")
        if method in CACHEABLE_METHODS:
            out["ttlMs"] = ttl_ms
            out["cacheScope"] = "private" if private else out.get("cacheScope", "public")
        return out
    out = {k: v for k, v in result.items() if k not in _MODERN_ONLY}
    if method == "tools/list" and isinstance(out.get("tools"), list):
        out["tools"] = [tool_for(t, client_version) for t in out["tools"]]
    if method == "tools/call" and not rev.has_structured_output(client_version) and "structuredContent" in out:
        structured = out.pop("structuredContent")
        if not out.get("content"):
            out["content"] = [{"type": "text", "text": orjson.dumps(structured).decode()}]
    return out


def tool_for(tool: dict[str, Any], client_version: str) -> dict[str, Any]:
    return {k: v for k, v in tool.items() if k not in _TOOL_FIELDS_SINCE
            or rev.at_least(client_version, _TOOL_FIELDS_SINCE[k])}


# What a 2026-07-28 server may ask a client for inside an `InputRequiredResult` (its `inputRequests`): the client
# answers on its retry of the same request, which any gateway instance forwards — so these survive a stateless
# gateway, and a 2026 client's own declaration of them is passed on to a 2026 server. Nothing else is (the
# gateway's own extensions, e.g. tasks, are declared by the gateway itself).
RELAYED_CAPABILITIES = ("elicitation", "sampling", "roots")


def relayed_capabilities(client_params: dict[str, Any]) -> dict[str, Any]:
    """The capabilities of a 2026 client's request envelope that its server may use through the gateway."""
    meta = client_params.get("_meta")
    caps = meta.get(rev.CLIENT_CAPABILITIES_KEY) if isinstance(meta, dict) else None
    if not isinstance(caps, dict):
        return {}
    return {k: caps[k] for k in RELAYED_CAPABILITIES if isinstance(caps.get(k), dict)}


def is_input_required(result: dict[str, Any]) -> bool:
    return result.get("resultType") == "input_required"


def strip_envelope(params: dict[str, Any]) -> dict[str, Any]:
    """Request params without the client's per-request `_meta` envelope keys (the upstream side gets its own)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return params
    kept = {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/")}
    out = {k: v for k, v in params.items() if k != "_meta"}
    if kept:
        out["_meta"] = kept
    return out
