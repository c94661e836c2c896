"""A read-only mirror of store objects for the loops that list a lot (an informer cache).

Store events carry the committed object, shared read-only between subscribers, so the cache
keeps references instead of copies: listing 200 pods costs a dict walk, not 200 deep copies.
It is updated synchronously inside the store's callback, so a loop reads its own writes at
once; events dispatched out of order by concurrent writers are resolved by resourceVersion.
Objects returned are shared: never change them (copy first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class ObjectCache:
    """Objects of some store types, by namespace and name.

    Args:
        store: the embedded store.
        keys: store keys to mirror (``pods``, ``nodes``, ``replicasets.apps``...).
    """

    def __init__(self, store: Any, keys: Iterable[str]) -> None:
        self.store = store
        self.keys = tuple(keys)
        self._lock = threading.Lock()
        self._objs: dict[str, dict[str, dict[str, Obj]]] = {k: {} for k in self.keys}
        self._gone: dict[tuple[str, str, str], int] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Subscribe, then load what exists (events racing the load are ordered by resourceVersion)."""
        if self._unsubscribe is not None:
            return
        self._unsubscribe = self.store.subscribe(self._on_event)
        for key in self.keys:
            items, _ = self.store.list(key)
            for obj in items:
                self._put(key, obj)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def list(self, key: str, namespace: str | None = None) -> list[Obj]:
        """Shared objects of ``key`` (in ``namespace`` when given); do not modify them."""
        with self._lock:
            by_ns = self._objs[key]
            if namespace is not None:
                return list((by_ns.get(namespace) or {}).values())
            return [o for bucket in by_ns.values() for o in bucket.values()]

    def get(self, key: str, namespace: str | None, name: str) -> Obj | None:
        """One shared object, or ``None``."""
        with self._lock:
            return (self._objs[key].get(namespace or "") or {}).get(name)

    def _on_event(self, event: Any) -> None:
        if event.key not in self._objs:
            return
        if event.type == "DELETED":
            self._drop(event.key, event.obj, event.resource_version)
        elif event.type in ("ADDED", "MODIFIED"):
            self._put(event.key, event.obj)

    def _put(self, key: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name", "")
        rv = _rv(obj)
        with self._lock:
            if self._gone.get((key, ns, name), -1) >= rv:
                return
            bucket = self._objs[key].setdefault(ns, {})
            current = bucket.get(name)
            if current is None or _rv(current) <= rv:
                bucket[name] = obj

    def _drop(self, key: str, obj: Obj, rv: int) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name", "")
        with self._lock:
            bucket = self._objs[key].get(ns) or {}
            current = bucket.get(name)
            if current is not None and _rv(current) <= rv:
                del bucket[name]
            self._gone[(key, ns, name)] = rv
            if len(self._gone) > 50_000:
                self._gone.clear()
