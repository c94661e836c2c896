"""Discovery, the dynamic client, server-side Table output and OpenAPI of the embedded API server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from twin_support import api_server

TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with api_server(tmp_path_factory.mktemp("apiserver-discovery")) as (store, server, api):
        yield SimpleNamespace(
            store=store, server=server, api=api, core=client.CoreV1Api(api), apps=client.AppsV1Api(api)
        )


def get(kube: SimpleNamespace, path: str, accept: str = "application/json") -> tuple[int, dict, object]:
    resp = kube.api.rest_client.pool_manager.request(
        "GET", kube.api.configuration.host + path, headers={"Accept": accept}
    )
    ctype = resp.headers.get("Content-Type", "")
    return resp.status, dict(resp.headers), json.loads(resp.data) if "json" in ctype else resp.data.decode()


def test_version_and_api_group_documents(kube: SimpleNamespace) -> None:
    info = client.VersionApi(kube.api).get_code()
    assert info.major == "1"
    assert info.git_version.startswith("v1.")
    assert info.platform.startswith("linux/")
    status, _, slash = get(kube, "/version/")
    assert status == 200
    assert slash["gitVersion"] == info.git_version
    assert client.CoreApi(kube.api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(kube.api).get_api_versions().groups}
    assert {"apps", "batch", "apiextensions.k8s.io", "rbac.authorization.k8s.io"} <= set(groups)
    assert groups["apps"].preferred_version.group_version == "apps/v1"
    apps = client.AppsApi(kube.api).get_api_group()
    assert apps.name == "apps"


def test_resource_lists_have_verbs_short_names_categories_and_subresources(kube: SimpleNamespace) -> None:
    core = {r.name: r for r in client.CoreV1Api(kube.api).get_api_resources().resources}
    assert core["pods"].short_names == ["po"]
    assert core["pods"].categories == ["all"]
    assert set(core["pods"].verbs) >= {"create", "delete", "get", "list", "patch", "update", "watch"}
    assert core["pods/log"].verbs == ["get"]
    assert core["services"].namespaced is True
    assert core["nodes"].namespaced is False
    apps = {r.name: r for r in kube.apps.get_api_resources().resources}
    assert apps["deployments/scale"].kind == "Scale"
    assert apps["deployments/scale"].group == "autoscaling"
    assert apps["deployments"].short_names == ["deploy"]


def test_aggregated_discovery_request_gets_the_legacy_documents(kube: SimpleNamespace) -> None:
    status, headers, body = get(kube, "/apis", AGGREGATED)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body["kind"] == "APIGroupList"
    status, _, body = get(kube, "/api", AGGREGATED)
    assert body["kind"] == "APIVersions"


def test_unknown_paths_are_404_status(kube: SimpleNamespace) -> None:
    for path in ("/apis/nope.example.com", "/apis/apps/v9", "/api/v2", "/foo/bar", "/apis/apps/v1/nothings"):
        status, _, body = get(kube, path)
        assert status == 404, path
        assert body["kind"] == "Status"
        assert body["reason"] == "NotFound"
    status, _, body = get(kube, "/healthz")
    assert (status, body) == (200, "ok")
    status, _, root = get(kube, "/")
    assert "/apis/apps/v1" in root["paths"]


def test_dynamic_client_discovers_and_crud(kube: SimpleNamespace) -> None:
    dyn = DynamicClient(kube.api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced
    ns = f"d-{uuid.uuid4().hex[:6]}"
    dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": ns}})
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "dyn"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "dyn"}},
            "template": {"metadata": {"labels": {"app": "dyn"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    deployments.create(body=body, namespace=ns)
    assert deployments.get(name="dyn", namespace=ns).spec.replicas == 1
    deployments.patch(
        name="dyn", namespace=ns, body={"spec": {"replicas": 2}}, content_type="application/merge-patch+json"
    )
    assert [d.metadata.name for d in deployments.get(namespace=ns).items] == ["dyn"]
    assert deployments.get(name="dyn", namespace=ns).spec.replicas == 2
    deployments.delete(name="dyn", namespace=ns)
    with pytest.raises(NotFoundError):
        deployments.get(name="dyn", namespace=ns)
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version="example.com/v1", kind="Missing")


def test_dynamic_client_sees_a_new_crd_after_invalidation(kube: SimpleNamespace) -> None:
    dyn = DynamicClient(kube.api)
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    client.ApiextensionsV1Api(kube.api).create_custom_resource_definition(
        {
            "metadata": {"name": f"gadgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Cluster",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": True, "storage": True,
                              "schema": {"openAPIV3Schema": {"type": "object",
                                                             "x-kubernetes-preserve-unknown-fields": True}}}],
            },
        }
    )  # fmt: skip
    dyn.resources.invalidate_cache()
    gadgets = dyn.resources.get(api_version=f"{group}/v1", kind="Gadget")
    assert not gadgets.namespaced
    gadgets.create(body={"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"a": 1}})
    assert gadgets.get(name="g").spec.a == 1


def test_table_output_for_pods_deployments_and_crds(kube: SimpleNamespace) -> None:
    ns = f"tb-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"metadata": {"name": ns}})
    kube.core.create_namespaced_pod(
        ns, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    status, _, table = get(kube, f"/api/v1/namespaces/{ns}/pods", TABLE)
    assert status == 200
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert {"IP", "Node"} <= {c["name"] for c in table["columnDefinitions"] if c["priority"] == 1}
    [row] = table["rows"]
    assert row["cells"][:4] == ["p", "0/1", "Pending", "0"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "p"
    status, _, single = get(kube, f"/api/v1/namespaces/{ns}/pods/p", TABLE)
    assert single["rows"][0]["cells"][0] == "p"
    status, _, full = get(kube, f"/api/v1/namespaces/{ns}/pods?includeObject=Object", TABLE)
    assert full["rows"][0]["object"]["kind"] == "Pod"
    status, _, nodes = get(kube, "/api/v1/nodes", TABLE)
    assert [c["name"] for c in nodes["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Status", "Roles", "Age", "Version"]  # fmt: skip
    status, _, svc = get(kube, "/api/v1/namespaces/default/services", TABLE)
    assert [c["name"] for c in svc["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]  # fmt: skip
    assert svc["rows"][0]["cells"][:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    status, _, plain = get(kube, f"/api/v1/namespaces/{ns}/pods")
    assert plain["kind"] == "PodList"


def test_table_uses_crd_printer_columns(kube: SimpleNamespace) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    client.ApiextensionsV1Api(kube.api).create_custom_resource_definition(
        {
            "metadata": {"name": f"pools.{group}"},
            "spec": {
                "group": group,
                "scope": "Cluster",
                "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
                "versions": [{
                    "name": "v1", "served": True, "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "additionalPrinterColumns": [
                        {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes"},
                        {"name": "Ready", "type": "string",
                         "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }],
            },
        }
    )  # fmt: skip
    client.CustomObjectsApi(kube.api).create_cluster_custom_object(
        group, "v1", "pools",
        {"apiVersion": f"{group}/v1", "kind": "Pool", "metadata": {"name": "gpu"},
         "status": {"nodes": 2, "conditions": [{"type": "Ready", "status": "True"}]}},
    )  # fmt: skip
    _, _, table = get(kube, f"/apis/{group}/v1/pools", TABLE)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Nodes", "Ready", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:3] == ["gpu", 2, "True"]
    assert cells[3].endswith("s")


def test_openapi_v3_index_and_documents(kube: SimpleNamespace) -> None:
    status, _, index = get(kube, "/openapi/v3")
    assert status == 200
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, headers, doc = get(kube, url)
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert "io.k8s.api.apps.v1.Deployment" in doc["components"]["schemas"]
    etag = headers["ETag"]
    resp = kube.api.rest_client.pool_manager.request(
        "GET", kube.api.configuration.host + url, headers={"If-None-Match": etag}
    )
    assert resp.status == 304
    status, _, _ = get(kube, "/openapi/v3/apis/apps/v9")
    assert status == 404
