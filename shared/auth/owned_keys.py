"""A developer acting as one of their own virtual keys (the model playground, the catalog's per-key quota): a key
is theirs when its `metadata.owner` is their subject — what self-service issuance writes — or they are an admin."""
from __future__ import annotations

from ..domain.base import Pillar
from ..domain.keys import VirtualKey
from ..errors import Forbidden, NotFound
from ..flags.service import FlagService
from ..storage.repository import Repository
from .principal import Principal, Role, key_principal


async def owned_key(keys: Repository[VirtualKey], developer: Principal, project_id: str, key_id: str) -> VirtualKey:
    """The key, or 404 `key_not_found` — someone else's key is indistinguishable from a missing one."""
    key = await keys.find(project_id, key_id)
    if key is None or (key.metadata.get("owner") != developer.subject and not developer.has(Role.admin)):
        raise NotFound(f"You have no key '{key_id[:128]}' in this project.", code="key_not_found")
    return key


async def acting_as(keys: Repository[VirtualKey], flags: FlagService, developer: Principal, project_id: str,
                    key_id: str, pillar: Pillar) -> Principal:
    """The developer's own active key as the data-plane principal a playground calls with (an admin may act as any
    key): the key's scopes, quotas and request-log identity apply, and the pillar must be on for the project."""
    key = await owned_key(keys, developer, project_id, key_id)
    if key.state() != "active":
        raise Forbidden(f"The key '{key_id[:128]}' is {key.state()}.", code=f"key_{key.state()}")
    return key_principal(key, await flags.check(project_id, pillar))
