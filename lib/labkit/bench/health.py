"""Self-honesty: did the client keep its schedule, and can the run's numbers be trusted?

Every run reports how late requests left (send lag: actual send minus the time the request
became due), the rate it achieved against the rate its schedule asked for, its own CPU per
request and per streamed event, the lag of a probe timer on its event loop, and, when the
server stamps events (the simulator's ``sim_sent_ns``), the receive delay. It flags the run
``client_saturated`` with the reasons when any of :class:`Thresholds` is exceeded.

The default thresholds, and why:

- send lag p50 above 1 ms: requests typically leave late, so the client is behind its schedule;
- send lag p99 above 10 ms: the client stalls now and then (GC, a blocked loop, a starved CPU);
- achieved rate more than 1% below the schedule's rate (open loop, no concurrency cap queueing):
  the server did not get the load that was asked for. The schedule's rate is
  ``(n - 1) / (last due - first due)``; the achieved rate divides it by the least-squares slope
  of send times against due times, so one late send at an end of a short run does not count;
- CPU utilization of a client thread above 90% of one core: receive timestamps queue behind
  work, so latencies include client time;
- loop-lag probe p99 above 10 ms: callbacks (including receive stamps) ran that late.

The two p99 checks apply only with at least :data:`MIN_TAIL_SAMPLES` samples (a p99 of 20 sends
is their maximum, and one preemption by another process is not saturation). Per-request and
per-event CPU budgets are off by default (set them to hold a client to a budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labkit.bench.client import EngineStats
from labkit.bench.metrics import RequestSample

#: Fewest samples for which the p99 checks are applied.
MIN_TAIL_SAMPLES = 100


@dataclass(frozen=True)
class Thresholds:
    """Limits beyond which a run is flagged ``client_saturated`` (``None`` turns a check off)."""

    send_lag_p50_ms: float | None = 1.0
    send_lag_p99_ms: float | None = 10.0
    rate_shortfall: float | None = 0.01
    cpu_utilization: float | None = 0.90
    loop_lag_p99_ms: float | None = 10.0
    cpu_per_request_us: float | None = None
    cpu_per_event_us: float | None = None


def _dist_ms(values_ns: Sequence[int]) -> dict[str, float] | None:
    if not len(values_ns):
        return None
    arr = np.asarray(values_ns, dtype=float) / 1e6
    p50, p90, p99, p999 = np.percentile(arr, [50, 90, 99, 99.9])
    return {
        "mean": float(arr.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "p99.9": float(p999),
        "max": float(arr.max()),
        "count": len(arr),
    }


def _slope(due_ns: Sequence[int], sent_ns: Sequence[int]) -> float | None:
    """Least-squares slope of send times against due times: 1 when the client keeps pace.

    A client falling behind sends ever later (slope above 1); one late send at either end of
    the run barely moves the fit, where it would move ``(n - 1) / (last - first)`` a lot.
    """
    if len(due_ns) < 2:
        return None
    x = np.asarray(due_ns, dtype=float)
    y = np.asarray(sent_ns, dtype=float)
    x -= x.mean()
    var = float((x * x).sum())
    return float((x * (y - y.mean())).sum()) / var if var > 0 else None


def _rate(times_ns: Sequence[int]) -> float | None:
    if len(times_ns) < 2:
        return None
    span = max(times_ns) - min(times_ns)
    return (len(times_ns) - 1) * 1e9 / span if span > 0 else None


def assess(
    samples: Sequence[RequestSample],
    stats: Sequence[EngineStats],
    *,
    requested_rate: float | None,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """The run's health report and saturation verdict.

    Args:
        samples: every request of the run (all workers merged).
        stats: each worker engine's self-measurements.
        requested_rate: the nominal request rate (``None`` for a closed loop).
        thresholds: limits for the verdict; defaults documented in the module docstring.
    """
    th = thresholds or Thresholds()
    sent = [s for s in samples if s.sent_ns]
    lags = [s.sent_ns - s.ready_ns for s in sent]
    queued = [s.ready_ns - s.scheduled_ns for s in sent if s.ready_ns > s.scheduled_ns]
    scheduled = _rate([s.scheduled_ns for s in sent]) if requested_rate is not None else None
    slope = _slope([s.scheduled_ns for s in sent], [s.sent_ns for s in sent]) if scheduled else None
    achieved = scheduled / slope if scheduled and slope else _rate([s.sent_ns for s in sent])
    cpu_ns = sum(st.cpu_ns for st in stats)
    spin_ns = sum(st.spin_ns for st in stats)
    events = sum(s.events for s in samples)
    reads = sum(st.reads for st in stats)
    util = max((st.cpu_ns / (st.end_ns - st.t0_ns) for st in stats if st.end_ns > st.t0_ns), default=0.0)
    loop_lag = [x for st in stats for x in st.loop_lag_ns]
    delays = [d for s in samples for d in s.server_delays_ns]
    n_req = max(1, len(sent))
    report: dict[str, Any] = {
        "send_lag_ms": _dist_ms(lags),
        "client_queue_ms": _dist_ms(queued),
        "requested_rate": requested_rate,
        "scheduled_rate": scheduled,
        "achieved_rate": achieved,
        "rate_error": (achieved / scheduled - 1.0) if achieved and scheduled else None,
        "cpu": {
            "total_s": cpu_ns / 1e9,
            "spin_s": spin_ns / 1e9,
            "utilization": util,
            "per_request_us": cpu_ns / 1e3 / n_req,
            "per_event_us": cpu_ns / 1e3 / events if events else None,
            "per_request_us_excl_spin": (cpu_ns - spin_ns) / 1e3 / n_req,
            "per_event_us_excl_spin": (cpu_ns - spin_ns) / 1e3 / events if events else None,
            "clock": "time.thread_time_ns of each engine thread, t0 to the last response",
        },
        "events": events,
        "reads": reads,
        "voluntary_switches": sum(st.voluntary_switches for st in stats),
        "involuntary_switches": sum(st.involuntary_switches for st in stats),
        "loop_lag_ms": _dist_ms(loop_lag),
        "server_receive_delay_ms": _dist_ms(delays),
        "connections_opened": sum(st.connections_opened for st in stats),
        "connect_failures": sum(st.connect_failures for st in stats),
        "workers": len(stats),
        "timer": stats[0].timer if stats else None,
        "wake_early_us": stats[0].wake_early_ns / 1e3 if stats else None,
        "thresholds": asdict(th),
    }
    reasons = _reasons(report, th, capped=bool(queued))
    report["client_saturated"] = bool(reasons)
    report["reasons"] = reasons
    return report


def _reasons(r: dict[str, Any], th: Thresholds, *, capped: bool) -> list[str]:
    out = []
    lag = r["send_lag_ms"]
    if lag and th.send_lag_p50_ms is not None and lag["p50"] > th.send_lag_p50_ms:
        out.append(f"send lag p50 {lag['p50']:.3f} ms exceeds {th.send_lag_p50_ms} ms: the client is behind schedule")
    if lag and lag["count"] >= MIN_TAIL_SAMPLES and th.send_lag_p99_ms is not None and lag["p99"] > th.send_lag_p99_ms:
        out.append(f"send lag p99 {lag['p99']:.3f} ms exceeds {th.send_lag_p99_ms} ms: the client stalls")
    err = r["rate_error"]
    if err is not None and not capped and th.rate_shortfall is not None and err < -th.rate_shortfall:
        out.append(
            f"achieved rate {r['achieved_rate']:.2f}/s is {-err:.2%} below the scheduled {r['scheduled_rate']:.2f}/s "
            f"(limit {th.rate_shortfall:.2%})"
        )
    cpu = r["cpu"]
    if th.cpu_utilization is not None and cpu["utilization"] > th.cpu_utilization:
        out.append(
            f"client CPU at {cpu['utilization']:.0%} of a core exceeds {th.cpu_utilization:.0%}: "
            "add workers or lower the load"
        )
    if th.cpu_per_request_us is not None and cpu["per_request_us"] > th.cpu_per_request_us:
        out.append(f"client CPU {cpu['per_request_us']:.1f} us per request exceeds {th.cpu_per_request_us} us")
    per_event = cpu["per_event_us"]
    if th.cpu_per_event_us is not None and per_event is not None and per_event > th.cpu_per_event_us:
        out.append(f"client CPU {per_event:.2f} us per event exceeds {th.cpu_per_event_us} us")
    loop = r["loop_lag_ms"]
    if (
        loop
        and loop["count"] >= MIN_TAIL_SAMPLES
        and th.loop_lag_p99_ms is not None
        and loop["p99"] > th.loop_lag_p99_ms
    ):
        out.append(f"event-loop lag p99 {loop['p99']:.3f} ms exceeds {th.loop_lag_p99_ms} ms: receive stamps are late")
    return out
