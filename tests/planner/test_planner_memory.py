"""Memory arithmetic checked by hand, and the fit / tensor-parallel decisions built on it."""

from __future__ import annotations

import pytest

from labkit import planner
from labkit.errors import ConfigError
from labkit.planner import DoesNotFit, ServingPerf, get_gpu, get_model, plan_memory, required_tensor_parallel
from labkit.planner.catalog import GIB
from labkit.planner.memory import (
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    activation_peak_bytes,
    kv_bytes_per_token_per_gpu,
)


def test_kv_bytes_per_token_by_hand() -> None:
    # 2 (K and V) x layers x KV heads x head dim x 2 bytes (bf16)
    assert planner.kv_bytes_per_token(get_model("llama-3.1-8b")) == 2 * 32 * 8 * 128 * 2 == 131072
    assert planner.kv_bytes_per_token(get_model("llama-3.1-70b")) == 2 * 80 * 8 * 128 * 2 == 327680
    assert planner.kv_bytes_per_token(get_model("qwen2.5-7b")) == 2 * 28 * 4 * 128 * 2 == 57344
    assert planner.kv_bytes_per_token(get_model("llama-3.1-8b"), "fp8") == 65536


def test_kv_heads_split_then_replicate_over_tensor_parallel() -> None:
    qwen = get_model("qwen2.5-7b")  # 4 KV heads
    assert kv_bytes_per_token_per_gpu(qwen, 2) == 57344 // 2
    assert kv_bytes_per_token_per_gpu(qwen, 4) == 57344 // 4
    # More GPUs than KV heads: each GPU keeps one replicated head, so the per-GPU size stops shrinking.
    assert kv_bytes_per_token_per_gpu(qwen, 8) == 57344 // 4


def test_weight_bytes_by_dtype() -> None:
    llama = get_model("llama-3.1-8b")
    assert planner.weight_bytes(llama, "bf16") == 2 * 8_030_261_248
    fp8 = planner.weight_bytes(llama, "fp8")
    # Block matrices at 1 byte, embeddings and LM head (2 x 128256 x 4096) and norms kept at 2 bytes.
    embed_and_norms = 2 * 128256 * 4096 + 65 * 4096
    assert fp8 == llama.layer_linear_parameters + 2 * embed_and_norms
    awq = planner.weight_bytes(llama, "int4-awq")
    assert 0.3 * fp8 < awq < 0.7 * fp8
    assert planner.weight_bytes(llama) == planner.weight_bytes(llama, "bfloat16")


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown dtype"):
        planner.weight_bytes(get_model("llama-3.1-8b"), "fp4")


def test_memory_plan_adds_up() -> None:
    gpu = get_gpu("L4")
    plan = plan_memory(get_model("llama-3.1-8b"), gpu, max_model_len=8192)
    assert plan.budget_bytes == int(gpu.memory_bytes * 0.9)
    assert plan.weight_bytes == 2 * 8_030_261_248
    assert plan.activation_bytes == activation_peak_bytes(plan.model, 1, DEFAULT_MAX_NUM_BATCHED_TOKENS)
    assert plan.kv_cache_bytes == plan.budget_bytes - plan.weight_bytes - plan.activation_bytes - plan.runtime_bytes
    assert plan.kv_cache_tokens % 16 == 0
    assert plan.kv_cache_tokens == plan.kv_cache_bytes // 131072 // 16 * 16
    assert plan.fits


