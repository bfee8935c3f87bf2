"""The models pillar's part of the composition root (mixed into `shared.services.Services`): its registry,
catalog and data-plane pipeline (assembled by `assemble_models`), and the A/B experiments on model names. Everything
is built on first use; `self` is the one `Services` instance (settings, store, the shared gateway services, the
exit stack's `_on_close`)."""
from __future__ import annotations

import asyncio
import gc
from functools import cached_property
from typing import TYPE_CHECKING

from ...storage.repository import Repository
from .catalog import ModelCatalog
from .domain import Model
from .registry import ModelRegistry

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    from ...experiments.book import ExperimentBook
    from ...experiments.domain import Experiment
    from ...experiments.feedback import Feedback, FeedbackService
    from ...experiments.registry import ExperimentRegistry
    from ...pipeline.pipeline import Pipeline


class ModelsServices:
    @cached_property
    def models(self) -> Repository[Model]:
        return Repository(self.store, Model)

    @cached_property
    def catalog(self) -> ModelCatalog:
        s = self.settings
        return ModelCatalog(self.models, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def model_registry(self) -> ModelRegistry:
        return ModelRegistry(self.models, self.catalog, self.egress)

    @cached_property
    def models_pipeline(self) -> "Pipeline":
        from .assemble import assemble_models
        from .guardrails import ModelsGuardrails
        from .experiment_step import ExperimentStep
        from .responses_directory import ResponseRoute

        pipeline = assemble_models(self.settings, catalog=self.catalog, quotas=self.quota_book,
                                   enforcer=self.enforcer, usage=self.usage_log, flags=self.flags,
                                   egress=self.egress, credential=lambda: self.credential, on_close=self._on_close,
                                   steps=[ExperimentStep(self.experiment_book), ModelsGuardrails(self.guardrail_step)],
                                   telemetry=self.telemetry,
                                   instrument=self._instrument,
                                   responses_store=Repository(self.store, ResponseRoute))
        # Once the worker has warmed up (SDK clients, BPE tables, caches), move that long-lived heap out of the
        # garbage collector's full passes: gen-2 collections over it took 36–55 ms (docs/benchmarks.md).
        # function_app.py freezes the import-time heap; this is the second, post-warm-up freeze.
        asyncio.get_running_loop().call_later(30, gc.freeze)
        from .cache_wiring import cache_step

        pipeline.steps.append(cache_step(self, pipeline.spec))  # the response cache (shared/cache_semantic)
        return pipeline

    @cached_property
    def experiments(self) -> "Repository[Experiment]":
        from ...experiments.domain import Experiment

        return Repository(self.store, Experiment)

    @cached_property
    def experiment_feedback(self) -> "Repository[Feedback]":
        from ...experiments.feedback import Feedback

        return Repository(self.store, Feedback)

    @cached_property
    def experiment_book(self) -> "ExperimentBook":
        from ...experiments.book import ExperimentBook

        s = self.settings
        return ExperimentBook(self.experiments, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def experiment_registry(self) -> "ExperimentRegistry":
        from ...experiments.registry import ExperimentRegistry

        return ExperimentRegistry(self.experiments, find_model=self.models.find,
                                  on_change=self.experiment_book.invalidate)

    @cached_property
    def experiment_feedback_service(self) -> "FeedbackService":
        from datetime import timedelta

        from ...experiments.feedback import FeedbackService

        return FeedbackService(self.experiment_feedback, self.experiments, self.request_log_table,
                               max_age=timedelta(days=self.settings.experiment_feedback_max_age_days))
