"""Service endpoints follow pod readiness (Endpoints and EndpointSlices, through the official client)."""

from __future__ import annotations

import pytest
from kubernetes import client
from twin_support import StartCluster, wait_for

from labkit.embedded.kube.cluster import EmbeddedCluster

SCALE = 300.0
NS = "default"


@pytest.fixture
def env(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.ApiClient]:
    return start_cluster(profile="kind", time_scale=SCALE, seed=5, system_pods=False)


def _app(api: client.ApiClient, replicas: int, ready_delay: int) -> None:
    container = {
        "name": "app",
        "image": "nginx:1.27",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": ready_delay},
    }
    client.AppsV1Api(api).create_namespaced_deployment(
        NS,
        {
            "metadata": {"name": "app"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "app"}},
                "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [container]}},
            },
        },
    )
    client.CoreV1Api(api).create_namespaced_service(
        NS,
        {
            "metadata": {"name": "app", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "app"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
        },
    )


def _split(ep: client.V1Endpoints) -> tuple[int, int]:
    subsets = ep.subsets or []
    ready = sum(len(s.addresses or []) for s in subsets)
    not_ready = sum(len(s.not_ready_addresses or []) for s in subsets)
    return ready, not_ready


def test_endpoints_follow_readiness(env: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    cluster, api = env
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    _app(api, replicas=2, ready_delay=90)
    # Pods with an IP but not ready yet are listed as not ready.
    wait_for(
        lambda: _split(core.read_namespaced_endpoints("app", NS)) == (0, 2),
        what="two notReadyAddresses",
        missing_ok=True,
    )
    wait_for(
        lambda: _split(core.read_namespaced_endpoints("app", NS)) == (2, 0), what="two ready addresses", missing_ok=True
    )
    ep = core.read_namespaced_endpoints("app", NS)
    assert ep.subsets[0].ports[0].port == 8080 and ep.subsets[0].ports[0].name == "web"
    assert ep.metadata.labels["team"] == "a"
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(NS, label_selector="app=app").items}
    assert {a.target_ref.name for a in ep.subsets[0].addresses} == set(pods)
    assert {a.ip for a in ep.subsets[0].addresses} == {p.status.pod_ip for p in pods.values()}

    slices = discovery.list_namespaced_endpoint_slice(NS, label_selector="kubernetes.io/service-name=app").items
    assert len(slices) == 1
    s = slices[0]
    assert s.metadata.owner_references[0].kind == "Service"
    assert s.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert [(p.name, p.port) for p in s.ports] == [("web", 8080)]
    assert all(e.conditions.ready for e in s.endpoints)

    # A killed container restarts and is not ready until its readiness delay has passed again.
    victim = sorted(pods)[0]
    cluster.kill_container(NS, victim)
    wait_for(
        lambda: _split(core.read_namespaced_endpoints("app", NS)) == (1, 1),
        what="one address not ready",
        missing_ok=True,
    )
    slice_now = discovery.read_namespaced_endpoint_slice(s.metadata.name, NS)
    assert sorted(e.conditions.ready for e in slice_now.endpoints) == [False, True]
    wait_for(
        lambda: _split(core.read_namespaced_endpoints("app", NS)) == (2, 0), what="back to two ready", missing_ok=True
    )
    pod = core.read_namespaced_pod(victim, NS)
    assert pod.status.container_statuses[0].restart_count == 1
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 137

    # Deleting a pod takes it out at once; its replacement joins when ready.
    core.delete_namespaced_pod(victim, NS)
    wait_for(
        lambda: victim not in {a.target_ref.name for s in core.read_namespaced_endpoints("app", NS).subsets or []
                               for a in (s.addresses or []) + (s.not_ready_addresses or [])},
        what="deleted pod gone from endpoints",
        missing_ok=True,
    )  # fmt: skip
    wait_for(
        lambda: _split(core.read_namespaced_endpoints("app", NS)) == (2, 0), what="replacement ready", missing_ok=True
    )


def test_service_without_ready_pods_and_selector_changes(env: tuple[EmbeddedCluster, client.ApiClient]) -> None:
    _, api = env
    core = client.CoreV1Api(api)
    _app(api, replicas=1, ready_delay=0)
    wait_for(lambda: _split(core.read_namespaced_endpoints("app", NS)) == (1, 0), what="ready address", missing_ok=True)
    core.patch_namespaced_service("app", NS, {"spec": {"selector": {"app": "nothing"}}})
    wait_for(lambda: core.read_namespaced_endpoints("app", NS).subsets is None, what="no subsets", missing_ok=True)
    core.delete_namespaced_service("app", NS)
    wait_for(
        lambda: not core.list_namespaced_endpoints(NS, field_selector="metadata.name=app").items,
        what="gone",
        missing_ok=True,
    )
