"""Runs against a scripted in-process server: profiles, failures, self-honesty, workers, CLI, plots."""

from __future__ import annotations

import itertools
import json
import os
import socket
from pathlib import Path

import pytest

from labkit import bench
from labkit.bench import cli, job, plots, workers
from labkit.bench.health import Thresholds
from labkit.bench.runner import Concurrency, Rate, RunOptions, find_max_rate, sweep
from labkit.errors import Unreachable


def data(n: int = 20, out: int = 4) -> bench.Dataset:
    return bench.synthetic(n, input_tokens=8, output_tokens=out, seed=0)


def endpoint(server) -> bench.Endpoint:
    return bench.Endpoint(server.url, "test-model")


def test_easy_rate_run_completes_matches_request_ids_and_is_not_saturated(scripted_server) -> None:
    server = scripted_server(ttft_s=0.002, itl_s=0.001)
    result = bench.run(endpoint(server), data(), Rate(50.0, arrival="constant"))
    m, h = result.metrics, result.health
    assert (m["completed"], m["failed"]) == (20, 0)
    assert m["total_output_tokens"] == 80  # 4 per request, from usage
    assert m["total_input_tokens"] == 20 * 7  # the server's usage.prompt_tokens
    assert m["mean_ttft_ms"] >= 2.0
    assert m["mean_tpot_ms"] >= 0.9
    assert m["itl_token_source"] == "usage"
    assert not result.client_saturated, h["reasons"]
    assert h["scheduled_rate"] == pytest.approx(50.0)
    assert h["achieved_rate"] == pytest.approx(50.0, rel=0.05)
    assert h["send_lag_ms"]["count"] == 20
    assert h["server_receive_delay_ms"]["count"] == 20 * 6  # role, 4 content and usage events are stamped
    details = result.to_dict(details=True)["requests"]
    assert sorted(r["request_id"] for r in details) == sorted(server.recorded.request_ids)
    assert len(set(server.recorded.request_ids)) == 20


def test_closed_loop_keeps_the_concurrency(scripted_server) -> None:
    server = scripted_server(ttft_s=0.003, itl_s=0.002)
    result = bench.run(endpoint(server), data(12), Concurrency(3))
    assert result.metrics["completed"] == 12
    assert server.recorded.peak_in_flight == 3
    assert result.metrics["max_concurrent_requests"] <= 3
    assert result.header["max_concurrency"] == 3


def test_several_tokens_per_chunk_use_usage(scripted_server) -> None:
    server = scripted_server(itl_s=0.002, tokens_per_chunk=3)
    result = bench.run(endpoint(server), data(4, out=7), Concurrency(1))
    sample = result.samples[0]
    assert sample.chunk_tokens == [3, 3, 1]
    assert sample.output_tokens == 7
    assert sample.tpot_s == pytest.approx((sample.chunk_ns[-1] - sample.chunk_ns[0]) / 1e9 / 6)
    assert len(sample.itl_token_s()) == 6


def test_failures_are_excluded_and_counted_by_reason(scripted_server) -> None:
    server = scripted_server(
        status_for=lambda i: 500 if i % 4 == 0 else 200,
        error_event_for=lambda i: i % 4 == 1,
        cut_for=lambda i: i % 4 == 2,
    )
    result = bench.run(endpoint(server), data(12), Concurrency(2))
    m = result.metrics
    assert (m["completed"], m["failed"]) == (3, 9)
    reasons = m["failure_reasons"]
    assert reasons["HTTP 500"] == 3
    assert reasons["error event"] == 3
    assert reasons["connection closed before the response ended"] == 3
    assert m["total_output_tokens"] == 3 * 4


def test_a_hanging_request_times_out(scripted_server) -> None:
    server = scripted_server(hang_for=lambda i: i == 1)
    result = bench.run(endpoint(server), data(3), Concurrency(3), options=RunOptions(timeout_s=0.3))
    assert result.metrics["completed"] == 2
    assert result.metrics["failure_reasons"] == {"timed out after 0.3s": 1}


@pytest.mark.parametrize("profile", [Concurrency(2), Rate(500.0)])
def test_a_server_that_goes_away_fails_the_rest_without_hanging(scripted_server, profile) -> None:
    server = scripted_server(stop_listening_after=3)
    result = bench.run(endpoint(server), data(10), profile, options=RunOptions(timeout_s=5))
    m = result.metrics
    assert m["completed"] == 2
    assert m["failed"] == 8
    assert set(m["failure_reasons"]) <= {"cannot connect to 127.0.0.1", "connection closed before the response ended"}


def test_a_concurrency_cap_queues_requests_without_flagging_the_client(scripted_server) -> None:
    server = scripted_server(itl_s=0.002)
    profile = Rate(1000.0, arrival="constant", max_concurrency=1)
    result = bench.run(endpoint(server), data(8), profile)
    assert result.metrics["completed"] == 8
    assert server.recorded.peak_in_flight == 1
    assert result.health["client_queue_ms"]["count"] >= 6  # they waited for the one slot
    assert result.health["send_lag_ms"]["p50"] < 1.0  # and left as soon as it freed
    assert not result.client_saturated, result.health["reasons"]


