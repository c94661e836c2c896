"""Conformance of the embedded API server through the official ``kubernetes`` client (typed APIs over HTTPS).

CRUD, errors as Status objects, selectors, pagination, every patch type, server-side apply,
subresources (status, scale, log, binding, eviction), CRDs, garbage collection, namespace
lifecycle and field validation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from twin_support import api_server


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with api_server(tmp_path_factory.mktemp("apiserver")) as (store, server, api):
        yield SimpleNamespace(
            store=store,
            server=server,
            api=api,
            core=client.CoreV1Api(api),
            apps=client.AppsV1Api(api),
            custom=client.CustomObjectsApi(api),
            ext=client.ApiextensionsV1Api(api),
        )


@pytest.fixture
def ns(kube: SimpleNamespace) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.core.create_namespace({"metadata": {"name": name}})
    return name


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


def raw(kube: SimpleNamespace, method: str, path: str, body: object = None, headers: dict | None = None) -> tuple:
    """A request through the client's own connection pool: (status, headers, decoded body)."""
    url = kube.api.configuration.host + path
    hdrs = {"Authorization": kube.api.configuration.api_key["BearerToken"], **(headers or {})}
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    resp = kube.api.rest_client.pool_manager.request(method, url, body=data, headers=hdrs)
    text = resp.data.decode()
    ctype = resp.headers.get("Content-Type", "")
    return resp.status, resp.headers, json.loads(text) if "json" in ctype else text


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.27") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def pod(name: str, labels: dict | None = None, containers: tuple[str, ...] = ("main",)) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": c, "image": "busybox:1.36"} for c in containers]},
    }


# --------------------------------------------------------------------------------------------- CRUD and errors


def test_configmap_crud_round_trip(kube: SimpleNamespace, ns: str) -> None:
    created = kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert created.metadata.uid
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    got = kube.core.read_namespaced_config_map("cfg", ns)
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    replaced = kube.core.replace_namespaced_config_map("cfg", ns, got)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    listed = kube.core.list_namespaced_config_map(ns)
    assert [c.metadata.name for c in listed.items] == ["cfg"]
    assert int(listed.metadata.resource_version) >= int(replaced.metadata.resource_version)
    status = kube.core.delete_namespaced_config_map("cfg", ns)
    assert status.status == "Success"
    assert status.details.name == "cfg"
    with pytest.raises(ApiException) as err:
        kube.core.read_namespaced_config_map("cfg", ns)
    assert err.value.status == 404


def test_errors_are_status_objects_like_kube(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    body = status_of(err.value)
    assert err.value.status == 409
    assert body["kind"] == "Status"
    assert body["reason"] == "AlreadyExists"
    assert body["details"]["name"] == "s"
    assert body["details"]["kind"] == "secrets"
    with pytest.raises(ApiException) as err:
        kube.apps.read_namespaced_deployment("missing", ns)
    body = status_of(err.value)
    assert (err.value.status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'deployments.apps "missing" not found',
    )
    assert body["details"] == {"name": "missing", "group": "apps", "kind": "deployments"}


def test_stale_resource_version_conflicts(kube: SimpleNamespace, ns: str) -> None:
    first = kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"v": "1"}})
    kube.core.patch_namespaced_config_map("c", ns, {"data": {"v": "2"}})
    first.data["v"] = "3"
    with pytest.raises(ApiException) as err:
        kube.core.replace_namespaced_config_map("c", ns, first)
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(err.value)["message"]


def test_missing_namespace_is_404_and_secret_string_data_is_encoded(kube: SimpleNamespace, ns: str) -> None:
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert err.value.status == 404
    assert status_of(err.value)["details"]["kind"] == "namespaces"
    secret = kube.core.create_namespaced_secret(ns, {"metadata": {"name": "tok"}, "stringData": {"user": "me"}})
    assert secret.data == {"user": "bWU="}
    assert secret.string_data is None


