"""Parse and validate OpenAI-style requests the way vLLM does (pure functions, no I/O).

A request that vLLM would reject raises :class:`RequestError` carrying the HTTP
status, the OpenAI error ``type`` and a message in vLLM's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labkit.embedded.simulators.vllm import tokens


class RequestError(Exception):
    """A request vLLM would refuse.

    Attributes:
        status: HTTP status (400, 404 ...).
        message: the error message.
        type: the OpenAI error type (``BadRequestError``, ``NotFoundError``).
        param: the offending parameter, when there is one.
    """

    def __init__(self, message: str, *, status: int = 400, type: str = "BadRequestError", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param


@dataclass(frozen=True)
class ServerLimits:
    """What the server enforces on every request.

    Attributes:
        served_model_names: names the API answers to.
        max_model_len: context length.
        enable_auto_tool_choice: ``--enable-auto-tool-choice`` was given.
        tool_call_parser: ``--tool-call-parser`` value.
    """

    served_model_names: tuple[str, ...]
    max_model_len: int
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None


@dataclass(frozen=True)
class ParsedRequest:
    """A validated generation request.

    Attributes:
        chat: chat completions (``True``) or legacy completions.
        prompt_tokens: prompt length in tokens.
        max_tokens: the resolved output cap.
        requested_max_tokens: ``max_tokens`` as the client sent it (``None`` when absent).
        min_tokens: the model may not stop earlier (vLLM extension).
        ignore_eos: never stop before ``max_tokens`` (vLLM extension).
        seed: the request's sampling seed.
        stream: answer with server-sent events.
        include_usage: a final ``usage`` chunk (``stream_options.include_usage``).
        continuous_usage: ``usage`` in every chunk (``stream_options.continuous_usage_stats``).
        fingerprint: digest of the prompt, for deterministic output.
        tool: the function the model calls, if it calls one.
        named_tool: the call was forced by a named ``tool_choice`` (finish reason ``stop``).
    """

    chat: bool
    prompt_tokens: int
    max_tokens: int
    requested_max_tokens: int | None
    min_tokens: int
    ignore_eos: bool
    seed: int | None
    stream: bool
    include_usage: bool
    continuous_usage: bool
    fingerprint: bytes
    tool: dict[str, Any] | None = None
    named_tool: bool = False


def _int_field(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}", param=name)
    if minimum is not None and value < minimum:
        raise RequestError(f"{name} must be at least {minimum}, got {value}.", param=name)
    return value


def _check_model(body: dict[str, Any], limits: ServerLimits) -> None:
    model = body.get("model")
    if model is not None and model not in limits.served_model_names:
        raise RequestError(f"The model `{model}` does not exist.", status=404, type="NotFoundError", param="model")


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool, bool]:
    stream = bool(body.get("stream") or False)
    options = body.get("stream_options")
    if options is not None and not stream:
        raise RequestError("Stream options can only be defined when `stream=True`.", param="stream_options")
    if options is None:
        return stream, False, False
    if not isinstance(options, dict):
        raise RequestError("stream_options must be an object", param="stream_options")
    include_usage = bool(options.get("include_usage", True))
    continuous = stream and include_usage and bool(options.get("continuous_usage_stats") or False)
    return stream, include_usage, continuous


def _resolve_max_tokens(requested: int | None, prompt_tokens: int, limits: ServerLimits) -> int:
    room = limits.max_model_len - prompt_tokens
    if room <= 0:
        raise RequestError(
            f"This model's maximum context length is {limits.max_model_len} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
            param="messages",
        )
    if requested is None:
        return room
    if requested > room:
        raise RequestError(
            f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's maximum context "
            f"length is {limits.max_model_len} tokens and your request has {prompt_tokens} input tokens "
            f"({requested} > {limits.max_model_len} - {prompt_tokens}).",
            param="max_tokens",
        )
    return requested


def _common(
    body: dict[str, Any], prompt_tokens: int, limits: ServerLimits, *, default_max: int | None, max_names: Sequence[str]
) -> dict[str, Any]:
    n = _int_field(body, "n", minimum=1)
    if n not in (None, 1):
        raise RequestError("the vLLM simulator supports n=1 only", param="n")
    requested = None
    for name in max_names:
        requested = _int_field(body, name, minimum=1)
        if requested is not None:
            break
    if requested is None:
        requested = default_max
    max_tokens = _resolve_max_tokens(requested, prompt_tokens, limits)
    min_tokens = _int_field(body, "min_tokens", minimum=0) or 0
    if min_tokens > max_tokens:
        raise RequestError(
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}.", param="min_tokens"
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"seed must be an integer, got {seed!r}", param="seed")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or temperature < 0):
        raise RequestError(f"temperature must be non-negative, got {temperature!r}.", param="temperature")
    stream, include_usage, continuous = _stream_flags(body)
    return {
        "prompt_tokens": prompt_tokens,
        "max_tokens": max_tokens,
        "requested_max_tokens": requested,
        "min_tokens": min_tokens,
        "ignore_eos": bool(body.get("ignore_eos") or False),
        "seed": seed,
        "stream": stream,
        "include_usage": include_usage,
        "continuous_usage": continuous,
    }


def _choose_tool(body: dict[str, Any], limits: ServerLimits) -> tuple[dict[str, Any] | None, bool]:
    """The function the model calls (first tool for auto/required, the named one), and whether it was named."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none"):
            raise RequestError("When using `tool_choice`, `tools` must be set.", param="tool_choice")
        return None, False
    well_formed = isinstance(tools, list) and all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) for t in tools
    )
    if not well_formed:
        raise RequestError("tools must be a list of {'type': 'function', 'function': {...}} objects", param="tools")
    functions = [t["function"] for t in tools]
    if any("name" not in f for f in functions):
        raise RequestError("every tool function needs a 'name'", param="tools")
    if choice is None:
        choice = "auto"
    if choice == "none":
        return None, False
    if choice == "auto":
        if not (limits.enable_auto_tool_choice and limits.tool_call_parser):
            raise RequestError(
                '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
                param="tool_choice",
            )
        return functions[0], False
    if choice == "required":
        return functions[0], False
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        for function in functions:
            if function["name"] == name:
                return function, True
        raise RequestError(f"Tool '{name}' has not been passed in `tools`.", param="tool_choice")
    raise RequestError(f"Invalid value for `tool_choice`: {choice!r}.", param="tool_choice")