def test_closed_loop_sends_the_next_request_as_the_last_one_ends(scripted_server) -> None:
    server = scripted_server(itl_s=0.001)
    result = bench.run(endpoint(server), data(6), Concurrency(1))
    samples = sorted(result.samples, key=lambda s: s.index)
    for prev, cur in itertools.pairwise(samples):
        assert cur.ready_ns == prev.done_ns
        assert cur.sent_ns >= cur.ready_ns


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU pinning is Linux-only")
def test_the_client_can_be_pinned_to_a_cpu_and_is_unpinned_after(scripted_server, monkeypatch) -> None:
    server = scripted_server()
    before = os.sched_getaffinity(0)
    cpu = min(before)
    seen: list[set[int]] = []
    original = workers._execute

    def spy(plan, start):
        seen.append(os.sched_getaffinity(0))
        return original(plan, start)

    monkeypatch.setattr(workers, "_execute", spy)
    result = bench.run(endpoint(server), data(3), Concurrency(1), options=RunOptions(cpus=(cpu,)))
    assert result.metrics["completed"] == 3
    assert seen == [{cpu}]
    assert os.sched_getaffinity(0) == before


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unreachable, match="cannot connect"):
        bench.run(bench.Endpoint(f"http://127.0.0.1:{port}", "m"), data(2), Concurrency(1))


def test_saturation_flag_with_a_tiny_cpu_budget(scripted_server) -> None:
    server = scripted_server()
    strict = Thresholds(cpu_per_request_us=0.001, cpu_per_event_us=0.001)
    result = bench.run(endpoint(server), data(10), Rate(100.0), options=RunOptions(thresholds=strict))
    assert result.client_saturated
    reasons = " ".join(result.health["reasons"])
    assert "per request exceeds 0.001 us" in reasons
    assert "per event exceeds 0.001 us" in reasons
    assert result.to_dict()["client_saturated"] is True


def test_saturation_flag_on_a_rate_the_client_cannot_drive(scripted_server) -> None:
    server = scripted_server(default_tokens=1)
    result = bench.run(endpoint(server), data(1000, out=1), Rate(200_000.0, arrival="constant"))
    assert result.metrics["completed"] == 1000
    assert result.client_saturated
    assert any("send lag" in r or "below the scheduled" in r for r in result.health["reasons"])


def test_two_worker_processes_merge_into_one_result(scripted_server) -> None:
    server = scripted_server(itl_s=0.001)
    result = bench.run(endpoint(server), data(30), Rate(200.0, arrival="constant"), options=RunOptions(workers=2))
    assert result.metrics["completed"] == 30
    assert result.health["workers"] == 2
    assert sorted(s.index for s in result.samples) == list(range(30))
    assert len(set(server.recorded.request_ids)) == 30
    sends = sorted(s.sent_ns for s in result.samples)
    assert (sends[-1] - sends[0]) / 1e9 == pytest.approx(29 / 200.0, abs=0.02)  # one shared schedule


def test_concurrency_sweep_and_slo_search(scripted_server) -> None:
    server = scripted_server(ttft_s=0.002, itl_s=0.001)
    sw = sweep(endpoint(server), data(8), mode="concurrency", levels=[1, 2], num_requests=8)
    assert [r.header["max_concurrency"] for r in sw.results] == [1, 2]
    assert "concurrency=2" in sw.table()
    search = find_max_rate(endpoint(server), data(8), {"ttft_ms": 1000}, high=80.0, max_runs=2, num_requests=8)
    assert [rate for rate, _, _ in search.trials] == [40.0, 60.0]
    assert search.best_rate == 60.0
    assert "highest rate meeting the SLOs: 60.00/s" in search.table()


def test_cli_run_emits_markers_and_compare_reads_the_files(scripted_server, tmp_path: Path, capsys) -> None:
    server = scripted_server(itl_s=0.001)
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    base = ["run", "--url", server.url, "--num-requests", "6", "--output-tokens", "3", "--input-tokens", "5"]
    assert cli.main([*base, "--concurrency", "2", "--output", str(out_a), "--emit-markers", "--details"]) == 0
    doc = job.parse_log(capsys.readouterr().out)
    assert doc["completed"] == 6
    assert doc["model_id"] == "test-model"  # discovered from /v1/models
    assert len(doc["requests"]) == 6
    assert cli.main([*base, "--rate", "100", "--output", str(out_b), "--price-per-hour", "3.6"]) == 0
    assert "usd_per_1M_output_tokens" in capsys.readouterr().out
    assert json.loads(out_b.read_text())["metadata"]["cost"]["price_per_hour"] == 3.6
    assert cli.main(["compare", str(out_a), str(out_b), "--names", "conc2", "rate100"]) == 0
    table = capsys.readouterr().out
    assert "conc2" in table
    assert "mean_ttft_ms" in table


def test_plots_are_written_as_png(scripted_server, tmp_path: Path) -> None:
    server = scripted_server(itl_s=0.001)
    results = [bench.run(endpoint(server), data(6), Concurrency(c)) for c in (1, 2)]
    paths = [tmp_path / "lat.png", tmp_path / "dist.png", tmp_path / "lag.png"]
    plots.latency_vs_throughput(results, path=paths[0])
    plots.distributions(results[0], path=paths[1])
    plots.send_lag(results[1], path=paths[2])
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
