"""The guardrail step on the tools pillar's pipeline (MCP `tools/call`), the same engine as the models pillar.

Which policies: the project's, the calling key's, and resource policies with pillar `tools` whose resource is the
toolbox's name (every tool reached through that toolbox) or a tool's namespaced name (`<namespace>__<tool>`, that
tool in any toolbox) — both apply, each policy once.

- input (`before`, after resolve and before admission: a refused call takes no quota): every string value of the
  call's `arguments`, recursively and bounded (depth, count), scanned as role `tool`; a redaction rewrites the
  arguments the MCP server receives.
- output (`after`, on the server's answer before the client sees it): the result's `text` content items and every
  string inside `structuredContent`, scanned as output. Tool results are the classic indirect-injection path (what
  a server returns goes back into a model's context): a `prompt_injection` check with `stage: output` (or `both`)
  runs its heuristics on them. Remote (Content Safety) output checks run in `answered`, on the whole result.

A block is a GuardrailBlocked; the tool-call runner answers it as a JSON-RPC error (`GOVERNANCE_REFUSED`) with the
gateway's code in `data.code` (`guardrail_blocked`). Verdicts go to the request log's `guardrails` column."""
from __future__ import annotations

from typing import Any

from shared.guardrails.segments import Segment
from shared.guardrails.step import GuardrailRun, GuardrailStep
from shared.pipeline.exchange import Exchange, Relayed

from .mcp import jsonrpc as rpc

MAX_DEPTH = 16  # nesting followed inside arguments / structuredContent
MAX_STRINGS = 2_000  # strings scanned per call side: bounded work whatever the client or server sends


class ToolsGuardrails:
    name = "guardrails"

    def __init__(self, step: GuardrailStep) -> None:
        self._step = step

    async def before(self, x: Exchange) -> Relayed | None:
        req = x.request
        run = x.scratch["guardrails"] = GuardrailRun()
        if req.call is None:
            return None
        try:
            await self._step.on_input(run, project_id=x.principal.project_id or "", pillar=x.pillar,
                                      resource=req.ctx.toolbox, also=(x.resource,), key_id=x.principal.key_id,
                                      payload=req.call.arguments, extract=arguments_input, apply=apply_strings)
        finally:
            x.guardrails = run.public()
        return None

    def after(self, x: Exchange, relayed: Relayed) -> Relayed:
        run: GuardrailRun | None = x.scratch.get("guardrails")
        if run is None or not run.policies:  # the common case, no policy: nothing to look at
            return relayed
        result = _result(x)
        if result is None or not run.has_output() or run.remote_output():
            return relayed  # remote output checks: all output checks run in `answered`
        try:
            changed = self._step.on_output(run, result, result_output, apply_strings)
        finally:
            x.guardrails = run.public()
        if changed:
            relayed.body = rpc.dumps(x.request.answer)
        return relayed

    async def answered(self, x: Exchange, relayed: Relayed) -> Relayed:
        run: GuardrailRun | None = x.scratch.get("guardrails")
        if run is None or not run.policies:
            return relayed
        result = _result(x)
        if result is None or not run.remote_output():
            return relayed
        try:
            changed = await self._step.on_output_remote(run, result, result_output, apply_strings)
        finally:
            x.guardrails = run.public()
        if changed:
            relayed.body = rpc.dumps(x.request.answer)
        return relayed


def _result(x: Exchange) -> dict[str, Any] | None:
    """The JSON-RPC result the runner hands back (`req.answer`), rewritten in place; None for an error."""
    answer = getattr(x.request, "answer", None)
    result = answer.get("result") if isinstance(answer, dict) else None
    return result if isinstance(result, dict) else None


def _strings(value: Any, role: str, out: list[Segment], depth: int = 0) -> None:
    """Every string under `value` as a segment addressed by (container, key): depth- and count-bounded."""
    if depth > MAX_DEPTH:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if len(out) >= MAX_STRINGS:
            return
        if isinstance(item, str):
            out.append(Segment(role, item, (value, key)))
        elif isinstance(item, (dict, list)):
            _strings(item, role, out, depth + 1)


def arguments_input(arguments: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    _strings(arguments, "tool", out)
    return out


def result_output(result: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    content = result.get("content")
    for item in content if isinstance(content, list) else ():
        if len(out) >= MAX_STRINGS:
            break
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            out.append(Segment("assistant", item["text"], (item, "text")))
    structured = result.get("structuredContent")
    if isinstance(structured, (dict, list)):
        _strings(structured, "assistant", out)
    return out


def apply_strings(_payload: Any, segments: list[Segment], texts: list[str]) -> None:
    for seg, text in zip(segments, texts):
        if text != seg.text:
            container, key = seg.where
            container[key] = text
