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


class SchemaCache:
    """Compiled validators by schema digest (bounded LRU): compiling a schema costs far more than validating."""

    def __init__(self, max_entries: int = 2048) -> None:
        self._cache: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()  # key → (schema, validator)
        self._max = max_entries

    def validator(self, schema: dict[str, Any], pinned: str | None = None) -> Any:
        """`pinned`: the tool's pinned definition hash, the key on the hot path (no digest of the schema per call);
        the schema it was compiled from is kept and compared, so a key never serves another schema's validator."""
        key = pinned or hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
        found = self._cache.get(key)
        if found is not None and (pinned is None or found[0] is schema or found[0] == schema):
            self._cache.move_to_end(key)
            return found[1]
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError:
            # An approved schema that is not valid JSON Schema would let everything through: refuse instead.
            cls, compiled = jsonschema.Draft202012Validator, {"not": {}}
        else:
            compiled = schema
        validator = cls(compiled, format_checker=cls.FORMAT_CHECKER)
        self._cache[key] = (schema, validator)
        self._cache.move_to_end(key)
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return validator

    def check(self, schema: dict[str, Any], arguments: dict[str, Any], pinned: str | None = None) -> None:
        errors = []
        for err in self.validator(schema, pinned).iter_errors(arguments):
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
