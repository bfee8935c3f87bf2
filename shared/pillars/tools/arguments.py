"""Arguments checked against the tool's pinned inputSchema before anything goes upstream, and the digest that
identifies "this exact call" for per-call approvals."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

_MAX_ERRORS = 20


class ArgumentsInvalid(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("arguments do not match the tool's inputSchema")
        self.errors = errors


# Keywords that only annotate (no assertion under any draft the validator picks): a schema made of these plus the
# subset below is decided exactly by `_plain_checker`.
_NOTES = frozenset({"title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
                    "writeOnly"})
_TYPES: dict[str, Any] = {"string": str, "boolean": bool, "object": dict, "array": list}


def _value_check(prop: Any) -> Any:
    """A property schema `{"type": <one JSON type>}` (+ annotations) → a predicate that is True only where the
    full validator says valid; None for anything else (then the full validator decides)."""
    if not isinstance(prop, dict) or not set(prop) <= _NOTES | {"type"} or not isinstance(prop.get("type"), str):
        return None
    kind = prop["type"]
    if kind in _TYPES:
        cls = _TYPES[kind]
        return lambda v: type(v) is cls
    if kind == "integer":  # bool is not an integer; 1.0 is (2020-12) — but the fast path leaves floats to jsonschema
        return lambda v: type(v) is int
    if kind == "number":
        return lambda v: type(v) is int or type(v) is float
    if kind == "null":
        return lambda v: v is None
    return None


def _plain_checker(schema: dict[str, Any]) -> Any:
    """The shape almost every tool's inputSchema has — `{"type": "object", "properties": {name: {"type": T}},
    "required": [...], "additionalProperties": bool}` — checked in a few dict operations. Returns a predicate that
    answers True only for arguments the full validator accepts (False means: ask the full validator, which also
    writes the error messages); None when the schema is outside this subset."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    if not set(schema) <= _NOTES | {"type", "properties", "required", "additionalProperties", "$schema"}:
        return None
    props = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(props, dict) or not isinstance(required, list) or not isinstance(extra, bool):
        return None
    if not all(isinstance(r, str) for r in required):
        return None
    checks = {name: _value_check(prop) for name, prop in props.items()}
    if any(c is None for c in checks.values()):
        return None
    need = tuple(required)

    def plain(arguments: dict[str, Any]) -> bool:
        for name in need:
            if name not in arguments:
                return False
        for name, value in arguments.items():
            check = checks.get(name)
            if check is None:
                if not extra:
                    return False
            elif not check(value):
                return False
        return True

    return plain


class SchemaCache:
    """Compiled validators by schema digest (bounded LRU): compiling a schema costs far more than validating."""

    def __init__(self, max_entries: int = 2048) -> None:
        # key → (schema, validator, plain-shape predicate or None)
        self._cache: OrderedDict[str, tuple[dict[str, Any], Any, Any]] = OrderedDict()
        self._max = max_entries

    def validator(self, schema: dict[str, Any], pinned: str | None = None) -> Any:
        """`pinned`: the tool's pinned definition hash, the key on the hot path (no digest of the schema per call);
        the schema it was compiled from is kept and compared, so a key never serves another schema's validator."""
        return self._compiled(schema, pinned)[1]

    def _compiled(self, schema: dict[str, Any], pinned: str | None) -> tuple[dict[str, Any], Any, Any]:
        key = pinned or hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
        found = self._cache.get(key)
        if found is not None and (pinned is None or found[0] is schema or found[0] == schema):
            self._cache.move_to_end(key)
            return found
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError:
            # An approved schema that is not valid JSON Schema would let everything through: refuse instead.
            cls, compiled = jsonschema.Draft202012Validator, {"not": {}}
        else:
            compiled = schema
        entry = (schema, cls(compiled, format_checker=cls.FORMAT_CHECKER), _plain_checker(compiled))
        self._cache[key] = entry
        self._cache.move_to_end(key)
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return entry

    def check(self, schema: dict[str, Any], arguments: dict[str, Any], pinned: str | None = None) -> None:
        _, validator, plain = self._compiled(schema, pinned)
        if plain is not None and plain(arguments):
            return  # the common shape, certainly valid: no jsonschema walk
        errors = []
        for err in validator.iter_errors(arguments):
            errors.append({"field": "/".join(str(p) for p in err.absolute_path) or "arguments",
                           "message": err.message[:300]})
            if len(errors) >= _MAX_ERRORS:
                break
        if errors:
            raise ArgumentsInvalid(errors)


def call_digest(tool: str, arguments: dict[str, Any]) -> str:
    """sha256 over the tool name and the canonical arguments (sorted keys): the same call, the same digest."""
    canonical = orjson.dumps({"tool": tool, "arguments": arguments}, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
