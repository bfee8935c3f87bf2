"""Usage as providers bill it: input tokens served from the provider's prompt cache and reasoning tokens are read
from the usage details (Chat Completions: `prompt_tokens_details.cached_tokens`,
`completion_tokens_details.reasoning_tokens`; Responses API: `input_tokens_details.cached_tokens`,
`output_tokens_details.reasoning_tokens`) and priced separately when the model has those prices.

Both are subsets, as in the providers' usage: cached ⊆ prompt tokens, reasoning ⊆ completion tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .domain import Model


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    completion: int = 0
    cached: int = 0  # of prompt
    reasoning: int = 0  # of completion


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def read_usage(usage: dict[str, Any]) -> Tokens:
    prompt = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
    completion = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
    pd = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cd = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    cached = _int(pd.get("cached_tokens")) if isinstance(pd, dict) else 0
    reasoning = _int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else 0
    # a detail larger than its total is an upstream error: clamp rather than bill negative tokens
    return Tokens(prompt, completion, min(cached, prompt), min(reasoning, completion))


def cost_micros(model: Model, t: Tokens) -> int:
    s = model.spec
    cached_price = s.input_price_per_1k if s.cached_input_price_per_1k is None else s.cached_input_price_per_1k
    reasoning_price = s.output_price_per_1k if s.reasoning_price_per_1k is None else s.reasoning_price_per_1k
    usd_per_1k = ((t.prompt - t.cached) * s.input_price_per_1k + t.cached * cached_price
                  + (t.completion - t.reasoning) * s.output_price_per_1k + t.reasoning * reasoning_price)
    return int(usd_per_1k * 1000)


def attributes(t: Tokens) -> dict[str, int]:
    out = {"prompt_tokens": t.prompt, "completion_tokens": t.completion, "total_tokens": t.prompt + t.completion}
    if t.cached:
        out["cached_prompt_tokens"] = t.cached
    if t.reasoning:
        out["reasoning_tokens"] = t.reasoning
    return out
