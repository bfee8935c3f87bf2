"""Operate: virtual keys of a project — issue (secret shown once), list, get, revoke, rotate, purge."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.responses import Response

from shared.auth.keys import KeyService
from shared.domain.base import utcnow
from shared.domain.keys import KeyCreate, KeyCreated, KeyOut, KeyRotate, VirtualKey
from shared.errors import Conflict, InvalidStoredDocument, PreconditionFailed, ValidationFailed
from shared.quotas.registry import QuotaRegistry
from shared.registry.projects import ProjectRegistry
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import query_int
from shared.web.pages import PageOut
from shared.web.responses import json_response

from .admin_api import IF_MATCH, PAGING


class KeyList(PageOut[KeyOut]):
    pass


def build(service: KeyService, keys: Repository[VirtualKey], projects: ProjectRegistry, quotas: QuotaRegistry,
          admin: Guard, *, max_body_bytes: int, max_rotation_overlap: int,
          on_purge: Sequence[Callable[[str, str], Awaitable[None]]] = ()) -> ApiBlueprint:
    """`on_purge`: what else a purged key owns, each deleted before the key (the agents pillar's key policy)."""
    api = ApiBlueprint("keys", max_body_bytes=max_body_bytes)

    @api.route("manage/projects/{project}/keys", "POST", name="manage_create_key",
               summary="Issue a virtual key. The secret is in this response only.", guard=admin, body=KeyCreate,
               response=KeyCreated, status=201)
    async def create_key(call: Call):
        pid = call.path("project")
        await projects.get(pid)
        key, secret = await service.issue(pid, call.body)
        return json_response(KeyCreated(**KeyOut.of(key).model_dump(), secret=secret), 201)

    @api.route("manage/projects/{project}/keys", "GET", name="manage_list_keys", summary="List a project's keys.",
               guard=admin, response=KeyList, query=PAGING)
    async def list_keys(call: Call):
        pid = call.path("project")
        await projects.get(pid)
        page = await keys.list(pid, limit=query_int(call.req, "limit", 50, 1, 200),
                                        cursor=call.req.query_params.get("cursor") or None)
        return KeyList(items=[KeyOut.of(k) for k in page.items], next_cursor=page.cursor, invalid=page.invalid)

    @api.route("manage/projects/{project}/keys/{key}", "GET", name="manage_get_key", summary="Get a key.",
               guard=admin, response=KeyOut)
    async def get_key(call: Call):
        return KeyOut.of(await keys.get(call.path("project"), call.path("key")))

    @api.route("manage/projects/{project}/keys/{key}/revoke", "POST", name="manage_revoke_key",
               summary="Revoke a key; every instance refuses it within the cache TTL.", guard=admin,
               response=KeyOut)
    async def revoke_key(call: Call):
        def apply(k: VirtualKey) -> None:
            k.revoked_at = k.revoked_at or utcnow()

        key = await keys.update(call.path("project"), call.path("key"), apply)
        service.forget(key)
        return KeyOut.of(key)

    @api.route("manage/projects/{project}/keys/{key}/rotate", "POST", name="manage_rotate_key",
               summary="New secret for the key; the previous one keeps working for `overlap_seconds`.",
               guard=admin, body=KeyRotate, response=KeyCreated)
    async def rotate_key(call: Call):
        overlap = call.body.overlap_seconds
        limit = max_rotation_overlap
        if overlap > limit:
            raise ValidationFailed(f"overlap_seconds may be at most {limit}.",
                                   details=[{"field": "overlap_seconds", "message": f"max {limit}"}])
        key, secret = await service.rotate(call.path("project"), call.path("key"), overlap)
        return KeyCreated(**KeyOut.of(key).model_dump(), secret=secret)

    @api.route("manage/projects/{project}/keys/{key}", "DELETE", name="manage_delete_key",
               summary="Purge a revoked or expired key (and its quota). An active key must be revoked first.",
               guard=admin, status=204, headers=IF_MATCH)
    async def delete_key(call: Call):
        pid, kid = call.path("project"), call.path("key")
        try:
            key: VirtualKey | None = await keys.get(pid, kid)
        except InvalidStoredDocument:
            key = None  # a key document that no longer validates opens nothing (lookups skip it): purgeable
        if key is not None and key.state() == "active":
            raise Conflict(f"Key '{kid}' is active; revoke it first, then purge it.", code="key_active")
        if_match = call.req.headers.get("if-match")
        if key is not None and if_match is not None and if_match != key.etag:
            raise PreconditionFailed("If-Match does not match the current ETag of the key.",
                                     details={"etag": key.etag})
        # the quota first: if the key delete then fails, what is left is a revoked key, never an orphan
        await quotas.forget_key(pid, kid)
        for forget in on_purge:  # idempotent: a purge retried after a failure finishes the job
            await forget(pid, kid)
        await keys.delete(pid, kid, if_match)
        if key is not None:
            service.forget(key)
        return Response(status_code=204)

    return api
