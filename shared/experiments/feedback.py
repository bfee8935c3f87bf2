"""Feedback on one call of an experiment: a score per request id, from the key that made the call.

A key can only score its own calls: the call is looked up in the request log by (project, key id, request id) —
the key id is the authenticated caller's, never taken from the body — and the feedback document's id is derived
from (experiment, key id, request id), so one key's feedback can neither land on nor overwrite another key's
(even when both sent the same client-chosen x-request-id). Scoring the same call again replaces the score. The
variant is the one the request log recorded for the call, not one the caller names."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from ..domain.base import AppModel, Contract, Entity, utcnow
from ..errors import AlreadyExists, Conflict, NotFound
from ..monitoring.logquery import days_desc
from ..monitoring.rows import LogRow, from_entity
from ..storage.repository import Repository
from .domain import Experiment

MAX_SCORE = 100.0


class FeedbackIn(Contract):
    request_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$", description=(
        "The x-request-id of the call (echoed on every response)."))
    score: float = Field(ge=0, le=MAX_SCORE, allow_inf_nan=False, description=(
        "Higher is better, 0–100: e.g. 0/1 for thumbs down/up, 1–5 for stars. Compared as a mean per variant."))


class FeedbackOut(AppModel):
    request_id: str
    experiment: str
    variant: str
    score: float
    at: datetime


class Feedback(Entity):
    kind: ClassVar[str] = "experiment_feedback"
    experiment: str = Field(max_length=64)
    variant: str = Field(max_length=64)
    key_id: str = Field(max_length=128)
    request_id: str = Field(max_length=128)
    score: float = Field(ge=0, le=MAX_SCORE, allow_inf_nan=False)

    def out(self) -> FeedbackOut:
        return FeedbackOut(request_id=self.request_id, experiment=self.experiment, variant=self.variant,
                           score=self.score, at=self.updated_at)


def feedback_id(experiment: str, key_id: str, request_id: str) -> str:
    return "fb-" + hashlib.sha256(f"{experiment}\x00{key_id}\x00{request_id}".encode()).hexdigest()[:40]


async def find_call(table: Any, project: str, key_id: str, request_id: str, since: datetime,
                    until: datetime) -> LogRow | None:
    """The newest request-log row of this key with this request id that belongs to an experiment, walking day
    partitions newest first (bounded by the window)."""
    for day in days_desc(since, until):
        flt = "PartitionKey eq @pk and key_id eq @key and request_id eq @rid"
        params = {"pk": f"{project}|{day}", "key": key_id, "rid": request_id}
        async for entity in table.query_entities(flt, parameters=params, results_per_page=100):
            row = from_entity(entity)
            if row is not None and row.key_id == key_id and "experiment" in row.attributes:
                return row
    return None


class FeedbackService:
    def __init__(self, repo: Repository[Feedback], experiments: Repository[Experiment], table: Any, *,
                 max_age: timedelta) -> None:
        self._repo, self._experiments, self._table, self._max_age = repo, experiments, table, max_age

    async def submit(self, project: str, key_id: str, body: FeedbackIn, now: datetime | None = None) -> Feedback:
        now = now or utcnow()
        row = await find_call(self._table, project, key_id, body.request_id, now - self._max_age,
                              now + timedelta(minutes=5))
        if row is None:
            raise NotFound(f"No call of this key with request id '{body.request_id}' in an experiment in the last "
                           f"{self._max_age.days} days (the request log is written within seconds: retry shortly "
                           "after the call).", code="request_not_found")
        name, variant = str(row.attributes["experiment"]), str(row.attributes.get("variant", ""))
        if row.attributes.get("experiment_paused"):
            raise Conflict("This call was served while the experiment was paused; it is not part of the results.",
                           code="experiment_paused")
        exp = await self._experiments.find(project, name)
        if exp is None or exp.status == "stopped" or (exp.started_at is not None and row.at < exp.started_at):
            raise Conflict(f"The experiment '{name}' no longer takes feedback.", code="experiment_closed")
        doc_id = feedback_id(name, key_id, body.request_id)
        fresh = Feedback(id=doc_id, project_id=project, experiment=name, variant=variant, key_id=key_id,
                         request_id=body.request_id, score=body.score)
        try:
            return await self._repo.create(fresh)
        except AlreadyExists:
            return await self._repo.update(project, doc_id, lambda f: setattr(f, "score", body.score))

    async def for_experiment(self, project: str, experiment: str, limit: int) -> list[Feedback]:
        out: list[Feedback] = []
        cursor = None
        while len(out) < limit:
            page = await self._repo.list(project, limit=200, cursor=cursor, experiment=experiment)
            out += page.items
            if page.cursor is None:
                break
            cursor = page.cursor
        return out[:limit]

    async def delete_for(self, project: str, experiment: str) -> int:
        """Drop an experiment's feedback (when the experiment is deleted, so a new one of that name starts clean)."""
        gone = 0
        while True:
            page = await self._repo.list(project, limit=200, experiment=experiment)
            ids = [f.id for f in page.items] + [d.id for d in page.invalid]
            if not ids:
                return gone
            for fid in ids:
                try:
                    await self._repo.delete(project, fid)
                    gone += 1
                except NotFound:
                    pass  # deleted concurrently: that is what we wanted
