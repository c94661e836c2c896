"""EmbeddedCluster: profiles, nodes as the official client sees them, kubeconfig, faults, determinism."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import twin_support as support
from kubernetes import client
from twin_support import StartCluster

from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.errors import ConfigError

SCALE = 300.0

wait_for = support.wait_for


@pytest.fixture
def kind(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.ApiClient]:
    return start_cluster(profile="kind", time_scale=SCALE, seed=7, system_pods=False)


def test_kind_profile_nodes_through_the_official_client(kind: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    cluster, api = kind
    assert stat.S_IMODE(cluster.kubeconfig.stat().st_mode) == 0o600
    nodes = client.CoreV1Api(api).list_node().items
    assert [n.metadata.name for n in nodes] == ["labkit-control-plane", "labkit-worker", "labkit-worker2"]
    cp = nodes[0]
    assert [(t.key, t.effect) for t in cp.spec.taints] == [("node-role.kubernetes.io/control-plane", "NoSchedule")]
    for n in nodes:
        info = n.status.node_info
        assert info.kubelet_version.startswith("v1.")
        assert info.container_runtime_version.startswith("containerd://")
        assert info.machine_id and info.system_uuid and info.boot_id and info.os_image
        assert {c.type: c.status for c in n.status.conditions}["Ready"] == "True"
        assert n.status.daemon_endpoints.kubelet_endpoint.port == 10250
        assert n.status.allocatable["pods"] == "110"


@pytest.mark.parametrize(
    ("profile", "count"),
    [("eks-standard", 2), ("eks-auto", 0), ("standard", 2), ("auto", 0)],
)
def test_eks_profiles(tmp_path: Path, profile: str, count: int) -> None:
    with EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile=profile, system_pods=False) as c:
        nodes, _ = c.store.list("nodes")
        assert len(nodes) == count
        if count:
            labels = [n["metadata"]["labels"] for n in nodes]
            assert {lab["eks.amazonaws.com/nodegroup"] for lab in labels} == {"system"}
            assert {lab["topology.kubernetes.io/zone"] for lab in labels} == {"us-west-2a", "us-west-2b"}
            assert {lab["node.kubernetes.io/instance-type"] for lab in labels} == {"m6i.large"}


def test_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown cluster profile 'gke'"):
        EmbeddedCluster(state_dir=tmp_path, profile="gke")


def test_system_workloads_of_a_kind_cluster_run(tmp_path: Path) -> None:
    with EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile="kind", seed=1) as c:

        def running() -> list[dict[str, Any]]:
            pods, _ = c.store.list("pods", "kube-system")
            return pods if pods and all(p["status"].get("phase") == "Running" for p in pods) else []

        names = [p["metadata"]["name"] for p in wait_for(running, what="kube-system pods Running")]
        assert sum(n.startswith("coredns-") for n in names) == 2
        assert sum(n.startswith("kube-proxy-") for n in names) == 3  # a DaemonSet that tolerates everything
        assert "etcd-labkit-control-plane" in names
        assert c.store.get("storageclasses.storage.k8s.io", None, "standard")["provisioner"] == "rancher.io/local-path"


# Preloaded on kind nodes: no pull, so no image-locality score that depends on how fast pulls finish.
IMAGE = "registry.k8s.io/coredns/coredns:v1.12.0"


def _placement(tmp_path: Path, seed: int) -> list[tuple[str, str]]:
    with EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile="kind", seed=seed, system_pods=False) as c:
        for i in range(4):
            c.store.create(
                "pods",
                {"metadata": {"name": f"p{i}"}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}},
                namespace="default",
            )
            wait_for(lambda i=i: c.store.get("pods", "default", f"p{i}")["spec"].get("nodeName"), what="binding")
        template = {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}}
        spec = {"replicas": 2, "selector": {"matchLabels": {"app": "d"}}, "template": template}
        c.store.create("deployments.apps", {"metadata": {"name": "d"}, "spec": spec}, namespace="default")
        wait_for(lambda: len(c.store.list("pods", "default", label_selector="app=d")[0]) == 2, what="replicas")
        pods, _ = c.store.list("pods", "default")
        return sorted((p["metadata"]["name"], p["spec"].get("nodeName") or "") for p in pods)


def test_same_seed_same_names_and_placement(tmp_path: Path) -> None:
    first = _placement(tmp_path / "a", seed=42)
    again = _placement(tmp_path / "b", seed=42)
    assert first == again
    assert any(name.startswith("d-") for name, _ in first)
