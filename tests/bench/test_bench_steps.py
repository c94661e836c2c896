"""The benchmark's lab steps: cluster time, the sweep, goodput, cost, honesty and the planner beside it.

Hand-made runs check the arithmetic exactly (SLO edges, the attainment boundary, saturated and failed
levels, prices and their source). A simulated vLLM server (model mode, clock scaled 10x, started as
its own process) checks the steps end to end: levels and counts, the conversion to cluster time
(stated tolerance: the median TPOT at concurrency 1 within 5% + 5 ms of the planner's decode step,
the wall-time tolerance of the simulator test times the scale), the server's ``/metrics`` beside the
client, an open-loop rate given in cluster time, plots and files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_sim import GPU, MODEL, SCALE

from labkit.bench import health as health_mod
from labkit.bench import metrics as metrics_mod
from labkit.bench import steps
from labkit.bench.client import EngineStats
from labkit.bench.metrics import RequestSample
from labkit.bench.result import BenchResult, load
from labkit.errors import ConfigError, NotFound

MS = 1_000_000
T0 = 5_000 * MS

# ---------------------------------------------------------------------------------------------- hand-made runs


def sample(
    i: int, start_ms: float, ttft_ms: float, tpot_ms: float, tokens: int = 5, *, lag_ms: float = 0.01, ok: bool = True
) -> RequestSample:
    """Due ``start_ms`` after T0, sent ``lag_ms`` late, first token after ``ttft_ms``, then one per ``tpot_ms``."""
    due = T0 + round(start_ms * MS)
    sent = due + round(lag_ms * MS)
    if not ok:
        return RequestSample(i, f"r{i}", due, due, sent, sent + 10 * MS, False, error="HTTP 500: boom", status=500)
    chunks = [sent + round((ttft_ms + k * tpot_ms) * MS) for k in range(tokens)]
    return RequestSample(
        i, f"r{i}", due, due, sent, chunks[-1], True, chunk_ns=chunks, chunk_chars=[4] * tokens,
        output_tokens=tokens, input_tokens=100, events=tokens,
    )  # fmt: skip


def result(samples: list[RequestSample], concurrency: int, duration_ms: float, *, cpu_ms: float = 1.0) -> BenchResult:
    """A closed-loop result with real metrics and a real health report (one engine)."""
    stats = EngineStats(t0_ns=T0, end_ns=T0 + round(duration_ms * MS), cpu_ns=round(cpu_ms * MS), timer="timerfd")
    return BenchResult(
        metrics=metrics_mod.compute(samples, duration_s=duration_ms / 1000),
        health=health_mod.assess(samples, [stats], requested_rate=None),
        metadata={"profile": {"kind": "concurrency", "concurrency": concurrency}},
        header={"profile": f"concurrency={concurrency}", "max_concurrency": concurrency},
        samples=samples,
        t0_ns=T0,
    )


def level(concurrency: int, ttfts: list[float], tpots: list[float], *, failed: int = 0, lag_ms: float = 0.01):
    """One request per (TTFT, TPOT) pair, spaced 10 ms apart, plus ``failed`` failures."""
    samples = [sample(i, 10 * i, t, p, lag_ms=lag_ms) for i, (t, p) in enumerate(zip(ttfts, tpots, strict=True))]
    samples += [sample(len(samples) + k, 0, 0, 0, ok=False) for k in range(failed)]
    return result(samples, concurrency, 1000.0)


def test_cluster_time_multiplies_intervals_and_divides_rates() -> None:
    wall = result([sample(0, 0, 2.0, 1.0), sample(1, 3, 2.0, 1.0)], 2, 10.0)
    slow = steps.in_cluster_time(wall, 60.0)
    m, w = slow.metrics, wall.metrics
    assert m["median_ttft_ms"] == pytest.approx(120.0)
    assert m["median_tpot_ms"] == pytest.approx(60.0)
    assert m["mean_e2el_ms"] == pytest.approx(w["mean_e2el_ms"] * 60)
    assert m["duration"] == pytest.approx(0.6)
    assert m["request_throughput"] == pytest.approx(w["request_throughput"] / 60)
    assert m["output_throughput"] == pytest.approx(w["output_throughput"] / 60)
    assert slow.samples[1].ttft_s == pytest.approx(0.120)
    assert slow.health is wall.health  # the client's self-checks stay in wall time
    assert slow.metadata["time_scale"] == 60.0
    assert steps.in_cluster_time(wall, 1.0) is wall
    with pytest.raises(ConfigError, match="time_scale"):
        steps.in_cluster_time(wall, 0)


def test_cluster_time_scores_slos_on_cluster_milliseconds() -> None:
    wall = result([sample(0, 0, 2.0, 1.0)], 1, 10.0)
    wall.metrics["slos"] = {"ttft_ms": 120.0}
    assert steps.in_cluster_time(wall, 60.0).metrics["goodput_fraction"] == 1.0  # 120 ms <= 120 ms passes
    wall.metrics["slos"] = {"ttft_ms": 119.9}
    assert steps.in_cluster_time(wall, 60.0).metrics["goodput_fraction"] == 0.0


def test_cluster_time_converts_a_requested_rate() -> None:
    wall = result([sample(0, 0, 2.0, 1.0)], 1, 10.0)
    wall.metadata["profile"] = {"kind": "rate", "rate": 120.0, "burstiness": 1.0, "arrival": "gamma"}
    slow = steps.in_cluster_time(wall, 60.0)
    assert slow.metadata["profile"]["rate"] == pytest.approx(2.0)
    assert slow.header["request_rate"] == pytest.approx(2.0)
    assert slow.header["profile"].startswith("rate=2/s")


def test_goodput_finds_the_highest_level_meeting_the_slo() -> None:
    slo = {"ttft_ms": 100, "tpot_ms": 50}
    runs = [
        level(1, [100.0] * 10, [50.0] * 10),  # every value on the threshold: all good
        level(2, [90.0] * 9 + [101.0], [40.0] * 10),  # 9 of 10: exactly the attainment
        level(4, [90.0] * 8 + [200.0] * 2, [40.0] * 10),  # 8 of 10: misses
        level(8, [10.0] * 10, [10.0] * 10, failed=1),  # fast, but one request failed
        level(16, [10.0] * 10, [10.0] * 10, lag_ms=5.0),  # fast, but the client was behind (send lag p50 5 ms)
    ]
    good = steps.goodput_under(runs, slo, attainment=0.9)
    rows = {r["concurrency"]: r for r in good.rows}
    assert [rows[c]["meets"] for c in (1, 2, 4, 8, 16)] == [True, True, False, False, False]
    assert rows[2]["fraction"] == pytest.approx(0.9)
    assert rows[2]["goodput"] == pytest.approx(9.0)  # 9 good requests in 1 s
    assert rows[4]["why_not"] == "2 over the TTFT SLO"
    assert "1 failed" in rows[8]["why_not"]
    assert rows[8]["completed"] == 10  # the failure is counted, not scored
    assert "client saturated" in rows[16]["why_not"]
    assert good.best_concurrency == 2
    assert good.best == rows[2]
    assert "highest concurrency meeting the SLO: 2" in str(good)


def test_goodput_accepts_a_planner_slo_and_rejects_bad_ones() -> None:
    from labkit.planner import SLO

    runs = [level(1, [100.0] * 10, [50.0] * 10)]
    assert steps.goodput_under(runs, SLO(ttft_ms=100, tpot_ms=50)).slo == {"ttft_ms": 100.0, "tpot_ms": 50.0}
    assert steps.goodput_under(runs, {"ttft_ms": 99.0}).best_concurrency is None
    with pytest.raises(ConfigError):
        steps.goodput_under(runs, {})
    with pytest.raises(ConfigError):
        steps.goodput_under(runs, {"latency_ms": 5})
    with pytest.raises(ConfigError):
        steps.goodput_under(runs, {"ttft_ms": 100}, attainment=1.5)


def test_cost_table_prices_each_level_and_keeps_the_source() -> None:
    from labkit.aws.prices import Price

    runs = [level(1, [10.0] * 10, [10.0] * 10), level(4, [10.0] * 40, [10.0] * 40)]
    # 10 requests x 5 tokens in 1 s: 50 tokens/s, 10 requests/s; 40 requests: 200 tokens/s.
    price = Price("g6.xlarge", "us-west-2", "on-demand", 3.6, "pricing-api", "2025-06-01")
    table = steps.cost_table(runs, price)
    assert table.at(1)["usd_per_million_output_tokens"] == pytest.approx(3.6 / 3600 / 50 * 1e6)  # $20
    assert table.at(1)["usd_per_thousand_requests"] == pytest.approx(3.6 / 3600 / 10 * 1e3)  # $0.10
    assert table.cheapest["concurrency"] == 4
    assert "pricing-api, 2025-06-01" in table.source
    assert "2025-06-01" in str(table)
    doubled = steps.cost_table(runs, 3.6, count=2)
    assert doubled.at(1)["usd_per_million_output_tokens"] == pytest.approx(40.0)
    assert doubled.source.startswith("2 x ")
    with pytest.raises(NotFound):
        table.at(3)
    with pytest.raises(ConfigError):
        steps.cost_table(runs, "cheap")


def test_honesty_lists_each_runs_self_checks() -> None:
    fine, late = level(1, [10.0] * 10, [10.0] * 10), level(2, [10.0] * 10, [10.0] * 10, lag_ms=5.0)
    report = steps.honesty([fine, late], labels=["c=1", "c=2"])
    rows = {r["label"]: r for r in report.rows}
    assert rows["c=1"]["send_lag_p50_us"] == pytest.approx(10.0, abs=0.5)
    assert not rows["c=1"]["client_saturated"]
    assert rows["c=2"]["client_saturated"]
    assert any("send lag p50" in why for why in rows["c=2"]["reasons"])
    assert report.any_saturated
    assert "c=2: send lag p50" in str(report)


def test_planner_column_is_the_planners_prediction_for_each_load() -> None:
    from labkit.planner import ServingPerf

    runs = [level(1, [50.0] * 10, [30.0] * 10), level(4, [80.0] * 40, [35.0] * 40)]
    gap = steps.vs_planner(runs, MODEL, GPU, max_model_len=8192)
    perf = ServingPerf.from_names(MODEL, GPU, max_model_len=8192)
    for c in (1, 4):
        predicted = perf.predict(c, 100, 5)  # 100 prompt and 5 output tokens per request
        rows = {r["quantity"]: r for r in gap.rows if r["concurrency"] == c}
        assert rows["TTFT mean (ms)"]["planner"] == pytest.approx(predicted.ttft_ms)
        assert rows["TPOT mean (ms)"]["planner"] == pytest.approx(predicted.tpot_ms)
        assert rows["requests/s"]["planner"] == pytest.approx(predicted.request_throughput)
        assert rows["E2E mean (ms)"]["ratio"] == pytest.approx(rows["E2E mean (ms)"]["measured"] / predicted.e2e_ms)
        assert rows["TTFT mean (ms)"]["server"] is None  # plain results carry no /metrics
    m = runs[1].metrics
    assert gap.in_flight[4] == pytest.approx(m["request_throughput"] * m["mean_e2el_ms"] / 1000)
    assert not any("time scale" in n for n in gap.notes)
    assert "planner" in str(gap)


def test_sweep_rejects_bad_levels_before_sending() -> None:
    with pytest.raises(ConfigError, match="levels"):
        steps.sweep_concurrency("http://127.0.0.1:9", "m", levels=[], time_scale=1.0)
    with pytest.raises(ConfigError, match="levels"):
        steps.sweep_concurrency("http://127.0.0.1:9", "m", levels=[2, 0], time_scale=1.0)


# ---------------------------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
def sweep(simulator: str) -> steps.ConcurrencySweep:
    return steps.sweep_concurrency(
        simulator, MODEL, levels=(1, 4), input_tokens=128, output_tokens=8, rounds=2, min_requests=4,
        seed=0, time_scale=SCALE,
    )  # fmt: skip


def test_sweep_runs_each_level_and_reports_cluster_time(sweep: steps.ConcurrencySweep) -> None:
    from labkit.planner import ServingPerf

    assert sweep.concurrencies == [1, 4]
    assert [lv.result.metrics["completed"] for lv in sweep.levels] == [4, 8]
    assert all(lv.result.metrics["failed"] == 0 for lv in sweep.levels)
    one = sweep.level(1)
    prompt = one.result.metrics["total_input_tokens"] // 4  # the server's count: 128 words plus its template
    perf = ServingPerf.from_names(MODEL, GPU, max_model_len=8192)
    decode_ms = sum(perf.decode_step_seconds(1, prompt + k) for k in range(1, 8)) / 7 * 1000
    tpot = one.result.metrics["median_tpot_ms"]
    assert abs(tpot - decode_ms) <= 0.05 * decode_ms + 5.0, (tpot, decode_ms)  # cluster ms, not wall ms
    assert tpot == pytest.approx(one.wall.metrics["median_tpot_ms"] * SCALE, rel=1e-3)
    assert one.result.metrics["output_throughput"] == pytest.approx(
        one.wall.metrics["output_throughput"] / SCALE, rel=1e-3
    )
    server = one.server_means  # the server's own histograms over this level only, in cluster time
    assert server["itl_ms"] == pytest.approx(decode_ms, rel=0.1)
    assert server["ttft_ms"] is not None
    assert server["ttft_ms"] <= one.result.metrics["mean_ttft_ms"] + 1.0  # the client adds HTTP and itself
    assert "cluster time" in str(sweep)
    view = one.clocks()
    assert [r[0] for r in view.rows] == ["client, wall time", "client, cluster time", "server /metrics"]
    with pytest.raises(NotFound):
        sweep.level(3)


def test_steps_on_a_real_sweep(sweep: steps.ConcurrencySweep, tmp_path: Path) -> None:
    gap = steps.vs_planner(sweep, MODEL, GPU, max_model_len=8192)
    assert 0.7 <= gap.ratio(1, "E2E mean (ms)") <= 1.4
    assert any(f"time scale {SCALE:g}" in n for n in gap.notes)
    assert gap.rows[0]["server"] is not None
    good = steps.goodput_under(sweep, {"ttft_ms": 60_000, "tpot_ms": 60_000})
    assert good.best_concurrency == 4  # a generous SLO: every level meets it
    costs = steps.cost_table(sweep, 0.8)
    assert costs.time_scale == SCALE
    assert costs.at(4)["output_tokens_per_s"] == pytest.approx(sweep.result(4).metrics["output_throughput"])
    assert sweep.latency_plot().png().startswith(b"\x89PNG")
    assert sweep.distributions(4)._repr_png_().startswith(b"\x89PNG")
    written = sweep.save(tmp_path)
    assert {p.name for p in written} >= {"concurrency-1.json", "concurrency-4.json", "latency-vs-throughput.png"}
    again = load(tmp_path / "concurrency-4.json")
    assert again.metrics["completed"] == 8
    assert json.loads((tmp_path / "concurrency-4.json").read_text())["metadata"]["time_scale"] == SCALE


def test_a_rate_is_given_in_cluster_time(simulator: str) -> None:
    at = steps.run_at_rate(
        simulator, 5.0, MODEL, num_requests=12, input_tokens=64, output_tokens=4, seed=0, time_scale=SCALE
    )
    assert at.wall.health["requested_rate"] == pytest.approx(50.0)  # the client sends 10x faster in wall time
    assert at.result.header["request_rate"] == pytest.approx(5.0)
    assert at.result.metrics["completed"] == 12
    report = steps.honesty([at.wall])
    assert report.rows[0]["requested_rate"] == pytest.approx(50.0)
    assert report.rows[0]["achieved_rate"] is not None


def test_a_missing_price_is_explained() -> None:
    runs = [level(1, [10.0] * 10, [10.0] * 10)]
    with pytest.raises(ConfigError, match="no price"):
        steps.cost_table(runs, None)
