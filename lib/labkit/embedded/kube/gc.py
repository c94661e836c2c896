"""Deletion semantics: finalizers, ownerReference garbage collection and namespace termination.

Runs synchronously inside the store's lock, within the write that triggers it, so the
events a watcher sees come in the order a real cluster produces them:

- an object with finalizers gets ``deletionTimestamp`` (MODIFIED) and goes (DELETED) when
  its last finalizer is removed;
- ``Background``: the owner goes at once, then each dependent whose owners are all gone is
  deleted (dependents with a surviving owner just lose the dangling reference);
- ``Foreground``: the owner gets the ``foregroundDeletion`` finalizer, its dependents are
  deleted, and it goes when none is left;
- ``Orphan``: dependents lose their ownerReference to it and stay;
- a namespace turns ``Terminating``, everything in it is deleted, and it goes once empty
  (and its ``kubernetes`` finalizer is gone);
- a CRD turns Terminating, its custom resources are deleted, then it goes and its type is
  unregistered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .resources import CRD_KEY, ResourceType

if TYPE_CHECKING:
    from .store import Event, Store

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
NAMESPACE_FINALIZER = "kubernetes"
GC_MANAGER = "kube-controller-manager"


class GarbageCollector:
    """Deletion, finalizers and cascading for one :class:`~.store.Store` (called with its lock held)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._tearing_down: set[str] = set()

    # ------------------------------------------------------------------------------------------------- helpers

    def _clone(self, obj: Obj) -> Obj:
        from .store import clone

        return clone(obj)

    def _commit(self, rt: ResourceType, etype: str, new: Obj, old: Obj, batch: list[Event]) -> Obj:
        return self._store._commit(rt, etype, new, old, batch)

    def _mark_deleting(self, rt: ResourceType, obj: Obj, finalizers: list[str], batch: list[Event]) -> Obj:
        new = self._clone(obj)
        meta = new["metadata"]
        meta["finalizers"] = finalizers
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = self._store._now()
            meta["deletionGracePeriodSeconds"] = 0
            meta["generation"] = int(meta.get("generation") or 1) + 1
        return self._commit(rt, "MODIFIED", new, obj, batch)

    def _owner_alive(self, ref: dict[str, Any], namespace: str) -> bool:
        where = self._store._uids.get(ref.get("uid", ""))
        if where is None:
            return False
        return where[1] in ("", namespace)

    # -------------------------------------------------------------------------------------------------- create

    def after_create(self, rt: ResourceType, obj: Obj, batch: list[Event]) -> None:
        """Work a real cluster's controllers do right after a create: a namespace's default ServiceAccount,
        and collecting an object whose owners are already gone."""
        store = self._store
        meta = obj["metadata"]
        if rt.key == "namespaces":
            sa_rt = store.registry.get("serviceaccounts")
            if store._find("serviceaccounts", meta["name"], "default") is None:
                sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
                store._create_locked(sa_rt, sa, meta["name"], batch, manager=GC_MANAGER)
            return
        refs = meta.get("ownerReferences") or ()
        if refs and not any(self._owner_alive(r, meta.get("namespace", "")) for r in refs):
            current = store._find(rt.key, meta.get("namespace", ""), meta["name"])
            if current is not None:
                self.delete(rt, current, "Background", False, batch)

    # -------------------------------------------------------------------------------------------------- delete

    def delete(self, rt: ResourceType, obj: Obj, propagation: str, dry_run: bool, batch: list[Event]) -> Obj:
        """Start deleting ``obj``; returns it as it stands after the call (or its last state)."""
        store = self._store
        if rt.key == "namespaces":
            return self._delete_namespace(rt, obj, dry_run, batch)
        meta = obj["metadata"]
        uid = meta.get("uid", "")
        finalizers = list(meta.get("finalizers") or [])
        has_dependents = bool(store._dependents.get(uid))
        if propagation == "Foreground" and has_dependents and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if dry_run:
            if finalizers:
                preview = self._clone(obj)
                preview["metadata"]["finalizers"] = finalizers
                preview["metadata"].setdefault("deletionTimestamp", store._now())
                return preview
            return obj
        if propagation == "Orphan" and has_dependents:
            self._orphan(uid, batch)
        if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
            return obj  # already being deleted; nothing new to do
        if finalizers:
            current = self._mark_deleting(rt, obj, finalizers, batch)
            if FOREGROUND in finalizers:
                self._delete_dependents(uid, "Foreground", batch)
                current = self._check_foreground(rt, current, batch) or current
            if rt.key == CRD_KEY:
                current = self._cleanup_crd(current, batch) or current
            return current
        return self.remove(rt, obj, batch)

    def remove(self, rt: ResourceType, obj: Obj, batch: list[Event], stored: Obj | None = None) -> Obj:
        """Remove an object that has no finalizers left, then cascade; returns its last state.

        ``stored`` is the version in the store when ``obj`` is an update that emptied the
        finalizers (it is removed without committing that update, as the API server does).
        """
        store = self._store
        final = self._clone(obj)
        self._commit(rt, "DELETED", final, stored if stored is not None else obj, batch)
        store._release(rt, obj)
        meta = obj["metadata"]
        if rt.key == CRD_KEY:
            store.registry.unregister_crd(obj)
        uid = meta.get("uid", "")
        cascade = "Foreground" if FOREGROUND in (meta.get("finalizers") or ()) else "Background"
        for key, ns, name in sorted(store._dependents.get(uid, ())):
            dependent = store._find(key, ns, name)
            dep_rt = store.registry.find(key)
            if dependent is not None and dep_rt is not None:
                self._collect(dep_rt, dependent, cascade, batch)
        for ref in meta.get("ownerReferences") or ():
            where = store._uids.get(ref.get("uid", ""))
            if where is None:
                continue
            owner = store._find(*where)
            owner_rt = store.registry.find(where[0])
            if owner is not None and owner_rt is not None:
                self._check_foreground(owner_rt, owner, batch)
        namespace = meta.get("namespace")
        if rt.namespaced and namespace:
            self.check_namespace(namespace, batch)
        if not rt.builtin:
            crd = store._crd_for(rt)
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                self._check_crd(crd, batch)
        return final

    def _collect(self, rt: ResourceType, dependent: Obj, cascade: str, batch: list[Event]) -> None:
        """An owner of ``dependent`` is gone: drop the dangling reference, or delete it if no owner is left."""
        meta = dependent["metadata"]
        refs = meta.get("ownerReferences") or []
        namespace = meta.get("namespace", "")
        alive = [r for r in refs if self._owner_alive(r, namespace)]
        if alive:
            if len(alive) != len(refs):
                new = self._clone(dependent)
                new["metadata"]["ownerReferences"] = alive
                self._commit(rt, "MODIFIED", new, dependent, batch)
            return
        if meta.get("deletionTimestamp") and cascade == "Background":
            return
        self.delete(rt, dependent, cascade, False, batch)

    def _delete_dependents(self, uid: str, propagation: str, batch: list[Event]) -> None:
        store = self._store
        for key, ns, name in sorted(store._dependents.get(uid, ())):
            dependent = store._find(key, ns, name)
            dep_rt = store.registry.find(key)
            if dependent is None or dep_rt is None:
                continue
            others = [
                r
                for r in dependent["metadata"].get("ownerReferences") or ()
                if r.get("uid") != uid and self._owner_alive(r, ns)
            ]
            if others:
                continue  # another owner keeps it
            self.delete(dep_rt, dependent, propagation, False, batch)

    def _check_foreground(self, rt: ResourceType, owner: Obj, batch: list[Event]) -> Obj | None:
        owner = self._store._find(rt.key, owner["metadata"].get("namespace", ""), owner["metadata"]["name"])  # type: ignore[assignment]
        if owner is None:
            return None
        meta = owner["metadata"]
        if not meta.get("deletionTimestamp") or FOREGROUND not in (meta.get("finalizers") or ()):
            return None
        if self._store._dependents.get(meta.get("uid", "")):
            return None
        new = self._clone(owner)
        new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != FOREGROUND]
        current = self._commit(rt, "MODIFIED", new, owner, batch)
        if not current["metadata"]["finalizers"]:
            return self.remove(rt, current, batch)
        return current

    def _orphan(self, uid: str, batch: list[Event]) -> None:
        store = self._store
        for key, ns, name in sorted(store._dependents.get(uid, ())):
            dependent = store._find(key, ns, name)
            dep_rt = store.registry.find(key)
            if dependent is None or dep_rt is None:
                continue
            new = self._clone(dependent)
            new["metadata"]["ownerReferences"] = [
                r for r in new["metadata"].get("ownerReferences") or () if r.get("uid") != uid
            ]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._commit(dep_rt, "MODIFIED", new, dependent, batch)

    # ---------------------------------------------------------------------------------------------- namespaces

    def _delete_namespace(self, rt: ResourceType, obj: Obj, dry_run: bool, batch: list[Event]) -> Obj:
        store = self._store
        name = obj["metadata"]["name"]
        if (obj.get("status") or {}).get("phase") == "Terminating":
            return obj
        new = self._clone(obj)
        new["metadata"]["deletionTimestamp"] = store._now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return new
        self._commit(rt, "MODIFIED", new, obj, batch)
        self._tearing_down.add(name)
        try:
            self._delete_contents(name, batch)
        finally:
            self._tearing_down.discard(name)
        self.check_namespace(name, batch)
        current = store._find("namespaces", "", name)
        return current if current is not None else new

    def _delete_contents(self, name: str, batch: list[Event]) -> None:
        store = self._store
        for key in list(store._data):
            ns_rt = store.registry.find(key)
            if ns_rt is None or not ns_rt.namespaced:
                continue
            bucket = store._data[key].get(name) or {}
            for obj_name in sorted(bucket):
                item = bucket.get(obj_name)
                if item is not None and not item["metadata"].get("deletionTimestamp"):
                    self.delete(ns_rt, item, "Background", False, batch)

    def _contents(self, namespace: str) -> tuple[dict[str, int], dict[str, int]]:
        """Objects left in a namespace per resource, and finalizers still held there."""
        store = self._store
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for key, by_ns in store._data.items():
            bucket = by_ns.get(namespace)
            if not bucket or key == "namespaces":
                continue
            rt = store.registry.find(key)
            if rt is None or not rt.namespaced:
                continue
            remaining[key] = len(bucket)
            for item in bucket.values():
                for f in item["metadata"].get("finalizers") or ():
                    finalizers[f] = finalizers.get(f, 0) + 1
        return remaining, finalizers

    def check_namespace(self, name: str, batch: list[Event]) -> None:
        """Finish deleting a Terminating namespace once it is empty, or say what is left in its conditions."""
        store = self._store
        if name in self._tearing_down:
            return
        ns = store._find("namespaces", "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        rt = store.registry.get("namespaces")
        remaining, finalizers = self._contents(name)
        spec_finalizers = list((ns.get("spec") or {}).get("finalizers") or [])
        if remaining and NAMESPACE_FINALIZER in spec_finalizers:
            conditions = self._namespace_conditions(ns, remaining, finalizers)
            if conditions != (ns.get("status") or {}).get("conditions"):
                new = self._clone(ns)
                new["status"]["conditions"] = conditions
                self._commit(rt, "MODIFIED", new, ns, batch)
            return
        if NAMESPACE_FINALIZER in spec_finalizers:
            new = self._clone(ns)
            new["spec"]["finalizers"] = [f for f in spec_finalizers if f != NAMESPACE_FINALIZER]
            ns = self._commit(rt, "MODIFIED", new, ns, batch)
        if not (ns.get("spec") or {}).get("finalizers") and not ns["metadata"].get("finalizers"):
            self.remove(rt, ns, batch)

    def _namespace_conditions(
        self, ns: Obj, remaining: dict[str, int], finalizers: dict[str, int]
    ) -> list[dict[str, Any]]:
        now = self._store._now()
        old = {c.get("type"): c for c in (ns.get("status") or {}).get("conditions") or ()}

        def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
            prev = old.get(ctype)
            stamp = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
            return {"type": ctype, "status": status, "lastTransitionTime": stamp, "reason": reason, "message": message}

        content = ", ".join(f"{key} has {n} resource instances" for key, n in sorted(remaining.items()))
        out = [
            cond(
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
            cond(
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
            cond(
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
            cond(
                "NamespaceContentRemaining", "True", "SomeResourcesRemain", f"Some resources are remaining: {content}"
            ),
        ]
        if finalizers:
            held = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
            out.append(
                cond(
                    "NamespaceFinalizersRemaining",
                    "True",
                    "SomeFinalizersRemain",
                    f"Some content in the namespace has finalizers remaining: {held}",
                )
            )
        else:
            out.append(
                cond(
                    "NamespaceFinalizersRemaining",
                    "False",
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                )
            )
        return out

    # ---------------------------------------------------------------------------------------------------- CRDs

    def _cleanup_crd(self, crd: Obj, batch: list[Event]) -> Obj | None:
        store = self._store
        spec = crd.get("spec") or {}
        key = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        cr_rt = store.registry.find(key)
        crd_rt = store.registry.get(CRD_KEY)
        conditions = [c for c in (crd.get("status") or {}).get("conditions") or () if c.get("type") != "Terminating"]
        conditions.append(
            {
                "type": "Terminating",
                "status": "True",
                "lastTransitionTime": store._now(),
                "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress",
            }
        )
        new = self._clone(crd)
        new.setdefault("status", {})["conditions"] = conditions
        crd = self._commit(crd_rt, "MODIFIED", new, crd, batch)
        if cr_rt is not None:
            for bucket in list((store._data.get(key) or {}).values()):
                for name in sorted(bucket):
                    item = bucket.get(name)
                    if item is not None and not item["metadata"].get("deletionTimestamp"):
                        self.delete(cr_rt, item, "Background", False, batch)
        return self._check_crd(crd, batch) or store._find(CRD_KEY, "", crd["metadata"]["name"]) or crd

    def _check_crd(self, crd: Obj, batch: list[Event]) -> Obj | None:
        store = self._store
        crd = store._find(CRD_KEY, "", crd["metadata"]["name"])  # type: ignore[assignment]
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return None
        spec = crd.get("spec") or {}
        key = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        if any(store._data.get(key, {}).values()):
            return None
        crd_rt = store.registry.get(CRD_KEY)
        finalizers = [f for f in crd["metadata"].get("finalizers") or () if f != CRD_CLEANUP]
        new = self._clone(crd)
        new["metadata"]["finalizers"] = finalizers
        current = self._commit(crd_rt, "MODIFIED", new, crd, batch)
        if not finalizers:
            return self.remove(crd_rt, current, batch)
        return current