def parse_chat(body: Any, limits: ServerLimits) -> ParsedRequest:
    """Validate a ``/v1/chat/completions`` body."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _check_model(body, limits)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    tool, named = _choose_tool(body, limits)
    try:
        prompt_tokens = tokens.chat_prompt_tokens(messages, body.get("tools"))
    except ValueError as exc:
        raise RequestError(str(exc), param="messages") from exc
    common = _common(body, prompt_tokens, limits, default_max=None, max_names=("max_completion_tokens", "max_tokens"))
    fingerprint = tokens.prompt_fingerprint([messages, body.get("tools")])
    return ParsedRequest(chat=True, fingerprint=fingerprint, tool=tool, named_tool=named, **common)


def parse_completion(body: Any, limits: ServerLimits) -> ParsedRequest:
    """Validate a ``/v1/completions`` body (one prompt: a string or a list of token ids)."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _check_model(body, limits)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(t, list) for t in prompt):
        raise RequestError("the vLLM simulator serves one prompt per request", param="prompt")
    if isinstance(prompt, list) and all(isinstance(t, str) for t in prompt) and prompt:
        raise RequestError("the vLLM simulator serves one prompt per request", param="prompt")
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
            raise RequestError("prompt must be a string or a non-empty list of token ids", param="prompt")
    elif not isinstance(prompt, str):
        raise RequestError("prompt must be a string or a list of token ids", param="prompt")
    if body.get("suffix") is not None:
        raise RequestError("suffix is not currently supported", param="suffix")
    prompt_tokens = tokens.completion_prompt_tokens(prompt)
    common = _common(body, prompt_tokens, limits, default_max=16, max_names=("max_tokens",))
    return ParsedRequest(chat=False, fingerprint=tokens.prompt_fingerprint(prompt), **common)
