"""Lab steps for benchmarking a deployed model server: a concurrency sweep, goodput, cost, the planner.

The benchmark API (:func:`labkit.bench.run`, :class:`~labkit.bench.result.BenchResult`) measures one
load profile; these steps put a few runs together the way a notebook reads them::

    from labkit import bench

    sweep = bench.sweep_concurrency(url, model, levels=(1, 2, 4, 8), lab=lab)
    sweep                                   # table: latency and throughput per concurrency
    sweep.latency_plot()                    # latency against throughput (inline PNG)
    bench.goodput_under(sweep, {"ttft_ms": 1000, "tpot_ms": 80})   # the highest level meeting the SLO
    bench.cost_table(sweep, price)          # $/1M output tokens and $/1k requests per level
    bench.vs_planner(sweep, model, "g6.xlarge", max_model_len=8192)  # prediction beside measurement

Time: every number these steps show is in the cluster's time. On the ``embedded`` target the whole
cluster, the simulated vLLM server included, runs ``time_scale`` times faster than the wall clock
(60 by default), while the benchmark client runs in wall time. A sweep therefore measures in wall
time and converts every request's timestamps to cluster time (:func:`in_cluster_time`: intervals
times the scale, rates divided by it). The conversion also multiplies what the client, the HTTP stack
and the event loops spend: a wall millisecond of overhead becomes ``time_scale`` milliseconds. The
server's own ``/metrics`` are in cluster time and do not contain that overhead, so each sweep level
keeps them beside the client's numbers. On ``kind`` and ``eks`` the scale is 1 and nothing changes.
The client's self-checks (send lag, CPU) stay in wall time: they describe the client, not the server.
"""

from __future__ import annotations

import dataclasses
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.bench import cost as cost_mod
from labkit.bench import datasets as ds
from labkit.bench import metrics as metrics_mod
from labkit.bench.metrics import RequestSample
from labkit.bench.result import BenchResult
from labkit.bench.runner import Concurrency, Rate, RunOptions, endpoint_for, run
from labkit.context import LabContext, current
from labkit.errors import ConfigError, LabkitError, NotFound
from labkit.progress import progress

#: Concurrency levels of a default sweep: small enough for a fast lab, wide enough to see the knee.
DEFAULT_LEVELS: tuple[int, ...] = (1, 2, 4, 8, 16)


# ---------------------------------------------------------------------------------------------- display


class _Shown:
    """A result that prints as text and renders as HTML in a notebook (not as a dataclass repr)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._repr_pretty_ = _Shown._repr_pretty_  # type: ignore[method-assign]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def _text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]], caption: str, notes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:right'>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    foot = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        f"<table><caption style='text-align:left'>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + (f"<ul>{foot}</ul>" if foot else "")
    )


@dataclass(frozen=True)
class Plot:
    """A matplotlib figure that shows inline in a notebook (as PNG) and saves to a file.

    Attributes:
        figure: the :class:`matplotlib.figure.Figure`.
        name: a file-name stem for :meth:`save`.
    """

    figure: Any
    name: str = "plot"

    def png(self) -> bytes:
        """The figure as PNG bytes."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def save(self, path: str | Path) -> Path:
        """Write the PNG to ``path`` (folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.png())
        return path

    def __repr__(self) -> str:
        return f"Plot({self.name!r})"


# ---------------------------------------------------------------------------------------------- cluster time


def _stretch(t: int, t0: int, scale: float) -> int:
    return t0 + round((t - t0) * scale) if t else t


def in_cluster_time(result: BenchResult, time_scale: float) -> BenchResult:
    """The same run with its times in cluster time: intervals times ``time_scale``, rates divided by it (pure).

    Every request's timestamps are stretched around the run's start and the metrics are computed again
    from them (same SLOs and percentiles), so latencies, throughputs, goodput and plots agree. The
    client's health report stays in wall time (it describes the client). With a scale of 1 the
    result is returned as it is.

    Raises:
        ConfigError: a scale that is not positive.
    """
    if not time_scale > 0:
        raise ConfigError(
            f"time_scale must be positive, got {time_scale}", "pass the cluster's time scale (1 off embedded)"
        )
    if time_scale == 1.0:
        return result
    t0 = result.t0_ns

    def stretch(s: RequestSample) -> RequestSample:
        return dataclasses.replace(
            s,
            scheduled_ns=_stretch(s.scheduled_ns, t0, time_scale),
            ready_ns=_stretch(s.ready_ns, t0, time_scale),
            sent_ns=_stretch(s.sent_ns, t0, time_scale),
            done_ns=_stretch(s.done_ns, t0, time_scale),
            chunk_ns=[_stretch(t, t0, time_scale) for t in s.chunk_ns],
            server_delays_ns=[round(d * time_scale) for d in s.server_delays_ns],
        )

    samples = [stretch(s) for s in result.samples]
    percentiles = _percentiles(result.metrics)
    metrics = metrics_mod.compute(
        samples,
        duration_s=float(result.metrics["duration"]) * time_scale,
        percentiles=percentiles,
        slos=result.metrics.get("slos"),
    )
    header = dict(result.header)
    profile = dict((result.metadata or {}).get("profile") or {})
    if profile.get("kind") == "rate" and isinstance(profile.get("rate"), int | float):
        profile["rate"] = float(profile["rate"]) / time_scale
        header["request_rate"] = profile["rate"]
        header["profile"] = Rate(
            profile["rate"], profile.get("burstiness", 1.0), profile.get("arrival", "gamma")
        ).describe()
    metadata = {**result.metadata, "profile": profile, "time_scale": time_scale, "clock": "cluster"}
    return BenchResult(metrics, result.health, metadata, header, samples, t0)


def _percentiles(metrics: Mapping[str, Any]) -> tuple[float, ...]:
    found = []
    for key in metrics:
        if key.startswith("p") and key.endswith("_ttft_ms"):
            try:
                found.append(float(key[1:-8]))
            except ValueError:
                continue
    return tuple(sorted(found)) or metrics_mod.DEFAULT_PERCENTILES


def _cluster_time_scale(time_scale: float | None, lab: LabContext | None, kube: Any) -> float:
    if time_scale is not None:
        return float(time_scale)
    from labkit.compute.steps import kube_for

    return float(kube_for(lab, kube).time_scale)


# ---------------------------------------------------------------------------------------------- server view


def _scrape(url: str) -> Any:
    """The server's ``/metrics`` (vLLM), or ``None`` where it has none."""
    from labkit.serving.steps import scrape

    try:
        return scrape(url, timeout=5.0)
    except LabkitError:
        return None


