"""The guardrails' part of the composition root (mixed into `shared.services.Services`): the policies, their
fail-static book and the one guardrail pipeline step every pillar runs; `self` is the one `Services` instance."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from ..storage.repository import Repository

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    from .book import GuardrailBook
    from .policy import GuardrailPolicy
    from .step import GuardrailStep


class GuardrailServices:
    @cached_property
    def guardrail_policies(self) -> "Repository[GuardrailPolicy]":
        from .policy import GuardrailPolicy

        return Repository(self.store, GuardrailPolicy)

    @cached_property
    def guardrail_book(self) -> "GuardrailBook":
        from .book import GuardrailBook

        s = self.settings
        return GuardrailBook(self.guardrail_policies, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def guardrail_step(self) -> "GuardrailStep":
        """The guardrail pipeline step (all pillars): policies from the book, local checks, Content Safety."""
        from .content_safety import ContentSafety
        from .engine import GuardrailEngine
        from .step import GuardrailStep

        remote = ContentSafety(self.settings, lambda: self.credential, self.egress)
        self._on_close("content safety", remote.close)
        return GuardrailStep(self.guardrail_book, GuardrailEngine(remote))
