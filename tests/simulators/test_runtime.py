"""The container runtime the embedded kubelet uses for vLLM pods."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from labkit.embedded.clock import Clock
from labkit.embedded.simulators.vllm.runtime import (
    RUNTIME,
    VllmProcess,
    is_vllm_image,
    node_gpu,
    register,
)

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def pod_and_container(args: list[str], gpus: int | None = 1, env: list[dict] | None = None) -> tuple[dict, dict]:
    container: dict[str, Any] = {"name": "vllm", "image": "vllm/vllm-openai:v0.10.2", "args": args, "env": env or []}
    if gpus is not None:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    pod = {"metadata": {"name": "llama-0", "namespace": "serving"}, "spec": {"containers": [container]}}
    return pod, container


def node(**labels: str) -> dict:
    return {"metadata": {"name": "ip-10-0-1-1", "labels": labels}}


@pytest.fixture
def processes() -> Iterator[list[VllmProcess]]:
    started: list[VllmProcess] = []
    yield started
    for p in started:
        p.stop()


def wait(predicate: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("vllm/vllm-openai:v0.10.2", True),
        ("docker.io/vllm/vllm-openai@sha256:abc", True),
        ("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.10.0", True),
        ("763104351884.dkr.ecr.us-west-2.amazonaws.com/vllm:0.9-gpu-py312-ec2", True),
        ("nginx:1.27", False),
        ("ghcr.io/huggingface/text-generation-inference:3.0.1", False),
        ("ghcr.io/vllm-project/vllm-router:0.1", False),
    ],
)
def test_matches_vllm_images(image: str, expected: bool) -> None:
    assert is_vllm_image(image) is expected
    assert RUNTIME.matches(image) is expected


def test_gpu_from_node_labels() -> None:
    assert node_gpu(node(**{"karpenter.k8s.aws/instance-gpu-name": "l4"})) == "l4"
    assert node_gpu(node(**{"eks.amazonaws.com/instance-gpu-name": "h100"})) == "h100"
    a100 = {"karpenter.k8s.aws/instance-gpu-name": "a100", "karpenter.k8s.aws/instance-gpu-memory": "81920"}
    assert node_gpu(node(**a100)) == "A100-80GB"
    assert node_gpu(node(**{"nvidia.com/gpu.product": "NVIDIA-A10G"})) == "A10G"
    assert node_gpu(node(**{"node.kubernetes.io/instance-type": "g6e.xlarge"})) == "L40S"
    assert node_gpu(node(**{"node.kubernetes.io/instance-type": "m5.large"})) is None
    assert node_gpu(None) is None


def test_a_vllm_pod_loads_then_serves_and_logs(processes: list[VllmProcess]) -> None:
    clock = Clock(150.0)  # about 70 simulated seconds of loading take 0.5 s
    pod, container = pod_and_container(
        ["--model", "$(MODEL_ID)", "--served-model-name", "llama", "--max-model-len", "8192"],
        env=[{"name": "MODEL_ID", "value": MODEL}],
    )
    process = RUNTIME.create(pod, container, node(**{"karpenter.k8s.aws/instance-gpu-name": "l4"}), clock)
    processes.append(process)
    port = process.start()
    assert port
    assert not process.ready()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health")
    assert info.value.code == 503
    wait(process.ready)
    assert process.exit_code() is None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps({"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": "lab-7"},
    )
    with urllib.request.urlopen(request) as resp:
        assert json.loads(resp.read())["usage"]["completion_tokens"] == 3
    logs = "\n".join(process.log_lines())
    assert "Starting to load model meta-llama/Llama-3.1-8B-Instruct" in logs
    assert "GPU KV cache size" in logs
    assert "Application startup complete." in logs
    assert "Received request chatcmpl-lab-7" in logs
    assert '"POST /v1/chat/completions HTTP/1.1" 200 OK' in logs
    assert process.log_lines() == []  # drained


@pytest.mark.parametrize(
    ("args", "gpus", "labels", "message"),
    [
        (["--model", MODEL, "--max-model-len", "8192"], None, {"karpenter.k8s.aws/instance-gpu-name": "l4"}, "No CUDA"),
        (["--model", MODEL, "--max-model-len", "8192"], 1, {}, "No CUDA GPUs"),
        (["--model", MODEL, "-tp", "2"], 1, {"karpenter.k8s.aws/instance-gpu-name": "l4"}, "Tensor parallel size"),
        (["--model", "meta-llama/Llama-3.1-70B-Instruct"], 1, {"karpenter.k8s.aws/instance-gpu-name": "l4"}, "fit"),
        (["--model", MODEL], 1, {"karpenter.k8s.aws/instance-gpu-name": "l4"}, "max seq len"),
    ],
)
def test_start_up_failures_crash_like_vllm(
    processes: list[VllmProcess], args: list[str], gpus: int | None, labels: dict, message: str
) -> None:
    clock = Clock(1000.0)
    pod, container = pod_and_container(args, gpus=gpus)
    process = RUNTIME.create(pod, container, node(**labels), clock)
    processes.append(process)
    assert process.start() is None
    assert not process.ready()
    assert message in "\n".join(process.log_lines())
    wait(lambda: process.exit_code() == 1)


def test_registers_with_the_kubelet() -> None:
    from labkit.embedded.kube import runtime as kube_runtime

    register()
    try:
        register()  # idempotent
        assert kube_runtime.registered_runtimes().count(RUNTIME) == 1
        assert kube_runtime.runtime_for("vllm/vllm-openai:v0.10.2") is RUNTIME
        assert kube_runtime.runtime_for("nginx") is kube_runtime.DEFAULT_RUNTIME
    finally:
        kube_runtime.unregister_runtime(RUNTIME)