def _server_means(view: Any) -> dict[str, float | None]:
    """Mean TTFT, inter-token latency, E2E and queue time (ms) from a ``/metrics`` difference."""
    if view is None:
        return {"ttft_ms": None, "itl_ms": None, "e2el_ms": None, "queue_ms": None}

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000.0

    return {
        "ttft_ms": ms(view.mean_ttft_s),
        "itl_ms": ms(view.mean_itl_s),
        "e2el_ms": ms(view.mean_e2e_s),
        "queue_ms": ms(view.mean_queue_s),
    }


# ---------------------------------------------------------------------------------------------- sweep


@dataclass
class SweepLevel:
    """One run of a sweep (or of :func:`run_at_rate`), in cluster time and as measured.

    Attributes:
        concurrency: requests kept in flight (0 for an open-loop run at a rate).
        result: the run in cluster time (what tables, plots, goodput and cost use).
        wall: the run as the client measured it (wall time).
        server: the server's ``/metrics`` over this level (a difference of two scrapes), if it has them.
    """

    concurrency: int
    result: BenchResult
    wall: BenchResult
    server: Any = None

    @property
    def server_means(self) -> dict[str, float | None]:
        """The server's own mean TTFT, inter-token latency, E2E and queue time, in ms."""
        return _server_means(self.server)

    def clocks(self) -> ClockView:
        """This level's means three ways: the client in wall time, the client in cluster time, the server."""
        scale = float((self.result.metadata or {}).get("time_scale") or 1.0)
        server = self.server_means
        rows = []
        for label, r in (("client, wall time", self.wall), ("client, cluster time", self.result)):
            m = r.metrics
            rows.append((label, m["mean_ttft_ms"], m["mean_tpot_ms"], m["mean_e2el_ms"], m["output_throughput"]))
        rows.append(("server /metrics", server["ttft_ms"], server["itl_ms"], server["e2el_ms"], None))
        return ClockView(self.concurrency, scale, tuple(rows))


@dataclass(frozen=True)
class ClockView(_Shown):
    """One level's mean TTFT, TPOT, E2E (ms) and output tokens/s as the client and the server see them.

    Attributes:
        concurrency: the level.
        time_scale: cluster seconds per wall second.
        rows: ``(view, TTFT, TPOT, E2E, output tokens/s)``; the server's TPOT is its mean inter-token latency.
    """

    concurrency: int
    time_scale: float
    rows: tuple[tuple[str, float | None, float | None, float | None, float | None], ...]

    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        columns = ("view", "TTFT ms", "TPOT ms", "E2E ms", "out tok/s")
        rows = [(r[0], _cell(r[1], 2), _cell(r[2], 2), _cell(r[3], 1), _cell(r[4], 1)) for r in self.rows]
        return columns, rows

    def _caption(self) -> str:
        return f"concurrency {self.concurrency}, means; the cluster clock runs {self.time_scale:g}x the wall clock"

    def __str__(self) -> str:
        columns, rows = self._table()
        return f"{self._caption()}\n{_text_table(columns, rows)}"

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return _html_table(columns, rows, self._caption())


