"""The roofline: step times, steady state under load, and the API the vLLM simulator uses."""

from __future__ import annotations

import itertools
import math

import pytest

from labkit.errors import ConfigError
from labkit.planner import ServingPerf


@pytest.fixture(scope="module")
def l4() -> ServingPerf:
    return ServingPerf.from_names("meta-llama/Llama-3.1-8B-Instruct", "L4", max_model_len=8192)


@pytest.fixture(scope="module")
def h100() -> ServingPerf:
    return ServingPerf.from_names("llama-3.1-8b", "H100", max_model_len=8192)


def test_simulator_api(l4: ServingPerf) -> None:
    assert l4.block_size == 16
    assert l4.max_num_seqs == 256
    assert isinstance(l4.kv_cache_tokens, int) and l4.kv_cache_tokens % 16 == 0
    assert l4.max_model_len == 8192
    assert l4.prefill_seconds(512) > 0
    assert l4.decode_step_seconds(4, 4 * 600) > 0
    by_keywords = ServingPerf.from_names(
        model="llama-3.1-8b", gpu="L4", tensor_parallel=1, dtype=None, gpu_memory_utilization=0.9, max_model_len=8192
    )
    assert by_keywords.kv_cache_tokens == l4.kv_cache_tokens


def test_instance_type_brings_its_gpu_and_interconnect() -> None:
    perf = ServingPerf.from_names("llama-3.1-8b", "g5.12xlarge", 4, max_model_len=8192)
    assert perf.gpu.name == "A10G" and perf.interconnect_kind == "pcie" and perf.tensor_parallel == 4
    with pytest.raises(ConfigError, match="has 1 GPU"):
        ServingPerf.from_names("llama-3.1-8b", "g5.xlarge", 2, max_model_len=8192)


def test_decode_step_grows_with_batch_and_context(l4: ServingPerf) -> None:
    by_batch = [l4.decode_step_seconds(b, b * 1000) for b in (1, 8, 32, 128, 256)]
    assert by_batch == sorted(by_batch) and by_batch[-1] > by_batch[0]
    by_context = [l4.decode_step_seconds(16, 16 * c) for c in (100, 1000, 4000, 8000)]
    assert by_context == sorted(by_context) and by_context[-1] > by_context[0]


def test_decode_turns_compute_bound_as_the_batch_grows(h100: ServingPerf) -> None:
    assert h100.step(decode_seqs=1, decode_context_tokens=500).bound == "memory"
    # The ridge sits near a batch of a few hundred tokens on an H100 in bf16.
    assert h100.step(decode_seqs=64, decode_context_tokens=64 * 100).bound == "memory"
    assert h100.step(decode_seqs=1024, decode_context_tokens=1024 * 100).bound == "compute"
    # Memory-bound: doubling a small batch costs little; compute-bound: it nearly doubles the step.
    small = h100.decode_step_seconds(2, 1000) / h100.decode_step_seconds(1, 500)
    large = h100.decode_step_seconds(2048, 2048 * 100) / h100.decode_step_seconds(1024, 1024 * 100)
    assert small < 1.05
    assert large > 1.6


def test_prefill_is_compute_bound_and_grows_with_the_prompt(h100: ServingPerf) -> None:
    assert h100.step(prefill_tokens=4096, prefill_seqs=1).bound == "compute"
    times = [h100.prefill_seconds(n) for n in (128, 1024, 4096, 8192)]
    assert times == sorted(times)
    # Compute-bound prefill scales about linearly (plus the quadratic attention term).
    assert 7 < times[3] / times[1] < 10


def test_decode_step_is_the_weights_over_bandwidth_at_batch_one(l4: ServingPerf) -> None:
    # Reading ~15 GB of weights at ~86% of 300 GB/s, plus the step overhead: about 60 ms.
    assert l4.decode_step_seconds(1, 100) == pytest.approx(0.060, rel=0.1)


