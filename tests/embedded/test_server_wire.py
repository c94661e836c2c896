"""Pure pieces of the embedded API server: paths, Status objects, discovery, tables, faults, TLS, OpenAPI."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509

from labkit.embedded.kube import discovery, openapi, responses, tables, tls
from labkit.embedded.kube.faults import FaultInjector
from labkit.embedded.kube.resources import ResourceRegistry
from labkit.embedded.kube.urls import ApiPath, GroupPath, parse_api_path
from labkit.errors import NotFound

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC).timestamp()


def ts(seconds_ago: float) -> str:
    return dt.datetime.fromtimestamp(NOW - seconds_ago, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1", ApiPath("", "v1")),
        ("/api/v1/pods", ApiPath("", "v1", "pods")),
        ("/api/v1/namespaces", ApiPath("", "v1", "namespaces")),
        ("/api/v1/namespaces/dev", ApiPath("", "v1", "namespaces", name="dev")),
        ("/api/v1/namespaces/dev/status", ApiPath("", "v1", "namespaces", name="dev", subresource="status")),
        ("/api/v1/namespaces/dev/finalize", ApiPath("", "v1", "namespaces", name="dev", subresource="finalize")),
        ("/api/v1/namespaces/dev/pods", ApiPath("", "v1", "pods", namespace="dev")),
        ("/api/v1/namespaces/dev/pods/web", ApiPath("", "v1", "pods", namespace="dev", name="web")),
        (
            "/api/v1/namespaces/dev/pods/web/log",
            ApiPath("", "v1", "pods", namespace="dev", name="web", subresource="log"),
        ),
        ("/api/v1/nodes/n1/status", ApiPath("", "v1", "nodes", name="n1", subresource="status")),
        ("/apis/apps", GroupPath("apps")),
        ("/apis/apps/v1", ApiPath("apps", "v1")),
        ("/apis/apps/v1/namespaces/a/deployments/d/scale", ApiPath("apps", "v1", "deployments", "a", "d", "scale")),
        ("/apis/example.com/v1/namespaces/status", ApiPath("example.com", "v1", "namespaces", name="status")),
        ("/api/v1/watch/namespaces/dev/pods", ApiPath("", "v1", "pods", namespace="dev", legacy_watch=True)),
        ("/apis/apps/v1/watch/deployments", ApiPath("apps", "v1", "deployments", legacy_watch=True)),
        ("/api/v1/namespaces/a/pods/b/c/d", None),
        ("/apis", None),
        ("/api/v1/watch", None),
    ],
)
def test_parse_api_path(path: str, expected: object) -> None:
    assert parse_api_path(path) == expected


# ----------------------------------------------------------------------------------------- responses


def test_status_from_not_found_names_the_object_like_kube() -> None:
    err = NotFound('pods "web" not found', "create it first", status=404, reason="NotFound")
    status = responses.status_from_error(err, name="web", group="", resource="pods", kind="Pod")
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "kind": "pods"},
        "code": 404,
    }


def test_invalid_status_names_the_kind_and_carries_causes() -> None:
    err = NotFound("bad", status=422, reason="Invalid")
    err.causes = [{"reason": "FieldValueRequired", "field": "spec.x"}]  # type: ignore[attr-defined]
    status = responses.status_from_error(err, name="d", group="apps", resource="deployments", kind="Deployment")
    assert status["details"] == {
        "name": "d",
        "group": "apps",
        "kind": "Deployment",
        "causes": [{"reason": "FieldValueRequired", "field": "spec.x"}],
    }
    assert status["code"] == 422


def test_list_envelope_and_watch_framing() -> None:
    env = responses.list_envelope("Pod", "v1", [], 42, continue_token="abc", remaining=3)
    assert env == {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3},
        "items": [],
    }
    line = responses.watch_event("ADDED", {"kind": "Pod"})
    assert line == b'{"type":"ADDED","object":{"kind":"Pod"}}\n'
    mark = responses.bookmark("Pod", "v1", 7, initial_events_end=True)
    assert mark["metadata"] == {"resourceVersion": "7", "annotations": {"k8s.io/initial-events-end": "true"}}


def test_unsupported_patch_status_lists_accepted_types() -> None:
    status = responses.unsupported_patch(["application/merge-patch+json"])
    assert status["code"] == 415
    assert status["reason"] == "UnsupportedMediaType"
    assert "application/merge-patch+json" in status["message"]


# ----------------------------------------------------------------------------------------- discovery


@pytest.fixture(scope="module")
def registry() -> ResourceRegistry:
    reg = ResourceRegistry()
    reg.register_crd(
        {
            "spec": {
                "group": "karpenter.sh",
                "names": {
                    "kind": "NodePool",
                    "plural": "nodepools",
                    "singular": "nodepool",
                    "categories": ["karpenter"],
                },
                "scope": "Cluster",
                "versions": [
                    {"name": "v1beta1", "served": True, "storage": False},
                    {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}},
                ],
            }
        }
    )
    return reg


def test_version_info_has_every_field() -> None:
    from kubernetes.client.models import VersionInfo

    info = discovery.version_info()
    assert set(info) == set(VersionInfo.attribute_map.values())
    assert info["gitVersion"].startswith(f"v{info['major']}.{info['minor']}.")


def test_core_resource_list_has_subresources_and_short_names(registry: ResourceRegistry) -> None:
    doc = discovery.api_resource_list(registry.all(), "", "v1")
    assert doc is not None
    assert doc["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"]
    assert by_name["pods"]["categories"] == ["all"]
    assert by_name["pods"]["singularName"] == "pod"
    assert "watch" in by_name["pods"]["verbs"]
    assert by_name["pods/log"] == {
        "name": "pods/log",
        "singularName": "",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get"],
    }
    assert by_name["pods/eviction"]["group"] == "policy"
    assert by_name["namespaces"]["namespaced"] is False


def test_apps_scale_subresource_is_autoscaling_scale(registry: ResourceRegistry) -> None:
    doc = discovery.api_resource_list(registry.all(), "apps", "v1")
    assert doc is not None
    scale = next(r for r in doc["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert discovery.api_resource_list(registry.all(), "apps", "v9") is None


def test_group_list_prefers_ga_versions_of_crds(registry: ResourceRegistry) -> None:
    groups = {g["name"]: g for g in discovery.api_group_list(registry.all())["groups"]}
    assert groups["karpenter.sh"]["preferredVersion"] == {"groupVersion": "karpenter.sh/v1", "version": "v1"}
    assert [v["version"] for v in groups["karpenter.sh"]["versions"]] == ["v1", "v1beta1"]
    assert "" not in groups
    assert discovery.api_group(registry.all(), "nope.example.com") is None


def test_version_priority_orders_like_kube() -> None:
    versions = ["v1alpha1", "v2beta1", "v1", "v1beta2", "v2", "foo"]
    assert sorted(versions, key=discovery.version_priority) == ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]


# ----------------------------------------------------------------------------------------- tables


def test_human_duration_matches_kubectl() -> None:
    cases = {
        5: "5s",
        119: "119s",
        125: "2m5s",
        600: "10m",
        3 * 3600 + 60: "3h1m",
        9 * 3600: "9h",
        50 * 3600: "2d2h",
        10 * 86400: "10d",
        3 * 365 * 86400: "3y",
    }
    for seconds, text in cases.items():
        assert tables.human_duration(seconds) == text


def test_pod_row_reports_ready_status_restarts_and_wide_columns() -> None:
    pod = {
        "metadata": {"name": "web-1", "creationTimestamp": ts(300)},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.5",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"finishedAt": ts(60)}},
                },
            ],
        },
    }
    cols, row = tables.PRINTERS["pods"]
    assert [c.name for c in cols if c.priority == 0] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert row(pod, NOW) == [
        "web-1",
        "1/2",
        "CrashLoopBackOff",
        "3 (60s ago)",
        "5m",
        "10.244.0.5",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_pending_and_terminating_pods() -> None:
    _, row = tables.PRINTERS["pods"]
    pending = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}
    assert row(pending, NOW)[1:3] == ["0/1", "Pending"]
    creating = {
        **pending,
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "a", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
            ],
        },
    }
    assert row(creating, NOW)[2] == "ContainerCreating"
    gone = {**pending, "metadata": {"name": "p", "deletionTimestamp": ts(1)}}
    assert row(gone, NOW)[2] == "Terminating"


def test_deployment_node_and_service_rows() -> None:
    _, dep = tables.PRINTERS["deployments.apps"]
    d = {
        "metadata": {"name": "api", "creationTimestamp": ts(90)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert dep(d, NOW) == ["api", "2/3", 3, 2, "90s", "c", "nginx:1", "app=api"]
    _, node = tables.PRINTERS["nodes"]
    n = {
        "metadata": {
            "name": "n1",
            "creationTimestamp": ts(7200),
            "labels": {"node-role.kubernetes.io/control-plane": ""},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        },
    }
    assert node(n, NOW)[:6] == ["n1", "Ready,SchedulingDisabled", "control-plane", "120m", "v1.33.1", "10.0.0.1"]
    _, svc = tables.PRINTERS["services"]
    s = {
        "metadata": {"name": "web", "creationTimestamp": ts(30)},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            "selector": {"app": "web"},
        },
    }
    assert svc(s, NOW) == ["web", "LoadBalancer", "10.96.0.10", "<pending>", "80:30080/TCP", "30s", "app=web"]


def test_crd_printer_columns_evaluate_jsonpath() -> None:
    cols, row = tables.crd_printer(
        [
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Zones", "type": "string", "jsonPath": ".spec.zones[*]", "priority": 1},
        ]
    )
    assert [c.name for c in cols] == ["Name", "Ready", "Nodes", "Age", "Zones"]
    obj = {
        "metadata": {"name": "gpu", "creationTimestamp": ts(45)},
        "spec": {"zones": ["a", "b"]},
        "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
    }
    assert row(obj, NOW) == ["gpu", "True", None, "45s", "a,b"]


def test_jsonpath_subset() -> None:
    doc = {"a": {"b.c": [1, 2], "list": [{"k": "x", "v": 1}, {"k": "y", "v": 2}]}}
    assert tables.jsonpath(doc, "{.a.b\\.c[1]}") == [2]
    assert tables.jsonpath(doc, ".a['b.c'][*]") == [1, 2]
    assert tables.jsonpath(doc, '.a.list[?(@.k!="x")].v') == [2]
    assert tables.jsonpath(doc, ".a.missing") == []
    with pytest.raises(tables.JsonPathError):
        tables.jsonpath(doc, ".a[?(@.k>1)]")


def test_table_object_carries_partial_metadata_and_headers_flag() -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": ts(10)}}
    doc = tables.table(tables.GENERIC, [obj], NOW, resource_version="9")
    assert doc["kind"] == "Table"
    assert doc["apiVersion"] == "meta.k8s.io/v1"
    assert doc["metadata"] == {"resourceVersion": "9"}
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Age"]
    assert doc["rows"] == [
        {
            "cells": ["x", "10s"],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]},
        }
    ]
    assert tables.table(tables.GENERIC, [obj], NOW, headers=False, include_object="None")["columnDefinitions"] == []


def test_wants_table_parses_kubectl_accept_header() -> None:
    kubectl = (
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
        "application/json"
    )
    assert tables.wants_table(kubectl)
    assert not tables.wants_table("application/json")
    assert not tables.wants_table("application/json;as=Table;v=v1;g=other.io")


# ----------------------------------------------------------------------------------------- faults


def test_fault_injector_is_deterministic_and_filtered() -> None:
    def run(seed: int) -> list[str | None]:
        inj = FaultInjector(seed)
        inj.add("500", 0.3, verbs=["get"], resources=["pods"])
        out = []
        for i in range(50):
            f = inj.decide("get" if i % 2 else "list", "pods")
            out.append(f.kind if f else None)
        return out

    first, again = run(7), run(7)
    assert first == again
    assert 0 < first.count("500") < 25
    assert all(k is None for i, k in enumerate(first) if i % 2 == 0)  # lists are never hit
    assert run(7) != run(8)


def test_fault_rule_times_and_resource_keys() -> None:
    inj = FaultInjector()
    rule = inj.add("429", resources=["deployments"], times=2, retry_after=3)
    hits = [inj.decide("create", "deployments.apps") for _ in range(4)]
    assert [h.kind if h else None for h in hits] == ["429", "429", None, None]
    assert hits[0] is not None and hits[0].retry_after == 3
    assert rule.fired == 2
    assert inj.decide("create", "pods") is None
    inj.clear()
    assert not inj.active
    with pytest.raises(ValueError, match="fault kind"):
        inj.add("503")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- TLS


def test_tls_material_is_cached_and_covers_loopback(tmp_path) -> None:
    first = tls.load_or_create(tmp_path / "pki")
    again = tls.load_or_create(tmp_path / "pki")
    assert first == again
    assert oct((tmp_path / "pki" / tls.CA_KEY_FILE).stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(first.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert next(str(ip) for ip in san.get_values_for_type(x509.IPAddress)) == "127.0.0.1"
    assert isinstance(first.server_context(), ssl.SSLContext)
    (tmp_path / "pki" / tls.CERT_FILE).write_bytes(b"garbage")
    renewed = tls.load_or_create(tmp_path / "pki")
    assert renewed.ca_pem == first.ca_pem
    assert renewed.cert_pem != first.cert_pem


# ----------------------------------------------------------------------------------------- OpenAPI


def test_openapi_document_declares_field_validation_for_kubectl(registry: ResourceRegistry) -> None:
    doc = openapi.group_version_document(registry.all(), "apps", "v1")
    assert doc is not None
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    schemas = doc["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    container = schemas["io.k8s.api.core.v1.Container"]
    assert "name" in container["required"]
    assert "image" in container["properties"]
    assert container["properties"]["image"]["description"].startswith("Container image name")
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas


def test_openapi_crd_document_and_index(registry: ResourceRegistry) -> None:
    cache = openapi.OpenApiCache()
    index = cache.index(registry.all())["paths"]
    assert index["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")
    assert "apis/karpenter.sh/v1" in index
    found = cache.document(registry.all(), "karpenter.sh", "v1")
    assert found is not None
    assert cache.document(registry.all(), "karpenter.sh", "v1") is found  # cached
    assert cache.document(registry.all(), "nope", "v1") is None


def test_unknown_fields_for_builtins_and_crds(registry: ResourceRegistry) -> None:
    types = registry.all()
    deployment = registry.get("deployments.apps")
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "labels": {"a": "b"}},
        "spec": {
            "replica": 2,
            "template": {
                "spec": {"containers": [{"name": "c", "imagee": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}
            },
        },
    }
    assert openapi.unknown_fields(body, deployment, types) == [
        "spec.replica",
        "spec.template.spec.containers[0].imagee",
    ]
    crd = ResourceRegistry()
    [rt] = crd.register_crd(
        {
            "spec": {
                "group": "x.io",
                "names": {"kind": "Thing", "plural": "things"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {
                                            "size": {"type": "integer"},
                                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                        },
                                    }
                                },
                            }
                        },
                    }
                ],
            }
        }
    )
    thing = {"metadata": {"name": "t", "bogus": 1}, "spec": {"size": 1, "sise": 2, "extra": {"anything": 1}}}
    assert openapi.unknown_fields(thing, rt, types) == ["metadata.bogus", "spec.sise"]
