"""Operate: virtual keys of a project — issue (secret shown once), list, get, revoke."""
from __future__ import annotations

from pydantic import BaseModel

from shared.auth.guards import RoleGuard
from shared.auth.principal import Role
from shared.domain.base import utcnow
from shared.domain.keys import KeyCreate, KeyCreated, KeyOut, KeyRotate, VirtualKey
from shared.errors import ValidationFailed
from shared.services import Services
from shared.web.api import ApiBlueprint, Call
from shared.web.inputs import query_int
from shared.web.responses import json_response

from .admin_api import PAGING


class KeyList(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("keys", max_body_bytes=services.settings.max_admin_body_bytes)
    admin = RoleGuard(services.control_auth, Role.admin)

    @api.route("manage/projects/{project}/keys", "POST", name="manage_create_key",
               summary="Issue a virtual key. The secret is in this response only.", guard=admin, body=KeyCreate,
               response=KeyCreated, status=201)
    async def create_key(call: Call):
        pid = call.path("project")
        await services.projects.get(pid, pid)
        key, secret = await services.key_service.issue(pid, call.body)
        return json_response(KeyCreated(**KeyOut.of(key).model_dump(), secret=secret), 201)

    @api.route("manage/projects/{project}/keys", "GET", name="manage_list_keys", summary="List a project's keys.",
               guard=admin, response=KeyList, query=PAGING)
    async def list_keys(call: Call):
        pid = call.path("project")
        await services.projects.get(pid, pid)
        page = await services.keys.list(pid, limit=query_int(call.req, "limit", 50, 1, 200),
                                        cursor=call.req.query_params.get("cursor") or None)
        return KeyList(items=[KeyOut.of(k) for k in page.items], next_cursor=page.cursor)

    @api.route("manage/projects/{project}/keys/{key}", "GET", name="manage_get_key", summary="Get a key.",
               guard=admin, response=KeyOut)
    async def get_key(call: Call):
        return KeyOut.of(await services.keys.get(call.path("project"), call.path("key")))

    @api.route("manage/projects/{project}/keys/{key}/revoke", "POST", name="manage_revoke_key",
               summary="Revoke a key; every instance refuses it within the cache TTL.", guard=admin,
               response=KeyOut)
    async def revoke_key(call: Call):
        def apply(k: VirtualKey) -> None:
            k.revoked_at = k.revoked_at or utcnow()

        key = await services.keys.update(call.path("project"), call.path("key"), apply)
        services.key_service.forget(key)
        return KeyOut.of(key)

    @api.route("manage/projects/{project}/keys/{key}/rotate", "POST", name="manage_rotate_key",
               summary="New secret for the key; the previous one keeps working for `overlap_seconds`.",
               guard=admin, body=KeyRotate, response=KeyCreated)
    async def rotate_key(call: Call):
        overlap = call.body.overlap_seconds
        limit = services.settings.key_rotation_max_overlap_seconds
        if overlap > limit:
            raise ValidationFailed(f"overlap_seconds may be at most {limit}.",
                                   details=[{"field": "overlap_seconds", "message": f"max {limit}"}])
        key, secret = await services.key_service.rotate(call.path("project"), call.path("key"), overlap)
        return KeyCreated(**KeyOut.of(key).model_dump(), secret=secret)

    return api
