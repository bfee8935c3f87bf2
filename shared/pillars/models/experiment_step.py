"""A/B experiments as a step of the models pipeline (shared/pipeline/steps.py), registered first.

before: when an experiment is running on the called model, the call is assigned to a variant — sticky and
        stateless (`shared.experiments.domain.assign`: SHA-256 of the experiment and the subject, split by the
        weights) — and routed to that variant's backends only (failover stays inside the variant's pool), with
        the variant's deployment (model version) when it names one. The subject is the caller's user id header
        (`x-gateway-user`) when the experiment is sticky by user and the header is present, else the virtual key.
        While the experiment is paused every call goes to the control (the first variant) and is not counted.
        The request log row carries `experiment`, `variant` (and `experiment_paused`); the response carries
        `x-gateway-variant`. The response cache is keyed per variant, so a cached answer never crosses variants.
after:  the `x-gateway-variant` header."""
from __future__ import annotations

import logging
from typing import Any

from shared.experiments.book import ExperimentBook
from shared.experiments.domain import Experiment, Variant, assign
from shared.pipeline.exchange import Exchange, Relayed

from .cache_step import SCOPE_MODEL
from .domain import Backend, Model

log = logging.getLogger("gateway.experiments")
HEADER = "x-gateway-variant"
USER_HEADER = "x-gateway-user"
MAX_USER_ID = 256  # longer user ids are cut (they only feed a hash)
_VARIANT = "experiment.variant"
_MAX_POOLS = 4096  # cached (model version, experiment version, variant) → backends; cleared when full


class ExperimentStep:
    name = "experiment"

    def __init__(self, book: ExperimentBook) -> None:
        self._book = book
        self._pools: dict[tuple[Any, ...], list[Backend]] = {}

    async def before(self, x: Exchange) -> Relayed | None:
        p, model = x.principal, x.entity
        exp = await self._book.active(p.project_id or "", x.resource)
        if exp is None or not isinstance(model, Model):
            return None
        paused = exp.status == "paused"
        if paused:
            variant = exp.control
        else:
            variant = assign(exp.id, self._subject(exp, x), exp.spec.variants)
        x.targets = self._pool(model, exp, variant)
        x.scratch[_VARIANT] = variant.id
        x.scratch[SCOPE_MODEL] = f"{x.resource}@{exp.id}/{variant.id}"  # cache entries per variant
        x.attributes.update(experiment=exp.id, variant=variant.id)
        if paused:
            x.attributes["experiment_paused"] = True
        return None

    def after(self, x: Exchange, relayed: Relayed) -> Relayed:
        variant = x.scratch.get(_VARIANT)
        if variant is not None:
            relayed.headers[HEADER] = variant
        return relayed

    @staticmethod
    def _subject(exp: Experiment, x: Exchange) -> str:
        if exp.spec.sticky_by == "user":
            user = (x.headers.get(USER_HEADER) or "").strip()[:MAX_USER_ID]
            if user:
                return "user:" + user
        return "key:" + (x.principal.key_id or x.principal.subject)

    def _pool(self, model: Model, exp: Experiment, variant: Variant) -> list[Backend]:
        key = (model.project_id, model.id, model.etag, model.updated_at, exp.id, exp.etag, exp.updated_at, variant.id)
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= _MAX_POOLS:
                self._pools.clear()
            pool = self._pools[key] = _backends(model, exp, variant)
        return pool


def _backends(model: Model, exp: Experiment, variant: Variant) -> list[Backend]:
    chosen = [b for b in model.spec.backends if variant.backends is None or b.id in variant.backends]
    if not chosen:
        # The model lost the variant's backends after the experiment started (the registry checks on start):
        # serve from the whole pool rather than refuse the call, and say so in the log.
        log.warning("experiment %s/%s: variant %s names no backend of model %s; using all of its backends",
                    exp.project_id, exp.id, variant.id, model.spec.name)
        chosen = list(model.spec.backends)
    if variant.deployment is not None:
        chosen = [b.model_copy(update={"deployment": variant.deployment}) for b in chosen]
    return chosen
