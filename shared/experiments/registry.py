"""The control plane of A/B experiments: create, update, lifecycle transitions (audited), delete.

Rules an admin cannot get around:
- an experiment names an existing model of its project, and every backend a variant names is one of that model's
  backends (checked on create, update and start: a model edited in between is caught before traffic moves);
- only the transitions in `TRANSITIONS` (draft → running ⇄ paused → stopped; stopped is final), each recorded
  with who and when;
- variants change only while nothing is being measured (draft or paused) — reweighting a running experiment
  would silently mix two splits in one result — and a stopped experiment is read-only;
- at most one experiment per model is active (running or paused): two live splits of one model would make every
  call belong to both.
Every write drops this instance's cached view of the project (`on_change`); other instances see it within the
cache TTL (FLAG_CACHE_TTL_SECONDS)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from ..domain.base import utcnow
from ..errors import AlreadyExists, Conflict, InvalidStoredDocument, InvalidTransition, ValidationFailed
from ..storage.repository import Page, Repository
from .domain import ACTION_STATUS, MAX_HISTORY, TRANSITIONS, Action, AuditEntry, Experiment, ExperimentSpec

ACTIVE = frozenset({"running", "paused"})
FindModel = Callable[[str, str], Awaitable[object | None]]  # (project, model name) → Model | None


class ExperimentRegistry:
    def __init__(self, repo: Repository[Experiment], *, find_model: FindModel,
                 on_change: Callable[[str], None]) -> None:
        self._repo, self._find_model, self._on_change = repo, find_model, on_change

    async def all(self, project_id: str) -> Page[Experiment]:
        items, invalid, cursor = [], [], None
        while True:
            page = await self._repo.list(project_id, limit=200, cursor=cursor)
            items += page.items
            invalid += page.invalid
            if page.cursor is None:
                return Page(sorted(items, key=lambda e: e.id), None, invalid)
            cursor = page.cursor

    async def get(self, project_id: str, name: str) -> Experiment:
        return await self._repo.get(project_id, name)

    async def create(self, project_id: str, spec: ExperimentSpec, by: str) -> Experiment:
        await self._check_model(project_id, spec)
        entity = Experiment(id=spec.name, project_id=project_id, spec=spec)
        entity.history = [AuditEntry(action="create", to_status="draft", by=by, at=entity.created_at)]
        try:
            saved = await self._repo.create(entity)
        except AlreadyExists as exc:
            if exc.code == "id_taken":
                raise
            raise AlreadyExists(f"Experiment '{spec.name}' already exists in project '{project_id}'.",
                                details=[{"field": "name", "message": "taken"}]) from None
        self._on_change(project_id)
        return saved

    async def update(self, project_id: str, name: str, spec: ExperimentSpec, by: str,
                     if_match: str | None) -> Experiment:
        if spec.name != name:
            raise ValidationFailed("The experiment name in the body must match the URL.",
                                   details=[{"field": "name", "message": f"expected '{name}'"}])
        await self._check_model(project_id, spec)

        def apply(e: Experiment) -> None:
            if e.status not in ("draft", "paused"):
                raise InvalidTransition(f"A {e.status} experiment cannot be changed; pause it first"
                                        + (" (a stopped one is final)." if e.status == "stopped" else "."),
                                        details={"status": e.status})
            if spec.model != e.spec.model and e.status != "draft":
                raise InvalidTransition("The model of an experiment that has run cannot change.",
                                        details={"status": e.status})
            e.spec = spec
            _audit(e, "update", e.status, by)

        try:
            saved = await self._repo.update(project_id, name, apply, if_match=if_match)
        except InvalidStoredDocument:  # a full PUT repairs a stored experiment that no longer validates
            entity = Experiment(id=name, project_id=project_id, spec=spec)
            entity.history = [AuditEntry(action="update", to_status="draft", by=by, at=entity.created_at)]
            saved = await self._repo.rewrite(entity, if_match)
        self._on_change(project_id)
        return saved

    async def transition(self, project_id: str, name: str, action: Action, by: str,
                         if_match: str | None = None) -> Experiment:
        target = ACTION_STATUS[action]
        current = await self._repo.get(project_id, name)
        if target not in TRANSITIONS[current.status]:
            raise InvalidTransition(f"Cannot {action} a {current.status} experiment.",
                                    details={"status": current.status, "allowed": sorted(TRANSITIONS[current.status])})
        if target == "running":
            await self._check_model(project_id, current.spec)
            await self._only_active(project_id, current)

        def apply(e: Experiment) -> None:
            if target not in TRANSITIONS[e.status]:  # changed since the read above: the ETag check catches it too
                raise InvalidTransition(f"Cannot {action} a {e.status} experiment.", details={"status": e.status})
            now = _audit(e, action, target, by)
            if target == "running" and e.started_at is None:
                e.started_at = now
            if target == "stopped":
                e.stopped_at = now

        saved = await self._repo.update(project_id, name, apply, if_match=if_match)
        self._on_change(project_id)
        return saved

    async def delete(self, project_id: str, name: str, if_match: str | None) -> None:
        raw = await self._repo.find_raw(project_id, name)
        if raw is not None and raw.get("status") == "running":
            raise Conflict("A running experiment cannot be deleted; pause or stop it first.",
                           code="experiment_running")
        await self._repo.delete(project_id, name, if_match)
        self._on_change(project_id)

    async def _check_model(self, project_id: str, spec: ExperimentSpec) -> None:
        model = await self._find_model(project_id, spec.model)
        if model is None:
            raise ValidationFailed(f"The model '{spec.model}' does not exist in this project.",
                                   details=[{"field": "model", "message": "unknown model"}])
        known = {b.id for b in model.spec.backends}  # type: ignore[attr-defined]
        problems = [{"field": f"variants.{i}.backends", "message": f"'{b}' is not a backend of '{spec.model}'"}
                    for i, v in enumerate(spec.variants) for b in v.backends or () if b not in known]
        if problems:
            raise ValidationFailed("A variant names a backend the model does not have.", details=problems)

    async def _only_active(self, project_id: str, starting: Experiment) -> None:
        for other in (await self.all(project_id)).items:
            if other.id != starting.id and other.spec.model == starting.spec.model and other.status in ACTIVE:
                raise Conflict(f"Experiment '{other.id}' is already {other.status} on model '{other.spec.model}'; "
                               "stop it first.", code="experiment_active", details={"experiment": other.id})


def _audit(e: Experiment, action: Action, to_status: str, by: str) -> datetime:
    now = utcnow()
    entry = AuditEntry(action=action, from_status=e.status, to_status=to_status, by=by[:256], at=now)
    e.history = [*e.history, entry][-MAX_HISTORY:]
    e.status = to_status  # type: ignore[assignment]
    return now
