"""Efficiency factors of the roofline model, read from ``data/calibration.yaml``.

A roofline gives the time a step would take at the GPU's peak; real kernels reach a fraction of it.
Each factor here carries the published measurement it was fitted to (``source``); CALIBRATION.md
tabulates the points, the published values, the model's values and the error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak a vLLM engine step reaches on one GPU model.

    Attributes:
        prefill_compute: fraction of peak tensor FLOP/s in prefill (large matrix multiplies).
        decode_compute: fraction of peak tensor FLOP/s for decode tokens (skinny matrix multiplies).
        memory: fraction of peak memory bandwidth while streaming weights and KV cache.
        step_overhead_s: fixed time per engine step (scheduling, sampling, kernel launches).
        source: the published measurements these were fitted to.
    """

    prefill_compute: float
    decode_compute: float
    memory: float
    step_overhead_s: float
    source: str = ""


@dataclass(frozen=True)
class Interconnect:
    """All-reduce cost between GPUs of a tensor-parallel group.

    Attributes:
        allreduce_latency_s: fixed time of one all-reduce (small messages).
        bus_bandwidth: achieved all-reduce bus bandwidth in bytes/s (nccl-tests ``busbw``).
        source: where the numbers come from.
    """

    allreduce_latency_s: float
    bus_bandwidth: float
    source: str = ""


@dataclass(frozen=True)
class Activation:
    """Activation memory per token of vLLM's profiling pass, in 16-bit values.

    Attributes:
        hidden_copies: copies of the residual stream (``hidden_size`` wide) alive at the peak.
        intermediate_copies: copies of the MLP intermediate (``intermediate_size / tp`` wide) alive at the peak.
        source: the logs these were fitted to.
    """

    hidden_copies: float
    intermediate_copies: float
    source: str = ""


@dataclass(frozen=True)
class Point:
    """A published measurement the model is checked against.

    Attributes:
        id: short unique name.
        kind: ``tpot_ms``, ``ttft_ms``, ``kv_tokens``, ``batch_latency_ms`` (offline fixed batch, as
            ``vllm bench latency``) or ``throughput_ratio`` (output throughput at ``concurrency`` over that at
            ``base_concurrency``).
        model: model name.
        gpu: GPU name.
        tensor_parallel: GPUs per server.
        published: the published value.
        tolerance: allowed relative error of the model against ``published``.
        source: where the value is published.
        setup: everything else the measurement fixed (dtype, lengths, concurrency, vLLM flags...).
        note: caveats (uncertain shapes, a different engine...).
    """

    id: str
    kind: str
    model: str
    gpu: str
    tensor_parallel: int
    published: float
    tolerance: float
    source: str
    setup: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Calibration:
    """Every calibrated constant of the planner.

    Attributes:
        default: efficiencies for GPUs without their own entry.
        per_gpu: efficiencies by canonical GPU name.
        interconnects: all-reduce cost by interconnect kind (``nvlink``, ``pcie``).
        runtime_overhead_gib: memory vLLM's runtime takes besides weights, activations and KV cache, per GPU.
        activation: activation memory of the profiling pass.
        points: the published measurements the model is checked against.
    """

    default: Efficiency
    per_gpu: dict[str, Efficiency] = field(default_factory=dict)
    interconnects: dict[str, Interconnect] = field(default_factory=dict)
    runtime_overhead_gib: float = 1.0
    activation: Activation = field(default_factory=lambda: Activation(4.0, 6.0))
    points: tuple[Point, ...] = ()

    def efficiency(self, gpu_name: str) -> Efficiency:
        """The efficiencies for ``gpu_name`` (its own entry, else the default)."""
        return self.per_gpu.get(gpu_name, self.default)

    def interconnect(self, kind: str) -> Interconnect:
        """The all-reduce cost of ``kind`` (``nvlink`` or ``pcie``)."""
        return self.interconnects[kind]


def _efficiency(row: dict[str, Any], base: Efficiency | None = None) -> Efficiency:
    """An :class:`Efficiency` from a YAML row; keys the row lacks come from ``base``."""
    inherited: dict[str, Any] = (
        {}
        if base is None
        else {
            "prefill_compute": base.prefill_compute,
            "decode_compute": base.decode_compute,
            "memory": base.memory,
            "step_overhead_ms": base.step_overhead_s * 1000,
        }
    )
    merged = {**inherited, **row}
    return Efficiency(
        prefill_compute=float(merged["prefill_compute"]),
        decode_compute=float(merged["decode_compute"]),
        memory=float(merged["memory"]),
        step_overhead_s=float(merged["step_overhead_ms"]) / 1000,
        source=str(row.get("source", "")),
    )


@functools.cache
def load_calibration() -> Calibration:
    """The packaged calibration (loaded once)."""
    text = resources.files("labkit.planner").joinpath("data", "calibration.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    default = _efficiency(doc["default"])
    per_gpu = {name: _efficiency(row, default) for name, row in (doc.get("gpus") or {}).items()}
    links = {
        kind: Interconnect(
            allreduce_latency_s=float(row["allreduce_latency_us"]) / 1e6,
            bus_bandwidth=float(row["bus_bandwidth_gbps"]) * 1e9,
            source=str(row.get("source", "")),
        )
        for kind, row in doc["interconnects"].items()
    }
    act = doc["activation"]
    points = tuple(
        Point(
            id=str(row["id"]),
            kind=str(row["kind"]),
            model=str(row["model"]),
            gpu=str(row["gpu"]),
            tensor_parallel=int(row.get("tensor_parallel", 1)),
            published=float(row["published"]),
            tolerance=float(row["tolerance"]),
            source=str(row["source"]),
            setup=dict(row.get("setup") or {}),
            note=str(row.get("note", "")),
        )
        for row in doc.get("points") or ()
    )
    return Calibration(
        default=default,
        per_gpu=per_gpu,
        interconnects=links,
        runtime_overhead_gib=float(doc["runtime_overhead_gib"]),
        activation=Activation(
            hidden_copies=float(act["hidden_copies"]),
            intermediate_copies=float(act["intermediate_copies"]),
            source=str(act.get("source", "")),
        ),
        points=points,
    )
