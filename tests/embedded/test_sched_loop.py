"""The scheduler loop in a running cluster: Pending with a reason, retries on new nodes, preemption, node loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from twin_support import StartCluster, wait_for

from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.embedded.kube.nodes import make_node
from labkit.embedded.kube.scheduler import Explanation

SCALE = 300.0
NS = "default"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


@pytest.fixture
def eks(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.CoreV1Api]:
    c, api = start_cluster(profile="eks-standard", time_scale=SCALE, seed=21, system_pods=False)
    return c, client.CoreV1Api(api)


def gpu_pod(name: str, *, tolerate: bool) -> dict[str, Any]:
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    spec: dict[str, Any] = {"containers": [container]}
    if tolerate:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"name": name}, "spec": spec}


def scheduled_condition(core: client.CoreV1Api, name: str) -> Any:
    p = core.read_namespaced_pod(name, NS)
    return next((c for c in p.status.conditions or [] if c.type == "PodScheduled"), None)


def add_gpu_node(cluster: EmbeddedCluster) -> None:
    labels = {"karpenter.sh/nodepool": "gpu"}
    cluster.add_node(make_node("i-0gpu0000000000001", "g5.xlarge", "us-west-2a", labels, [GPU_TAINT]))


def test_gpu_pod_pending_with_a_clear_reason_then_placed_on_a_new_gpu_node(
    eks: tuple[EmbeddedCluster, client.CoreV1Api],
) -> None:
    cluster, core = eks
    seen: list[tuple[str, Explanation]] = []
    assert cluster.scheduler is not None
    cluster.scheduler.unschedulable_listeners.append(lambda pod, ex: seen.append((pod["metadata"]["name"], ex)))
    add_gpu_node(cluster)
    core.create_namespaced_pod(NS, gpu_pod("no-toleration", tolerate=False))
    cond = wait_for(lambda: scheduled_condition(core, "no-toleration"), what="PodScheduled condition")
    expected = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: true}, "
        "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling."
    )
    assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", expected)
    events = [e for e in core.list_namespaced_event(NS).items if e.involved_object.name == "no-toleration"]
    assert [(e.type, e.reason, e.message, e.source.component) for e in events] == [
        ("Warning", "FailedScheduling", expected, "default-scheduler")
    ]
    assert seen and seen[0][0] == "no-toleration" and seen[0][1].unresolvable
    assert [p["metadata"]["name"] for p in cluster.scheduler.unschedulable_pods()] == ["no-toleration"]

    core.create_namespaced_pod(NS, gpu_pod("tolerates", tolerate=True))
    wait_for(lambda: core.read_namespaced_pod("tolerates", NS).spec.node_name, what="binding")
    assert core.read_namespaced_pod("tolerates", NS).spec.node_name == "i-0gpu0000000000001"
    messages = [e.message for e in core.list_namespaced_event(NS).items if e.involved_object.name == "tolerates"]
    assert "Successfully assigned default/tolerates to i-0gpu0000000000001" in messages


def test_pending_pod_is_retried_when_a_node_appears(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    cluster, core = eks
    core.create_namespaced_pod(NS, gpu_pod("waits", tolerate=True))
    cond = wait_for(lambda: scheduled_condition(core, "waits"), what="Unschedulable")
    assert cond.message == (
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: "
        "2 Preemption is not helpful for scheduling."
    )
    add_gpu_node(cluster)
    wait_for(lambda: core.read_namespaced_pod("waits", NS).spec.node_name == "i-0gpu0000000000001", what="retry")
    wait_for(lambda: scheduled_condition(core, "waits").status == "True", what="PodScheduled=True")


def test_no_nodes_at_all_on_auto_mode(tmp_path: Path) -> None:
    with EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile="eks-auto", system_pods=False) as cluster:
        cluster.store.create(
            "pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, namespace=NS
        )

        def condition() -> Any:
            conds = cluster.store.get("pods", NS, "p")["status"].get("conditions") or []
            return next((c for c in conds if c["type"] == "PodScheduled"), None)

        cond = wait_for(condition, what="PodScheduled condition")
        assert (cond["reason"], cond["message"]) == ("Unschedulable", "no nodes available to schedule pods")


def test_higher_priority_pod_preempts(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    cluster, core = eks
    client.SchedulingV1Api(core.api_client).create_priority_class(
        {"metadata": {"name": "urgent"}, "value": 100000, "description": "lab"}
    )
    nodes = [n["metadata"]["name"] for n in cluster.store.list("nodes")[0]]
    for i, node in enumerate(nodes):
        container = {"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "1500m"}}}
        filler = {"metadata": {"name": f"filler-{i}"}, "spec": {"nodeName": node, "containers": [container]}}
        core.create_namespaced_pod(NS, filler)
    container = {"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "1"}}}
    urgent = {"metadata": {"name": "urgent"}, "spec": {"priorityClassName": "urgent", "containers": [container]}}
    core.create_namespaced_pod(NS, urgent)
    node = wait_for(lambda: core.read_namespaced_pod("urgent", NS).spec.node_name, what="urgent bound")
    remaining = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    assert len(remaining & {"filler-0", "filler-1"}) == 1
    victim = ({"filler-0", "filler-1"} - remaining).pop()
    preempted = [e.message for e in core.list_namespaced_event(NS).items if e.reason == "Preempted"]
    assert preempted == [f"Preempted by pod {core.read_namespaced_pod('urgent', NS).metadata.uid} on node {node}"]
    assert victim == f"filler-{nodes.index(node)}"


def test_node_deletion_reschedules_the_deployments_pods(tmp_path: Path) -> None:
    with EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile="kind", seed=2, system_pods=False) as cluster:
        store = cluster.store
        template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        spec = {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": template}
        store.create("deployments.apps", {"metadata": {"name": "web"}, "spec": spec}, namespace=NS)

        def available(n: int) -> bool:
            return (store.get("deployments.apps", NS, "web")["status"].get("availableReplicas") or 0) == n

        wait_for(lambda: available(4), what="4 available")
        doomed = {p["metadata"]["name"] for p in store.list("pods", NS)[0] if p["spec"]["nodeName"] == "labkit-worker"}
        assert doomed  # least-allocated scoring spreads the replicas over both workers
        cluster.delete_node("labkit-worker")

        def moved() -> bool:
            pods, _ = store.list("pods", NS)
            names = {p["metadata"]["name"] for p in pods}
            return not (names & doomed) and all(p["spec"]["nodeName"] == "labkit-worker2" for p in pods)

        wait_for(moved, what="pods replaced on the surviving worker")
        wait_for(lambda: available(4), what="4 available again")


def test_cordoned_workers_leave_nowhere_to_go(tmp_path: Path) -> None:
    with EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile="kind", system_pods=False) as cluster:
        cluster.cordon("labkit-worker")
        cluster.cordon("labkit-worker2")
        cluster.store.create(
            "pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, namespace=NS
        )

        def message() -> Any:
            conds = cluster.store.get("pods", NS, "p")["status"].get("conditions") or []
            return next((c["message"] for c in conds if c["type"] == "PodScheduled"), None)

        assert wait_for(message, what="PodScheduled condition") == (
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
            "2 node(s) were unschedulable. preemption: 0/3 nodes are available: "
            "3 Preemption is not helpful for scheduling."
        )
        cluster.cordon("labkit-worker2", unschedulable=False)
        wait_for(lambda: cluster.store.get("pods", NS, "p")["spec"].get("nodeName") == "labkit-worker2", what="bound")
