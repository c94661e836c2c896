"""Cost and the cheapest instance type that meets a latency SLO.

For every GPU instance type with an on-demand price, :func:`cheapest_instance` tries each
tensor-parallel size that fits the model, runs as many replicas per instance as its GPUs allow, and
adds instances until the predicted steady state meets the SLO at the requested load. The answer is
ranked by total $/hour; every instance type that cannot serve gets a reason a person can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from labkit.errors import ConfigError
from labkit.planner.catalog import InstanceType, ModelSpec, get_instance_type, get_model, instance_types
from labkit.planner.memory import BLOCK_SIZE, TP_SIZES, DoesNotFit, MemoryPlan, check_tensor_parallel, plan_memory
from labkit.planner.perf import Prediction, ServingPerf

#: Most instances a plan may use before an instance type is rejected as too small.
MAX_INSTANCES = 16


def cost_per_million_output_tokens(price_per_hour: float, output_tokens_per_second: float) -> float:
    """USD per 1M output tokens at a sustained output throughput (``inf`` when nothing is produced)."""
    if output_tokens_per_second <= 0:
        return math.inf
    return price_per_hour / (output_tokens_per_second * 3600) * 1e6


def cost_per_thousand_requests(price_per_hour: float, requests_per_second: float) -> float:
    """USD per 1,000 requests at a sustained request throughput."""
    if requests_per_second <= 0:
        return math.inf
    return price_per_hour / (requests_per_second * 3600) * 1e3


@dataclass(frozen=True)
class SLO:
    """Latency targets, in milliseconds, on the steady-state mean (``None``: no target).

    Attributes:
        ttft_ms: time to first token.
        tpot_ms: time per output token after the first.
    """

    ttft_ms: float | None = None
    tpot_ms: float | None = None

    def misses(self, prediction: Prediction) -> list[str]:
        """What ``prediction`` misses, as phrases (empty when it meets the SLO)."""
        out = []
        if self.ttft_ms is not None and not prediction.ttft_ms <= self.ttft_ms:
            out.append(f"TTFT {_ms(prediction.ttft_ms)} > {self.ttft_ms:g} ms")
        if self.tpot_ms is not None and not prediction.tpot_ms <= self.tpot_ms:
            out.append(f"TPOT {_ms(prediction.tpot_ms)} > {self.tpot_ms:g} ms")
        if prediction.saturated and prediction.rate is not None:
            out.append("the arrival rate exceeds the throughput")
        return out

    def met_by(self, prediction: Prediction) -> bool:
        """Whether ``prediction`` meets every target."""
        return not self.misses(prediction)


def _ms(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


@dataclass(frozen=True)
class Candidate:
    """One way to serve the load on one instance type.

    Attributes:
        instance_type: the instance type.
        tensor_parallel: GPUs per replica.
        replicas_per_instance: model servers per instance.
        instances: instances needed.
        price_per_hour: total on-demand USD per hour.
        prediction: the steady state of one replica at its share of the load.
        cost_per_million_output_tokens: USD per 1M output tokens at this load.
        cost_per_thousand_requests: USD per 1,000 requests at this load.
        dtype: serving dtype.
    """

    instance_type: InstanceType
    tensor_parallel: int
    replicas_per_instance: int
    instances: int
    price_per_hour: float
    prediction: Prediction
    cost_per_million_output_tokens: float
    cost_per_thousand_requests: float
    dtype: str

    @property
    def replicas(self) -> int:
        """Model servers in total."""
        return self.instances * self.replicas_per_instance

    def describe(self) -> str:
        """One line for people."""
        p = self.prediction
        return (
            f"{self.instances}x {self.instance_type.name} ({self.replicas} replica(s) of TP{self.tensor_parallel} "
            f"on {self.instance_type.gpu}, {self.dtype}): ${self.price_per_hour:.2f}/h, TTFT {_ms(p.ttft_ms)}, "
            f"TPOT {_ms(p.tpot_ms)}, ${self.cost_per_million_output_tokens:.2f}/1M output tokens"
        )


@dataclass(frozen=True)
class Rejection:
    """An instance type that cannot serve the load, and why."""

    instance_type: str
    reason: str


@dataclass(frozen=True)
class CapacityPlan:
    """Ranked candidates (cheapest first) and rejected instance types with reasons.

    Attributes:
        model: the model planned.
        slo: the latency targets.
        prompt_tokens: input tokens per request.
        output_tokens: output tokens per request.
        concurrency: requests in flight, for a closed-loop load.
        rate: requests per second, for an open-loop load.
        ranked: candidates, cheapest total $/hour first.
        rejected: instance types that cannot serve, with reasons.
    """

    model: ModelSpec
    slo: SLO
    prompt_tokens: int
    output_tokens: int
    concurrency: int | None
    rate: float | None
    ranked: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        """The cheapest candidate.

        Raises:
            DoesNotFit: nothing meets the SLO; the message lists why the closest options failed.
        """
        if not self.ranked:
            reasons = "; ".join(f"{r.instance_type}: {r.reason}" for r in self.rejected[:4])
            raise DoesNotFit(
                f"no instance type serves {self.model.name} at {self._load()} within {self._slo()}: {reasons}",
                "relax the SLO, lower the load or context, allow more instances, or try dtype='fp8'",
            )
        return self.ranked[0]

    def _load(self) -> str:
        what = f"{self.concurrency} concurrent requests" if self.concurrency else f"{self.rate:g} requests/s"
        return f"{what} of {self.prompt_tokens}+{self.output_tokens} tokens"

    def _slo(self) -> str:
        parts = [f"TTFT {self.slo.ttft_ms:g} ms"] if self.slo.ttft_ms is not None else []
        parts += [f"TPOT {self.slo.tpot_ms:g} ms"] if self.slo.tpot_ms is not None else []
        return " and ".join(parts) or "no SLO"

    def rows(self) -> list[dict[str, object]]:
        """A table (one dict per instance type) for a notebook: candidates first, then rejections."""
        out: list[dict[str, object]] = [
            {
                "instance_type": c.instance_type.name,
                "instances": c.instances,
                "tensor_parallel": c.tensor_parallel,
                "replicas": c.replicas,
                "usd_per_hour": round(c.price_per_hour, 4),
                "ttft_ms": round(c.prediction.ttft_ms, 1),
                "tpot_ms": round(c.prediction.tpot_ms, 2),
                "usd_per_1m_output_tokens": round(c.cost_per_million_output_tokens, 3),
                "verdict": "ok",
            }
            for c in self.ranked
        ]
        out += [{"instance_type": r.instance_type, "verdict": r.reason} for r in self.rejected]
        return out

    def __str__(self) -> str:
        head = f"{self.model.name}, {self._load()}, SLO {self._slo()}"
        lines = [head] + [f"  {i + 1}. {c.describe()}" for i, c in enumerate(self.ranked)]
        lines += [f"  x {r.instance_type}: {r.reason}" for r in self.rejected]
        return "\n".join(lines)


def _valid_tps(model: ModelSpec, gpu_count: int) -> list[int]:
    out = []
    for tp in TP_SIZES:
        if tp > gpu_count:
            break
        try:
            check_tensor_parallel(model, tp)
        except ConfigError:
            continue
        out.append(tp)
    return out


def _predict(perf: ServingPerf, share: float, concurrency: bool, prompt: int, output: int) -> Prediction:
    if concurrency:
        return perf.predict(max(1, math.ceil(share)), prompt, output)
    return perf.predict_rate(share, prompt, output)


def _why_slo_unreachable(perf: ServingPerf, slo: SLO, prompt: int, output: int) -> str | None:
    """The latency floor (one request per replica) when it already misses the SLO."""
    floor = perf.predict(1, prompt, output)
    misses = slo.misses(floor)
    if not misses:
        return None
    why = []
    if slo.ttft_ms is not None and floor.ttft_ms > slo.ttft_ms:
        why.append(f"prefill of {prompt} tokens alone takes {_ms(floor.ttft_ms)}")
    if slo.tpot_ms is not None and floor.tpot_ms > slo.tpot_ms:
        step = perf.step(decode_seqs=1, decode_context_tokens=prompt)
        why.append(f"one decode step takes {_ms(floor.tpot_ms)} ({step.bound}-bound)")
    return ", ".join(why)


def _evaluate(
    model: ModelSpec,
    it: InstanceType,
    slo: SLO,
    *,
    prompt: int,
    output: int,
    concurrency: int | None,
    rate: float | None,
    dtype: str | None,
    context: int,
    gpu_memory_utilization: float,
    max_instances: int,
) -> Candidate | str:
    if it.price_per_hour is None:
        return "no on-demand price (Capacity Blocks only)"
    best: Candidate | None = None
    reasons: list[str] = []
    for tp in _valid_tps(model, it.gpu_count):
        memory = plan_memory(
            model, it.gpu_spec, tp, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, max_model_len=context
        )
        if not memory.fits:
            reasons.append(_fit_reason(memory, context))
            continue
        perf = ServingPerf(
            model,
            it.gpu_spec,
            tp,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=context,
            interconnect=it.interconnect,
        )
        floor = _why_slo_unreachable(perf, slo, prompt, output)
        if floor:
            reasons.append(f"{floor} on {tp}x {it.gpu}: over the SLO even with one request per server")
            continue
        per_instance = it.gpu_count // tp
        load = float(concurrency if concurrency is not None else rate)  # type: ignore[arg-type]
        chosen: tuple[int, Prediction] | None = None
        for instances in range(1, max_instances + 1):
            prediction = _predict(perf, load / (instances * per_instance), concurrency is not None, prompt, output)
            if slo.met_by(prediction):
                chosen = (instances, prediction)
                break
        if chosen is None:
            reasons.append(f"needs more than {max_instances} instances for this load (TP{tp})")
            continue
        instances, prediction = chosen
        replicas = instances * per_instance
        price = instances * it.price_per_hour
        candidate = Candidate(
            instance_type=it,
            tensor_parallel=tp,
            replicas_per_instance=per_instance,
            instances=instances,
            price_per_hour=price,
            prediction=prediction,
            cost_per_million_output_tokens=cost_per_million_output_tokens(
                price, prediction.output_throughput * replicas
            ),
            cost_per_thousand_requests=cost_per_thousand_requests(price, prediction.request_throughput * replicas),
            dtype=perf.dtype,
        )
        if best is None or (candidate.price_per_hour, candidate.prediction.tpot_s) < (
            best.price_per_hour,
            best.prediction.tpot_s,
        ):
            best = candidate
    if best is not None:
        return best
    if not reasons:
        return f"{model.name}'s {model.attention_heads} heads do not split over {it.gpu_count} GPUs"
    # The largest group tried came closest to working: its reason is the one to act on.
    return reasons[-1]


def _fit_reason(memory: MemoryPlan, context: int) -> str:
    """Why a memory plan fails, in one phrase."""
    tp, gpu = memory.tensor_parallel, memory.gpu
    if memory.kv_cache_tokens < BLOCK_SIZE:
        total = memory.weight_bytes * tp
        return (
            f"does not fit: {memory.model.name} needs {total / 1e9:.0f} GB of {memory.dtype} weights; "
            f"{tp}x {gpu.name} {'gives' if tp == 1 else 'give'} vLLM {tp * memory.budget_bytes / 1e9:.0f} GB"
        )
    return (
        f"does not fit: the KV cache of {tp}x {gpu.name} holds {memory.kv_cache_tokens:,} tokens, "
        f"less than the {context:,}-token context"
    )


def cheapest_instance(
    model: ModelSpec | str,
    slo: SLO,
    *,
    prompt_tokens: int = 1024,
    output_tokens: int = 256,
    concurrency: int | None = None,
    rate: float | None = None,
    context: int | None = None,
    dtype: str | None = None,
    candidates: Iterable[InstanceType | str] | None = None,
    gpu_memory_utilization: float = 0.9,
    max_instances: int = MAX_INSTANCES,
) -> CapacityPlan:
    """Rank instance types by the total $/hour that serves the load within the SLO.

    Args:
        model: a :class:`ModelSpec` or a model name.
        slo: latency targets on the steady-state mean.
        prompt_tokens: input tokens per request.
        output_tokens: output tokens per request.
        concurrency: requests in flight (closed loop). Give this or ``rate``.
        rate: requests per second (open loop, Poisson arrivals).
        context: ``max_model_len`` the servers must support (default: prompt plus output, at least 4096).
        dtype: weight dtype (the model's default when ``None``).
        candidates: instance types to consider (default: every GPU type in the catalog).
        gpu_memory_utilization: vLLM's memory fraction.
        max_instances: most instances of one type a plan may use.

    Returns:
        A :class:`CapacityPlan`; ``plan.best`` is the cheapest candidate.

    Raises:
        ConfigError: neither or both of ``concurrency`` and ``rate``; impossible request shapes.
    """
    if (concurrency is None) == (rate is None):
        raise ConfigError("give exactly one of concurrency and rate", "e.g. concurrency=32 or rate=5.0")
    if concurrency is not None and concurrency < 1:
        raise ConfigError("concurrency must be at least 1", "pass the number of requests in flight")
    if rate is not None and rate <= 0:
        raise ConfigError("rate must be positive", "pass requests per second")
    spec = get_model(model) if isinstance(model, str) else model
    ctx = context or max(prompt_tokens + output_tokens, 4096)
    if ctx < prompt_tokens + output_tokens:
        raise ConfigError(
            f"context {ctx} is shorter than {prompt_tokens} prompt + {output_tokens} output tokens",
            "raise context or shorten the requests",
        )
    ctx = min(ctx, spec.max_context)
    types = [
        get_instance_type(t) if isinstance(t, str) else t
        for t in (candidates if candidates is not None else instance_types())
    ]
    plan = CapacityPlan(spec, slo, prompt_tokens, output_tokens, concurrency, rate)
    for it in types:
        result = _evaluate(
            spec,
            it,
            slo,
            prompt=prompt_tokens,
            output=output_tokens,
            concurrency=concurrency,
            rate=rate,
            dtype=dtype,
            context=ctx,
            gpu_memory_utilization=gpu_memory_utilization,
            max_instances=max_instances,
        )
        if isinstance(result, Candidate):
            plan.ranked.append(result)
        else:
            plan.rejected.append(Rejection(it.name, result))
    plan.ranked.sort(key=lambda c: (c.price_per_hour, c.cost_per_million_output_tokens, c.instance_type.name))
    return plan
