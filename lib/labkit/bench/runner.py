"""Load profiles: fixed concurrency, request rate, sweeps and the SLO search.

- :class:`Concurrency` is a closed loop: ``n`` requests in flight, each completion sends the
  next one at once.
- :class:`Rate` is an open loop: requests are due on absolute deadlines drawn from an arrival
  process (gamma with a burstiness; 1 is Poisson; or constant), whatever the server does.
- :func:`sweep` runs synchronous (concurrency 1), then maximum throughput (a closed loop at
  ``max_concurrency``), then evenly spaced rates between the two; or a list of concurrency
  levels (``mode="concurrency"``).
- :func:`find_max_rate` bisects for the highest rate whose run meets the SLOs.

Every function here returns results; nothing is printed.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import math
import os
import platform
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.bench import datasets as ds
from labkit.bench import health as health_mod
from labkit.bench import metrics as metrics_mod
from labkit.bench import schedule
from labkit.bench.endpoint import Endpoint, build_requests, new_request_ids
from labkit.bench.result import BenchResult
from labkit.bench.workers import WorkerOutput, WorkerPlan, run_plan
from labkit.errors import ApiError, ConfigError, Invalid, Unreachable


@dataclass(frozen=True)
class Concurrency:
    """Closed loop: keep ``concurrency`` requests in flight."""

    concurrency: int

    def describe(self) -> str:
        return f"concurrency={self.concurrency}"


@dataclass(frozen=True)
class Rate:
    """Open loop: requests due at ``rate`` per second on absolute deadlines.

    Attributes:
        rate: mean requests per second (``math.inf`` sends all at once).
        burstiness: gamma shape; 1 is Poisson, < 1 burstier, > 1 smoother.
        arrival: ``gamma``, ``poisson`` or ``constant``.
        max_concurrency: cap on requests in flight (waiting requests are client-queued).
    """

    rate: float
    burstiness: float = 1.0
    arrival: str = "gamma"
    max_concurrency: int | None = None

    def describe(self) -> str:
        cap = f", max_concurrency={self.max_concurrency}" if self.max_concurrency else ""
        shape = self.arrival if self.arrival != "gamma" else f"gamma(burstiness={self.burstiness:g})"
        return f"rate={self.rate:g}/s {shape}{cap}"


Profile = Concurrency | Rate


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to send).

    Attributes:
        workers: processes to spread the load over (1 runs in a thread of this process).
        timeout_s: a request unfinished this long after its send fails.
        warm_connections: connections opened before the start (default: enough for the profile).
        wake_early_us: the precise timer wakes this long before each deadline, then spins;
            ``None`` adapts it to the timer's observed lateness.
        percentiles: percentiles to report.
        thresholds: limits of the saturation verdict.
        label: a label stored in the result.
        use_timerfd: use the Linux timer where available.
        poll_us: keep polling this long after each read instead of sleeping (see
            :class:`~labkit.bench.client.Engine`); 0 sleeps at once.
        cpus: pin the client to these CPUs (Linux), one per worker, e.g. to keep it off the cores
            of a server on the same machine (a wake-up on a core the server holds waits for it).
    """

    workers: int = 1
    timeout_s: float = 600.0
    warm_connections: int | None = None
    wake_early_us: float | None = None
    percentiles: tuple[float, ...] = metrics_mod.DEFAULT_PERCENTILES
    thresholds: health_mod.Thresholds = field(default_factory=health_mod.Thresholds)
    label: str | None = None
    use_timerfd: bool = True
    poll_us: float = 0.0
    cpus: tuple[int, ...] | None = None


# --------------------------------------------------------------------------- endpoint discovery


def _get_json(url: str, path: str, timeout_s: float, api_key: str | None = None) -> Any:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout_s)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base = parts.path.rstrip("/")
    base = base[: -len("/v1")] if base.endswith("/v1") else base
    try:
        conn.request("GET", base + path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"cannot reach {url}: {exc}", "check that the model server is running and the URL") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise ApiError(f"GET {path} on {url} answered HTTP {resp.status}", "check the URL", status=resp.status)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Invalid(f"GET {path} on {url} did not return JSON", "is this an OpenAI-compatible server?") from exc


