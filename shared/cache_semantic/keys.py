"""Which entries a request may be answered from (its scope), its exact key, and the prompt text to match."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from .settings import CacheSettings

# Fields that change how an answer is delivered, never what it says: left out of the exact key.
_DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})


@dataclass(frozen=True)
class CacheKey:
    scope: str  # hash: project, model, and what the settings vary by
    exact: str  # hash of the whole request (minus delivery fields) within the scope
    prompt: str  # the considered messages' text, matched semantically


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text parts only (images make a request uncacheable upstream)
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def system_prompt(body: dict[str, Any]) -> str:
    return "\n".join(_text(m.get("content")) for m in body.get("messages") or []
                     if isinstance(m, dict) and m.get("role") in ("system", "developer"))


def considered_prompt(body: dict[str, Any], count: int) -> str:
    turns = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    return "\n".join(_text(m.get("content")) for m in turns[-count:]).strip()


def cache_key(settings: CacheSettings, *, project_id: str, key_id: str | None, model: str,
              body: dict[str, Any]) -> CacheKey:
    scope: dict[str, Any] = {"project": project_id, "model": model,
                             "fields": {f: body.get(f) for f in settings.vary_fields if f in body}}
    if "key" in settings.vary_by:
        scope["key"] = key_id
    if "system_prompt" in settings.vary_by:
        scope["system"] = system_prompt(body)
    # A prefix of the scope hash keeps entries of different scopes apart even if someone chose messages_considered
    # smaller than the conversation: earlier turns still separate the exact key.
    scope_hash = _digest(scope)[:40]
    exact = _digest({"scope": scope_hash, "request": {k: v for k, v in body.items() if k not in _DELIVERY_FIELDS}})
    return CacheKey(scope_hash, exact[:48], considered_prompt(body, settings.messages_considered))
