"""PII and secret detectors: precompiled patterns (our own, linear-time) plus a checksum where the identifier has one,
so "a number that looks like a card" is not redacted unless it passes Luhn, an IBAN unless it passes mod-97, ..."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .matches import Match


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(raw: str) -> bool:
    s = raw.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni_ok(raw: str) -> bool:
    s = raw.replace("-", "").upper()
    body = s[:-1]
    if body[0] in "XYZ":  # NIE: the prefix letter stands for a digit
        body = str("XYZ".index(body[0])) + body[1:]
    return body.isdigit() and _DNI_LETTERS[int(body) % 23] == s[-1]


# Verhoeff tables (Aadhaar's check digit)
_VD = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
       [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
       [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
       [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_VP = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
       [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
       [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def verhoeff(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VD[c][_VP[i % 8][ord(ch) - 48]]
    return c == 0


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _card(s: str) -> bool:
    d = _digits(s)
    return 13 <= len(d) <= 19 and luhn(d)


_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")


def _phone(s: str) -> bool:
    # International form: 8-15 digits (E.164). Otherwise at least 10, so order numbers and dates are not phones.
    n = len(_digits(s))
    return (8 <= n <= 15) if s.startswith("+") else (10 <= n <= 15 and not _DATE.fullmatch(s))


def _ipv6(s: str) -> bool:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return sum(ch not in ":" for ch in s) >= 3  # not "::" or "::1"-like fragments of text


def _uk_nino(s: str) -> bool:
    return s[:2].upper() not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    max_len: int = 64  # the longest match it can make: how much text a stream must hold back for it
    # Substrings of which at least one must occur for a match to be possible: a C-speed `in` test that skips the
    # regex scan (Python's re tries every position of the text for patterns without a literal prefix).
    hints: tuple[str, ...] = ()
    anchor: str | None = None  # a character every match contains (within `max_len`): scan only around each one

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        if self.anchor is None:
            yield from self.pattern.finditer(text)
            return
        done, at = 0, text.find(self.anchor)
        while at != -1:
            m = self.pattern.search(text, max(done, at - self.max_len), at + self.max_len)
            if m is not None and m.start() <= at:
                yield m
                done = m.end()
            at = text.find(self.anchor, max(at + 1, done))


_DIGIT_PAIRS = ("\0digit-pair",)  # special hint: two adjacent digits somewhere (one scan shared by 8 detectors)
_DIGITS = tuple("0123456789")
_PAIR = re.compile(r"\d\d")


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
DETECTORS: dict[str, Detector] = {d.kind: d for d in (
    Detector("email", re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
                                 r"\.[A-Za-z]{2,24}\b"), max_len=254,
             hints=("@",), anchor="@"),
    Detector("credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])"), _card, 40, _DIGIT_PAIRS),
    Detector("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok, 42, _DIGIT_PAIRS),
    Detector("us_ssn", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"), max_len=11, hints=("-",)),
    Detector("uk_nino", re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
             _uk_nino, 13, _DIGIT_PAIRS),
    Detector("es_dni", re.compile(r"\b(?:\d{8}|[XYZ]\d{7})-?[A-Z]\b"), es_dni_ok, 10, _DIGIT_PAIRS),
    Detector("in_aadhaar", re.compile(r"\b[2-9]\d{3} ?\d{4} ?\d{4}\b"), lambda s: verhoeff(_digits(s)), 14, _DIGIT_PAIRS),
    Detector("phone", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}"
                                 r"(?![\w])|\+\d{8,15}\b"), _phone, 24, _DIGIT_PAIRS),
    Detector("ipv4", re.compile(rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b"), max_len=15, hints=tuple(f"{d}." for d in _DIGITS)),
    Detector("ipv6", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"), _ipv6, 39, (":",)),
    Detector("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), max_len=20,
             hints=("AKIA", "ASIA", "ABIA", "ACCA")),
    Detector("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"),
             max_len=93, hints=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    Detector("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}"), max_len=210, hints=("sk-",)),
    Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{4,2000}\.eyJ[A-Za-z0-9_-]{4,8000}\.[A-Za-z0-9_-]{8,2000}"),
             max_len=256, hints=("eyJ",)),
    # The block if whole; the header alone still fires (a stream holds back a bounded window, not a whole key).
    Detector("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----(?:[A-Za-z0-9+/=:,\s-]"
                                       r"{0,12000}?-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----)?"), max_len=64,
             hints=("-----BEGIN",)),
)}
# Checked in this order so the more specific id wins an overlap (a card number is not reported as a phone).
ORDER = ("private_key", "jwt", "github_token", "aws_access_key", "openai_key", "email", "iban", "credit_card",
         "us_ssn", "uk_nino", "es_dni", "in_aadhaar", "ipv6", "ipv4", "phone")


_REACH = 48  # ≥ the longest match of a digit-pair detector (max_len ≤ 42): a match around a pair lies inside


def _digit_windows(text: str) -> list[tuple[int, int]]:
    """Every match of the digit-based detectors contains two adjacent digits: one scan finds them all, and those
    detectors then run only on the merged windows around them (prose without numbers costs one scan)."""
    out: list[tuple[int, int]] = []
    for m in _PAIR.finditer(text):
        start, end = max(0, m.start() - _REACH), min(len(text), m.end() + _REACH)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def find_pii(text: str, kinds: frozenset[str]) -> list[Match]:
    out: list[Match] = []
    taken: list[tuple[int, int]] = []
    windows: list[tuple[int, int]] | None = None
    for kind in ORDER:
        if kind not in kinds:
            continue
        d = DETECTORS[kind]
        if d.hints is _DIGIT_PAIRS:
            if windows is None:
                windows = _digit_windows(text)
            found: Iterator[re.Match[str]] = (m for ws, we in windows for m in d.pattern.finditer(text, ws, we))
        elif d.hints and not any(h in text for h in d.hints):
            continue
        else:
            found = d.finditer(text)
        for m in found:
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            if d.valid is None or d.valid(m.group()):
                out.append(Match(s, e, kind))
                taken.append((s, e))
    return out
