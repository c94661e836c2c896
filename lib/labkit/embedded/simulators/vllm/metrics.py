"""vLLM's Prometheus metrics, with vLLM's names, labels and buckets.

Names follow vLLM 0.12 (V1 engine, ``vllm/v1/metrics/loggers.py``): the KV cache
gauge is ``vllm:kv_cache_usage_perc`` (it was ``vllm:gpu_cache_usage_perc`` in
the V0 engine) and the inter-token histogram is ``vllm:inter_token_latency_seconds``
(``vllm:time_per_output_token_seconds`` until 0.11; exposed only with
``--show-hidden-metrics-for-version``). Every series carries ``model_name`` (the
served model name) and ``engine`` (``"0"``) labels, as vLLM's do.

The exposition is Prometheus text format 0.0.4 as ``prometheus_client`` writes
it: counters as ``<name>_total``, histograms as cumulative ``_bucket{le=...}``
lines, ``_count`` and ``_sum``, and for both a ``<name>_created`` gauge family.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
ITERATION_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
FINISH_REASONS = ("stop", "length", "abort", "error")


def build_1_2_5_buckets(max_value: int) -> tuple[int, ...]:
    """1, 2, 5, 10, 20, 50 ... up to ``max_value`` (vLLM's token-count buckets)."""
    buckets: list[int] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(buckets)
            buckets.append(value)
        exponent += 1


def _fmt(value: float) -> str:
    """Numbers as prometheus_client prints them (floats: ``1.0``, ``0.25``, ``+Inf``)."""
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Histogram:
    """A cumulative histogram with fixed upper bounds."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        """Record ``value`` (``times`` times: cheap bulk observation of a constant)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.count += times
        self.sum += value * times

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((_fmt(bound), running))
        return out


class VllmMetrics:
    """The metrics one simulated vLLM engine keeps, and their exposition.

    Args:
        model_name: the served model name (the ``model_name`` label).
        max_model_len: context length (bounds of the token-count histograms).
        created: simulated epoch seconds for the ``_created`` series.
        cache_info: labels of ``vllm:cache_config_info``.
        show_hidden: also expose ``vllm:time_per_output_token_seconds`` (hidden since 0.12).
        gauges: callback giving ``(running, waiting, kv_cache_usage)`` at scrape time.
    """

    def __init__(
        self,
        model_name: str,
        *,
        max_model_len: int,
        created: float,
        cache_info: dict[str, str] | None = None,
        show_hidden: bool = False,
        gauges: Callable[[], tuple[int, int, float]] | None = None,
    ) -> None:
        self.labels = f'model_name="{_escape(model_name)}",engine="0"'
        self.created = created
        self.cache_info = cache_info or {}
        self.show_hidden = show_hidden
        self.gauges = gauges or (lambda: (0, 0, 0.0))
        self.num_preemptions = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.prefix_cache_queries = 0
        self.prefix_cache_hits = 0
        self.request_success = dict.fromkeys(FINISH_REASONS, 0)
        token_buckets = build_1_2_5_buckets(max_model_len)
        self.request_prompt_tokens = Histogram(token_buckets)
        self.request_generation_tokens = Histogram(token_buckets)
        self.request_max_num_generation_tokens = Histogram(token_buckets)
        self.request_params_max_tokens = Histogram(token_buckets)
        self.request_params_n = Histogram((1, 2, 5, 10, 20))
        self.iteration_tokens = Histogram(ITERATION_TOKEN_BUCKETS)
        self.time_to_first_token = Histogram(TTFT_BUCKETS)
        self.inter_token_latency = Histogram(ITL_BUCKETS)
        self.time_per_output_token = Histogram(ITL_BUCKETS)
        self.request_time_per_output_token = Histogram(ITL_BUCKETS)
        self.e2e_request_latency = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_queue_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_inference_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_prefill_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_decode_time = Histogram(REQUEST_LATENCY_BUCKETS)

    # -- recording ---------------------------------------------------------------------------------

    def observe_itl(self, seconds: float, times: int = 1) -> None:
        """One inter-token gap (``times`` equal gaps at once)."""
        self.inter_token_latency.observe(seconds, times)
        if self.show_hidden:
            self.time_per_output_token.observe(seconds, times)

    def observe_finished(
        self,
        *,
        finish_reason: str,
        prompt_tokens: int,
        generation_tokens: int,
        max_tokens: int,
        e2e: float,
        queue: float,
        prefill: float,
        decode: float,
    ) -> None:
        """Record a finished request (vLLM's per-request stats)."""
        self.request_success[finish_reason] = self.request_success.get(finish_reason, 0) + 1
        self.e2e_request_latency.observe(e2e)
        self.request_queue_time.observe(queue)
        self.request_prefill_time.observe(prefill)
        self.request_decode_time.observe(decode)
        self.request_inference_time.observe(prefill + decode)
        self.request_prompt_tokens.observe(prompt_tokens)
        self.request_generation_tokens.observe(generation_tokens)
        self.request_max_num_generation_tokens.observe(max_tokens)
        self.request_params_max_tokens.observe(max_tokens)
        self.request_params_n.observe(1)
        if generation_tokens > 1:
            self.request_time_per_output_token.observe(decode / (generation_tokens - 1))

    # -- exposition --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The ``/metrics`` page."""
        running, waiting, kv_usage = self.gauges()
        lines: list[str] = []
        labels = self.labels
        created = _fmt(self.created)

        def gauge(name: str, doc: str, value: float, extra: str = "") -> None:
            lines.extend((f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name}{{{labels}{extra}}} {_fmt(value)}"))

        def counter(name: str, doc: str, values: dict[str, int] | int, label: str = "") -> None:
            lines.extend((f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter"))
            series = values if isinstance(values, dict) else {"": values}
            for key, value in series.items():
                extra = f',{label}="{key}"' if label else ""
                lines.append(f"{name}_total{{{labels}{extra}}} {_fmt(value)}")
            lines.extend((f"# HELP {name}_created {doc}", f"# TYPE {name}_created gauge"))
            for key in series:
                extra = f',{label}="{key}"' if label else ""
                lines.append(f"{name}_created{{{labels}{extra}}} {created}")

        def histogram(name: str, doc: str, hist: Histogram) -> None:
            lines.extend((f"# HELP {name} {doc}", f"# TYPE {name} histogram"))
            lines.extend(f'{name}_bucket{{{labels},le="{le}"}} {_fmt(n)}' for le, n in hist.cumulative())
            lines.append(f"{name}_count{{{labels}}} {_fmt(hist.count)}")
            lines.append(f"{name}_sum{{{labels}}} {_fmt(hist.sum)}")
            lines.extend((f"# HELP {name}_created {doc}", f"# TYPE {name}_created gauge"))
            lines.append(f"{name}_created{{{labels}}} {created}")

        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", running)
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting)
        lines.extend(
            (
                "# HELP vllm:engine_sleep_state Engine sleep state; awake = 0 means engine is sleeping; "
                "awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; "
                "discard_all = 1 means sleep level 2.",
                "# TYPE vllm:engine_sleep_state gauge",
            )
        )
        for state, value in (("awake", 1), ("weights_offloaded", 0), ("discard_all", 0)):
            lines.append(f'vllm:engine_sleep_state{{{labels},sleep_state="{state}"}} {_fmt(value)}')
        gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_usage)
        counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            self.prefix_cache_queries,
        )
        counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", self.prefix_cache_hits
        )
        counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", self.num_preemptions)
        counter("vllm:prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens)
        counter("vllm:generation_tokens", "Number of generation tokens processed.", self.generation_tokens)
        counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            self.request_success,
            label="finished_reason",
        )
        histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", self.request_prompt_tokens)
        histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", self.request_generation_tokens
        )
        histogram(
            "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", self.iteration_tokens
        )
        histogram(
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            self.request_max_num_generation_tokens,
        )
        histogram("vllm:request_params_n", "Histogram of the n request parameter.", self.request_params_n)
        histogram(
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            self.request_params_max_tokens,
        )
        histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.time_to_first_token
        )
        if self.show_hidden:
            histogram(
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds."
                "DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
                self.time_per_output_token,
            )
        histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", self.inter_token_latency
        )
        histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            self.request_time_per_output_token,
        )
        histogram(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", self.e2e_request_latency
        )
        histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            self.request_queue_time,
        )
        histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            self.request_inference_time,
        )
        histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            self.request_prefill_time,
        )
        histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            self.request_decode_time,
        )
        if self.cache_info:
            info = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(self.cache_info.items()))
            lines.extend(
                (
                    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
                    "# TYPE vllm:cache_config_info gauge",
                    f'vllm:cache_config_info{{{info},engine="0"}} 1.0',
                )
            )
        return ("\n".join(lines) + "\n").encode()
