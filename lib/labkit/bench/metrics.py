"""Benchmark metric math (pure): per-request latencies and the run's aggregates.

Definitions (also written into every result under ``definitions``):

- TTFT: from the request's send to the first streamed chunk that carries non-empty content
  (``delta.content``, ``delta.reasoning_content``/``reasoning`` or ``delta.tool_calls`` for
  chat; ``text`` for completions). Role-only and empty chunks do not count.
- E2E latency (``e2el``): from the send to the last content chunk.
- TPOT: ``(E2E - TTFT) / (output_tokens - 1)``, output tokens from the server's ``usage``;
  undefined (left out) for single-token outputs.
- ITL per chunk (``itl``): every gap between consecutive content chunks of a request, pooled
  over requests (as ``vllm bench serve``).
- ITL per token (``itl_token``): each gap divided evenly over the tokens of the chunk that
  ends it; tokens that arrive in the same chunk as the first token count as gaps of 0. So when
  the content chunks carry all the output tokens, a request's per-token samples sum to
  ``E2E - TTFT``, number ``output_tokens - 1`` and average to its TPOT. Tokens per chunk
  come from vLLM's cumulative ``usage`` on every chunk
  (``continuous_usage_stats``) when present, else from spreading ``usage.completion_tokens``
  over the content chunks by content length (``itl_token_source`` says which).
- Failed requests (HTTP error, error event, broken stream, timeout, no content) are left out
  of every latency and throughput figure and counted in ``failed`` with their reasons.
- Throughput: completed requests (and their input, output and total tokens) divided by the
  run's duration, from its start (the first scheduled send) to the end of the last response.
- Goodput: completed requests per second that meet every SLO; a request meets an SLO when
  its value is at most the threshold (equal passes). An undefined TPOT meets a TPOT SLO.
- Statistics: mean, median, population standard deviation and percentiles with linear
  interpolation between closest ranks (numpy's default, as ``vllm bench serve``), in ms.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)
LATENCY_METRICS: tuple[str, ...] = ("ttft", "tpot", "itl", "itl_token", "e2el")
SLO_METRICS: tuple[str, ...] = ("ttft_ms", "tpot_ms", "e2el_ms")

DEFINITIONS: dict[str, str] = {
    "ttft": "request send to the first streamed chunk with non-empty content",
    "e2el": "request send to the last content chunk",
    "tpot": "(e2el - ttft) / (output_tokens - 1), output tokens from the server's usage; single-token outputs left out",
    "itl": "gaps between consecutive content chunks, pooled over requests",
    "itl_token": "each chunk gap split evenly over the chunk's tokens; tokens sharing the first chunk count 0; "
    "per request they average to its tpot when the content chunks carry all output tokens",
    "output_tokens": "usage.completion_tokens from the server (falls back to content chunks when absent)",
    "input_tokens": "usage.prompt_tokens from the server (falls back to the dataset's count)",
    "failed": "HTTP error, error event, broken stream, timeout or no content; excluded from all latencies",
    "duration": "first scheduled send to the end of the last response",
    "throughput": "completed requests / tokens of completed requests, divided by duration",
    "goodput": "completed requests per second meeting every SLO (value <= threshold passes)",
    "percentiles": "numpy linear interpolation; std is the population standard deviation",
    "send_lag": "actual send time minus the time the request became due (its deadline, or a freed slot)",
}


@dataclass
class RequestSample:
    """One request after parsing: what the metrics are computed from (times in ``monotonic_ns``).

    Attributes:
        index: position in the schedule.
        request_id: the ``X-Request-ID`` sent.
        scheduled_ns: the deadline it was due at.
        ready_ns: when it became sendable (deadline, or when a concurrency slot freed).
        sent_ns: when it was written to the socket.
        done_ns: when its response ended.
        success: whether it counts as completed.
        error: why not, when it failed.
        status: HTTP status code, if a response head arrived.
        chunk_ns: receive times of the content chunks, in order.
        chunk_chars: content length of each content chunk (spreads tokens when usage is not per chunk).
        chunk_tokens: tokens of each content chunk, from cumulative per-chunk usage, if the server sent it.
        output_tokens: ``usage.completion_tokens``, if the server sent usage.
        input_tokens: ``usage.prompt_tokens``, else the dataset's count.
        events: SSE events received.
        reads: socket reads.
        server_delays_ns: for events stamped by the server (``sim_sent_ns``): receive minus send.
    """

    index: int
    request_id: str
    scheduled_ns: int
    ready_ns: int
    sent_ns: int
    done_ns: int
    success: bool
    error: str | None = None
    status: int | None = None
    chunk_ns: list[int] = field(default_factory=list)
    chunk_chars: list[int] = field(default_factory=list)
    chunk_tokens: list[int] | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    events: int = 0
    reads: int = 0
    server_delays_ns: list[int] = field(default_factory=list)

    # ------------------------------------------------------------------ per request (seconds)

    @property
    def ttft_s(self) -> float | None:
        """Time to first content chunk."""
        return (self.chunk_ns[0] - self.sent_ns) / 1e9 if self.chunk_ns else None

    @property
    def e2el_s(self) -> float | None:
        """Send to last content chunk."""
        return (self.chunk_ns[-1] - self.sent_ns) / 1e9 if self.chunk_ns else None

    @property
    def tokens_out(self) -> int:
        """Output tokens: the server's usage, else one per content chunk."""
        return self.output_tokens if self.output_tokens is not None else len(self.chunk_ns)

    @property
    def tpot_s(self) -> float | None:
        """(E2E - TTFT) / (output tokens - 1); ``None`` for fewer than two tokens."""
        n = self.tokens_out
        if not self.chunk_ns or n < 2:
            return None
        return (self.chunk_ns[-1] - self.chunk_ns[0]) / 1e9 / (n - 1)

    @property
    def itl_s(self) -> list[float]:
        """Gaps between consecutive content chunks."""
        c = self.chunk_ns
        return [(c[i] - c[i - 1]) / 1e9 for i in range(1, len(c))]

    def tokens_per_chunk(self) -> tuple[list[int], str]:
        """Tokens carried by each content chunk and where the numbers come from.

        ``usage`` when the server reported cumulative usage on every chunk, ``one_per_chunk``
        when chunks and output tokens agree, else ``chars`` (output tokens spread over the
        chunks in proportion to their content length, each chunk getting at least one).
        """
        n = len(self.chunk_ns)
        if self.chunk_tokens is not None and len(self.chunk_tokens) == n:
            return list(self.chunk_tokens), "usage"
        total = self.tokens_out
        if total == n:
            return [1] * n, "one_per_chunk"
        return spread_tokens(total, self.chunk_chars if len(self.chunk_chars) == n else [1] * n), "chars"

    def itl_token_s(self) -> list[float]:
        """Per-token inter-token latencies (see the module docstring)."""
        if not self.chunk_ns:
            return []
        tokens, _ = self.tokens_per_chunk()
        out = [0.0] * max(0, tokens[0] - 1)
        c = self.chunk_ns
        for i in range(1, len(c)):
            k = tokens[i]
            if k > 0:
                out.extend([(c[i] - c[i - 1]) / 1e9 / k] * k)
        return out


