"""Metric math against hand-computed cases (times in ms converted to ns)."""

from __future__ import annotations

import math

import pytest

from labkit.bench.metrics import RequestSample, compute, meets_slos, percentile_key, spread_tokens, summarize
from labkit.errors import ConfigError

MS = 1_000_000


def sample(
    index: int,
    chunks_ms: list[float],
    *,
    sent_ms: float = 0.0,
    output_tokens: int | None = None,
    chunk_tokens: list[int] | None = None,
    chunk_chars: list[int] | None = None,
    success: bool = True,
    error: str | None = None,
    input_tokens: int | None = 10,
) -> RequestSample:
    sent = int(sent_ms * MS)
    chunk_ns = [sent + int(c * MS) for c in chunks_ms]
    return RequestSample(
        index=index,
        request_id=f"r-{index}",
        scheduled_ns=sent,
        ready_ns=sent,
        sent_ns=sent,
        done_ns=chunk_ns[-1] if chunk_ns else sent,
        success=success,
        error=error,
        chunk_ns=chunk_ns,
        chunk_chars=chunk_chars or [4] * len(chunk_ns),
        chunk_tokens=chunk_tokens,
        output_tokens=output_tokens,
        input_tokens=input_tokens,
    )


def test_one_token_per_chunk_ttft_tpot_itl_e2el() -> None:
    # first content at 100 ms, then 20, 30, 40 ms gaps; usage says 4 tokens.
    s = sample(0, [100, 120, 150, 190], output_tokens=4)
    assert s.ttft_s == pytest.approx(0.100)
    assert s.e2el_s == pytest.approx(0.190)
    assert s.tpot_s == pytest.approx(0.090 / 3)
    assert s.itl_s == pytest.approx([0.020, 0.030, 0.040])
    tokens, source = s.tokens_per_chunk()
    assert (tokens, source) == ([1, 1, 1, 1], "one_per_chunk")
    assert s.itl_token_s() == pytest.approx([0.020, 0.030, 0.040])


def test_several_tokens_per_chunk() -> None:
    # chunks carry 2, 3 and 1 tokens (from per-chunk usage): 6 tokens over 3 chunks.
    s = sample(0, [50, 80, 100], output_tokens=6, chunk_tokens=[2, 3, 1])
    assert s.ttft_s == pytest.approx(0.050)
    assert s.tpot_s == pytest.approx((0.100 - 0.050) / 5)  # (E2E - TTFT) / (6 - 1) = 10 ms
    assert s.itl_s == pytest.approx([0.030, 0.020])  # per chunk
    per_token = s.itl_token_s()
    # 1 zero gap for the second token of the first chunk, 30 ms split over 3, 20 ms over 1.
    assert per_token == pytest.approx([0.0, 0.010, 0.010, 0.010, 0.020])
    assert len(per_token) == 6 - 1
    assert sum(per_token) / len(per_token) == pytest.approx(s.tpot_s)
    assert s.tokens_per_chunk()[1] == "usage"


def test_tokens_spread_by_content_length_when_usage_is_not_per_chunk() -> None:
    s = sample(0, [10, 20, 30], output_tokens=8, chunk_chars=[4, 12, 4])
    tokens, source = s.tokens_per_chunk()
    assert source == "chars"
    assert sum(tokens) == 8
    assert tokens == [2, 4, 2]


def test_spread_tokens_gives_each_chunk_one_and_keeps_the_total() -> None:
    assert spread_tokens(3, [5, 5, 5]) == [1, 1, 1]
    assert spread_tokens(2, [5, 5, 5]) == [1, 1, 1]  # fewer tokens than chunks: one each
    assert spread_tokens(10, [1, 1]) == [5, 5]
    assert sum(spread_tokens(7, [3, 1, 2])) == 7
    assert spread_tokens(5, []) == []


def test_single_token_output_has_no_tpot_and_no_itl() -> None:
    s = sample(0, [40], output_tokens=1)
    assert s.tpot_s is None
    assert s.itl_s == []
    assert s.itl_token_s() == []


def test_missing_usage_counts_content_chunks() -> None:
    s = sample(0, [10, 20, 30], output_tokens=None)
    assert s.tokens_out == 3
    assert s.tpot_s == pytest.approx(0.010)


