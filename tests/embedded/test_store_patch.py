"""PATCH: JSON patch, merge patch, strategic merge patch (merge keys and directives), 415 for CRs."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.embedded.kube.patch import json_patch, merge_patch, strategic_merge
from labkit.embedded.kube.schema import schema_for
from labkit.embedded.kube.store import Store
from labkit.errors import Conflict, Invalid

POD_SCHEMA = schema_for("pods")
DEPLOY_SCHEMA = schema_for("deployments.apps")


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:1",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                },
                {"name": "sidecar", "image": "proxy:1"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            **extra,
        }
    }


# ------------------------------------------------------------------------------------------------- JSON patch


def test_json_patch_operations() -> None:
    doc = {"spec": {"replicas": 1, "list": [1, 2]}, "metadata": {"labels": {"a/b": "x"}}}
    out = json_patch(
        doc,
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "add", "path": "/spec/list/0", "value": 0},
            {"op": "remove", "path": "/metadata/labels/a~1b"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
        ],
    )
    assert out == {"spec": {"replicas": 3, "list": [0, 1, 2, 3], "moved": 3}, "metadata": {"labels": {}}}
    assert doc["spec"]["replicas"] == 1, "the input is not changed"


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([{"op": "test", "path": "/spec/replicas", "value": 2}], "testing value /spec/replicas failed"),
        ([{"op": "remove", "path": "/spec/missing"}], 'doc is missing path: "/spec/missing"'),
        ([{"op": "replace", "path": "/nope/x", "value": 1}], "replace operation does not apply"),
        ([{"op": "add", "path": "/spec/list/9", "value": 1}], "index out of range"),
    ],
)
def test_json_patch_failures_are_invalid(ops: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(Invalid) as info:
        json_patch({"spec": {"replicas": 1, "list": []}}, ops)
    assert info.value.status == 422
    assert message in info.value.what


def test_json_patch_malformed_is_bad_request() -> None:
    with pytest.raises(Invalid) as info:
        json_patch({}, [{"op": "frobnicate", "path": "/a"}])
    assert info.value.status == 400
    with pytest.raises(Invalid):
        json_patch({}, {"op": "add"})


# ------------------------------------------------------------------------------------------------ merge patch


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None, "h": "i"}, "list": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e", "h": "i"}, "list": [3]}
    assert merge_patch({"a": 1}, '{"a": null}') == {}


# --------------------------------------------------------------------------------------- strategic merge patch


def containers(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in spec["spec"]["containers"]}


def test_strategic_merges_containers_by_name() -> None:
    out = strategic_merge(pod_spec(), {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}, POD_SCHEMA)
    by_name = containers(out)
    assert by_name["app"]["image"] == "app:2"
    assert by_name["app"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert by_name["sidecar"]["image"] == "proxy:1", "unmentioned containers stay"


def test_strategic_merges_env_ports_and_mounts_by_their_keys() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}],
                    "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        }
    }
    app = containers(strategic_merge(pod_spec(), patch, POD_SCHEMA))["app"]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 9090}]
    assert app["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]


def test_strategic_replaces_lists_without_merge_key() -> None:
    out = strategic_merge(pod_spec(), {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}, POD_SCHEMA)
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_strategic_patch_delete_directive_in_list() -> None:
    patch = {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}
    assert list(containers(strategic_merge(pod_spec(), patch, POD_SCHEMA))) == ["app"]


def test_strategic_patch_replace_directive() -> None:
    patch = {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}
    out = strategic_merge(pod_spec(), patch, POD_SCHEMA)
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    map_patch = {"spec": {"$patch": "replace", "containers": [{"name": "n", "image": "y"}]}}
    assert strategic_merge(pod_spec(), map_patch, POD_SCHEMA) == {"spec": {"containers": [{"name": "n", "image": "y"}]}}


def test_strategic_patch_delete_directive_on_map_and_null() -> None:
    doc = {"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}}
    out = strategic_merge(doc, {"metadata": {"labels": {"a": None}, "annotations": {"$patch": "delete"}}}, POD_SCHEMA)
    assert out == {"metadata": {"labels": {"b": "2"}}}


def test_strategic_retain_keys_and_element_order_and_primitive_lists() -> None:
    doc = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge(doc, patch, DEPLOY_SCHEMA) == {"spec": {"strategy": {"type": "Recreate"}}}
    ordered = strategic_merge(
        pod_spec(),
        {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}], "containers": []}},
        POD_SCHEMA,
    )
    assert [c["name"] for c in ordered["spec"]["containers"]] == ["sidecar", "app"]
    meta = {"metadata": {"finalizers": ["a", "b"]}}
    merged = strategic_merge(meta, {"metadata": {"finalizers": ["c"]}}, POD_SCHEMA)
    assert merged["metadata"]["finalizers"] == ["a", "b", "c"]
    removed = strategic_merge(meta, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, POD_SCHEMA)
    assert removed["metadata"]["finalizers"] == ["b"]


def test_strategic_item_without_merge_key_is_rejected() -> None:
    with pytest.raises(Invalid) as info:
        strategic_merge(pod_spec(), {"spec": {"containers": [{"image": "x"}]}}, POD_SCHEMA)
    assert "does not contain declared merge key: name" in info.value.what


def test_strategic_merges_conditions_by_type() -> None:
    doc = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Available", "status": "True"}]}}
    out = strategic_merge(doc, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, DEPLOY_SCHEMA)
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "Available", "status": "True"}]


def test_strategic_merge_on_workload_template() -> None:
    doc = {"spec": {"template": pod_spec()}}
    out = strategic_merge(
        doc, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "v2"}]}}}}, DEPLOY_SCHEMA
    )
    assert [c["image"] for c in out["spec"]["template"]["spec"]["containers"]] == ["v2", "proxy:1"]


# -------------------------------------------------------------------------------------------- through the store


def _deployment(store: Store) -> None:
    store.create(
        "deployments.apps",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "p:1"}]},
                },
            },
        },
        namespace="default",
        field_manager="setup",
    )


def test_each_patch_type_through_the_store(store: Store) -> None:
    _deployment(store)
    smp = store.patch(
        "deployments.apps",
        "default",
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}},
        "strategic",
    )
    assert [c["image"] for c in smp["spec"]["template"]["spec"]["containers"]] == ["app:2", "p:1"]
    assert smp["metadata"]["generation"] == 2
    merged = store.patch("deployments.apps", "default", "web", '{"metadata": {"labels": {"team": "ml"}}}', "merge")
    assert merged["metadata"]["labels"] == {"team": "ml"}
    jp = store.patch(
        "deployments.apps", "default", "web", [{"op": "replace", "path": "/spec/replicas", "value": 3}], "json"
    )
    assert jp["spec"]["replicas"] == 3
    # a merge patch with a whole list replaces it (no merge keys)
    mp = store.patch(
        "deployments.apps",
        "default",
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:3"}]}}}},
        "merge",
    )
    assert [c["name"] for c in mp["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert mp["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent", "defaults re-applied"


def test_patch_with_stale_resource_version_conflicts(store: Store) -> None:
    _deployment(store)
    with pytest.raises(Conflict):
        store.patch("deployments.apps", "default", "web", {"metadata": {"resourceVersion": "1"}}, "merge")


def test_patch_cannot_change_kind(store: Store) -> None:
    _deployment(store)
    with pytest.raises(Invalid) as info:
        store.patch("deployments.apps", "default", "web", {"kind": "StatefulSet"}, "merge")
    assert info.value.status == 400


def test_strategic_merge_on_custom_resource_is_415(store: Store) -> None:
    store.create(
        "customresourcedefinitions.apiextensions.k8s.io",
        {
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                ],
            },
        },
    )
    store.create(
        "widgets.example.com",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}},
        namespace="default",
    )
    with pytest.raises(Invalid) as info:
        store.patch("widgets.example.com", "default", "w", {"spec": {"size": 2}}, "strategic")
    assert info.value.status == 415
    assert info.value.reason == "UnsupportedMediaType"
    assert "application/merge-patch+json" in info.value.what
    assert store.patch("widgets.example.com", "default", "w", {"spec": {"size": 2}}, "merge")["spec"]["size"] == 2