@dataclass
class ConcurrencySweep(_Shown):
    """A closed-loop sweep over concurrency levels against one endpoint.

    Attributes:
        url: the endpoint's base URL.
        model: the model name sent.
        levels: one :class:`SweepLevel` per concurrency, in the order run.
        time_scale: cluster seconds per wall second (1 off ``embedded``).
        dataset: how the prompts were made.
        slos: the SLOs the runs were scored against (``{}`` when none).
    """

    url: str
    model: str
    levels: list[SweepLevel]
    time_scale: float = 1.0
    dataset: dict[str, Any] = field(default_factory=dict)
    slos: dict[str, float] = field(default_factory=dict)

    @property
    def results(self) -> list[BenchResult]:
        """The runs in cluster time, in the order run."""
        return [lv.result for lv in self.levels]

    @property
    def concurrencies(self) -> list[int]:
        return [lv.concurrency for lv in self.levels]

    def level(self, concurrency: int) -> SweepLevel:
        """The level run at ``concurrency``.

        Raises:
            NotFound: the sweep did not run that level.
        """
        for lv in self.levels:
            if lv.concurrency == concurrency:
                return lv
        raise NotFound(f"the sweep has no concurrency {concurrency}", f"pick one of {self.concurrencies}")

    def result(self, concurrency: int) -> BenchResult:
        """The run at ``concurrency``, in cluster time."""
        return self.level(concurrency).result

    def rows(self) -> list[dict[str, Any]]:
        """One row of headline numbers per level (cluster time; the client's health in wall time)."""
        out = []
        for lv in self.levels:
            m, h = lv.result.metrics, lv.result.health
            lag = h.get("send_lag_ms") or {}
            server = lv.server_means
            out.append(
                {
                    "concurrency": lv.concurrency,
                    "completed": m["completed"],
                    "failed": m["failed"],
                    "request_throughput": m["request_throughput"],
                    "output_throughput": m["output_throughput"],
                    "median_ttft_ms": m["median_ttft_ms"],
                    "p99_ttft_ms": m.get("p99_ttft_ms"),
                    "median_tpot_ms": m["median_tpot_ms"],
                    "p99_tpot_ms": m.get("p99_tpot_ms"),
                    "mean_ttft_ms": m["mean_ttft_ms"],
                    "mean_tpot_ms": m["mean_tpot_ms"],
                    "mean_e2el_ms": m["mean_e2el_ms"],
                    "median_e2el_ms": m["median_e2el_ms"],
                    "server_mean_ttft_ms": server["ttft_ms"],
                    "server_mean_itl_ms": server["itl_ms"],
                    "send_lag_p99_us": None if lag.get("p99") is None else lag["p99"] * 1000.0,
                    "client_saturated": lv.result.client_saturated,
                }
            )
        return out

    def _unit(self) -> str:
        return "cluster time" if self.time_scale != 1.0 else "wall time"

    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        columns = ("conc", "done", "failed", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
                   "E2E p50", "server TTFT", "server ITL", "lag p99 µs", "saturated")  # fmt: skip
        rows = [
            (
                str(r["concurrency"]),
                str(r["completed"]),
                str(r["failed"]),
                _cell(r["request_throughput"], 2),
                _cell(r["output_throughput"], 1),
                _cell(r["median_ttft_ms"]),
                _cell(r["p99_ttft_ms"]),
                _cell(r["median_tpot_ms"]),
                _cell(r["p99_tpot_ms"]),
                _cell(r["median_e2el_ms"], 0),
                _cell(r["server_mean_ttft_ms"]),
                _cell(r["server_mean_itl_ms"]),
                _cell(r["send_lag_p99_us"], 0),
                _cell(r["client_saturated"]),
            )
            for r in self.rows()
        ]
        return columns, rows

    def _caption(self) -> str:
        d = self.dataset
        shape = f"{d.get('input_tokens')} input, {d.get('output_tokens')} output tokens" if d else ""
        scale = f"; measured in wall time, converted at time scale {self.time_scale:g}" if self.time_scale != 1 else ""
        return (
            f"closed-loop sweep of {self.model} ({shape}); latencies in ms of {self._unit()}{scale}; "
            "server = its own /metrics (means); lag = client send lag (wall)"
        )

    def __str__(self) -> str:
        columns, rows = self._table()
        return f"{self._caption()}\n{_text_table(columns, rows)}"

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return _html_table(columns, rows, self._caption())

    # -------------------------------------------------------------- plots

    def latency_plot(self, *, throughput: str = "output_throughput") -> Plot:
        """Median and p99 TTFT and TPOT against throughput, one point per level (labelled with its concurrency)."""
        from labkit.bench import plots

        title = f"Latency against throughput ({self._unit()})"
        if any(r.client_saturated for r in self.results):
            title += " (red: client saturated)"
        fig = plots.latency_vs_throughput(self.results, throughput=throughput, title=title)
        for ax, metric in zip(fig.axes, ("ttft", "tpot"), strict=False):
            for lv in self.levels:
                x, y = lv.result.metrics.get(throughput), lv.result.metrics.get(f"median_{metric}_ms")
                if x is not None and y is not None:
                    ax.annotate(f"c={lv.concurrency}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        return Plot(fig, "latency-vs-throughput")

    def distributions(self, concurrency: int | None = None, *, bins: int = 20) -> Plot:
        """Histograms of TTFT and TPOT at one level (default: the highest), median and p99 marked."""
        from labkit.bench import plots

        lv = self.level(concurrency) if concurrency is not None else max(self.levels, key=lambda x: x.concurrency)
        return Plot(plots.distributions(lv.result, bins=bins), f"distributions-c{lv.concurrency}")

    def send_lag_plot(self, concurrency: int | None = None) -> Plot:
        """The client's send lag over one run (default: the highest level)."""
        from labkit.bench import plots

        lv = self.level(concurrency) if concurrency is not None else max(self.levels, key=lambda x: x.concurrency)
        return Plot(plots.send_lag(lv.wall), f"send-lag-c{lv.concurrency}")

    # -------------------------------------------------------------- honesty and files

    def honesty(self) -> Honesty:
        """The client's self-checks per level: send lag, achieved send rate, CPU, the saturation verdict."""
        return honesty([lv.wall for lv in self.levels], labels=[f"c={c}" for c in self.concurrencies])

    def save(self, folder: str | Path) -> list[Path]:
        """Write each level's result (cluster time, with per-request details) and the plots into ``folder``."""
        folder = Path(folder)
        written = [lv.result.save(folder / f"concurrency-{lv.concurrency}.json", details=True) for lv in self.levels]
        written.append(self.latency_plot().save(folder / "latency-vs-throughput.png"))
        written.append(self.distributions().save(folder / "distributions.png"))
        return written


def sweep_concurrency(
    url: str,
    model: str | None = None,
    levels: Sequence[int] = DEFAULT_LEVELS,
    dataset: ds.Dataset | None = None,
    *,
    input_tokens: int | tuple[int, int] = 256,
    output_tokens: int | tuple[int, int] = (16, 48),
    rounds: int = 4,
    min_requests: int = 8,
    warmup: int = 2,
    slos: Mapping[str, float] | Any = None,
    seed: int | None = None,
    time_scale: float | None = None,
    server_metrics: bool = True,
    options: RunOptions | None = None,
    lab: LabContext | None = None,
    kube: Any = None,
) -> ConcurrencySweep:
    """Run one closed-loop benchmark per concurrency level and put the results side by side.

    Each level keeps ``concurrency`` requests in flight and sends ``max(min_requests, rounds x
    concurrency)`` of them, so every level runs about ``rounds`` requests per slot. A few warm-up
    requests go first and are not counted (the first request on a fresh connection or server pays
    one-off costs). The server's ``/metrics`` are read before and after each level.

    Args:
        url: the server's base URL (``serving.url(server)``).
        model: the model name to send (default: the first one the server lists).
        levels: the concurrency levels, run in this order.
        dataset: the prompts (default: synthetic prompts of ``input_tokens`` and ``output_tokens``).
        input_tokens: prompt length, or a ``(low, high)`` range, for the default dataset.
        output_tokens: output length, or a ``(low, high)`` range; a range keeps the closed loop's
            requests from finishing in lockstep.
        rounds: requests per concurrency slot.
        min_requests: fewest requests per level.
        warmup: requests sent first and not counted.
        slos: per-request goodput thresholds in ms (``{"ttft_ms": ..., "tpot_ms": ...}`` or a planner ``SLO``).
        seed: seeds the prompts (default: the lab's seed).
        time_scale: cluster seconds per wall second (default: the lab cluster's; 1 off ``embedded``).
        server_metrics: read the server's ``/metrics`` around each level.
        options: the benchmark's run options (workers, thresholds, percentiles).
        lab: the lab (default: the current one).
        kube: the cluster connection (default: the lab's).

    Raises:
        ConfigError: no levels, a level below 1, or bad SLOs.
        Unreachable: the server does not answer.
    """
    levels = [int(c) for c in levels]
    if not levels or min(levels) < 1:
        raise ConfigError(f"concurrency levels must be 1 or more, got {levels}", "pass e.g. levels=(1, 2, 4, 8)")
    slo = slo_dict(slos)
    scale = _cluster_time_scale(time_scale, lab, kube)
    if seed is None:
        seed = (lab or current()).seed
    counts = {c: max(min_requests, rounds * c) for c in levels}
    data = dataset or ds.synthetic(
        max(counts.values()), input_tokens=input_tokens, output_tokens=output_tokens, seed=seed
    )
    endpoint = endpoint_for(url, model=model)
    if warmup > 0:
        run(endpoint, data, Concurrency(1), num_requests=warmup, seed=seed, options=options)
    done: list[SweepLevel] = []
    for c in progress(levels, desc="concurrency sweep"):
        before = _scrape(url) if server_metrics else None
        wall = run(endpoint, data, Concurrency(c), num_requests=counts[c], slos=slo or None, seed=seed, options=options)
        after = _scrape(url) if before is not None else None
        server = after.since(before) if after is not None else None
        done.append(SweepLevel(c, in_cluster_time(wall, scale), wall, server))
    return ConcurrencySweep(url, endpoint.model, done, scale, dict(data.description), slo)


def run_at_rate(
    url: str,
    rate: float,
    model: str | None = None,
    dataset: ds.Dataset | None = None,
    *,
    num_requests: int = 48,
    input_tokens: int | tuple[int, int] = 256,
    output_tokens: int | tuple[int, int] = (16, 48),
    burstiness: float = 1.0,
    slos: Mapping[str, float] | Any = None,
    seed: int | None = None,
    time_scale: float | None = None,
    options: RunOptions | None = None,
    lab: LabContext | None = None,
    kube: Any = None,
) -> SweepLevel:
    """One open-loop run at ``rate`` requests per second of cluster time (Poisson arrivals by default).

    The client sends at ``rate x time_scale`` per wall second, on absolute deadlines; its health
    report says whether it kept that schedule (requested against achieved rate, send lag).
    Arguments not listed are as in :func:`sweep_concurrency`.

    Args:
        url: the server's base URL.
        rate: mean requests per second of cluster time.
        num_requests: requests to send.
        burstiness: the gamma shape of the gaps between arrivals (1 is Poisson).

    Returns:
        A :class:`SweepLevel` with ``concurrency`` 0: the run in cluster time, as measured, and the
        server's ``/metrics`` over it.

    Raises:
        ConfigError: a rate that is not positive.
    """
    if not rate > 0:
        raise ConfigError(f"rate must be positive, got {rate}", "pass requests per second, e.g. rate=2.0")
    scale = _cluster_time_scale(time_scale, lab, kube)
    if seed is None:
        seed = (lab or current()).seed
    data = dataset or ds.synthetic(num_requests, input_tokens=input_tokens, output_tokens=output_tokens, seed=seed)
    before = _scrape(url)
    wall = run(
        url,
        data,
        Rate(rate * scale, burstiness=burstiness),
        model=model,
        num_requests=num_requests,
        slos=slo_dict(slos) or None,
        seed=seed,
        options=options,
    )
    after = _scrape(url) if before is not None else None
    return SweepLevel(0, in_cluster_time(wall, scale), wall, after.since(before) if after is not None else None)


# ---------------------------------------------------------------------------------------------- honesty


@dataclass(frozen=True)
class Honesty(_Shown):
    """The client's self-checks, one row per run: can these numbers be trusted?

    Attributes:
        rows: per run: label, send lag p50/p99 (µs), the requested rate, the rate its random schedule
            drew and the rate achieved (per wall second; a closed loop has only the achieved one), client
            CPU use of one core, CPU per request (µs), saturated, reasons.
    """

    rows: tuple[dict[str, Any], ...]

    @property
    def any_saturated(self) -> bool:
        return any(r["client_saturated"] for r in self.rows)

    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        columns = ("run", "lag p50 µs", "lag p99 µs", "requested /s", "scheduled /s", "achieved /s", "rate error",
                   "client CPU", "CPU µs/req", "saturated")  # fmt: skip
        rows = [
            (
                r["label"],
                _cell(r["send_lag_p50_us"], 0),
                _cell(r["send_lag_p99_us"], 0),
                _cell(r["requested_rate"], 1),
                _cell(r["scheduled_rate"], 1),
                _cell(r["achieved_rate"], 1),
                "-" if r["rate_error"] is None else f"{r['rate_error']:+.2%}",
                "-" if r["cpu_utilization"] is None else f"{r['cpu_utilization']:.0%}",
                _cell(r["cpu_per_request_us"], 0),
                _cell(r["client_saturated"]),
            )
            for r in self.rows
        ]
        return columns, rows

    def notes(self) -> list[str]:
        out = [f"{r['label']}: {why}" for r in self.rows for why in r["reasons"]]
        if not out:
            out.append("no run exceeded the saturation thresholds: the client kept its schedule")
        return out

    def __str__(self) -> str:
        columns, rows = self._table()
        caption = "client self-checks (wall time; rates per wall second)"
        return "\n".join([caption, _text_table(columns, rows), *(f"  {n}" for n in self.notes())])

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return _html_table(columns, rows, "client self-checks (wall time; rates per wall second)", self.notes())


def honesty(results: Sequence[BenchResult], *, labels: Sequence[str] | None = None) -> Honesty:
    """The self-honesty fields of some runs as one table (pure; pass wall-time results).

    A closed loop has no requested rate: its achieved rate is the rate requests left at. The rate
    error compares the achieved rate with the schedule's own (a Poisson schedule of a few dozen
    requests draws a rate some percent off the requested one; that is the schedule, not the client).
    """
    rows = []
    for i, r in enumerate(results):
        h = r.health
        lag = h.get("send_lag_ms") or {}
        cpu = h.get("cpu") or {}
        rows.append(
            {
                "label": labels[i] if labels else str(r.header.get("profile", i)),
                "send_lag_p50_us": None if lag.get("p50") is None else lag["p50"] * 1000.0,
                "send_lag_p99_us": None if lag.get("p99") is None else lag["p99"] * 1000.0,
                "requested_rate": h.get("requested_rate"),
                "scheduled_rate": h.get("scheduled_rate"),
                "achieved_rate": h.get("achieved_rate"),
                "rate_error": h.get("rate_error"),
                "cpu_utilization": cpu.get("utilization"),
                "cpu_per_request_us": cpu.get("per_request_us"),
                "client_saturated": r.client_saturated,
                "reasons": tuple(h.get("reasons") or ()),
            }
        )
    return Honesty(tuple(rows))


# ---------------------------------------------------------------------------------------------- goodput


def slo_dict(slo: Mapping[str, float] | Any) -> dict[str, float]:
    """SLO thresholds as ``{"ttft_ms": ..., "tpot_ms": ...}`` from a mapping or a planner ``SLO``."""
    if slo is None:
        return {}
    if isinstance(slo, Mapping):
        return metrics_mod.validate_slos(slo)
    values = {k: getattr(slo, k, None) for k in metrics_mod.SLO_METRICS}
    found = {k: v for k, v in values.items() if v is not None}
    if not found:
        raise ConfigError(f"{slo!r} names no SLO", "pass e.g. {'ttft_ms': 1000, 'tpot_ms': 80} or planner.SLO(...)")
    return metrics_mod.validate_slos(found)


@dataclass(frozen=True)
class Goodput(_Shown):
    """Goodput of each sweep level under one SLO, and the highest level that meets it.

    A level meets the SLO when nothing failed, the client was not saturated, and at least
    ``attainment`` of its completed requests met every threshold.

    Attributes:
        slo: thresholds in ms (cluster time).
        attainment: the share of requests that must meet them.
        rows: per level: concurrency, completed, good, fraction, goodput and throughput (req/s), meets, why not.
    """

    slo: dict[str, float]
    attainment: float
    rows: tuple[dict[str, Any], ...]

    @property
    def best_concurrency(self) -> int | None:
        """The highest concurrency that meets the SLO (``None`` if none does)."""
        ok = [r["concurrency"] for r in self.rows if r["meets"]]
        return max(ok) if ok else None

    @property
    def best(self) -> dict[str, Any] | None:
        """The row of :attr:`best_concurrency`."""
        c = self.best_concurrency
        return next((r for r in self.rows if r["concurrency"] == c), None) if c is not None else None

    def row(self, concurrency: int) -> dict[str, Any]:
        for r in self.rows:
            if r["concurrency"] == concurrency:
                return r
        raise NotFound(f"no row for concurrency {concurrency}", f"pick one of {[r['concurrency'] for r in self.rows]}")

    def _caption(self) -> str:
        slo = ", ".join(f"{k.removesuffix('_ms').upper()} <= {v:g} ms" for k, v in self.slo.items())
        return f"goodput under {slo} for {self.attainment:.0%} of requests"

    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        columns = ("conc", "done", "good", "good %", "goodput req/s", "throughput req/s", "meets", "why not")
        rows = [
            (
                str(r["concurrency"]),
                str(r["completed"]),
                str(r["good"]),
                "-" if r["fraction"] is None else f"{r['fraction']:.0%}",
                _cell(r["goodput"], 2),
                _cell(r["throughput"], 2),
                _cell(r["meets"]),
                r["why_not"],
            )
            for r in self.rows
        ]
        return columns, rows

    def _verdict(self) -> str:
        best = self.best
        if best is None:
            return "no level meets the SLO: lower the load, relax the SLO or use a faster GPU"
        return (
            f"highest concurrency meeting the SLO: {best['concurrency']} "
            f"({best['goodput']:.2f} good requests/s of {best['throughput']:.2f})"
        )

    def __str__(self) -> str:
        columns, rows = self._table()
        return "\n".join([self._caption(), _text_table(columns, rows), self._verdict()])

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return _html_table(columns, rows, self._caption(), [self._verdict()])


def _goodput_row(concurrency: int, result: BenchResult, slo: dict[str, float], attainment: float) -> dict[str, Any]:
    m = result.metrics
    ok = [s for s in result.samples if s.success]
    good = sum(1 for s in ok if metrics_mod.meets_slos(s, slo))
    duration = float(m["duration"])
    fraction = good / len(ok) if ok else None
    missed = []
    for key, limit in slo.items():
        misses = sum(1 for s in ok if not metrics_mod.meets_slos(s, {key: limit}))
        if misses:
            missed.append(f"{misses} over the {key.removesuffix('_ms').upper()} SLO")
    why = []
    if m["failed"]:
        why.append(f"{m['failed']} failed")
    if result.client_saturated:
        why.append("client saturated")
    if fraction is None or fraction < attainment:
        why.extend(missed or ["no completed requests"])
    meets = not why
    return {
        "concurrency": concurrency,
        "completed": len(ok),
        "good": good,
        "fraction": fraction,
        "goodput": good / duration if duration > 0 else 0.0,
        "throughput": len(ok) / duration if duration > 0 else 0.0,
        "meets": meets,
        "why_not": "; ".join(why),
    }


def goodput_under(
    results: ConcurrencySweep | Sequence[BenchResult], slo: Mapping[str, float] | Any, *, attainment: float = 0.9
) -> Goodput:
    """Score each run against a per-request SLO and find the highest concurrency that meets it (pure).

    Args:
        results: a sweep, or closed-loop results (cluster time).
        slo: thresholds in ms: ``{"ttft_ms": 1000, "tpot_ms": 80}`` or a planner ``SLO``. A request meets a
            threshold when its value is at most the threshold; a single-token answer has no TPOT and meets it.
        attainment: the share of completed requests that must meet every threshold (0.9: "p90 within SLO").

    Raises:
        ConfigError: no thresholds, or an attainment outside (0, 1].
    """
    thresholds = slo_dict(slo)
    if not thresholds:
        raise ConfigError("goodput needs at least one SLO", "pass e.g. {'ttft_ms': 1000, 'tpot_ms': 80}")
    if not 0 < attainment <= 1:
        raise ConfigError(f"attainment must be in (0, 1], got {attainment}", "use e.g. 0.9 (90% of requests)")
    pairs = _pairs(results)
    rows = tuple(_goodput_row(c, r, thresholds, attainment) for c, r in pairs)
    return Goodput(thresholds, attainment, rows)


def _pairs(results: ConcurrencySweep | Sequence[BenchResult] | BenchResult) -> list[tuple[int, BenchResult]]:
    if isinstance(results, ConcurrencySweep):
        return [(lv.concurrency, lv.result) for lv in results.levels]
    if isinstance(results, BenchResult):
        results = [results]
    out = []
    for r in results:
        profile = (r.metadata or {}).get("profile") or {}
        c = profile.get("concurrency") or r.header.get("max_concurrency") or 0
        out.append((int(c), r))
    return out


# ---------------------------------------------------------------------------------------------- cost


def _price_parts(price: Any) -> tuple[float, str]:
    if price is None:
        raise ConfigError(
            "no price is known for the serving instance", "pass its USD per hour, e.g. cost_table(sweep, 0.80)"
        )
    if hasattr(price, "usd_per_hour"):
        return float(price.usd_per_hour), price.describe() if hasattr(price, "describe") else "given"
    if isinstance(price, int | float) and not isinstance(price, bool):
        return float(price), f"${float(price):.4f}/h (given)"
    raise ConfigError(f"not a price: {price!r}", "pass USD per hour or a labkit.aws.prices.Price")


@dataclass(frozen=True)
class CostTable(_Shown):
    """What each sweep level costs per token and per request at the pool's hourly price.

    Attributes:
        price_per_hour: USD per hour of the serving instances.
        source: where the price came from (instance, capacity type, region, source and date).
        rows: per level: concurrency, output tokens/s, requests/s, $/1M output tokens, $/1k requests.
        time_scale: the sweep's time scale (throughputs are per cluster second).
    """

    price_per_hour: float
    source: str
    rows: tuple[dict[str, Any], ...]
    time_scale: float = 1.0

    def at(self, concurrency: int) -> dict[str, Any]:
        """The row of one level."""
        for r in self.rows:
            if r["concurrency"] == concurrency:
                return r
        raise NotFound(f"no row for concurrency {concurrency}", f"pick one of {[r['concurrency'] for r in self.rows]}")

    @property
    def cheapest(self) -> dict[str, Any] | None:
        """The level with the lowest $/1M output tokens."""
        priced = [r for r in self.rows if r["usd_per_million_output_tokens"] is not None]
        return min(priced, key=lambda r: r["usd_per_million_output_tokens"]) if priced else None

    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        columns = ("conc", "out tok/s", "req/s", "$/1M out tokens", "$/1k requests")
        rows = [
            (
                str(r["concurrency"]),
                _cell(r["output_tokens_per_s"], 1),
                _cell(r["requests_per_s"], 3),
                _cell(r["usd_per_million_output_tokens"], 2),
                _cell(r["usd_per_thousand_requests"], 3),
            )
            for r in self.rows
        ]
        return columns, rows

    def _caption(self) -> str:
        per = " (per cluster second)" if self.time_scale != 1.0 else ""
        return f"cost at ${self.price_per_hour:.4f}/hour{per}: {self.source}"

    def notes(self) -> list[str]:
        out = ["$/1M output tokens = $/hour / 3600 / output tokens per second x 1,000,000; $/1k requests likewise"]
        best = self.cheapest
        if best is not None:
            out.append(
                f"cheapest per token at concurrency {best['concurrency']}: the instance costs the same per hour "
                "however little it serves, so a busier server costs less per token"
            )
        if self.time_scale != 1.0:
            out.append(
                f"throughputs are per cluster second: per wall second the simulated GPU serves {self.time_scale:g} "
                f"times as much, which would make tokens look {self.time_scale:g} times cheaper than they are"
            )
        return out

    def __str__(self) -> str:
        columns, rows = self._table()
        return "\n".join([self._caption(), _text_table(columns, rows), *(f"  {n}" for n in self.notes())])

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return _html_table(columns, rows, self._caption(), self.notes())


def cost_table(results: ConcurrencySweep | Sequence[BenchResult], price: Any, *, count: int = 1) -> CostTable:
    """$/1M output tokens and $/1k requests for each run at ``count`` instances of ``price`` (pure).

    Args:
        results: a sweep, or closed-loop results in cluster time.
        price: USD per hour of one instance, or a :class:`labkit.aws.prices.Price` (its source and date are kept).
        count: instances serving (replicas on one-GPU instances).
    """
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}", "pass the number of serving instances")
    per_hour, source = _price_parts(price)
    if count != 1:
        source = f"{count} x {source}"
    rows = []
    for c, r in _pairs(results):
        est = cost_mod.estimate(
            per_hour * count, float(r.metrics["output_throughput"]), float(r.metrics["request_throughput"])
        )
        rows.append(
            {
                "concurrency": c,
                "output_tokens_per_s": est.output_tokens_per_s,
                "requests_per_s": est.requests_per_s,
                "usd_per_million_output_tokens": est.usd_per_million_output_tokens,
                "usd_per_thousand_requests": est.usd_per_thousand_requests,
            }
        )
    scale = results.time_scale if isinstance(results, ConcurrencySweep) else 1.0
    return CostTable(per_hour * count, source, tuple(rows), scale)


