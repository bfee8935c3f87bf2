"""Operate what each virtual key may do with the project's agents, beyond its `agents` scope: the skills it may
use per agent, and its own limits (rate, concurrent tasks, max turns, message size, task time — the smaller of
the key's and the agent's applies). Admin role only; changes reach every instance within FLAG_CACHE_TTL_SECONDS."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from shared.domain.base import AppModel
from shared.errors import NotFound
from shared.pillars.agents.limits import KeyAgentPolicy, KeyAgentPolicySpec
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.responses import json_response

if TYPE_CHECKING:
    from shared.pillars.agents.pillar import AgentsPillar


class KeyAgentPolicyOut(KeyAgentPolicySpec):
    key_id: str
    project_id: str
    updated_at: str

    @classmethod
    def of(cls, p: KeyAgentPolicy) -> "KeyAgentPolicyOut":
        return cls(key_id=p.key_id, project_id=p.project_id, skills=p.skills, limits=p.limits,
                   updated_at=p.updated_at.isoformat())


class Deleted(AppModel):
    deleted: bool


def build(agents: Callable[[], AgentsPillar], projects: ProjectRegistry,
          key_exists: Callable[[str, str], Awaitable[object]], admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    """`key_exists(project, key)`: raises NotFound for a key the project does not have."""
    api = ApiBlueprint("agents-admin", max_body_bytes=max_body_bytes)
    route = "manage/projects/{project}/keys/{key}/agent-policy"

    async def target(call: Call) -> tuple[str, str]:
        pid, kid = await projects.require(call.path("project")), call.path("key")
        await key_exists(pid, kid)
        return pid, kid

    @api.route(route, "GET", name="manage_get_key_agent_policy", guard=admin, response=KeyAgentPolicyOut,
               summary="What this key may do with the project's agents (allowed skills, limits).")
    async def get(call: Call):
        pid, kid = await target(call)
        found = await agents().key_policies.repo.find(pid, KeyAgentPolicy.doc_id(kid))
        if found is None:
            raise NotFound(f"Key '{kid}' has no agent policy (every skill, the agents' own limits).")
        return KeyAgentPolicyOut.of(found)

    @api.route(route, "PUT", name="manage_set_key_agent_policy", guard=admin, body=KeyAgentPolicySpec,
               response=KeyAgentPolicyOut, summary="Set this key's allowed skills per agent and its agent limits.")
    async def put(call: Call):
        pid, kid = await target(call)
        spec: KeyAgentPolicySpec = call.body
        policies = agents().key_policies
        doc = KeyAgentPolicy.doc_id(kid)
        found = await policies.repo.find(pid, doc)
        if found is None:
            saved = await policies.repo.create(KeyAgentPolicy(id=doc, key_id=kid, project_id=pid,
                                                              skills=spec.skills, limits=spec.limits))
        else:
            def change(p: KeyAgentPolicy) -> None:
                p.skills, p.limits = spec.skills, spec.limits

            saved = await policies.repo.update(pid, doc, change)
        policies.invalidate(pid, kid)
        return json_response(KeyAgentPolicyOut.of(saved), 200)

    @api.route(route, "DELETE", name="manage_delete_key_agent_policy", guard=admin, response=Deleted,
               summary="Remove this key's agent policy (every skill, the agents' own limits).")
    async def delete(call: Call):
        pid, kid = await target(call)
        policies = agents().key_policies
        await policies.repo.delete(pid, KeyAgentPolicy.doc_id(kid))
        policies.invalidate(pid, kid)
        return Deleted(deleted=True)

    return api
