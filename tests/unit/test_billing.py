"""Cached input and reasoning tokens read from usage details and priced separately (hand-computed values)."""
from __future__ import annotations

from shared.pillars.models.billing import Tokens, attributes, cost_micros, read_usage
from shared.pillars.models.domain import Model, ModelSpec

BACKEND = {"id": "a", "kind": "openai", "endpoint": "https://api.openai.com/v1", "deployment": "o4-mini"}


def model(**prices) -> Model:
    return Model(id="m", project_id="p", spec=ModelSpec(name="m", backends=[BACKEND], input_price_per_1k=1.0,
                                                        output_price_per_1k=4.0, **prices))


def test_chat_and_responses_usage_details_are_read():
    chat = {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
            "prompt_tokens_details": {"cached_tokens": 1500}, "completion_tokens_details": {"reasoning_tokens": 300}}
    responses = {"input_tokens": 2000, "output_tokens": 500, "total_tokens": 2500,
                 "input_tokens_details": {"cached_tokens": 1500}, "output_tokens_details": {"reasoning_tokens": 300}}
    assert read_usage(chat) == read_usage(responses) == Tokens(2000, 500, 1500, 300)
    # a detail larger than its total, or not a number, is clamped / ignored
    assert read_usage({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}}).cached == 10
    assert read_usage({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": "9"}}).cached == 0


def test_separate_prices_when_the_model_has_them():
    t = Tokens(prompt=2000, completion=500, cached=1500, reasoning=300)
    # 500 × $1 + 1500 × $0.25 + 200 × $4 + 300 × $8 per 1k = 0.5 + 0.375 + 0.8 + 2.4 = $4.075
    assert cost_micros(model(cached_input_price_per_1k=0.25, reasoning_price_per_1k=8.0), t) == 4_075_000
    # without those prices: the plain input/output prices, 2 × $1 + 0.5 × $4 = $4.00
    assert cost_micros(model(), t) == 4_000_000
    assert attributes(t) == {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
                             "cached_prompt_tokens": 1500, "reasoning_tokens": 300}
