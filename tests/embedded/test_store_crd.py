"""CRDs: registration and unregistration, custom resources, their subresources, defaults and pruning."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.embedded.kube.resources import ResourceRegistry, types_from_crd
from labkit.embedded.kube.store import Store
from labkit.errors import ApiError, Conflict, Invalid, NotFound

CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


def crd(*, scale: bool = True, scope: str = "Namespaced") -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer", "default": 1},
                    "model": {"type": "string"},
                    "policy": {"type": "string", "default": "WhenEmpty"},
                    "items": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "v": {"type": "string"}},
                        },
                    },
                },
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "models.serving.example.com"},
        "spec": {
            "group": "serving.example.com",
            "scope": scope,
            "names": {
                "plural": "models",
                "singular": "model",
                "kind": "Model",
                "shortNames": ["mdl"],
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": [{"name": "Model", "type": "string", "jsonPath": ".spec.model"}],
                },
                {"name": "v1beta1", "served": True, "storage": False, "schema": {"openAPIV3Schema": schema}},
            ],
        },
    }


def model(name: str = "llama", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.example.com/v1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"model": "llama-3", **spec},
    }


def test_custom_resource_without_crd_is_404(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.create("models.serving.example.com", model(), namespace="default")
    assert info.value.status == 404
    assert store.registry.lookup("serving.example.com", "v1", "models") is None


def test_crd_registers_every_served_version(store: Store) -> None:
    created = store.create(CRD_KEY, crd())
    conditions = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert created["status"]["acceptedNames"]["kind"] == "Model"
    assert created["status"]["storedVersions"] == ["v1"]
    rt = store.registry.get("models.serving.example.com")
    assert (rt.version, rt.kind, rt.namespaced, rt.builtin) == ("v1", "Model", True, False)
    assert rt.short_names == ("mdl",)
    assert rt.categories == ("all",)
    assert rt.subresources == ("scale", "status")
    assert rt.printer_columns[0]["name"] == "Model"
    beta = store.registry.lookup("serving.example.com", "v1beta1", "models")
    assert beta is not None and beta.key == rt.key and not beta.storage
    assert store.registry.by_kind("serving.example.com/v1", "Model") == rt
    assert store.registry.resolve("mdl") == rt


def test_custom_resource_crud_defaults_and_pruning(store: Store) -> None:
    store.create(CRD_KEY, crd())
    obj = store.create(
        "models.serving.example.com", {**model(), "spec": {"model": "m", "unknown": 1}}, namespace="default"
    )
    assert obj["spec"] == {"model": "m", "replicas": 1, "policy": "WhenEmpty"}, "schema defaults in, unknown fields out"
    assert obj["metadata"]["generation"] == 1
    with pytest.raises(Conflict):
        store.create("models.serving.example.com", model(), namespace="default")
    listed, _ = store.list("models.serving.example.com", "default")
    assert [m["metadata"]["name"] for m in listed] == ["llama"]
    # a write through another served version is stored at the storage version
    other = store.create(
        "models.serving.example.com",
        {**model("beta"), "apiVersion": "serving.example.com/v1beta1"},
        namespace="default",
    )
    assert other["apiVersion"] == "serving.example.com/v1"


def test_custom_resource_status_and_scale_subresources(store: Store) -> None:
    store.create(CRD_KEY, crd())
    store.create("models.serving.example.com", model(), namespace="default")
    status = store.patch(
        "models.serving.example.com",
        "default",
        "llama",
        {"status": {"replicas": 1, "ready": True}},
        "merge",
        subresource="status",
    )
    assert status["status"] == {"replicas": 1, "ready": True}
    assert status["metadata"]["generation"] == 1
    scale = store.get("models.serving.example.com", "default", "llama", subresource="scale")
    assert scale["spec"]["replicas"] == 1
    assert scale["status"]["replicas"] == 1
    store.patch(
        "models.serving.example.com", "default", "llama", {"spec": {"replicas": 3}}, "merge", subresource="scale"
    )
    updated = store.get("models.serving.example.com", "default", "llama")
    assert updated["spec"]["replicas"] == 3
    assert updated["metadata"]["generation"] == 2


def test_custom_resource_apply_uses_schema_list_types(store: Store) -> None:
    store.create(CRD_KEY, crd())
    key = "models.serving.example.com"
    store.patch(key, "default", "llama", model(items=[{"name": "a", "v": "1"}]), "apply", field_manager="one")
    out = store.patch(
        key,
        "default",
        "llama",
        {**model(items=[{"name": "b", "v": "2"}]), "spec": {"items": [{"name": "b", "v": "2"}]}},
        "apply",
        field_manager="two",
    )
    assert out["spec"]["items"] == [{"name": "a", "v": "1"}, {"name": "b", "v": "2"}], "a map list merges by key"


def test_deleting_crd_deletes_its_resources_and_unregisters(store: Store) -> None:
    store.create(CRD_KEY, crd())
    store.create("models.serving.example.com", model("a"), namespace="default")
    store.create("models.serving.example.com", model("b"), namespace="kube-system")
    events: list[Any] = []
    store.subscribe(events.append)
    store.delete(CRD_KEY, None, "models.serving.example.com")
    assert store.try_get(CRD_KEY, None, "models.serving.example.com") is None
    assert store.registry.find("models.serving.example.com") is None
    with pytest.raises(NotFound):
        store.list("models.serving.example.com")
    deleted = [(e.key, e.obj["metadata"]["name"]) for e in events if e.type == "DELETED"]
    assert deleted == [
        ("models.serving.example.com", "a"),
        ("models.serving.example.com", "b"),
        (CRD_KEY, "models.serving.example.com"),
    ]


def test_crd_waits_for_custom_resources_with_finalizers(store: Store) -> None:
    store.create(CRD_KEY, crd())
    key = "models.serving.example.com"
    store.create(
        key, {**model(), "metadata": {"name": "llama", "finalizers": ["example.com/keep"]}}, namespace="default"
    )
    terminating = store.delete(CRD_KEY, None, "models.serving.example.com")
    assert terminating["metadata"]["deletionTimestamp"]
    assert any(c["type"] == "Terminating" for c in terminating["status"]["conditions"])
    with pytest.raises(ApiError) as info:
        store.create(key, model("new"), namespace="default")
    assert info.value.status == 405
    store.patch(key, "default", "llama", {"metadata": {"finalizers": None}}, "merge")
    assert store.try_get(CRD_KEY, None, "models.serving.example.com") is None
    assert store.registry.find(key) is None


def test_cluster_scoped_custom_resource(store: Store) -> None:
    store.create(CRD_KEY, crd(scope="Cluster", scale=False))
    obj = store.create("models.serving.example.com", {**model(), "metadata": {"name": "x", "namespace": "default"}})
    assert "namespace" not in obj["metadata"]
    assert store.get("models.serving.example.com", None, "x")["spec"]["model"] == "llama-3"


def test_invalid_crd_is_rejected(store: Store) -> None:
    bad = crd()
    bad["metadata"]["name"] = "wrong"
    with pytest.raises(Invalid) as info:
        store.create(CRD_KEY, bad)
    assert "metadata.name" in info.value.what
    two_storage = crd()
    two_storage["spec"]["versions"][1]["storage"] = True
    with pytest.raises(Invalid):
        store.create(CRD_KEY, two_storage)


def test_registry_without_store() -> None:
    registry = ResourceRegistry()
    types = registry.register_crd(crd())
    assert [t.version for t in types] == ["v1", "v1beta1"]
    assert types_from_crd(crd())[0].scale is not None
    registry.unregister_crd(crd())
    assert registry.lookup("serving.example.com", "v1", "models") is None
    pods = registry.get("pods")
    assert (pods.key, pods.api_version, pods.categories, pods.short_names) == ("pods", "v1", ("all",), ("po",))
    assert registry.get("deployments.apps").api_version == "apps/v1"
    assert registry.resolve("deploy").kind == "Deployment"  # type: ignore[union-attr]
    assert registry.resolve("hpa").version == "v2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": "three"}, 'spec.replicas: Invalid value: "three": spec.replicas in body must be of type integer'),
        ({"replicas": -1}, "spec.replicas in body should be greater than or equal to 0"),
        (
            {"policy": "Sometimes"},
            'spec.policy: Unsupported value: "Sometimes": supported values: "WhenEmpty", "Never"',
        ),
        ({"items": [{"v": "x"}]}, "spec.items[0].name: Required value"),
    ],
)
def test_custom_resources_are_validated_against_the_schema(store: Store, spec: dict[str, Any], message: str) -> None:
    definition = crd()
    schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    schema["replicas"]["minimum"] = 0
    schema["policy"]["enum"] = ["WhenEmpty", "Never"]
    schema["items"]["items"]["required"] = ["name"]
    store.create(CRD_KEY, definition)
    with pytest.raises(Invalid) as info:
        store.create("models.serving.example.com", model(**spec), namespace="default")
    assert info.value.status == 422
    assert info.value.what.startswith('Model.serving.example.com "llama" is invalid: ')
    assert message in info.value.what


def test_reapplying_a_crd_changes_nothing(store: Store) -> None:
    first = store.patch(CRD_KEY, None, "models.serving.example.com", crd(), "apply", field_manager="labkit")
    again = store.patch(CRD_KEY, None, "models.serving.example.com", crd(), "apply", field_manager="labkit")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert store.registry.find("models.serving.example.com") is not None
