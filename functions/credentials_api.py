"""Self-service credentials ("get credentials"): developers request keys; admins approve or reject."""
from __future__ import annotations

import uuid

from shared.auth.keys import KeyService
from shared.auth.principal import Principal, Role
from shared.domain.base import utcnow
from shared.domain.key_requests import (KeyRequest, KeyRequestCreate, KeyRequestDecision, KeyRequestList,
                                        KeyRequestOut)
from shared.domain.keys import KeyCreate, KeyCreated, KeyOut
from shared.errors import Conflict, Forbidden
from shared.registry.projects import ProjectRegistry
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import query_int
from shared.web.responses import json_response

from .admin_api import PAGING


def build(keys: KeyService, requests: Repository[KeyRequest], projects: ProjectRegistry, developer: Guard,
          admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("credentials", max_body_bytes=max_body_bytes)

    async def issue_for(principal: Principal, project: str, req: KeyRequest):
        key, secret = await keys.issue(project, KeyCreate(
            name=req.name, models=req.models, metadata={"owner": principal.subject, "request": req.id}))
        return key, secret

    @api.route("portal/projects/{project}/keys", "POST", name="portal_request_key",
               summary="Ask for a key: issued at once (201, secret included) when the project auto-issues, "
                       "else a pending request (202).", guard=developer, body=KeyRequestCreate, response=KeyCreated,
               status=201)
    async def request_key(call: Call):
        pid, p, spec = call.path("project"), call.principal, call.body
        assert p is not None
        project = await projects.get(pid)
        req = KeyRequest(id=uuid.uuid4().hex[:16], project_id=pid, requester=p.subject, requester_name=p.name,
                         name=spec.name, models=spec.models, reason=spec.reason)
        if project.key_issuance == "auto":
            req.state = "claimed"
            key, secret = await issue_for(p, pid, req)
            req.key_id, req.decided_by, req.decided_at = key.id, "auto", utcnow()
            await requests.create(req)
            return json_response(KeyCreated(**KeyOut.of(key).model_dump(), secret=secret), 201)
        saved = await requests.create(req)
        return json_response(KeyRequestOut.of(saved), 202)

    @api.route("portal/projects/{project}/key-requests/{request}", "GET", name="portal_get_key_request",
               summary="The state of my key request.", guard=developer, response=KeyRequestOut)
    async def get_request(call: Call):
        req = await requests.get(call.path("project"), call.path("request"))
        assert call.principal is not None
        if req.requester != call.principal.subject and not call.principal.has(Role.admin):
            raise Forbidden("This request belongs to someone else.", code="not_requester")
        return KeyRequestOut.of(req)

    @api.route("portal/projects/{project}/key-requests/{request}/claim", "POST", name="portal_claim_key",
               summary="Collect the key of an approved request; the secret is shown this once.",
               guard=developer, response=KeyCreated, status=201)
    async def claim(call: Call):
        pid, p = call.path("project"), call.principal
        assert p is not None
        req = await requests.get(pid, call.path("request"))
        if req.requester != p.subject:
            raise Forbidden("Only the requester can claim this key.", code="not_requester")
        if req.state != "approved":
            raise Conflict(f"The request is {req.state}.", code=f"request_{req.state}")

        def mark(r: KeyRequest) -> None:
            if r.state != "approved":
                raise Conflict(f"The request is {r.state}.", code=f"request_{r.state}")
            r.state = "claimed"

        # Claim first (conditional write): two concurrent claims cannot both get a secret.
        claimed = await requests.update(pid, req.id, mark)
        key, secret = await issue_for(p, pid, claimed)
        await requests.update(pid, req.id, lambda r: setattr(r, "key_id", key.id))
        return json_response(KeyCreated(**KeyOut.of(key).model_dump(), secret=secret), 201)

    @api.route("manage/projects/{project}/key-requests", "GET", name="manage_list_key_requests",
               summary="Key requests of a project (filter with ?state=pending).", guard=admin,
               response=KeyRequestList, query=(*PAGING, ("state", "pending|approved|rejected|claimed")))
    async def list_requests(call: Call):
        pid = call.path("project")
        filters = {"state": call.req.query_params["state"]} if "state" in call.req.query_params else {}
        page = await requests.list(pid, limit=query_int(call.req, "limit", 50, 1, 200),
                                   cursor=call.req.query_params.get("cursor") or None, **filters)
        return KeyRequestList(items=[KeyRequestOut.of(r) for r in page.items], next_cursor=page.cursor)

    def decide(state: str):
        async def handler(call: Call):
            assert call.principal is not None

            def apply(r: KeyRequest) -> None:
                if r.state != "pending":
                    raise Conflict(f"The request is already {r.state}.", code=f"request_{r.state}")
                r.state, r.decided_by, r.decided_at = state, call.principal.subject, utcnow()  # type: ignore[union-attr]

            return KeyRequestOut.of(await requests.update(call.path("project"), call.path("request"), apply))
        return handler

    api.route("manage/projects/{project}/key-requests/{request}/approve", "POST", name="manage_approve_key_request",
              summary="Approve a pending key request.", guard=admin, body=KeyRequestDecision,
              response=KeyRequestOut)(decide("approved"))
    api.route("manage/projects/{project}/key-requests/{request}/reject", "POST", name="manage_reject_key_request",
              summary="Reject a pending key request.", guard=admin, body=KeyRequestDecision,
              response=KeyRequestOut)(decide("rejected"))
    return api
