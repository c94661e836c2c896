"""StatefulSets, DaemonSets, HPAs and volume claims through the official client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from twin_support import StartCluster, wait_for

from labkit.embedded.kube.cluster import EmbeddedCluster

SCALE = 300.0
NS = "default"


@pytest.fixture
def env(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.ApiClient]:
    return start_cluster(profile="kind", time_scale=SCALE, seed=13)


def _template(app: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "nginx:1.27", "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5}}
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [container], **spec}}


def test_statefulset_creates_ordered_pods_with_bound_claims(env: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    cluster, api = env
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    sts = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": _template("db"),
            "volumeClaimTemplates": [claim],
        },
    }
    apps.create_namespaced_stateful_set(NS, sts)
    created_order: list[str] = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        for p in cluster.store.list("pods", NS, label_selector="app=db")[0]:
            if p["metadata"]["name"] not in created_order:
                created_order.append(p["metadata"]["name"])
        s = apps.read_namespaced_stateful_set("db", NS)
        if (s.status.ready_replicas or 0) == 3:
            break
        time.sleep(0.005)
    else:
        raise AssertionError("statefulset not ready")
    assert created_order == ["db-0", "db-1", "db-2"]
    assert s.status.current_revision == s.status.update_revision and s.status.updated_replicas == 3
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(NS, label_selector="app=db").items}
    assert pods["db-1"].spec.hostname == "db-1" and pods["db-1"].spec.subdomain == "db"
    assert pods["db-1"].metadata.labels["apps.kubernetes.io/pod-index"] == "1"
    pvcs = wait_for(
        lambda: (
            [c for c in core.list_namespaced_persistent_volume_claim(NS).items if c.status.phase == "Bound"]
            if len(core.list_namespaced_persistent_volume_claim(NS).items) == 3
            else None
        ),
        what="claims bound",
    )
    assert sorted(c.metadata.name for c in pvcs) == ["data-db-0", "data-db-1", "data-db-2"]
    assert all(c.spec.storage_class_name == "standard" for c in pvcs)  # kind's default class
    pv = core.read_persistent_volume(pvcs[0].spec.volume_name)
    assert pv.spec.claim_ref.name == pvcs[0].metadata.name and pv.status.phase == "Bound"

    # Rolling update: pods are replaced from the highest ordinal down.
    apps.patch_namespaced_stateful_set(
        "db", NS, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}}
    )
    s = wait_for(
        lambda: (x := apps.read_namespaced_stateful_set("db", NS)).status.observed_generation == x.metadata.generation
        and x.status.current_revision == x.status.update_revision
        and x.status.updated_replicas == 3 and (x.status.ready_replicas or 0) == 3 and x,
        what="rolling update",
    )  # fmt: skip
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(NS, label_selector="app=db").items}
    assert images == {"nginx:1.28"}
    revisions = apps.list_namespaced_controller_revision(NS).items
    assert len(revisions) == 2 and s.status.update_revision in {r.metadata.name for r in revisions}


def test_daemonset_runs_one_pod_per_eligible_node(env: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    _, api = env
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    spec = {"selector": {"matchLabels": {"app": "agent"}}, "template": _template("agent")}
    apps.create_namespaced_daemon_set(NS, {"metadata": {"name": "agent"}, "spec": spec})
    ds = wait_for(
        lambda: (x := apps.read_namespaced_daemon_set("agent", NS)).status.number_ready == 2 and x, what="2 ready"
    )
    assert ds.status.desired_number_scheduled == 2  # the control-plane taint is not tolerated
    nodes = sorted(p.spec.node_name for p in core.list_namespaced_pod(NS, label_selector="app=agent").items)
    assert nodes == ["labkit-worker", "labkit-worker2"]
    tolerate_all = _template("agent", tolerations=[{"operator": "Exists"}])
    apps.patch_namespaced_daemon_set("agent", NS, {"spec": {"template": tolerate_all}})
    ds = wait_for(
        lambda: (x := apps.read_namespaced_daemon_set("agent", NS)).status.number_ready == 3
        and x.status.updated_number_scheduled == 3 and x,
        what="3 ready",
    )  # fmt: skip
    assert ds.status.desired_number_scheduled == 3


def test_hpa_keeps_the_target_within_bounds_without_metrics(env: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    _, api = env
    apps, autoscaling = client.AppsV1Api(api), client.AutoscalingV2Api(api)
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": _template("web")}
    apps.create_namespaced_deployment(NS, {"metadata": {"name": "web"}, "spec": spec})
    cpu_target = {"type": "Utilization", "averageUtilization": 60}
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu_target}}],
            },
        },
    )  # fmt: skip
    wait_for(lambda: apps.read_namespaced_deployment("web", NS).spec.replicas == 2, what="scaled to minReplicas")
    hpa = wait_for(
        lambda: (x := autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS)).status.current_replicas == 2
        and x,
        what="hpa status",
    )  # fmt: skip
    conditions = {c.type: c for c in hpa.status.conditions}
    assert conditions["ScalingActive"].status == "False"
    assert conditions["ScalingActive"].reason == "FailedGetResourceMetric"
    assert "failed to get cpu utilization" in conditions["ScalingActive"].message


def test_claim_without_a_class_stays_pending(env: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    _, api = env
    core = client.CoreV1Api(api)
    claim = {
        "metadata": {"name": "manual"},
        "spec": {
            "storageClassName": "",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    core.create_namespaced_persistent_volume_claim(NS, claim)
    reasons = wait_for(
        lambda: [e.reason for e in core.list_namespaced_event(NS).items if e.involved_object.name == "manual"],
        what="claim event",
    )
    assert reasons == ["FailedBinding"]
    assert core.read_namespaced_persistent_volume_claim("manual", NS).status.phase == "Pending"