# ---------------------------------------------------------------------------------------------- where it runs


@dataclass(frozen=True)
class ServingInstance(_Shown):
    """The node a model server runs on, what it is, and what it costs.

    Attributes:
        server: ``namespace/name`` of the model server.
        node: the node's name.
        instance_type: EC2 instance type (``node.kubernetes.io/instance-type``).
        capacity_type: ``on-demand`` or ``spot``.
        zone: the Availability Zone.
        gpu: the GPU model, as the planner names it.
        gpu_count: GPUs of the instance.
        price: the instance's hourly price with its source and date, if known.
    """

    server: str
    node: str
    instance_type: str
    capacity_type: str
    zone: str
    gpu: str
    gpu_count: int
    price: Any = None

    def __str__(self) -> str:
        money = self.price.describe() if self.price is not None else "no price known"
        return (
            f"{self.server} runs on node {self.node}: {self.instance_type} ({self.gpu_count}x {self.gpu}), "
            f"{self.capacity_type} in {self.zone}\n  price: {money}"
        )


def serving_instance(server: Any, *, lab: LabContext | None = None, kube: Any = None) -> ServingInstance:
    """Find the node serving a model server, its instance type and GPU, and the instance's price.

    The price comes from the AWS layer (:func:`labkit.aws.prices.price`: the Price List API or spot
    price history, else the kit's dated fallback table), for the node's capacity type.

    Args:
        server: a :class:`labkit.serving.manifests.ModelServer` (its ``name`` and ``namespace``).

    Raises:
        NotFound: no running pod of the server, or its node is gone.
    """
    from labkit.aws import connect, prices
    from labkit.compute.steps import kube_for, lab_context
    from labkit.planner import gpu_for_instance_type

    lab = lab_context(lab)
    k = kube_for(lab, kube)
    selector = f"app.kubernetes.io/name={server.name}"
    pods = [
        p
        for p in k.list("v1", "Pod", server.namespace, label_selector=selector).items
        if (p.get("spec") or {}).get("nodeName") and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    if not pods:
        raise NotFound(
            f"no running pod of {server.namespace}/{server.name}",
            "deploy it first: serving.deploy(server, lab=lab)",
        )
    node_name = str(sorted(pods, key=lambda p: p["metadata"]["name"])[0]["spec"]["nodeName"])
    node = k.try_get("v1", "Node", node_name)
    if node is None:
        raise NotFound(f"node {node_name} of {server.name} is gone", "wait until the server is Ready again")
    labels = (node.get("metadata") or {}).get("labels") or {}
    itype = str(labels.get("node.kubernetes.io/instance-type") or "")
    capacity = str(labels.get("karpenter.sh/capacity-type") or labels.get("eks.amazonaws.com/capacityType") or "")
    capacity = capacity.lower().replace("_", "-") or "on-demand"
    try:
        gpu, count = gpu_for_instance_type(itype)
    except (LabkitError, KeyError, ValueError):
        gpu = str(
            labels.get("karpenter.k8s.aws/instance-gpu-name")
            or labels.get("eks.amazonaws.com/instance-gpu-name")
            or "?"
        )
        count = int(labels.get("karpenter.k8s.aws/instance-gpu-count") or 0)
    price = None
    if itype:
        kind = prices.SPOT if capacity == "spot" else prices.ON_DEMAND
        try:
            session = connect(lab.settings, platform=lab.platform())
            price = prices.price(session, itype, kind)
        except LabkitError as exc:  # no AWS to ask (e.g. kind without an account): the kit's dated table
            price = prices.fallback_price(itype, lab.settings.region, kind, f"AWS could not be asked ({exc.what})")
    return ServingInstance(
        f"{server.namespace}/{server.name}",
        node_name,
        itype,
        capacity,
        str(labels.get("topology.kubernetes.io/zone") or "?"),
        gpu,
        count,
        price,
    )


# ---------------------------------------------------------------------------------------------- the planner


#: Quantities set beside each other: (label, measured field, prediction field, server field).
_GAP_QUANTITIES = (
    ("TTFT mean (ms)", "mean_ttft_ms", "mean_ttft_ms", "ttft_ms"),
    ("TPOT mean (ms)", "mean_tpot_ms", "mean_tpot_ms", "itl_ms"),
    ("E2E mean (ms)", "mean_e2el_ms", "mean_e2el_ms", "e2el_ms"),
    ("output tokens/s", "output_throughput", "output_throughput", None),
    ("requests/s", "request_throughput", "request_throughput", None),
)


@dataclass(frozen=True)
class PlannerGap(_Shown):
    """The planner's prediction beside the measurement, level by level, with the gap explained.

    Attributes:
        model: the model predicted.
        gpu: the GPU or instance type predicted for.
        rows: per level and quantity: ``concurrency``, ``quantity``, ``planner``, ``server`` (its
            ``/metrics``, where it has the quantity), ``measured`` (the client, cluster time) and
            ``ratio`` (measured / planner).
        notes: why measurement and prediction differ, with this run's numbers.
        in_flight: per level, the mean number of requests in flight (Little's law: throughput x mean E2E).
    """

    model: str
    gpu: str
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]
    in_flight: dict[int, float] = field(default_factory=dict)

    def ratio(self, concurrency: int, quantity: str) -> float | None:
        """measured / planner for one level and quantity (e.g. ``"E2E mean (ms)"``)."""
        for r in self.rows:
            if r["concurrency"] == concurrency and r["quantity"] == quantity:
                return r["ratio"]
        raise NotFound(f"no {quantity!r} at concurrency {concurrency}", "see .rows for what was compared")

    def _value(self, concurrency: int, quantity: str, column: str) -> Any:
        row = next((r for r in self.rows if r["concurrency"] == concurrency and r["quantity"] == quantity), None)
        return None if row is None else row[column]

    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        columns = ("conc", "TTFT plan", "TTFT server", "TTFT client", "TPOT plan", "TPOT server", "TPOT client",
                   "E2E plan", "E2E client", "E2E ratio", "tok/s plan", "tok/s client", "tok/s ratio")  # fmt: skip
        out = []
        for c in sorted({r["concurrency"] for r in self.rows}):
            row = [str(c)]
            for quantity in ("TTFT mean (ms)", "TPOT mean (ms)"):
                row += [_cell(self._value(c, quantity, k)) for k in ("planner", "server", "measured")]
            for quantity, digits in (("E2E mean (ms)", 0), ("output tokens/s", 1)):
                ratio = self._value(c, quantity, "ratio")
                row += [_cell(self._value(c, quantity, k), digits) for k in ("planner", "measured")]
                row.append("-" if ratio is None else f"{ratio:.2f}")
            out.append(tuple(row))
        return columns, out

    def _caption(self) -> str:
        return (
            f"planner ({self.model} on {self.gpu}) beside the measurement: means in ms, server = its own /metrics, "
            "client = the benchmark's measurement, ratio = client / planner"
        )

    def __str__(self) -> str:
        columns, rows = self._table()
        return "\n".join([self._caption(), _text_table(columns, rows), *(f"  - {n}" for n in self.notes)])

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return _html_table(columns, rows, self._caption(), self.notes)


