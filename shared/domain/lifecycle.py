"""Lifecycle states shared by models, tools and agents.

draft → published → deprecated → retired, and suspended (an admin's stop, from any state, reversible).
Serving: draft (callable by the project's keys while it is being tried out), published, deprecated (still
callable; clients should move off it). Not serving: retired (gone for good) and suspended.

The models pillar's earlier values are read as: preview → draft, active → published (stored documents and
requests that still say them keep working; responses say the new names).
"""
from __future__ import annotations

from enum import Enum
from typing import Any


class Lifecycle(str, Enum):
    draft = "draft"
    published = "published"
    deprecated = "deprecated"
    retired = "retired"
    suspended = "suspended"


LEGACY_LIFECYCLE = {"preview": Lifecycle.draft, "active": Lifecycle.published}
SERVING = frozenset({Lifecycle.draft, Lifecycle.published, Lifecycle.deprecated})


def read_lifecycle(value: Any) -> Any:
    """A pydantic before-validator: map the models pillar's earlier names, leave the rest to the enum check."""
    return LEGACY_LIFECYCLE.get(value, value) if isinstance(value, str) else value


def serves(state: Lifecycle) -> bool:
    return state in SERVING
