"""Plots of benchmark results (matplotlib, Agg backend): figures for notebooks, PNG files for reports.

Every function returns a :class:`matplotlib.figure.Figure`; pass ``path`` to also write a PNG.
Figures are created with :class:`~matplotlib.figure.Figure` directly (not ``pyplot``), so
nothing depends on a display or on a global figure state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

from matplotlib.figure import Figure

from labkit.bench.result import BenchResult


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def latency_vs_throughput(
    results: Sequence[BenchResult],
    *,
    throughput: str = "output_throughput",
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """Median and p99 TTFT and TPOT against throughput, one point per run (a sweep).

    Args:
        results: the runs, e.g. ``sweep(...).results``.
        throughput: x axis: ``output_throughput`` (tokens/s) or ``request_throughput`` (requests/s).
        path: also write a PNG here.
        title: figure title.
    """
    runs = sorted(results, key=lambda r: r.metrics.get(throughput) or 0.0)
    xs = [r.metrics.get(throughput) or 0.0 for r in runs]
    fig = Figure(figsize=(10, 4))
    for ax, metric, label in zip(fig.subplots(1, 2), ("ttft", "tpot"), ("TTFT (ms)", "TPOT (ms)"), strict=True):
        for stat, style in (("median", "o-"), ("p99", "s--")):
            ys = [r.metrics.get(f"{stat}_{metric}_ms") for r in runs]
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{stat} {metric.upper()}")
        for x, r in zip(xs, runs, strict=True):
            if r.client_saturated:
                ax.axvline(x, color="red", alpha=0.2)
        ax.set_xlabel("output tokens/s" if throughput == "output_throughput" else "requests/s")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "Latency against throughput" + (" (red: client saturated)" if any(
        r.client_saturated for r in runs) else ""))  # fmt: skip
    return _save(fig, path)


def distributions(result: BenchResult, *, path: str | Path | None = None, bins: int = 50) -> Figure:
    """Histograms of TTFT and TPOT over the run's completed requests, with median and p99 marked."""
    ok = [s for s in result.samples if s.success]
    ttft = [s.ttft_s * 1e3 for s in ok if s.ttft_s is not None]
    tpot = [t * 1e3 for s in ok if (t := s.tpot_s) is not None]
    fig = Figure(figsize=(10, 4))
    for ax, values, name in zip(fig.subplots(1, 2), (ttft, tpot), ("ttft", "tpot"), strict=True):
        if values:
            ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
            for stat, color in (("median", "black"), ("p99", "red")):
                v = result.metrics.get(f"{stat}_{name}_ms")
                if v is not None:
                    ax.axvline(v, color=color, linestyle="--", label=f"{stat} {v:.1f} ms")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"{name.upper()} (ms)")
        ax.set_ylabel("requests")
        ax.grid(alpha=0.3)
    fig.suptitle(f"TTFT and TPOT distributions: {result.header.get('profile', '')}")
    return _save(fig, path)


def send_lag(result: BenchResult, *, path: str | Path | None = None) -> Figure:
    """Send lag (actual minus due send time) of every request over the run: the client's self-check."""
    sent = sorted((s for s in result.samples if s.sent_ns), key=lambda s: s.ready_ns)
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    if sent:
        t0 = result.t0_ns or sent[0].ready_ns
        ax.plot([(s.ready_ns - t0) / 1e9 for s in sent], [(s.sent_ns - s.ready_ns) / 1e3 for s in sent], ".", ms=2)
    ax.set_xlabel("time into the run (s)")
    ax.set_ylabel("send lag (µs)")
    ax.set_yscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)
    verdict = "client saturated" if result.client_saturated else "client kept up"
    fig.suptitle(f"Send lag: {verdict}")
    return _save(fig, path)
