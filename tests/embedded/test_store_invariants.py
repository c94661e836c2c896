"""Store invariants: history is never rewritten, and resourceVersions only grow."""

from __future__ import annotations

import json

from labkit.embedded.kube.store import Event, Store


def test_events_are_never_changed_after_they_are_emitted(store: Store) -> None:
    """Writes share unchanged parts with the stored versions; no write may change an emitted object."""
    seen: list[tuple[Event, str, str]] = []
    store.subscribe(lambda ev: seen.append((ev, json.dumps(ev.obj), json.dumps(ev.old))))
    labels = {"app": "web"}
    container = {"name": "app", "image": "app:1", "resources": {"limits": {"cpu": "1"}}}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
    deploy = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": labels}, "template": template}}
    store.create("namespaces", {"metadata": {"name": "team"}})
    store.create("deployments.apps", deploy, namespace="team", field_manager="a")
    key, ns = "deployments.apps", "team"
    store.patch(
        key,
        ns,
        "web",
        {"status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}},
        "merge",
        subresource="status",
        field_manager="ctrl",
    )
    store.patch(
        key,
        ns,
        "web",
        {"status": {"conditions": [{"type": "Progressing", "status": "True"}]}},
        "strategic",
        subresource="status",
        field_manager="ctrl",
    )
    store.patch(
        key, ns, "web", [{"op": "replace", "path": "/status/replicas", "value": 2}], "json", subresource="status"
    )
    limits = {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}}
    store.patch(
        key,
        ns,
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": limits}]}}}},
        "strategic",
        field_manager="b",
    )
    store.patch(key, ns, "web", {"spec": {"replicas": 3}}, "merge", subresource="scale")
    store.patch(
        key,
        ns,
        "web",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}},
        "apply",
        field_manager="c",
        force=True,
    )
    current = store.get(key, ns, "web")
    store.update(key, {**current, "metadata": {**current["metadata"], "labels": {"x": "y"}}})
    svc = {"metadata": {"name": "svc"}, "spec": {"selector": labels, "ports": [{"port": 80}]}}
    store.create("services", svc, namespace=ns)
    store.patch("services", ns, "svc", {"spec": {"type": "NodePort"}}, "merge")
    store.create("secrets", {"metadata": {"name": "s"}, "data": {"a": "YQ=="}}, namespace=ns)
    store.patch("secrets", ns, "s", {"stringData": {"b": "b"}}, "merge")
    pod = {"metadata": {"name": "p", "labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    store.create("pods", pod, namespace=ns)
    store.patch("pods", ns, "p", {"spec": {"nodeName": "n1"}}, "merge")
    store.patch("pods", ns, "p", {"status": {"phase": "Running"}}, "merge", subresource="status")
    store.patch(
        "pods",
        ns,
        "p",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        "strategic",
        subresource="status",
    )
    store.record_event(store.get("pods", ns, "p"), "Started", "started container c")
    store.record_event(store.get("pods", ns, "p"), "Started", "started container c")
    store.delete("namespaces", None, "team")

    assert len(seen) > 20
    for ev, obj_then, old_then in seen:
        assert json.dumps(ev.obj) == obj_then, f"{ev.type} {ev.key} {ev.obj['metadata']['name']} changed later"
        assert json.dumps(ev.old) == old_then, f"the old version in {ev.type} {ev.key} changed later"
    versions = [ev.resource_version for ev, _, _ in seen]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


def test_get_returns_what_the_last_event_carried(store: Store) -> None:
    last: dict[str, Event] = {}
    store.subscribe(lambda ev: last.__setitem__(ev.obj["metadata"]["name"], ev))
    store.create("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, namespace="default")
    store.patch("configmaps", "default", "c", {"data": {"b": "2"}}, "merge", field_manager="x")
    assert store.get("configmaps", "default", "c") == last["c"].obj