def test_generate_name_and_dry_run(kube: SimpleNamespace, ns: str) -> None:
    made = kube.core.create_namespaced_config_map(ns, {"metadata": {"generateName": "job-"}})
    assert made.metadata.name.startswith("job-")
    assert len(made.metadata.name) > len("job-")
    dry = kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "ghost"}}, dry_run="All")
    assert dry.metadata.name == "ghost"
    with pytest.raises(ApiException):
        kube.core.read_namespaced_config_map("ghost", ns)
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}}, dry_run="Some")
    assert err.value.status == 400


def test_service_gets_a_cluster_ip_and_delete_returns_the_object(kube: SimpleNamespace, ns: str) -> None:
    svc = kube.core.create_namespaced_service(
        ns, {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    )
    assert svc.spec.cluster_ip.startswith("10.")
    assert svc.spec.cluster_ips == [svc.spec.cluster_ip]
    deleted = kube.core.delete_namespaced_service("web", ns)
    assert deleted.metadata.name == "web"  # services answer DELETE with the object, as kube-apiserver does
    assert deleted.kind == "Service"


def test_cluster_scoped_resources_and_wrong_scope_paths(kube: SimpleNamespace) -> None:
    sched = client.SchedulingV1Api(kube.api)
    name = f"pc-{uuid.uuid4().hex[:6]}"
    sched.create_priority_class({"metadata": {"name": name}, "value": 1000})
    assert sched.read_priority_class(name).value == 1000
    assert name in [p.metadata.name for p in sched.list_priority_class().items]
    status, _, body = raw(kube, "GET", "/api/v1/namespaces/default/nodes")
    assert status == 404
    assert body["reason"] == "NotFound"
    status, _, body = raw(kube, "GET", "/api/v1/pods/some-pod")
    assert status == 404
    status, _, _ = raw(kube, "GET", "/apis/nothing.example.com/v1/widgets")
    assert status == 404
    status, _, body = raw(kube, "DELETE", "/api/v1/namespaces")
    assert status == 405
    assert body["reason"] == "MethodNotAllowed"


def test_delete_collection(kube: SimpleNamespace, ns: str) -> None:
    for i in range(3):
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{i}", "labels": {"tier": str(i % 2)}}})
    kube.core.delete_collection_namespaced_config_map(ns, label_selector="tier=0")
    assert sorted(c.metadata.name for c in kube.core.list_namespaced_config_map(ns).items) == ["c1"]


# --------------------------------------------------------------------------------------------- selectors, paging


def test_label_selectors_every_operator(kube: SimpleNamespace, ns: str) -> None:
    specs = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "web"}, "c": {"env": "test"}, "d": {}}
    for name, labels in specs.items():
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return sorted(c.metadata.name for c in kube.core.list_namespaced_config_map(ns, label_selector=selector).items)

    assert names("env=prod") == ["a"]
    assert names("env==prod") == ["a"]
    assert names("env!=prod") == ["b", "c", "d"]
    assert names("env in (dev,test)") == ["b", "c"]
    assert names("env notin (dev,test)") == ["a", "d"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c", "d"]
    assert names("tier=web,env=dev") == ["b"]
    with pytest.raises(ApiException) as err:
        names("env in (")
    assert err.value.status == 400


def test_field_selectors(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_pod(ns, pod("p1"))
    kube.core.create_namespaced_pod(ns, pod("p2"))
    kube.store.bind_pod(ns, "p2", "node-a")
    by_name = kube.core.list_namespaced_pod(ns, field_selector="metadata.name=p1").items
    assert [p.metadata.name for p in by_name] == ["p1"]
    on_node = kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName=node-a,metadata.namespace={ns}")
    assert [p.metadata.name for p in on_node.items] == ["p2"]
    pending = kube.core.list_namespaced_pod(ns, field_selector="status.phase=Pending").items
    assert sorted(p.metadata.name for p in pending) == ["p1", "p2"]
    unbound = kube.core.list_namespaced_pod(ns, field_selector="spec.nodeName=").items
    assert [p.metadata.name for p in unbound] == ["p1"]


def test_limit_and_continue(kube: SimpleNamespace, ns: str) -> None:
    for i in range(5):
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": f"item-{i}"}})
    first = kube.core.list_namespaced_config_map(ns, limit=2)
    assert [c.metadata.name for c in first.items] == ["item-0", "item-1"]
    assert first.metadata.remaining_item_count == 3
    second = kube.core.list_namespaced_config_map(ns, limit=2, _continue=first.metadata._continue)
    assert [c.metadata.name for c in second.items] == ["item-2", "item-3"]
    third = kube.core.list_namespaced_config_map(ns, limit=2, _continue=second.metadata._continue)
    assert [c.metadata.name for c in third.items] == ["item-4"]
    assert third.metadata._continue is None


# --------------------------------------------------------------------------------------------- patch types


def test_every_patch_type_on_a_deployment(kube: SimpleNamespace, ns: str) -> None:
    kube.apps.create_namespaced_deployment(ns, deployment("api"))
    # JSON patch (RFC 6902)
    kube.api.set_default_header("Content-Type", "application/json-patch+json")
    patched = kube.apps.patch_namespaced_deployment(
        "api", ns, [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    )
    assert patched.spec.replicas == 4
    kube.api.default_headers.pop("Content-Type")
    # merge patch (the client picks it for a dict unless told otherwise) on a label
    patched = kube.apps.patch_namespaced_deployment(
        "api", ns, {"metadata": {"labels": {"team": "ml"}}}, _content_type="application/merge-patch+json"
    )
    assert patched.metadata.labels == {"app": "api", "team": "ml"}
    # strategic merge: containers merge by name
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1"}]}}}}
    patched = kube.apps.patch_namespaced_deployment(
        "api", ns, sidecar, _content_type="application/strategic-merge-patch+json"
    )
    assert sorted(c.name for c in patched.spec.template.spec.containers) == ["proxy", "web"]
    drop = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "$patch": "delete"}]}}}}
    patched = kube.apps.patch_namespaced_deployment(
        "api", ns, drop, _content_type="application/strategic-merge-patch+json"
    )
    assert [c.name for c in patched.spec.template.spec.containers] == ["web"]
    # a merge patch replaces the list instead
    patched = kube.apps.patch_namespaced_deployment("api", ns, sidecar, _content_type="application/merge-patch+json")
    assert [c.name for c in patched.spec.template.spec.containers] == ["proxy"]
    assert patched.metadata.generation > 1


