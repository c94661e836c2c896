"""The OpenAI wire format as vLLM writes it: response bodies and server-sent events.

Streamed events are built from byte templates made once per request (id, created,
model) with only the changing fields spliced in, so an event costs a few byte
concatenations and no ``json.dumps``. Shapes follow vLLM's serving code:

- chat: a first chunk whose delta is ``{"role": "assistant", "content": ""}``, then
  ``{"content": ...}`` deltas; the chunk with the last token carries ``finish_reason``
  and ``stop_reason``; with ``stream_options.include_usage`` a last chunk with empty
  ``choices`` and ``usage``; then ``data: [DONE]``.
- completions: ``text_completion`` chunks with ``text``, the same ending.

With ``stamp`` every JSON event gets a top-level ``"sim_sent_ns"``: ``time.monotonic_ns()``
taken as the event is built, just before its single transport write (CLOCK_MONOTONIC is
system-wide on Linux, so a client in another process can compute receive delays).
"""

from __future__ import annotations

import json
import time
from typing import Any

from labkit.embedded.simulators.vllm.tokens import VOCABULARY, Generation, ToolCallPlan

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

# JSON string bodies (without quotes) of every vocabulary word, bare and with a leading space.
_WORD = [w.encode() for w in VOCABULARY]
_SPACED_WORD = [b" " + w for w in _WORD]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def content_json(gen: Generation, start: int, end: int) -> bytes:
    """The JSON string of tokens ``[start, end)`` (vocabulary words need no escaping)."""
    words = gen.words
    if end - start == 1:
        return b'"' + (_SPACED_WORD[words[start]] if start else _WORD[words[start]]) + b'"'
    parts = [_SPACED_WORD[words[i]] if i else _WORD[words[i]] for i in range(start, end)]
    return b'"' + b"".join(parts) + b'"'


def error_body(message: str, *, status: int = 400, type: str = "BadRequestError", param: str | None = None) -> dict:
    """vLLM's error response."""
    return {"error": {"message": message, "type": type, "param": param, "code": status}}


