"""Watch semantics of the embedded API server through ``kubernetes.watch.Watch`` and raw streams."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from twin_support import api_server


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    state = tmp_path_factory.mktemp("apiserver-watch")
    with api_server(state, history=200, bookmark_interval=0.2) as (store, server, api):
        yield SimpleNamespace(store=store, server=server, api=api, core=client.CoreV1Api(api))


@pytest.fixture
def ns(kube: SimpleNamespace) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    kube.core.create_namespace({"metadata": {"name": name}})
    return name


def test_watch_from_resource_version_sees_changes_in_order(kube: SimpleNamespace, ns: str) -> None:
    rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"v": "1"}})
    kube.core.patch_namespaced_config_map("a", ns, {"data": {"v": "2"}})
    kube.core.delete_namespaced_config_map("a", ns)
    w = watch.Watch()
    seen = []
    for event in w.stream(kube.core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("v")))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("DELETED", "a", "2")]
    assert isinstance(event["object"], client.V1ConfigMap)


def test_watch_without_resource_version_starts_with_synthetic_adds(kube: SimpleNamespace, ns: str) -> None:
    for name in ("x", "y"):
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    w = watch.Watch()
    seen = []

    def later() -> None:
        time.sleep(0.2)
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "z"}})

    threading.Thread(target=later, daemon=True).start()
    for event in w.stream(kube.core.list_namespaced_config_map, ns, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "x"), ("ADDED", "y"), ("ADDED", "z")]


def test_watch_filters_by_label_and_field_selector(kube: SimpleNamespace, ns: str) -> None:
    rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "keep", "labels": {"app": "x"}}})
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "skip", "labels": {"app": "y"}}})
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "other", "labels": {"app": "x"}}})
    w = watch.Watch()
    names = [
        e["object"].metadata.name
        for e in w.stream(
            kube.core.list_namespaced_config_map,
            ns,
            resource_version=rv,
            label_selector="app=x",
            field_selector="metadata.name=keep",
            timeout_seconds=1,
        )
    ]
    assert names == ["keep"]


def test_timeout_seconds_ends_the_stream(kube: SimpleNamespace, ns: str) -> None:
    rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    t0 = time.monotonic()
    events = list(
        watch.Watch().stream(kube.core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1)
    )
    elapsed = time.monotonic() - t0
    assert events == []
    assert 0.9 <= elapsed < 3


def test_bookmarks_carry_the_latest_resource_version(kube: SimpleNamespace, ns: str) -> None:
    rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    resp = kube.core.list_namespaced_config_map(
        ns, watch=True, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=1, _preload_content=False
    )
    events = [json.loads(line) for line in resp.data.decode().splitlines() if line]
    types = [e["type"] for e in events]
    assert types[0] == "ADDED"
    assert "BOOKMARK" in types
    mark = next(e for e in events if e["type"] == "BOOKMARK")["object"]
    assert mark["kind"] == "ConfigMap"
    assert mark["apiVersion"] == "v1"
    assert int(mark["metadata"]["resourceVersion"]) >= int(events[0]["object"]["metadata"]["resourceVersion"])
    # the client's Watch remembers the bookmark's version to resume from
    w = watch.Watch()
    for _ in w.stream(kube.core.list_namespaced_config_map, ns, resource_version=rv, allow_watch_bookmarks=True,
                      timeout_seconds=1):  # fmt: skip
        pass
    assert int(w.resource_version) >= int(mark["metadata"]["resourceVersion"])


def test_send_initial_events_ends_with_a_marked_bookmark(kube: SimpleNamespace, ns: str) -> None:
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "i1"}})
    resp = kube.core.list_namespaced_config_map(
        ns,
        watch=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    events = [json.loads(line) for line in resp.data.decode().splitlines() if line]
    assert events[0]["type"] == "ADDED"
    marker = events[1]
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_too_old_resource_version_is_410_expired(kube: SimpleNamespace, ns: str) -> None:
    old_rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    for i in range(250):  # more changes than the store's history (200) keeps
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": f"churn-{i}"}})
    resp = kube.core.list_namespaced_config_map(
        ns, watch=True, resource_version=old_rv, timeout_seconds=2, _preload_content=False
    )
    assert resp.status == 200
    [event] = [json.loads(line) for line in resp.data.decode().splitlines() if line]
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version")
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(
            kube.core.list_namespaced_config_map, ns, resource_version=old_rv, timeout_seconds=2
        ):
            pass
    assert err.value.status == 410


def test_legacy_watch_path_and_single_object_watch(kube: SimpleNamespace, ns: str) -> None:
    rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "one"}})
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "two"}})
    url = f"{kube.api.configuration.host}/api/v1/watch/namespaces/{ns}/configmaps/two"
    resp = kube.api.rest_client.pool_manager.request(
        "GET",
        f"{url}?resourceVersion={rv}&timeoutSeconds=1",
        headers={"Authorization": kube.api.configuration.api_key["BearerToken"]},
    )
    events = [json.loads(line) for line in resp.data.decode().splitlines() if line]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "two")]


def test_watch_event_latency_is_small(kube: SimpleNamespace, ns: str) -> None:
    rv = kube.core.list_namespaced_config_map(ns).metadata.resource_version
    w = watch.Watch()
    arrived: list[float] = []
    ready = threading.Event()

    def consume() -> None:
        ready.set()
        for _ in w.stream(kube.core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
            arrived.append(time.monotonic())
            w.stop()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    ready.wait()
    time.sleep(0.2)
    sent = time.monotonic()
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "fast"}})
    thread.join(5)
    assert arrived
    assert arrived[0] - sent < 0.25  # pushed at once, not found by polling