def test_aggregate_excludes_and_counts_failures() -> None:
    ok1 = sample(0, [100, 110, 120], output_tokens=3, input_tokens=10)
    ok2 = sample(1, [200, 220, 240], output_tokens=3, input_tokens=20)
    bad = sample(2, [5, 6, 7], output_tokens=3, success=False, error="HTTP 500: boom")
    bad2 = sample(3, [], success=False, error="timed out after 1s")
    m = compute([ok1, ok2, bad, bad2], duration_s=2.0, percentiles=[50, 99])
    assert m["completed"] == 2
    assert m["failed"] == 2
    assert m["failure_reasons"] == {"HTTP 500": 1, "timed out after 1s": 1}
    assert m["total_input_tokens"] == 30
    assert m["total_output_tokens"] == 6
    assert m["request_throughput"] == pytest.approx(1.0)
    assert m["output_throughput"] == pytest.approx(3.0)
    assert m["total_token_throughput"] == pytest.approx(18.0)
    # TTFTs 100 and 200 ms: the failed request's 5 ms is not among them.
    assert m["mean_ttft_ms"] == pytest.approx(150.0)
    assert m["median_ttft_ms"] == pytest.approx(150.0)
    assert m["std_ttft_ms"] == pytest.approx(50.0)  # population std
    assert m["p99_ttft_ms"] == pytest.approx(199.0)  # linear interpolation
    assert m["mean_tpot_ms"] == pytest.approx(15.0)  # (10 + 20) / 2
    assert m["mean_itl_ms"] == pytest.approx(15.0)  # gaps 10, 10, 20, 20
    assert m["mean_e2el_ms"] == pytest.approx(180.0)
    assert m["request_goodput"] is None


def test_all_failed_gives_empty_statistics_not_errors() -> None:
    m = compute([sample(0, [], success=False, error="no response")], duration_s=1.0, percentiles=[99])
    assert m["completed"] == 0
    assert m["mean_ttft_ms"] is None
    assert m["p99_tpot_ms"] is None
    assert m["request_throughput"] == 0.0


def test_slo_edges_equal_passes_above_fails() -> None:
    s = sample(0, [100, 110, 120], output_tokens=3)  # TTFT 100 ms, TPOT 10 ms, E2E 120 ms
    assert meets_slos(s, {"ttft_ms": 100.0, "tpot_ms": 10.0, "e2el_ms": 120.0})
    assert not meets_slos(s, {"ttft_ms": 99.999})
    assert not meets_slos(s, {"tpot_ms": 9.999})
    assert not meets_slos(s, {"e2el_ms": 119.999})
    one = sample(1, [50], output_tokens=1)
    assert meets_slos(one, {"tpot_ms": 0.001})  # undefined TPOT meets a TPOT SLO


def test_goodput_counts_only_requests_meeting_every_slo() -> None:
    fast = sample(0, [100, 110, 120], output_tokens=3)
    slow_first = sample(1, [300, 310, 320], output_tokens=3)
    slow_tokens = sample(2, [100, 200, 300], output_tokens=3)
    failed = sample(3, [10, 11, 12], output_tokens=3, success=False, error="HTTP 500")
    m = compute([fast, slow_first, slow_tokens, failed], duration_s=2.0, slos={"ttft_ms": 100, "tpot_ms": 10})
    assert m["request_goodput"] == pytest.approx(0.5)  # one good request in 2 s
    assert m["goodput_fraction"] == pytest.approx(1 / 3)
    assert m["slos"] == {"ttft_ms": 100.0, "tpot_ms": 10.0}


def test_bad_slo_names_and_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown SLO"):
        compute([], duration_s=1.0, slos={"ttft": 100})
    with pytest.raises(ConfigError, match="positive"):
        compute([], duration_s=1.0, slos={"ttft_ms": 0})


def test_percentile_names_follow_vllm() -> None:
    assert percentile_key(99) == "p99"
    assert percentile_key(99.9) == "p99.9"
    out = summarize([0.001, 0.002, 0.003, 0.004], [50, 99.9], "x")
    assert set(out) == {"mean_x_ms", "median_x_ms", "std_x_ms", "p50_x_ms", "p99.9_x_ms"}
    assert out["p50_x_ms"] == pytest.approx(2.5)
    assert out["std_x_ms"] == pytest.approx(math.sqrt(1.25))


def test_peaks_count_tokens_per_second_and_requests_in_flight() -> None:
    a = sample(0, [100, 200, 1500], output_tokens=3, sent_ms=0)
    b = sample(1, [100, 200], output_tokens=2, sent_ms=50)
    m = compute([a, b], duration_s=2.0)
    assert m["max_output_tokens_per_s"] == 4.0  # 4 tokens land in the first second
    assert m["max_concurrent_requests"] == 2
