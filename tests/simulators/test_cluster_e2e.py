"""A vLLM pod in the embedded cluster becomes Ready after its model loads and answers on its address."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

cluster_module = pytest.importorskip("labkit.embedded.kube.cluster")

from labkit.embedded.kube import runtime as kube_runtime  # noqa: E402
from labkit.embedded.kube.nodes import make_node  # noqa: E402
from labkit.embedded.simulators import register_all  # noqa: E402
from labkit.embedded.simulators.vllm.runtime import RUNTIME  # noqa: E402

ARGS = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", "--served-model-name", "llama"]
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "llama", "namespace": "default"},
    "spec": {
        "containers": [
            {
                "name": "vllm",
                "image": "vllm/vllm-openai:v0.10.2",
                "args": ARGS,
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 5},
            }
        ],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    register_all()
    c = cluster_module.EmbeddedCluster(
        state_dir=tmp_path, time_scale=600, profile="eks-standard", tls=False, system_pods=False
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()
        kube_runtime.unregister_runtime(RUNTIME)


def test_vllm_pod_loads_serves_and_logs(cluster: Any) -> None:
    cluster.add_node(make_node("gpu-1", "g6.xlarge", "us-west-2a", now=cluster.clock.now()))
    cluster.store.create("pods", POD, namespace="default")
    deadline = time.monotonic() + 20
    while True:
        pod = cluster.store.get("pods", "default", "llama")
        conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        if conditions.get("Ready") == "True":
            break
        assert time.monotonic() < deadline, f"the vLLM pod did not become Ready: {pod.get('status')}"
        time.sleep(0.05)
    address = pod["metadata"]["annotations"]["embedded.labkit.dev/address-vllm"]
    request = urllib.request.Request(
        f"http://{address}/v1/chat/completions",
        data=json.dumps({"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": "e2e-1"},
    )
    with urllib.request.urlopen(request) as resp:
        assert json.loads(resp.read())["usage"]["completion_tokens"] == 4
    deadline = time.monotonic() + 5
    while "Finished request chatcmpl-e2e-1" not in (log := cluster.store.read_log("default", "llama")):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    assert "gpu='L4'" in log  # from the node's instance type, through the planner's catalog
    assert "Model loading took 70.2 seconds" in log
    assert "Application startup complete." in log
