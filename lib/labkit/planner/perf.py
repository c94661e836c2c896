"""Step times of a vLLM engine from a roofline, and steady-state latency and throughput under load.

One engine step runs every scheduled token through the model once. Its time is the larger of

* compute: 2 FLOPs per weight per token (plus attention's FLOPs), at the GPU's peak tensor throughput
  times an efficiency, split over the tensor-parallel group; and
* memory: reading this GPU's share of the weights once, plus the KV cache of every sequence in the
  batch, at peak bandwidth times an efficiency,

plus the all-reduces of tensor parallelism (two per layer) and a fixed per-step overhead. Prefill is
compute-bound; small-batch decode is memory-bound and turns compute-bound as the batch grows.

:class:`ServingPerf` bundles this for one model server (model, GPU, tensor parallel, dtype) and is
what the embedded vLLM simulator and the planner share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.errors import ConfigError
from labkit.planner.calibration import Efficiency, Interconnect, load_calibration
from labkit.planner.catalog import (
    GpuSpec,
    InstanceType,
    ModelSpec,
    get_gpu,
    get_instance_type,
    get_model,
    normalize_dtype,
)
from labkit.planner.memory import (
    BLOCK_SIZE,
    DEFAULT_MAX_NUM_SEQS,
    DoesNotFit,
    MemoryPlan,
    plan_memory,
    required_tensor_parallel,
    weight_bytes,
)

#: GPUs that AWS offers only without NVLink (every g5, g6 and g6e size).
_PCIE_ONLY = frozenset({"A10G", "L4", "L40S"})


def default_interconnect(gpu: GpuSpec) -> str:
    """``pcie`` for the GPUs AWS ships without NVLink, else ``nvlink``."""
    return "pcie" if gpu.name in _PCIE_ONLY else "nvlink"


@dataclass(frozen=True)
class StepTime:
    """One engine step, broken down.

    Attributes:
        seconds: the step's time.
        compute_s: matrix-multiply and attention time at the calibrated compute efficiency.
        memory_s: weight and KV-cache reading time at the calibrated bandwidth efficiency.
        communication_s: tensor-parallel all-reduces.
        overhead_s: fixed per-step cost.
    """

    seconds: float
    compute_s: float
    memory_s: float
    communication_s: float
    overhead_s: float

    @property
    def bound(self) -> str:
        """``compute`` or ``memory``: which side of the roofline the step is on."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class Prediction:
    """Steady-state behaviour of one model server under a load.

    Times are in seconds; the ``*_ms`` properties give milliseconds (names as in ``vllm bench serve``).

    Attributes:
        concurrency: requests in the system (running plus queued); for a rate, the mean by Little's law.
        rate: arrival rate in requests/s for rate loads, else ``None``.
        prompt_tokens: input tokens per request.
        output_tokens: output tokens per request.
        running: sequences decoding together (the batch).
        max_running: most sequences the KV cache and ``max_num_seqs`` allow at this context.
        ttft_s: time to first token, queueing included.
        tpot_s: time per output token after the first.
        itl_s: one decode step (the gap between tokens when no prefill interrupts).
        e2e_s: request latency.
        request_throughput: completed requests per second.
        output_throughput: output tokens per second.
        total_token_throughput: prompt plus output tokens per second.
        kv_cache_usage: fraction of KV cache blocks in use.
        saturated: the load exceeds what the server sustains (queues grow without bound for a rate).
        limited_by: ``kv_cache`` or ``max_num_seqs`` when that cap, not the load, sets the batch; else ``None``.
        decode_bound: ``compute`` or ``memory`` for the decode step.
    """

    concurrency: float
    rate: float | None
    prompt_tokens: int
    output_tokens: int
    running: float
    max_running: int
    ttft_s: float
    tpot_s: float
    itl_s: float
    e2e_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    kv_cache_usage: float
    saturated: bool
    limited_by: str | None
    decode_bound: str

    @property
    def ttft_ms(self) -> float:
        """TTFT in milliseconds."""
        return self.ttft_s * 1000

    @property
    def tpot_ms(self) -> float:
        """TPOT in milliseconds."""
        return self.tpot_s * 1000

    @property
    def itl_ms(self) -> float:
        """Decode step time in milliseconds."""
        return self.itl_s * 1000

    @property
    def e2e_ms(self) -> float:
        """End-to-end latency in milliseconds."""
        return self.e2e_s * 1000

    def as_bench_fields(self) -> dict[str, float]:
        """The prediction under ``vllm bench serve``'s result field names, to set beside a measurement."""
        return {
            "mean_ttft_ms": self.ttft_ms,
            "mean_tpot_ms": self.tpot_ms,
            "mean_itl_ms": self.itl_ms,
            "mean_e2el_ms": self.e2e_ms,
            "request_throughput": self.request_throughput,
            "output_throughput": self.output_throughput,
            "total_token_throughput": self.total_token_throughput,
        }


