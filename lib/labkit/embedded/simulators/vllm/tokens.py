"""A tokenizer-free, deterministic token model.

No real tokenizer is loaded; instead these rules, stable across runs and machines:

- Text tokens: text is split on whitespace and each piece counts ``ceil(len/4)`` tokens
  (about four characters per token, as for English with a BPE tokenizer). Empty text is
  zero tokens.
- Completions prompts: a string counts its text tokens plus one beginning-of-sequence
  token; a list of token ids counts its length exactly.
- Chat prompts follow a Llama-3-like template: one BOS token, then per message four
  template tokens plus its content, plus four tokens for the assistant header
  (``add_generation_prompt``); ``tools`` add the text tokens of their JSON.
- Generated text: every output token is one word of at most four letters from a fixed
  vocabulary (so ``usage.completion_tokens`` equals the number of words, and the output
  re-counts to the same number of tokens when sent back as a prompt). Words come from a
  hash stream of the server seed, the request's ``seed`` and the prompt, so the same
  request gets the same answer whatever else the server is doing.
- Natural end of sequence: the simulated model stops after a log-normal number of tokens
  (median 300, so ``max_tokens`` up to a few dozen is nearly always reached), never before
  ``min_tokens``; ``ignore_eos`` removes the natural stop.
- Tool calls: one call of a chosen function with arguments built from its JSON schema;
  it costs two tokens (call open with the name, call close) plus one per four characters
  of the arguments' JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BOS_TOKENS = 1
MESSAGE_TEMPLATE_TOKENS = 4
GENERATION_PROMPT_TOKENS = 4
NATURAL_LENGTH_MEDIAN = 300.0
NATURAL_LENGTH_SIGMA = 0.6
TOOL_CALL_OVERHEAD_TOKENS = 2
TOOL_ARGUMENT_CHARS_PER_TOKEN = 4

# 128 short English words (at most four letters): each is exactly one token under the counting rule,
# and one byte of the request's hash stream picks one without bias.
VOCABULARY: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are", "as", "with", "his",
    "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all",
    "were", "we", "when", "your", "can", "said", "use", "an", "each", "she", "do", "how", "if", "will", "up", "out",
    "many", "then", "them", "so", "some", "her", "make", "like", "him", "into", "time", "has", "look", "two", "more",
    "go", "see", "no", "way", "my", "than", "been", "call", "who", "its", "now", "find", "long", "down", "day",
    "did", "get", "come", "made", "may", "part", "over", "new", "take", "only", "work", "know", "year", "live", "me",
    "back", "give", "most", "very", "our", "just", "name", "good", "man", "say", "line", "turn", "much", "mean",
    "move", "boy", "old", "too", "same", "tell", "does", "set", "why", "ask", "went", "men", "read", "need", "land",
    "home", "us", "hand", "big", "high", "such",
)  # fmt: skip


def text_tokens(text: str) -> int:
    """Count the tokens of ``text`` (``ceil(len/4)`` per whitespace-separated piece)."""
    return sum((len(piece) + 3) // 4 for piece in text.split())


def completion_prompt_tokens(prompt: str | Sequence[int]) -> int:
    """Count a completions prompt: token ids exactly, text plus one BOS token."""
    if isinstance(prompt, str):
        return BOS_TOKENS + text_tokens(prompt)
    return len(prompt)


def _content_text(content: Any) -> str:
    """The text of a chat message's content (a string or a list of text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"content part of type {kind!r} is not supported: the simulated model is text-only")
            texts.append(str(part.get("text", "")))
        return " ".join(texts)
    raise ValueError("message content must be a string or a list of text parts")


