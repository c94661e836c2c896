"""Deletion: finalizers, ownerReference garbage collection (background, foreground, orphan), namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.embedded.kube.store import Event, Store
from labkit.errors import Forbidden, Invalid, NotFound


def owner_ref(obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        **extra,
    }


def cm(name: str, *owners: dict[str, Any], finalizers: list[str] | None = None, ns: str = "default") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def names(store: Store, key: str = "configmaps", ns: str = "default") -> list[str]:
    return [o["metadata"]["name"] for o in store.list(key, ns)[0]]


@pytest.fixture
def events(store: Store) -> list[Event]:
    seen: list[Event] = []
    store.subscribe(seen.append)
    return seen


def kinds(events: list[Event], etype: str) -> list[str]:
    return [e.obj["metadata"]["name"] for e in events if e.type == etype]


def test_finalizers_hold_an_object_until_removed(store: Store, events: list[Event]) -> None:
    store.create("configmaps", cm("held", finalizers=["example.com/cleanup"]))
    deleting = store.delete("configmaps", "default", "held")
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 0
    assert store.get("configmaps", "default", "held")["metadata"]["deletionTimestamp"]
    with pytest.raises(Invalid) as info:
        store.patch(
            "configmaps", "default", "held", {"metadata": {"finalizers": ["example.com/cleanup", "new"]}}, "merge"
        )
    assert "no new finalizers can be added" in info.value.what
    store.patch("configmaps", "default", "held", [{"op": "remove", "path": "/metadata/finalizers"}], "json")
    assert store.try_get("configmaps", "default", "held") is None
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_background_deletes_dependents_after_owner(store: Store, events: list[Event]) -> None:
    owner = store.create("configmaps", cm("owner"))
    store.create("configmaps", cm("child", owner_ref(owner)))
    grandchild_owner = store.get("configmaps", "default", "child")
    store.create("configmaps", cm("grandchild", owner_ref(grandchild_owner)))
    store.create("configmaps", cm("bystander"))
    store.delete("configmaps", "default", "owner")
    assert names(store) == ["bystander"]
    assert kinds(events, "DELETED") == ["owner", "child", "grandchild"]


def test_dependent_with_another_live_owner_only_loses_the_reference(store: Store) -> None:
    a = store.create("configmaps", cm("a"))
    b = store.create("configmaps", cm("b"))
    store.create("configmaps", cm("shared", owner_ref(a), owner_ref(b)))
    store.delete("configmaps", "default", "a")
    shared = store.get("configmaps", "default", "shared")
    assert [r["name"] for r in shared["metadata"]["ownerReferences"]] == ["b"]
    store.delete("configmaps", "default", "b")
    assert store.try_get("configmaps", "default", "shared") is None


def test_foreground_waits_for_dependents(store: Store, events: list[Event]) -> None:
    owner = store.create("configmaps", cm("owner"))
    store.create("configmaps", cm("child", owner_ref(owner, blockOwnerDeletion=True), finalizers=["x/hold"]))
    deleting = store.delete("configmaps", "default", "owner", propagation="Foreground")
    assert deleting["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert deleting["metadata"]["deletionTimestamp"]
    assert store.get("configmaps", "default", "child")["metadata"]["deletionTimestamp"]
    assert store.try_get("configmaps", "default", "owner") is not None, "the owner waits for its dependents"
    store.patch("configmaps", "default", "child", {"metadata": {"finalizers": None}}, "merge")
    assert store.try_get("configmaps", "default", "child") is None
    assert store.try_get("configmaps", "default", "owner") is None
    assert kinds(events, "DELETED") == ["child", "owner"]


def test_foreground_without_dependents_deletes_at_once(store: Store) -> None:
    store.create("configmaps", cm("lonely"))
    gone = store.delete("configmaps", "default", "lonely", propagation="Foreground")
    assert gone["metadata"]["name"] == "lonely"
    assert store.try_get("configmaps", "default", "lonely") is None


def test_orphan_keeps_dependents_without_the_reference(store: Store) -> None:
    owner = store.create("configmaps", cm("owner"))
    store.create("configmaps", cm("child", owner_ref(owner)))
    store.delete("configmaps", "default", "owner", propagation="Orphan")
    child = store.get("configmaps", "default", "child")
    assert "ownerReferences" not in child["metadata"]


def test_dependent_created_after_its_owner_is_gone_is_collected(store: Store, events: list[Event]) -> None:
    owner = store.create("configmaps", cm("owner"))
    store.delete("configmaps", "default", "owner")
    created = store.create("configmaps", cm("late", owner_ref(owner)))
    assert created["metadata"]["name"] == "late"
    assert store.try_get("configmaps", "default", "late") is None
    assert [e.type for e in events if e.obj["metadata"]["name"] == "late"] == ["ADDED", "DELETED"]


def test_workload_cascade_deployment_replicaset_pods(store: Store) -> None:
    labels = {"app": "web"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    dep = store.create(
        "deployments.apps",
        {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": labels}, "template": template}},
        namespace="default",
    )
    rs = store.create(
        "replicasets.apps",
        {
            "metadata": {
                "name": "web-1",
                "ownerReferences": [owner_ref(dep, controller=True, blockOwnerDeletion=True)],
            },
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        },
        namespace="default",
    )
    for i in range(3):
        store.create(
            "pods",
            {
                "metadata": {
                    "name": f"web-1-{i}",
                    "labels": labels,
                    "ownerReferences": [owner_ref(rs, controller=True)],
                },
                "spec": template["spec"],
            },
            namespace="default",
        )
    store.delete("deployments.apps", "default", "web", propagation="Foreground")
    assert store.list("replicasets.apps", "default")[0] == []
    assert store.list("pods", "default")[0] == []
    assert store.list("deployments.apps", "default")[0] == []


def test_namespace_terminating_lifecycle(store: Store, events: list[Event]) -> None:
    store.create("namespaces", {"metadata": {"name": "team"}})
    store.create("configmaps", cm("plain", ns="team"))
    store.create("configmaps", cm("held", ns="team", finalizers=["example.com/hold"]))
    result = store.delete("namespaces", None, "team")
    assert result["status"]["phase"] == "Terminating"
    assert result["metadata"]["deletionTimestamp"]
    assert names(store, ns="team") == ["held"]
    ns = store.get("namespaces", None, "team")
    conditions = {c["type"]: c for c in ns["status"]["conditions"]}
    assert conditions["NamespaceContentRemaining"]["status"] == "True"
    assert "configmaps has 1 resource instances" in conditions["NamespaceContentRemaining"]["message"]
    assert "example.com/hold in 1 resource instances" in conditions["NamespaceFinalizersRemaining"]["message"]
    with pytest.raises(Forbidden) as info:
        store.create("configmaps", cm("new", ns="team"))
    assert "because it is being terminated" in info.value.what
    assert info.value.status == 403
    store.patch("configmaps", "team", "held", {"metadata": {"finalizers": []}}, "merge")
    with pytest.raises(NotFound):
        store.get("namespaces", None, "team")
    deleted = [(e.key, e.obj["metadata"]["name"]) for e in events if e.type == "DELETED"]
    assert deleted[-1] == ("namespaces", "team")
    assert ("configmaps", "held") in deleted
    assert ("serviceaccounts", "default") in deleted


def test_empty_namespace_goes_at_once_and_can_be_recreated(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "tmp"}})
    store.delete("namespaces", None, "tmp")
    assert store.try_get("namespaces", None, "tmp") is None
    again = store.create("namespaces", {"metadata": {"name": "tmp"}})
    assert again["status"]["phase"] == "Active"


def test_finalize_subresource_releases_a_stuck_namespace(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "stuck"}})
    store.create("configmaps", cm("held", ns="stuck", finalizers=["example.com/never"]))
    ns = store.delete("namespaces", None, "stuck")
    ns["spec"]["finalizers"] = []
    store.update("namespaces", ns, subresource="finalize")
    assert store.try_get("namespaces", None, "stuck") is None


def test_watch_sees_deleted_events_of_a_namespace_teardown(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "team"}})
    store.create("configmaps", cm("a", ns="team"))
    watch = store.watch("configmaps", "team")
    ns_watch = store.watch("namespaces", field_selector="metadata.name=team")
    store.delete("namespaces", None, "team")
    ev = watch.get(timeout=1)
    assert ev is not None and (ev.type, ev.obj["metadata"]["name"]) == ("DELETED", "a")
    seen = []
    while not seen or seen[-1].type != "DELETED":
        ev = ns_watch.get(timeout=1)
        assert ev is not None, f"no DELETED event for the namespace after {[e.type for e in seen]}"
        seen.append(ev)
    assert seen[0].type == "MODIFIED"
    assert seen[0].obj["status"]["phase"] == "Terminating"
    assert seen[-2].obj["spec"]["finalizers"] == [], "the kubernetes finalizer goes before the namespace"


def test_system_namespaces_cannot_be_deleted(store: Store) -> None:
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(Forbidden) as info:
            store.delete("namespaces", None, name)
        assert info.value.what == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
