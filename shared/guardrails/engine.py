"""The guardrail engine: runs the policies that apply to a call over its text segments and decides.

Precedence (docs/admin-guide.md#guardrails): policies are additive — a key or resource policy can add checks but
never switch off a project policy. Policies run project → resource → key (then by id), checks in their listed
order, local checks before remote ones. The first check whose action is `block` ends the evaluation (the call is
refused; later checks would only cost latency). Otherwise every `redact` span of every check is applied (overlaps
merged) and every `annotate` hit is reported. So, per text: block > redact > annotate.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import GuardrailBlocked, GuardrailUnavailable
from .checks import Finding, SpanCheck, compile_check
from .matches import Match, redact
from .policy import ContentSafetyCheck, GuardrailPolicy
from .segments import Segment

SCOPE_RANK = {"project": 0, "resource": 1, "key": 2}
RemoteRun = Callable[[ContentSafetyCheck, list[Segment]], Awaitable[Finding | None]]


@dataclass(frozen=True)
class Verdict:
    policy: str
    check: str
    type: str
    action: str  # block | redact | annotate | unavailable (a fail-open remote check that gave no answer)
    stage: str  # input | output
    hits: int
    latency_ms: float
    detail: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"policy": self.policy, "check": self.check, "type": self.type, "action": self.action,
                "stage": self.stage, "hits": self.hits, "latency_ms": round(self.latency_ms, 3), **self.detail}


@dataclass
class CompiledCheck:
    policy: str
    spec: Any
    local: Any  # SpanCheck | InjectionRun | SizeRun | TopicRun | None (remote)

    def applies(self, stage: str) -> bool:
        return self.spec.stage in (stage, "both")


@dataclass
class CompiledPolicy:
    id: str
    rank: int
    checks: list[CompiledCheck]


def compile_policy(policy: GuardrailPolicy) -> CompiledPolicy:
    return CompiledPolicy(policy.spec.id, SCOPE_RANK[policy.spec.attach.scope],
                          [CompiledCheck(policy.spec.id, c, compile_check(c)) for c in policy.spec.checks])


@dataclass
class Result:
    verdicts: list[Verdict]
    texts: list[str] | None  # rewritten texts, or None when nothing was redacted


class GuardrailEngine:
    def __init__(self, remote: RemoteRun | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self._remote = remote
        self._clock = clock

    async def evaluate(self, policies: list[CompiledPolicy], segments: list[Segment], stage: str) -> Result:
        """Local checks, then remote ones. Raises GuardrailBlocked (block) or GuardrailUnavailable (fail-closed
        remote check down); the verdicts so far ride on the exception as `.verdicts` for the request log."""
        verdicts: list[Verdict] = []
        redactions: dict[int, list[Match]] = {}
        remote = self._local(policies, segments, stage, verdicts, redactions)
        for check in remote:
            texts_at = [i for i, s in enumerate(segments) if _scanned(check.spec, s, stage)]
            if not texts_at or self._remote is None:
                continue
            started = self._clock()
            finding = await self._run_remote(check, [segments[i] for i in texts_at], verdicts, stage, started)
            if finding is not None:
                self._decide(check, finding, texts_at, stage, started, verdicts, redactions)
        return _result(segments, verdicts, redactions)

    def evaluate_local(self, policies: list[CompiledPolicy], segments: list[Segment], stage: str) -> Result:
        """Local checks only, synchronously (the output of a whole answer; remote checks are input-only)."""
        verdicts: list[Verdict] = []
        redactions: dict[int, list[Match]] = {}
        self._local(policies, segments, stage, verdicts, redactions)
        return _result(segments, verdicts, redactions)

    def _local(self, policies: list[CompiledPolicy], segments: list[Segment], stage: str, verdicts: list[Verdict],
               redactions: dict[int, list[Match]]) -> list[CompiledCheck]:
        remote: list[CompiledCheck] = []
        for p in sorted(policies, key=lambda p: (p.rank, p.id)):
            for check in p.checks:
                if not check.applies(stage):
                    continue
                if check.local is None:
                    remote.append(check)
                    continue
                texts_at = [i for i, s in enumerate(segments) if _scanned(check.spec, s, stage)]
                if not texts_at:
                    continue
                started = self._clock()
                finding = check.local.run([segments[i].text for i in texts_at])
                if finding is not None:
                    self._decide(check, finding, texts_at, stage, started, verdicts, redactions)
        return remote

    def _decide(self, check: CompiledCheck, finding: Finding, texts_at: list[int], stage: str, started: float,
                verdicts: list[Verdict], redactions: dict[int, list[Match]]) -> None:
        spec = check.spec
        v = Verdict(check.policy, spec.name, spec.type, spec.action, stage, finding.hits,
                    (self._clock() - started) * 1000, finding.detail)
        verdicts.append(v)
        if spec.action == "block":
            raise _blocked(v, verdicts)
        if spec.action == "redact":
            for local_i, spans in finding.spans.items():
                redactions.setdefault(texts_at[local_i], []).extend(spans)

    async def _run_remote(self, check: CompiledCheck, segs: list[Segment], verdicts: list[Verdict], stage: str,
                          started: float) -> Finding | None:
        assert self._remote is not None
        try:
            return await self._remote(check.spec, segs)
        except GuardrailUnavailable as exc:
            spec = check.spec
            v = Verdict(check.policy, spec.name, spec.type, "unavailable", stage, 0,
                        (self._clock() - started) * 1000, {"fail_mode": spec.fail_mode, "reason": exc.message})
            verdicts.append(v)
            if spec.fail_mode == "closed":
                exc.details = {"policy": v.policy, "check": v.check}
                exc.verdicts = verdicts  # type: ignore[attr-defined]
                raise
            return None


def _result(segments: list[Segment], verdicts: list[Verdict], redactions: dict[int, list[Match]]) -> Result:
    if not redactions:
        return Result(verdicts, None)
    return Result(verdicts, [redact(s.text, redactions.get(i, [])) for i, s in enumerate(segments)])


def _scanned(spec: Any, seg: Segment, stage: str) -> bool:
    return seg.role == "assistant" if stage == "output" else seg.role in spec.roles


def _blocked(v: Verdict, verdicts: list[Verdict]) -> GuardrailBlocked:
    exc = GuardrailBlocked(f"Refused by guardrail policy '{v.policy}', check '{v.check}' ({v.type}).",
                           details={"policy": v.policy, "check": v.check, "type": v.type, "stage": v.stage})
    exc.verdicts = verdicts  # type: ignore[attr-defined]
    return exc


def span_checks(policies: list[CompiledPolicy], stage: str = "output") -> list[tuple[CompiledCheck, SpanCheck]]:
    """The checks a stream can run incrementally (span scanners) for a stage."""
    return [(c, c.local) for p in sorted(policies, key=lambda p: (p.rank, p.id)) for c in p.checks
            if c.applies(stage) and isinstance(c.local, SpanCheck)]
