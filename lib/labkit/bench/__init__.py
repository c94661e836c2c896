"""An accurate LLM serving benchmark for OpenAI-compatible endpoints, and cost per token.

Typical use from a notebook::

    from labkit import bench

    data = bench.synthetic(200, input_tokens=128, output_tokens=64, seed=0)
    result = bench.run("http://127.0.0.1:8000", data, bench.Rate(10), slos={"ttft_ms": 500, "tpot_ms": 50})
    print(result.table())          # headline numbers and the client's self-check
    result.save("build/bench/rate10.json", details=True)

Modules, by what they do: :mod:`~labkit.bench.metrics` (definitions and math),
:mod:`~labkit.bench.datasets`, :mod:`~labkit.bench.endpoint` (prebuilt requests),
:mod:`~labkit.bench.schedule` (arrivals, precise timer),
:mod:`~labkit.bench.client` (the HTTP/SSE client: what keeps the numbers right at load),
:mod:`~labkit.bench.stream` (parsing after the run), :mod:`~labkit.bench.runner` (profiles,
sweeps, SLO search), :mod:`~labkit.bench.workers` (scale-out), :mod:`~labkit.bench.health`
(self-honesty), :mod:`~labkit.bench.result`, :mod:`~labkit.bench.plots`,
:mod:`~labkit.bench.compare`, :mod:`~labkit.bench.cost`, :mod:`~labkit.bench.job` (in-cluster
Job), :mod:`~labkit.bench.cli` and :mod:`~labkit.bench.steps` (lab steps: a concurrency sweep against
a deployed server in cluster time, goodput under an SLO, cost per token, the planner beside the
measurement).

Names below are imported on first use, so ``labkit --help`` does not load numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchResult": "labkit.bench.result",
    "load": "labkit.bench.result",
    "Concurrency": "labkit.bench.runner",
    "Rate": "labkit.bench.runner",
    "RunOptions": "labkit.bench.runner",
    "SloSearch": "labkit.bench.runner",
    "Sweep": "labkit.bench.runner",
    "find_max_rate": "labkit.bench.runner",
    "run": "labkit.bench.runner",
    "sweep": "labkit.bench.runner",
    "Dataset": "labkit.bench.datasets",
    "Prompt": "labkit.bench.datasets",
    "jsonl": "labkit.bench.datasets",
    "sharegpt": "labkit.bench.datasets",
    "synthetic": "labkit.bench.datasets",
    "Endpoint": "labkit.bench.endpoint",
    "Thresholds": "labkit.bench.health",
    "ConcurrencySweep": "labkit.bench.steps",
    "cost_table": "labkit.bench.steps",
    "goodput_under": "labkit.bench.steps",
    "honesty": "labkit.bench.steps",
    "in_cluster_time": "labkit.bench.steps",
    "run_at_rate": "labkit.bench.steps",
    "serving_instance": "labkit.bench.steps",
    "sweep_concurrency": "labkit.bench.steps",
    "vs_planner": "labkit.bench.steps",
}

__all__ = [
    "BenchResult",
    "Concurrency",
    "ConcurrencySweep",
    "Dataset",
    "Endpoint",
    "Prompt",
    "Rate",
    "RunOptions",
    "SloSearch",
    "Sweep",
    "Thresholds",
    "cost_table",
    "find_max_rate",
    "goodput_under",
    "honesty",
    "in_cluster_time",
    "jsonl",
    "load",
    "run",
    "run_at_rate",
    "serving_instance",
    "sharegpt",
    "sweep",
    "sweep_concurrency",
    "synthetic",
    "vs_planner",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
