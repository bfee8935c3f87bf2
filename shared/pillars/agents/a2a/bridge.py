"""v0.3 ⇄ v1.0 bridging of A2A objects, on plain JSON dicts so unknown fields pass through untouched.

The differences this handles (A2A v1.0 "what's new"): enums became SCREAMING_SNAKE (`ROLE_USER`,
`TASK_STATE_COMPLETED`); the `kind` discriminators are gone (a Part is one of text/raw/url/data, a stream event is
a oneof wrapper `{task|message|statusUpdate|artifactUpdate}`, SendMessage's result is `{task}` or `{message}`);
file parts flattened (`file.bytes|uri, mimeType, name` → `raw|url, mediaType, filename`); `final` dropped from
status updates; `blocking` became `returnImmediately`; `tasks/resubscribe` became SubscribeToTask."""
from __future__ import annotations

from typing import Any

from .protocol import PUSH_NOT_SUPPORTED, A2AError

J = dict[str, Any]
_TERMINAL = {"completed", "canceled", "failed", "rejected", "input-required", "auth-required"}


# ---- enums

def state_to_v1(s: str) -> str:
    return "TASK_STATE_UNSPECIFIED" if s == "unknown" else "TASK_STATE_" + s.replace("-", "_").upper()


def state_to_v03(s: str) -> str:
    if s in ("TASK_STATE_UNSPECIFIED", ""):
        return "unknown"
    return s.removeprefix("TASK_STATE_").lower().replace("_", "-")


def role_to_v1(r: str) -> str:
    return {"user": "ROLE_USER", "agent": "ROLE_AGENT"}.get(r, r)


def role_to_v03(r: str) -> str:
    return {"ROLE_USER": "user", "ROLE_AGENT": "agent"}.get(r, r)


def _drop(d: J, *keys: str) -> J:
    return {k: v for k, v in d.items() if k not in keys}


# ---- parts, messages, tasks

def part_to_v1(p: J) -> J:
    out = _drop(p, "kind", "file")
    if p.get("kind") == "file" or "file" in p:
        f = p.get("file") or {}
        if "bytes" in f:
            out["raw"] = f["bytes"]
        if "uri" in f:
            out["url"] = f["uri"]
        if "mimeType" in f:
            out["mediaType"] = f["mimeType"]
        if "name" in f:
            out["filename"] = f["name"]
    return out


def part_to_v03(p: J) -> J:
    meta = {"metadata": p["metadata"]} if p.get("metadata") is not None else {}
    if "text" in p:
        return {"kind": "text", "text": p["text"], **meta}
    if "data" in p:
        return {"kind": "data", "data": p["data"], **meta}
    f: J = {}
    if "raw" in p:
        f["bytes"] = p["raw"]
    if "url" in p:
        f["uri"] = p["url"]
    if "mediaType" in p:
        f["mimeType"] = p["mediaType"]
    if "filename" in p:
        f["name"] = p["filename"]
    return {"kind": "file", "file": f, **meta}


def message_to_v1(m: J) -> J:
    out = _drop(m, "kind")
    out["role"] = role_to_v1(str(m.get("role", "")))
    out["parts"] = [part_to_v1(p) for p in m.get("parts") or [] if isinstance(p, dict)]
    return out


def message_to_v03(m: J) -> J:
    out = {"kind": "message", **m}
    out["role"] = role_to_v03(str(m.get("role", "")))
    out["parts"] = [part_to_v03(p) for p in m.get("parts") or [] if isinstance(p, dict)]
    return out


def _status(s: J, state: Any, msg: Any) -> J:
    out = dict(s)
    out["state"] = state(str(s.get("state", "")))
    if isinstance(s.get("message"), dict):
        out["message"] = msg(s["message"])
    return out


def _artifact(a: J, part: Any) -> J:
    return {**a, "parts": [part(p) for p in a.get("parts") or [] if isinstance(p, dict)]}


def task_to_v1(t: J) -> J:
    out = _drop(t, "kind")
    out["status"] = _status(t.get("status") or {}, state_to_v1, message_to_v1)
    if t.get("artifacts") is not None:
        out["artifacts"] = [_artifact(a, part_to_v1) for a in t["artifacts"]]
    if t.get("history") is not None:
        out["history"] = [message_to_v1(m) for m in t["history"]]
    return out


