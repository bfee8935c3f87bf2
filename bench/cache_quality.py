"""Hit rate and false-hit rate of the semantic cache on the labelled prompt pairs (tests/data/cache_pairs.tsv).

Each line is (domain, prompt, paraphrase, near miss): the paraphrase should be served the prompt's cached answer
(a hit), the near miss must not (a false hit). Embeddings: all-MiniLM-L6-v2 (tests/support/minilm.py, numpy).

    .venv/bin/python -m bench.cache_quality [--threshold 0.80] [--sweep] [--show-misses]
        [--pairs tests/data/cache_pairs_holdout.tsv]   # the held-out set, never used to tune the veto
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.cache_semantic.veto import veto_reason

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "cache_pairs.tsv"
DEFAULT_THRESHOLD = 0.80


@dataclass(frozen=True)
class Pair:
    domain: str
    cached: str
    asked: str
    same: bool  # a paraphrase: serving the cached answer is right


def load_pairs(path: Path = PAIRS) -> list[Pair]:
    pairs = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        domain, prompt, paraphrase, near = line.split("\t")
        pairs += [Pair(domain, prompt, paraphrase, True), Pair(domain, prompt, near, False)]
    return pairs


@dataclass(frozen=True)
class Score:
    threshold: float
    hit_rate: float  # paraphrases served from cache / paraphrases
    false_hit_rate: float  # near misses served from cache / near misses
    vetoed_paraphrases: int
    false_hits: list[Pair]


def score(pairs: list[Pair], similarity: np.ndarray, threshold: float, *, use_veto: bool = True) -> Score:
    hits = [bool(s >= threshold and not (use_veto and veto_reason(p.cached, p.asked))) for p, s in
            zip(pairs, similarity)]
    same = [h for p, h in zip(pairs, hits) if p.same]
    diff = [h for p, h in zip(pairs, hits) if not p.same]
    vetoed = sum(1 for p, s in zip(pairs, similarity) if p.same and s >= threshold and use_veto
                 and veto_reason(p.cached, p.asked))
    return Score(threshold, sum(same) / len(same), sum(diff) / len(diff), vetoed,
                 [p for p, h in zip(pairs, hits) if h and not p.same])


def similarities(pairs: list[Pair]) -> np.ndarray:
    from tests.support.minilm import load

    model = load()
    a = model.embed([p.cached for p in pairs])
    b = model.embed([p.asked for p in pairs])
    return (a * b).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--sweep", action="store_true", help="also print a table of thresholds")
    parser.add_argument("--show-misses", action="store_true", help="list false hits and missed paraphrases")
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="a labelled file (e.g. the held-out set)")
    args = parser.parse_args()
    pairs = load_pairs(args.pairs)
    sim = similarities(pairs)
    print(f"{len(pairs)} labelled pairs ({sum(p.same for p in pairs)} paraphrases, "
          f"{sum(not p.same for p in pairs)} near misses, {len({p.domain for p in pairs})} domains)")
    rows = [args.threshold] + ([0.70, 0.75, 0.80, 0.85, 0.90, 0.95] if args.sweep else [])
    print(f"{'threshold':>9} {'veto':>5} {'hit rate':>9} {'false hits':>11}")
    for t in rows:
        for use in (True, False):
            s = score(pairs, sim, t, use_veto=use)
            print(f"{t:9.2f} {'on' if use else 'off':>5} {s.hit_rate:9.1%} {s.false_hit_rate:11.1%}")
    s = score(pairs, sim, args.threshold)
    print(f"\nchosen threshold {args.threshold:.2f} with the veto: hit rate {s.hit_rate:.1%}, "
          f"false-hit rate {s.false_hit_rate:.1%} ({len(s.false_hits)} false hits), "
          f"{s.vetoed_paraphrases} paraphrases vetoed")
    if args.show_misses:
        for p in s.false_hits:
            print(f"  FALSE HIT [{p.domain}] {p.cached!r} -> {p.asked!r}")
        for p, x in zip(pairs, sim):
            if p.same and (x < args.threshold or veto_reason(p.cached, p.asked)):
                print(f"  missed {x:.3f} {veto_reason(p.cached, p.asked)} {p.cached!r} -> {p.asked!r}")


if __name__ == "__main__":
    main()
