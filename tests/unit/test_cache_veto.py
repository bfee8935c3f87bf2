"""The false-hit veto, case by case, and the labelled set: hit rate and false-hit rate at the chosen threshold."""
from __future__ import annotations

import pytest

from bench.cache_quality import DEFAULT_THRESHOLD, PAIRS, load_pairs, score, similarities
from shared.cache_semantic.veto import veto_reason
from shared.cache_semantic.wording import content_words


@pytest.mark.parametrize("cached, asked, reason", [
    ("How do I enable X?", "How do I disable X?", "opposite_action"),
    ("How do I turn on logging?", "How do I switch off logging?", "opposite_action"),
    ("Is the API rate limited?", "Is the API not rate limited?", "negation"),
    ("Can I deploy on Fridays?", "Can't I deploy on Fridays?", "negation"),
    ("Scale to 3 replicas", "Scale to 5 replicas", "numbers"),
    ("Scale to three replicas", "Scale to five replicas", "numbers"),
    ("Upgrade to version 3.12", "Upgrade to version 3.13", "numbers"),
    ("How do I create an Azure storage account?", "How do I create an AWS storage account?", "entities"),
    ("What does `max_tokens` mean?", "What does `top_p` mean?", "entities"),
    ("How do I sort a dictionary by key?", "How do I sort a dictionary by value?", "substituted"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", "reordered"),
])
def test_a_contradicting_prompt_is_vetoed(cached: str, asked: str, reason: str) -> None:
    assert veto_reason(cached, asked) == reason
    assert veto_reason(asked, cached) == reason  # symmetric: whichever was cached first


@pytest.mark.parametrize("cached, asked", [
    ("How do I enable multi-factor authentication on my account?",
     "How can I turn on multi-factor authentication for my account?"),
    ("How do I reset my password?", "What are the steps to reset my password?"),
    ("How do I rotate the keys of a storage account?", "How can I rotate the storage account keys?"),
    ("Scale the deployment to 3 replicas", "scale the deployment to 3 replicas please"),
])
def test_a_paraphrase_is_not_vetoed(cached: str, asked: str) -> None:
    assert veto_reason(cached, asked) is None


def test_synonyms_fold_and_scaffolding_is_dropped() -> None:
    assert content_words("How can I turn on dark mode?") == content_words("What is the way to enable dark mode?")


def test_the_labelled_set_meets_the_target() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 200 and len({p.domain for p in pairs}) >= 5
    sim = similarities(pairs)
    result = score(pairs, sim, DEFAULT_THRESHOLD)
    # The documented figures (docs/admin-guide.md): false hits below 1 %, hit rate 82 % (at least 75 % here).
    assert result.false_hit_rate < 0.01, [(p.cached, p.asked) for p in result.false_hits]
    assert result.hit_rate >= 0.75
    # and without the veto the same threshold would serve many wrong answers — the veto is what makes it safe
    assert score(pairs, sim, DEFAULT_THRESHOLD, use_veto=False).false_hit_rate > 0.3


def test_the_held_out_set_has_no_false_hit():
    pairs = load_pairs(PAIRS.with_name("cache_pairs_holdout.tsv"))
    result = score(pairs, similarities(pairs), DEFAULT_THRESHOLD)
    assert result.false_hits == [] and result.hit_rate >= 0.6  # documented: 66.7 %
