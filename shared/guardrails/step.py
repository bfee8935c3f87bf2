"""The guardrail pipeline step, pillar-neutral: an input step (before admission: a blocked call takes no quota) and
an output step (a whole answer, or a stream wrapper). A call with no policy attached costs one cached lookup."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..domain.base import Pillar
from .book import GuardrailBook
from ..errors import GatewayError
from .engine import CompiledPolicy, GuardrailEngine, Result, Verdict, span_checks
from .segments import Segment
from .stream import GuardedSse

Extract = Any  # Callable[[payload], list[Segment]]
Apply = Any  # Callable[[payload, list[Segment], list[str]], None]


@dataclass
class GuardrailRun:
    """The verdicts of one call, exposed on the call's context (request log, header, telemetry)."""

    policies: list[CompiledPolicy] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def header(self) -> str | None:
        fired = [f"{v.check}={v.action}" for v in self.verdicts if v.hits or v.action == "unavailable"]
        return ", ".join(dict.fromkeys(fired)) or None

    def public(self) -> list[dict[str, Any]]:
        return [v.public() for v in self.verdicts]

    def has_output(self) -> bool:
        return any(c.applies("output") for p in self.policies for c in p.checks)

    def remote_output(self) -> list[CompiledPolicy]:
        """The policies' remote (Content Safety) output checks only; [] when there are none."""
        found = [CompiledPolicy(p.id, p.rank, [c for c in p.checks if c.local is None and c.applies("output")])
                 for p in self.policies]
        return [p for p in found if p.checks]


class GuardrailStep:
    def __init__(self, book: GuardrailBook, engine: GuardrailEngine) -> None:
        self._book = book
        self._engine = engine

    async def on_input(self, run: GuardrailRun, *, project_id: str, pillar: Pillar, resource: str | None,
                       key_id: str | None, payload: Any, extract: Extract, apply: Apply,
                       also: Sequence[str] = ()) -> None:
        """Rewrites `payload` in place when a redact check fired; raises GuardrailBlocked / GuardrailUnavailable.
        `also`: more resource names whose policies apply too (a tool call: its toolbox and its tool)."""
        run.policies = await self.policies(project_id, pillar, [resource, *also], key_id)
        if not run.policies:
            return
        segments: list[Segment] = extract(payload)
        with _recording(run):
            result = await self._engine.evaluate(run.policies, segments, "input")
        _apply(run, result, payload, segments, apply)

    async def policies(self, project_id: str, pillar: Pillar, resources: Sequence[str | None],
                       key_id: str | None) -> list[CompiledPolicy]:
        """The policies of every named resource, each once (project and key policies match every lookup); the
        engine orders them by rank."""
        return await self._book.for_resources(project_id, pillar, resources, key_id)

    def on_output(self, run: GuardrailRun, payload: Any, extract: Extract, apply: Apply) -> bool:
        """Local output checks on a whole answer (synchronous: the pipeline's `after` hook); True if rewritten."""
        if not (run.policies and run.has_output()):
            return False
        segments: list[Segment] = extract(payload)
        with _recording(run):
            result = self._engine.evaluate_local(run.policies, segments, "output")
        return _apply(run, result, payload, segments, apply)

    async def on_output_remote(self, run: GuardrailRun, payload: Any, extract: Extract, apply: Apply) -> bool:
        """Every output check (local, then remote) on a whole answer, for a call with remote output checks;
        True if rewritten. Raises GuardrailBlocked / GuardrailUnavailable (fail-closed)."""
        segments: list[Segment] = extract(payload)
        with _recording(run):
            result = await self._engine.evaluate(run.policies, segments, "output")
        return _apply(run, result, payload, segments, apply)

    async def check_streamed(self, run: GuardrailRun, text: str) -> None:
        """The remote output checks on a batch of streamed text (the local ones ran in the window)."""
        remote = run.remote_output()
        if not remote or not text:
            return
        with _recording(run):
            result = await self._engine.evaluate(remote, [Segment("assistant", text, ("stream",))], "output")
        run.verdicts += [replace(v, detail={**v.detail, "streamed": True}) for v in result.verdicts]

    def stream(self, run: GuardrailRun) -> GuardedSse | None:
        checks = span_checks(run.policies, "output") if run.policies else []
        return GuardedSse(checks) if checks else None


@contextmanager
def _recording(run: GuardrailRun) -> Iterator[None]:
    """A refusal carries the verdicts so far (`.verdicts`): keep them on the run for the request log."""
    try:
        yield
    except GatewayError as exc:
        run.verdicts += getattr(exc, "verdicts", [])
        raise


def _apply(run: GuardrailRun, result: Result, payload: Any, segments: list[Segment], apply: Apply) -> bool:
    run.verdicts += result.verdicts
    if result.texts is not None:
        apply(payload, segments, result.texts)
    return result.texts is not None
