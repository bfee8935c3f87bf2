"""Tool-poisoning / prompt-injection scan of what a model will read: a tool's title, description and annotations,
and inside its schemas every description and title and every example value (`enum`, `const`, `default`,
`examples`). Instructions hidden there reach the model verbatim ("tool poisoning"), so the
approval probe flags them for the admin; clean submissions may be auto-approved, flagged ones never are."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from .domain import Finding, PinnedDefinition

# (pattern, severity, why): phrases seen in published tool-poisoning and injection examples.
_PATTERNS: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p, re.I | re.S), sev, why) for p, sev, why in (
    (r"ignore\s+(all\s+|any\s+)?(previous|prior|above|other)\s+(instructions|prompts?|rules)", "error",
     "asks the model to ignore its instructions"),
    (r"<\s*(important|system|instructions?|secret)\s*>", "error", "hidden instruction block"),
    (r"(do\s+not|don'?t|never)\s+(tell|mention|inform|reveal|show|notify)\b.{0,40}\buser", "error",
     "asks the model to hide something from the user"),
    (r"\b(system\s+prompt|developer\s+message)\b", "warning", "refers to the system prompt"),
    (r"before\s+(using|calling)\s+(this|any)\s+tool.{0,80}\b(read|send|call|pass|include)", "error",
     "instructs the model to act before the call"),
    (r"(~/\.ssh|id_rsa|\.aws/credentials|\.env\b|/etc/passwd|mcp\.json|api[_ -]?keys?)", "warning",
     "mentions credentials or secret files"),
    (r"(conversation|chat)\s+history|previous\s+messages", "warning", "asks for the conversation"),
    (r"\b(send|forward|post|upload|exfiltrate)\b.{0,60}\bhttps?://", "error", "asks to send data to a URL"),
    (r"(instead\s+of|rather\s+than)\s+(the\s+)?(user|requested)", "warning", "redirects the user's intent"),
)]
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\U000e0000-\U000e007f]")
_MAX_DESCRIPTION = 4000


# Schema keywords whose string values a model reads as prose or as values to use (not names or patterns).
_READ_KEYWORDS = frozenset({"description", "title", "enum", "const", "default", "examples"})


def texts(d: PinnedDefinition) -> Iterator[tuple[str, str]]:
    """(where, text) of everything a model reads about the tool."""
    for where, value in (("title", d.title), ("description", d.description)):
        if value:
            yield where, value
    yield from _strings("annotations", d.annotations)
    for root, schema in (("inputSchema", d.input_schema), ("outputSchema", d.output_schema)):
        yield from _schema_texts(root, schema)


def _schema_texts(path: str, node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _READ_KEYWORDS:
                yield from _strings(f"{path}/{key}", value)
            else:
                yield from _schema_texts(f"{path}/{key}", value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_texts(f"{path}/{i}", value)


def _strings(path: str, node: Any) -> Iterator[tuple[str, str]]:
    """Every string in a value (an enum's members, an example object's fields), with where it sits."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(f"{path}/{key}", value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(f"{path}/{i}", value)


def scan(d: PinnedDefinition) -> list[Finding]:
    found: list[Finding] = []
    for where, text in texts(d):
        if _HIDDEN.search(text):
            found.append(Finding(check="poisoning", severity="error", tool=d.name,
                                 message=f"{where}: invisible or bidirectional control characters"))
        folded = unicodedata.normalize("NFKC", text)
        for pattern, severity, why in _PATTERNS:
            if pattern.search(folded):
                found.append(Finding(check="poisoning", severity=severity, tool=d.name,  # type: ignore[arg-type]
                                     message=f"{where}: {why}"))
        if len(text) > _MAX_DESCRIPTION:
            found.append(Finding(check="poisoning", severity="warning", tool=d.name,
                                 message=f"{where}: unusually long ({len(text)} characters)"))
    return found
