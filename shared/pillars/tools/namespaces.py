"""Namespaces: every tool of a server or API source is listed as `<namespace>__<tool>`. A namespace belongs to
one server/API source per project, and two tools that would get the same namespaced name are a collision that
is reported — neither silently shadows the other, and neither is registered."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ...errors import AlreadyExists
from .domain import Finding, PinnedDefinition, namespaced_name


@dataclass
class NamePlan:
    names: dict[str, str] = field(default_factory=dict)  # original name → namespaced name (collision-free)
    collisions: list[Finding] = field(default_factory=list)


def ensure_namespace_free(namespace: str, owner_id: str, taken: dict[str, str]) -> None:
    """`taken`: namespace → the id of the server/API source that holds it in the project."""
    holder = taken.get(namespace)
    if holder is not None and holder != owner_id:
        raise AlreadyExists(f"Namespace '{namespace}' is already used by '{holder}' in this project; tool names "
                            "would collide. Choose another namespace.", code="namespace_taken",
                            details=[{"field": "namespace", "message": f"used by {holder}"}])


def plan_names(namespace: str, owner_id: str, listed: list[PinnedDefinition],
               existing: dict[str, str]) -> NamePlan:
    """Namespaced names for `listed`. `existing`: namespaced name → owner id of tools already registered in the
    project. Both sides of a collision are reported and left out."""
    plan = NamePlan()
    wanted: dict[str, list[str]] = defaultdict(list)
    for d in listed:
        wanted[namespaced_name(namespace, d.name)].append(d.name)
    for name, originals in wanted.items():
        holder = existing.get(name)
        if len(originals) > 1:
            plan.collisions.append(Finding(check="namespace", severity="error", tool=name, message=(
                f"tools {', '.join(sorted(originals))} all map to '{name}'; none is registered")))
        elif holder is not None and holder != owner_id:
            plan.collisions.append(Finding(check="namespace", severity="error", tool=name, message=(
                f"'{name}' is already a tool of '{holder}'; '{originals[0]}' is not registered")))
        else:
            plan.names[originals[0]] = name
    return plan