def task_to_v03(t: J) -> J:
    out = {"kind": "task", **t}
    out["status"] = _status(t.get("status") or {}, state_to_v03, message_to_v03)
    if t.get("artifacts") is not None:
        out["artifacts"] = [_artifact(a, part_to_v03) for a in t["artifacts"]]
    if t.get("history") is not None:
        out["history"] = [message_to_v03(m) for m in t["history"]]
    return out


# ---- results and stream events

def send_result_to_v1(r: J) -> J:
    """v0.3 message/send result (a Task or a Message, by `kind`) → v1.0 SendMessageResponse."""
    return {"message": message_to_v1(r)} if r.get("kind") == "message" else {"task": task_to_v1(r)}


def send_result_to_v03(r: J) -> J:
    if "message" in r:
        return message_to_v03(r["message"])
    return task_to_v03(r.get("task") or {})


def event_to_v1(e: J) -> J:
    kind = e.get("kind")
    if kind == "message":
        return {"message": message_to_v1(e)}
    if kind == "status-update":
        ev = _drop(e, "kind", "final")
        ev["status"] = _status(e.get("status") or {}, state_to_v1, message_to_v1)
        return {"statusUpdate": ev}
    if kind == "artifact-update":
        ev = _drop(e, "kind")
        ev["artifact"] = _artifact(e.get("artifact") or {}, part_to_v1)
        return {"artifactUpdate": ev}
    return {"task": task_to_v1(e)}


def event_to_v03(e: J) -> J:
    if "message" in e:
        return message_to_v03(e["message"])
    if "statusUpdate" in e:
        ev = {"kind": "status-update", **e["statusUpdate"]}
        ev["status"] = _status(ev.get("status") or {}, state_to_v03, message_to_v03)
        ev["final"] = ev["status"].get("state") in _TERMINAL  # v1 dropped `final`: the state says it
        return ev
    if "artifactUpdate" in e:
        ev = {"kind": "artifact-update", **e["artifactUpdate"]}
        ev["artifact"] = _artifact(ev.get("artifact") or {}, part_to_v03)
        return ev
    return task_to_v03(e.get("task") or {})


def result_to_v1(method: str, r: Any) -> Any:
    """A v0.3 upstream's result of `method` (v1 name) in v1.0 shape."""
    if not isinstance(r, dict):
        return r
    if method == "SendMessage":
        return send_result_to_v1(r)
    if method in ("SendStreamingMessage", "SubscribeToTask"):
        return event_to_v1(r)
    if method in ("GetTask", "CancelTask"):
        return task_to_v1(r)
    return r


def result_to_v03(method: str, r: Any) -> Any:
    if not isinstance(r, dict):
        return r
    if method == "SendMessage":
        return send_result_to_v03(r)
    if method in ("SendStreamingMessage", "SubscribeToTask"):
        return event_to_v03(r)
    if method in ("GetTask", "CancelTask"):
        return task_to_v03(r)
    return r


# ---- params

def params_to_v1(method: str, p: J) -> J:
    """A v0.3 client's params for `method` (v1 name) in v1.0 shape."""
    if method in ("SendMessage", "SendStreamingMessage"):
        out = dict(p)
        if isinstance(p.get("message"), dict):
            out["message"] = message_to_v1(p["message"])
        cfg = p.get("configuration")
        if isinstance(cfg, dict):
            if cfg.get("pushNotificationConfig"):
                raise A2AError(PUSH_NOT_SUPPORTED, "Push notifications are not supported through the gateway.")
            c = _drop(cfg, "blocking", "pushNotificationConfig")
            if cfg.get("blocking") is False:
                c["returnImmediately"] = True
            out["configuration"] = c
        return out
    if method == "GetTask":
        return _drop(p, "metadata")
    return dict(p)


def params_to_v03(method: str, p: J) -> J:
    if method in ("SendMessage", "SendStreamingMessage"):
        out = _drop(p, "tenant")
        if isinstance(p.get("message"), dict):
            out["message"] = message_to_v03(p["message"])
        cfg = p.get("configuration")
        if isinstance(cfg, dict):
            c = _drop(cfg, "returnImmediately", "taskPushNotificationConfig")
            c["blocking"] = not cfg.get("returnImmediately", False)
            out["configuration"] = c
        return out
    return _drop(p, "tenant")
