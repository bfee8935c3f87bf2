"""Registering models: one public name → a pool of backends. Writes drop this instance's catalog entry."""
from __future__ import annotations

from shared.domain.base import InvalidDocument
from shared.egress import EgressPolicy
from shared.errors import AlreadyExists, BadRequest, InvalidStoredDocument, ValidationFailed
from shared.storage.repository import Repository

from .catalog import ModelCatalog
from .domain import Model, ModelSpec


class ModelRegistry:
    def __init__(self, models: Repository[Model], catalog: ModelCatalog, egress: EgressPolicy) -> None:
        self._models, self._catalog, self._egress = models, catalog, egress

    async def _check(self, spec: ModelSpec) -> None:
        ids = [b.id for b in spec.backends]
        if len(ids) != len(set(ids)):
            raise ValidationFailed("Backend ids must be unique within a model.",
                                   details=[{"field": "backends", "message": "duplicate id"}])
        for i, b in enumerate(spec.backends):
            await self._egress.check(str(b.endpoint), f"backends.{i}.endpoint")

    async def create(self, pid: str, spec: ModelSpec) -> Model:
        await self._check(spec)
        try:
            model = await self._models.create(Model(id=spec.name, project_id=pid, spec=spec))
        except AlreadyExists as exc:
            if exc.code == "id_taken":
                raise  # the name is the id of another kind of resource in this project
            raise AlreadyExists(f"Model '{spec.name}' already exists in project '{pid}'.",
                                details=[{"field": "name", "message": "taken"}]) from None
        self._catalog.invalidate(pid)
        return model

    async def list(self, pid: str) -> tuple[list[Model], list[InvalidDocument]]:
        return await self._catalog.fresh(pid)  # admins expect to see their last write

    async def get(self, pid: str, name: str) -> Model:
        return await self._models.get(pid, name)

    async def replace(self, pid: str, name: str, spec: ModelSpec, if_match: str | None) -> Model:
        if spec.name != name:
            raise BadRequest("The model name in the body must match the URL.", code="name_mismatch",
                             details=[{"field": "name", "message": f"expected '{name}'"}])
        await self._check(spec)
        try:
            model = await self._models.update(pid, name, lambda m: setattr(m, "spec", spec), if_match=if_match)
        except InvalidStoredDocument:  # the stored version no longer validates: a full PUT repairs it
            model = await self._models.rewrite(Model(id=name, project_id=pid, spec=spec), if_match)
        self._catalog.invalidate(pid)
        return model

    async def delete(self, pid: str, name: str, if_match: str | None) -> None:
        await self._models.delete(pid, name, if_match)
        self._catalog.invalidate(pid)
