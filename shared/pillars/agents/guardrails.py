"""The guardrail step on the agents pillar's pipeline (A2A), the same engine as the models pillar.

Which policies: the project's, the calling key's, and resource policies with pillar `agents` whose resource is the
agent's id (the name in `/agents/{agent}`).

- input (`before`, after resolve and before admission: a refused call takes no quota): the text parts of the
  message a SendMessage / SendStreamingMessage carries (v1.0 shape: both protocol versions arrive normalised),
  scanned as role `user`; a redaction rewrites those parts before the upstream (A2A, Bedrock or Vertex) sees them.
- output (`after`): the text parts of the agent's answer — messages and artifacts of a Task, a Message, status and
  artifact updates, on every method (a task read back with GetTask gets the same checks as when it streamed);
  user-role messages (the caller's own, echoed in a task's history) are not output. A whole answer is checked at
  once (remote Content Safety checks in `answered`); a stream goes through the engine's sliding window per artifact
  (an artifact streamed in appended chunks is one text, so a match split across chunks is caught) and, with a
  remote output check, is held back in analysed batches (shared/guardrails/remote_stream.py); a block ends the
  stream with an error event in the client's binding. Blocked text is held back in the window: it never
  reaches the client, and the agents pillar logs no completion text at all.

A block is a GuardrailBlocked: the A2A adapters answer it as a JSON-RPC error (-32000, the gateway's structured
error with code `guardrail_blocked` in `data.error`) or, on the HTTP+JSON binding, its error body. Verdicts go to
the request log's `guardrails` column and the `x-gateway-guardrails` header (whole answers)."""
from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import orjson

from shared.errors import GatewayError
from shared.guardrails.engine import Verdict, span_checks
from shared.guardrails.segments import Segment
from shared.guardrails.remote_stream import RemoteWindow
from shared.guardrails.step import GuardrailRun, GuardrailStep
from shared.guardrails.stream import WindowGuard, merge_verdicts
from shared.pipeline.exchange import Exchange, Relayed

from . import backend_upstream
from .a2a import rest
from .a2a.protocol import GATEWAY_REFUSED, error
from .spec import SENDS

MAX_DEPTH = 12  # nesting followed in an answer
MAX_PARTS = 2_000  # text parts scanned per answer or event: bounded work whatever the agent sends
_USER_ROLES = frozenset({"ROLE_USER", "user"})
_FINAL_STATES = frozenset({"TASK_STATE_COMPLETED", "TASK_STATE_CANCELED", "TASK_STATE_FAILED",
                           "TASK_STATE_REJECTED", "TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED",
                           "completed", "canceled", "failed", "rejected", "input-required", "auth-required"})