class ServingPerf:
    """Roofline performance and memory model of one vLLM server (one tensor-parallel group).

    Build it with :meth:`from_names` (names as people write them) or directly from specs.

    Args:
        model: the model.
        gpu: the GPU.
        tensor_parallel: GPUs in the group.
        dtype: weight dtype (the model's default when ``None``).
        gpu_memory_utilization: vLLM's ``--gpu-memory-utilization``.
        max_model_len: vLLM's ``--max-model-len`` (the model's maximum when ``None``).
        max_num_seqs: vLLM's ``--max-num-seqs``.
        interconnect: ``nvlink`` or ``pcie`` (default: what AWS ships with this GPU).
        kv_cache_dtype: vLLM's ``--kv-cache-dtype`` (``auto`` or ``fp8``).
        strict: raise :class:`~labkit.planner.memory.DoesNotFit` as vLLM refuses to start when the KV cache
            cannot hold one sequence of ``max_model_len`` tokens; when ``False``, shorten ``max_model_len``
            to the capacity instead (still raising when the weights alone do not fit).
        efficiency: override the calibrated efficiencies.

    Raises:
        DoesNotFit: the model does not fit (see ``strict``).
        ConfigError: impossible arguments.
    """

    block_size: int = BLOCK_SIZE

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        tensor_parallel: int = 1,
        *,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
        interconnect: str | None = None,
        kv_cache_dtype: str = "auto",
        strict: bool = True,
        efficiency: Efficiency | None = None,
    ) -> None:
        self.dtype = normalize_dtype(dtype or model.dtype)
        self.tensor_parallel = tensor_parallel
        self.max_num_seqs = max_num_seqs
        plan = plan_memory(
            model,
            gpu,
            tensor_parallel,
            dtype=self.dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            kv_cache_dtype=kv_cache_dtype,
        )
        if plan.kv_cache_tokens < BLOCK_SIZE:
            raise DoesNotFit(
                f"{model.name} in {self.dtype} does not fit on {tensor_parallel}x {gpu.name}: weights need "
                f"{plan.weight_bytes / 1e9:.1f} GB per GPU and the GPU gives vLLM {plan.budget_bytes / 1e9:.1f} GB "
                f"at gpu_memory_utilization {gpu_memory_utilization}",
                "use more GPUs (tensor parallel), a smaller dtype (fp8, int4-awq) or a GPU with more memory; "
                "labkit.planner.required_tensor_parallel() finds the smallest group",
            )
        if not plan.fits:
            if strict:
                raise DoesNotFit(
                    f"the model's max seq len ({plan.max_model_len}) is larger than the maximum number of tokens "
                    f"that can be stored in KV cache ({plan.kv_cache_tokens}) for {model.name} on "
                    f"{tensor_parallel}x {gpu.name}",
                    f"set max_model_len to at most {plan.kv_cache_tokens}, raise gpu_memory_utilization, "
                    "or use more GPUs",
                )
            plan = plan_memory(
                model,
                gpu,
                tensor_parallel,
                dtype=self.dtype,
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=plan.kv_cache_tokens,
                max_num_seqs=max_num_seqs,
                kv_cache_dtype=kv_cache_dtype,
            )
        self.memory: MemoryPlan = plan
        self.model: ModelSpec = plan.model
        self.gpu = gpu
        self.interconnect_kind = interconnect or default_interconnect(gpu)
        cal = load_calibration()
        self.efficiency: Efficiency = efficiency or cal.efficiency(gpu.name)
        self.link: Interconnect = cal.interconnect(self.interconnect_kind)
        # Constants of the hot path (the simulator calls the step functions once per engine step).
        compute_dtype = "fp8" if self.dtype == "fp8" and gpu.fp8_tflops else "bf16"
        tp = tensor_parallel
        self._peak_flops = gpu.peak_flops(compute_dtype) * tp
        self._bandwidth = gpu.bandwidth_bytes * self.efficiency.memory
        # A decode step reads every weight once, except the embedding table: it looks up one row per token
        # (when the LM head is tied to it, the head reads the table anyway).
        embedding_only = 0 if self.model.tie_word_embeddings else self.model.vocab_size * self.model.hidden_size * 2
        self._weights_per_gpu = (weight_bytes(self.model, self.dtype) - embedding_only) / tp
        self._kv_per_token = plan.kv_bytes_per_token
        self._linear_flops_per_token = 2.0 * self.model.layer_linear_parameters
        self._head_flops_per_seq = 2.0 * self.model.vocab_size * self.model.hidden_size
        self._attn = 2.0 * self.model.layers * self.model.attention_width
        self._allreduces = 2 * self.model.layers if tp > 1 else 0
        self._allreduce_bytes_per_token = self.model.hidden_size * 2 * 2 * (tp - 1) / tp if tp > 1 else 0.0

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_names(  # noqa: PLR0917 - positional order agreed with the vLLM simulator
        cls,
        model: str,
        gpu: str,
        tensor_parallel: int = 1,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        **kwargs: object,
    ) -> ServingPerf:
        """Build from names: ``ServingPerf.from_names("meta-llama/Llama-3.1-8B-Instruct", "A10G", max_model_len=8192)``.

        ``gpu`` may also be an instance type (``"g6e.xlarge"``); its GPU and interconnect are used.
        Extra keyword arguments go to the constructor (``max_num_seqs``, ``strict``...).
        """
        spec = get_model(model)
        interconnect = kwargs.pop("interconnect", None)
        if "." in gpu:
            it = get_instance_type(gpu)
            if tensor_parallel > it.gpu_count:
                raise ConfigError(
                    f"{it.name} has {it.gpu_count} GPU(s); tensor parallel {tensor_parallel} needs more",
                    "pick a larger instance type or a smaller tensor parallel size",
                )
            gpu_spec, interconnect = it.gpu_spec, interconnect or it.interconnect
        else:
            gpu_spec = get_gpu(gpu)
        return cls(
            spec,
            gpu_spec,
            tensor_parallel,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            interconnect=interconnect,  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def for_instance(
        cls,
        model: ModelSpec | str,
        instance: InstanceType | str,
        *,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    ) -> ServingPerf:
        """The server with the fewest GPUs of one instance type that holds ``model`` and one full context.

        Raises:
            DoesNotFit: the instance's GPUs are not enough; the message says what would be.
        """
        spec = get_model(model) if isinstance(model, str) else model
        it = get_instance_type(instance) if isinstance(instance, str) else instance
        plan = required_tensor_parallel(
            spec,
            it.gpu_spec,
            dtype=dtype,
            context_tokens=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            max_gpus=it.gpu_count,
        )
        return cls(
            spec,
            it.gpu_spec,
            plan.tensor_parallel,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            interconnect=it.interconnect,
        )

    # ------------------------------------------------------------------ capacity

    @property
    def kv_cache_tokens(self) -> int:
        """KV cache capacity in tokens, shared by all running sequences."""
        return self.memory.kv_cache_tokens

    @property
    def kv_cache_blocks(self) -> int:
        """KV cache capacity in blocks of :attr:`block_size` tokens."""
        return self.memory.kv_cache_tokens // self.block_size

    @property
    def max_model_len(self) -> int:
        """Longest sequence (prompt plus output) the server accepts."""
        return self.memory.max_model_len

    def __repr__(self) -> str:
        return (
            f"ServingPerf({self.model.name!r}, {self.gpu.name!r}, tensor_parallel={self.tensor_parallel}, "
            f"dtype={self.dtype!r}, kv_cache_tokens={self.kv_cache_tokens})"
        )

    # ------------------------------------------------------------------ step times

    def step(
        self,
        *,
        prefill_tokens: int = 0,
        prefill_seqs: int = 0,
        prefill_attention_tokens2: float | None = None,
        decode_seqs: float = 0,
        decode_context_tokens: float = 0,
    ) -> StepTime:
        """Time of one engine step that prefills ``prefill_tokens`` and decodes one token for ``decode_seqs``.

        Args:
            prefill_tokens: prompt tokens computed this step (all prefill chunks together).
            prefill_seqs: sequences those tokens belong to (each samples a token when its prompt completes).
            prefill_attention_tokens2: sum over prefill chunks of ``new * (new + 2 * cached)`` tokens²
                (causal attention work); default assumes one fresh sequence: ``prefill_tokens ** 2``.
            decode_seqs: sequences decoding one token each.
            decode_context_tokens: sum of those sequences' context lengths (their KV cache is read).
        """
        eff = self.efficiency
        tokens = prefill_tokens + decode_seqs
        if tokens <= 0:
            return StepTime(0.0, 0.0, 0.0, 0.0, 0.0)
        a2 = float(prefill_tokens) ** 2 if prefill_attention_tokens2 is None else prefill_attention_tokens2
        sampled = decode_seqs + (prefill_seqs or (1 if prefill_tokens else 0))
        prefill_flops = self._linear_flops_per_token * prefill_tokens + self._attn * a2
        decode_flops = self._linear_flops_per_token * decode_seqs + 2.0 * self._attn * decode_context_tokens
        head_flops = self._head_flops_per_seq * sampled
        compute = prefill_flops / (self._peak_flops * eff.prefill_compute) + (decode_flops + head_flops) / (
            self._peak_flops * eff.decode_compute
        )
        memory = (self._weights_per_gpu + self._kv_per_token * (decode_context_tokens + prefill_tokens)) / (
            self._bandwidth
        )
        comm = 0.0
        if self._allreduces:
            comm = self._allreduces * (
                self.link.allreduce_latency_s + tokens * self._allreduce_bytes_per_token / self.link.bus_bandwidth
            )
        seconds = max(compute, memory) + comm + eff.step_overhead_s
        return StepTime(seconds, compute, memory, comm, eff.step_overhead_s)

    def prefill_seconds(self, prompt_tokens: int) -> float:
        """Time to prefill one fresh prompt of ``prompt_tokens`` tokens alone (and sample its first token)."""
        return self.step(prefill_tokens=prompt_tokens, prefill_seqs=1).seconds

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float:
        """Time of one decode step for ``batch_size`` sequences whose context lengths sum to ``context_tokens``."""
        return self.step(decode_seqs=batch_size, decode_context_tokens=context_tokens).seconds

    def mixed_step_seconds(self, prefill_tokens: int, batch_size: int, context_tokens: int) -> float:
        """Time of a chunked-prefill step: ``prefill_tokens`` of prompt plus one decode token per running sequence."""
        return self.step(
            prefill_tokens=prefill_tokens,
            prefill_seqs=1 if prefill_tokens else 0,
            decode_seqs=batch_size,
            decode_context_tokens=context_tokens,
        ).seconds

    # ------------------------------------------------------------------ steady state

    def max_running(self, prompt_tokens: int, output_tokens: int) -> tuple[int, str]:
        """Most sequences that run together at this request shape, and what caps it.

        A running sequence holds on average its prompt plus half its output in the KV cache.
        """
        self._check_shape(prompt_tokens, output_tokens)
        mean_ctx = prompt_tokens + output_tokens / 2
        blocks = math.ceil(mean_ctx / self.block_size)
        by_kv = max(1, self.kv_cache_blocks // blocks)
        if by_kv < self.max_num_seqs:
            return by_kv, "kv_cache"
        return self.max_num_seqs, "max_num_seqs"

    def _check_shape(self, prompt_tokens: int, output_tokens: int) -> None:
        if prompt_tokens < 1 or output_tokens < 1:
            raise ConfigError("prompt and output tokens must be at least 1", "pass the request shape you expect")
        if prompt_tokens + output_tokens > self.max_model_len:
            raise ConfigError(
                f"{prompt_tokens} prompt + {output_tokens} output tokens exceed max_model_len {self.max_model_len} "
                f"of {self.model.name} on {self.tensor_parallel}x {self.gpu.name}",
                "shorten the requests, or serve with a larger max_model_len (more GPUs or memory)",
            )

    def _running_times(self, running: float, prompt_tokens: int, output_tokens: int) -> tuple[float, float, StepTime]:
        """(prefill time, decode step time, decode step) with ``running`` sequences decoding."""
        mean_ctx = prompt_tokens + output_tokens / 2
        decode = self.step(decode_seqs=running, decode_context_tokens=running * mean_ctx)
        return self.prefill_seconds(prompt_tokens), decode.seconds, decode

    def _throughput(self, running: float, prompt_tokens: int, output_tokens: int) -> float:
        t_p, t_d, _ = self._running_times(running, prompt_tokens, output_tokens)
        return running / ((output_tokens - 1) * t_d + running * t_p)

    def predict(self, concurrency: int, prompt_tokens: int, output_tokens: int) -> Prediction:
        """Steady state with ``concurrency`` requests always in flight (a closed loop, as ``--max-concurrency``).

        Each request is prefilled once (interrupting the batch's decoding) and then decodes ``output_tokens - 1``
        more tokens in a continuous batch. With ``b`` sequences running, a decode step takes ``t_d(b)`` and a
        prefill ``t_p``; per completed request the engine spends ``(O - 1) t_d / b + t_p``, so throughput is
        ``b / ((O - 1) t_d + b t_p)``. Requests beyond what the KV cache holds wait in the queue.
        """
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1", "pass the number of requests in flight")
        cap, cap_reason = self.max_running(prompt_tokens, output_tokens)
        running = min(concurrency, cap)
        t_p, t_d, decode = self._running_times(running, prompt_tokens, output_tokens)
        busy = (output_tokens - 1) * t_d + running * t_p
        throughput = running / busy
        # A new request waits on average half a decode step when others are running, then is prefilled.
        ttft_running = t_p + t_d / 2 * min(1.0, running - 1)
        e2e = concurrency / throughput
        tpot = (busy - ttft_running) / (output_tokens - 1) if output_tokens > 1 else 0.0
        queued_wait = max(0.0, e2e - busy)
        return Prediction(
            concurrency=concurrency,
            rate=None,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            running=running,
            max_running=cap,
            ttft_s=ttft_running + queued_wait,
            tpot_s=tpot,
            itl_s=t_d,
            e2e_s=e2e,
            request_throughput=throughput,
            output_throughput=throughput * output_tokens,
            total_token_throughput=throughput * (prompt_tokens + output_tokens),
            kv_cache_usage=min(1.0, running * (prompt_tokens + output_tokens / 2) / self.kv_cache_tokens),
            saturated=concurrency > cap,
            limited_by=cap_reason if concurrency > cap else None,
            decode_bound=decode.bound,
        )

    def max_throughput(self, prompt_tokens: int, output_tokens: int) -> Prediction:
        """The steady state with the batch as full as the KV cache and ``max_num_seqs`` allow."""
        cap, _ = self.max_running(prompt_tokens, output_tokens)
        return self.predict(cap, prompt_tokens, output_tokens)

    def predict_rate(self, rate: float, prompt_tokens: int, output_tokens: int) -> Prediction:
        """Steady state under Poisson arrivals at ``rate`` requests/s (an open loop, as ``--request-rate``).

        The batch size ``b`` solves Little's law ``b = rate x E2E(b)``. Prefills queue for the engine as an
        M/D/1 queue (utilization ``rate x t_p``), which adds to TTFT. Past the server's maximum throughput the
        prediction is ``saturated`` and latencies are infinite.
        """
        if rate <= 0:
            raise ConfigError("rate must be positive", "pass requests per second")
        cap, cap_reason = self.max_running(prompt_tokens, output_tokens)
        best = self._throughput(cap, prompt_tokens, output_tokens)
        if rate >= best:
            t_p, t_d, decode = self._running_times(cap, prompt_tokens, output_tokens)
            return Prediction(
                concurrency=math.inf,
                rate=rate,
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
                running=cap,
                max_running=cap,
                ttft_s=math.inf,
                tpot_s=t_d + (cap - 1) * t_p / max(1, output_tokens - 1),
                itl_s=t_d,
                e2e_s=math.inf,
                request_throughput=best,
                output_throughput=best * output_tokens,
                total_token_throughput=best * (prompt_tokens + output_tokens),
                kv_cache_usage=min(1.0, cap * (prompt_tokens + output_tokens / 2) / self.kv_cache_tokens),
                saturated=True,
                limited_by=cap_reason,
                decode_bound=decode.bound,
            )
        # Throughput grows with b up to the cap: bisect for the b that carries `rate`.
        lo, hi = 0.0, float(cap)
        for _ in range(60):
            mid = (lo + hi) / 2
            if mid > 0 and self._throughput(mid, prompt_tokens, output_tokens) >= rate:
                hi = mid
            else:
                lo = mid
        running = max(hi, 1e-9)
        t_p, t_d, decode = self._running_times(running, prompt_tokens, output_tokens)
        rho = rate * t_p
        prefill_wait = rho * t_p / (2 * (1 - rho)) if rho < 1 else math.inf
        ttft = t_p + t_d / 2 * min(1.0, running) + prefill_wait
        tpot = t_d + max(0.0, running - 1) * t_p / max(1, output_tokens - 1)
        e2e = ttft + (output_tokens - 1) * tpot
        return Prediction(
            concurrency=rate * e2e,
            rate=rate,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            running=running,
            max_running=cap,
            ttft_s=ttft,
            tpot_s=tpot,
            itl_s=t_d,
            e2e_s=e2e,
            request_throughput=rate,
            output_throughput=rate * output_tokens,
            total_token_throughput=rate * (prompt_tokens + output_tokens),
            kv_cache_usage=min(1.0, running * (prompt_tokens + output_tokens / 2) / self.kv_cache_tokens),
            saturated=False,
            limited_by=None,
            decode_bound=decode.bound,
        )
