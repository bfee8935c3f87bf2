"""A developer acting as one of their own virtual keys (the model playground, the catalog's per-key quota): a key
is theirs when its `metadata.owner` is their subject — what self-service issuance writes — or they are an admin."""
from __future__ import annotations

from ..domain.keys import VirtualKey
from ..errors import NotFound
from ..storage.repository import Repository
from .principal import Principal, Role


async def owned_key(keys: Repository[VirtualKey], developer: Principal, project_id: str, key_id: str) -> VirtualKey:
    """The key, or 404 `key_not_found` — someone else's key is indistinguishable from a missing one."""
    key = await keys.find(project_id, key_id)
    if key is None or (key.metadata.get("owner") != developer.subject and not developer.has(Role.admin)):
        raise NotFound(f"You have no key '{key_id[:128]}' in this project.", code="key_not_found")
    return key