class AgentsGuardrails:
    name = "guardrails"

    def __init__(self, step: GuardrailStep) -> None:
        self._step = step

    async def before(self, x: Exchange) -> Relayed | None:
        call = x.request
        run = x.scratch["guardrails"] = GuardrailRun()
        extract = message_input if call.method in SENDS else _nothing
        try:
            await self._step.on_input(run, project_id=x.principal.project_id or "", pillar=x.pillar,
                                      resource=x.resource, key_id=x.principal.key_id, payload=call.params,
                                      extract=extract, apply=apply_parts)
        finally:
            x.guardrails = run.public()
        if "message" in x.scratch and call.method in SENDS:  # a cloud backend's parsed message: re-read, redacted
            x.scratch["message"] = backend_upstream.message_of(x.entity, call)
        return None

    def after(self, x: Exchange, relayed: Relayed) -> Relayed:
        run: GuardrailRun | None = x.scratch.get("guardrails")
        if run is None or not run.policies or relayed.status >= 300 or not run.has_output():
            return relayed
        if relayed.chunks is not None:
            checks, remote = span_checks(run.policies, "output"), bool(run.remote_output())
            if checks or remote:  # no span check: the guard only collects the text for the remote window
                window = RemoteWindow(lambda text: self._step.check_streamed(run, text)) if remote else None
                relayed.chunks = self._guarded(x, run, GuardedA2aStream(checks), relayed.chunks, window)
        elif relayed.body is not None and not run.remote_output():
            answer = _json(relayed.body)
            if answer is not None:
                try:
                    changed = self._step.on_output(run, answer, answer_output, apply_parts)
                finally:
                    x.guardrails = run.public()
                if changed:
                    relayed.body = orjson.dumps(answer)
        _header(run, relayed)
        return relayed

    async def answered(self, x: Exchange, relayed: Relayed) -> Relayed:
        """A whole answer under a remote (Content Safety) output check: every output check, before it leaves."""
        run: GuardrailRun | None = x.scratch.get("guardrails")
        if run is None or relayed.body is None or relayed.status >= 300 or not run.remote_output():
            return relayed
        answer = _json(relayed.body)
        if answer is None:
            return relayed
        try:
            if await self._step.on_output_remote(run, answer, answer_output, apply_parts):
                relayed.body = orjson.dumps(answer)
        finally:
            x.guardrails = run.public()
        _header(run, relayed)
        return relayed

    async def _guarded(self, x: Exchange, run: GuardrailRun, guard: "GuardedA2aStream",
                       chunks: AsyncIterator[bytes], window: RemoteWindow | None) -> AsyncIterator[bytes]:
        seen = 0
        try:
            async for data in chunks:
                out = guard.event(data)  # held back by at most the window; a block raises
                if window is not None:  # …and until a batch has passed the remote (Content Safety) checks
                    out, seen = await window.feed(out, "".join(guard.released[seen:])), len(guard.released)
                if out:
                    yield out
            tail = guard.flush()
            if window is not None:
                tail = await window.feed(tail, "".join(guard.released[seen:])) + await window.flush()
            if tail:
                yield tail
        except GatewayError as exc:  # a block: the held-back text never leaves the gateway
            x.error_code = exc.code
            envelope = error(x.request.id, GATEWAY_REFUSED, exc.message, {"error": exc.to_body()["error"]})
            yield rest.event(envelope) if x.request.binding == "http_json" \
                else b"data: " + orjson.dumps(envelope) + b"\n\n"
        finally:
            aclose: Any = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()  # the spec's generator closes its upstream response
            run.verdicts += guard.verdicts()
            x.guardrails = run.public()


def _header(run: GuardrailRun, relayed: Relayed) -> None:
    header = run.header()
    if header:
        relayed.headers["x-gateway-guardrails"] = header


# ---- segments: input (the v1.0 params of a send) and output (any answer shape, either version or binding)

