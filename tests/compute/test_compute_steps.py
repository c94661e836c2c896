"""Compute lab steps on the embedded platform: GPU pools per profile, nodes coming and going, Pending reasons."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.lib.pretty import pretty

import labkit
from labkit import cluster, compute, kube, schemas
from labkit.compute import karpenter
from labkit.compute.nodepools import GpuPool
from labkit.compute.steps import controller_manifests, cost_cap, limit_findings
from labkit.errors import Invalid
from labkit.targets.embedded import STATE_ENV, start_in_process

pytestmark = pytest.mark.timeout(180)

NS = "team-a"


@contextlib.contextmanager
def embedded_lab(tmp: Path, profile: str, name: str) -> Iterator[labkit.LabContext]:
    """A lab on a fresh embedded platform whose cluster (``profile``) exists, at a fast time scale."""
    saved = dict(os.environ)
    os.environ["LABKIT_HOME"] = str(tmp)
    os.environ["LABKIT_TIME_SCALE"] = "1200"
    lab = labkit.setup(target="embedded", headless=True, lab=name, cluster_name=name, cluster_profile=profile)
    services, _ = start_in_process(lab.settings, tmp / "state.json")
    os.environ[STATE_ENV] = str(tmp / "state.json")
    try:
        cluster.ensure(lab)
        yield lab
    finally:
        services.stop()
        os.environ.clear()
        os.environ.update(saved)


def gpu_workload(name: str, gpus: int, replicas: int = 1) -> dict[str, Any]:
    """A Deployment of a plain container that asks for GPUs in the ``gpu`` pool."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"labkit.dev/pool": "gpu"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "main",
                            "image": "nginx:1.27",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": str(gpus)},
                                "limits": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ],
                },
            },
        },
    }


# ---------------------------------------------------------------------------------------------- pure parts


def test_controller_manifests_render_the_chart_values() -> None:
    values = karpenter.values("genai-platform", "labkit-genai-platform-karpenter")
    objs = controller_manifests(values, version="1.14.1")
    assert [o["kind"] for o in objs] == ["ServiceAccount", "Deployment", "PodDisruptionBudget"]
    assert all(schemas.validate_builtin(o) == [] for o in objs)
    dep = objs[1]
    assert dep["metadata"] == {"name": "karpenter", "namespace": "kube-system", "labels": dep["metadata"]["labels"]}
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "karpenter"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CLUSTER_NAME"] == "genai-platform"
    assert env["INTERRUPTION_QUEUE"] == "labkit-genai-platform-karpenter"
    assert env["FEATURE_GATES"] == "SpotToSpotConsolidation=false"
    assert pod["containers"][0]["image"] == "public.ecr.aws/karpenter/controller:1.14.1"
    assert pod["affinity"] == values["affinity"]  # never on a node Karpenter manages itself
    assert dep["spec"]["replicas"] == values["replicas"]
    assert objs[2]["spec"]["maxUnavailable"] == 1


def test_cost_cap_prices_the_limit_on_allowed_instances() -> None:
    low, high = cost_cap(GpuPool(families=("g6",), gpu_counts=(1,), gpu_limit=2)) or (0.0, 0.0)
    assert low == pytest.approx(2 * 0.8048)  # g6.xlarge, the cheapest single-L4 instance
    assert high > low
    low_l40s, _ = cost_cap(GpuPool(families=("g6", "g6e"), gpu_names=("l40s",), gpu_limit=1)) or (0.0, 0.0)
    assert low_l40s == pytest.approx(1.861)  # g6e.xlarge
    assert cost_cap(GpuPool(families=("g4dn",))) is None  # not in the planner's price catalog


def test_limit_findings_name_the_cost_cap() -> None:
    pod = gpu_workload("x", 4)["spec"]["template"]
    pod = {"metadata": {"name": "x"}, "spec": pod["spec"]}
    pool = {
        "metadata": {"name": "gpu"},
        "spec": {"template": {"metadata": {"labels": {"labkit.dev/pool": "gpu"}}}, "limits": {"nvidia.com/gpu": "2"}},
        "status": {"resources": {"nvidia.com/gpu": "1"}},
    }
    other = {"metadata": {"name": "other"}, "spec": {"limits": {"nvidia.com/gpu": "1"}}}
    (finding,) = limit_findings(pod, [pool, other])
    assert "caps nvidia.com/gpu at 2" in finding and "can never run there" in finding
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "2"
    (finding,) = limit_findings(pod, [pool])
    assert "1 in use, 1 left: this pod needs 2" in finding
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    assert limit_findings(pod, [pool]) == []


