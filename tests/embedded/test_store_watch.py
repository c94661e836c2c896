"""Watches: from now, from a resourceVersion (history), 410 Expired, selectors, bookmarks; subscribers."""

from __future__ import annotations

import threading

import pytest

from labkit.embedded.kube.store import Event, Store
from labkit.errors import ApiError


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {}}


def drain(watch, n: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        ev = watch.get(timeout=1)
        assert ev is not None, f"expected {n} events, got {out}"
        out.append((ev.type, ev.obj["metadata"]["name"]))
    return out


def test_watch_from_now_sees_changes_in_order(store: Store) -> None:
    store.create("configmaps", cm("before"), namespace="default")
    watch = store.watch("configmaps", "default")
    store.create("configmaps", cm("a"), namespace="default")
    store.patch("configmaps", "default", "a", {"data": {"k": "v"}}, "merge")
    store.delete("configmaps", "default", "a")
    assert drain(watch, 3) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert watch.get(timeout=0.05) is None


def test_deleted_event_carries_a_new_resource_version(store: Store) -> None:
    obj = store.create("configmaps", cm("a"), namespace="default")
    watch = store.watch("configmaps", "default")
    store.delete("configmaps", "default", "a")
    ev = watch.get(timeout=1)
    assert ev is not None
    assert ev.resource_version > int(obj["metadata"]["resourceVersion"])
    assert ev.obj["metadata"]["resourceVersion"] == str(ev.resource_version)


def test_watch_from_resource_version_replays_history(store: Store) -> None:
    first = store.create("configmaps", cm("a"), namespace="default")
    store.create("configmaps", cm("b"), namespace="default")
    store.create("secrets", {"metadata": {"name": "s"}}, namespace="default")
    store.patch("configmaps", "default", "a", {"data": {"x": "1"}}, "merge")
    watch = store.watch("configmaps", "default", resource_version=first["metadata"]["resourceVersion"])
    assert drain(watch, 2) == [("ADDED", "b"), ("MODIFIED", "a")]
    store.create("configmaps", cm("c"), namespace="default")
    assert drain(watch, 1) == [("ADDED", "c")]


def test_send_initial_events(store: Store) -> None:
    store.create("configmaps", cm("a"), namespace="default")
    store.create("configmaps", cm("b"), namespace="kube-system")
    watch = store.watch("configmaps", send_initial=True)
    assert sorted(drain(watch, 2)) == [("ADDED", "a"), ("ADDED", "b")]


def test_too_old_resource_version_is_410_expired(clock) -> None:  # type: ignore[no-untyped-def]
    store = Store(clock, history=5)
    start = store.current_resource_version()
    for i in range(10):
        store.create("configmaps", cm(f"c{i}"), namespace="default")
    with pytest.raises(ApiError) as info:
        store.watch("configmaps", resource_version=start)
    assert info.value.status == 410
    assert info.value.reason == "Expired"
    assert info.value.what.startswith(f"too old resource version: {start} (")
    recent = store.current_resource_version() - 2
    watch = store.watch("configmaps", resource_version=recent)
    assert [name for _, name in drain(watch, 2)] == ["c8", "c9"]


def test_label_selector_watch_sees_objects_enter_and_leave(store: Store) -> None:
    watch = store.watch("configmaps", "default", label_selector="app=web")
    store.create("configmaps", cm("a", app="db"), namespace="default")
    store.patch("configmaps", "default", "a", {"metadata": {"labels": {"app": "web"}}}, "merge")
    store.patch("configmaps", "default", "a", {"data": {"k": "v"}}, "merge")
    store.patch("configmaps", "default", "a", {"metadata": {"labels": {"app": "db"}}}, "merge")
    assert drain(watch, 3) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert watch.get(timeout=0.05) is None


def test_field_selector_watch_on_one_name(store: Store) -> None:
    watch = store.watch("configmaps", "default", field_selector="metadata.name=b")
    store.create("configmaps", cm("a"), namespace="default")
    store.create("configmaps", cm("b"), namespace="default")
    assert drain(watch, 1) == [("ADDED", "b")]


def test_bookmark_after_quiet_period(store: Store) -> None:
    watch = store.watch("configmaps", "default")
    store.create("secrets", {"metadata": {"name": "s"}}, namespace="default")
    bookmark = watch.bookmark()
    assert bookmark is not None
    assert bookmark.type == "BOOKMARK"
    assert bookmark.obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"resourceVersion": str(store.current_resource_version())},
    }
    store.create("configmaps", cm("a"), namespace="default")
    assert watch.bookmark() is None, "no bookmark while events are queued"


def test_close_unblocks_a_waiting_get(store: Store) -> None:
    watch = store.watch("configmaps")
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(watch.get(timeout=5)))
    t.start()
    watch.close()
    t.join(timeout=2)
    assert got == [None]
    store.create("configmaps", cm("a"), namespace="default")
    assert watch.get(timeout=0.05) is None


def test_waker_is_called_per_event(store: Store) -> None:
    watch = store.watch("configmaps")
    calls: list[int] = []
    watch.set_waker(lambda: calls.append(1))
    store.create("configmaps", cm("a"), namespace="default")
    assert calls == [1]


def test_subscribers_get_every_write_outside_the_lock(store: Store) -> None:
    seen: list[Event] = []

    def callback(ev: Event) -> None:
        # reading the store from a callback must not deadlock, even from another thread
        t = threading.Thread(target=lambda: store.list("configmaps"))
        t.start()
        t.join(timeout=2)
        assert not t.is_alive()
        seen.append(ev)

    unsubscribe = store.subscribe(callback)
    store.create("configmaps", cm("a"), namespace="default")
    store.delete("configmaps", "default", "a")
    assert [(e.type, e.key) for e in seen] == [("ADDED", "configmaps"), ("DELETED", "configmaps")]
    assert seen[1].old is not None and seen[1].old["metadata"]["name"] == "a"
    unsubscribe()
    store.create("configmaps", cm("b"), namespace="default")
    assert len(seen) == 2


def test_a_failing_subscriber_does_not_break_writes(store: Store) -> None:
    def broken(ev: Event) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    assert store.create("configmaps", cm("a"), namespace="default")["metadata"]["name"] == "a"


def test_concurrent_writers_get_unique_increasing_versions(store: Store) -> None:
    versions: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(50):
            obj = store.create("configmaps", cm(f"w{n}-{i}"), namespace="default")
            with lock:
                versions.append(int(obj["metadata"]["resourceVersion"]))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(versions)) == 200
    assert store.count("configmaps", "default") == 200
