"""TokenEstimator: prompt-token estimates for quota admission, before a request is proxied.

Exact (tiktoken, offline encodings) where the model's encoding is known, the high-side byte estimate otherwise.
No method raises on odd input: shapes are the HTTP layer's business, here we only estimate.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import chat, offline
from .heuristic import estimate_tokens
from .models import ENCODING_NAMES, encoding_name_for

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger("gateway.tokens")


class _Counter:
    """Counts one request's strings with one encoding, within a character budget.

    Exact BPE costs ~0.05-0.45 µs per character; past `budget` characters in one request the rest is estimated
    from its bytes instead, so a multi-megabyte body cannot hold the worker (or the event loop) for seconds.
    """

    __slots__ = ("_encoding", "_budget")

    def __init__(self, encoding: tiktoken.Encoding | None, budget: int) -> None:
        self._encoding = encoding
        self._budget = budget

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self._encoding is None or len(text) > self._budget:
            return estimate_tokens(text)
        self._budget -= len(text)
        try:
            # encode_ordinary: "<|endoftext|>" typed by a user is text, not a special token (encode() would raise)
            return len(self._encoding.encode_ordinary(text))
        except Exception:  # noqa: BLE001 - never fail a request over counting
            return estimate_tokens(text)


class TokenEstimator:
    # Characters counted exactly per call; the rest of a larger request is estimated (see _Counter).
    max_exact_chars: int = 1_000_000

    def __init__(self) -> None:
        # Nothing to do: no network, no environment, no file access here. Encodings are built on first use and
        # shared process-wide (shared.pillars.models.tokens.offline), so any number of estimators costs one load.
        pass

    def encoding_for(self, model: str, family: str | None = None) -> tiktoken.Encoding | None:
        """The encoding of `model`, else of `family` (the underlying model, or an encoding name, of e.g. an
        Azure deployment); None when neither is known or the bundled encoding cannot be loaded."""
        name = encoding_name_for(model) or encoding_name_for(family)
        return offline.cached_encoding(name) if name is not None else None

    def count_text(self, text: str, model: str, family: str | None = None) -> int:
        try:
            return self._counter(model, family)(chat.as_text(text))
        except Exception:  # noqa: BLE001
            log.debug("count_text fell back to the byte estimate", exc_info=True)
            return estimate_tokens(chat.as_text(text))

    def estimate_chat_prompt(self, body: dict, model: str, family: str | None = None) -> int:
        try:
            return chat.chat_prompt_tokens(body, self._counter(model, family))
        except Exception:  # noqa: BLE001
            log.debug("estimate_chat_prompt fell back to the byte estimate", exc_info=True)
            return chat.REPLY_PRIMING + estimate_tokens(chat.as_text(body))

    def estimate_embeddings_input(self, body: dict, model: str, family: str | None = None) -> int:
        try:
            return chat.embeddings_input_tokens(body, self._counter(model, family))
        except Exception:  # noqa: BLE001
            log.debug("estimate_embeddings_input fell back to the byte estimate", exc_info=True)
            return estimate_tokens(chat.as_text(body))

    @staticmethod
    def requested_completion(body: dict, default: int) -> int:
        """The completion tokens a request may use: max_completion_tokens (or the older max_tokens) × n choices;
        `default` (as given, not multiplied) when neither is a positive integer."""
        if not isinstance(body, dict):
            return default
        limit = _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))
        if limit is None:
            return default
        return limit * (_positive_int(body.get("n")) or 1)

    def is_ready(self, model: str, family: str | None = None) -> bool:
        """True when counting for this model needs no encoding load (loaded already, or none applies)."""
        name = encoding_name_for(model) or encoding_name_for(family)
        return name is None or offline.is_loaded(name)

    def preload(self) -> dict[str, bool]:
        """Build every encoding now (e.g. from a startup hook, off the event loop) instead of on the first
        request that needs it. Returns which encodings are available; never raises."""
        return {name: offline.cached_encoding(name) is not None for name in ENCODING_NAMES}

    def _counter(self, model: str, family: str | None) -> _Counter:
        return _Counter(self.encoding_for(model, family), self.max_exact_chars)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None
