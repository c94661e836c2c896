"""Integration: the benchmark recovers the embedded vLLM simulator's TTFT and TPOT (deterministic mode).

The simulator (model mode, not ``--fast``) runs the capacity planner's step times on a clock
scaled 10x. With one request in flight, its TTFT is one prefill of the prompt and its TPOT is
one decode step at batch 1, both known from ``labkit.planner.ServingPerf``. Stated tolerance:
median TTFT within 5% + 2 ms and median TPOT within 5% + 0.5 ms of those values (wall clock);
the absolute slack covers the simulator's millisecond-granular event-loop timers and HTTP
overhead, and medians keep one request delayed by a busy CI machine from failing the test.
"""

from __future__ import annotations

from bench_sim import GPU, MODEL, SCALE

from labkit import bench
from labkit.bench.runner import Concurrency


def test_recovers_the_simulators_ttft_and_tpot(simulator: str) -> None:
    from labkit.planner import ServingPerf

    out_tokens = 8
    n = 7
    data = bench.synthetic(n, input_tokens=1000, output_tokens=out_tokens, seed=0)
    result = bench.run(simulator, data, Concurrency(1), model=MODEL)
    m = result.metrics
    assert (m["completed"], m["failed"]) == (n, 0)
    assert m["total_output_tokens"] == n * out_tokens  # exact output length via ignore_eos/min_tokens
    prompt = m["total_input_tokens"] // n  # the server's count: 1000 words plus its chat template
    assert prompt > 1000

    perf = ServingPerf.from_names(MODEL, GPU, max_model_len=8192)
    ttft_ms = perf.prefill_seconds(prompt) / SCALE * 1e3
    tpot_ms = sum(perf.decode_step_seconds(1, prompt + k) for k in range(1, out_tokens)) / (out_tokens - 1)
    tpot_ms = tpot_ms / SCALE * 1e3
    assert abs(m["median_ttft_ms"] - ttft_ms) <= 0.05 * ttft_ms + 2.0, (m["median_ttft_ms"], ttft_ms)
    assert abs(m["median_tpot_ms"] - tpot_ms) <= 0.05 * tpot_ms + 0.5, (m["median_tpot_ms"], tpot_ms)
    assert abs(m["median_itl_ms"] - tpot_ms) <= 0.05 * tpot_ms + 0.5  # one token per chunk here