def test_max_concurrent_sequences() -> None:
    plan = plan_memory(get_model("llama-3.1-8b"), get_gpu("H100"), max_model_len=8192)
    blocks = plan.kv_cache_tokens // 16
    assert plan.max_concurrent_sequences(4096) == min(256, blocks // 256)
    assert plan.max_concurrent_sequences(100) == 256  # capped by max_num_seqs
    small = plan_memory(get_model("llama-3.1-8b"), get_gpu("A10G"), max_model_len=8192)
    assert small.max_concurrent_sequences(8192) == small.kv_cache_tokens // 8192
    with pytest.raises(ConfigError):
        small.max_concurrent_sequences(0)


def test_more_memory_utilization_means_more_kv_cache() -> None:
    model, gpu = get_model("llama-3.1-8b"), get_gpu("A10G")
    low = plan_memory(model, gpu, gpu_memory_utilization=0.8, max_model_len=4096)
    high = plan_memory(model, gpu, gpu_memory_utilization=0.95, max_model_len=4096)
    assert high.kv_cache_tokens - low.kv_cache_tokens == pytest.approx(0.15 * gpu.memory_bytes / 131072, rel=0.01)
    with pytest.raises(ConfigError):
        plan_memory(model, gpu, gpu_memory_utilization=1.5)


@pytest.mark.parametrize(
    ("model", "gpu", "context", "tp"),
    [
        ("llama-3.1-8b", "A10G", 8192, 1),
        ("llama-3.1-8b", "H100", 131072, 1),
        ("llama-3.1-70b", "A10G", 8192, 8),
        ("llama-3.1-70b", "H100", 8192, 2),
        ("llama-3.1-70b", "H100", 65536, 4),
        ("llama-3.1-70b", "H200", 8192, 2),
        ("qwen2.5-32b", "L40S", 8192, 2),
        ("qwen2.5-32b", "A100-80GB", 16384, 1),
        ("qwen2.5-32b", "A100-80GB", 32768, 2),
    ],
)
def test_required_tensor_parallel(model: str, gpu: str, context: int, tp: int) -> None:
    plan = required_tensor_parallel(get_model(model), get_gpu(gpu), context_tokens=context)
    assert plan.tensor_parallel == tp
    assert plan.fits and plan.kv_cache_tokens >= context


def test_tensor_parallel_must_divide_the_heads() -> None:
    # Qwen2.5-7B has 28 attention heads: 8 does not divide them.
    with pytest.raises(ConfigError, match="28 attention heads"):
        plan_memory(get_model("qwen2.5-7b"), get_gpu("L4"), 8)


def test_seventy_b_on_one_a10g_says_what_would_work() -> None:
    with pytest.raises(DoesNotFit) as info:
        required_tensor_parallel(get_model("llama-3.1-70b"), get_gpu("A10G"), context_tokens=8192, max_gpus=1)
    err = info.value
    assert "llama-3.1-70b in bf16 needs 141 GB" in err.what and "A10G has 24 GB" in err.what
    assert err.fix is not None and "tensor parallel 8 on g5.48xlarge" in err.fix


def test_seventy_b_on_one_h100_offers_quantization() -> None:
    with pytest.raises(DoesNotFit) as info:
        required_tensor_parallel(get_model("llama-3.1-70b"), get_gpu("H100"), context_tokens=8192, max_gpus=1)
    fix = info.value.fix or ""
    assert "tensor parallel 2 on p5.48xlarge" in fix and "int4-awq" in fix


def test_fp8_halves_the_gpus_needed() -> None:
    seventy = get_model("llama-3.1-70b")
    # bf16 (141 GB) needs two H200s; fp8 (73 GB) fits on one.
    assert required_tensor_parallel(seventy, get_gpu("H200"), context_tokens=8192).tensor_parallel == 2
    assert required_tensor_parallel(seventy, get_gpu("H200"), dtype="fp8", context_tokens=8192).tensor_parallel == 1
    # On an H100 the 73 GB of fp8 weights plus activations overflow the 71 GiB budget: still two.
    assert required_tensor_parallel(seventy, get_gpu("H100"), dtype="fp8", context_tokens=8192).tensor_parallel == 2


def test_serving_perf_refuses_a_context_the_kv_cache_cannot_hold() -> None:
    # Llama 3.1 8B supports 131072 tokens; on an A10G the KV cache holds far fewer.
    with pytest.raises(DoesNotFit) as info:
        ServingPerf.from_names("meta-llama/Llama-3.1-8B-Instruct", "A10G")
    assert "larger than the maximum number of tokens that can be stored in KV cache" in info.value.what
    clamped = ServingPerf.from_names("meta-llama/Llama-3.1-8B-Instruct", "A10G", strict=False)
    assert clamped.max_model_len == clamped.kv_cache_tokens < 131072


def test_serving_perf_refuses_weights_that_do_not_fit() -> None:
    with pytest.raises(DoesNotFit, match="does not fit on 1x A10G"):
        ServingPerf.from_names("llama-3.1-70b", "A10G", max_model_len=4096)


def test_activation_memory_shrinks_with_tensor_parallel() -> None:
    qwen = get_model("qwen2.5-7b")
    one, four = activation_peak_bytes(qwen, 1, 8192), activation_peak_bytes(qwen, 4, 8192)
    assert four < one / 2
    assert one / GIB == pytest.approx(2.25, abs=0.1)  # vLLM logs imply about 2.2 GiB of non-KV overhead


def test_context_longer_than_the_model_supports_is_refused() -> None:
    with pytest.raises(ConfigError, match="maximum context of 32768"):
        plan_memory(get_model("qwen2.5-7b"), get_gpu("H100"), max_model_len=65536)