# ---------------------------------------------------------------------------------------------- Auto Mode


@pytest.fixture(scope="module")
def auto_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labkit.LabContext]:
    with embedded_lab(tmp_path_factory.mktemp("auto"), "auto", "steps-auto") as lab:
        yield lab


def test_auto_mode_pool_serves_gpu_pods_and_consolidates(auto_lab: labkit.LabContext) -> None:
    lab = auto_lab
    setup = compute.create_gpu_pool(GpuPool(families=("g6",), gpu_limit=2, consolidate_after="1m"), lab=lab)
    assert setup.profile == "auto" and setup.prerequisites == ()
    assert [i.ref for i in setup.applied.items] == ["nodeclass.eks.amazonaws.com/gpu", "nodepool.karpenter.sh/gpu"]
    assert setup.node_role == "labkit-steps-auto-node"
    assert "limit: 2 nvidia.com/gpu" in str(setup)
    nodeclass = kube.get("nodeclass.eks.amazonaws.com/gpu", kube=lab.platform())
    assert nodeclass["spec"]["role"] == "labkit-steps-auto-node"
    assert nodeclass["spec"]["tags"]["labkit:lab"] == "steps-auto"

    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, gpu_workload("one", 1)])
    came = compute.watch_nodes(pool="gpu", until="ready", lab=lab)
    assert came.done
    what = [e.what for e in sorted(came.events, key=lambda e: e.at)]
    assert what[0] == "created for pending pods"
    assert what[1].startswith("launched g6.") and "(on-demand) in us-west-2" in what[1]
    assert what[-1] == "Ready"
    assert any(w == "initialized: 1 nvidia.com/gpu allocatable" for w in what)
    launched = next(e for e in came.events if e.what.startswith("launched"))
    registered = next(e for e in came.events if e.what.startswith("registered"))
    assert 60 <= registered.at - launched.at <= 180  # a GPU instance boots in 1.5-2 minutes of cluster time

    kube.rollout_status("deployment/one", namespace=NS, kube=lab.platform(), progress=False)
    table = compute.nodes_table(lab=lab, pool="gpu")
    (row,) = table.as_dicts()
    assert row["NODEPOOL"] == "gpu" and row["CAPACITY"] == "on-demand" and row["ZONE"].startswith("us-west-2")
    assert row["GPU-USED"] == "1/1" and row["INSTANCE-TYPE"].startswith("g6.")
    assert float(row["$/HOUR"]) > 0.5
    assert pretty(table).startswith("nodes of pool gpu: 1")  # a notebook shows the text, not a repr
    assert table.title.startswith("nodes of pool gpu: 1, $") and table.title.endswith("/hour for instances")

    # A pod asking for more GPUs than the pool's cost cap allows stays Pending, and says why.
    kube.apply(gpu_workload("too-big", 4))
    pending = compute.why_pending(namespace=NS, label_selector="app=too-big", lab=lab)
    assert pending.gpus == 4
    assert any("caps nvidia.com/gpu at 2" in line for line in pending.limits)
    assert "Pending" in pending.diagnosis.summary
    kube.delete_resource("deployment/too-big", namespace=NS, kube=lab.platform())

    before = compute.cost_now(lab=lab)
    assert any(line.item.startswith("g6.") for line in before.report.lines)
    scaled = compute.scale("deployment/one", 0, namespace=NS, lab=lab)
    assert (scaled.before, scaled.after) == (1, 0)
    assert scaled.kubectl == f"kubectl scale deployment.apps/one --replicas=0 -n {NS}"
    gone = compute.watch_nodes(pool="gpu", until="gone", lab=lab)
    assert gone.done and len(gone.nodes or ()) == 0
    assert any("Empty" in e.what for e in gone.events)
    assert any(e.what.startswith("gone") for e in gone.events)
    after = compute.cost_now(lab=lab)
    assert after.usd_per_hour < before.usd_per_hour
    assert not any(line.item.startswith("g6.") for line in after.report.lines)

    removed = compute.delete_gpu_pool("gpu", lab=lab)
    assert [(i.ref, i.action) for i in removed.items] == [
        ("nodepool.karpenter.sh/gpu", "deleted"),
        ("nodeclass.eks.amazonaws.com/gpu", "deleted"),
    ]
    assert kube.Kube.of(lab.platform()).try_get("karpenter.sh/v1", "NodePool", "gpu") is None


