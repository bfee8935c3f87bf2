"""Prompt-token estimation for quota admission (tiktoken with bundled, offline encodings).

    from shared.pillars.models.tokens import TokenEstimator
    tokens = TokenEstimator().estimate_chat_prompt(body, body.get("model", ""))

Importing this package is cheap: tiktoken and the BPE tables load on first use (see offline.py).
"""
from __future__ import annotations

from .estimator import TokenEstimator
from .heuristic import estimate_tokens
from .models import encoding_name_for
from .offline import OfflineEncodingError

__all__ = ["OfflineEncodingError", "TokenEstimator", "encoding_name_for", "estimate_tokens"]
