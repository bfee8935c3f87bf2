"""Assembling the models pillar: its upstream client, its spec, and the pipeline it runs on."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.flags.service import FlagService
from shared.pipeline.pipeline import Pipeline
from shared.pipeline.steps import Step
from shared.pipeline.telemetry import Telemetry
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.routing.breaker import Breakers
from shared.storage.repository import Repository
from shared.upstreams.egress_transport import guarded_client
from shared.usage.log import UsageLog

from .catalog import ModelCatalog
from .credentials import TokenCache, UpstreamCredentials
from .openai_http import OpenAIHttp
from .responses_directory import ResponseDirectory, ResponseRoute
from .spec import ModelsSpec
from .tokens import TokenEstimator


def assemble_models(settings: Settings, *, catalog: ModelCatalog, quotas: QuotaBook, enforcer: QuotaEnforcer,
                    usage: UsageLog, flags: FlagService, egress: EgressPolicy, credential: Callable[[], Any],
                    on_close: Callable[[str, Callable[[], Any]], None], steps: Sequence[Step] = (),
                    telemetry: Telemetry | None = None,
                    instrument: Callable[[httpx.AsyncClient, Breakers], None] | None = None,
                    responses_store: Repository[ResponseRoute] | None = None) -> Pipeline:
    """`on_close(name, aclose)`: registers what this pillar opened with the composition root's exit stack;
    `steps`: the request steps around the forward (guardrails, …), in order; `instrument(upstream, breakers)`:
    the telemetry's hooks on this pillar's upstream client and breakers; `responses_store`: the Responses API ids
    shared by every instance (None: per worker)."""
    # Every upstream connection goes through the egress policy (on the address connected to, not the name).
    upstream_http = guarded_client(egress, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
    on_close("models upstream http", upstream_http.aclose)
    credentials = UpstreamCredentials(settings, TokenCache(credential))
    responses = ResponseDirectory(max_entries=settings.responses_directory_max_entries,
                                  ttl=settings.responses_directory_ttl_seconds, store=responses_store)
    spec = ModelsSpec(catalog=catalog, http=OpenAIHttp(upstream_http, credentials), tokens=TokenEstimator(),
                      enforcer=enforcer, responses=responses)  # encodings load on first use per model, off the event loop
    breakers = Breakers()
    if instrument is not None:
        instrument(upstream_http, breakers)
    return Pipeline(spec, quotas=quotas, enforcer=enforcer, breakers=breakers, usage=usage, flags=flags,
                    steps=steps, telemetry=telemetry)