def chat_prompt_tokens(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None) -> int:
    """Count a chat prompt rendered with the Llama-3-like template described in the module docstring."""
    total = BOS_TOKENS + GENERATION_PROMPT_TOKENS
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise ValueError("every message needs a 'role'")
        total += MESSAGE_TEMPLATE_TOKENS + text_tokens(_content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            total += TOOL_CALL_OVERHEAD_TOKENS + text_tokens(str(function.get("arguments", "")))
    if tools:
        total += text_tokens(json.dumps(tools, separators=(", ", ": ")))
    return total


def prompt_fingerprint(payload: Any) -> bytes:
    """A stable digest of a prompt (text, token ids or messages) for seeding generation."""
    if isinstance(payload, str):
        data = payload.encode()
    else:
        data = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(data, digest_size=16).digest()


def request_material(server_seed: int, request_seed: int | None, fingerprint: bytes) -> bytes:
    """The bytes every random choice of one request derives from: same seeds and prompt, same output."""
    return f"{server_seed}|{request_seed}|".encode() + fingerprint


def _natural_length(xof: Any) -> int:
    """A log-normal length from the first 8 bytes of the request's hash stream (Box-Muller)."""
    head = xof.digest(8)
    u1 = (int.from_bytes(head[:4], "big") + 1) / 2**32
    u2 = int.from_bytes(head[4:], "big") / 2**32
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return max(1, int(math.exp(math.log(NATURAL_LENGTH_MEDIAN) + NATURAL_LENGTH_SIGMA * z)))


@dataclass(frozen=True)
class ToolCallPlan:
    """One deterministic tool call.

    Attributes:
        call_id: the tool call's id (``chatcmpl-tool-...``).
        name: the function's name.
        arguments: the arguments as a JSON string.
    """

    call_id: str
    name: str
    arguments: str

    @property
    def argument_pieces(self) -> list[str]:
        """The arguments split as they are streamed, one piece per token."""
        step = TOOL_ARGUMENT_CHARS_PER_TOKEN
        return [self.arguments[i : i + step] for i in range(0, len(self.arguments), step)]

    @property
    def tokens(self) -> int:
        """Output tokens of the complete call."""
        return TOOL_CALL_OVERHEAD_TOKENS + len(self.argument_pieces)


@dataclass(frozen=True)
class Generation:
    """What the simulated model will output for one request.

    Attributes:
        words: vocabulary indices of the content tokens (empty for a tool call).
        tokens: number of output tokens (``usage.completion_tokens``).
        finish_reason: ``stop``, ``length`` or ``tool_calls``.
        tool_call: the call when the model calls a tool.
    """

    words: tuple[int, ...]
    tokens: int
    finish_reason: str
    tool_call: ToolCallPlan | None = None

    def text(self, start: int = 0, end: int | None = None) -> str:
        """The content of tokens ``[start, end)``; token 0 has no leading space."""
        end = self.tokens if end is None else end
        return "".join((" " if i else "") + VOCABULARY[self.words[i]] for i in range(start, end))


def plan_generation(
    material: bytes,
    *,
    max_tokens: int,
    min_tokens: int = 0,
    ignore_eos: bool = False,
    tool: dict[str, Any] | None = None,
) -> Generation:
    """Decide a request's output: its words (or tool call), token count and finish reason.

    Every choice comes from one SHAKE-128 stream of ``material`` (see :func:`request_material`):
    bytes 0-7 draw the natural length, byte ``8 + i`` picks word ``i``. An extendable-output
    hash makes outputs prefix-stable: the same request with a larger ``max_tokens`` continues
    the same text.

    Args:
        material: the request's seed material.
        max_tokens: the most tokens the request allows (already resolved against the context).
        min_tokens: the model may not stop before this many tokens.
        ignore_eos: never stop before ``max_tokens``.
        tool: the function definition (``{"name", "parameters"}``) to call, if the model calls one.
    """
    max_tokens = max(0, max_tokens)
    xof = hashlib.shake_128(material)
    if tool is not None:
        rng = random.Random(xof.digest(16))
        call_id = f"chatcmpl-tool-{rng.getrandbits(128):032x}"
        arguments = json.dumps(example_arguments(tool.get("parameters") or {}, rng))
        call = ToolCallPlan(call_id=call_id, name=str(tool["name"]), arguments=arguments)
        if call.tokens <= max_tokens:
            return Generation(words=(), tokens=call.tokens, finish_reason="tool_calls", tool_call=call)
        return Generation(words=(), tokens=max_tokens, finish_reason="length", tool_call=call)
    natural = max(_natural_length(xof), min_tokens)
    if ignore_eos or natural > max_tokens:
        count, reason = max_tokens, "length"
    else:
        count, reason = natural, "stop"
    mask = len(VOCABULARY) - 1
    words = tuple(b & mask for b in xof.digest(8 + count)[8:])
    return Generation(words=words, tokens=count, finish_reason=reason)


def example_arguments(schema: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema: enums, types, nested objects."""
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        if depth > 4:
            return {}
        props = schema.get("properties") or {}
        return {name: example_arguments(sub or {}, rng, depth + 1) for name, sub in props.items()}
    if kind == "array":
        if depth > 4:
            return []
        return [example_arguments(schema.get("items") or {"type": "string"}, rng, depth + 1)]
    if kind == "string":
        return " ".join(rng.choice(VOCABULARY) for _ in range(2))
    if kind == "integer":
        return rng.randint(1, 10)
    if kind == "number":
        return round(rng.uniform(1, 10), 1)
    if kind == "boolean":
        return True
    return None
