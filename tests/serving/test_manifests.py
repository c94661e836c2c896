"""Model server builders: valid objects, hardening, and the flags each engine needs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from labkit import schemas
from labkit.errors import ConfigError
from labkit.serving.manifests import ModelServer, deployment, hpa, manifests, scaled_object, server_args

SHARED = os.environ.get("LABKIT_SCHEMAS_DIR", "")
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def container(server: ModelServer) -> dict:
    return deployment(server)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    "server",
    [
        ModelServer("llama-8b", LLAMA),
        ModelServer("llama-70b", "meta-llama/Llama-3.1-70B-Instruct", gpus=4, tool_calling=True, zone="us-west-2a"),
        ModelServer(
            "qwen-tgi", "Qwen/Qwen2.5-7B-Instruct", engine="tgi", cache="pvc", storage_class="gp3", hf_token_secret=None
        ),
    ],
    ids=["vllm", "vllm-tp4-tools", "tgi-pvc"],
)
def test_every_object_is_valid_kubernetes(server: ModelServer) -> None:
    objs = [*manifests(server), hpa(server)]
    assert schemas.validate_all(objs, None) == {}


@pytest.mark.skipif(
    not SHARED, reason="upstream CRD schemas not found: set LABKIT_SCHEMAS_DIR or run `labkit schemas sync`"
)
def test_scaled_object_is_valid_keda() -> None:
    obj = scaled_object(
        ModelServer("llama-8b", LLAMA),
        prometheus_url="http://prometheus.monitoring:9090",
        min_replicas=0,
        max_replicas=3,
    )
    assert schemas.SchemaSet(Path(SHARED)).validate(obj) == []
    trigger = obj["spec"]["triggers"][0]["metadata"]
    assert trigger["query"] == f'sum(vllm:num_requests_waiting{{model_name="{LLAMA}"}})'


def test_vllm_flags_follow_the_spec() -> None:
    args = server_args(
        ModelServer("m", LLAMA, gpus=2, max_model_len=4096, served_model_name="llama", tool_calling=True)
    )
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--model"] == LLAMA and flags["--served-model-name"] == "llama"
    assert flags["--tensor-parallel-size"] == "2" and flags["--max-model-len"] == "4096"
    assert "--enable-auto-tool-choice" in args
    assert args[args.index("--tool-call-parser") + 1] == "llama3_json"
    qwen = server_args(ModelServer("q", "Qwen/Qwen2.5-7B-Instruct", tool_calling=True))
    assert qwen[qwen.index("--tool-call-parser") + 1] == "hermes"


def test_gpu_request_toleration_probes_and_shm() -> None:
    server = ModelServer("llama-70b", "meta-llama/Llama-3.1-70B-Instruct", gpus=4)
    pod = deployment(server)["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    assert not re.search(r":latest$", c["image"])


def test_hardening_where_the_server_allows_it() -> None:
    vllm_pod = deployment(ModelServer("m", LLAMA))["spec"]["template"]["spec"]
    assert vllm_pod["securityContext"]["runAsNonRoot"] is True
    assert vllm_pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    tgi_pod = deployment(ModelServer("t", LLAMA, engine="tgi"))["spec"]["template"]["spec"]
    assert "runAsNonRoot" not in tgi_pod["securityContext"]
    assert tgi_pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_hf_token_comes_from_a_secret_never_a_literal() -> None:
    env = {e["name"]: e for e in container(ModelServer("m", LLAMA))["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert "HF_TOKEN" not in {e["name"] for e in container(ModelServer("m", LLAMA, hf_token_secret=None))["env"]}


def test_placement_on_the_pool_and_zone() -> None:
    pod = deployment(ModelServer("m", LLAMA, zone="us-west-2b"))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"labkit.dev/pool": "gpu", "topology.kubernetes.io/zone": "us-west-2b"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Llama_8B"}, "not a valid Kubernetes name"),
        ({"engine": "triton"}, "unknown engine 'triton'"),
        ({"gpus": 3}, "gpus must be 1, 2, 4 or 8"),
        ({"cache": "pvc", "replicas": 2}, "ReadWriteOnce PVC cache can serve one replica"),
        ({"image": "vllm/vllm-openai:latest"}, "is not pinned"),
        ({"gpu_memory_utilization": 1.0}, "out of range"),
    ],
)
def test_bad_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelServer(**{"name": "m", "model": LLAMA, **kwargs})


def test_unknown_model_with_tool_calling_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="no vLLM tool-call parser is known"):
        server_args(ModelServer("m", "acme/unheard-of-7b", tool_calling=True))
