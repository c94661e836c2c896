"""The deterministic token model and the parsing of vLLM's command line."""

from __future__ import annotations

import json

import pytest

from labkit.embedded.simulators.vllm import tokens
from labkit.embedded.simulators.vllm.config import (
    config_from_vllm_args,
    expand_kube_vars,
    server_argv,
)
from labkit.errors import ConfigError


def test_text_and_prompt_token_counts() -> None:
    assert tokens.text_tokens("") == 0
    assert tokens.text_tokens("a bb ccc dddd") == 4
    assert tokens.text_tokens("abcde  abcdefghi") == 2 + 3
    assert tokens.completion_prompt_tokens("the big red fox") == 1 + 4
    assert tokens.completion_prompt_tokens([5, 6, 7]) == 3
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    assert tokens.chat_prompt_tokens(messages) == 1 + (4 + 1 + 2) + (4 + 1) + 4
    with pytest.raises(ValueError, match="text-only"):
        tokens.chat_prompt_tokens([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])


def test_generation_is_deterministic_and_prefix_stable() -> None:
    material = tokens.request_material(0, None, tokens.prompt_fingerprint("hello"))
    short = tokens.plan_generation(material, max_tokens=10, ignore_eos=True)
    long = tokens.plan_generation(material, max_tokens=50, ignore_eos=True)
    assert short.tokens == 10
    assert short.finish_reason == "length"
    assert long.words[:10] == short.words
    assert long.text().startswith(short.text())
    assert tokens.text_tokens(long.text()) == 50
    other = tokens.plan_generation(tokens.request_material(1, None, material[-16:]), max_tokens=10, ignore_eos=True)
    assert other.words != short.words


def test_natural_end_of_sequence_and_min_tokens() -> None:
    lengths = []
    for i in range(200):
        material = tokens.request_material(0, i, b"prompt")
        gen = tokens.plan_generation(material, max_tokens=100_000)
        assert gen.finish_reason == "stop"
        lengths.append(gen.tokens)
    lengths.sort()
    assert 200 < lengths[100] < 450  # median near 300
    held = tokens.plan_generation(tokens.request_material(0, 0, b"prompt"), max_tokens=5000, min_tokens=4000)
    assert held.tokens >= 4000


def test_tool_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "q": {"type": "string"},
            "n": {"type": "integer"},
            "ok": {"type": "boolean"},
            "mode": {"enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    gen = tokens.plan_generation(b"x", max_tokens=100, tool={"name": "search", "parameters": schema})
    assert gen.finish_reason == "tool_calls"
    assert gen.tool_call is not None
    args = json.loads(gen.tool_call.arguments)
    assert isinstance(args["q"], str) and isinstance(args["n"], int) and args["ok"] is True
    assert args["mode"] == "fast" and isinstance(args["tags"], list)
    assert gen.tokens == 2 + len(gen.tool_call.argument_pieces)
    cut = tokens.plan_generation(b"x", max_tokens=3, tool={"name": "search", "parameters": schema})
    assert (cut.tokens, cut.finish_reason) == (3, "length")


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ([], ["--model", "m", "--port", "8000"], ["--model", "m", "--port", "8000"]),
        ([], ["meta/m", "--max-model-len", "8k"], ["meta/m", "--max-model-len", "8k"]),
        (["vllm", "serve"], ["meta/m", "-tp", "2"], ["meta/m", "-tp", "2"]),
        (["python3", "-m", "vllm.entrypoints.openai.api_server"], ["--model", "m"], ["--model", "m"]),
        (["/bin/sh", "-c", "exec vllm serve 'meta/m' --seed 3"], [], ["meta/m", "--seed", "3"]),
    ],
)
def test_server_argv_finds_the_flags(command: list[str], args: list[str], expected: list[str]) -> None:
    assert server_argv(command, args) == expected


def test_config_from_vllm_flags() -> None:
    cfg = config_from_vllm_args(
        [
            "meta-llama/Llama-3.1-8B-Instruct",
            "--served-model-name",
            "llama",
            "llama-8b",
            "--max_model_len=32k",
            "--tensor-parallel-size",
            "2",
            "--gpu-memory-utilization",
            "0.85",
            "--enable-auto-tool-choice",
            "--tool-call-parser",
            "llama3_json",
            "--enforce-eager",
            "--max-num-seqs",
            "64",
        ],
        gpu="L40S",
    )
    assert cfg.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.served_model_names == ("llama", "llama-8b")
    assert cfg.served_model_name == "llama"
    assert (cfg.max_model_len, cfg.tensor_parallel_size, cfg.gpu_memory_utilization) == (32000, 2, 0.85)
    assert (cfg.enable_auto_tool_choice, cfg.tool_call_parser, cfg.max_num_seqs) == (True, "llama3_json", 64)
    assert cfg.gpu == "L40S"
    assert "--enforce-eager" in cfg.extra
    assert config_from_vllm_args(["--model", "m", "--max-model-len", "2K"], gpu="L4").max_model_len == 2048
    with pytest.raises(ConfigError, match="names no model"):
        config_from_vllm_args(["--port", "8000"], gpu="L4")
    with pytest.raises(ConfigError, match="invalid vLLM arguments"):
        config_from_vllm_args(["--model", "m", "--max-model-len", "lots"], gpu="L4")


def test_kubernetes_variable_expansion() -> None:
    env = {"MODEL": "meta/m", "LEN": "4096"}
    assert expand_kube_vars("$(MODEL)", env) == "meta/m"
    assert expand_kube_vars("--max-model-len=$(LEN)", env) == "--max-model-len=4096"
    assert expand_kube_vars("$$(MODEL) $(UNKNOWN)", env) == "$(MODEL) $(UNKNOWN)"
