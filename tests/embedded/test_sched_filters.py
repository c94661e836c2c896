"""The scheduler's pure functions: requests, filters, kube-scheduler's messages, scoring, preemption."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import pytest

from labkit.embedded.kube.nodes import make_node
from labkit.embedded.kube.scheduler import (
    Snapshot,
    explain,
    explain_pod,
    parse_quantity,
    pod_requests,
    select_node,
    toleration_tolerates,
)

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(
    name: str = "p",
    *,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    node: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx", "resources": resources}], **spec}
    if node:
        body["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {}},
        "spec": body,
        "status": {"phase": "Running" if node else "Pending"},
    }


def system_nodes() -> list[dict[str, Any]]:
    return [
        make_node("sys-a", "m6i.large", "us-west-2a", {"eks.amazonaws.com/nodegroup": "system"}, now=0),
        make_node("sys-b", "m6i.large", "us-west-2b", {"eks.amazonaws.com/nodegroup": "system"}, now=0),
    ]


def gpu_cluster() -> list[dict[str, Any]]:
    gpu = make_node("gpu-a", "g5.xlarge", "us-west-2a", {"karpenter.sh/nodepool": "gpu"}, [GPU_TAINT], now=0)
    return [*system_nodes(), gpu]


# --------------------------------------------------------------------------- quantities and requests


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Fraction(1, 10)),
        ("2", Fraction(2)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("512Mi", Fraction(2**29)),
        ("1e3", Fraction(1000)),
        ("1k", Fraction(1000)),
        ("250M", Fraction(250_000_000)),
        (3, Fraction(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_parse_quantity_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        parse_quantity("lots")


def test_pod_requests_counts_init_containers_sidecars_and_limits_only_gpus() -> None:
    p = pod(requests={"cpu": "500m", "memory": "1Gi"}, limits={"nvidia.com/gpu": "1"})
    p["spec"]["initContainers"] = [
        {"name": "big-init", "resources": {"requests": {"cpu": "2"}}},
        {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
    ]
    req = pod_requests(p)
    assert req["cpu"] == 2000  # the init container alone needs more than the app plus sidecar (600m)
    assert req["memory"] == 2**30 + 64 * 2**20
    assert req["nvidia.com/gpu"] == 1  # a limit without a request is the request


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, {"key": "k", "value": "v"}, True),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "other"}, False),
        ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "any", "effect": "NoExecute"}, True),
        ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoSchedule"}, False),
        ({"value": "v"}, {"key": "k", "value": "v"}, False),
    ],
)
def test_toleration_matching(toleration: dict[str, str], taint: dict[str, str], expected: bool) -> None:
    taint = {"effect": "NoSchedule", **taint}
    assert toleration_tolerates(toleration, taint) is expected


# --------------------------------------------------------------------------- GPU scheduling scenarios


def test_gpu_pod_without_toleration_stays_pending_with_kube_schedulers_message() -> None:
    gpu_pod = pod("vllm", limits={"nvidia.com/gpu": "1"})
    ex = explain_pod(gpu_pod, gpu_cluster(), [])
    assert not ex.fits
    assert ex.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: true}, "
        "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling."
    )
    assert ex.unresolvable  # no eviction helps: a new node is needed


def test_gpu_pod_with_toleration_lands_on_the_gpu_node() -> None:
    gpu_pod = pod("vllm", limits={"nvidia.com/gpu": "1"}, tolerations=[GPU_TOLERATION])
    node, ex = select_node(gpu_pod, Snapshot.build(gpu_cluster(), []), random.Random(1))
    assert node == "gpu-a"
    assert ex.message == ""


def test_second_gpu_pod_finds_the_gpu_taken() -> None:
    first = pod("first", limits={"nvidia.com/gpu": "1"}, tolerations=[GPU_TOLERATION], node="gpu-a")
    second = pod("second", limits={"nvidia.com/gpu": "1"}, tolerations=[GPU_TOLERATION])
    ex = explain_pod(second, gpu_cluster(), [first])
    assert ex.message == (
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    )


def test_a_pod_that_fits_nowhere_explains_why_per_node_group() -> None:
    nodes = gpu_cluster()
    huge = pod("huge", requests={"cpu": "8", "memory": "64Gi"}, tolerations=[GPU_TOLERATION])
    ex = explain_pod(huge, nodes, [])
    assert ex.message.startswith("0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory.")
    groups = ex.reasons_by_group(nodes)
    assert groups == {
        "eks.amazonaws.com/nodegroup=system": ["Insufficient cpu", "Insufficient memory"],
        "karpenter.sh/nodepool=gpu": ["Insufficient cpu", "Insufficient memory"],
    }
    assert "karpenter.sh/nodepool=gpu: Insufficient cpu; Insufficient memory" in ex.summary(nodes)


def test_no_nodes_at_all() -> None:
    ex = explain_pod(pod(), [], [])
    assert ex.message == "no nodes available to schedule pods"
    assert ex.unresolvable


# --------------------------------------------------------------------------- filters, table-driven


def _kind_nodes() -> list[dict[str, Any]]:
    cp = make_node(
        "kind-control-plane",
        "kind",
        "kind",
        {"node-role.kubernetes.io/control-plane": ""},
        [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        now=0,
    )
    return [cp, make_node("kind-worker", "kind", "kind", {"disk": "ssd", "cores": "8"}, now=0)]


AFFINITY_CASES = [
    ({"nodeSelector": {"disk": "ssd"}}, True),
    ({"nodeSelector": {"disk": "hdd"}}, False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]}]}}}}, True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}}, False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]}}}}, True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]}}}}, True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]}}}}, False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["kind-worker"]}]}]}}}}, True),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "fits"), AFFINITY_CASES)
def test_node_selector_and_required_affinity(spec: dict[str, Any], fits: bool) -> None:
    ex = explain_pod(pod(**spec), _kind_nodes(), [])
    assert ex.fits is fits
    if not fits:
        assert ex.message == (
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        )


def test_cordoned_node_and_too_many_pods() -> None:
    nodes = system_nodes()
    nodes[0]["spec"]["unschedulable"] = True
    nodes[1]["status"]["allocatable"]["pods"] = "1"
    ex = explain_pod(pod("new"), nodes, [pod("old", node="sys-b")])
    assert ex.message == (
        "0/2 nodes are available: 1 Too many pods, 1 node(s) were unschedulable. preemption: 0/2 nodes are "
        "available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
    )


def test_preemption_never_policy() -> None:
    nodes = system_nodes()
    busy = [pod(f"b{i}", requests={"cpu": "1500m"}, node=n["metadata"]["name"]) for i, n in enumerate(nodes)]
    ex = explain_pod(pod("new", requests={"cpu": "1"}, preemptionPolicy="Never", priority=1000), nodes, busy)
    assert ex.message == (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    )


def test_preemption_picks_the_node_with_the_lowest_priority_victims() -> None:
    nodes = system_nodes()
    busy = [
        pod("low", requests={"cpu": "1500m"}, node="sys-a", priority=10),
        pod("mid", requests={"cpu": "1500m"}, node="sys-b", priority=100),
    ]
    ex = explain_pod(pod("vip", requests={"cpu": "1"}, priority=1000), nodes, busy)
    assert ex.preemption is not None
    assert ex.preemption.node == "sys-a"
    assert [v["metadata"]["name"] for v in ex.preemption.victims] == ["low"]
    # With victims available the event carries no preemption clause.
    assert ex.message == "0/2 nodes are available: 2 Insufficient cpu."


def _spread(max_skew: int = 1) -> dict[str, Any]:
    return {
        "topologySpreadConstraints": [
            {
                "maxSkew": max_skew,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}},
            }
        ]
    }


def test_topology_spread_blocks_the_crowded_zone() -> None:
    existing = [pod("w1", labels={"app": "web"}, node="sys-a")]
    new = pod("w2", labels={"app": "web"}, **_spread())
    snap = Snapshot.build(system_nodes(), existing)
    verdicts = {v.node: v for v in explain(new, snap).verdicts}
    assert not verdicts["sys-a"].fits
    assert verdicts["sys-a"].reasons == ("node(s) didn't match pod topology spread constraints",)
    assert verdicts["sys-b"].fits
    assert select_node(new, snap, random.Random(0))[0] == "sys-b"


def test_topology_spread_needs_the_topology_label() -> None:
    nodes = system_nodes()
    del nodes[0]["metadata"]["labels"]["topology.kubernetes.io/zone"]
    ex = explain_pod(pod("w", labels={"app": "web"}, **_spread()), nodes, [])
    by_node = {v.node: v for v in ex.verdicts}
    assert by_node["sys-a"].reasons == (
        "node(s) didn't match pod topology spread constraints (missing required label)",
    )
    assert by_node["sys-b"].fits


def test_required_pod_anti_affinity_on_hostname() -> None:
    anti = {
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        }
    }
    existing = [
        pod("db-0", labels={"app": "db"}, node="sys-a", **anti),
        pod("db-1", labels={"app": "db"}, node="sys-b"),
    ]
    ex = explain_pod(pod("db-2", labels={"app": "db"}, **anti), system_nodes(), existing)
    assert ex.message == (
        "0/2 nodes are available: 1 node(s) didn't match pod anti-affinity rules, 1 node(s) didn't satisfy existing "
        "pods anti-affinity rules. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    )


# --------------------------------------------------------------------------- scoring


def test_least_allocated_prefers_the_emptier_node_and_ties_are_seeded() -> None:
    nodes = system_nodes()
    busy = [pod("busy", requests={"cpu": "1", "memory": "2Gi"}, node="sys-a")]
    assert (
        select_node(pod("new", requests={"cpu": "100m"}), Snapshot.build(nodes, busy), random.Random(0))[0] == "sys-b"
    )
    picks = {select_node(pod("new"), Snapshot.build(nodes, []), random.Random(seed))[0] for seed in range(20)}
    assert picks == {"sys-a", "sys-b"}  # equal nodes: the seeded generator breaks the tie
    again = [select_node(pod("new"), Snapshot.build(nodes, []), random.Random(7))[0] for _ in range(3)]
    assert len(set(again)) == 1


def test_preferred_node_affinity_wins_over_spare_capacity() -> None:
    nodes = system_nodes()
    busy = [pod("busy", requests={"cpu": "1"}, node="sys-a")]
    prefer_a = {
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchExpressions": [
                                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a"]}
                            ]
                        },
                    }
                ]
            }
        }
    }
    assert select_node(pod("new", **prefer_a), Snapshot.build(nodes, busy), random.Random(0))[0] == "sys-a"


def test_terminal_pods_free_their_resources() -> None:
    nodes = system_nodes()[:1]
    done = pod("done", requests={"cpu": "1800m"}, node="sys-a")
    done["status"]["phase"] = "Succeeded"
    assert explain_pod(pod("new", requests={"cpu": "1"}), nodes, [done]).fits
