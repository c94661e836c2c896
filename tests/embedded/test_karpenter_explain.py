"""explain(): the reason a person needs when no NodePool can serve a pod, in Karpenter's own words."""

from __future__ import annotations

from typing import Any

from labkit.compute import nodepools as builders
from labkit.embedded.kube.karpenter import catalog, explain
from labkit.embedded.kube.karpenter.nodepool import builtin_nodepools, default_nodeclass

OFFERINGS = catalog.offerings("us-west-2")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_pod(gpus: int = 1, *, tolerate: bool = True, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "vllm",
                "image": "vllm/vllm-openai:v0.10.1",
                "resources": {
                    "requests": {"cpu": "1", "memory": "8Gi", "nvidia.com/gpu": str(gpus)},
                    "limits": {"nvidia.com/gpu": str(gpus)},
                },
            }
        ]
    }
    if tolerate:
        spec["tolerations"] = [GPU_TOLERATION]
    if selector:
        spec["nodeSelector"] = selector
    return {
        "metadata": {"name": "llm-0", "namespace": "serving", "uid": "u"},
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def standard_gpu(**kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    pool = builders.GpuPool(**kw)
    return builders.nodepool(pool, "standard"), builders.ec2_nodeclass(pool, cluster_name="c", node_role="r", tags={})


def test_a_pod_a_pool_can_serve_has_no_reason() -> None:
    np, nc = standard_gpu(families=("g6",))
    assert explain(gpu_pod(), [np], OFFERINGS, [], nodeclasses=[nc]) == []


def test_not_enough_gpus_on_any_allowed_type() -> None:
    np, nc = standard_gpu(families=("g6",), gpu_counts=(1,), gpu_limit=16)
    (reason,) = explain(gpu_pod(8), [np], OFFERINGS, [], nodeclasses=[nc])
    assert reason == (
        'incompatible with nodepool "gpu", daemonset overhead={}, no instance type satisfied resources '
        '{"cpu":"1","memory":"8Gi","nvidia.com/gpu":"8","pods":"1"} and requirements '
        "karpenter.k8s.aws/instance-family In [g6], karpenter.k8s.aws/instance-gpu-count In [1], "
        "karpenter.k8s.aws/instance-gpu-manufacturer In [nvidia], karpenter.sh/capacity-type In [on-demand], "
        "karpenter.sh/nodepool In [gpu], kubernetes.io/arch In [amd64], labkit.dev/pool In [gpu] "
        "(no instance type has enough resources)"
    )


def test_limit_reached() -> None:
    np, nc = standard_gpu(families=("g6",), gpu_limit=1)
    running = {
        "metadata": {"name": "gpu-x7k2p", "labels": {"karpenter.sh/nodepool": "gpu"}},
        "status": {"capacity": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1", "pods": "58"}},
    }
    assert explain(gpu_pod(), [np], OFFERINGS, [running], nodeclasses=[nc]) == [
        'all available instance types exceed limits for nodepool: "gpu"'
    ]
    # A NodeClaim of another pool does not count.
    other = {**running, "metadata": {"name": "x", "labels": {"karpenter.sh/nodepool": "other"}}}
    assert explain(gpu_pod(), [np], OFFERINGS, [other], nodeclasses=[nc]) == []


def test_untolerated_taint() -> None:
    np, nc = standard_gpu(families=("g6",))
    assert explain(gpu_pod(tolerate=False), [np], OFFERINGS, [], nodeclasses=[nc]) == [
        'incompatible with nodepool "gpu", daemonset overhead={}, did not tolerate nvidia.com/gpu=true:NoSchedule'
    ]


def test_requirement_conflicts() -> None:
    np, nc = standard_gpu(families=("g6",))
    wrong_family = gpu_pod(selector={"karpenter.k8s.aws/instance-family": "p5"})
    (reason,) = explain(wrong_family, [np], OFFERINGS, [], nodeclasses=[nc])
    assert reason.endswith(
        "incompatible requirements, key karpenter.k8s.aws/instance-family, "
        "karpenter.k8s.aws/instance-family In [p5] not in karpenter.k8s.aws/instance-family In [g6]"
    )
    unknown = gpu_pod(selector={"team": "search"})
    (reason,) = explain(unknown, [np], OFFERINGS, [], nodeclasses=[nc])
    assert reason.endswith('incompatible requirements, label "team" does not have known values')
    zone = gpu_pod(selector={"topology.kubernetes.io/zone": "eu-west-1a"})
    (reason,) = explain(zone, [np], OFFERINGS, [], nodeclasses=[nc])
    assert "topology.kubernetes.io/zone In [eu-west-1a]" in reason
    assert reason.endswith("(no instance type met the scheduling requirements or had a required offering)")


def test_one_reason_per_pool_by_weight() -> None:
    small, _ = standard_gpu(name="small", families=("g6",), gpu_counts=(1,), weight=10)
    spot, _ = standard_gpu(name="spot", families=("g5",), capacity_types=("spot",), gpu_limit=1)
    used = {
        "metadata": {"name": "spot-abcde", "labels": {"karpenter.sh/nodepool": "spot"}},
        "status": {"capacity": {"nvidia.com/gpu": "1"}},
    }
    reasons = explain(gpu_pod(4), [spot, small], OFFERINGS, [used])
    assert len(reasons) == 2
    assert reasons[0].startswith('incompatible with nodepool "small"')  # weight 10 is tried first
    assert reasons[1] == 'all available instance types exceed limits for nodepool: "spot"'


def test_missing_node_class_and_no_pools() -> None:
    np, _ = standard_gpu(families=("g6",))
    assert explain(gpu_pod(), [np], OFFERINGS, [], nodeclasses=[]) == [
        'skipped nodepool "gpu", not ready: NodeClassNotFound, EC2NodeClass "gpu" not found on cluster'
    ]
    assert explain(gpu_pod(), [], OFFERINGS, []) == ["no nodepools found"]


def test_auto_mode_built_ins_offer_no_gpus() -> None:
    pools = builtin_nodepools()
    reasons = explain(gpu_pod(tolerate=False), pools, OFFERINGS, [], nodeclasses=[default_nodeclass()])
    assert [r.split(",")[0] for r in reasons] == [
        'incompatible with nodepool "general-purpose"',
        'incompatible with nodepool "system"',
    ]
    assert reasons[0].endswith("(no instance type has enough resources)")
    assert "eks.amazonaws.com/instance-category In [c m r]" in reasons[0]
    assert "eks.amazonaws.com/instance-generation Exists >4" in reasons[0]
    assert reasons[1].endswith("did not tolerate CriticalAddonsOnly=:NoSchedule")


def test_daemonset_overhead_is_shown() -> None:
    np, nc = standard_gpu(families=("g6",), gpu_counts=(1,))
    plugin = {
        "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
        "spec": {
            "template": {
                "spec": {
                    "tolerations": [GPU_TOLERATION],
                    "containers": [
                        {"name": "p", "image": "x", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}
                    ],
                }
            }
        },
    }
    (reason,) = explain(gpu_pod(2), [np], OFFERINGS, [], nodeclasses=[nc], daemonsets=[plugin])
    assert 'daemonset overhead={"cpu":"50m","memory":"64Mi","pods":"1"}' in reason
    assert 'resources {"cpu":"1050m","memory":"8256Mi","nvidia.com/gpu":"2","pods":"2"}' in reason
