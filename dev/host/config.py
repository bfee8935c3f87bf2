"""What the local host reads before the app is imported: `local.settings.json` Values and `host.json`."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping


def load_local_settings(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Export `Values` as environment variables, like Core Tools. Variables already set in the environment win,
    so CI and tests can override a single setting without editing the file."""
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    if not path.exists():
        return {}
    values = json.loads(path.read_text()).get("Values", {})
    applied = {}
    for key, value in values.items():
        if key not in environ:
            environ[key] = str(value)
            applied[key] = str(value)
    return applied


def parse_timespan(text: str) -> timedelta:
    m = re.match(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$", text.strip())
    if not m:
        raise ValueError(f"not a TimeSpan (hh:mm:ss): {text!r}")
    d, h, mi, s, frac = m.groups()
    return timedelta(days=int(d or 0), hours=int(h), minutes=int(mi), seconds=int(s),
                     microseconds=int((frac or "0").ljust(6, "0")[:6]))


@dataclass(frozen=True)
class QueueOptions:
    message_encoding: str = "base64"  # the Functions default
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)  # delay before a failed message is retried
    batch_size: int = 16
    max_polling_interval: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()

    @classmethod
    def load(cls, path: Path, environ: Mapping[str, str] | None = None) -> "HostConfig":
        """host.json, with the Functions host's app-setting overrides applied: a setting named
        `AzureFunctionsJobHost__extensions__queues__maxPollingInterval` replaces that host.json value, as in Azure."""
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        for name, value in (environ or {}).items():
            if name.startswith(_OVERRIDE) and len(name) > len(_OVERRIDE):
                _override(data, name[len(_OVERRIDE):].split("__"), value)
        ext = data.get("extensions", {})
        q = ext.get("queues", {})
        encoding = str(q.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
        queues = QueueOptions(
            message_encoding=encoding,
            max_dequeue_count=int(q.get("maxDequeueCount", 5)),
            visibility_timeout=parse_timespan(q.get("visibilityTimeout", "00:00:00")),
            batch_size=int(q.get("batchSize", 16)),
            max_polling_interval=parse_timespan(q.get("maxPollingInterval", "00:01:00")),
        )
        return cls(route_prefix=str(ext.get("http", {}).get("routePrefix", "api")).strip("/"), queues=queues)


_OVERRIDE = "AzureFunctionsJobHost__"


def _override(data: dict[str, Any], path: list[str], value: str) -> None:
    """Set `value` at `path` (host.json keys, matched case-insensitively as the host does), creating objects."""
    node = data
    for i, part in enumerate(path):
        key = next((k for k in node if k.lower() == part.lower()), part)
        if i == len(path) - 1:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
