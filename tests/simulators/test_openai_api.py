"""The simulator speaks vLLM's OpenAI-compatible API, checked with the official ``openai`` client."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import openai
import pytest

from labkit.embedded.simulators.vllm import tokens

MODEL = "sim-model"  # what the start_sim fixture serves
MESSAGES = [{"role": "user", "content": "Tell me about continuous batching in two words"}]
# BOS + 4 template tokens + content (ceil(len/4) per word: 1+1+2+3+2+1+1+2) + 4 for the assistant header.
MESSAGES_TOKENS = 1 + 4 + 13 + 4
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_served_name(start_sim: Callable[..., str]) -> None:
    url = start_sim(model="org/Some-Model-8B", served_model_names=("my-model", "alias"))
    models = client(url).models.list()
    assert [m.id for m in models.data] == ["my-model", "alias"]
    card = models.data[0]
    assert card.owned_by == "vllm"
    assert card.model_extra["root"] == "org/Some-Model-8B"
    assert card.model_extra["max_model_len"] == 4096


def test_chat_non_stream_has_exact_usage(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, extra_body={"ignore_eos": True})
    choice = r.choices[0]
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "length"
    assert r.usage.completion_tokens == 12 == len(choice.message.content.split())
    assert r.usage.prompt_tokens == MESSAGES_TOKENS
    assert r.usage.total_tokens == MESSAGES_TOKENS + 12
    # The output counts back to the same number of tokens under the simulator's token model.
    assert tokens.text_tokens(choice.message.content) == 12


def test_max_completion_tokens_and_natural_stop(start_sim: Callable[..., str]) -> None:
    c = client(start_sim(time_scale=200))
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES, max_completion_tokens=5)
    assert r.usage.completion_tokens == 5
    # No max_tokens: the simulated model stops on its own (end of sequence) within the context.
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert r.choices[0].finish_reason == "stop"
    assert 0 < r.usage.completion_tokens < 4096 - MESSAGES_TOKENS
    # min_tokens holds the end of sequence back.
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4000, extra_body={"min_tokens": 3000})
    assert r.usage.completion_tokens >= 3000


def test_chat_stream_shapes_and_usage(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())
    stream = c.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant"
    assert first.delta.content == ""
    assert first.finish_reason is None
    content = [ch for ch in chunks[1:] if ch.choices]
    assert [ch.choices[0].finish_reason for ch in content] == [None] * (len(content) - 1) + ["length"]
    text = "".join(ch.choices[0].delta.content or "" for ch in content)
    assert len(text.split()) == 7
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (MESSAGES_TOKENS, 7)


def test_stream_without_include_usage_has_no_usage_chunk(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())
    chunks = list(c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, stream=True))
    assert all(ch.usage is None for ch in chunks)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_completions_non_stream_and_stream(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())
    ask = {"model": MODEL, "prompt": "The big red fox", "max_tokens": 6, "extra_body": {"ignore_eos": True}}
    r = c.completions.create(**ask)
    assert r.object == "text_completion"
    assert r.id.startswith("cmpl-")
    assert r.usage.prompt_tokens == 1 + 4  # BOS + four short words
    assert r.usage.completion_tokens == 6 == len(r.choices[0].text.split())
    chunks = list(c.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == r.choices[0].text
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 6
    assert chunks[-2].choices[0].finish_reason == "length"
    # A list of token ids counts exactly.
    r = c.completions.create(model=MODEL, prompt=list(range(100)), max_tokens=2)
    assert r.usage.prompt_tokens == 100


def test_x_request_id_is_echoed_and_names_the_response(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())
    raw = c.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=2, extra_headers={"X-Request-ID": "bench-42"}
    )
    assert raw.headers["x-request-id"] == "bench-42"
    assert raw.parse().id == "chatcmpl-bench-42"
    with c.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=2, stream=True, extra_headers={"X-Request-ID": "bench-43"}
    ) as resp:
        assert resp.headers["x-request-id"] == "bench-43"
        assert resp.headers["content-type"].startswith("text/event-stream")
    # Without one, the server makes one up and still returns it.
    raw = c.models.with_raw_response.list()
    assert len(raw.headers["x-request-id"]) == 32


def test_same_request_same_answer_and_seed_changes_it(start_sim: Callable[..., str]) -> None:
    a, b = client(start_sim(seed=7, time_scale=20)), client(start_sim(seed=7, time_scale=20))

    def ask(c: openai.OpenAI, **extra: object) -> str:
        r = c.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=20, extra_body={"ignore_eos": True}, **extra
        )
        return r.choices[0].message.content

    assert ask(a) == ask(a) == ask(b)
    assert ask(a, seed=1) != ask(a)
    longer = a.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=30, extra_body={"ignore_eos": True})
    assert longer.choices[0].message.content.startswith(ask(a))
    other_server = client(start_sim(seed=8, time_scale=20))
    assert ask(other_server) != ask(a)


def test_tool_call_non_stream(start_sim: Callable[..., str]) -> None:
    c = client(start_sim(enable_auto_tool_choice=True, tool_call_parser="llama3_json"))
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="auto")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("chatcmpl-tool-")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) == {"city", "unit", "days"}
    assert args["unit"] == "celsius"
    assert isinstance(args["days"], int)
    assert r.usage.completion_tokens == 2 + -(-len(call.function.arguments) // 4)


def test_tool_call_stream_accumulates_to_valid_json(start_sim: Callable[..., str]) -> None:
    c = client(start_sim(enable_auto_tool_choice=True, tool_call_parser="hermes"))
    stream = c.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}
    )
    name, arguments, finish = None, "", None
    for ch in stream:
        if not ch.choices:
            continue
        for call in ch.choices[0].delta.tool_calls or []:
            name = call.function.name or name
            arguments += call.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments)["unit"] == "celsius"
    assert finish == "tool_calls"


def test_named_and_required_tool_choice(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())  # no --enable-auto-tool-choice: named and required still work
    other = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}
    r = c.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "noop"}},
    )
    assert r.choices[0].message.tool_calls[0].function.name == "noop"
    assert r.choices[0].finish_reason == "stop"  # as OpenAI reports a named tool call
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="required")
    assert r.choices[0].finish_reason == "tool_calls"


def test_errors_are_vllms(start_sim: Callable[..., str]) -> None:
    c = client(start_sim())
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        c.chat.completions.create(model="other", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 4096"):
        c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5000)
    with pytest.raises(openai.BadRequestError, match="--enable-auto-tool-choice"):
        c.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="auto")
    with pytest.raises(openai.BadRequestError, match="n=1"):
        c.chat.completions.create(model=MODEL, messages=MESSAGES, n=2)
    with pytest.raises(openai.BadRequestError, match="stream=True"):
        c.chat.completions.create(model=MODEL, messages=MESSAGES, stream_options={"include_usage": True})
    with pytest.raises(openai.BadRequestError, match="at least 1"):
        c.completions.create(model=MODEL, prompt="x", max_tokens=0)


def test_error_body_shape(start_sim: Callable[..., str]) -> None:
    url = start_sim()
    request = urllib.request.Request(
        url + "/v1/chat/completions",
        data=json.dumps({"model": "nope", "messages": MESSAGES}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == 404
    assert json.loads(info.value.read()) == {
        "error": {"message": "The model `nope` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}
    }


def test_health_is_503_while_the_model_loads(start_sim: Callable[..., str]) -> None:
    url = start_sim(load_seconds=30, time_scale=100)  # 0.3 s of wall time
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url + "/health")
    assert info.value.code == 503
    with pytest.raises(openai.APIStatusError) as err:
        client(url).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)
    assert err.value.status_code == 503
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health") as resp:
                assert resp.status == 200
                break
        except urllib.error.HTTPError:
            time.sleep(0.02)
    for path in ("/ping", "/version"):
        with urllib.request.urlopen(url + path) as resp:
            assert resp.status == 200


def test_tokenize_agrees_with_usage(start_sim: Callable[..., str]) -> None:
    url = start_sim()
    request = urllib.request.Request(
        url + "/tokenize", data=json.dumps({"model": MODEL, "messages": MESSAGES}).encode(), method="POST"
    )
    with urllib.request.urlopen(request) as resp:
        assert json.loads(resp.read())["count"] == MESSAGES_TOKENS
