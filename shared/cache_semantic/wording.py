"""The substitution check of the false-hit veto: the content words of two prompts, aligned.

Embeddings rate "sort a dictionary by key" and "… by value" as near-identical (0.95): a question whose one slot
changed to a sibling concept. After removing function words and question scaffolding ("how can I", "what is the
way to", "the steps to") and folding known synonyms to one word, a genuine paraphrase mostly keeps its content
words; a near miss replaces one to three of them, or keeps them all in a different order (the arguments of
"convert X to Y"). Either vetoes the hit."""
from __future__ import annotations

import re
from difflib import SequenceMatcher

_STOP = frozenset("""
a an the and or of to in on at by for from with into onto about as is are was were be been being am do does did
done doing have has had having i me my mine we us our you your he she it its they them their this that these those
there here what which who whom whose when where why how can could should would will shall may might must
please tell explain show give let know want need like just also so if then than too very really much many
any some all each every way steps step process procedure possible able allowed okay ok idea good method
""".split())
# Phrases first (longest first), then single words: each folds to a canonical word.
_SYNONYMS = {
    "turn on": "enable", "switch on": "enable", "activate": "enable", "turn off": "disable",
    "switch off": "disable", "deactivate": "disable", "set up": "configure", "setup": "configure",
    "sign up for": "enroll", "sign up": "enroll", "register": "enroll", "generate": "create", "make": "create",
    "withdraw from": "drop", "stop getting": "unsubscribe", "opt out": "unsubscribe", "at most": "maximum",
    "max": "maximum", "largest": "maximum", "how large": "size", "big": "size", "large": "size",
    "main": "top", "sights": "attractions", "safely": "safe", "advantages": "benefits", "pros": "benefits",
    "good for": "benefits", "money back": "refund", "reimbursement": "refund", "valid for": "last",
    "keep": "last", "days": "long", "how long": "long", "how many days": "long", "annual leave": "vacation",
    "entitled to": "get", "permit": "allow", "raise": "increase", "higher": "increase", "reduce": "lower",
    "decrease": "lower", "discoverer": "discovered", "file": "submit", "fast": "speed", "far": "distance",
    "formula": "calculate", "calculated": "calculate", "calculation": "calculate", "yearly": "annual",
    "daily": "per day", "each night": "per night", "command": "run", "configure": "configure",
    "required": "need", "requirement": "need", "requirements": "need", "necessary": "need",
    "into": "to", "using": "use", "free of charge": "free", "change": "update", "modify": "update",
    "see": "check", "view": "check", "display": "check", "step away from": "leave", "step away": "leave",
    "status": "track", "where": "track", "replacement": "substitute", "instead of": "substitute",
    "every": "all", "one at a time": "by line", "line by line": "by line", "x^2": "x squared",
    "whats": "what", "what's": "what", "procedure": "process", "be admitted": "admission", "admitted": "admission",
    "apply": "application", "deadline to apply": "application deadline", "causes": "cause", "happen": "cause",
    "makes": "cause", "appear": "", "do": "", "cost per hour": "hourly cost", "per hour": "hourly",
}
_PHRASES = sorted(_SYNONYMS, key=len, reverse=True)
_WORD = re.compile(r"[a-z0-9^]+(?:[-'][a-z0-9]+)*")


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "ed", "ly", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> list[str]:
    folded = " " + " ".join(_WORD.findall(text.lower().replace("’", "'"))) + " "
    for phrase in _PHRASES:
        if f" {phrase} " in folded:
            folded = folded.replace(f" {phrase} ", f" {_SYNONYMS[phrase]} ")
    words = [w for w in folded.split() if w not in _STOP]
    return [_SYNONYMS.get(_stem(w), _stem(w)) or w for w in words]


_DIRECTED = re.compile(r"\b(\w+) (?:to|into|from|onto|vs|versus|than|over) (?:an? |the |my |our )?(\w+)")


def _directed(text: str) -> set[tuple[str, str]]:
    return {(_stem(x), _stem(y)) for x, y in _DIRECTED.findall(text.lower()) if x not in _STOP and y not in _STOP}


def substitution(a: str, b: str) -> str | None:
    da, db = _directed(a), _directed(b)
    if any((y, x) in db for x, y in da if x != y):
        return "reordered"
    wa, wb = content_words(a), content_words(b)
    for tag, i1, i2, j1, j2 in SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
        if tag == "replace" and i2 - i1 <= 3 and j2 - j1 <= 3:
            return "substituted"
    return None
