"""The benchmark result: a JSON document whose field names follow ``vllm bench serve``.

Top level, as ``vllm bench serve --save-result`` writes it: ``date``, ``backend``,
``endpoint_type``, ``label``, ``model_id``, ``num_prompts``, ``request_rate`` (``"inf"``
when unbounded), ``burstiness``, ``max_concurrency``, ``duration``, ``completed``,
``failed``, ``total_input_tokens``, ``total_output_tokens``, ``request_throughput``,
``request_goodput``, ``output_throughput``, ``total_token_throughput``,
``max_output_tokens_per_s``, ``max_concurrent_requests`` and ``{mean,median,std,pNN}_
{ttft,tpot,itl,e2el}_ms``. Ours on top: ``itl_token`` statistics, ``failure_reasons``,
``goodput_fraction`` and ``slos``, ``client_saturated``, ``health`` (see
:mod:`labkit.bench.health`), ``definitions`` (see :mod:`labkit.bench.metrics`),
``metadata`` (endpoint, dataset, profile, versions, machine) and, on request, ``requests``:
one entry per request with its ``X-Request-ID``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.bench.metrics import DEFINITIONS, RequestSample
from labkit.errors import ConfigError

#: Summary rows shown by :meth:`BenchResult.table` and :mod:`labkit.bench.compare`.
SUMMARY_FIELDS: tuple[str, ...] = (
    "completed",
    "failed",
    "duration",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "p99_itl_ms",
    "mean_e2el_ms",
    "p99_e2el_ms",
)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf floats become ``None``/``"inf"``."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def request_details(samples: Sequence[RequestSample], t0_ns: int) -> list[dict[str, Any]]:
    """Per-request rows for the result (times in µs from the run start or from the send)."""
    rows = []
    for s in sorted(samples, key=lambda x: x.index):
        ttft, tpot, e2el = s.ttft_s, s.tpot_s, s.e2el_s
        rows.append(
            {
                "index": s.index,
                "request_id": s.request_id,
                "success": s.success,
                "error": s.error,
                "status": s.status,
                "scheduled_us": (s.scheduled_ns - t0_ns) // 1000,
                "ready_us": (s.ready_ns - t0_ns) // 1000 if s.ready_ns else None,
                "sent_us": (s.sent_ns - t0_ns) // 1000 if s.sent_ns else None,
                "done_us": (s.done_ns - t0_ns) // 1000,
                "ttft_ms": None if ttft is None else ttft * 1e3,
                "tpot_ms": None if tpot is None else tpot * 1e3,
                "e2el_ms": None if e2el is None else e2el * 1e3,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "chunk_us": [(t - s.sent_ns) // 1000 for t in s.chunk_ns],
                "chunk_chars": s.chunk_chars,
                "chunk_tokens": s.chunk_tokens,
                "events": s.events,
                "reads": s.reads,
                "server_delay_us": [d // 1000 for d in s.server_delays_ns] or None,
            }
        )
    return rows


def samples_from_details(rows: Sequence[Mapping[str, Any]]) -> list[RequestSample]:
    """Rebuild samples from saved per-request rows (µs resolution), e.g. to plot a saved result."""
    out = []
    for r in rows:
        sent = int(r["sent_us"] or 0) * 1000
        out.append(
            RequestSample(
                index=int(r["index"]),
                request_id=str(r["request_id"]),
                scheduled_ns=int(r["scheduled_us"]) * 1000,
                ready_ns=int(r["ready_us"] or 0) * 1000,
                sent_ns=sent,
                done_ns=int(r["done_us"]) * 1000,
                success=bool(r["success"]),
                error=r.get("error"),
                status=r.get("status"),
                chunk_ns=[sent + int(c) * 1000 for c in r.get("chunk_us") or ()],
                chunk_chars=list(r.get("chunk_chars") or ()),
                chunk_tokens=r.get("chunk_tokens"),
                output_tokens=r.get("output_tokens"),
                input_tokens=r.get("input_tokens"),
                events=int(r.get("events") or 0),
                reads=int(r.get("reads") or 0),
                server_delays_ns=[int(d) * 1000 for d in r.get("server_delay_us") or ()],
            )
        )
    return out


@dataclass
class BenchResult:
    """One benchmark run: metrics, health, metadata and (in memory) every request's sample.

    Attributes:
        metrics: ``vllm bench serve``-named metrics (see :func:`labkit.bench.metrics.compute`).
        health: the self-honesty report (see :func:`labkit.bench.health.assess`).
        metadata: endpoint, dataset, profile, versions, machine, run id.
        header: the ``vllm bench serve`` top-level run fields (date, backend, model_id, ...).
        samples: every request, for plots and per-request details.
        t0_ns: the run's start on ``monotonic_ns`` (per-request times are relative to it).
    """

    metrics: dict[str, Any]
    health: dict[str, Any]
    metadata: dict[str, Any]
    header: dict[str, Any] = field(default_factory=dict)
    samples: list[RequestSample] = field(default_factory=list, repr=False)
    t0_ns: int = 0

    @property
    def client_saturated(self) -> bool:
        """Whether the client could not keep its schedule (see ``health['reasons']``)."""
        return bool(self.health.get("client_saturated"))

    def __getitem__(self, key: str) -> Any:
        """Metric or header field by its ``vllm bench serve`` name, e.g. ``result["p99_ttft_ms"]``."""
        if key in self.metrics:
            return self.metrics[key]
        return self.header[key]

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """The JSON document; ``details`` adds one row per request."""
        doc: dict[str, Any] = {**self.header, **self.metrics}
        doc["client_saturated"] = self.client_saturated
        doc["health"] = self.health
        doc["definitions"] = DEFINITIONS
        doc["metadata"] = self.metadata
        if details:
            doc["requests"] = request_details(self.samples, self.t0_ns)
        return _clean(doc)

    def to_json(self, *, details: bool = False, indent: int | None = 2) -> str:
        """The JSON document as text."""
        return json.dumps(self.to_dict(details=details), indent=indent)

    def save(self, path: str | Path, *, details: bool = False) -> Path:
        """Write the JSON document to ``path`` (folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(details=details) + "\n")
        return path

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> BenchResult:
        """Rebuild a result from its JSON document (samples only when it has ``requests``)."""
        header_keys = ("date", "backend", "endpoint_type", "label", "model_id", "num_prompts", "request_rate",
                       "burstiness", "max_concurrency", "profile")  # fmt: skip
        skip = {"client_saturated", "health", "definitions", "metadata", "requests", *header_keys}
        return cls(
            metrics={k: v for k, v in doc.items() if k not in skip},
            health=dict(doc.get("health") or {}),
            metadata=dict(doc.get("metadata") or {}),
            header={k: doc[k] for k in header_keys if k in doc},
            samples=samples_from_details(doc.get("requests") or ()),
        )

    def summary(self) -> dict[str, Any]:
        """The headline numbers (``SUMMARY_FIELDS``) plus the saturation verdict."""
        out = {k: self.metrics.get(k) for k in SUMMARY_FIELDS}
        out["client_saturated"] = self.client_saturated
        return out

    def table(self) -> str:
        """A plain-text summary for terminals and notebook output."""
        h = self.health
        lines = [f"{'profile':<28} {self.header.get('profile', '')}"]
        for key in SUMMARY_FIELDS:
            value = self.metrics.get(key)
            lines.append(f"{key:<28} {_fmt(value)}")
        lag = h.get("send_lag_ms") or {}
        lines.append(f"{'send_lag_p50/p99_ms':<28} {_fmt(lag.get('p50'))} / {_fmt(lag.get('p99'))}")
        cpu = h.get("cpu") or {}
        lines.append(f"{'client_cpu_us_per_request':<28} {_fmt(cpu.get('per_request_us'))}")
        lines.append(f"{'client_saturated':<28} {self.client_saturated}")
        lines.extend(f"  reason: {reason}" for reason in h.get("reasons") or ())
        if self.metrics.get("failure_reasons"):
            lines.extend(f"  failed: {n} x {why}" for why, n in self.metrics["failure_reasons"].items())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def load(path: str | Path) -> BenchResult:
    """Read a result file written by :meth:`BenchResult.save` (or by ``labkit bench run``)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"result file {path} does not exist", "check the path") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not a JSON result: {exc}", "pass a file written by `labkit bench run`") from exc
    if not isinstance(doc, dict) or "completed" not in doc:
        raise ConfigError(f"{path} is not a benchmark result", "pass a file written by `labkit bench run`")
    return BenchResult.from_dict(doc)
