"""Guards bind a route to who may call it. Control plane: admin key / Entra roles. Data plane: a virtual key whose
project has the pillar switched on. The two never accept each other's credentials."""
from __future__ import annotations

from starlette.requests import Request

from ..domain.base import Pillar
from ..flags.service import FlagService
from ..web.inputs import header_dict
from .control import ControlPlaneAuth
from .keys import KeyService
from .principal import Principal, Role, bearer_token


class RoleGuard:
    scheme = "controlPlane"

    def __init__(self, auth: ControlPlaneAuth, role: Role) -> None:
        self._auth = auth
        self._role = role

    async def __call__(self, req: Request) -> Principal:
        return await self._auth.require(header_dict(req).get("authorization"), self._role)


class DataPlaneGuard:
    scheme = "virtualKey"

    def __init__(self, keys: KeyService, flags: FlagService, pillar: Pillar) -> None:
        self._keys = keys
        self._flags = flags
        self._pillar = pillar

    async def __call__(self, req: Request) -> Principal:
        # OpenAI clients send `Authorization: Bearer`, Azure OpenAI clients send `api-key`.
        headers = header_dict(req)
        secret = bearer_token(headers.get("authorization")) or headers.get("api-key")
        principal = await self._keys.authenticate(secret)
        assert principal.project_id is not None
        principal.project = await self._flags.check(principal.project_id, self._pillar)
        return principal
