"""Deployments through the official client: rollout to Ready, rolling update, scale, Recreate, deadline."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from twin_support import StartCluster, wait_for

from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.embedded.kube.controllers.deployment import pod_template_hash

SCALE = 300.0
NS = "default"


@pytest.fixture
def env(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.AppsV1Api, client.CoreV1Api]:
    c, api = start_cluster(profile="kind", time_scale=SCALE, seed=3, system_pods=False)
    return c, client.AppsV1Api(api), client.CoreV1Api(api)


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    container = {
        "name": "nginx",
        "image": image,
        "ports": [{"containerPort": 80, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 5},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
            **spec,
        },
    }


def rollout_complete(d: client.V1Deployment) -> bool:
    """``kubectl rollout status`` for a Deployment, as kubectl decides it."""
    status = d.status
    if d.metadata.generation > (status.observed_generation or 0):
        return False
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        raise AssertionError(f'deployment "{d.metadata.name}" exceeded its progress deadline')
    updated = status.updated_replicas or 0
    return (
        updated >= d.spec.replicas and (status.replicas or 0) <= updated and (status.available_replicas or 0) >= updated
    )


def test_rollout_to_ready(env: tuple[EmbeddedCluster, client.AppsV1Api, client.CoreV1Api]) -> None:
    cluster, apps, core = env
    apps.create_namespaced_deployment(NS, deployment())
    d = wait_for(
        lambda: (x := apps.read_namespaced_deployment("web", NS)) and rollout_complete(x) and x, what="rollout"
    )
    assert (d.status.replicas, d.status.ready_replicas, d.status.available_replicas) == (3, 3, 3)
    assert d.status.observed_generation == d.metadata.generation
    conditions = {c.type: c for c in d.status.conditions}
    assert conditions["Available"].reason == "MinimumReplicasAvailable"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    rs = apps.list_namespaced_replica_set(NS).items
    h = pod_template_hash(cluster.store.get("deployments.apps", NS, "web")["spec"]["template"])
    assert [r.metadata.name for r in rs] == [f"web-{h}"]
    assert rs[0].metadata.labels["pod-template-hash"] == h
    assert rs[0].metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs[0].metadata.owner_references[0].kind == "Deployment"
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert len(pods) == 3
    assert all(p.metadata.name.startswith(f"web-{h}-") and p.status.phase == "Running" for p in pods)
    events = [e.message for e in core.list_namespaced_event(NS).items if e.involved_object.kind == "Deployment"]
    assert f"Scaled up replica set web-{h} from 0 to 3" in events


def test_rolling_update_respects_surge_and_unavailability(
    env: tuple[EmbeddedCluster, client.AppsV1Api, client.CoreV1Api],
) -> None:
    cluster, apps, _ = env
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    apps.create_namespaced_deployment(NS, deployment(replicas=4, strategy=strategy))
    wait_for(lambda: rollout_complete(apps.read_namespaced_deployment("web", NS)), what="first rollout")
    apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}}
    )
    most, fewest_ready = 0, 99
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pods, _ = cluster.store.list("pods", NS, label_selector="app=web")
        most = max(most, len(pods))
        ready = sum(
            1 for p in pods for c in p["status"].get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"
        )
        fewest_ready = min(fewest_ready, ready)
        d = apps.read_namespaced_deployment("web", NS)
        if rollout_complete(d) and d.status.replicas == 4:
            break
        time.sleep(0.005)
    else:
        raise AssertionError("rolling update did not finish")
    assert most == 5  # replicas + maxSurge: the surge was used, never exceeded
    assert fewest_ready >= 4  # maxUnavailable 0
    rs = {
        r.metadata.annotations["deployment.kubernetes.io/revision"]: r
        for r in apps.list_namespaced_replica_set(NS).items
    }
    assert rs["1"].spec.replicas == 0 and rs["2"].spec.replicas == 4
    assert rs["2"].spec.template.spec.containers[0].image == "nginx:1.28"
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    images = {p.spec.containers[0].image for p in client.CoreV1Api(apps.api_client).list_namespaced_pod(NS).items}
    assert images == {"nginx:1.28"}


def test_scale_through_the_scale_subresource(env: tuple[EmbeddedCluster, client.AppsV1Api, client.CoreV1Api]) -> None:
    _, apps, core = env
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    wait_for(lambda: rollout_complete(apps.read_namespaced_deployment("web", NS)), what="rollout")
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    wait_for(lambda: (apps.read_namespaced_deployment("web", NS).status.available_replicas or 0) == 5, what="scale up")
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 1}})

    def scaled_down() -> bool:
        d = apps.read_namespaced_deployment("web", NS)
        return d.status.replicas == 1 and len(core.list_namespaced_pod(NS, label_selector="app=web").items) == 1

    wait_for(scaled_down, what="scale down")
    assert apps.read_namespaced_deployment_scale("web", NS).status.replicas == 1


def test_recreate_stops_old_pods_before_starting_new_ones(
    env: tuple[EmbeddedCluster, client.AppsV1Api, client.CoreV1Api],
) -> None:
    cluster, apps, _ = env
    apps.create_namespaced_deployment(NS, deployment(replicas=2, strategy={"type": "Recreate"}))
    wait_for(lambda: rollout_complete(apps.read_namespaced_deployment("web", NS)), what="rollout")
    apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}}
    )
    mixed = False
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        pods, _ = cluster.store.list("pods", NS, label_selector="app=web")
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        mixed = mixed or len(images) > 1
        if images == {"nginx:1.28"} and rollout_complete(apps.read_namespaced_deployment("web", NS)):
            break
        time.sleep(0.005)
    else:
        raise AssertionError("Recreate rollout did not finish")
    assert not mixed


def test_progress_deadline_exceeded_when_pods_never_get_ready(
    env: tuple[EmbeddedCluster, client.AppsV1Api, client.CoreV1Api],
) -> None:
    _, apps, _ = env
    body = deployment(replicas=1, progressDeadlineSeconds=60)
    # A GPU request on a cluster without GPUs: the pod stays Pending, the rollout cannot progress.
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    apps.create_namespaced_deployment(NS, body)

    def deadline_exceeded() -> Any:
        d = apps.read_namespaced_deployment("web", NS)
        return next(
            (
                c
                for c in d.status.conditions or []
                if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded"
            ),
            None,
        )

    cond = wait_for(deadline_exceeded, what="ProgressDeadlineExceeded")
    assert cond.status == "False"
    assert cond.message.endswith("has timed out progressing.")
    d = apps.read_namespaced_deployment("web", NS)
    assert {c.type: c.reason for c in d.status.conditions}["Available"] == "MinimumReplicasUnavailable"
    assert d.status.unavailable_replicas == 1
    assert d.status.ready_replicas is None  # zero counts are omitted, as a real API server does
