"""Built-in checks, compiled once per policy version: each turns the texts it is given into a Finding (spans to
redact, a hit count, a detail without any of the text) or None. All local, no I/O."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import regex

from . import injection
from .matches import Match
from .pii import DETECTORS, find_pii
from .policy import (CheckSpec, DenyListCheck, InjectionCheck, MaxSizeCheck, PiiCheck, RegexCheck, TopicCheck)

log = logging.getLogger("gateway.guardrails")
REGEX_TIMEOUT_SECONDS = 0.05  # per text: an admin pattern that backtracks is stopped, and the check fires
ADMIN_REGEX_WINDOW = 300  # how much text a stream holds back for an admin regex (patterns are ≤ 300 chars)


@dataclass
class Finding:
    hits: int
    spans: dict[int, list[Match]] = field(default_factory=dict)  # text index → spans (for redaction)
    detail: dict[str, Any] = field(default_factory=dict)  # labels and scores only, never the text


def _phrases(phrases: list[str], case_sensitive: bool, whole_words: bool) -> re.Pattern[str]:
    body = "|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True))
    if whole_words:
        body = rf"(?<!\w)(?:{body})(?!\w)"
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def _literal_prefilter(phrases: list[str], case_sensitive: bool) -> Callable[[str], bool]:
    """Could any phrase occur? C-speed substring tests instead of a regex pass over every position. Only for ASCII
    text when case-insensitive: Unicode case folding (ſ ~ s, K ~ k) must not become a way around the list."""
    if case_sensitive:
        return lambda t: any(p in t for p in phrases)
    lowered = [p.lower() for p in phrases]

    def hit(t: str) -> bool:
        if not t.isascii():
            return True
        low = t.lower()
        return any(p in low for p in lowered)
    return hit


def compile_admin_regex(patterns: list[str], case_sensitive: bool) -> regex.Pattern[str]:
    """Admin patterns run with the `regex` module (which honours a timeout) as one alternation; V0 semantics."""
    return regex.compile("|".join(f"(?:{p})" for p in patterns), 0 if case_sensitive else regex.IGNORECASE)


class SpanCheck:
    """Deny-list, admin regex, PII: a span scanner, so it can also redact and run over a stream's window."""

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        if isinstance(spec, DenyListCheck):
            rx = _phrases(spec.phrases, spec.case_sensitive, spec.whole_words)
            hit = _literal_prefilter(spec.phrases, spec.case_sensitive)
            self._scan = lambda t: [Match(*m.span(), spec.name) for m in rx.finditer(t)] if hit(t) else []
            self.window = max(len(p) for p in spec.phrases) + 1
        elif isinstance(spec, RegexCheck):
            arx = compile_admin_regex(spec.patterns, spec.case_sensitive)
            self._scan = lambda t: [Match(*m.span(), spec.name) for m in arx.finditer(t, timeout=REGEX_TIMEOUT_SECONDS)
                                    if m.end() > m.start()]
            self.window = ADMIN_REGEX_WINDOW
        else:
            assert isinstance(spec, PiiCheck)
            kinds = frozenset(spec.entities)
            self._scan = lambda t: find_pii(t, kinds)
            self.window = max(DETECTORS[k].max_len for k in kinds) + 1

    def scan(self, text: str) -> list[Match]:
        try:
            return self._scan(text)
        except TimeoutError:
            # A pattern that backtracks too long must neither hang the worker nor let the text through unchecked.
            log.warning("guardrail regex check %s timed out; treated as a match", self.spec.name)
            return [Match(0, len(text), self.spec.name)]

    def run(self, texts: list[str]) -> Finding | None:
        spans = {i: found for i, t in enumerate(texts) if (found := self.scan(t))}
        if not spans:
            return None
        labels = sorted({m.label for ms in spans.values() for m in ms})
        return Finding(sum(len(v) for v in spans.values()), spans, {"labels": labels})


class InjectionRun:
    def __init__(self, spec: InjectionCheck) -> None:
        self.spec = spec

    def run(self, texts: list[str]) -> Finding | None:
        best, signals = 0.0, set()
        for t in texts:
            s = injection.score(t)
            best = max(best, s.score)
            signals.update(s.signals)
        if best < self.spec.threshold:
            return None
        return Finding(1, detail={"score": best, "signals": sorted(signals)})


class SizeRun:
    def __init__(self, spec: MaxSizeCheck) -> None:
        self.spec = spec

    def run(self, texts: list[str]) -> Finding | None:
        size = sum(len(t) for t in texts)
        return Finding(1, detail={"chars": size, "max_chars": self.spec.max_chars}) \
            if size > self.spec.max_chars else None


class TopicRun:
    def __init__(self, spec: TopicCheck) -> None:
        self.spec = spec
        self._allow = _phrases(spec.allow, False, True) if spec.allow else None
        self._deny = _phrases(spec.deny, False, True) if spec.deny else None

    def run(self, texts: list[str]) -> Finding | None:
        if self._deny is not None and any(self._deny.search(t) for t in texts):
            return Finding(1, detail={"reason": "denied_topic"})
        if self._allow is not None and any(t.strip() for t in texts) \
                and not any(self._allow.search(t) for t in texts):
            return Finding(1, detail={"reason": "off_topic"})
        return None


def compile_check(spec: CheckSpec) -> SpanCheck | InjectionRun | SizeRun | TopicRun | None:
    """None for remote checks (content_safety), which the engine runs itself."""
    if isinstance(spec, (DenyListCheck, RegexCheck, PiiCheck)):
        return SpanCheck(spec)
    if isinstance(spec, InjectionCheck):
        return InjectionRun(spec)
    if isinstance(spec, MaxSizeCheck):
        return SizeRun(spec)
    if isinstance(spec, TopicCheck):
        return TopicRun(spec)
    return None
