"""GPU node pool builders: schema-valid for both profiles, and the rules they encode."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from labkit import schemas
from labkit.compute import device_plugin, karpenter
from labkit.compute.nodepools import GpuPool, gpu_pool_manifests, nodepool, requirements
from labkit.errors import ConfigError

SHARED = os.environ.get("LABKIT_SCHEMAS_DIR", "")
needs_schemas = pytest.mark.skipif(
    not SHARED or bool(schemas.missing(Path(SHARED))),
    reason="upstream CRD schemas not found: run `labkit schemas sync` or set LABKIT_SCHEMAS_DIR",
)
TAGS = {"labkit:owner": "alice"}
POOLS = [
    GpuPool(),
    GpuPool(
        name="big",
        families=("p5",),
        gpu_counts=(8,),
        capacity_types=("reserved", "on-demand"),
        gpu_limit=16,
        min_gpu_memory_gib=80,
        zones=("us-west-2a",),
        ami="bottlerocket",
        weight=10,
    ),
    GpuPool(
        name="spot-l4",
        families=("g6",),
        gpu_names=("L4",),
        capacity_types=("spot",),
        consolidation_policy="WhenEmptyOrUnderutilized",
        budgets=({"nodes": "20%"},),
    ),
]


@needs_schemas
@pytest.mark.parametrize("profile", ["standard", "auto"])
@pytest.mark.parametrize("pool", POOLS, ids=[p.name for p in POOLS])
def test_manifests_are_schema_valid(pool: GpuPool, profile: str) -> None:
    objs = gpu_pool_manifests(pool, profile, cluster_name="genai-platform", node_role="KarpenterNodeRole", tags=TAGS)
    assert [o["kind"] for o in objs] == ["EC2NodeClass" if profile == "standard" else "NodeClass", "NodePool"]
    assert schemas.validate_all(objs, schemas.SchemaSet(Path(SHARED))) == {}


def test_gpu_limit_taint_and_node_class_reference() -> None:
    pool = GpuPool(gpu_limit=4)
    standard = nodepool(pool, "standard")["spec"]
    assert standard["limits"] == {"nvidia.com/gpu": "4"}
    assert standard["template"]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]
    assert standard["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "gpu",
    }
    auto = nodepool(pool, "auto")["spec"]["template"]["spec"]
    assert auto["nodeClassRef"]["group"] == "eks.amazonaws.com"
    assert all(not r["key"].startswith("karpenter.k8s.aws/") for r in auto["requirements"])


def test_requirements_translate_the_pool() -> None:
    reqs = {r["key"]: r for r in requirements(POOLS[1], "standard")}
    assert reqs["karpenter.k8s.aws/instance-family"]["values"] == ["p5"]
    assert reqs["karpenter.k8s.aws/instance-gpu-count"]["values"] == ["8"]
    assert reqs["karpenter.k8s.aws/instance-gpu-memory"] == {
        "key": "karpenter.k8s.aws/instance-gpu-memory",
        "operator": "Gt",
        "values": ["81919"],
    }
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["reserved", "on-demand"]
    assert reqs["topology.kubernetes.io/zone"]["values"] == ["us-west-2a"]
    names = {r["key"]: r for r in requirements(POOLS[2], "auto")}
    assert names["eks.amazonaws.com/instance-gpu-name"]["values"] == ["l4"]


def test_default_budgets_protect_serving_nodes_in_working_hours() -> None:
    disruption = nodepool(GpuPool(), "standard")["spec"]["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    frozen = [b for b in disruption["budgets"] if b["nodes"] == "0"]
    assert frozen and set(frozen[0]["reasons"]) == {"Underutilized", "Drifted"} and frozen[0]["duration"] == "10h"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"families": ("m7i",)}, "unknown instance families ['m7i']"),
        ({"capacity_types": ("preemptible",)}, "unknown capacity types ['preemptible']"),
        ({"gpu_limit": 0}, "gpu_limit must be at least 1"),
        ({"ami": "ubuntu"}, "unknown AMI 'ubuntu'"),
        ({"consolidation_policy": "Always"}, "unknown consolidation policy"),
    ],
)
def test_invalid_pools_are_rejected_before_anything_is_built(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        GpuPool(**kwargs)


def test_bottlerocket_gets_a_data_volume() -> None:
    ec2 = gpu_pool_manifests(POOLS[1], "standard", cluster_name="c", node_role="r", tags={})[0]
    devices = [m["deviceName"] for m in ec2["spec"]["blockDeviceMappings"]]
    assert devices == ["/dev/xvda", "/dev/xvdb"]
    assert ec2["spec"]["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]


def test_device_plugin_is_a_valid_daemonset_for_gpu_nodes_only() -> None:
    ds = device_plugin.daemonset()
    assert schemas.validate_builtin(ds) == []
    spec = ds["spec"]["template"]["spec"]
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert ":latest" not in spec["containers"][0]["image"]


def test_karpenter_values_and_command() -> None:
    values = karpenter.values("genai-platform", "genai-platform-karpenter")
    assert values["settings"]["clusterName"] == "genai-platform"
    assert values["settings"]["interruptionQueue"] == "genai-platform-karpenter"
    assert values["serviceAccount"]["name"] == "karpenter"
    cmd = karpenter.helm_command("/tmp/v.yaml")
    assert cmd[cmd.index("--version") + 1] == karpenter.VERSION
