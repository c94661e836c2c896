"""The container runtime behind vLLM pods in the embedded cluster.

When the simulated kubelet starts a container whose image is vLLM's (``vllm/vllm-openai:*``,
an AWS ``.../vllm:*`` Deep Learning Container, any repository named ``vllm...``), it gets a
:class:`VllmProcess`: a simulated vLLM server configured from the container's own command
and args (``--model``, ``--served-model-name``, ``--tensor-parallel-size``, ``--max-model-len``,
``--gpu-memory-utilization``, ``--enable-auto-tool-choice``, ``--tool-call-parser`` ...) and
from the node it landed on (its GPU from ``karpenter.k8s.aws/instance-gpu-name``,
``eks.amazonaws.com/instance-gpu-name``, ``nvidia.com/gpu.product`` or the instance type),
with latencies from the capacity planner.

It behaves as vLLM does where a lab can see it: the server answers 503 on ``/health``
while the weights load (``weights / LOAD_BYTES_PER_SECOND + ENGINE_INIT_SECONDS`` of simulated
time), then 200; the pod log shows vLLM's start-up lines and the request log; and it crashes
(exit code 1, the reason in the log) where vLLM would: no GPU visible to the container, fewer
GPUs than ``--tensor-parallel-size``, a model that does not fit, or a ``--max-model-len`` the
KV cache cannot hold.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from labkit.embedded.clock import Clock
from labkit.embedded.simulators.vllm.config import config_from_vllm_args, expand_kube_vars, server_argv
from labkit.embedded.simulators.vllm.perf import gpu_for_instance_type, perf_from_planner, total_weight_bytes
from labkit.embedded.simulators.vllm.server import LogBuffer, VllmSimulator
from labkit.errors import LabkitError

#: Download-and-load throughput of the weights (Hugging Face Hub or S3 to GPU memory), bytes/s.
LOAD_BYTES_PER_SECOND = 400e6
#: Engine start-up besides the weights: profiling run, KV cache allocation, CUDA graph capture.
ENGINE_INIT_SECONDS = 30.0
#: A crashing server exits this long (simulated seconds) after it starts, as vLLM fails during start-up.
CRASH_AFTER_SECONDS = 5.0

GPU_LABELS = (
    "karpenter.k8s.aws/instance-gpu-name",
    "eks.amazonaws.com/instance-gpu-name",
    "nvidia.com/gpu.product",
)
GPU_MEMORY_LABELS = ("karpenter.k8s.aws/instance-gpu-memory", "eks.amazonaws.com/instance-gpu-memory")
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


def is_vllm_image(image: str) -> bool:
    """Whether ``image`` is a vLLM server image (by repository name, any registry and tag)."""
    from labkit.embedded.kube.runtime import image_repository

    last = image_repository(image).rsplit("/", 1)[-1].lower()
    return last in {"vllm", "vllm-openai"} or (last.startswith("vllm") and "router" not in last) or "-vllm" in last


def node_gpu(node: dict[str, Any] | None) -> str | None:
    """The GPU model of a node from its labels, as the planner names GPUs (``None``: no GPU)."""
    labels = ((node or {}).get("metadata") or {}).get("labels") or {}
    for key in GPU_LABELS:
        value = labels.get(key)
        if value:
            name = str(value).removeprefix("NVIDIA-").removeprefix("nvidia-")
            if name.lower().startswith("a100"):
                memory = next((labels[k] for k in GPU_MEMORY_LABELS if labels.get(k)), None)
                name = "A100-80GB" if memory and int(memory) > 50_000 else "A100-40GB"
            return name
    for key in INSTANCE_TYPE_LABELS:
        if labels.get(key):
            found = gpu_for_instance_type(str(labels[key]))
            if found is not None:
                return found[0]
    return None


def visible_gpus(container: dict[str, Any]) -> int:
    """GPUs the device plugin gives the container (``nvidia.com/gpu`` limits, else requests)."""
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        value = (resources.get(section) or {}).get("nvidia.com/gpu")
        if value is not None:
            try:
                return int(str(value))
            except ValueError:
                return 0
    return 0


class VllmProcess:
    """One simulated vLLM container (the kubelet's ``ContainerProcess``).

    Args:
        pod: the pod.
        container: the container spec.
        node: the node the pod runs on.
        clock: the cluster's simulated clock.
    """

    def __init__(self, pod: dict[str, Any], container: dict[str, Any], node: dict[str, Any] | None, clock: Clock):
        self.pod = pod
        self.container = container
        self.node = node
        self.clock = clock
        self.simulator: VllmSimulator | None = None
        self._log = LogBuffer(clock)
        self._crash_at: float | None = None
        self._lock = threading.Lock()

    def start(self) -> int | None:
        """Configure and start the server; a start-up failure becomes a crash with the reason in the log."""
        try:
            self.simulator = self._build()
            return self.simulator.start()
        except LabkitError as exc:
            self._crash(exc.what, exc.fix)
        except OSError as exc:
            self._crash(f"cannot serve: {exc}", None)
        return None

    def _build(self) -> VllmSimulator:
        env = {e["name"]: str(e.get("value", "")) for e in self.container.get("env") or [] if "name" in e}
        command = [expand_kube_vars(str(w), env) for w in self.container.get("command") or []]
        args = [expand_kube_vars(str(w), env) for w in self.container.get("args") or []]
        gpu = node_gpu(self.node)
        gpus = visible_gpus(self.container)
        config = config_from_vllm_args(server_argv(command, args), gpu=gpu or "none", log_requests=True)
        if gpu is None or gpus == 0:
            raise LabkitError(
                "RuntimeError: No CUDA GPUs are available",
                "run the pod on a GPU node and request nvidia.com/gpu in the container's resources.limits",
            )
        if config.tensor_parallel_size > gpus:
            raise LabkitError(
                f"ValueError: Tensor parallel size ({config.tensor_parallel_size}) cannot be larger than the "
                f"number of available GPUs ({gpus}).",
                "request as many nvidia.com/gpu as --tensor-parallel-size",
            )
        perf = perf_from_planner(
            config.model,
            gpu,
            tensor_parallel=config.tensor_parallel_size,
            dtype=config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=config.max_model_len,
        )
        weights = total_weight_bytes(perf) or 0
        load = ENGINE_INIT_SECONDS + weights / LOAD_BYTES_PER_SECOND
        config = dataclasses.replace(config, load_seconds=load)
        return VllmSimulator(config, clock=self.clock, perf=perf, log_sink=self._log.raw)

    def _crash(self, what: str, fix: str | None) -> None:
        self._log.write("api_server.py:1898", "vLLM API server (labkit simulator) failed to start")
        self._log.raw(f"ERROR: {what}")
        if fix:
            self._log.raw(f"(labkit simulator) to fix: {fix}")
        self._crash_at = self.clock.now() + CRASH_AFTER_SECONDS

    def ready(self) -> bool:
        """What vLLM's ``/health`` answers: 200 once the model is loaded."""
        return self.simulator is not None and self.simulator.ready()

    def exit_code(self) -> int | None:
        """1 once a failed start-up has crashed, else ``None`` (running)."""
        if self._crash_at is not None and self.clock.now() >= self._crash_at:
            return 1
        return None

    def stop(self) -> None:
        """Stop the server (SIGTERM)."""
        with self._lock:
            if self.simulator is not None:
                self.simulator.stop()
                self._log.raw("INFO:     Shutting down")
                self._log.raw("INFO:     Application shutdown complete.")
                self.simulator = None

    def log_lines(self) -> list[str]:
        """Lines printed since the last call."""
        return self._log.drain()


class VllmRuntime:
    """Runs vLLM images as simulated vLLM servers (register with the kubelet's runtime registry)."""

    def matches(self, image: str) -> bool:
        """Whether ``image`` is a vLLM server image."""
        return is_vllm_image(image)

    def create(
        self, pod: dict[str, Any], container: dict[str, Any], node: dict[str, Any] | None, clock: Clock
    ) -> VllmProcess:
        """A (not yet started) simulated vLLM container."""
        return VllmProcess(pod, container, node, clock)


RUNTIME = VllmRuntime()


def register() -> None:
    """Register :data:`RUNTIME` with the embedded kubelet (idempotent)."""
    from labkit.embedded.kube.runtime import register_runtime

    register_runtime(RUNTIME)