def test_tpot_grows_and_throughput_saturates_with_concurrency(h100: ServingPerf) -> None:
    preds = [h100.predict(c, 512, 256) for c in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
    tpots = [p.tpot_s for p in preds]
    thr = [p.output_throughput for p in preds]
    assert tpots == sorted(tpots)
    assert thr == sorted(thr)
    gains = [b / a for a, b in itertools.pairwise(thr)]
    assert gains[0] > 1.8  # nearly free at small batch (memory-bound)
    assert gains[-1] < gains[0]  # diminishing returns as decode turns compute-bound


def test_requests_beyond_the_kv_cache_queue() -> None:
    perf = ServingPerf.from_names("llama-3.1-8b", "A10G", max_model_len=8192)
    cap, reason = perf.max_running(4096, 1024)
    assert reason == "kv_cache" and cap == perf.kv_cache_blocks // math.ceil((4096 + 512) / 16)
    at_cap = perf.predict(cap, 4096, 1024)
    over = perf.predict(2 * cap, 4096, 1024)
    assert not at_cap.saturated and over.saturated and over.limited_by == "kv_cache"
    assert over.running == cap
    assert over.output_throughput == pytest.approx(at_cap.output_throughput)
    assert over.ttft_s > at_cap.ttft_s + 0.5 * at_cap.e2e_s  # they wait about one request lifetime
    assert over.e2e_s == pytest.approx(2 * at_cap.e2e_s, rel=0.01)  # Little's law


def test_rate_below_capacity_is_carried_and_above_it_saturates(h100: ServingPerf) -> None:
    best = h100.max_throughput(512, 256)
    half = h100.predict_rate(best.request_throughput / 2, 512, 256)
    assert not half.saturated
    assert half.request_throughput == pytest.approx(best.request_throughput / 2)
    assert half.concurrency == pytest.approx(half.rate * half.e2e_s)
    slow = h100.predict_rate(best.request_throughput / 20, 512, 256)
    assert slow.ttft_s < half.ttft_s and slow.tpot_s < half.tpot_s
    over = h100.predict_rate(best.request_throughput * 1.2, 512, 256)
    assert over.saturated and math.isinf(over.ttft_s)


def test_tensor_parallel_cuts_tpot() -> None:
    one = ServingPerf.from_names("llama-3.1-8b", "A10G", 1, max_model_len=8192).predict(1, 512, 256)
    four = ServingPerf.from_names("llama-3.1-8b", "A10G", 4, max_model_len=8192).predict(1, 512, 256)
    assert 0.25 < four.tpot_s / one.tpot_s < 0.5


def test_fp8_decodes_faster_than_bf16_on_hopper(h100: ServingPerf) -> None:
    fp8 = ServingPerf.from_names("llama-3.1-8b", "H100", dtype="fp8", max_model_len=8192)
    assert fp8.decode_step_seconds(1, 500) < 0.7 * h100.decode_step_seconds(1, 500)
    assert fp8.prefill_seconds(4096) < 0.7 * h100.prefill_seconds(4096)
    assert fp8.kv_cache_tokens > h100.kv_cache_tokens


def test_request_shape_is_checked(l4: ServingPerf) -> None:
    with pytest.raises(ConfigError, match="exceed max_model_len"):
        l4.predict(1, 8000, 500)
    with pytest.raises(ConfigError):
        l4.predict(0, 100, 100)
    with pytest.raises(ConfigError):
        l4.predict_rate(0, 100, 100)


def test_for_instance_uses_the_fewest_gpus_that_hold_the_model() -> None:
    perf = ServingPerf.for_instance("llama-3.1-70b", "p4de.24xlarge", max_model_len=8192)
    assert perf.tensor_parallel == 2 and perf.gpu.name == "A100-80GB" and perf.interconnect_kind == "nvlink"


def test_prediction_speaks_vllm_bench_field_names(l4: ServingPerf) -> None:
    p = l4.predict(8, 512, 128)
    fields = p.as_bench_fields()
    assert fields["mean_ttft_ms"] == p.ttft_ms and fields["mean_tpot_ms"] == p.tpot_ms
    assert fields["output_throughput"] == pytest.approx(fields["request_throughput"] * 128)
    assert fields["total_token_throughput"] == pytest.approx(fields["request_throughput"] * 640)
