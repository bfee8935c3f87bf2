"""Values mirrored into 2026-07-28 HTTP headers (`Mcp-Name`, `Mcp-Param-*`): printable ASCII travels as is;
anything else (non-ASCII, control characters, edge whitespace, a value that itself looks like the wrapper) as
`=?base64?<UTF-8, base64>?=` — the transports spec's encoding, which the official SDKs emit and expect. A wrapper
that does not decode canonically is None, so a corrupt header never equals a body value by accident."""
from __future__ import annotations

import base64
import binascii
import re

_WRAPPED = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_PLAIN = re.compile(r"^[\x20-\x7E]*$")


def encode(value: str) -> str:
    if _PLAIN.fullmatch(value) and value == value.strip() and not _WRAPPED.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def decode(value: str | None) -> str | None:
    if value is None:
        return None
    m = _WRAPPED.fullmatch(value)
    if m is None:
        return value
    payload = m.group("payload")
    try:
        raw = base64.b64decode(payload, validate=True)
    except binascii.Error:
        return None
    if base64.b64encode(raw).decode("ascii") != payload:  # non-canonical (stray bits): never what we would emit
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