def vs_planner(
    results: ConcurrencySweep | Sequence[BenchResult],
    model: str,
    gpu: str,
    *,
    tensor_parallel: int = 1,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = 0.9,
) -> PlannerGap:
    """The planner's steady-state prediction for each level's load beside what was measured.

    Each level is predicted with ``ServingPerf.predict(concurrency, prompt, output)`` for the run's
    mean prompt and output tokens (the server's counts), on ``gpu`` (a GPU or an instance type such
    as ``g6.xlarge``) with the server's ``max_model_len`` and memory fraction.

    Raises:
        ConfigError: the planner does not know the model or GPU, or a result is not a closed loop.
    """
    pairs = _pairs(results)
    servers = (
        {lv.concurrency: lv.server_means for lv in results.levels} if isinstance(results, ConcurrencySweep) else {}
    )
    scale = results.time_scale if isinstance(results, ConcurrencySweep) else 1.0
    rows: list[dict[str, Any]] = []
    predictions = {}
    in_flight = {}
    options: dict[str, Any] = {"gpu_memory_utilization": gpu_memory_utilization}
    if max_model_len is not None:
        options["max_model_len"] = max_model_len
    for c, r in pairs:
        if c < 1:
            raise ConfigError("vs_planner compares closed-loop runs", "pass a concurrency sweep's results")
        pred = cost_mod.planner_prediction(r, model, gpu, tensor_parallel=tensor_parallel, **options)
        predictions[c] = pred
        predicted = pred.as_bench_fields()
        m = r.metrics
        in_flight[c] = float(m["request_throughput"]) * float(m["mean_e2el_ms"] or 0.0) / 1000.0
        server = servers.get(c, {})
        for label, key, pkey, skey in _GAP_QUANTITIES:
            measured = m.get(key)
            planned = predicted.get(pkey)
            rows.append(
                {
                    "concurrency": c,
                    "quantity": label,
                    "planner": planned,
                    "server": server.get(skey) if skey else None,
                    "measured": measured,
                    "ratio": measured / planned if measured is not None and planned else None,
                }
            )
    notes = _gap_notes(pairs, predictions, servers, in_flight, scale)
    return PlannerGap(model, gpu, tuple(rows), tuple(notes), in_flight)


