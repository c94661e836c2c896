"""Capacity planner: which GPU, how many, and at what cost, for a model and a latency SLO.

Pure functions and data (no I/O besides reading the package's own catalogs). The embedded vLLM
simulator uses :class:`ServingPerf` for its step times, so the labs' predictions and the twin's
behaviour come from one model.

Typical use::

    from labkit import planner
    perf = planner.ServingPerf.from_names("meta-llama/Llama-3.1-8B-Instruct", "L4", max_model_len=8192)
    perf.predict(concurrency=16, prompt_tokens=1024, output_tokens=256).tpot_ms
    planner.cheapest_instance("llama-3.1-8b", planner.SLO(ttft_ms=500, tpot_ms=50),
                              prompt_tokens=1024, output_tokens=256, concurrency=32)
"""

from __future__ import annotations

from labkit.planner.calibration import Calibration, Efficiency, Interconnect, load_calibration
from labkit.planner.catalog import (
    DTYPES,
    CpuInstanceType,
    GpuSpec,
    InstanceType,
    ModelSpec,
    cpu_instance_types,
    ec2_instance_types,
    get_ec2_instance_type,
    get_gpu,
    get_instance_type,
    get_model,
    gpu_for_instance_type,
    gpus,
    instance_types,
    models,
    normalize_dtype,
    price_table,
    register_model,
    spot_ratio,
    spot_ratios,
    unregister_model,
)
from labkit.planner.memory import (
    BLOCK_SIZE,
    DEFAULT_MAX_NUM_SEQS,
    DoesNotFit,
    MemoryPlan,
    kv_bytes_per_token,
    plan_memory,
    required_tensor_parallel,
    weight_bytes,
)
from labkit.planner.perf import Prediction, ServingPerf, StepTime
from labkit.planner.plan import (
    SLO,
    Candidate,
    CapacityPlan,
    Rejection,
    cheapest_instance,
    cost_per_million_output_tokens,
    cost_per_thousand_requests,
)

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_MAX_NUM_SEQS",
    "DTYPES",
    "SLO",
    "Calibration",
    "Candidate",
    "CapacityPlan",
    "CpuInstanceType",
    "DoesNotFit",
    "Efficiency",
    "GpuSpec",
    "InstanceType",
    "Interconnect",
    "MemoryPlan",
    "ModelSpec",
    "Prediction",
    "Rejection",
    "ServingPerf",
    "StepTime",
    "cheapest_instance",
    "cost_per_million_output_tokens",
    "cost_per_thousand_requests",
    "cpu_instance_types",
    "ec2_instance_types",
    "get_ec2_instance_type",
    "get_gpu",
    "get_instance_type",
    "get_model",
    "gpu_for_instance_type",
    "gpus",
    "instance_types",
    "kv_bytes_per_token",
    "load_calibration",
    "models",
    "normalize_dtype",
    "plan_memory",
    "price_table",
    "register_model",
    "required_tensor_parallel",
    "spot_ratio",
    "spot_ratios",
    "unregister_model",
    "weight_bytes",
]
