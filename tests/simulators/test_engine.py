"""The continuous-batching engine: KV-cache admission, queueing, preemption, step times, time scale."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from labkit.embedded.clock import Clock
from labkit.embedded.simulators.vllm.engine import Engine, EngineRequest
from labkit.embedded.simulators.vllm.metrics import VllmMetrics


def make_engine(perf: Any, scale: float = 1000.0, **kwargs: Any) -> Engine:
    clock = Clock(scale)
    metrics = VllmMetrics("m", max_model_len=4096, created=clock.now())
    return Engine(perf, clock, metrics, **kwargs)


def request(engine: Engine, prompt: int, output: int, name: str = "r") -> EngineRequest:
    return EngineRequest(
        request_id=name,
        prompt_tokens=prompt,
        output_tokens=output,
        max_tokens=output,
        finish_reason="length",
        arrival=engine.clock.now(),
    )


async def run_all(engine: Engine, requests: list[EngineRequest], watch: list[tuple[int, int, float]]) -> None:
    engine.start()
    for r in requests:
        engine.submit(r)
    try:
        while not all(r.finished for r in requests):
            watch.append(engine.gauges())
            await asyncio.sleep(0.0005)
    finally:
        await engine.stop()


def test_requests_queue_when_the_kv_cache_is_full(fake_perf: type) -> None:
    # 8 blocks of 16 tokens: one 100-token prompt + 20 outputs needs 8 blocks, so one runs at a time.
    engine = make_engine(fake_perf(kv_cache_tokens=128, block_size=16, max_num_seqs=8), scale=2.0)
    jobs = [request(engine, 100, 20, f"r{i}") for i in range(3)]
    watch: list[tuple[int, int, float]] = []
    asyncio.run(run_all(engine, jobs, watch))
    assert all(j.generated == 20 and j.finished_at is not None for j in jobs)
    assert max(w[1] for w in watch) >= 1  # requests waited
    assert max(w[0] for w in watch) == 1  # never two running at once
    assert max(w[2] for w in watch) >= 7 / 8  # the cache was (nearly) full
    # First come, first served: each finishes before the next gets its first token.
    assert jobs[0].finished_at <= jobs[1].first_token_at
    assert jobs[1].finished_at <= jobs[2].first_token_at
    assert engine.free_blocks == engine.total_blocks


def test_decode_growth_preempts_the_newest_sequence(fake_perf: type) -> None:
    # Both 60-token prompts fit (4 blocks each of 8), but growing to 90 tokens needs 6 blocks each.
    engine = make_engine(fake_perf(kv_cache_tokens=128, block_size=16, max_num_seqs=8))
    first, second = request(engine, 60, 30, "first"), request(engine, 60, 30, "second")
    asyncio.run(run_all(engine, [first, second], []))
    assert engine.metrics.num_preemptions >= 1
    assert first.generated == second.generated == 30
    assert first.finished_at < second.finished_at
    assert engine.metrics.generation_tokens == 60


def test_max_num_seqs_caps_the_batch(fake_perf: type) -> None:
    engine = make_engine(fake_perf(max_num_seqs=2), scale=1.0)
    jobs = [request(engine, 10, 10, f"r{i}") for i in range(5)]
    watch: list[tuple[int, int, float]] = []
    asyncio.run(run_all(engine, jobs, watch))
    assert max(w[0] for w in watch) == 2
    assert max(w[1] for w in watch) >= 2


def test_chunked_prefill_splits_long_prompts(fake_perf: type) -> None:
    engine = make_engine(fake_perf(), max_num_batched_tokens=256)
    job = request(engine, 1000, 2)
    asyncio.run(run_all(engine, [job], []))
    assert engine.steps == 4 + 1  # ceil(1000/256) prefill chunks (the last samples token 1) + 1 decode
    assert engine.metrics.prompt_tokens == 1000


def test_step_times_come_from_the_model_and_the_metrics_record_them(fake_perf: type) -> None:
    perf = fake_perf(prefill_base=0.5, prefill_per_token=0.001, decode_base=0.1, decode_per_seq=0.0)
    engine = make_engine(perf, scale=1000.0)
    job = request(engine, 100, 11)
    asyncio.run(run_all(engine, [job], []))
    # Steps sit on an exact simulated timeline: one prefill of 100 tokens, then ten decode steps.
    assert job.first_token_at - job.scheduled_at == pytest.approx(0.5 + 0.1, abs=1e-4)
    assert job.finished_at - job.first_token_at == pytest.approx(10 * 0.1, abs=1e-4)
    ttft = job.first_token_at - job.arrival
    m = engine.metrics
    assert m.time_to_first_token.count == 1
    assert m.time_to_first_token.sum == pytest.approx(ttft)
    assert m.inter_token_latency.count == 10
    assert m.e2e_request_latency.sum == pytest.approx(job.finished_at - job.arrival)
    assert m.request_success["length"] == 1


def test_time_scale_makes_a_long_generation_fast(fake_perf: type) -> None:
    perf = fake_perf(decode_base=0.05)  # 50 ms per decode step: 400 tokens take 20 simulated seconds
    engine = make_engine(perf, scale=2000.0)
    job = request(engine, 10, 400)
    started = time.monotonic()
    asyncio.run(run_all(engine, [job], []))
    wall = time.monotonic() - started
    assert job.finished_at - job.first_token_at == pytest.approx(399 * 0.05, rel=0.02)
    assert wall < 2.0


def test_the_planners_mixed_step_is_used_when_the_model_has_one(fake_perf: type) -> None:
    calls: list[dict[str, float]] = []

    class Roofline(fake_perf):  # type: ignore[misc, valid-type]
        def step(self, **kwargs: float) -> Any:
            calls.append(kwargs)
            return type("Step", (), {"seconds": 0.01})()

    engine = make_engine(Roofline())
    asyncio.run(run_all(engine, [request(engine, 50, 3)], []))
    assert calls[0] == {
        "prefill_tokens": 50,
        "prefill_seqs": 1,
        "prefill_attention_tokens2": 2500.0,
        "decode_seqs": 0,
        "decode_context_tokens": 0,
    }
    assert calls[1]["decode_seqs"] == 1
    assert calls[1]["decode_context_tokens"] == 51  # the prompt and the first output token


def test_abort_frees_the_cache_and_counts(fake_perf: type) -> None:
    engine = make_engine(fake_perf(decode_base=1.0), scale=10.0)

    async def scenario() -> EngineRequest:
        engine.start()
        job = request(engine, 100, 1000)
        engine.submit(job)
        while job.generated < 1:
            await job.wait()
        engine.abort(job)
        await engine.stop()
        return job

    job = asyncio.run(scenario())
    assert job.aborted
    assert engine.free_blocks == engine.total_blocks
    assert engine.metrics.request_success["abort"] == 1