def test_unknown_patch_content_type_is_415(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    status, _, body = raw(
        kube, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/c", {"data": {}}, {"Content-Type": "application/xml"}
    )
    assert status == 415
    assert body["reason"] == "UnsupportedMediaType"
    assert "application/strategic-merge-patch+json" in body["message"]


def test_server_side_apply_creates_updates_and_detects_conflicts(kube: SimpleNamespace, ns: str) -> None:
    manifest = deployment("ssa", replicas=1)
    created = kube.apps.patch_namespaced_deployment(
        "ssa", ns, manifest, field_manager="labkit", _content_type="application/apply-patch+yaml"
    )
    assert created.spec.replicas == 1
    managers = {m.manager: m for m in created.metadata.managed_fields}
    assert managers["labkit"].operation == "Apply"
    status, _, _ = raw(
        kube,
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/ssa2?fieldManager=labkit",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa2\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n"
        "    spec: {containers: [{name: c, image: busybox}]}\n",
        {"Content-Type": "application/apply-patch+yaml"},
    )
    assert status == 201  # apply of a missing object creates it, and says so
    # another manager changing an applied field conflicts...
    kube.apps.patch_namespaced_deployment("ssa", ns, {"spec": {"replicas": 5}}, field_manager="hpa")
    manifest["spec"]["replicas"] = 2
    with pytest.raises(ApiException) as err:
        kube.apps.patch_namespaced_deployment(
            "ssa", ns, manifest, field_manager="labkit", _content_type="application/apply-patch+yaml"
        )
    assert err.value.status == 409
    assert "conflict" in status_of(err.value)["message"].lower()
    # ...unless forced
    forced = kube.apps.patch_namespaced_deployment(
        "ssa", ns, manifest, field_manager="labkit", force=True, _content_type="application/apply-patch+yaml"
    )
    assert forced.spec.replicas == 2
    with pytest.raises(ApiException) as err:
        kube.apps.patch_namespaced_deployment("ssa", ns, manifest, _content_type="application/apply-patch+yaml")
    assert err.value.status == 422


# --------------------------------------------------------------------------------------------- subresources


def test_status_subresource_separates_spec_and_status(kube: SimpleNamespace, ns: str) -> None:
    kube.apps.create_namespaced_deployment(ns, deployment("st"))
    body = kube.apps.read_namespaced_deployment("st", ns)
    body.status = client.V1DeploymentStatus(ready_replicas=2, replicas=2)
    body.spec.replicas = 7
    after = kube.apps.replace_namespaced_deployment_status("st", ns, body)
    assert after.status.ready_replicas == 2
    assert after.spec.replicas == 2  # a status write leaves spec alone
    main = kube.apps.read_namespaced_deployment("st", ns)
    main.status.ready_replicas = 0
    main.spec.replicas = 3
    after = kube.apps.replace_namespaced_deployment("st", ns, main)
    assert (after.spec.replicas, after.status.ready_replicas) == (3, 2)  # a main write leaves status alone
    got = kube.apps.read_namespaced_deployment_status("st", ns)
    assert got.status.ready_replicas == 2


def test_scale_subresource(kube: SimpleNamespace, ns: str) -> None:
    kube.apps.create_namespaced_deployment(ns, deployment("sc", replicas=2))
    scale = kube.apps.read_namespaced_deployment_scale("sc", ns)
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=sc"
    patched = kube.apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    assert kube.apps.read_namespaced_deployment("sc", ns).spec.replicas == 5
    scale = kube.apps.read_namespaced_deployment_scale("sc", ns)
    scale.spec.replicas = 1
    assert kube.apps.replace_namespaced_deployment_scale("sc", ns, scale).spec.replicas == 1
    scale.spec.replicas = 4  # the resourceVersion is now stale
    with pytest.raises(ApiException) as err:
        kube.apps.replace_namespaced_deployment_scale("sc", ns, scale)
    assert err.value.status == 409
    status, _, _ = raw(kube, "GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets/none/scale")
    assert status == 404


def read_log(kube: SimpleNamespace, name: str, ns: str, **kwargs: object) -> str:
    # kubernetes 36 returns the repr of the bytes from read_namespaced_pod_log (kubernetes-client/python#2596):
    # read the raw body instead, as the kit's kube layer must.
    return kube.core.read_namespaced_pod_log(name, ns, _preload_content=False, **kwargs).data.decode()


def test_pod_log_tail_container_and_timestamps(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_pod(ns, pod("logger", containers=("app", "sidecar")))
    for i in range(5):
        kube.store.append_log(ns, "logger", "app", f"line {i}")
    kube.store.append_log(ns, "logger", "sidecar", "side")
    assert read_log(kube, "logger", ns, container="app") == "".join(f"line {i}\n" for i in range(5))
    assert read_log(kube, "logger", ns, container="app", tail_lines=2) == "line 3\nline 4\n"
    stamped = read_log(kube, "logger", ns, container="sidecar", timestamps=True)
    assert stamped.endswith("Z side\n")
    assert read_log(kube, "logger", ns, container="app", since_seconds=3600).count("\n") == 5
    with pytest.raises(ApiException) as err:
        read_log(kube, "logger", ns)
    assert err.value.status == 400
    assert "a container name must be specified" in status_of(err.value)["message"]


def test_pod_binding_and_eviction(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_pod(ns, pod("b"))
    kube.core.create_namespaced_pod_binding(
        "b", ns, {"metadata": {"name": "b"}, "target": {"kind": "Node", "name": "node-1"}}, _preload_content=False
    )
    assert kube.core.read_namespaced_pod("b", ns).spec.node_name == "node-1"
    kube.core.create_namespaced_pod_eviction("b", ns, {"metadata": {"name": "b", "namespace": ns}})
    with pytest.raises(ApiException):
        kube.core.read_namespaced_pod("b", ns)


# --------------------------------------------------------------------------------------------- CRDs


def crd_manifest(group: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"},
                                                                         "replicas": {"type": "integer"}}},
                                "status": {"type": "object", "properties": {"ready": {"type": "boolean"},
                                                                           "replicas": {"type": "integer"}}},
                            },
                        }
                    },
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                            "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                }
            ],
        },
    }  # fmt: skip


