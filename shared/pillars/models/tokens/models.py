"""Which BPE encoding an OpenAI model name uses (the subset of tiktoken's table that this gateway counts with).

Names are matched by prefix, as tiktoken's `encoding_for_model` does, so dated snapshots ("gpt-4o-2024-08-06"),
variants ("gpt-4o-mini", "gpt-4.1-nano") and fine-tunes ("ft:gpt-4o-mini:org::id") resolve too. Anything else —
including Azure deployment names, which are free text — is unknown (None): the caller can pass the deployment's
underlying model (or an encoding name) as `family`, and otherwise gets the byte-length estimate.
"""
from __future__ import annotations

import functools

O200K = "o200k_base"
CL100K = "cl100k_base"
ENCODING_NAMES = (O200K, CL100K)

# Order matters: "gpt-4o…" and "gpt-4.1…" must win over the older "gpt-4" family.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K),
    ("chatgpt-4o", O200K),
    ("gpt-4.1", O200K),
    ("gpt-4.5", O200K),
    ("gpt-5", O200K),
    # gpt-oss uses o200k_harmony: the same mergeable ranks plus chat special tokens, so text counts are identical.
    ("gpt-oss", O200K),
    ("gpt-4", CL100K),
    ("gpt-3.5", CL100K),
    ("gpt-35", CL100K),  # the Azure OpenAI spelling ("gpt-35-turbo")
    ("text-embedding-3", CL100K),
    ("text-embedding-ada-002", CL100K),
    ("davinci-002", CL100K),
    ("babbage-002", CL100K),
)
# The o-series: "o1", "o3-mini", "o4-mini-2025-04-16"… but not any name that merely starts with "o1".
_O_SERIES = ("o1", "o3", "o4")


def _normalise(name: str) -> str:
    name = name.strip().lower()
    if name.startswith("ft:"):  # "ft:<base model>:<org>:<suffix>:<id>"
        name = name[3:].split(":", 1)[0]
    # "openai/gpt-4o", "azure/gpt-4o": the model is the last path segment
    return name.rsplit("/", 1)[-1]


def encoding_name_for(model: object) -> str | None:
    """The encoding name for a model name (or an encoding name itself); None when unknown or not a string."""
    if not isinstance(model, str) or not model:
        return None
    return _encoding_name(model)


@functools.lru_cache(maxsize=1024)  # asked several times per call, for a few admin-registered names
def _encoding_name(model: str) -> str | None:
    name = _normalise(model)
    if name in ENCODING_NAMES:
        return name
    for prefix, encoding in _PREFIXES:
        if name.startswith(prefix):
            return encoding
    for series in _O_SERIES:
        if name == series or name.startswith(series + "-"):
            return O200K
    return None