def discover_model(url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> str:
    """The first model a server lists at ``/v1/models``."""
    data = _get_json(url, "/v1/models", timeout_s, api_key)
    models = data.get("data") if isinstance(data, dict) else None
    if not models:
        raise Invalid(f"{url} lists no models at /v1/models", "pass the model name explicitly")
    return str(models[0]["id"])


def server_version(url: str, *, api_key: str | None = None) -> str | None:
    """The server's ``/version`` (vLLM), or ``None`` where it has none."""
    try:
        data = _get_json(url, "/version", 2.0, api_key)
    except (ApiError, OSError):
        return None
    return str(data.get("version")) if isinstance(data, dict) and data.get("version") else None


def endpoint_for(
    url: str | Endpoint, *, model: str | None = None, api: str = "chat", backend: str = "vllm"
) -> Endpoint:
    """An :class:`Endpoint` from a URL, asking the server for its model when none is given."""
    if isinstance(url, Endpoint):
        return url
    return Endpoint(url=url, model=model or discover_model(url), api=api, backend=backend)


# --------------------------------------------------------------------------- one run


def _versions(endpoint: Endpoint) -> dict[str, Any]:
    import numpy

    from labkit import __version__

    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = None
    return {
        "labkit": __version__,
        "python": platform.python_version(),
        "uvloop": uv,
        "numpy": numpy.__version__,
        "server": server_version(endpoint.url, api_key=endpoint.api_key),
    }


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "timerfd": schedule.timerfd_available(),
    }


def _count(dataset: ds.Dataset, profile: Profile, num_requests: int | None, duration_s: float | None) -> int:
    if num_requests is not None:
        return num_requests
    if duration_s is not None and isinstance(profile, Rate) and not math.isinf(profile.rate):
        return max(1, math.ceil(profile.rate * duration_s))
    return len(dataset)


def plan_for(
    endpoint: Endpoint,
    dataset: ds.Dataset,
    profile: Profile,
    *,
    num_requests: int,
    seed: int = 0,
    options: RunOptions | None = None,
    run_id: str | None = None,
) -> WorkerPlan:
    """Build the run's plan (prompts, request bytes, offsets) before anything is sent (pure)."""
    opts = options or RunOptions()
    if num_requests < 1:
        raise ConfigError(f"a run needs at least one request, got {num_requests}", "raise num_requests")
    data = dataset.take(num_requests)
    ids = new_request_ids(num_requests, run_id)
    payloads = build_requests(endpoint, data.prompts, ids)
    if isinstance(profile, Concurrency):
        if profile.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {profile.concurrency}", "use concurrency >= 1")
        offsets = [0] * num_requests
        cap: int | None = profile.concurrency
    else:
        offsets = schedule.arrival_offsets_ns(
            num_requests, profile.rate, burstiness=profile.burstiness, arrival=profile.arrival, seed=seed
        )
        cap = profile.max_concurrency
    warm = opts.warm_connections or (cap if cap is not None else 16)
    return WorkerPlan(
        endpoint=endpoint,
        indices=list(range(num_requests)),
        request_ids=ids,
        payloads=payloads,
        offsets_ns=offsets,
        input_tokens=[p.input_tokens for p in data.prompts],
        max_concurrency=cap,
        warm_connections=min(warm, num_requests),
        timeout_s=opts.timeout_s,
        wake_early_ns=None if opts.wake_early_us is None else int(opts.wake_early_us * 1000),
        use_timerfd=opts.use_timerfd,
        poll_us=opts.poll_us,
        cpus=opts.cpus,
    )


def assemble(
    outputs: Sequence[WorkerOutput],
    *,
    endpoint: Endpoint,
    dataset: ds.Dataset,
    profile: Profile,
    slos: Mapping[str, float] | None = None,
    options: RunOptions | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> BenchResult:
    """Merge worker outputs into one result: metrics from the pooled samples, health, metadata."""
    opts = options or RunOptions()
    samples = sorted((s for o in outputs for s in o.samples), key=lambda s: s.index)
    stats = [o.stats for o in outputs]
    t0 = min(o.t0_ns for o in outputs)
    end = max(st.end_ns for st in stats)
    metrics = metrics_mod.compute(samples, duration_s=max(end - t0, 1) / 1e9, percentiles=opts.percentiles, slos=slos)
    rate = profile.rate if isinstance(profile, Rate) else None
    report = health_mod.assess(samples, stats, requested_rate=rate, thresholds=opts.thresholds)
    report["parse_s"] = sum(o.parse_s for o in outputs)
    header = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S"),
        "backend": endpoint.backend,
        "endpoint_type": f"openai-{endpoint.api}" if endpoint.api == "chat" else "openai",
        "label": opts.label,
        "model_id": endpoint.model,
        "num_prompts": len(samples),
        "request_rate": ("inf" if math.isinf(rate) else rate) if rate is not None else "inf",
        "burstiness": profile.burstiness if isinstance(profile, Rate) else None,
        "max_concurrency": profile.concurrency if isinstance(profile, Concurrency) else profile.max_concurrency,
        "profile": profile.describe(),
    }
    meta = {
        "endpoint": endpoint.describe(),
        "dataset": dataset.metadata(),
        "profile": {"kind": type(profile).__name__.lower(), **asdict(profile)},
        **dict(metadata or {}),
    }
    return BenchResult(metrics=metrics, health=report, metadata=meta, header=header, samples=samples, t0_ns=t0)


