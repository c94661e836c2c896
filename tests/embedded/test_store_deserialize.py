"""Every kind the store emits deserializes into the official client's typed models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient

from labkit.embedded.kube.resources import BUILTINS
from labkit.embedded.kube.store import Store

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.27",
                "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "A", "value": "1"}],
                "resources": {"requests": {"cpu": "100m"}},
            }
        ]
    },
}
SELECTOR = {"matchLabels": {"app": "web"}}
JOB_TEMPLATE = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}

#: One realistic object per built-in type: (store key, model name, body, status written afterwards).
SAMPLES: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
    "namespaces": ("V1Namespace", {"metadata": {"name": "team"}}, None),
    "nodes": (
        "V1Node",
        {
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
        },
        {
            "capacity": {"cpu": "4", "nvidia.com/gpu": "1"},
            "allocatable": {"cpu": "4"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "architecture": "amd64", "operatingSystem": "linux"},
        },
    ),
    "pods": (
        "V1Pod",
        {"metadata": {"name": "web-1", "labels": {"app": "web"}}, "spec": TEMPLATE["spec"]},
        {
            "phase": "Running",
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "image": "nginx:1.27",
                    "imageID": "docker.io/library/nginx@sha256:0",
                    "started": True,
                    "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                }
            ],
        },
    ),
    "services": (
        "V1Service",
        {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
        None,
    ),
    "endpoints": (
        "V1Endpoints",
        {"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]},
        None,
    ),
    "configmaps": ("V1ConfigMap", {"metadata": {"name": "cfg"}, "data": {"a": "1"}}, None),
    "secrets": ("V1Secret", {"metadata": {"name": "s"}, "stringData": {"token": "x"}}, None),
    "serviceaccounts": ("V1ServiceAccount", {"metadata": {"name": "robot"}}, None),
    "persistentvolumeclaims": (
        "V1PersistentVolumeClaim",
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
        {"phase": "Bound"},
    ),
    "persistentvolumes": (
        "V1PersistentVolume",
        {
            "metadata": {"name": "pv-1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv"}},
        },
        {"phase": "Available"},
    ),
    "events": (
        "CoreV1Event",
        {
            "metadata": {"name": "web-1.1"},
            "involvedObject": {"kind": "Pod", "name": "web-1"},
            "reason": "Scheduled",
            "message": "assigned",
        },
        None,
    ),
    "resourcequotas": (
        "V1ResourceQuota",
        {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}},
        {"hard": {"pods": "10"}, "used": {"pods": "1"}},
    ),
    "limitranges": (
        "V1LimitRange",
        {"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]}},
        None,
    ),
    "deployments.apps": (
        "V1Deployment",
        {"metadata": {"name": "web"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}},
        {
            "replicas": 1,
            "readyReplicas": 1,
            "observedGeneration": 1,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    ),
    "replicasets.apps": (
        "V1ReplicaSet",
        {"metadata": {"name": "web-1"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}},
        {"replicas": 1, "readyReplicas": 1},
    ),
    "statefulsets.apps": (
        "V1StatefulSet",
        {
            "metadata": {"name": "db"},
            "spec": {
                "selector": SELECTOR,
                "template": TEMPLATE,
                "serviceName": "db",
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    }
                ],
            },
        },
        {"replicas": 1, "readyReplicas": 1},
    ),
    "daemonsets.apps": (
        "V1DaemonSet",
        {"metadata": {"name": "agent"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}},
        {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 1},
    ),
    "controllerrevisions.apps": (
        "V1ControllerRevision",
        {"metadata": {"name": "db-1"}, "revision": 1, "data": {"spec": {}}},
        None,
    ),
    "jobs.batch": (
        "V1Job",
        {"metadata": {"name": "once"}, "spec": {"template": JOB_TEMPLATE}},
        {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    ),
    "cronjobs.batch": (
        "V1CronJob",
        {
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
        },
        None,
    ),
    "horizontalpodautoscalers.autoscaling": (
        "V2HorizontalPodAutoscaler",
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
            },
        },
        {"currentReplicas": 1, "desiredReplicas": 2},
    ),
    "endpointslices.discovery.k8s.io": (
        "V1EndpointSlice",
        {
            "metadata": {"name": "web-abc"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
            "ports": [{"port": 80, "name": ""}],
        },
        None,
    ),
    "roles.rbac.authorization.k8s.io": (
        "V1Role",
        {
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        None,
    ),
    "rolebindings.rbac.authorization.k8s.io": (
        "V1RoleBinding",
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
        },
        None,
    ),
    "clusterroles.rbac.authorization.k8s.io": (
        "V1ClusterRole",
        {"metadata": {"name": "viewer"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}]},
        None,
    ),
    "clusterrolebindings.rbac.authorization.k8s.io": (
        "V1ClusterRoleBinding",
        {
            "metadata": {"name": "viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "viewer"},
            "subjects": [{"kind": "User", "name": "me", "apiGroup": "rbac.authorization.k8s.io"}],
        },
        None,
    ),
    "networkpolicies.networking.k8s.io": (
        "V1NetworkPolicy",
        {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}},
        None,
    ),
    "ingresses.networking.k8s.io": (
        "V1Ingress",
        {
            "metadata": {"name": "web"},
            "spec": {
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        }
                    }
                ]
            },
        },
        {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}},
    ),
    "ingressclasses.networking.k8s.io": (
        "V1IngressClass",
        {"metadata": {"name": "alb"}, "spec": {"controller": "ingress.k8s.aws/alb"}},
        None,
    ),
    "poddisruptionbudgets.policy": (
        "V1PodDisruptionBudget",
        {"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": SELECTOR}},
        None,
    ),
    "events.events.k8s.io": (
        "EventsV1Event",
        {
            "metadata": {"name": "web-1.2"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "labkit",
            "reportingInstance": "labkit-1",
            "action": "Scheduling",
            "reason": "Scheduled",
            "regarding": {"kind": "Pod", "name": "web-1"},
            "type": "Normal",
        },
        None,
    ),
    "leases.coordination.k8s.io": (
        "V1Lease",
        {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}},
        None,
    ),
    "priorityclasses.scheduling.k8s.io": ("V1PriorityClass", {"metadata": {"name": "high"}, "value": 1000}, None),
    "storageclasses.storage.k8s.io": (
        "V1StorageClass",
        {"metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com"},
        None,
    ),
    "customresourcedefinitions.apiextensions.k8s.io": (
        "V1CustomResourceDefinition",
        {
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [
                    {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
                ],
            },
        },
        None,
    ),
}


class _Response:
    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def deserialize(obj: Any, model: str) -> Any:
    return ApiClient().deserialize(_Response(obj), model)


def test_every_builtin_has_a_sample() -> None:
    assert {rt.key for rt in BUILTINS} == set(SAMPLES)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_kind_deserializes(store: Store, key: str) -> None:
    model, body, status = SAMPLES[key]
    rt = store.registry.get(key)
    ns = "default" if rt.namespaced else None
    created = store.create(key, body, namespace=ns, field_manager="test")
    assert deserialize(created, model).metadata.name == body["metadata"]["name"]
    latest = created
    if status is not None:
        sub = "status" if rt.has_status else None
        latest = store.patch(key, ns, body["metadata"]["name"], {"status": status}, "merge", subresource=sub)
        typed = deserialize(latest, model)
        assert typed.status is not None
    listed, rv = store.list(key, ns)
    wrapper = {
        "apiVersion": rt.api_version,
        "kind": rt.list_kind,
        "metadata": {"resourceVersion": str(rv)},
        "items": listed,
    }
    list_model = model.replace("CoreV1Event", "CoreV1EventList").replace("EventsV1Event", "EventsV1EventList")
    if not list_model.endswith("List"):
        list_model += "List"
    typed_list = deserialize(wrapper, list_model)
    assert any(item.metadata.name == body["metadata"]["name"] for item in typed_list.items)


def test_typed_fields_survive_the_round_trip(store: Store) -> None:
    _, body, status = SAMPLES["pods"]
    store.create("pods", body, namespace="default")
    pod = store.patch("pods", "default", "web-1", {"status": status}, "merge", subresource="status")
    typed = deserialize(pod, "V1Pod")
    container = typed.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert container.readiness_probe.period_seconds == 10
    assert container.readiness_probe.http_get.scheme == "HTTP"
    assert typed.status.container_statuses[0].ready is True
    assert typed.metadata.creation_timestamp is not None
    assert typed.metadata.managed_fields[0].manager


def test_scale_and_watch_event_objects_deserialize(store: Store) -> None:
    _, body, _ = SAMPLES["deployments.apps"]
    store.create("deployments.apps", body, namespace="default")
    scale = store.get("deployments.apps", "default", "web", subresource="scale")
    assert deserialize(scale, "V1Scale").spec.replicas == 1
    watch = store.watch("deployments.apps", "default")
    store.delete("deployments.apps", "default", "web")
    ev = watch.get(timeout=1)
    assert ev is not None
    assert deserialize(ev.obj, "V1Deployment").metadata.name == "web"


def test_recorded_events_deserialize(store: Store) -> None:
    _, body, _ = SAMPLES["pods"]
    pod = store.create("pods", body, namespace="default")
    store.record_event(pod, "FailedScheduling", "0/1 nodes are available", type="Warning", component="scheduler")
    event = store.list("events", "default")[0][0]
    typed = deserialize(event, "CoreV1Event")
    assert typed.involved_object.name == "web-1"
    assert typed.count == 1
