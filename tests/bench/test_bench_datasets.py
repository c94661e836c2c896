"""Datasets: seeded, exact synthetic counts, ShareGPT and JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.bench import datasets
from labkit.bench.endpoint import Endpoint, build_request, request_body
from labkit.errors import ConfigError


def simulator_rule(text: str) -> int:
    """The embedded simulator's token rule: ceil(len/4) per whitespace-separated piece."""
    return sum((len(p) + 3) // 4 for p in text.split())


def test_synthetic_prompts_have_exact_token_counts_by_the_stated_rule() -> None:
    data = datasets.synthetic(20, input_tokens=(5, 300), output_tokens=(1, 64), seed=4)
    for p in data.prompts:
        words = p.text.split()
        assert len(words) == p.input_tokens
        assert all(w in datasets.WORDS or w in datasets.FIRST_WORDS for w in words)
        assert simulator_rule(p.text) == p.input_tokens  # one token per word under the simulator's rule too
        assert 1 <= p.output_tokens <= 64
    assert all(len(w) <= 4 and w.isascii() and w.islower() for w in datasets.WORDS)


def test_synthetic_is_deterministic_per_seed() -> None:
    a = datasets.synthetic(10, input_tokens=50, output_tokens=8, seed=1)
    assert a.prompts == datasets.synthetic(10, input_tokens=50, output_tokens=8, seed=1).prompts
    assert a.prompts != datasets.synthetic(10, input_tokens=50, output_tokens=8, seed=2).prompts
    assert len({p.text for p in a.prompts}) == 10


def test_exact_output_counts_are_requested_from_a_vllm_server() -> None:
    prompt = datasets.synthetic(1, input_tokens=3, output_tokens=17, seed=0).prompts[0]
    body = request_body(Endpoint("http://h:1", "m"), prompt)
    assert (body["max_tokens"], body["min_tokens"], body["ignore_eos"]) == (17, 17, True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    plain = request_body(Endpoint("http://h:1", "m", backend="openai"), prompt)
    assert "ignore_eos" not in plain
    assert "min_tokens" not in plain
    assert plain["max_tokens"] == 17


def test_requests_are_prebuilt_http_with_the_request_id() -> None:
    prompt = datasets.synthetic(1, input_tokens=3, output_tokens=2, seed=0).prompts[0]
    raw = build_request(Endpoint("http://127.0.0.1:8000/v1", "m", api_key="secret"), prompt, "run-7")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nX-Request-ID: run-7" in head
    assert b"\r\nAuthorization: Bearer secret" in head
    assert b"Content-Length: %d" % len(body) in head
    assert json.loads(body)["messages"] == [{"role": "user", "content": prompt.text}]


def test_take_cycles_and_load_specs(tmp_path: Path) -> None:
    data = datasets.synthetic(3, input_tokens=4, output_tokens=2, seed=0)
    taken = data.take(7)
    assert len(taken) == 7
    assert taken.prompts[3] == data.prompts[0]
    assert len(datasets.load("synthetic", count=5, input_tokens=9, output_tokens=3)) == 5
    with pytest.raises(ConfigError, match="unknown dataset"):
        datasets.load("random", count=1)


def test_sharegpt_file(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "conversations": [{"from": "human", "value": "Tell me a long story " * 4},
                                      {"from": "gpt", "value": "Once upon a time " * 10}]},
        {"id": "b", "conversations": [{"from": "human", "value": "hi"}]},  # one turn: skipped
        {"id": "c", "conversations": [{"from": "human", "value": "Explain the moon " * 5},
                                      {"from": "gpt", "value": "The moon is a rock " * 8}]},
    ]  # fmt: skip
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(rows))
    data = datasets.sharegpt(path, seed=0)
    assert {p.id for p in data.prompts} == {"a", "c"}
    assert data.prompts == datasets.sharegpt(path, seed=0).prompts
    a = next(p for p in data.prompts if p.id == "a")
    assert a.output_tokens == datasets.estimate_tokens("Once upon a time " * 10)
    fixed = datasets.sharegpt(path, seed=0, output_tokens=32)
    assert {p.output_tokens for p in fixed.prompts} == {32}
    path.write_text("{}")
    with pytest.raises(ConfigError, match="expected a JSON list"):
        datasets.sharegpt(path)


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "one two three", "output_tokens": 5}\n\n'
        '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "id": "m"}\n'
    )
    data = datasets.jsonl(path)
    assert [p.output_tokens for p in data.prompts] == [5, None]
    assert data.prompts[0].input_tokens == 4  # estimated: one + two + thr|ee
    assert data.prompts[1].chat_messages()[0] == {"role": "system", "content": "be brief"}
    path.write_text('{"text": "no prompt"}\n')
    with pytest.raises(ConfigError, match="neither 'prompt' nor 'messages'"):
        datasets.jsonl(path)
