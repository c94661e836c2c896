"""The embedded Karpenter running over a store with the scheduler, kubelets and controllers (time scale 600)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import twin_support as support

from labkit.compute import device_plugin
from labkit.compute import nodepools as builders
from labkit.embedded.clock import Clock
from labkit.embedded.kube import tables
from labkit.embedded.kube.controllers.base import ControllerContext
from labkit.embedded.kube.controllers.common import parse_rfc3339
from labkit.embedded.kube.controllers.manager import ControllerManager
from labkit.embedded.kube.karpenter import KarpenterController, catalog, interruption
from labkit.embedded.kube.kubelet import Kubelet
from labkit.embedded.kube.nodes import profile_nodes
from labkit.embedded.kube.scheduler import Scheduler
from labkit.embedded.kube.store import Store
from labkit.errors import Invalid, NotFound

SCALE = 600.0
NODEPOOLS = "nodepools.karpenter.sh"
NODECLAIMS = "nodeclaims.karpenter.sh"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

wait_for = support.wait_for


class Rig:
    """Store, clock, scheduler, kubelets, controllers and Karpenter, started together."""

    def __init__(self, profile: str) -> None:
        self.clock = Clock(scale=SCALE)
        self.store = Store(self.clock)
        if profile in ("standard", "eks-standard"):
            for node in profile_nodes("eks-standard", now=self.clock.now()):
                self.store.create("nodes", node)
        for name, value in (("system-cluster-critical", 2000000000), ("system-node-critical", 2000001000)):
            self.store.create(
                "priorityclasses.scheduling.k8s.io",
                {
                    "apiVersion": "scheduling.k8s.io/v1",
                    "kind": "PriorityClass",
                    "metadata": {"name": name},
                    "value": value,
                },
            )
        self.kubelet = Kubelet(self.store, self.clock, rng=random.Random(1))
        self.scheduler = Scheduler(self.store, self.clock, rng=random.Random(2))
        self.controllers = ControllerManager(ControllerContext(self.store, self.clock, random.Random(3)))
        self.karpenter = KarpenterController(self.store, self.clock, profile=profile, rng=random.Random(4))
        for part in (self.kubelet, self.scheduler, self.controllers, self.karpenter):
            part.start()

    def stop(self) -> None:
        for part in (self.karpenter, self.controllers, self.scheduler, self.kubelet):
            part.stop()
        self.clock.stop()

    def apply_pool(self, pool: builders.GpuPool, profile: str) -> None:
        for manifest in builders.gpu_pool_manifests(pool, profile, cluster_name="labkit", node_role="role", tags={}):
            key = {"NodePool": NODEPOOLS, "EC2NodeClass": "ec2nodeclasses.karpenter.k8s.aws"}.get(
                manifest["kind"], "nodeclasses.eks.amazonaws.com"
            )
            self.store.create(key, manifest)

    def deploy(self, name: str, *, replicas: int = 1, gpus: int = 0, cpu: str = "1", **spec: Any) -> None:
        requests = {"cpu": cpu, "memory": "2Gi"}
        limits = {}
        if gpus:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
            spec.setdefault("tolerations", [GPU_TOLERATION])
        container = {"name": "server", "image": "nginx", "resources": {"requests": requests, "limits": limits}}
        self.store.create(
            "deployments.apps",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container], **spec}},
                },
            },
        )

    def scale(self, name: str, replicas: int) -> None:
        self.store.patch("deployments.apps", "default", name, {"spec": {"replicas": replicas}}, "merge")

    def pods(self, app: str) -> list[dict[str, Any]]:
        return self.store.list("pods", "default", label_selector=f"app={app}")[0]

    def running(self, app: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(app) if (p.get("status") or {}).get("phase") == "Running"]

    def karpenter_nodes(self) -> list[dict[str, Any]]:
        return [
            n for n in self.store.list("nodes")[0] if "karpenter.sh/nodepool" in (n["metadata"].get("labels") or {})
        ]

    def events(self, reason: str, kind: str | None = None) -> list[str]:
        items, _ = self.store.list("events")
        return [
            e["message"]
            for e in items
            if e["reason"] == reason
            and e["source"]["component"] == "karpenter"
            and (kind is None or e["involvedObject"].get("kind") == kind)
        ]


@pytest.fixture
def auto() -> Iterator[Rig]:
    rig = Rig("eks-auto")
    yield rig
    rig.stop()


@pytest.fixture
def standard() -> Iterator[Rig]:
    rig = Rig("eks-standard")
    yield rig
    rig.stop()


def test_gpu_deployment_gets_a_gpu_node_and_runs(auto: Rig) -> None:
    auto.apply_pool(builders.GpuPool(families=("g6", "g6e"), consolidate_after="1m"), "auto")
    auto.deploy("llm", gpus=1)
    (pod,) = wait_for(lambda: auto.running("llm"))
    (claim,) = auto.store.list(NODECLAIMS)[0]
    (node,) = auto.karpenter_nodes()
    assert pod["spec"]["nodeName"] == node["metadata"]["name"] == claim["status"]["nodeName"]
    assert node["metadata"]["name"].startswith("i-0")  # Auto Mode names nodes by instance id
    conditions = {c["type"]: c["status"] for c in claim["status"]["conditions"]}
    assert [conditions[t] for t in ("Launched", "Registered", "Initialized", "Ready")] == ["True"] * 4
    labels = node["metadata"]["labels"]
    assert labels["karpenter.sh/nodepool"] == "gpu" and labels["labkit.dev/pool"] == "gpu"
    assert labels["node.kubernetes.io/instance-type"] == "g6.xlarge"  # the cheapest type with a GPU
    assert labels["karpenter.sh/capacity-type"] == "on-demand"
    assert labels["topology.kubernetes.io/zone"].startswith("us-west-2")
    assert labels["eks.amazonaws.com/instance-gpu-name"] == "l4"
    assert labels["eks.amazonaws.com/instance-gpu-manufacturer"] == "nvidia"
    assert labels["eks.amazonaws.com/compute-type"] == "auto"
    assert labels["karpenter.sh/registered"] == labels["karpenter.sh/initialized"] == "true"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["metadata"]["ownerReferences"][0]["kind"] == "NodeClaim"
    assert node["status"]["nodeInfo"]["osImage"].startswith("Bottlerocket")
    # A GPU instance takes 90-120 simulated seconds from NodeClaim to Node.
    expected = catalog.get("g6.xlarge").launch_seconds(claim["metadata"]["name"])
    launch = parse_rfc3339(node["metadata"]["creationTimestamp"]) - parse_rfc3339(
        claim["metadata"]["creationTimestamp"]
    )
    assert 90 <= expected <= 120 and expected - 1 <= launch <= expected + 60
    assert f"Pod should schedule on: nodeclaim/{claim['metadata']['name']}" in auto.events("Nominated", "Pod")
    assert "Status condition transitioned, Type: Launched, Status: Unknown -> True, Reason: Launched" in auto.events(
        "Launched", "NodeClaim"
    )
    pool = wait_for(
        lambda: (
            (auto.store.get(NODEPOOLS, None, "gpu").get("status") or {}).get("nodes") == 1
            and auto.store.get(NODEPOOLS, None, "gpu")
        )
    )
    assert pool["status"]["resources"]["nvidia.com/gpu"] == "1"
    assert {c["type"]: c["status"] for c in pool["status"]["conditions"]}["Ready"] == "True"


def test_scale_to_zero_consolidates_the_node_after_consolidate_after(auto: Rig) -> None:
    auto.apply_pool(builders.GpuPool(families=("g6",), consolidate_after="2m"), "auto")
    auto.deploy("llm", gpus=1)
    wait_for(lambda: auto.running("llm"))
    auto.scale("llm", 0)
    wait_for(lambda: not auto.pods("llm"))
    emptied = auto.clock.now()
    assert auto.karpenter_nodes(), "the node stays while consolidateAfter runs"
    wait_for(lambda: not auto.karpenter_nodes() and not auto.store.list(NODECLAIMS)[0])
    waited = auto.clock.now() - emptied
    assert 120 <= waited <= 300
    assert "Disrupting Node: Empty" in auto.events("DisruptionTerminating", "Node")
    assert "Disrupting NodeClaim: Empty" in auto.events("DisruptionTerminating", "NodeClaim")


def test_disruption_budget_of_zero_keeps_the_node(auto: Rig) -> None:
    auto.apply_pool(builders.GpuPool(families=("g6",), consolidate_after="30s", budgets=({"nodes": "0"},)), "auto")
    auto.deploy("llm", gpus=1)
    wait_for(lambda: auto.running("llm"))
    auto.scale("llm", 0)
    wait_for(lambda: auto.events("DisruptionBlocked", "NodePool"))
    assert auto.events("DisruptionBlocked", "NodePool") == [
        "No allowed disruptions for disruption reason Empty due to blocking budget"
    ]
    assert len(auto.karpenter_nodes()) == 1


def test_limit_reached_leaves_the_pod_pending_with_the_reason(auto: Rig) -> None:
    auto.apply_pool(builders.GpuPool(families=("g6",), gpu_limit=1), "auto")
    auto.deploy("llm", gpus=1, replicas=2)
    wait_for(lambda: len(auto.running("llm")) == 1)
    limit = 'all available instance types exceed limits for nodepool: "gpu"'
    wait_for(lambda: any(limit in m for m in auto.events("FailedScheduling", "Pod")))
    pending = [p for p in auto.pods("llm") if p["status"].get("phase") == "Pending"]
    assert len(pending) == 1 and len(auto.store.list(NODECLAIMS)[0]) == 1
    reasons = auto.karpenter.explain("default", pending[0]["metadata"]["name"])
    assert limit in reasons  # the built-in pools give their own reasons: no GPUs, CriticalAddonsOnly taint
    assert any(r.startswith('incompatible with nodepool "general-purpose"') for r in reasons)


def spot_pool(rig: Rig) -> None:
    rig.store.create(
        NODEPOOLS,
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "spot"},
            "spec": {
                "template": {
                    "spec": {
                        "nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"},
                        "requirements": [
                            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                            {"key": "eks.amazonaws.com/instance-family", "operator": "In", "values": ["m6i"]},
                        ],
                    }
                },
                "weight": 10,
            },
        },
    )


def pdb(rig: Rig, app: str) -> None:
    rig.store.create(
        "poddisruptionbudgets.policy",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": app, "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
        },
    )


def test_spot_interruption_replaces_the_node(auto: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 simulated minutes are 0.3 s of wall time here: on a busy machine the window could lapse before
    # the replacement is planned, so keep the interrupted offering out for the whole test.
    monkeypatch.setattr(interruption, "UNAVAILABLE_SECONDS", 3600.0)
    spot_pool(auto)
    auto.deploy("web", replicas=2, cpu="500m")
    wait_for(lambda: len(auto.running("web")) == 2)
    (node,) = auto.karpenter_nodes()
    old = node["metadata"]["name"]
    assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
    auto.store.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "plain"}})
    with pytest.raises(Invalid, match="not launched by Karpenter"):
        auto.karpenter.interrupt("plain")
    with pytest.raises(NotFound):
        auto.karpenter.interrupt("no-such-node")
    warning = auto.karpenter.interrupt(old)
    assert warning.terminates_at == pytest.approx(warning.warned_at + 120)
    wait_for(
        lambda: len(auto.running("web")) == 2 and old not in {n["metadata"]["name"] for n in auto.karpenter_nodes()}
    )
    replaced = auto.karpenter_nodes()
    assert replaced and all(
        p["spec"]["nodeName"] in {n["metadata"]["name"] for n in replaced} for p in auto.running("web")
    )
    assert "Spot interruption warning was triggered" in auto.events("SpotInterrupted", "Node")
    assert "Interruption triggered termination for the NodeClaim" in auto.events(
        "TerminatingOnInterruption", "NodeClaim"
    )
    assert "Evicted pod" in auto.events("Evicted", "Pod")
    # The interrupted offering is skipped for a while: the replacement is another type or zone.
    gone = (
        node["metadata"]["labels"]["node.kubernetes.io/instance-type"],
        node["metadata"]["labels"]["topology.kubernetes.io/zone"],
    )
    for new in replaced:
        labels = new["metadata"]["labels"]
        assert (labels["node.kubernetes.io/instance-type"], labels["topology.kubernetes.io/zone"]) != gone


def test_standard_profile_provisions_once_karpenter_is_installed(standard: Rig) -> None:
    standard.apply_pool(builders.GpuPool(families=("g6",)), "standard")
    standard.deploy("llm", gpus=1)
    wait_for(lambda: any(p["status"].get("conditions") for p in standard.pods("llm")))
    time.sleep(0.2)  # 2 simulated minutes: nothing happens without the controller
    assert not standard.store.list(NODECLAIMS)[0] and not standard.karpenter.active
    standard.deploy("karpenter", cpu="250m")  # a Deployment called karpenter in the wrong namespace...
    wait_for(lambda: standard.running("karpenter"))
    assert not standard.karpenter.active  # ...does not count
    install = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "karpenter", "namespace": "kube-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "karpenter"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "karpenter"}},
                "spec": {"containers": [{"name": "controller", "image": "public.ecr.aws/karpenter/controller:1.8.1"}]},
            },
        },
    }
    standard.store.create("deployments.apps", install)
    (claim,) = wait_for(lambda: standard.store.list(NODECLAIMS)[0])
    assert standard.karpenter.active
    # AL2023 GPU nodes get nvidia.com/gpu from the device plugin DaemonSet only.
    node = wait_for(standard.karpenter_nodes)[0]
    assert node["metadata"]["name"].startswith("ip-192-168-")
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]
    wait_for(
        lambda: (
            (standard.store.get(NODECLAIMS, None, claim["metadata"]["name"]).get("status") or {}).get("conditions")
            and any(
                c["type"] == "Initialized" and c.get("reason") == "ResourceNotRegistered"
                for c in standard.store.get(NODECLAIMS, None, claim["metadata"]["name"])["status"]["conditions"]
            )
        )
    )
    assert not standard.running("llm")
    standard.store.create("daemonsets.apps", device_plugin.daemonset())
    (pod,) = wait_for(lambda: standard.running("llm"))
    assert pod["spec"]["nodeName"] == node["metadata"]["name"]
    assert len(standard.store.list(NODECLAIMS)[0]) == 1  # no second node while the first was initialising
    labels = standard.karpenter_nodes()[0]["metadata"]["labels"]
    assert labels["karpenter.k8s.aws/instance-gpu-name"] == "l4" and labels["karpenter.k8s.aws/ec2nodeclass"] == "gpu"
    nodeclass = standard.store.get("ec2nodeclasses.karpenter.k8s.aws", None, "gpu")
    assert {c["type"]: c["status"] for c in nodeclass["status"]["conditions"]}["Ready"] == "True"


def test_crds_print_upstream_columns(auto: Rig) -> None:
    registry = auto.store.registry
    nodepools = registry.get(NODEPOOLS)
    assert [c["name"] for c in nodepools.printer_columns if not c.get("priority")] == [
        "NodeClass",
        "Nodes",
        "Ready",
        "Age",
    ]
    assert registry.get(NODECLAIMS).subresources == ("status",)
    assert registry.find("nodeclasses.eks.amazonaws.com") is not None
    assert registry.find("ec2nodeclasses.karpenter.k8s.aws") is None  # Auto Mode has no EC2NodeClass
    wait_for(lambda: auto.store.get(NODEPOOLS, None, "general-purpose").get("status"))
    doc = tables.table(
        tables.crd_printer(list(nodepools.printer_columns)), auto.store.list(NODEPOOLS)[0], auto.clock.now()
    )
    rows = {r["cells"][0]: r["cells"][1:4] for r in doc["rows"]}
    assert rows == {"general-purpose": ["default", 0, "True"], "system": ["default", 0, "True"]}


def test_expire_after_replaces_old_nodes(auto: Rig) -> None:
    pool = builders.GpuPool(families=("g6",), expire_after="5m", consolidate_after="1h")
    auto.apply_pool(pool, "auto")
    auto.deploy("llm", gpus=1)
    wait_for(lambda: auto.running("llm"))
    (first,) = auto.karpenter_nodes()
    wait_for(
        lambda: auto.running("llm") and auto.running("llm")[0]["spec"]["nodeName"] != first["metadata"]["name"],
        timeout=5.0,
    )
    assert first["metadata"]["name"] not in {n["metadata"]["name"] for n in auto.karpenter_nodes()}
    assert "NodeClaim expired after 5m" in auto.events("Expired", "NodeClaim")


def test_drifted_node_is_replaced_before_it_goes(auto: Rig) -> None:
    auto.apply_pool(builders.GpuPool(families=("g6",), budgets=({"nodes": "1"},), consolidate_after="1h"), "auto")
    auto.deploy("llm", gpus=1)
    (pod,) = wait_for(lambda: auto.running("llm"))
    old = pod["spec"]["nodeName"]
    patch = {"spec": {"template": {"metadata": {"labels": {"team": "search"}}}}}
    auto.store.patch(NODEPOOLS, None, "gpu", patch, "merge")
    (moved,) = wait_for(lambda: [p for p in auto.running("llm") if p["spec"]["nodeName"] != old])
    wait_for(lambda: old not in {n["metadata"]["name"] for n in auto.karpenter_nodes()})
    (node,) = auto.karpenter_nodes()
    assert node["metadata"]["name"] == moved["spec"]["nodeName"] and node["metadata"]["labels"]["team"] == "search"
    assert "Launching NodeClaim: Drifted" in auto.events("DisruptionLaunching", "NodeClaim")
    assert "Disrupting Node: Drifted" in auto.events("DisruptionTerminating", "Node")


def test_pdb_blocks_voluntary_disruption_but_not_the_end_of_a_spot_instance(auto: Rig) -> None:
    spot_pool(auto)
    auto.deploy("web", cpu="500m")
    pdb(auto, "web")
    (pod,) = wait_for(lambda: auto.running("web"))
    node = pod["spec"]["nodeName"]
    auto.store.patch(NODEPOOLS, None, "spot", {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}}, "merge")
    blocked = 'Cannot disrupt Node: pdb "default/web" prevents pod evictions'
    wait_for(lambda: blocked in auto.events("DisruptionBlocked", "Node"))
    assert auto.running("web")[0]["spec"]["nodeName"] == node  # drift waits for the budget
    warning = auto.karpenter.interrupt(node)
    wait_for(lambda: auto.events("FailedDraining", "Node"))
    assert auto.running("web") and auto.clock.now() < warning.terminates_at  # the PDB holds the eviction...
    wait_for(lambda: [p for p in auto.running("web") if p["spec"]["nodeName"] != node])
    assert auto.clock.now() >= warning.terminates_at  # ...until EC2 takes the instance back
    assert auto.events("InstanceTerminated", "Node")


def test_cluster_level_gpu_flow(tmp_path: Path) -> None:
    from labkit.embedded.kube.cluster import EmbeddedCluster

    cluster = EmbeddedCluster(state_dir=tmp_path, time_scale=SCALE, profile="eks-auto", tls=False, seed=7)
    cluster.start()
    karpenter = KarpenterController(cluster.store, cluster.clock, profile=cluster.profile, rng=random.Random(5))
    karpenter.start()
    try:
        store = cluster.store
        for manifest in builders.gpu_pool_manifests(
            builders.GpuPool(families=("g6",), consolidate_after="1m"), "auto", cluster_name="c", node_role="r", tags={}
        ):
            store.create(NODEPOOLS if manifest["kind"] == "NodePool" else "nodeclasses.eks.amazonaws.com", manifest)
        rig = Rig.__new__(Rig)
        rig.store, rig.clock = store, cluster.clock
        rig.deploy("llm", gpus=1)
        wait_for(lambda: rig.running("llm"))
        rig.scale("llm", 0)
        wait_for(lambda: not rig.karpenter_nodes())
    finally:
        karpenter.stop()
        cluster.stop()
