"""Control-plane authentication: the bootstrap admin key or an Entra ID token; then the role check."""
from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ..domain.keys import KEY_PREFIX
from ..errors import Forbidden, Unauthenticated
from .principal import Principal, Role, bearer_token, looks_like_jwt

if TYPE_CHECKING:  # PyJWT loads only when Entra sign-in is configured (services.control_auth)
    from .entra import EntraValidator


class ControlPlaneAuth:
    def __init__(self, *, admin_key: str | None, entra: EntraValidator | None) -> None:
        self._admin_key = admin_key
        self._entra = entra

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("Authenticate with 'Authorization: Bearer <admin key or Entra token>'.",
                                  code="missing_credentials")
        if token.startswith(KEY_PREFIX):
            raise Unauthenticated("Virtual keys are data-plane credentials; they never open the control plane.",
                                  code="invalid_credentials")
        if looks_like_jwt(token):
            if self._entra is None:
                raise Unauthenticated("Entra ID sign-in is not configured (ENTRA_TENANT_ID, ENTRA_AUDIENCE).",
                                      code="invalid_credentials")
            return await self._entra.validate(token)
        # Constant-time compare: the admin key must not leak through response timing.
        if self._admin_key and hmac.compare_digest(token.encode(), self._admin_key.encode()):
            return Principal(kind="admin_key", subject="bootstrap-admin", roles=frozenset({Role.admin}))
        raise Unauthenticated("The credentials are not valid.", code="invalid_credentials")

    async def require(self, authorization: str | None, role: Role) -> Principal:
        principal = await self.authenticate(authorization)
        if not principal.has(role):
            raise Forbidden(f"This operation needs the '{role.value}' role.", code="insufficient_role",
                            details={"required_role": role.value})
        return principal