def models_body(names: tuple[str, ...], root: str, max_model_len: int, created: int) -> dict:
    """``GET /v1/models``: one card per served name."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": root,
                "parent": None,
                "max_model_len": max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{i:032x}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for i, name in enumerate(names)
        ],
    }


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict:
    """The ``usage`` object of a non-streamed response."""
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


def tool_call_body(call: ToolCallPlan) -> dict:
    """One complete tool call as a message carries it."""
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def chat_body(*, response_id: str, created: int, model: str, gen: Generation, prompt_tokens: int) -> dict:
    """A non-streamed ``chat.completion``."""
    tool_calls: list[dict] = []
    content: str | None
    if gen.tool_call is not None and gen.finish_reason != "length":
        content = None
        tool_calls = [tool_call_body(gen.tool_call)]
    elif gen.tool_call is not None:  # cut off mid-call: the parser finds no complete call
        content = "".join(gen.tool_call.argument_pieces[: max(0, gen.tokens - 1)])
    else:
        content = gen.text()
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": None,
                    "audio": None,
                    "function_call": None,
                    "tool_calls": tool_calls,
                    "reasoning_content": None,
                },
                "logprobs": None,
                "finish_reason": gen.finish_reason,
                "stop_reason": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_body(prompt_tokens, gen.tokens),
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }


def completion_body(*, response_id: str, created: int, model: str, gen: Generation, prompt_tokens: int) -> dict:
    """A non-streamed ``text_completion``."""
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": gen.text(),
                "logprobs": None,
                "finish_reason": gen.finish_reason,
                "stop_reason": None,
                "prompt_logprobs": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_body(prompt_tokens, gen.tokens),
        "kv_transfer_params": None,
    }


_OPEN_TAIL = b',"logprobs":null,"finish_reason":null}]'
_END = b"}\n\n"
STAMP_KEY = b',"sim_sent_ns":'
STAMPED_END_LEN = len(STAMP_KEY) + len(_END)
# One not-first token's chunk body and open tail, per vocabulary word, for chat and completions.
_CHAT_TOKEN = [b'{"content":"' + w + b'"}' + _OPEN_TAIL for w in _SPACED_WORD]
_TEXT_TOKEN = [b'"' + w + b'"' + _OPEN_TAIL for w in _SPACED_WORD]


class StreamEncoder:
    """Byte templates for the events of one streamed response.

    Args:
        chat: chat completion chunks (else text completion chunks).
        response_id: ``chatcmpl-...`` or ``cmpl-...``.
        created: Unix seconds of the response.
        model_json: the served model name, JSON-encoded once per server.
        prompt_tokens: for ``usage``.
        stamp: add ``"sim_sent_ns"`` to every JSON event.
        continuous_usage: add ``usage`` to every chunk.
    """

    __slots__ = ("chat", "continuous_usage", "head", "prompt_tokens", "stamp", "usage_head")

    def __init__(
        self,
        *,
        chat: bool,
        response_id: str,
        created: int,
        model_json: bytes,
        prompt_tokens: int,
        stamp: bool = False,
        continuous_usage: bool = False,
    ) -> None:
        kind = b"chat.completion.chunk" if chat else b"text_completion"
        prefix = (
            b'data: {"id":'
            + _dumps(response_id)
            + b',"object":"'
            + kind
            + b'","created":'
            + str(created).encode()
            + b',"model":'
            + model_json
        )
        self.chat = chat
        self.head = prefix + (b',"choices":[{"index":0,"delta":' if chat else b',"choices":[{"index":0,"text":')
        self.usage_head = prefix + b',"choices":[],"usage":'
        self.prompt_tokens = prompt_tokens
        self.stamp = stamp
        self.continuous_usage = continuous_usage

    def _end(self, completion_tokens: int) -> bytes:
        usage = b""
        if self.continuous_usage:
            p = self.prompt_tokens
            usage = b',"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}' % (
                p,
                p + completion_tokens,
                completion_tokens,
            )
        if self.stamp:
            return usage + STAMP_KEY + str(time.monotonic_ns()).encode() + _END
        return usage + _END

    @staticmethod
    def _tail(finish_reason: str | None) -> bytes:
        if finish_reason is None:
            return _OPEN_TAIL
        return b',"logprobs":null,"finish_reason":"' + finish_reason.encode() + b'","stop_reason":null}]'

    def role(self) -> bytes:
        """The chat stream's first chunk: the assistant role and empty content."""
        return self.head + b'{"role":"assistant","content":""}' + _OPEN_TAIL + self._end(0)

    def text(self, text_json: bytes, completion_tokens: int, finish_reason: str | None = None) -> bytes:
        """A content chunk; ``text_json`` is a JSON string (see :func:`content_json`)."""
        return self.text_open(text_json, finish_reason) + self._end(completion_tokens)

    def text_open(self, text_json: bytes, finish_reason: str | None = None) -> bytes:
        """A content chunk up to (not including) its closing ``}`` and stamp: the hot path splices the rest."""
        body = b'{"content":' + text_json + b"}" if self.chat else text_json
        return self.head + body + self._tail(finish_reason)

    def single_token_opens(self, gen: Generation) -> list[bytes]:
        """Open events (see :meth:`text_open`) for content tokens 1 .. n-1, one token each (the hot path)."""
        words, head = gen.words, self.head
        fragments = _CHAT_TOKEN if self.chat else _TEXT_TOKEN
        opens = [head + fragments[w] for w in words[1:-1]]
        if gen.tokens > 1:
            opens.append(self.text_open(content_json(gen, gen.tokens - 1, gen.tokens), gen.finish_reason))
        return opens

    def finish(self, finish_reason: str, completion_tokens: int) -> bytes:
        """A chunk with no new content that only ends the choice."""
        body = b"{}" if self.chat else b'""'
        return self.head + body + self._tail(finish_reason) + self._end(completion_tokens)

    def tool_header(self, call: ToolCallPlan, completion_tokens: int) -> bytes:
        """The tool call's first delta: id, type and function name."""
        delta = {
            "tool_calls": [
                {"id": call.call_id, "type": "function", "index": 0, "function": {"name": call.name, "arguments": ""}}
            ]
        }
        return self.head + _dumps(delta) + _OPEN_TAIL + self._end(completion_tokens)

    def tool_arguments(self, piece: str, completion_tokens: int) -> bytes:
        """A delta of the tool call's arguments."""
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        return self.head + _dumps(delta) + _OPEN_TAIL + self._end(completion_tokens)

    def usage(self, completion_tokens: int) -> bytes:
        """The final usage chunk (empty ``choices``)."""
        p = self.prompt_tokens
        usage = b'{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}' % (
            p,
            p + completion_tokens,
            completion_tokens,
        )
        if self.stamp:
            return self.usage_head + usage + STAMP_KEY + str(time.monotonic_ns()).encode() + _END
        return self.usage_head + usage + _END

    def events(self, gen: Generation, start: int, end: int, finished: bool) -> list[bytes]:
        """The events for output tokens ``[start, end)``; ``finished`` marks the last batch.

        The chat role chunk comes first when ``start == 0``; the finish reason rides on the
        last content chunk (a separate empty chunk for tool calls, as vLLM sends it).
        """
        out: list[bytes] = []
        if self.chat and start == 0 and end > 0:
            out.append(self.role())
        reason = gen.finish_reason if finished else None
        call = gen.tool_call
        if call is None:
            if end > start:
                out.append(self.text(content_json(gen, start, end), end, reason))
            elif reason is not None:
                out.append(self.finish(reason, end))
            return out
        if start == 0 and end > 0:
            out.append(self.tool_header(call, end))
        pieces = call.argument_pieces
        first, last = max(start, 1), min(end, 1 + len(pieces))
        if last > first:
            out.append(self.tool_arguments("".join(pieces[first - 1 : last - 1]), end))
        if reason is not None:
            out.append(self.finish(reason, end))
        return out