def test_custom_resources_need_their_crd(kube: SimpleNamespace, ns: str) -> None:
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    with pytest.raises(ApiException) as err:
        kube.custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
    assert err.value.status == 404
    crd = kube.ext.create_custom_resource_definition(crd_manifest(group))
    conditions = {
        c.type: c.status for c in kube.ext.read_custom_resource_definition(crd.metadata.name).status.conditions
    }
    assert conditions.get("Established") == "True"
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    made = kube.custom.create_namespaced_custom_object(group, "v1", ns, "widgets", body)
    assert made["metadata"]["uid"]
    got = kube.custom.get_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
    assert got["spec"] == {"size": 3}
    patched = kube.custom.patch_namespaced_custom_object(group, "v1", ns, "widgets", "w1", {"spec": {"size": 4}})
    assert patched["spec"]["size"] == 4
    status, _, body415 = raw(
        kube,
        "PATCH",
        f"/apis/{group}/v1/namespaces/{ns}/widgets/w1",
        {"spec": {"size": 5}},
        {"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert status == 415
    assert "application/strategic-merge-patch+json" not in body415["message"]
    kube.custom.patch_namespaced_custom_object_status(group, "v1", ns, "widgets", "w1", {"status": {"ready": True}})
    assert kube.custom.get_namespaced_custom_object(group, "v1", ns, "widgets", "w1")["status"] == {"ready": True}
    scale = kube.custom.patch_namespaced_custom_object_scale(
        group, "v1", ns, "widgets", "w1", {"spec": {"replicas": 3}}
    )
    assert scale["spec"]["replicas"] == 3
    listed = kube.custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
    assert listed["kind"] == "WidgetList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    deleted = kube.custom.delete_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
    assert deleted["metadata"]["name"] == "w1"
    kube.ext.delete_custom_resource_definition(crd.metadata.name)
    with pytest.raises(ApiException) as err:
        kube.custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
    assert err.value.status == 404


# --------------------------------------------------------------------------------------------- GC and namespaces


def test_owner_reference_garbage_collection(kube: SimpleNamespace, ns: str) -> None:
    owner = kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for name in ("dep-a", "dep-b"):
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": name, "ownerReferences": [ref]}})
    kube.core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")
    left = kube.core.list_namespaced_config_map(ns).items
    assert sorted(c.metadata.name for c in left) == ["dep-a", "dep-b"]
    assert all(not c.metadata.owner_references for c in left)
    owner = kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "owner2"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.metadata.uid}
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "dep-c", "ownerReferences": [ref]}})
    kube.core.delete_namespaced_config_map("owner2", ns, body=client.V1DeleteOptions(propagation_policy="Background"))
    assert sorted(c.metadata.name for c in kube.core.list_namespaced_config_map(ns).items) == ["dep-a", "dep-b"]


