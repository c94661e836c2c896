"""Where requests go and what they look like: the endpoint and the prebuilt HTTP/1.1 requests (pure).

Every request of a run is built here, before the run starts, as the exact bytes to write:
request line, headers (with a unique ``X-Request-ID`` so a run can be matched request by
request against the server's log) and the JSON body.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from labkit.bench.datasets import Prompt
from labkit.errors import ConfigError

APIS = ("chat", "completions")
BACKENDS = ("vllm", "openai")


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests and in which dialect.

    Attributes:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000`` (a ``/v1`` suffix is accepted).
        model: the model name to put in requests.
        api: ``chat`` (``/v1/chat/completions``) or ``completions`` (``/v1/completions``).
        backend: ``vllm`` adds vLLM's ``ignore_eos``/``min_tokens`` (exact output lengths) and
            ``continuous_usage_stats`` (tokens per chunk); ``openai`` sends only standard fields.
        api_key: sent as ``Authorization: Bearer``; never written into results.
        headers: extra request headers.
        extra_body: extra JSON fields merged into every request body.
    """

    url: str
    model: str
    api: str = "chat"
    backend: str = "vllm"
    api_key: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    extra_body: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"unknown api '{self.api}'", f"choose one of: {', '.join(APIS)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend '{self.backend}'", f"choose one of: {', '.join(BACKENDS)}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"'{self.url}' is not an http(s) URL", "use e.g. http://127.0.0.1:8000")

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def base_path(self) -> str:
        path = urlsplit(self.url).path.rstrip("/")
        return path[: -len("/v1")] if path.endswith("/v1") else path

    @property
    def path(self) -> str:
        """The request path of the chosen API."""
        return f"{self.base_path}/v1/{'chat/completions' if self.api == 'chat' else 'completions'}"

    def describe(self) -> dict[str, Any]:
        """What the result records about the endpoint (no API key)."""
        return {"url": self.url, "path": self.path, "model": self.model, "api": self.api, "backend": self.backend}


def request_body(endpoint: Endpoint, prompt: Prompt) -> dict[str, Any]:
    """The JSON body of one streamed request (pure)."""
    body: dict[str, Any] = {"model": endpoint.model, "stream": True, "stream_options": {"include_usage": True}}
    if endpoint.api == "chat":
        body["messages"] = prompt.chat_messages()
    else:
        body["prompt"] = prompt.text
    if prompt.output_tokens is not None:
        body["max_tokens"] = prompt.output_tokens
        if endpoint.backend == "vllm":
            body["min_tokens"] = prompt.output_tokens
            body["ignore_eos"] = True
    if endpoint.backend == "vllm":
        body["stream_options"]["continuous_usage_stats"] = True
    body.update(dict(endpoint.extra_body))
    return body


def build_request(endpoint: Endpoint, prompt: Prompt, request_id: str) -> bytes:
    """One complete HTTP/1.1 request, headers and body, ready for ``transport.write`` (pure)."""
    body = json.dumps(request_body(endpoint, prompt), separators=(",", ":")).encode()
    host = endpoint.host if endpoint.port in (80, 443) else f"{endpoint.host}:{endpoint.port}"
    lines = [
        f"POST {endpoint.path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        f"X-Request-ID: {request_id}",
        "User-Agent: labkit-bench",
    ]
    if endpoint.api_key:
        lines.append(f"Authorization: Bearer {endpoint.api_key}")
    lines.extend(f"{k}: {v}" for k, v in endpoint.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def new_request_ids(count: int, run_id: str | None = None) -> list[str]:
    """Request ids ``<run>-<index>``: unique per run, so a server log can be matched request by request."""
    run = run_id or uuid.uuid4().hex[:12]
    return [f"{run}-{i}" for i in range(count)]


def build_requests(endpoint: Endpoint, prompts: Sequence[Prompt], request_ids: Sequence[str]) -> list[bytes]:
    """Every request of a run, built before it starts."""
    return [build_request(endpoint, p, rid) for p, rid in zip(prompts, request_ids, strict=True)]
