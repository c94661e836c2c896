"""GPU memory arithmetic of a vLLM server: weights, KV cache, what fits and how many GPUs it takes.

vLLM gives itself ``gpu_memory_utilization`` of each GPU's total memory; from that it subtracts the
weights (split across the tensor-parallel group), the activation peak of a profiling forward pass
and the runtime's own allocations (CUDA graphs, NCCL and cuBLAS buffers); the rest is KV cache,
carved into blocks of 16 tokens. The planner follows the same sum.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from labkit.errors import ConfigError
from labkit.planner.calibration import load_calibration
from labkit.planner.catalog import (
    GIB,
    GpuSpec,
    InstanceType,
    ModelSpec,
    get_instance_type,
    instance_types,
    normalize_dtype,
)

#: vLLM's KV cache block size in tokens (``--block-size`` default on CUDA).
BLOCK_SIZE = 16
#: vLLM's default ``--max-num-seqs``.
DEFAULT_MAX_NUM_SEQS = 256
#: Tensor-parallel sizes the planner considers.
TP_SIZES: tuple[int, ...] = (1, 2, 4, 8)


class DoesNotFit(ConfigError):
    """A model does not fit on the GPUs asked for; the message says what would."""


#: Bytes per weight of the matrix multiplies, by serving dtype. AWQ stores 4-bit weights plus, per group
#: of 128, a 16-bit scale and a 4-bit zero point: 0.5 + 2.5/128 bytes.
WEIGHT_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4-awq": 0.5 + 2.5 / 128}


def weight_bytes(model: ModelSpec, dtype: str | None = None) -> int:
    """Bytes of the weights when served in ``dtype`` (the model's default when ``None``).

    Quantization applies to the transformer blocks' matrices; embeddings, the LM head, norms and
    biases stay in 16 bits, as vLLM loads FP8 and AWQ checkpoints.
    """
    dt = normalize_dtype(dtype or model.dtype)
    quantized = model.layer_linear_parameters * WEIGHT_BYTES[dt]
    kept = (model.embedding_parameters + model.small_parameters) * 2
    return int(quantized + kept)


def kv_dtype_bytes(model_dtype: str, kv_cache_dtype: str = "auto") -> int:
    """Bytes per KV element: 16-bit unless ``kv_cache_dtype`` is ``fp8`` (``auto`` follows activations)."""
    if kv_cache_dtype in ("fp8", "fp8_e4m3", "fp8_e5m2"):
        return 1
    if kv_cache_dtype not in ("auto", "bf16", "fp16", "bfloat16", "float16"):
        raise ConfigError(f"unknown kv_cache_dtype {kv_cache_dtype!r}", "use auto or fp8")
    # FP8, INT8 and AWQ checkpoints still compute, and cache, activations in 16 bits.
    del model_dtype
    return 2


def kv_bytes_per_token(model: ModelSpec, kv_cache_dtype: str = "auto") -> int:
    """KV cache bytes one token takes across the whole model: 2 (K and V) x layers x KV heads x head dim x bytes."""
    return 2 * model.layers * model.kv_heads * model.head_dim * kv_dtype_bytes(model.dtype, kv_cache_dtype)


def kv_bytes_per_token_per_gpu(model: ModelSpec, tp: int, kv_cache_dtype: str = "auto") -> int:
    """KV bytes per token on one GPU of a tensor-parallel group.

    KV heads are split across the group; with more GPUs than KV heads each GPU keeps a replica of one head.
    """
    heads_per_gpu = max(1, model.kv_heads // tp)
    return 2 * model.layers * heads_per_gpu * model.head_dim * kv_dtype_bytes(model.dtype, kv_cache_dtype)


#: vLLM's default ``--max-num-batched-tokens`` for the OpenAI server with chunked prefill (V1 engine).
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192


def activation_peak_bytes(model: ModelSpec, tp: int, max_num_batched_tokens: int) -> int:
    """Peak activation memory of vLLM's profiling pass, per GPU.

    The pass pushes ``max_num_batched_tokens`` tokens through the model. Per token it holds a few copies of
    the residual stream (``hidden``) and the SwiGLU intermediate (split over the tensor-parallel group);
    the coefficients come from vLLM's own memory logs (see CALIBRATION.md).
    """
    act = load_calibration().activation
    per_token = act.hidden_copies * model.hidden_size + act.intermediate_copies * model.intermediate_size / tp
    return int(max_num_batched_tokens * per_token * 2)


@dataclass(frozen=True)
class MemoryPlan:
    """How one model server's GPUs are used.

    All byte counts are per GPU of the tensor-parallel group.

    Attributes:
        model: the model.
        gpu: the GPU.
        tensor_parallel: GPUs in the group.
        dtype: serving dtype of the weights.
        gpu_memory_utilization: vLLM's fraction of each GPU's memory.
        budget_bytes: ``gpu_memory_utilization`` x total memory.
        weight_bytes: this GPU's share of the weights.
        activation_bytes: activation peak of the profiling pass.
        runtime_bytes: CUDA graphs, NCCL, cuBLAS workspaces and allocator slack.
        kv_cache_bytes: what is left for the KV cache (negative: does not fit).
        kv_bytes_per_token: KV bytes per token on this GPU.
        kv_cache_tokens: KV capacity in tokens (whole blocks), shared by all running sequences.
        max_model_len: longest sequence the server accepts.
        max_num_seqs: vLLM's cap on sequences in a batch.
    """

    model: ModelSpec
    gpu: GpuSpec
    tensor_parallel: int
    dtype: str
    gpu_memory_utilization: float
    budget_bytes: int
    weight_bytes: int
    activation_bytes: int
    runtime_bytes: int
    kv_cache_bytes: int
    kv_bytes_per_token: int
    kv_cache_tokens: int
    max_model_len: int
    max_num_seqs: int

    @property
    def fits(self) -> bool:
        """Whether the KV cache holds at least one sequence of ``max_model_len`` tokens."""
        return self.kv_cache_tokens >= self.max_model_len

    @property
    def weights_fit(self) -> bool:
        """Whether the weights alone fit within the budget."""
        return self.weight_bytes + self.activation_bytes + self.runtime_bytes < self.budget_bytes

    def max_concurrent_sequences(self, context_tokens: int) -> int:
        """Sequences of ``context_tokens`` tokens the KV cache holds at once, capped by ``max_num_seqs``."""
        if context_tokens <= 0:
            raise ConfigError("context_tokens must be positive", "pass prompt plus output tokens per request")
        blocks_per_seq = math.ceil(context_tokens / BLOCK_SIZE)
        return min(self.max_num_seqs, self.kv_cache_tokens // BLOCK_SIZE // blocks_per_seq)

    def summary(self) -> str:
        """One line for people: weights, KV cache and concurrency."""
        return (
            f"{self.model.name} {self.dtype} on {self.tensor_parallel}x {self.gpu.name}: "
            f"weights {self.weight_bytes / GIB:.1f} GiB/GPU, KV cache {max(self.kv_cache_bytes, 0) / GIB:.1f} GiB/GPU "
            f"= {self.kv_cache_tokens:,} tokens"
        )


def plan_memory(
    model: ModelSpec,
    gpu: GpuSpec,
    tensor_parallel: int = 1,
    *,
    dtype: str | None = None,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    max_num_batched_tokens: int | None = None,
    kv_cache_dtype: str = "auto",
) -> MemoryPlan:
    """The memory plan of ``model`` on ``tensor_parallel`` x ``gpu``; never raises for a poor fit (see ``fits``).

    Raises:
        ConfigError: impossible arguments (utilization outside (0, 1], a TP size that does not divide the heads).
    """
    if not 0 < gpu_memory_utilization <= 1:
        raise ConfigError(
            f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}", "vLLM's default is 0.9"
        )
    check_tensor_parallel(model, tensor_parallel)
    dt = normalize_dtype(dtype or model.dtype)
    spec = model if dt == model.dtype else _with_dtype(model, dt)
    mml = max_model_len or model.max_context
    if mml > model.max_context:
        raise ConfigError(
            f"max_model_len {mml} is longer than {model.name}'s maximum context of {model.max_context} tokens",
            f"use a max_model_len of at most {model.max_context}",
        )
    budget = int(gpu.memory_bytes * gpu_memory_utilization)
    weights = math.ceil(weight_bytes(spec, dt) / tensor_parallel)
    act = activation_peak_bytes(spec, tensor_parallel, max_num_batched_tokens or DEFAULT_MAX_NUM_BATCHED_TOKENS)
    runtime = int(load_calibration().runtime_overhead_gib * GIB)
    kv_bytes = budget - weights - act - runtime
    per_token = kv_bytes_per_token_per_gpu(spec, tensor_parallel, kv_cache_dtype)
    tokens = max(0, kv_bytes // per_token) // BLOCK_SIZE * BLOCK_SIZE
    return MemoryPlan(
        model=spec,
        gpu=gpu,
        tensor_parallel=tensor_parallel,
        dtype=dt,
        gpu_memory_utilization=gpu_memory_utilization,
        budget_bytes=budget,
        weight_bytes=weights,
        activation_bytes=act,
        runtime_bytes=runtime,
        kv_cache_bytes=kv_bytes,
        kv_bytes_per_token=per_token,
        kv_cache_tokens=int(tokens),
        max_model_len=mml,
        max_num_seqs=max_num_seqs,
    )


def _with_dtype(model: ModelSpec, dtype: str) -> ModelSpec:
    return dataclasses.replace(model, dtype=dtype)


def check_tensor_parallel(model: ModelSpec, tp: int) -> None:
    """Raise unless vLLM can split ``model`` over ``tp`` GPUs (heads divisible, KV heads divisible or replicable)."""
    if tp < 1:
        raise ConfigError(f"tensor parallel size must be at least 1, got {tp}", "use 1, 2, 4 or 8")
    if model.attention_heads % tp:
        raise ConfigError(
            f"{model.name} has {model.attention_heads} attention heads, which tensor parallel {tp} does not divide",
            "use a tensor parallel size that divides the head count",
        )
    if model.kv_heads % tp and tp % model.kv_heads:
        raise ConfigError(
            f"{model.name} has {model.kv_heads} KV heads, which tensor parallel {tp} neither divides nor replicates",
            "use a tensor parallel size that divides, or is a multiple of, the KV head count",
        )


def _valid_tp(model: ModelSpec, tp: int) -> bool:
    try:
        check_tensor_parallel(model, tp)
    except ConfigError:
        return False
    return True


def required_tensor_parallel(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    dtype: str | None = None,
    context_tokens: int | None = None,
    gpu_memory_utilization: float = 0.9,
    max_gpus: int = 8,
) -> MemoryPlan:
    """The smallest tensor-parallel group of ``gpu`` that holds the model and one sequence of ``context_tokens``.

    Sizes are powers of two up to ``max_gpus`` that divide the attention heads.

    Raises:
        DoesNotFit: no group of at most ``max_gpus`` GPUs is enough; the message says what would be.
    """
    dt = normalize_dtype(dtype or model.dtype)
    ctx = context_tokens or model.max_context
    for tp in TP_SIZES:
        if tp > max_gpus or not _valid_tp(model, tp):
            continue
        plan = plan_memory(model, gpu, tp, dtype=dt, gpu_memory_utilization=gpu_memory_utilization, max_model_len=ctx)
        if plan.fits:
            return plan
    raise DoesNotFit(*_does_not_fit_message(model, gpu, dt, ctx, gmu=gpu_memory_utilization, max_gpus=max_gpus))


def _does_not_fit_message(
    model: ModelSpec, gpu: GpuSpec, dtype: str, context: int, *, gmu: float, max_gpus: int
) -> tuple[str, str]:
    total = weight_bytes(model, dtype)
    what = (
        f"{model.name} in {dtype} needs {total / 1e9:.0f} GB for weights plus KV cache for {context:,} tokens; "
        f"{'an' if gpu.name[0] in 'AEHILS' else 'a'} {gpu.name} has {gpu.memory_gb:g} GB"
        + (f" and {max_gpus} of them are not enough" if max_gpus > 1 else "")
    )
    options: list[str] = []
    for tp in TP_SIZES:
        if tp <= max_gpus or not _valid_tp(model, tp):
            continue
        if plan_memory(model, gpu, tp, dtype=dtype, gpu_memory_utilization=gmu, max_model_len=context).fits:
            hosts = sorted(
                (it for it in _instance_types_with(gpu.name) if it.gpu_count >= tp),
                key=lambda it: (it.gpu_count, it.price_per_hour or math.inf),
            )
            where = f" on {hosts[0].name}" if hosts else ""
            options.append(f"tensor parallel {tp}{where}")
            break
    for smaller in ("fp8", "int4-awq"):
        if WEIGHT_BYTES[smaller] < WEIGHT_BYTES[dtype]:
            tp_ok = [
                tp
                for tp in TP_SIZES
                if tp <= max_gpus
                and _valid_tp(model, tp)
                and plan_memory(model, gpu, tp, dtype=smaller, gpu_memory_utilization=gmu, max_model_len=context).fits
            ]
            if tp_ok:
                options.append(smaller if tp_ok[0] == 1 else f"{smaller} with tensor parallel {tp_ok[0]}")
    if context > 8192:
        options.append(f"a shorter max_model_len than {context:,}")
    options.append("a GPU with more memory")
    return what, "use " + ", ".join(options[:-1]) + (", or " if len(options) > 1 else "") + options[-1]


def _instance_types_with(gpu_name: str) -> list[InstanceType]:
    return [it for it in instance_types() if it.gpu == gpu_name]


def plan_memory_on_instance(
    model: ModelSpec, instance_type: str, *, dtype: str | None = None, context_tokens: int | None = None
) -> MemoryPlan:
    """The smallest-TP memory plan for ``model`` on the GPUs of one instance type."""
    it = get_instance_type(instance_type)
    return required_tensor_parallel(
        model, it.gpu_spec, dtype=dtype, context_tokens=context_tokens, max_gpus=it.gpu_count
    )
