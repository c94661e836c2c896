"""Cost per token from a serving pool's price and measured throughput (pure).

The price comes from the AWS layer (:func:`labkit.aws.prices.price` returns a ``Price`` with
``usd_per_hour`` and its provenance; :func:`from_result` takes it as is), or offline from the
planner's catalog (:func:`pool_price`), or as a plain number.

``$/1M output tokens = price_per_hour / 3600 / output_tokens_per_s × 1e6`` and
``$/1k requests = price_per_hour / 3600 / requests_per_s × 1e3``: the pool is paid for by
the hour whatever it serves, so the measured throughput at the load you ran sets the cost.
A run at low load therefore reports a high cost per token; compare at the load you plan for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from labkit.errors import ConfigError


@dataclass(frozen=True)
class CostEstimate:
    """What serving costs at a measured throughput.

    Attributes:
        price_per_hour: USD per hour of the serving pool (all its instances).
        output_tokens_per_s: measured output throughput.
        requests_per_s: measured request throughput.
        usd_per_million_output_tokens: cost of one million output tokens.
        usd_per_thousand_requests: cost of one thousand requests.
        source: where the price came from (instance type and price table, or "given").
    """

    price_per_hour: float
    output_tokens_per_s: float
    requests_per_s: float
    usd_per_million_output_tokens: float | None
    usd_per_thousand_requests: float | None
    source: str = "given"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON and tables."""
        return asdict(self)


def estimate(
    price_per_hour: float, output_tokens_per_s: float, requests_per_s: float, *, source: str = "given"
) -> CostEstimate:
    """Cost per 1M output tokens and per 1k requests from a $/hour and measured throughputs.

    A zero throughput gives ``None`` costs (nothing was served, so no cost per unit exists).
    """
    if price_per_hour < 0:
        raise ConfigError(f"price per hour must not be negative, got {price_per_hour}", "pass the pool's USD/hour")
    per_s = price_per_hour / 3600.0
    return CostEstimate(
        price_per_hour=price_per_hour,
        output_tokens_per_s=output_tokens_per_s,
        requests_per_s=requests_per_s,
        usd_per_million_output_tokens=per_s / output_tokens_per_s * 1e6 if output_tokens_per_s > 0 else None,
        usd_per_thousand_requests=per_s / requests_per_s * 1e3 if requests_per_s > 0 else None,
        source=source,
    )


def from_result(result: Any, price: Any, *, count: int = 1, source: str = "given") -> CostEstimate:
    """:func:`estimate` from a :class:`~labkit.bench.result.BenchResult` (or its JSON document).

    Args:
        result: the measured run.
        price: USD/hour of one instance, or a price object with ``usd_per_hour`` (and
            ``describe()``), such as :class:`labkit.aws.prices.Price` from the AWS layer.
        count: instances in the serving pool.
        source: where a plain number came from.
    """
    doc = result.to_dict() if hasattr(result, "to_dict") else result
    if hasattr(price, "usd_per_hour"):
        per_hour = float(price.usd_per_hour)
        source = price.describe() if hasattr(price, "describe") else source
    else:
        per_hour = float(price)
    if count != 1:
        source = f"{count} x {source}"
    return estimate(per_hour * count, float(doc["output_throughput"]), float(doc["request_throughput"]), source=source)


def pool_price(instance_type: str, count: int = 1) -> tuple[float, str]:
    """On-demand $/hour of ``count`` instances of a type, from the planner's price catalog.

    Returns:
        the price and a source note (instance type, region and date of the price table).

    Raises:
        ConfigError: the type is unknown or has no on-demand price.
    """
    from labkit.planner import catalog

    it = catalog.get_instance_type(instance_type)
    if it.price_per_hour is None:
        raise ConfigError(f"{it.name} has no on-demand price", "pass price_per_hour explicitly (e.g. a reservation)")
    table = catalog.price_table()
    return it.price_per_hour * count, f"{count} x {it.name} on-demand, {table.get('region')} {table.get('price_date')}"


