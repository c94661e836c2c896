"""The saturation verdict on hand-made runs: each threshold raises it, an easy run does not."""

from __future__ import annotations

import pytest

from labkit.bench.client import EngineStats
from labkit.bench.health import MIN_TAIL_SAMPLES, Thresholds, assess
from labkit.bench.metrics import RequestSample

MS = 1_000_000


def run(n: int = 200, *, gap_ms: float = 10.0, lag_ms: float = 0.01, send_every_ms: float | None = None):
    """``n`` requests due every ``gap_ms``, each sent ``lag_ms`` late (or at ``send_every_ms`` spacing)."""
    samples = []
    for i in range(n):
        due = int(i * gap_ms * MS)
        sent = int(i * send_every_ms * MS) if send_every_ms else due + int(lag_ms * MS)
        samples.append(RequestSample(i, f"r{i}", due, due, max(sent, due), sent + 5 * MS, True, events=10))
    return samples


def stats(*, cpu_ms: float = 100.0, wall_ms: float = 2000.0, loop_lag_ms: list[float] | None = None) -> EngineStats:
    lags = [int(x * MS) for x in (loop_lag_ms or [0.05] * 200)]
    return EngineStats(t0_ns=0, end_ns=int(wall_ms * MS), cpu_ns=int(cpu_ms * MS), loop_lag_ns=lags, timer="timerfd")


def test_easy_run_is_not_saturated() -> None:
    report = assess(run(), [stats()], requested_rate=100.0)
    assert not report["client_saturated"], report["reasons"]
    assert report["rate_error"] == pytest.approx(0.0, abs=1e-9)
    assert report["cpu"]["per_request_us"] == pytest.approx(500.0)
    assert report["cpu"]["per_event_us"] == pytest.approx(50.0)
    assert report["thresholds"]["send_lag_p99_ms"] == 10.0


def test_late_sends_are_flagged() -> None:
    report = assess(run(lag_ms=2.0), [stats()], requested_rate=100.0)
    assert report["client_saturated"]
    assert any(r.startswith("send lag p50 2.000 ms exceeds 1.0 ms") for r in report["reasons"])


def test_achieved_rate_below_the_schedule_is_flagged() -> None:
    # due every 10 ms, but the client managed one send every 10.5 ms
    report = assess(run(send_every_ms=10.5), [stats()], requested_rate=100.0)
    assert report["rate_error"] == pytest.approx(10 / 10.5 - 1)
    assert any("below the scheduled" in r for r in report["reasons"])


def test_queueing_behind_a_concurrency_cap_is_not_saturation() -> None:
    samples = run(send_every_ms=10.5)
    for s in samples:
        s.ready_ns = s.sent_ns  # each waited for a slot, then went at once
    report = assess(samples, [stats()], requested_rate=100.0)
    assert report["client_queue_ms"] is not None
    assert not report["client_saturated"], report["reasons"]


def test_busy_cpu_is_flagged() -> None:
    report = assess(run(), [stats(cpu_ms=1900.0)], requested_rate=100.0)
    assert any("client CPU at 95%" in r for r in report["reasons"])


def test_blocked_loop_is_flagged_only_with_enough_probes() -> None:
    blocked = [0.05] * 180 + [50.0] * 20
    report = assess(run(), [stats(loop_lag_ms=blocked)], requested_rate=100.0)
    assert any("event-loop lag p99" in r for r in report["reasons"])
    short = [0.05] * (MIN_TAIL_SAMPLES // 2) + [50.0]
    assert not assess(run(), [stats(loop_lag_ms=short)], requested_rate=100.0)["client_saturated"]


def test_injected_budgets_are_checked() -> None:
    report = assess(run(), [stats()], requested_rate=100.0, thresholds=Thresholds(cpu_per_request_us=100.0))
    assert report["reasons"] == ["client CPU 500.0 us per request exceeds 100.0 us"]


def test_workers_are_merged() -> None:
    a, b = run(100), run(100)
    for s in b:
        s.index += 100
    report = assess(a + b, [stats(cpu_ms=50.0), stats(cpu_ms=70.0)], requested_rate=None)
    assert report["workers"] == 2
    assert report["cpu"]["total_s"] == pytest.approx(0.12)
    assert report["send_lag_ms"]["count"] == 200
    assert report["scheduled_rate"] is None


def test_one_late_send_at_the_end_of_a_short_run_is_not_a_rate_shortfall() -> None:
    samples = run(20, gap_ms=20.0)
    samples[-1].sent_ns += 5 * MS  # (n-1)/(last-first) would say 1.3% short
    report = assess(samples, [stats()], requested_rate=50.0)
    assert report["rate_error"] == pytest.approx(-0.0036, abs=0.0002)
    assert not report["client_saturated"], report["reasons"]