def test_steps_refuse_what_they_cannot_do(auto_lab: labkit.LabContext) -> None:
    with pytest.raises(Invalid, match="until"):
        compute.watch_nodes(until="soon", lab=auto_lab)
    with pytest.raises(Invalid, match="does not scale"):
        compute.scale("service/kubernetes", 0, lab=auto_lab)
    installed = compute.install_karpenter(lab=auto_lab)
    assert installed.method == "built-in" and "nothing to install" in str(installed)


# ---------------------------------------------------------------------------------------------- standard


def test_standard_pool_installs_karpenter_and_the_device_plugin(tmp_path: Path) -> None:
    with embedded_lab(tmp_path, "standard", "steps-std") as lab:
        k = kube.Kube.of(lab.platform())
        # Before Karpenter runs, a GPU pod stays Pending and nothing answers for it: the explanation says so.
        quick = kube.Kube(lab.platform().kube_client(), target="embedded", time_scale=1200, min_wall_timeout=0.5)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        kube.apply([namespace, gpu_workload("early", 1)], kube=k)
        silent = compute.why_pending(namespace=NS, label_selector="app=early", kube=quick, timeout=60)
        assert silent.notes and silent.notes[0].startswith("Karpenter recorded nothing about this pod within 60s")
        kube.delete_resource("deployment/early", namespace=NS, kube=k)

        setup = compute.create_gpu_pool(GpuPool(families=("g6",), gpu_limit=1), lab=lab)
        assert setup.profile == "standard" and setup.node_role == "labkit-steps-std-karpenter-node"
        assert setup.prerequisites[0].startswith("Karpenter 1.14.1 controller applied as manifests")
        assert any("nvidia-device-plugin-daemonset" in p for p in setup.prerequisites)
        assert [i.ref for i in setup.applied.items] == [
            "ec2nodeclass.karpenter.k8s.aws/gpu",
            "nodepool.karpenter.sh/gpu",
        ]
        dep = k.get("apps/v1", "Deployment", "karpenter", "kube-system")
        assert int(dep["status"]["readyReplicas"]) >= 1
        ec2 = k.get("karpenter.k8s.aws/v1", "EC2NodeClass", "gpu")
        assert ec2["spec"]["role"] == "labkit-steps-std-karpenter-node"

        kube.apply(gpu_workload("one", 1), kube=k)
        came = compute.watch_nodes(pool="gpu", until="ready", lab=lab)
        registered = next(e for e in came.events if e.what.startswith("registered"))
        initialized = next(e for e in came.events if e.what.startswith("initialized"))
        # AL2023 nodes advertise GPUs only once the device plugin runs on them: initialization waits for it.
        assert initialized.at > registered.at
        assert initialized.what == "initialized: 1 nvidia.com/gpu allocatable"
        kube.rollout_status("deployment/one", namespace=NS, kube=k, progress=False)
        plugin_pods = k.list("v1", "Pod", "kube-system", label_selector="app.kubernetes.io/name=nvidia-device-plugin")
        assert [p["spec"]["nodeName"] for p in plugin_pods.items] == [
            compute.nodes_table(lab=lab, pool="gpu").rows[0][0]
        ]

        again = compute.install_karpenter(lab=lab)
        assert again.method == "manifests"
        assert again.helm.startswith("helm upgrade --install karpenter oci://public.ecr.aws/karpenter/karpenter")
        assert all(item.action == "unchanged" for item in again.applied.items)  # type: ignore[union-attr]