def test_finalizers_hold_deletion(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    deleted = kube.core.delete_namespaced_config_map("held", ns, _preload_content=False)
    body = json.loads(deleted.data)
    assert body["metadata"]["deletionTimestamp"]  # still there: the API answers with the object
    still = kube.core.read_namespaced_config_map("held", ns)
    assert still.metadata.deletion_timestamp is not None
    kube.core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException):
        kube.core.read_namespaced_config_map("held", ns)


def test_namespace_lifecycle(kube: SimpleNamespace) -> None:
    name = f"life-{uuid.uuid4().hex[:6]}"
    created = kube.core.create_namespace({"metadata": {"name": name}})
    assert created.status.phase == "Active"
    kube.core.create_namespaced_config_map(name, {"metadata": {"name": "c", "finalizers": ["example.com/x"]}})
    kube.core.delete_namespace(name)
    terminating = kube.core.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_config_map(name, {"metadata": {"name": "late"}})
    assert err.value.status == 403
    kube.core.patch_namespaced_config_map("c", name, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        kube.core.read_namespace(name)
    assert err.value.status == 404


# --------------------------------------------------------------------------------------------- field validation


def test_strict_field_validation_rejects_unknown_fields(kube: SimpleNamespace, ns: str) -> None:
    bad = deployment("typo")
    bad["spec"]["replica"] = 2
    with pytest.raises(ApiException) as err:
        kube.apps.create_namespaced_deployment(ns, bad, field_validation="Strict")
    body = status_of(err.value)
    assert err.value.status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.replica"'
    )
    _, _, headers = kube.apps.create_namespaced_deployment_with_http_info(ns, bad, field_validation="Warn")
    assert headers.get("Warning") == '299 - "unknown field \\"spec.replica\\""'
    with pytest.raises(ApiException) as err:
        kube.apps.create_namespaced_deployment(ns, deployment("ok"), field_validation="Loose")
    assert err.value.status == 400


