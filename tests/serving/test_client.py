"""The labs' OpenAI-compatible client helpers, against the embedded vLLM simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from labkit.embedded.simulators.vllm import serve
from labkit.errors import ApiError, Unreachable
from labkit.serving import client

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port, stop = serve(MODEL, "L4", fast=True, ttft_ms=20, itl_ms=2, max_model_len=8192)
    yield f"http://127.0.0.1:{port}"
    stop()


def test_list_models(url: str) -> None:
    assert client.list_models(url) == [MODEL]


def test_chat_returns_text_and_exact_usage(url: str) -> None:
    result = client.chat(url, MODEL, "Say hello", max_tokens=12, extra_body={"ignore_eos": True})
    assert result.completion_tokens == 12
    assert result.prompt_tokens > 0
    assert result.text
    assert result.finish_reason == "length"


def test_stream_yields_deltas_then_a_timed_result(url: str) -> None:
    parts = list(client.stream_chat(url, MODEL, "Count to ten", max_tokens=16, extra_body={"ignore_eos": True}))
    *deltas, result = parts
    assert all(isinstance(d, str) and d for d in deltas)
    assert isinstance(result, client.ChatResult)
    assert result.text == "".join(deltas)
    assert result.completion_tokens == 16
    assert result.ttft_s is not None
    assert result.ttft_s >= 0.015  # the simulator's 20 ms TTFT, measured at the first non-empty chunk
    assert result.tpot_s is not None
    assert result.tpot_s > 0


def test_unknown_model_names_the_fix(url: str) -> None:
    with pytest.raises(ApiError) as info:
        client.chat(url, "no-such-model", "hi")
    assert info.value.status == 404
    assert "list_models()" in (info.value.fix or "")


def test_unreachable_server_says_what_to_check() -> None:
    with pytest.raises(Unreachable, match="cannot reach the model server"):
        client.list_models("http://127.0.0.1:9")
