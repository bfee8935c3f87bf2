"""The false-hit veto: two prompts close in embedding space can still ask opposite things. Embeddings put
"how do I enable X" right next to "how do I disable X" (all-MiniLM-L6-v2: 0.88 — closer than most genuine
paraphrases), so a similarity threshold alone cannot separate them. A candidate hit is vetoed when the prompts
differ in any of:

- polarity: a negation in one and not the other ("not", "never", "without", "n't", …);
- an action from an opposed pair ("enable"/"disable", "add"/"remove", "increase"/"decrease", …): the two prompts
  must use the same side of every pair either mentions;
- numbers (digits, number words, versions, amounts — "3" vs "5", "v2" vs "v3");
- named entities: words capitalised mid-sentence, ALL-CAPS acronyms, quoted strings, code-like identifiers
  (`snake_case`, dotted.names, paths), compared case-insensitively;
- the slot that changed (`wording.py`): the same question with one content word swapped for a non-synonym
  ("key" → "value", "fridge" → "freezer", "gold" → "platinum") or its arguments reversed ("Celsius to
  Fahrenheit" → "Fahrenheit to Celsius").

The checks are deliberately conservative: a veto costs one upstream call, a false hit serves a wrong answer."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .wording import substitution

_NEGATIONS = frozenset({
    "not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor", "cannot", "cant", "dont",
    "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "shouldnt", "couldnt", "mustnt",
    "havent", "hasnt", "hadnt", "except", "excluding", "unless", "avoid", "prevent", "stop"})

# Each tuple is one opposition; a word maps to (pair index, side). Stems cover simple inflections.
_OPPOSITES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("enable", "turn on", "switch on", "activate"), ("disable", "turn off", "switch off", "deactivate")),
    (("add", "insert", "create", "append"), ("remove", "delete", "drop", "erase")),
    (("increase", "raise", "grow", "more", "higher", "larger", "bigger", "longer", "faster", "maximum", "max"),
     ("decrease", "lower", "reduce", "shrink", "less", "fewer", "smaller", "shorter", "slower", "minimum", "min")),
    (("allow", "permit", "grant", "whitelist", "allowlist"), ("deny", "block", "revoke", "forbid", "blacklist",
                                                              "denylist")),
    (("start", "begin", "launch", "open"), ("end", "finish", "close", "terminate", "shut down", "shutdown")),
    (("encrypt", "encode", "compress", "zip", "lock"), ("decrypt", "decode", "decompress", "unzip", "unlock")),
    (("upload", "import", "push", "send", "upgrade"), ("download", "export", "pull", "receive", "downgrade")),
    (("install", "subscribe", "sign up", "register", "log in", "login", "connect", "mount", "attach", "join"),
     ("uninstall", "unsubscribe", "cancel", "deregister", "unregister", "log out", "logout", "disconnect",
      "unmount", "detach", "leave")),
    (("before", "first", "earliest", "oldest", "past", "previous"), ("after", "last", "latest", "newest", "future",
                                                                     "next")),
    (("buy", "purchase", "borrow", "hire", "gain", "win", "profit"), ("sell", "refund", "lend", "fire", "lose",
                                                                       "loss")),
    (("true", "yes", "valid", "success", "pass", "accept", "include", "inside", "public", "online"),
     ("false", "invalid", "failure", "fail", "reject", "exclude", "outside", "private", "offline")),
    (("this month", "this week", "this year", "today", "current", "now"),
     ("next month", "next week", "next year", "last month", "last week", "last year", "tomorrow", "yesterday")),
    (("hot", "warm", "heat"), ("cold", "cool", "chill", "freeze")),
    (("best", "pros", "advantages", "benefits", "safe", "cheap", "cheapest"),
     ("worst", "cons", "disadvantages", "drawbacks", "dangerous", "expensive", "risks")),
    (("up", "above", "over", "north", "left", "top", "ascending"), ("down", "below", "under", "south", "right",
                                                                   "bottom", "descending")),
)
_NUMBER_WORDS = frozenset({
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "billion", "half", "double",
    "triple", "dozen", "first", "second", "third", "once", "twice"})
_NUMBER_WORDS_TO_DIGITS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                           "seven": "7", "eight": "8", "nine": "9", "ten": "10", "twelve": "12", "zero": "0"}
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"[\"'“‘`]([^\"'”’`]{1,80})[\"'”’`]")
_CODE = re.compile(r"\b[A-Za-z_][\w-]*(?:[._/:][\w-]+)+\b|\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z]\w*\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\s*[\"'(]*([A-Za-z][\w'’-]*)")
# Capitalised words that are not names: sentence-start words, pronouns, question words.
_COMMON_CAPS = frozenset({"i", "i'm", "i’ve", "i've", "i'd", "i'll", "what", "how", "why", "when", "where",
                          "which", "who", "can", "could", "should", "would", "is", "are", "do", "does", "please",
                          "the", "a", "an", "in", "on", "for", "to", "my", "our", "your", "give", "tell",
                          "explain", "show", "list", "write", "ok", "hi", "hello", "thanks"})


def _phrases() -> dict[str, tuple[int, int]]:
    table: dict[str, tuple[int, int]] = {}
    for index, sides in enumerate(_OPPOSITES):
        for side, words in enumerate(sides):
            for w in words:
                table[w] = (index, side)
    return table


_PHRASE_SIDE = _phrases()
_MULTI = sorted((p for p in _PHRASE_SIDE if " " in p), key=len, reverse=True)


@dataclass(frozen=True)
class Features:
    negated: bool
    sides: frozenset[tuple[int, int]]
    numbers: frozenset[str]
    entities: frozenset[str]


def _stem(word: str) -> str:
    for suffix, keep in (("ing", 3), ("ed", 3), ("es", 3), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            base = word[: -len(suffix)]
            for candidate in (base, base + "e"):
                if candidate in _PHRASE_SIDE:
                    return candidate
    return word


def features(text: str) -> Features:
    lowered = text.lower().replace("’", "'")
    words = [w.replace("'", "") for w in _WORD.findall(lowered)]
    negated = any(w in _NEGATIONS or w.endswith("nt") and w[:-2] + "n't" in lowered for w in words)
    sides: set[tuple[int, int]] = set()
    rest = " " + " ".join(words) + " "
    for phrase in _MULTI:
        if f" {phrase} " in rest:
            sides.add(_PHRASE_SIDE[phrase])
            rest = rest.replace(f" {phrase} ", " ")
    for w in rest.split():
        stem = _stem(w)
        if stem in _PHRASE_SIDE:
            sides.add(_PHRASE_SIDE[stem])
    numbers = {n.replace(",", "") for n in _NUMBER.findall(text)}
    numbers |= {_NUMBER_WORDS_TO_DIGITS.get(w, w) for w in words if w in _NUMBER_WORDS}
    return Features(negated, frozenset(sides), frozenset(numbers), frozenset(_entities(text)))


def _entities(text: str) -> set[str]:
    found = {q.strip().lower() for q in _QUOTED.findall(text)}
    found |= {c.lower() for c in _CODE.findall(text)}
    starts = {m.group(1) for m in _SENTENCE_START.finditer(text)}
    for raw in re.findall(r"\b[A-Za-z][\w+#-]*", text):
        if raw.lower() in _COMMON_CAPS or raw in starts and not raw[1:].isupper():
            continue
        if raw[0].isupper() or (len(raw) > 1 and raw.isupper()):
            found.add(raw.lower())
    return found


def veto_reason(a: str, b: str) -> str | None:
    """Why the cached prompt `a` must not answer `b`; None when nothing contradicts."""
    fa, fb = features(a), features(b)
    if fa.negated != fb.negated:
        return "negation"
    if _opposed(fa.sides, fb.sides):
        return "opposite_action"
    if fa.numbers != fb.numbers:
        return "numbers"
    if fa.entities != fb.entities:
        return "entities"
    return substitution(a, b)


def _opposed(a: frozenset[tuple[int, int]], b: frozenset[tuple[int, int]]) -> bool:
    # Both prompts mention the same opposition, on different sides. (A side mentioned by one prompt only is
    # left to the substitution check: "last" in "how long does it last" is no time reference.)
    pairs = {i for i, _ in a} & {i for i, _ in b}
    return any({s for i, s in a if i == p} != {s for i, s in b if i == p} for p in pairs)
