"""Prompt-estimate cost per call for a 1 kB chat body (figures for docs/benchmarks.md; not a test).

    .venv/bin/python -m bench.tokens_timing
"""
from __future__ import annotations

import json
import time

from shared.pillars.models.tokens import TokenEstimator

BODY = {"model": "gpt-4o", "messages": [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate "
                                  "jargon into plain English."},
    {"role": "user", "content": "New synergies will help drive top-line growth."},
    {"role": "assistant", "content": "Things working well together will increase revenue."},
    {"role": "user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
                                "for increased leverage."},
    {"role": "assistant", "content": "Understood. Send me the next sentence and I will translate it."},
    {"role": "user", "content": "We need to leverage our core competencies to move the needle going forward, so "
                                "let's take this offline and circle back next quarter."},
], "temperature": 0.2}


def main() -> None:
    est = TokenEstimator()
    started = time.perf_counter()
    est.preload()
    print(f"preload(): {(time.perf_counter() - started) * 1000:.1f} ms")
    for model in ("gpt-4o", "gpt-4", "unknown-model"):
        est.estimate_chat_prompt(BODY, model)
        rounds = 2000
        started = time.perf_counter()
        for _ in range(rounds):
            est.estimate_chat_prompt(BODY, model)
        per_call_us = (time.perf_counter() - started) / rounds * 1e6
        print(f"{len(json.dumps(BODY))} B chat body, {model}: {per_call_us:.1f} µs per estimate "
              f"({est.estimate_chat_prompt(BODY, model)} tokens)")


if __name__ == "__main__":
    main()
