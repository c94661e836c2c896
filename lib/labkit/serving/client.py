"""OpenAI-compatible client helpers for the labs (vLLM, TGI, the embedded simulator).

A thin layer over the ``openai`` package, which participants will meet again in
Dify and agent labs: list models, chat and completions, and streaming with the
time to first token measured the way the benchmark defines it (first chunk
with non-empty content). Transport errors become the kit's error family.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import ApiError, ServerError, Unreachable

DEFAULT_TIMEOUT_S = 120.0


def client(base_url: str, *, api_key: str = "not-needed", timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """An ``openai.OpenAI`` client for a server at ``base_url`` (``http://host:port``, ``/v1`` added)."""
    import openai

    url = base_url.rstrip("/")
    return openai.OpenAI(
        base_url=url if url.endswith("/v1") else f"{url}/v1", api_key=api_key, timeout=timeout, max_retries=2
    )


def _mapped(exc: Exception, base_url: str) -> Exception:
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return Unreachable(
            f"cannot reach the model server at {base_url}: {exc}",
            "check the pods are Ready (kubectl get pods) and the URL from service_url()",
        )
    if isinstance(exc, openai.APIStatusError):
        what = f"the model server answered {exc.status_code}: {exc.message}"
        if exc.status_code == 404:
            return ApiError(
                what, "check the model name: list_models() shows what the server serves", status=404, reason="NotFound"
            )
        if exc.status_code >= 500 or exc.status_code == 429:
            return ServerError(
                what, "the server is overloaded or failing: check its logs and /metrics", status=exc.status_code
            )
        return ApiError(what, "check the request parameters", status=exc.status_code)
    return exc


def list_models(base_url: str) -> list[str]:
    """Names the server serves (what to pass as ``model``)."""
    try:
        return [m.id for m in client(base_url).models.list().data]
    except Exception as exc:
        raise _mapped(exc, base_url) from exc


@dataclass
class ChatResult:
    """One completed chat request with its timings (seconds) and token counts from ``usage``."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    e2e_s: float
    ttft_s: float | None = None
    chunks: int = 0
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (E2E - TTFT) / (output tokens - 1)."""
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.completion_tokens - 1)


def chat(
    base_url: str, model: str, messages: list[dict[str, Any]] | str, *, max_tokens: int = 128, **kwargs: Any
) -> ChatResult:
    """A non-streamed chat completion."""
    msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
    started = time.perf_counter()
    try:
        response = client(base_url).chat.completions.create(model=model, messages=msgs, max_tokens=max_tokens, **kwargs)
    except Exception as exc:
        raise _mapped(exc, base_url) from exc
    choice = response.choices[0]
    calls = [c.model_dump() for c in (choice.message.tool_calls or [])]
    usage = response.usage
    return ChatResult(
        text=choice.message.content or "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        e2e_s=time.perf_counter() - started,
        finish_reason=choice.finish_reason,
        tool_calls=calls,
    )


def stream_chat(
    base_url: str, model: str, messages: list[dict[str, Any]] | str, *, max_tokens: int = 128, **kwargs: Any
) -> Iterator[str | ChatResult]:
    """Stream a chat completion: yields text deltas as they arrive, then one :class:`ChatResult`."""
    msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
    started = time.perf_counter()
    ttft = None
    parts: list[str] = []
    chunks = 0
    usage = None
    finish = None
    try:
        stream = client(base_url).chat.completions.create(
            model=model,
            messages=msgs,
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs,
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text = choice.delta.content or ""
                if choice.finish_reason:
                    finish = choice.finish_reason
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    chunks += 1
                    parts.append(text)
                    yield text
    except Exception as exc:
        raise _mapped(exc, base_url) from exc
    yield ChatResult(
        text="".join(parts),
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        e2e_s=time.perf_counter() - started,
        ttft_s=ttft,
        chunks=chunks,
        finish_reason=finish,
    )