def run(
    endpoint: str | Endpoint,
    dataset: ds.Dataset,
    profile: Profile,
    *,
    model: str | None = None,
    num_requests: int | None = None,
    duration_s: float | None = None,
    slos: Mapping[str, float] | None = None,
    seed: int = 0,
    options: RunOptions | None = None,
) -> BenchResult:
    """Benchmark an OpenAI-compatible endpoint with one load profile.

    Args:
        endpoint: base URL (the model is discovered when ``model`` is ``None``) or an :class:`Endpoint`.
        dataset: the prompts (cycled when the run needs more).
        profile: :class:`Concurrency` or :class:`Rate`.
        model: the model name, when ``endpoint`` is a URL.
        num_requests: requests to send (default: the dataset's size, or ``rate × duration_s``).
        duration_s: for a :class:`Rate`, how long to send for (sets ``num_requests``).
        slos: goodput thresholds in ms (``ttft_ms``, ``tpot_ms``, ``e2el_ms``).
        seed: seeds the arrival schedule.
        options: workers, timeouts, thresholds, percentiles.

    Raises:
        Unreachable: no connection to the server could be opened.
        ConfigError: a bad profile, dataset or SLO.
    """
    opts = options or RunOptions()
    ep = endpoint_for(endpoint, model=model)
    metrics_mod.validate_slos(slos)
    count = _count(dataset, profile, num_requests, duration_s)
    run_id = uuid.uuid4().hex[:12]
    plan = plan_for(ep, dataset, profile, num_requests=count, seed=seed, options=opts, run_id=run_id)
    machine = _machine()
    versions = _versions(ep)
    outputs = run_plan(plan, opts.workers)
    machine["load_avg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    extra = {"run_id": run_id, "seed": seed, "versions": versions, "machine": machine, "workers": opts.workers}
    return assemble(outputs, endpoint=ep, dataset=dataset, profile=profile, slos=slos, options=opts, metadata=extra)


# --------------------------------------------------------------------------- sweeps


@dataclass
class Sweep:
    """The runs of a sweep, in the order they ran."""

    results: list[BenchResult]
    mode: str

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per run (profile first)."""
        return [{"profile": r.header.get("profile"), **r.summary()} for r in self.results]

    def table(self) -> str:
        """A plain-text table of the headline numbers."""
        cols = ("profile", "request_throughput", "output_throughput", "p50_ttft_ms", "p99_ttft_ms",
                "p50_tpot_ms", "p99_tpot_ms", "failed", "client_saturated")  # fmt: skip
        lines = ["  ".join(f"{c:>18}" for c in cols)]
        for r in self.results:
            row = {"profile": r.header.get("profile"), "client_saturated": r.client_saturated, **r.metrics}
            row.setdefault("p50_ttft_ms", r.metrics.get("median_ttft_ms"))
            row.setdefault("p50_tpot_ms", r.metrics.get("median_tpot_ms"))
            lines.append("  ".join(f"{_cell(row.get(c)):>18}" for c in cols))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the mode and every run's document."""
        return {"mode": self.mode, "runs": [r.to_dict() for r in self.results]}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def sweep(
    endpoint: str | Endpoint,
    dataset: ds.Dataset,
    *,
    mode: str = "rate",
    steps: int = 5,
    levels: Sequence[int] | None = None,
    max_concurrency: int = 64,
    num_requests: int | None = None,
    slos: Mapping[str, float] | None = None,
    model: str | None = None,
    seed: int = 0,
    options: RunOptions | None = None,
) -> Sweep:
    """Run a series of profiles against one endpoint.

    ``mode="rate"``: synchronous (concurrency 1), then maximum throughput (concurrency
    ``max_concurrency``), then ``steps - 2`` Poisson rates evenly spaced between the two
    request throughputs. ``mode="concurrency"``: one closed-loop run per level in ``levels``
    (default 1, 2, 4 ... up to ``max_concurrency``).
    """
    from labkit.progress import progress

    ep = endpoint_for(endpoint, model=model)
    if mode == "concurrency":
        lv = list(levels) if levels else [2**i for i in range(int(math.log2(max_concurrency)) + 1)]
        results = [
            run(ep, dataset, Concurrency(c), num_requests=num_requests, slos=slos, seed=seed, options=options)
            for c in progress(lv, desc="concurrency sweep")
        ]
        return Sweep(results, mode)
    if mode != "rate":
        raise ConfigError(f"unknown sweep mode '{mode}'", "use 'rate' or 'concurrency'")
    if steps < 2:
        raise ConfigError(f"a rate sweep needs at least 2 steps, got {steps}", "use steps >= 2")
    sync = run(ep, dataset, Concurrency(1), num_requests=num_requests, slos=slos, seed=seed, options=options)
    peak = run(
        ep, dataset, Concurrency(max_concurrency), num_requests=num_requests, slos=slos, seed=seed, options=options
    )
    low, high = sync.metrics["request_throughput"], peak.metrics["request_throughput"]
    rates = [low + (high - low) * k / (steps - 1) for k in range(1, steps - 1)] if high > low else []
    middle = [
        run(ep, dataset, Rate(r), num_requests=num_requests, slos=slos, seed=seed, options=options)
        for r in progress(rates, desc="rate sweep")
    ]
    return Sweep([sync, *middle, peak], mode)


@dataclass
class SloSearch:
    """The outcome of :func:`find_max_rate`.

    Attributes:
        best_rate: the highest rate tried that met the SLOs (``None`` if none did).
        best: that run's result.
        trials: every ``(rate, met, result)`` tried, in order.
        slos: the SLOs searched for.
        attainment: the fraction of requests that had to meet every SLO.
    """

    best_rate: float | None
    best: BenchResult | None
    trials: list[tuple[float, bool, BenchResult]]
    slos: dict[str, float]
    attainment: float

    def table(self) -> str:
        """One line per trial."""
        lines = [f"SLOs {self.slos}, attainment {self.attainment:.0%}"]
        for rate, met, r in self.trials:
            frac = r.metrics.get("goodput_fraction")
            lines.append(
                f"  rate {rate:8.2f}/s  {'meets' if met else 'misses'}  goodput fraction "
                f"{'-' if frac is None else f'{frac:.3f}'}  failed {r.metrics['failed']}"
                + ("  (client saturated)" if r.client_saturated else "")
            )
        lines.append(
            f"highest rate meeting the SLOs: {'none' if self.best_rate is None else f'{self.best_rate:.2f}/s'}"
        )
        return "\n".join(lines)


def meets(result: BenchResult, attainment: float) -> bool:
    """Whether a run meets its SLOs: nothing failed, the client kept up, and enough requests were good."""
    frac = result.metrics.get("goodput_fraction")
    return result.metrics["failed"] == 0 and not result.client_saturated and frac is not None and frac >= attainment


def find_max_rate(
    endpoint: str | Endpoint,
    dataset: ds.Dataset,
    slos: Mapping[str, float],
    *,
    low: float | None = None,
    high: float | None = None,
    attainment: float = 0.99,
    tolerance: float = 0.05,
    max_runs: int = 8,
    max_concurrency: int = 64,
    num_requests: int | None = None,
    model: str | None = None,
    seed: int = 0,
    options: RunOptions | None = None,
) -> SloSearch:
    """Bisect for the highest Poisson request rate whose run meets every SLO.

    A rate meets the SLOs when no request failed, the client was not saturated, and at least
    ``attainment`` of the completed requests met every SLO. The upper bound defaults to the
    maximum throughput (a closed loop at ``max_concurrency``); the search stops when the
    bracket is narrower than ``tolerance`` (relative) or after ``max_runs`` runs.
    """
    slo = metrics_mod.validate_slos(slos)
    if not slo:
        raise ConfigError("an SLO search needs at least one SLO", "pass e.g. {'ttft_ms': 500, 'tpot_ms': 50}")
    ep = endpoint_for(endpoint, model=model)
    trials: list[tuple[float, bool, BenchResult]] = []

    def attempt(rate: float) -> bool:
        result = run(ep, dataset, Rate(rate), num_requests=num_requests, slos=slo, seed=seed, options=options)
        ok = meets(result, attainment)
        trials.append((rate, ok, result))
        return ok

    if high is None:
        peak = run(
            ep, dataset, Concurrency(max_concurrency), num_requests=num_requests, slos=slo, seed=seed, options=options
        )
        high = peak.metrics["request_throughput"] * 1.05
    lo, hi = (low or 0.0), high
    if low is not None and not attempt(low):
        return SloSearch(None, None, trials, slo, attainment)
    runs = len(trials)
    while runs < max_runs and (hi - lo) > tolerance * hi:
        mid = (lo + hi) / 2 if lo > 0 else hi / 2
        if attempt(mid):
            lo = mid
        else:
            hi = mid
        runs += 1
    passing = [(r, res) for r, ok, res in trials if ok]
    best_rate, best = max(passing, key=lambda x: x[0]) if passing else (None, None)
    return SloSearch(best_rate, best, trials, slo, attainment)