def _gap_notes(
    pairs: list[tuple[int, BenchResult]],
    predictions: dict[int, Any],
    servers: dict[int, dict[str, float | None]],
    in_flight: dict[int, float],
    scale: float,
) -> list[str]:
    """Why measurement and prediction differ, each reason with this run's numbers."""
    notes = [
        "the planner is a roofline model of one engine step with calibrated efficiencies, solved for a steady "
        "state; a benchmark measures a short run that ramps up and drains, through a client and a network"
    ]
    low_c, low = min(pairs, key=lambda p: p[0])
    server_ttft = (servers.get(low_c) or {}).get("ttft_ms")
    client_ttft = low.metrics.get("mean_ttft_ms")
    planned_ttft = predictions[low_c].ttft_ms
    scaled = f" ({{:.2f}} ms of wall time, times the time scale {scale:g})" if scale != 1.0 else ""
    if server_ttft is not None and client_ttft is not None:
        extra = client_ttft - server_ttft
        notes.append(
            f"client against server: at concurrency {low_c} the client's mean TTFT is {extra:.0f} ms above the "
            + "server's own"
            + scaled.format(extra / scale)
            + ": HTTP, the network and the client itself, which the server's /metrics leave out. TPOT is a "
            "difference of two receive times, so that overhead mostly cancels there"
        )
        engine = server_ttft - planned_ttft
        if abs(engine) >= 0.1 * planned_ttft:
            notes.append(
                f"server against planner: the server's own TTFT at concurrency {low_c} is {engine:+.0f} ms from "
                "the planner's prefill time"
                + scaled.format(engine / scale)
                + (
                    ": the simulator's event loop picks a request up a fraction of a wall millisecond late, "
                    "and the time scale multiplies that like any other host delay"
                    if scale != 1.0
                    else ": tokenization, scheduling and the API server, which a roofline does not model"
                )
            )
    if scale != 1.0:
        notes.append(
            f"time scale {scale:g}: the cluster (the simulated GPU included) runs {scale:g} times faster than the "
            f"client's wall clock, so every client interval is multiplied by {scale:g}; one wall millisecond of host "
            f"delay reads as {scale:g} ms. On EKS the scale is 1 and these notes' overheads shrink to what they "
            "really are"
        )
    high_c, high = max(pairs, key=lambda p: p[0])
    pred = predictions[high_c]
    if high_c > 1:
        m = high.metrics
        notes.append(
            f"ramp-up and drain: at concurrency {high_c} the run averaged {in_flight[high_c]:.1f} requests in flight "
            f"(Little's law: {m['request_throughput']:.2f} req/s x {m['mean_e2el_ms'] / 1000:.2f} s), not {high_c}: "
            "the closed loop starts all requests at once and drains at the end, and fewer in flight means less "
            f"throughput. Measured throughput is {m['request_throughput'] / pred.request_throughput:.0%} of the "
            "planner's steady state"
        )
        ttft_ratio = (m.get("mean_ttft_ms") or 0.0) / pred.ttft_ms if pred.ttft_ms else 0.0
        tpot_ratio = (m.get("mean_tpot_ms") or 0.0) / pred.tpot_ms if pred.tpot_ms else 0.0
        if ttft_ratio > 1.5:
            notes.append(
                f"bursts: TTFT at concurrency {high_c} is {ttft_ratio:.1f}x the prediction. The first "
                f"{high_c} requests arrive together and wait for each other's prefills, while the planner "
                "assumes arrivals spread evenly over time"
                + (
                    f"; TPOT is {tpot_ratio:.2f}x because prefills bunched together interrupt the decoding batch "
                    "less often. The same time is split differently between TTFT and TPOT"
                    if tpot_ratio < 1.0
                    else ""
                )
            )
        if pred.saturated:
            notes.append(
                f"concurrency {high_c} exceeds what the KV cache runs at once ({pred.max_running}): the rest "
                "queue, and their TTFT includes the wait"
            )
    notes.append(
        "compare E2E latency and throughput first: they depend least on how arrivals line up. Prompt tokens are the "
        "server's count (its chat template adds a few); output tokens come from usage"
    )
    return notes


__all__ = [
    "DEFAULT_LEVELS",
    "ClockView",
    "ConcurrencySweep",
    "CostTable",
    "Goodput",
    "Honesty",
    "PlannerGap",
    "Plot",
    "ServingInstance",
    "SweepLevel",
    "cost_table",
    "goodput_under",
    "honesty",
    "in_cluster_time",
    "run_at_rate",
    "serving_instance",
    "slo_dict",
    "sweep_concurrency",
    "vs_planner",
]
