"""Server-side apply: create on apply, managedFields, two managers, conflicts, force, field removal."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from labkit.embedded.kube.apply import decode_fields, encode_fields
from labkit.embedded.kube.store import Store
from labkit.errors import Conflict, Invalid

KEY = "deployments.apps"


def manifest(replicas: int | None = 2, image: str = "app:1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels or {"app": "web"}},
        "spec": spec,
    }


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_apply_creates_when_missing(store: Store) -> None:
    obj = store.patch(KEY, "default", "web", manifest(), "apply", field_manager="labkit")
    assert obj["metadata"]["uid"]
    assert obj["spec"]["replicas"] == 2
    entry = managers(obj)[("labkit", "Apply")]
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["apiVersion"] == "apps/v1"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}},
            },
        },
    }


def test_apply_accepts_yaml_and_is_idempotent(store: Store) -> None:
    body = yaml.safe_dump(manifest())
    first = store.patch(KEY, "default", "web", body, "apply", field_manager="labkit")
    events: list[Any] = []
    store.subscribe(events.append)
    second = store.patch(KEY, "default", "web", body.encode(), "apply", field_manager="labkit")
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert events == [], "re-applying the same manifest changes nothing"


def test_apply_needs_a_field_manager_and_type(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.patch(KEY, "default", "web", manifest(), "apply")
    assert "fieldManager: Required value" in info.value.what
    body = manifest()
    del body["kind"]
    with pytest.raises(Invalid) as info:
        store.patch(KEY, "default", "web", body, "apply", field_manager="labkit")
    assert info.value.status == 400


def test_conflict_with_another_manager_then_force(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(replicas=2), "apply", field_manager="labkit")
    store.patch(KEY, "default", "web", {"spec": {"replicas": 5}}, "merge", field_manager="kubectl-scale")
    with pytest.raises(Conflict) as info:
        store.patch(KEY, "default", "web", manifest(replicas=3), "apply", field_manager="labkit")
    err = info.value
    assert err.status == 409
    assert err.reason == "Conflict"
    assert err.what == 'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    assert err.details["causes"] == [  # type: ignore[attr-defined]
        {"type": "FieldManagerConflict", "message": 'conflict with "kubectl-scale"', "field": ".spec.replicas"}
    ]
    forced = store.patch(KEY, "default", "web", manifest(replicas=3), "apply", field_manager="labkit", force=True)
    assert forced["spec"]["replicas"] == 3
    assert ("kubectl-scale", "Update") not in managers(forced), "the forced field moved to the applier"


def test_two_appliers_share_equal_values_and_conflict_on_different_ones(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(), "apply", field_manager="team-a")
    shared = store.patch(KEY, "default", "web", manifest(), "apply", field_manager="team-b")
    both = managers(shared)
    assert {"team-a", "team-b"} <= {m for m, _ in both}
    with pytest.raises(Conflict) as info:
        store.patch(KEY, "default", "web", manifest(image="app:2"), "apply", field_manager="team-b")
    message = info.value.what
    assert 'conflict with "team-a"' in message
    assert '.spec.template.spec.containers[name="app"].image' in message


def test_several_conflicts_are_listed(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(), "apply", field_manager="team-a")
    with pytest.raises(Conflict) as info:
        store.patch(KEY, "default", "web", manifest(replicas=4, image="app:9"), "apply", field_manager="team-b")
    assert info.value.what.startswith('Apply failed with 2 conflicts: conflicts with "team-a" using apps/v1:\n- ')


def test_fields_no_longer_applied_are_removed(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(labels={"app": "web", "tier": "fe"}), "apply", field_manager="labkit")
    store.patch(KEY, "default", "web", {"metadata": {"annotations": {"note": "kept"}}}, "merge", field_manager="human")
    out = store.patch(
        KEY, "default", "web", manifest(replicas=None, labels={"app": "web"}), "apply", field_manager="labkit"
    )
    assert out["metadata"]["labels"] == {"app": "web"}, "the label labkit stopped applying is gone"
    assert out["metadata"]["annotations"] == {"note": "kept"}, "fields of other managers stay"
    assert "replicas" in out["spec"], "defaulted replicas remain (set again by defaulting)"


def test_removed_field_owned_by_another_manager_stays(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(labels={"app": "web", "tier": "fe"}), "apply", field_manager="a")
    store.patch(KEY, "default", "web", manifest(labels={"app": "web", "tier": "fe"}), "apply", field_manager="b")
    out = store.patch(KEY, "default", "web", manifest(labels={"app": "web"}), "apply", field_manager="a")
    assert out["metadata"]["labels"] == {"app": "web", "tier": "fe"}


def test_removed_container_goes_away(store: Store) -> None:
    two = manifest()
    two["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "proxy:1"})
    store.patch(KEY, "default", "web", two, "apply", field_manager="labkit")
    out = store.patch(KEY, "default", "web", manifest(), "apply", field_manager="labkit")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_update_takes_ownership_from_applier(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(), "apply", field_manager="labkit")
    out = store.patch(KEY, "default", "web", {"spec": {"replicas": 7}}, "merge", field_manager="hpa")
    assert managers(out)[("hpa", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in managers(out)[("labkit", "Apply")]["fieldsV1"]["f:spec"]


def test_apply_to_status_subresource(store: Store) -> None:
    store.patch(KEY, "default", "web", manifest(), "apply", field_manager="labkit")
    status = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
    }
    out = store.patch(KEY, "default", "web", status, "apply", field_manager="controller", subresource="status")
    assert out["status"]["replicas"] == 2
    entry = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "controller")
    assert entry["subresource"] == "status"
    # applying status to the main resource does not change status
    main = store.patch(
        KEY, "default", "web", {**manifest(), "status": {"replicas": 9}}, "apply", field_manager="labkit"
    )
    assert main["status"]["replicas"] == 2


def test_apply_dry_run_creates_nothing(store: Store) -> None:
    out = store.patch(KEY, "default", "web", manifest(), "apply", field_manager="labkit", dry_run=True)
    assert out["spec"]["replicas"] == 2
    assert store.try_get(KEY, "default", "web") is None


def test_apply_name_must_match(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.patch(KEY, "default", "other", manifest(), "apply", field_manager="labkit")
    assert info.value.status == 400


def test_fields_v1_round_trip() -> None:
    paths = {
        ("f:metadata", "f:labels", "f:app"),
        ("f:spec", "f:c", 'k:{"name":"a"}'),
        ("f:spec", "f:c", 'k:{"name":"a"}', "f:image"),
        ("f:spec", "f:x"),
    }
    tree = encode_fields(paths)
    assert tree["f:spec"]["f:c"]['k:{"name":"a"}'] == {".": {}, "f:image": {}}
    assert decode_fields(tree) == paths