@dataclass(frozen=True)
class Comparison:
    """Measured against predicted, field by field.

    Attributes:
        rows: ``(name, measured, predicted, ratio measured/predicted)`` per compared quantity.
        notes: why measurement and prediction may differ (read these beside the numbers).
    """

    rows: tuple[tuple[str, float | None, float | None, float | None], ...]
    notes: tuple[str, ...]

    def table(self) -> str:
        """A plain-text table."""
        lines = [f"{'quantity':<32} {'measured':>12} {'predicted':>12} {'ratio':>8}"]
        for name, m, p, r in self.rows:
            cells = ["-" if v is None else f"{v:.3f}" for v in (m, p, r)]
            lines.append(f"{name:<32} {cells[0]:>12} {cells[1]:>12} {cells[2]:>8}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


#: Quantities compared: (label, field name in both the result and the prediction).
_COMPARED = (
    ("output tokens/s", "output_throughput"),
    ("requests/s", "request_throughput"),
    ("mean TTFT (ms)", "mean_ttft_ms"),
    ("mean TPOT (ms)", "mean_tpot_ms"),
    ("mean ITL (ms)", "mean_itl_ms"),
    ("mean E2E latency (ms)", "mean_e2el_ms"),
    ("$/1M output tokens", "usd_per_million_output_tokens"),
)

NOTES = (
    "the planner is a roofline with efficiency factors for a steady state; a run measures what its load "
    "produced, warm-up and ramp-down included",
    "measured latencies include the client, the network and the HTTP server; the planner's are engine times",
    "cost per token scales inversely with throughput: a lightly loaded server costs more per token",
)


def compare_with_prediction(
    measured: Mapping[str, Any], predicted: Any, *, price_per_hour: float | None = None
) -> Comparison:
    """Put a measured run beside a prediction for the same GPU, model and load.

    Args:
        measured: the result's JSON document (``BenchResult.to_dict()``) or its metrics.
        predicted: a planner ``Prediction`` (anything with ``as_bench_fields()``) or a mapping with
            ``vllm bench serve`` field names (``output_throughput``, ``mean_ttft_ms`` ...).
        price_per_hour: the pool's USD/hour; adds measured and predicted $/1M output tokens.
    """
    pred = dict(predicted.as_bench_fields() if hasattr(predicted, "as_bench_fields") else predicted)
    values = dict(measured)
    if price_per_hour is not None:
        for side in (values, pred):
            tput = side.get("output_throughput")
            if isinstance(tput, int | float) and tput > 0:
                side["usd_per_million_output_tokens"] = price_per_hour / 3600.0 / tput * 1e6
    rows = []
    for label, key in _COMPARED:
        m, p = values.get(key), pred.get(key)
        m = float(m) if isinstance(m, int | float) else None
        p = float(p) if isinstance(p, int | float) else None
        if m is None and p is None:
            continue
        rows.append((label, m, p, m / p if m is not None and p else None))
    return Comparison(tuple(rows), NOTES)


def planner_prediction(result: Any, model: str, gpu: str, *, tensor_parallel: int = 1, **perf_options: Any) -> Any:
    """The planner's prediction for the load a result ran (its profile and mean token counts).

    A closed loop is predicted with ``ServingPerf.predict(concurrency, ...)``, a rate with
    ``predict_rate``; prompt and output lengths are the run's means (server-reported tokens).
    """
    from labkit.planner import ServingPerf

    doc = result.to_dict() if hasattr(result, "to_dict") else result
    completed = max(1, int(doc.get("completed") or 0))
    prompt = max(1, round((doc.get("total_input_tokens") or 0) / completed))
    output = max(1, round((doc.get("total_output_tokens") or 0) / completed))
    perf = ServingPerf.from_names(model, gpu, tensor_parallel=tensor_parallel, **perf_options)
    profile = (doc.get("metadata") or {}).get("profile") or {}
    if profile.get("kind") == "concurrency":
        return perf.predict(int(profile["concurrency"]), prompt, output)
    rate = doc.get("request_rate")
    if not isinstance(rate, int | float):
        raise ConfigError("the result has neither a concurrency nor a finite rate", "predict a closed or open loop")
    return perf.predict_rate(float(rate), prompt, output)
