"""Who is calling. Control-plane principals carry roles; data-plane principals carry a project and a key."""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..domain.base import AppModel, Pillar
from ..domain.projects import Project

if TYPE_CHECKING:
    from ..domain.keys import VirtualKey


class Role(str, Enum):
    admin = "admin"
    developer = "developer"


class Principal(AppModel):
    kind: Literal["admin_key", "entra", "virtual_key"]
    subject: str
    roles: frozenset[Role] = frozenset()
    name: str | None = None
    # data plane only
    project_id: str | None = None
    key_id: str | None = None
    key_prefix: str | None = None
    # The developer a self-service key was issued to (its `metadata.owner`, written by the credentials API from
    # their own subject): what opens their personal toolboxes, since a key's `subject` is the key's id.
    owner: str | None = None
    # Per-pillar scope: the models / tools / agents this key may use. A pillar absent here: every resource of
    # the project in that pillar.
    scopes: dict[Pillar, frozenset[str]] = {}
    # The project the data-plane guard already loaded (flags checked): the pipeline reads its settings
    # (log_payloads) from here instead of looking it up again.
    project: Project | None = Field(default=None, exclude=True)

    def may_use(self, pillar: Pillar, resource: str) -> bool:
        allowed = self.scopes.get(pillar)
        return allowed is None or resource in allowed

    def has(self, role: Role) -> bool:
        # An admin can do everything a developer can.
        return role in self.roles or Role.admin in self.roles


def key_principal(key: "VirtualKey", project: Project | None = None) -> Principal:
    """The data-plane principal of a virtual key (the key check, and a developer acting as their own key)."""
    owner = key.metadata.get("owner")
    return Principal(kind="virtual_key", subject=key.id, project_id=key.project_id, key_id=key.id,
                     key_prefix=key.prefix, name=key.name, scopes=key.scopes(), project=project,
                     owner=owner if isinstance(owner, str) else None)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")