def message_input(params: dict[str, Any]) -> list[Segment]:
    message = params.get("message")
    parts = message.get("parts") if isinstance(message, dict) else None
    return [Segment("user", p["text"], (p,)) for p in (parts if isinstance(parts, list) else ())[:MAX_PARTS]
            if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _nothing(_params: Any) -> list[Segment]:
    return []


def text_parts(value: Any, out: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    """The text-part objects (`{"text": ...}`, v0.3 `{"kind": "text", "text": ...}`) under `value`, in order,
    skipping user-role messages (the caller's own input echoed back) and metadata; depth- and count-bounded."""
    if depth > MAX_DEPTH or len(out) >= MAX_PARTS:
        return out
    if isinstance(value, list):
        for item in value:
            text_parts(item, out, depth + 1)
    elif isinstance(value, dict):
        if value.get("role") in _USER_ROLES:
            return out
        parts = value.get("parts")
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str) and len(out) < MAX_PARTS:
                out.append(part)
        for key, item in value.items():
            if key not in ("parts", "metadata") and isinstance(item, (dict, list)):
                text_parts(item, out, depth + 1)
    return out


def answer_output(answer: Any) -> list[Segment]:
    return [Segment("assistant", p["text"], (p,)) for p in text_parts(answer, [])]


def apply_parts(_payload: Any, segments: list[Segment], texts: list[str]) -> None:
    for seg, text in zip(segments, texts):
        if text != seg.text:
            seg.where[0]["text"] = text


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# ---- streams

class GuardedA2aStream:
    """Rewrites the A2A SSE events of one call (one complete event per chunk, as the agents spec yields them).

    An artifact streamed as appended chunks is one text: one sliding window per artifact id, released into the
    chunk that carries it; its remainder is released with its last chunk, or — if the agent never marks one —
    in a copy of its latest chunk emitted before the task's final status (or at the end of the stream). Every
    other text part (a status message, a message, a whole task) is complete in its event: checked whole."""

    def __init__(self, checks: list[Any]) -> None:
        self._checks = checks
        self._artifacts: dict[str, tuple[WindowGuard, bytes, dict[str, Any], dict[str, Any]]] = {}
        self._done: list[WindowGuard] = []
        self.released: list[str] = []  # the text that went out, in order (what a remote window analyses)

    def event(self, data: bytes) -> bytes:
        head, payload = _split_event(data)
        obj = _json(payload) if payload is not None else None
        if not isinstance(obj, (dict, list)):
            return data
        update = _artifact_update(obj)
        out = b""
        if update is not None:
            self._artifact(update, head, obj)
        else:
            if _final(obj):
                out = self.flush()  # an artifact's held-back remainder goes out before the task ends
            for part in text_parts(obj, []):
                guard = WindowGuard(self._checks)
                part["text"] = guard.feed(part["text"]) + guard.flush()
                self.released.append(part["text"])
                if guard.verdicts():  # only what fired is kept for the log: bounded on a long stream
                    self._done.append(guard)
        return out + head + orjson.dumps(obj) + b"\n\n"

    def _artifact(self, update: dict[str, Any], head: bytes, obj: Any) -> None:
        artifact = update["artifact"]
        key = str(artifact.get("artifactId"))
        entry = self._artifacts.get(key)
        guard = entry[0] if entry is not None else WindowGuard(self._checks)
        if not update.get("append"):  # a new artifact (or a replacement): its text starts over
            if entry is not None:
                self._done.append(guard)
            guard = WindowGuard(self._checks)
        parts = text_parts(artifact, [])
        for part in parts:
            part["text"] = guard.feed(part["text"])
        last = bool(update.get("lastChunk")) and bool(parts)
        if last:
            parts[-1]["text"] += guard.flush()
        self.released += [p["text"] for p in parts]
        if last:
            self._done.append(guard)
            self._artifacts.pop(key, None)
        elif parts:
            self._artifacts[key] = (guard, head, obj, update)

    def flush(self) -> bytes:
        """Each artifact's remainder, in a copy of its latest chunk (append, lastChunk)."""
        out = b""
        for guard, head, obj, update in self._artifacts.values():
            rest = guard.flush()
            self._done.append(guard)
            if not rest:
                continue
            copied = copy.deepcopy(obj)
            last = _artifact_update(copied)
            assert last is not None
            parts = text_parts(last["artifact"], [])
            last["artifact"]["parts"] = [{**parts[-1], "text": rest}]
            last["append"], last["lastChunk"] = True, True
            self.released.append(rest)
            out += head + orjson.dumps(copied) + b"\n\n"
        self._artifacts.clear()
        return out

    def verdicts(self) -> list[Verdict]:
        return merge_verdicts([*self._done, *(e[0] for e in self._artifacts.values())])


def _split_event(data: bytes) -> tuple[bytes, bytes | None]:
    """(the event's lines before `data:`, its data) — a non-data or multi-line event is passed through."""
    event = data.rstrip(b"\n")
    head, sep, payload = event.partition(b"data: ")
    if not sep or b"\ndata:" in payload or (head and not head.endswith(b"\n")):
        return data, None
    return head + b"data: ", payload


def _artifact_update(obj: Any) -> dict[str, Any] | None:
    """The artifact-update object of one event: v1.0 `{artifactUpdate: {...}}` or v0.3 `{kind: artifact-update}`,
    inside a JSON-RPC `result` or bare (HTTP+JSON binding)."""
    value = obj.get("result", obj) if isinstance(obj, dict) else None
    if isinstance(value, dict) and isinstance(value.get("artifactUpdate"), dict):
        value = value["artifactUpdate"]
    if isinstance(value, dict) and isinstance(value.get("artifact"), dict) and (
            "taskId" in value or value.get("kind") == "artifact-update"):
        return value
    return None


def _final(obj: Any) -> bool:
    value = obj.get("result", obj) if isinstance(obj, dict) else None
    if isinstance(value, dict):
        value = value.get("statusUpdate") or value.get("task") or value
    status = value.get("status") if isinstance(value, dict) else None
    return bool(isinstance(value, dict) and (value.get("final") is True or (
        isinstance(status, dict) and status.get("state") in _FINAL_STATES)))