def spread_tokens(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` tokens over chunks in proportion to ``weights``, at least one each (largest remainder)."""
    n = len(weights)
    if n == 0:
        return []
    if total <= n:
        return [1] * n
    extra = total - n
    w = [max(0, x) for x in weights]
    wsum = sum(w) or n
    if not sum(w):
        w = [1] * n
    shares = [extra * x / wsum for x in w]
    base = [int(s) for s in shares]
    left = extra - sum(base)
    order = sorted(range(n), key=lambda i: (shares[i] - base[i], -i), reverse=True)
    for i in order[:left]:
        base[i] += 1
    return [1 + b for b in base]


def percentile_key(p: float) -> str:
    """``99`` -> ``p99``, ``99.9`` -> ``p99.9`` (as ``vllm bench serve``)."""
    return f"p{int(p)}" if float(p).is_integer() else f"p{p}"


def summarize(values_s: Sequence[float], percentiles: Iterable[float], name: str) -> dict[str, float | None]:
    """Mean, median, std and percentiles of ``values_s`` (seconds) as ``*_<name>_ms`` fields."""
    ps = list(percentiles)
    if not len(values_s):
        out: dict[str, float | None] = {f"mean_{name}_ms": None, f"median_{name}_ms": None, f"std_{name}_ms": None}
        out.update({f"{percentile_key(p)}_{name}_ms": None for p in ps})
        return out
    arr = np.asarray(values_s, dtype=float) * 1000.0
    out = {
        f"mean_{name}_ms": float(arr.mean()),
        f"median_{name}_ms": float(np.median(arr)),
        f"std_{name}_ms": float(arr.std()),
    }
    for p, v in zip(ps, np.percentile(arr, ps) if ps else [], strict=True):
        out[f"{percentile_key(p)}_{name}_ms"] = float(v)
    return out


def validate_slos(slos: Mapping[str, float] | None) -> dict[str, float]:
    """Check SLO names (``ttft_ms``, ``tpot_ms``, ``e2el_ms``) and values; returns a plain dict."""
    from labkit.errors import ConfigError

    out: dict[str, float] = {}
    for key, value in (slos or {}).items():
        if key not in SLO_METRICS:
            raise ConfigError(f"unknown SLO '{key}'", f"use one of: {', '.join(SLO_METRICS)} (milliseconds)")
        if not float(value) > 0:
            raise ConfigError(f"SLO {key} must be positive, got {value}", "give the threshold in milliseconds")
        out[key] = float(value)
    return out


def meets_slos(sample: RequestSample, slos: Mapping[str, float]) -> bool:
    """Whether a completed request meets every SLO (value <= threshold; undefined TPOT passes)."""
    values = {"ttft_ms": sample.ttft_s, "tpot_ms": sample.tpot_s, "e2el_ms": sample.e2el_s}
    for key, limit in slos.items():
        v = values[key]
        if v is None:
            if key == "tpot_ms":
                continue
            return False
        if v * 1000.0 > limit:
            return False
    return True


def compute(
    samples: Sequence[RequestSample],
    *,
    duration_s: float,
    percentiles: Iterable[float] = DEFAULT_PERCENTILES,
    slos: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The run's metrics with ``vllm bench serve`` field names (plus ``itl_token`` and goodput details).

    Args:
        samples: every request of the run, failed ones included.
        duration_s: the run's duration (see the module docstring); must be positive.
        percentiles: which percentiles to report.
        slos: thresholds in ms for goodput, e.g. ``{"ttft_ms": 500, "tpot_ms": 50}``.
    """
    ps = list(percentiles)
    slo = validate_slos(slos)
    ok = [s for s in samples if s.success]
    failed = [s for s in samples if not s.success]
    dur = duration_s if duration_s > 0 else math.nan
    total_in = sum(s.input_tokens or 0 for s in ok)
    total_out = sum(s.tokens_out for s in ok)
    out: dict[str, Any] = {
        "duration": duration_s,
        "completed": len(ok),
        "failed": len(failed),
        "failure_reasons": dict(Counter(_reason(s.error) for s in failed).most_common()),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(ok) / dur,
        "output_throughput": total_out / dur,
        "total_token_throughput": (total_in + total_out) / dur,
    }
    if slo:
        good = sum(1 for s in ok if meets_slos(s, slo))
        out["request_goodput"] = good / dur
        out["goodput_fraction"] = good / len(ok) if ok else None
        out["slos"] = slo
    else:
        out["request_goodput"] = None
    ttft = [s.ttft_s for s in ok if s.ttft_s is not None]
    tpot = [t for s in ok if (t := s.tpot_s) is not None]
    itl = [g for s in ok for g in s.itl_s]
    itl_tok = [g for s in ok for g in s.itl_token_s()]
    e2el = [s.e2el_s for s in ok if s.e2el_s is not None]
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("itl_token", itl_tok), ("e2el", e2el)):
        out.update(summarize(values, ps, name))
    sources = Counter(s.tokens_per_chunk()[1] for s in ok if s.chunk_ns)
    out["itl_token_source"] = sources.most_common(1)[0][0] if sources else None
    out.update(_peaks(ok))
    return out


def _peaks(ok: Sequence[RequestSample]) -> dict[str, Any]:
    """Peak output tokens per 1-second bucket and peak requests in flight (as ``vllm bench serve``)."""
    if not ok:
        return {"max_output_tokens_per_s": 0.0, "max_concurrent_requests": 0}
    start = min(s.sent_ns for s in ok)
    buckets: Counter[int] = Counter()
    for s in ok:
        tokens, _ = s.tokens_per_chunk()
        for t, k in zip(s.chunk_ns, tokens, strict=False):
            buckets[(t - start) // 1_000_000_000] += k
    events = sorted([(s.sent_ns, 1) for s in ok] + [(s.done_ns, -1) for s in ok], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return {"max_output_tokens_per_s": float(max(buckets.values(), default=0)), "max_concurrent_requests": peak}


def _reason(error: str | None) -> str:
    """A failure's reason without per-request details, for counting."""
    if not error:
        return "unknown"
    return error.split(":", 1)[0].strip()
