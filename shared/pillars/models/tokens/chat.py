"""Walking OpenAI request bodies (chat messages, tools, embeddings input) to estimate their prompt tokens.

The per-message arithmetic is OpenAI's cookbook ("How to count tokens with tiktoken", num_tokens_from_messages),
which matches the API's `usage.prompt_tokens` exactly for plain messages on cl100k and o200k models:
3 tokens per message (<|start|>{role}…<|end|>), every string field of the message counted (role, content, name…),
+1 per `name`, +3 for the reply priming (<|start|>assistant<|message|>).
Everything the cookbook does not cover is counted so as to err on the high side (this feeds quota admission;
the upstream's real usage settles the difference):
- tool/function definitions, tool_choice, a json_schema response_format and assistant tool_calls: their compact
  JSON is counted (OpenAI renders definitions in a terser TypeScript-like form, so JSON is a bit more);
- images: a flat 85 tokens for detail "low", 765 for "high"/"auto"/unset — the cost of a 1024×1024 high-detail
  image on gpt-4o (85 base + 4 tiles × 170). Larger or oddly shaped images can cost more (up to 1445 on gpt-4o),
  and gpt-4o-mini bills images at ~33× those numbers: the reconciliation corrects both;
- input_audio: 1 token per 1000 bytes of decoded audio (OpenAI audio input runs ~10 tokens/s, so this is high
  for anything above ~80 kbit/s, i.e. wav/flac and ordinary mp3);
- files (PDF input): a flat 1000 tokens, a placeholder, since their cost depends on their pages.
The walker never raises on odd shapes: whatever is not the expected type is stringified and counted.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Count = Callable[[str], int]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOOLS_OVERHEAD = 12          # the cookbook's func_end: the wrapper OpenAI puts around the tool definitions
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765
AUDIO_BYTES_PER_TOKEN = 1000
FILE_PART_TOKENS = 1000


def as_text(value: Any) -> str:
    """A string to count for any JSON-ish value."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list | tuple):
        return to_json(value)
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a hostile __str__; nothing to count
        return ""


def to_json(value: Any) -> str:
    """Compact JSON (no spaces: closer to what the model sees than the default separators)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):  # circular or absurdly deep: count its scalar leaves instead
        return " ".join(_leaves(value))


def _leaves(value: Any, limit: int = 100_000) -> list[str]:
    out: list[str] = []
    stack = [value]
    while stack and len(out) < limit:  # iterative, so depth cannot overflow the interpreter stack
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            out.extend(k for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif item is not None:
            out.append(as_text(item))
    return out


def _b64_decoded_len(data: Any) -> int:
    if not isinstance(data, str):
        return 0
    if data.startswith("data:"):
        data = data.partition(",")[2]
    return len(data) * 3 // 4


def _image_tokens(part: dict[str, Any]) -> int:
    image = part.get("image_url")
    detail = part.get("detail")  # Responses-style {"type": "input_image", "detail": …}
    if isinstance(image, dict):
        detail = image.get("detail", detail)
    return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH


def _part_tokens(part: Any, count: Count) -> int:
    if not isinstance(part, dict):
        return count(as_text(part))
    kind = part.get("type")
    if kind in ("image_url", "input_image", "image"):
        return _image_tokens(part)
    if kind == "input_audio":
        audio = part.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        return -(-_b64_decoded_len(data) // AUDIO_BYTES_PER_TOKEN)
    if kind in ("file", "input_file"):
        return FILE_PART_TOKENS
    for key in ("text", "refusal"):  # {"type": "text", "text": …}, {"type": "refusal", "refusal": …}
        value = part.get(key)
        if isinstance(value, str):
            return count(value)
    return count(to_json(part))  # an unknown part type: its JSON, high rather than zero


def content_tokens(content: Any, count: Count) -> int:
    if isinstance(content, str):
        return count(content)
    if isinstance(content, list):
        return sum(_part_tokens(part, count) for part in content)
    if isinstance(content, dict):
        return _part_tokens(content, count)
    return count(as_text(content))


def message_tokens(message: Any, count: Count) -> int:
    if not isinstance(message, dict):
        return TOKENS_PER_MESSAGE + count(as_text(message))
    total = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content":
            total += content_tokens(value, count)
        elif isinstance(value, str):
            total += count(value)  # role, name, tool_call_id…: the cookbook counts every string field
            if key == "name":
                total += TOKENS_PER_NAME
        elif value is not None:
            total += count(to_json(value))  # tool_calls, function_call, audio refs…
    return total


def chat_prompt_tokens(body: Any, count: Count) -> int:
    if not isinstance(body, dict):
        return REPLY_PRIMING + count(as_text(body))
    total = REPLY_PRIMING
    messages = body.get("messages")
    if isinstance(messages, list):
        total += sum(message_tokens(m, count) for m in messages)
    elif messages is not None:
        total += message_tokens(messages, count)
    for key in ("tools", "functions"):
        definitions = body.get(key)
        if definitions:
            total += TOOLS_OVERHEAD + count(to_json(definitions))
    choice = body.get("tool_choice", body.get("function_call"))
    if isinstance(choice, dict):  # a forced function: its name goes into the prompt
        total += count(to_json(choice))
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        total += count(to_json(response_format.get("json_schema")))  # structured outputs inject the schema
    return total


def embeddings_input_tokens(body: Any, count: Count) -> int:
    """`input`: a string, a list of strings, a list of token ids, or a list of lists of token ids.

    Token ids are counted as given (one each); no per-item overhead, matching the embeddings API's usage.
    """
    value = body.get("input") if isinstance(body, dict) else body
    if isinstance(value, str):
        return count(value)
    if not isinstance(value, list):
        return 0 if value is None else count(as_text(value))
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count(item)
        elif isinstance(item, int):  # bool included: still one (bad) token id
            total += 1
        elif isinstance(item, list | tuple):
            total += len(item)
        elif item is not None:
            total += count(as_text(item))
    return total