def test_pod_log_follow_streams_new_lines(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_pod(ns, pod("follow"))
    kube.store.append_log(ns, "follow", "main", "first")
    resp = kube.core.read_namespaced_pod_log("follow", ns, follow=True, _preload_content=False)
    lines = resp.stream(amt=None, decode_content=False)
    assert next(lines) == b"first\n"
    kube.store.append_log(ns, "follow", "main", "second")
    assert next(lines) == b"second\n"
    resp.close()  # the stream never ends by itself: drop its connection rather than return it to the pool


def test_service_account_token_request(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    req = kube.core.create_namespaced_service_account_token(
        "robot", ns, {"spec": {"audiences": ["api"], "expirationSeconds": 600}}
    )
    assert req.status.token.count(".") == 2
    claims = json.loads(__import__("base64").urlsafe_b64decode(req.status.token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["aud"] == ["api"]
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_service_account_token("nobody", ns, {"spec": {}})
    assert err.value.status == 404


def test_every_emitted_object_deserializes_into_typed_models(kube: SimpleNamespace, ns: str) -> None:
    kube.apps.create_namespaced_deployment(ns, deployment("typed"))
    kube.core.create_namespaced_pod(ns, pod("typed-pod"))
    kube.core.create_namespaced_service(ns, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    kube.store.record_event(kube.store.get("pods", ns, "typed-pod"), "Scheduled", "assigned somewhere")
    for call in (
        lambda: kube.core.list_namespaced_pod(ns),
        lambda: kube.core.list_namespaced_event(ns),
        lambda: kube.core.list_namespaced_service(ns),
        lambda: kube.core.list_namespaced_service_account(ns),
        kube.core.list_namespace,
        lambda: kube.apps.list_namespaced_deployment(ns),
        kube.ext.list_custom_resource_definition,
    ):
        listed = call()
        assert listed.items is not None
        for item in listed.items:
            assert item.metadata.name
    events = kube.core.list_namespaced_event(ns).items
    assert [e.reason for e in events] == ["Scheduled"]
    assert events[0].involved_object.name == "typed-pod"
