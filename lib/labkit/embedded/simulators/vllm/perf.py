"""The performance model the engine runs on, and where it comes from.

The engine only needs the small :class:`PerfModel` protocol; the capacity
planner's ``ServingPerf`` satisfies it (and its optional ``step()``, one roofline
for a mixed prefill-and-decode step, is used when present), and tests pass a
hand-written model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from labkit.errors import ConfigError


@runtime_checkable
class PerfModel(Protocol):
    """Step times and KV capacity of one model on one GPU configuration.

    Attributes:
        kv_cache_tokens: tokens the KV cache holds (over all sequences).
        block_size: tokens per KV cache block (vLLM's paged attention).
        max_num_seqs: most sequences running at once.
    """

    kv_cache_tokens: int
    block_size: int
    max_num_seqs: int

    def prefill_seconds(self, prompt_tokens: int) -> float:
        """Seconds of one forward pass over ``prompt_tokens`` new prompt tokens."""
        ...

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float:
        """Seconds of one decode step of ``batch_size`` sequences whose context lengths sum to ``context_tokens``."""
        ...


def perf_from_planner(
    model: str,
    gpu: str,
    *,
    tensor_parallel: int = 1,
    dtype: str | None = None,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
) -> PerfModel:
    """The capacity planner's model for ``model`` on ``gpu``.

    Raises:
        ConfigError: the planner is missing, or it does not know the model or GPU, or the
            model does not fit (the planner's own error, which says what to change).
    """
    try:
        from labkit.planner import ServingPerf
    except ImportError as exc:
        raise ConfigError(
            "the capacity planner (labkit.planner) is not available, so the simulator has no latency model",
            "use fast mode (--fast) or install the kit completely",
        ) from exc
    return ServingPerf.from_names(
        model,
        gpu,
        tensor_parallel=tensor_parallel,
        dtype=dtype,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
    )


def gpu_for_instance_type(instance_type: str) -> tuple[str, int] | None:
    """``(GPU name, GPU count)`` of an EC2 instance type per the planner's catalog, or ``None``."""
    try:
        from labkit.planner import gpu_for_instance_type as lookup
    except ImportError:
        return None
    try:
        return lookup(instance_type)
    except (KeyError, ValueError, LookupError, ConfigError):
        return None


def total_weight_bytes(perf: PerfModel) -> int | None:
    """Bytes of the weights over all GPUs, when the model says (the planner's ``memory`` plan does)."""
    memory = getattr(perf, "memory", None)
    per_gpu = getattr(memory, "weight_bytes", None)
    if per_gpu is None:
        return None
    return int(per_gpu) * int(getattr(memory, "tensor_parallel", 1) or 1)
