"""The state of the embedded API server: every object, its history, watches and pod logs.

One :class:`Store` holds JSON objects exactly as the API serves them. It keeps the
server-maintained fields (uid, resourceVersion, creationTimestamp, generation,
managedFields), applies defaults and validation, runs the four patch types, keeps a
bounded history for watches, and does garbage collection and namespace deletion
(:mod:`.gc`) synchronously inside the delete that triggers them, so every event a
watcher expects is emitted in order.

Thread-safe: one re-entrant lock around every read and write. Everything returned is a
copy the caller may change. Subscribers and watches get :class:`Event` objects whose
``obj`` is shared between them: treat it as read-only.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import marshal
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from labkit.errors import ApiError, Conflict, Forbidden, Invalid, NotFound

from . import apply as ssa
from .defaults import apply_defaults, apply_status_defaults
from .gc import GarbageCollector
from .patch import decode_body, json_patch, merge_patch, strategic_merge
from .resources import CRD_KEY, ResourceRegistry, ResourceType
from .schema import Schema, openapi_defaults, openapi_prune, schema_for
from .selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
    selector_string,
)
from .validation import validate, validate_status, validate_update

log = logging.getLogger("labkit.embedded.kube.store")

Obj = dict[str, Any]

#: Namespaces every cluster starts with.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
#: Namespaces the API server refuses to delete.
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
#: How many events the watch history keeps; older resourceVersions answer 410 Expired.
HISTORY_SIZE = 10_000
#: Lines of log kept per container.
LOG_LINES = 5_000
#: Manager recorded for writes that name none.
DEFAULT_MANAGER = "unknown"
_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
_NODE_PORTS = (30000, 32767)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_WRITE_EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED")


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, strings, numbers, booleans, None)."""
    return marshal.loads(marshal.dumps(value))


def rfc3339(ts: float) -> str:
    """Seconds since the epoch as ``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def rfc3339_micro(ts: float) -> str:
    """Seconds since the epoch as ``2024-05-01T12:00:00.123456Z`` (MicroTime)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e6):06d}Z"


def rfc3339_nano(ts: float) -> str:
    """Seconds since the epoch with nanoseconds, as ``kubectl logs --timestamps`` prints them."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e9):09d}Z"


@dataclass(frozen=True)
class Event:
    """One change to one object.

    Attributes:
        type: ``ADDED``, ``MODIFIED``, ``DELETED`` (or ``BOOKMARK`` from :meth:`Watch.bookmark`).
        key: store key of the object's type (``pods``, ``deployments.apps``).
        obj: the object after the change (for DELETED its last state); shared, read-only.
        resource_version: the store's resourceVersion of this change.
        old: the object before the change (MODIFIED and DELETED), when known; read-only.
    """

    type: str
    key: str
    obj: dict[str, Any]
    resource_version: int
    old: dict[str, Any] | None = None


def _error(cls: type[ApiError], what: str, fix: str | None, status: int, reason: str, **details: Any) -> ApiError:
    err = cls(what, fix, status=status, reason=reason)
    err.details = {k: v for k, v in details.items() if v is not None}  # type: ignore[attr-defined]
    return err


def _resource(rt: ResourceType) -> str:
    return rt.key


def not_found(rt: ResourceType, name: str) -> NotFound:
    """The 404 the API server answers for a missing object."""
    return _error(  # type: ignore[return-value]
        NotFound,
        f'{_resource(rt)} "{name}" not found',
        f"check the name and namespace (kubectl get {rt.plural} -A)",
        404,
        "NotFound",
        name=name,
        group=rt.group,
        kind=rt.plural,
    )


def _conflict(rt: ResourceType, name: str, message: str, fix: str) -> Conflict:
    return _error(  # type: ignore[return-value]
        Conflict,
        f'Operation cannot be fulfilled on {_resource(rt)} "{name}": {message}',
        fix,
        409,
        "Conflict",
        name=name,
        group=rt.group,
        kind=rt.plural,
    )


def _bad_request(message: str, fix: str | None = None) -> Invalid:
    return _error(Invalid, message, fix, 400, "BadRequest")  # type: ignore[return-value]


class Watch:
    """A stream of :class:`Event` for one resource type, filtered like the API's ``watch=true``.

    Thread-safe. Use :meth:`get` (with a timeout) or iterate; :meth:`close` ends it. When
    the watch's selector stops (or starts) matching a modified object, it sees a DELETED
    (or ADDED) event, as on a real server.
    """

    #: A consumer this far behind is cut off (the server then ends the HTTP watch).
    MAX_BACKLOG = 100_000

    def __init__(
        self,
        store: Store,
        key: str,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> None:
        self.key = key
        self.namespace = namespace
        self._store = store
        self._labels = labels
        self._fields = fields
        self._queue: deque[Event] = deque()
        self._cv = threading.Condition(threading.Lock())
        self._waker: Callable[[], None] | None = None
        self.closed = False
        self.last_resource_version = 0

    def _selects(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        if not self._labels.empty and not self._labels.matches(meta.get("labels")):
            return False
        return self._fields.empty or self._fields.matches(obj)

    def _offer(self, ev: Event) -> None:
        """Called by the store (under its lock) for every change of this watch's type."""
        now = self._selects(ev.obj)
        if ev.type == "MODIFIED" and ev.old is not None:
            before = self._selects(ev.old)
            if now and not before:
                ev = Event("ADDED", ev.key, ev.obj, ev.resource_version, ev.old)
            elif before and not now:
                ev = Event("DELETED", ev.key, ev.obj, ev.resource_version, ev.old)
            elif not now:
                return
        elif not now:
            return
        self._push(ev)

    def _push(self, ev: Event) -> None:
        with self._cv:
            if self.closed:
                return
            if len(self._queue) >= self.MAX_BACKLOG:
                log.warning("watch on %s fell %d events behind; closing it", self.key, len(self._queue))
                self.closed = True
            else:
                self._queue.append(ev)
            self._cv.notify_all()
        waker = self._waker
        if waker is not None:
            try:
                waker()
            except Exception:  # a broken waker must not fail the write
                log.exception("watch waker failed")

    def set_waker(self, fn: Callable[[], None] | None) -> None:
        """Call ``fn`` (from the writer's thread) whenever an event arrives, e.g. ``loop.call_soon_threadsafe``."""
        self._waker = fn
        if fn is not None and self._queue:
            fn()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever); None on timeout or when closed."""
        with self._cv:
            if not self._queue and not self.closed:
                self._cv.wait_for(lambda: self._queue or self.closed, timeout)
            if self._queue:
                ev = self._queue.popleft()
                self.last_resource_version = ev.resource_version
                return ev
            return None

    def get_nowait(self) -> Event | None:
        """The next event if one is queued, else None."""
        return self.get(0)

    def pending(self) -> int:
        """How many events are queued."""
        with self._cv:
            return len(self._queue)

    def bookmark(self) -> Event | None:
        """A BOOKMARK event with a resourceVersion it is safe to resume from; None while events are queued."""
        with self._store._lock, self._cv:
            if self._queue:
                return None
            rv = self._store._rv
            self.last_resource_version = rv
        rt = self._store.registry.find(self.key)
        obj: Obj = {"metadata": {"resourceVersion": str(rv)}}
        if rt is not None:
            obj = {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        return Event("BOOKMARK", self.key, obj, rv)

    def close(self) -> None:
        """Stop the watch; a blocked :meth:`get` returns None."""
        with self._cv:
            self.closed = True
            self._queue.clear()
            self._cv.notify_all()
        self._store._drop_watch(self)
        waker = self._waker
        if waker is not None:
            try:
                waker()
            except Exception:
                log.exception("watch waker failed")

    def __iter__(self) -> Iterator[Event]:
        while True:
            ev = self.get()
            if ev is None:
                if self.closed:
                    return
                continue
            yield ev

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store:
    """Every object of one embedded cluster, in memory.

    Args:
        clock: the simulated clock (timestamps come from it).
        registry: resource types; a fresh registry of built-ins by default.
        history: how many changes watches can resume from.
    """

    def __init__(self, clock: Any, registry: ResourceRegistry | None = None, *, history: int = HISTORY_SIZE) -> None:
        self.clock = clock
        self.registry = registry or ResourceRegistry()
        self._lock = threading.RLock()
        self._rv = 0
        self._data: dict[str, dict[str, dict[str, Obj]]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        self._managed: dict[str, list[ssa.ManagedEntry]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._history_floor = 0
        self._watches: dict[str, list[Watch]] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._logs: dict[tuple[str, str], dict[str, deque[tuple[float, str]]]] = {}
        self._cluster_ips: set[str] = set()
        self._next_ip = int(_SERVICE_CIDR.network_address) + 10
        self._node_ports: set[int] = set()
        self._event_index: dict[tuple[str, ...], tuple[str, str]] = {}
        self._rand = random.Random()
        self.gc = GarbageCollector(self)
        self._bootstrap()

    # ------------------------------------------------------------------------------------------------ bootstrap

    def _bootstrap(self) -> None:
        for name in SYSTEM_NAMESPACES:
            self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self._cluster_ips.add("10.96.0.1")
        self.create(
            "services",
            {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                },
            },
            namespace="default",
            field_manager="kube-apiserver",
        )

    # -------------------------------------------------------------------------------------------------- helpers

    def _now(self) -> str:
        return rfc3339(self.clock.now())

    def _bucket(self, key: str, namespace: str) -> dict[str, Obj]:
        by_ns = self._data.get(key)
        if by_ns is None:
            by_ns = self._data[key] = {}
        bucket = by_ns.get(namespace)
        if bucket is None:
            bucket = by_ns[namespace] = {}
        return bucket

    def _find(self, key: str, namespace: str, name: str) -> Obj | None:
        by_ns = self._data.get(key)
        if by_ns is None:
            return None
        bucket = by_ns.get(namespace)
        return None if bucket is None else bucket.get(name)

    def _scope(self, rt: ResourceType, namespace: str | None) -> str:
        if not rt.namespaced:
            return ""
        if not namespace:
            raise _bad_request(
                f"a namespace is required to address {rt.plural}",
                "pass a namespace (metadata.namespace or the request's namespace)",
            )
        return namespace

    def _schema(self, rt: ResourceType) -> Schema:
        return schema_for(rt.key, rt.schema, builtin=rt.builtin)

    def _scope_name(self, rt: ResourceType, subresource: str | None) -> str:
        if subresource == "status":
            return "status"
        return "main" if rt.has_status else "all"

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version is None:
            obj["apiVersion"] = rt.api_version
        if kind is None:
            obj["kind"] = rt.kind
        if kind is not None and kind != rt.kind:
            raise _bad_request(
                f"the kind in the body ({kind}) does not match the kind of the request ({rt.kind})",
                f"send {rt.kind} objects to {rt.plural}",
            )
        if api_version is not None and api_version != rt.api_version:
            other = self.registry.lookup(rt.group, api_version.rpartition("/")[2], rt.plural)
            group = api_version.rpartition("/")[0]
            if other is None or group != rt.group:
                raise _bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rt.api_version})",
                    f"use apiVersion: {rt.api_version}",
                )
            obj["apiVersion"] = rt.api_version  # another served version of a CRD: stored at the storage version

    def _check_namespace_usable(self, rt: ResourceType, namespace: str, name: str, verb: str = "create") -> None:
        ns = self._find("namespaces", "", namespace)
        if ns is None:
            raise not_found(self.registry.get("namespaces"), namespace)
        if (ns.get("status") or {}).get("phase") == "Terminating" and verb == "create":
            raise _error(
                Forbidden,
                f'{_resource(rt)} "{name}" is forbidden: unable to create new content in namespace {namespace} '
                f"because it is being terminated",
                "wait for the namespace to be deleted, then create it again",
                403,
                "Forbidden",
                name=name,
                group=rt.group,
                kind=rt.plural,
            )

    # ----------------------------------------------------------------------------------------------- commit/emit

    def _commit(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None, batch: list[Event]) -> Obj:
        """Store (or remove) ``obj`` with a new resourceVersion, record history and tell watches; lock held."""
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        ns = meta.get("namespace") or ""
        name = meta["name"]
        uid = meta.get("uid", "")
        bucket = self._bucket(rt.key, ns)
        if etype == "DELETED":
            bucket.pop(name, None)
            if not bucket:
                del self._data[rt.key][ns]
            self._uids.pop(uid, None)
            self._managed.pop(uid, None)
            self._index_owners(old, None, (rt.key, ns, name))
        else:
            bucket[name] = obj
            self._uids[uid] = (rt.key, ns, name)
            self._index_owners(old, obj, (rt.key, ns, name))
        ev = Event(etype, rt.key, obj, self._rv, old)  # stored objects are never changed in place: shared
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].resource_version
        self._history.append(ev)
        for watch in self._watches.get(rt.key, ()):
            watch._offer(ev)
        batch.append(ev)
        return obj

    def _index_owners(self, old: Obj | None, new: Obj | None, ident: tuple[str, str, str]) -> None:
        before = {r.get("uid") for r in ((old or {}).get("metadata") or {}).get("ownerReferences") or ()}
        after = {r.get("uid") for r in ((new or {}).get("metadata") or {}).get("ownerReferences") or ()}
        for uid in before - after:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(ident)
                if not deps:
                    del self._dependents[uid]
        for uid in after - before:
            if uid:
                self._dependents.setdefault(uid, set()).add(ident)

    def _dispatch(self, batch: list[Event]) -> None:
        if not batch or not self._subscribers:
            return
        subscribers = list(self._subscribers)
        for ev in batch:
            for callback in subscribers:
                try:
                    callback(ev)
                except Exception:  # one broken controller must not break writes
                    log.exception("store subscriber %r failed on %s %s", callback, ev.type, ev.key)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` after every committed write, outside the lock, in the writer's thread.

        Callbacks must be quick (enqueue work). Returns a function that unsubscribes.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def current_resource_version(self) -> int:
        """The resourceVersion of the latest change."""
        with self._lock:
            return self._rv

    # ------------------------------------------------------------------------------------------------------ read

    def get(self, key: str, namespace: str | None, name: str, *, subresource: str | None = None) -> Obj:
        """One object (for ``subresource="scale"``: its autoscaling/v1 Scale).

        Raises:
            NotFound: no such type, namespace-less request for a namespaced type, or no such object.
        """
        rt = self.registry.get(key)
        ns = self._scope(rt, namespace)
        with self._lock:
            obj = self._find(rt.key, ns, name)
            if obj is None:
                raise not_found(rt, name)
            if subresource == "scale":
                return self._scale_view(rt, obj)
            if subresource not in (None, "status") and subresource not in rt.subresources:
                raise not_found(rt, name)
            return clone(obj)

    def try_get(self, key: str, namespace: str | None, name: str) -> Obj | None:
        """One object, or None when it does not exist."""
        rt = self.registry.find(key)
        if rt is None or (rt.namespaced and not namespace):
            return None
        with self._lock:
            obj = self._find(rt.key, namespace or "" if rt.namespaced else "", name)
            return None if obj is None else clone(obj)

    def get_by_uid(self, uid: str) -> Obj | None:
        """The object with this uid, or None."""
        with self._lock:
            where = self._uids.get(uid)
            if where is None:
                return None
            obj = self._find(*where)
            return None if obj is None else clone(obj)

    def list(
        self,
        key: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], int]:
        """Objects of one type (in one namespace, or all when None), sorted by namespace and name.

        Returns:
            The matching objects and the list's resourceVersion.

        Raises:
            Invalid: 400 for a selector that does not parse.
            NotFound: unknown type.
        """
        rt = self.registry.get(key)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.key)
        with self._lock:
            items = [clone(o) for o in self._select(rt, namespace, labels, fields)]
            return items, self._rv

    def _select(
        self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> list[Obj]:
        by_ns = self._data.get(rt.key) or {}
        buckets = [(namespace, by_ns.get(namespace) or {})] if rt.namespaced and namespace else sorted(by_ns.items())
        name = fields.value_of("metadata.name")
        out: list[Obj] = []
        for _, bucket in buckets:
            if name is not None:
                candidates = [bucket[name]] if name in bucket else []
            else:
                candidates = [bucket[n] for n in sorted(bucket)]
            for obj in candidates:
                if not labels.empty and not labels.matches(obj["metadata"].get("labels")):
                    continue
                if not fields.empty and not fields.matches(obj):
                    continue
                out.append(obj)
        return out

    def count(self, key: str, namespace: str | None = None) -> int:
        """How many objects of a type exist (cheap; no copies)."""
        rt = self.registry.get(key)
        with self._lock:
            by_ns = self._data.get(rt.key) or {}
            if namespace:
                return len(by_ns.get(namespace) or {})
            return sum(len(b) for b in by_ns.values())

    # ---------------------------------------------------------------------------------------------------- create

    def create(
        self,
        key: str,
        obj: Obj,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """Create an object (POST).

        Args:
            key: store key of its type.
            obj: the object; not changed.
            namespace: the request's namespace (must match ``metadata.namespace`` when both are set).
            dry_run: validate and default, but store nothing.
            field_manager: who owns the fields set (managedFields).

        Raises:
            NotFound: unknown type or missing namespace.
            Conflict: AlreadyExists.
            Invalid: 400 for a mismatched namespace/kind, 422 for invalid fields.
            Forbidden: the namespace is being deleted.
        """
        rt = self.registry.get(key)
        obj = clone(obj)
        batch: list[Event] = []
        with self._lock:
            created = self._create_locked(
                rt, obj, namespace, batch, dry_run=dry_run, manager=field_manager or DEFAULT_MANAGER
            )
            out = clone(created)
        self._dispatch(batch)
        return out

    def _create_locked(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None,
        batch: list[Event],
        *,
        dry_run: bool = False,
        manager: str = DEFAULT_MANAGER,
        apply_entries: list[ssa.ManagedEntry] | None = None,
    ) -> Obj:
        if not isinstance(obj, dict):
            raise _bad_request("the request body must be a JSON object")
        self._check_type(rt, obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        body_ns = meta.get("namespace")
        if rt.namespaced:
            if namespace and body_ns and body_ns != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                    f"set metadata.namespace to {namespace!r} or leave it out",
                )
            ns = namespace or body_ns
            if not ns:
                raise _bad_request(f"a namespace is required to create {rt.plural}", "set metadata.namespace")
            meta["namespace"] = ns
        else:
            ns = ""
            meta.pop("namespace", None)
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                err = _error(
                    Invalid,
                    f'{rt.group_kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                    "set metadata.name (or metadata.generateName)",
                    422,
                    "Invalid",
                    kind=rt.kind,
                    group=rt.group,
                    causes=[
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
                raise err
            for _ in range(100):
                candidate = prefix + "".join(self._rand.choice(_GENERATE_ALPHABET) for _ in range(5))
                if self._find(rt.key, ns, candidate) is None:
                    break
            name = meta["name"] = candidate
        if rt.namespaced:
            self._check_namespace_usable(rt, ns, name)
        if not rt.builtin:
            crd = self._crd_for(rt)
            if crd is not None and (crd.get("metadata") or {}).get("deletionTimestamp"):
                raise _error(
                    ApiError,
                    f'create not allowed while custom resource definition is terminating: {rt.key} "{name}"',
                    "wait until the CRD is deleted, then create it again",
                    405,
                    "MethodNotAllowed",
                )
        if self._find(rt.key, ns, name) is not None:
            raise _error(
                Conflict,
                f'{_resource(rt)} "{name}" already exists',
                "pick another name, or update (apply) the existing object",
                409,
                "AlreadyExists",
                name=name,
                group=rt.group,
                kind=rt.plural,
            )
        for server_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._now()
        meta["generation"] = 1
        meta.pop("managedFields", None)
        if rt.has_status and rt.key != "nodes":
            obj.pop("status", None)
        self._prepare(rt, obj, None, dry_run)
        schema = self._schema(rt)
        if apply_entries is not None:
            entries = apply_entries
        else:
            entries = ssa.record_update(
                [],
                manager=manager,
                api_version=rt.api_version,
                now=meta["creationTimestamp"],
                old=None,
                new=obj,
                schema=schema,
                scope=self._scope_name(rt, None),
            )
        if entries:
            meta["managedFields"] = ssa.entries_to_json(entries)
        if rt.key == CRD_KEY:
            self._crd_accept(obj, dry_run)
        if dry_run:
            return obj
        self._managed[meta["uid"]] = entries
        self._commit(rt, "ADDED", obj, None, batch)
        self.gc.after_create(rt, obj, batch)
        return obj

    def _prepare(self, rt: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
        """Defaults, admission and validation of an object about to be stored; lock held."""
        apply_defaults(rt.key, obj)
        if not rt.builtin and rt.schema:
            openapi_prune(rt.schema, obj)
            openapi_defaults(rt.schema, obj)
        if rt.key == "pods" and old is None:
            self._admit_pod(obj)
        elif rt.key == "persistentvolumeclaims" and old is None:
            self._default_storage_class(obj)
        validate(rt, obj)
        if old is not None:
            validate_update(rt, old, obj)
        if rt.key == "services":
            self._allocate_service(obj, old, dry_run)

    # ---------------------------------------------------------------------------------------------- admission

    def _admit_pod(self, obj: Obj) -> None:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        rt = self.registry.get("pods")
        sa = spec.get("serviceAccountName") or "default"
        if self._find("serviceaccounts", meta["namespace"], sa) is None:
            raise _error(
                Forbidden,
                f'pods "{meta["name"]}" is forbidden: error looking up service account {meta["namespace"]}/{sa}: '
                f'serviceaccount "{sa}" not found',
                f"create the ServiceAccount {sa!r} in namespace {meta['namespace']!r} first",
                403,
                "Forbidden",
                name=meta["name"],
                kind="pods",
            )
        pc_name = spec.get("priorityClassName")
        if pc_name:
            pc = self._find("priorityclasses.scheduling.k8s.io", "", pc_name)
            if pc is None:
                raise _error(
                    Forbidden,
                    f'pods "{meta["name"]}" is forbidden: no PriorityClass with name {pc_name} was found',
                    f"create the PriorityClass {pc_name!r} or drop spec.priorityClassName",
                    403,
                    "Forbidden",
                    name=meta["name"],
                    kind=rt.plural,
                )
            spec["priority"] = pc.get("value", 0)
            if pc.get("preemptionPolicy"):
                spec["preemptionPolicy"] = pc["preemptionPolicy"]

    def _default_storage_class(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if "storageClassName" in spec:
            return
        for sc in (self._data.get("storageclasses.storage.k8s.io") or {}).get("", {}).values():
            annotations = sc["metadata"].get("annotations") or {}
            if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
                spec["storageClassName"] = sc["metadata"]["name"]
                return

    def _allocate_service(self, obj: Obj, old: Obj | None, dry_run: bool) -> None:
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        if spec.get("type") == "ExternalName":
            return
        if old is not None and not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            if old_spec.get("clusterIPs"):
                spec["clusterIPs"] = list(old_spec["clusterIPs"])
        ip = spec.get("clusterIP")
        if not ip:
            ip = self._next_cluster_ip(dry_run)
            spec["clusterIP"] = ip
        elif ip != "None" and old is None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                addr = None
            if addr is None or addr not in _SERVICE_CIDR:
                raise Invalid(
                    f'Service "{obj["metadata"]["name"]}" is invalid: spec.clusterIPs: Invalid value: ["{ip}"]: '
                    f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of "
                    f"valid IPs is {_SERVICE_CIDR}",
                    "leave spec.clusterIP out to get an address",
                    status=422,
                    reason="Invalid",
                )
            if ip in self._cluster_ips and not (ip == "10.96.0.1" and obj["metadata"]["name"] == "kubernetes"):
                raise Invalid(
                    f'Service "{obj["metadata"]["name"]}" is invalid: spec.clusterIPs: Invalid value: ["{ip}"]: '
                    f"failed to allocate IP {ip}: provided IP is already allocated",
                    "leave spec.clusterIP out to get a free address",
                    status=422,
                    reason="Invalid",
                )
            if not dry_run:
                self._cluster_ips.add(ip)
        spec.setdefault("clusterIPs", [ip])
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in old_spec.get("ports") or ()}
            for port in spec.get("ports") or ():
                if isinstance(port, dict) and not port.get("nodePort"):
                    port["nodePort"] = old_ports.get((port.get("port"), port.get("protocol"))) or self._node_port(
                        dry_run
                    )

    def _next_cluster_ip(self, dry_run: bool) -> str:
        broadcast = int(_SERVICE_CIDR.broadcast_address)
        start = self._next_ip
        while True:
            candidate = str(ipaddress.ip_address(self._next_ip))
            self._next_ip = self._next_ip + 1 if self._next_ip < broadcast - 1 else int(_SERVICE_CIDR[10])
            if candidate not in self._cluster_ips:
                if not dry_run:
                    self._cluster_ips.add(candidate)
                return candidate
            if self._next_ip == start:
                raise _error(ApiError, "no free service IP in 10.96.0.0/12", None, 500, "InternalError")

    def _node_port(self, dry_run: bool) -> int:
        low, high = _NODE_PORTS
        for _ in range(high - low + 1):
            port = self._rand.randint(low, high)
            if port not in self._node_ports:
                if not dry_run:
                    self._node_ports.add(port)
                return port
        raise _error(ApiError, "no free node port", None, 500, "InternalError")

    def _release(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == "services":
            spec = obj.get("spec") or {}
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                self._cluster_ips.discard(ip)
            for port in spec.get("ports") or ():
                self._node_ports.discard(port.get("nodePort"))
        elif rt.key == "pods":
            self._logs.pop((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]), None)

    # ---------------------------------------------------------------------------------------------------- CRDs

    def _crd_for(self, rt: ResourceType) -> Obj | None:
        return self._find(CRD_KEY, "", f"{rt.plural}.{rt.group}")

    def _crd_accept(self, crd: Obj, dry_run: bool, old: Obj | None = None) -> None:
        """Accept a CRD's names (status conditions, as the apiextensions controllers set them) and serve it."""
        spec = crd.get("spec") or {}
        now = self._now()
        old_status = (old or {}).get("status") or {}
        previous = {c.get("type"): c for c in old_status.get("conditions") or ()}

        def condition(ctype: str, reason: str, message: str) -> Obj:
            before = previous.get(ctype)
            stamp = before.get("lastTransitionTime", now) if before and before.get("status") == "True" else now
            return {"type": ctype, "status": "True", "lastTransitionTime": stamp, "reason": reason, "message": message}

        stored = list(old_status.get("storedVersions") or [])
        for version in spec.get("versions") or ():
            if isinstance(version, dict) and version.get("storage") and version.get("name") not in stored:
                stored.append(version["name"])
        crd["status"] = {
            "acceptedNames": dict(spec.get("names") or {}),
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "storedVersions": stored,
        }
        finalizers = crd["metadata"].get("finalizers") or []
        if "customresourcecleanup.apiextensions.k8s.io" not in finalizers:
            crd["metadata"]["finalizers"] = [*finalizers, "customresourcecleanup.apiextensions.k8s.io"]
        if not dry_run:
            self.registry.register_crd(crd)

    # ---------------------------------------------------------------------------------------------------- update

    def update(
        self,
        key: str,
        obj: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        namespace: str | None = None,
    ) -> Obj:
        """Replace an object (PUT), or its ``status``/``scale``/``finalize`` subresource.

        A stale ``metadata.resourceVersion`` fails with a Conflict; a missing one updates
        unconditionally. For ``subresource="scale"`` the body and the result are Scale objects.

        Raises:
            NotFound: no such object.
            Conflict: the resourceVersion is stale.
            Invalid: invalid or immutable fields changed.
        """
        rt = self.registry.get(key)
        obj = clone(obj)
        if not isinstance(obj, dict):
            raise _bad_request("the request body must be a JSON object")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise _bad_request("name is required in metadata", "set metadata.name")
        ns = self._scope(rt, meta.get("namespace") or namespace) if rt.namespaced else ""
        if namespace and rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        batch: list[Event] = []
        with self._lock:
            old = self._find(rt.key, ns, name)
            if old is None:
                raise not_found(rt, name)
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise _conflict(
                    rt,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                    "get the object again, re-apply your change, and retry",
                )
            if subresource == "scale":
                candidate = self._from_scale(rt, old, obj)
            elif subresource == "finalize":
                candidate = clone(old)
                candidate.setdefault("spec", {})["finalizers"] = list((obj.get("spec") or {}).get("finalizers") or [])
                subresource = None
            else:
                self._check_type(rt, obj)
                candidate = obj
            result = self._update_locked(
                rt,
                old,
                candidate,
                batch,
                subresource=subresource,
                dry_run=dry_run,
                manager=field_manager or DEFAULT_MANAGER,
            )
            out = self._scale_view(rt, result) if subresource == "scale" else clone(result)
        self._dispatch(batch)
        return out

    def _update_locked(
        self,
        rt: ResourceType,
        old: Obj,
        candidate: Obj,
        batch: list[Event],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str = DEFAULT_MANAGER,
        apply_entries: list[ssa.ManagedEntry] | None = None,
    ) -> Obj:
        if subresource not in (None, "status", "scale"):
            raise not_found(rt, old["metadata"]["name"])
        if subresource == "status" and not rt.has_status:
            raise not_found(rt, old["metadata"]["name"])
        old_meta = old["metadata"]
        if subresource == "status":
            # copy-on-write: everything but status is shared with the stored (never mutated) object
            new = dict(old)
            new["metadata"] = dict(old_meta)
            status = candidate.get("status")
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            new = candidate
            new["apiVersion"] = old.get("apiVersion", rt.api_version)
            new["kind"] = old.get("kind", rt.kind)
            meta = new.get("metadata")
            # the candidate may share unchanged parts with the stored object: copy what is changed here
            meta = new["metadata"] = dict(meta) if isinstance(meta, dict) else {}
            for keep in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generateName",
            ):
                if keep in old_meta:
                    meta[keep] = old_meta[keep]
                else:
                    meta.pop(keep, None)
            if rt.has_status:
                if "status" in old:
                    new["status"] = old["status"]  # shared: status defaults never change a defaulted status
                else:
                    new.pop("status", None)
        meta = new["metadata"]
        meta["generation"] = old_meta.get("generation", 1)
        meta.pop("managedFields", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if subresource == "status":
            apply_status_defaults(rt.key, new)
            validate_status(rt, new)
        else:
            self._prepare(rt, new, old, dry_run)
        if rt.key == CRD_KEY and not meta.get("deletionTimestamp"):
            self._crd_accept(new, dry_run, old)
        skip = ("metadata", "status") if rt.has_status else ("metadata",)
        if any(old.get(k) != new.get(k) for k in (set(old) | set(new)) if k not in skip):
            meta["generation"] = old_meta.get("generation", 1) + 1
        entries = self._managed.get(old_meta.get("uid", ""), [])
        if apply_entries is not None:
            new_entries = apply_entries
        else:
            new_entries = ssa.record_update(
                entries,
                manager=manager,
                api_version=rt.api_version,
                now=self._now(),
                old=old,
                new=new,
                schema=self._schema(rt),
                scope=self._scope_name(rt, subresource),
                subresource="status" if subresource == "status" else "",
            )
        if "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        if new == old and [(e.ident, e.fields) for e in new_entries] == [(e.ident, e.fields) for e in entries]:
            return old  # a no-op write: no new resourceVersion, no event
        if new_entries is not entries:
            meta["managedFields"] = ssa.entries_to_json(new_entries)
            if not new_entries:
                del meta["managedFields"]
        if dry_run:
            return new
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not (rt.key == "namespaces" and (new.get("spec") or {}).get("finalizers"))
        ):
            return self.gc.remove(rt, new, batch, stored=old)  # the last finalizer is gone: delete, no MODIFIED
        self._managed[meta.get("uid", "")] = new_entries
        self._commit(rt, "MODIFIED", new, old, batch)
        if rt.key == "namespaces" and meta.get("deletionTimestamp"):
            self.gc.check_namespace(meta["name"], batch)
        return new

    # ----------------------------------------------------------------------------------------------------- scale

    def _scale_view(self, rt: ResourceType, obj: Obj) -> Obj:
        if rt.scale is None:
            raise not_found(rt, obj["metadata"]["name"])
        paths = rt.scale
        spec_replicas = _json_path_get(obj, paths.spec_replicas)
        status_replicas = _json_path_get(obj, paths.status_replicas)
        if rt.builtin:
            selector = selector_string((obj.get("spec") or {}).get("selector"))
        else:
            selector = _json_path_get(obj, paths.label_selector) if paths.label_selector else None
        meta = obj["metadata"]
        status: Obj = {"replicas": status_replicas or 0}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": spec_replicas or 0},
            "status": status,
        }

    def _from_scale(self, rt: ResourceType, old: Obj, scale: Obj) -> Obj:
        if rt.scale is None:
            raise not_found(rt, old["metadata"]["name"])
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise Invalid(
                f'Scale.autoscaling "{old["metadata"]["name"]}" is invalid: spec.replicas: Invalid value: '
                f"{replicas}: must be greater than or equal to 0",
                "give a whole number of replicas, 0 or more",
                status=422,
                reason="Invalid",
            )
        new = clone(old)
        _json_path_set(new, rt.scale.spec_replicas, replicas)
        return new

    # ----------------------------------------------------------------------------------------------------- patch

    def patch(
        self,
        key: str,
        namespace: str | None,
        name: str,
        body: Any,
        patch_type: str,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """Patch an object (PATCH): ``json``, ``merge``, ``strategic`` or ``apply`` (server-side apply).

        ``apply`` creates the object when it is missing and needs ``field_manager``. For
        ``subresource="scale"`` the patch applies to (and the result is) the Scale object.

        Raises:
            NotFound: no such object (except for apply).
            Conflict: apply conflicts (unless ``force``) or a stale resourceVersion in the patch.
            Invalid: 415 for strategic merge on a custom resource, 400/422 for bad patches.
        """
        rt = self.registry.get(key)
        ns = self._scope(rt, namespace)
        if patch_type == "apply":
            return self._apply(
                rt, ns, name, body, subresource=subresource, field_manager=field_manager, force=force, dry_run=dry_run
            )
        if patch_type == "strategic" and not rt.builtin:
            raise _error(
                Invalid,
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                "custom resources do not support strategic merge patch; use --type=merge or --type=json",
                415,
                "UnsupportedMediaType",
            )
        if patch_type not in ("json", "merge", "strategic"):
            raise _error(
                Invalid,
                f"unsupported patch type {patch_type!r}",
                "use json, merge, strategic or apply",
                415,
                "UnsupportedMediaType",
            )
        body = decode_body(body)
        batch: list[Event] = []
        with self._lock:
            old = self._find(rt.key, ns, name)
            if old is None:
                raise not_found(rt, name)
            if subresource == "scale":
                base = self._scale_view(rt, old)
            elif subresource == "status" and patch_type != "json":
                # merge and strategic patches copy what they change and never touch their input; a status
                # write keeps only the (copied) status of the result
                base = old
            else:
                base = clone(old)
            if patch_type == "json":
                patched = json_patch(base, body, in_place=True)
            elif patch_type == "merge":
                patched = merge_patch(base, body, in_place=base is not old)
            else:
                schema = _SCALE_SCHEMA if subresource == "scale" else self._schema(rt)
                patched = strategic_merge(base, body, schema)
            if not isinstance(patched, dict):
                raise _bad_request("the patch must result in a JSON object")
            meta = patched.get("metadata") if isinstance(patched.get("metadata"), dict) else {}
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise _conflict(
                    rt,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                    "get the object again and retry the patch",
                )
            if meta.get("name", name) != name:
                raise _bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            if subresource == "scale":
                candidate = self._from_scale(rt, old, patched)
            else:
                if patched.get("kind", rt.kind) != rt.kind or patched.get("apiVersion", rt.api_version) not in (
                    rt.api_version,
                    old.get("apiVersion"),
                ):
                    raise _bad_request("a patch may not change apiVersion or kind")
                candidate = patched
            result = self._update_locked(
                rt,
                old,
                candidate,
                batch,
                subresource=subresource if subresource != "scale" else None,
                dry_run=dry_run,
                manager=field_manager or DEFAULT_MANAGER,
            )
            out = self._scale_view(rt, result) if subresource == "scale" else clone(result)
        self._dispatch(batch)
        return out

    def _apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Any,
        *,
        subresource: str | None,
        field_manager: str | None,
        force: bool,
        dry_run: bool,
    ) -> Obj:
        if not field_manager:
            raise _error(
                Invalid,
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                "pass a field manager (kubectl does: --field-manager, default kubectl)",
                422,
                "Invalid",
            )
        config = decode_body(body)
        if not isinstance(config, dict):
            raise _bad_request("an apply patch must be a single object (YAML or JSON)")
        config = clone(config)
        if subresource == "scale":
            raise _error(
                Invalid,
                "server-side apply to the scale subresource is not supported here",
                "apply to the main resource, or use a merge patch on /scale",
                415,
                "UnsupportedMediaType",
            )
        if not config.get("apiVersion") or not config.get("kind"):
            missing = "apiVersion" if not config.get("apiVersion") else "kind"
            raise _bad_request(
                f"invalid object type: {missing} must be set in an apply patch", "give the manifest apiVersion and kind"
            )
        self._check_type(rt, config)
        meta = config.get("metadata")
        if not isinstance(meta, dict):
            meta = config["metadata"] = {}
        if meta.get("name", name) != name:
            raise _bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        if meta.get("managedFields"):
            raise _bad_request("metadata.managedFields must be nil", "remove managedFields from the manifest")
        batch: list[Event] = []
        schema = self._schema(rt)
        with self._lock:
            live = self._find(rt.key, ns, name)
            if live is None:
                if subresource:
                    raise not_found(rt, name)
                scope = self._scope_name(rt, None)
                _, entries = ssa.apply_config(
                    [],
                    manager=field_manager,
                    api_version=rt.api_version,
                    now=self._now(),
                    live={},
                    config=config,
                    schema=schema,
                    scope=scope,
                    force=force,
                )
                obj = clone(config)
                created = self._create_locked(
                    rt, obj, ns or None, batch, dry_run=dry_run, manager=field_manager, apply_entries=entries
                )
                out = clone(created)
            else:
                want_rv = meta.get("resourceVersion")
                if want_rv and want_rv != live["metadata"]["resourceVersion"]:
                    raise _conflict(
                        rt,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                        "drop metadata.resourceVersion from the manifest",
                    )
                scope = self._scope_name(rt, subresource)
                entries = self._managed.get(live["metadata"].get("uid", ""), [])
                merged, new_entries = ssa.apply_config(
                    entries,
                    manager=field_manager,
                    api_version=rt.api_version,
                    now=self._now(),
                    live=clone(live),
                    config=config,
                    schema=schema,
                    scope=scope,
                    force=force,
                    subresource="status" if subresource == "status" else "",
                    describe=f'{rt.key} "{name}"',
                )
                result = self._update_locked(
                    rt,
                    live,
                    merged,
                    batch,
                    subresource=subresource,
                    dry_run=dry_run,
                    manager=field_manager,
                    apply_entries=new_entries,
                )
                out = clone(result)
        self._dispatch(batch)
        return out

    # ---------------------------------------------------------------------------------------------------- delete

    def delete(
        self,
        key: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        dry_run: bool = False,
        preconditions: dict[str, Any] | None = None,
    ) -> Obj:
        """Delete an object (DELETE).

        Objects with finalizers (and namespaces, CRDs, foreground deletions) get a
        ``deletionTimestamp`` and stay until their finalizers are gone; the rest go at once.
        Dependents are garbage collected by ``propagation``: ``Background``, ``Foreground``
        or ``Orphan``.

        Returns:
            The object as deleted (with ``deletionTimestamp`` when it is still there).

        Raises:
            NotFound: no such object.
            Conflict: a precondition (uid, resourceVersion) does not hold.
        """
        rt = self.registry.get(key)
        ns = self._scope(rt, namespace)
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise _bad_request(
                f"propagationPolicy: Unsupported value: {propagation!r}", "use Background, Foreground or Orphan"
            )
        batch: list[Event] = []
        with self._lock:
            obj = self._find(rt.key, ns, name)
            if obj is None:
                raise not_found(rt, name)
            for field_name in ("uid", "resourceVersion"):
                want = (preconditions or {}).get(field_name)
                have = obj["metadata"].get(field_name)
                if want and want != have:
                    label = "UID" if field_name == "uid" else "ResourceVersion"
                    raise _conflict(
                        rt,
                        name,
                        f"Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}",
                        "get the object again and retry",
                    )
            if rt.key == "namespaces" and name in IMMORTAL_NAMESPACES:
                raise _error(
                    Forbidden,
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    "delete what you created inside it instead",
                    403,
                    "Forbidden",
                    name=name,
                    kind="namespaces",
                )
            result = self.gc.delete(rt, obj, propagation, dry_run, batch)
            out = clone(result)
        self._dispatch(batch)
        return out

    def delete_collection(
        self,
        key: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> list[Obj]:
        """Delete every matching object (DELETE on a collection); returns them as deleted."""
        rt = self.registry.get(key)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.key)
        batch: list[Event] = []
        out: list[Obj] = []
        with self._lock:
            for obj in list(self._select(rt, namespace, labels, fields)):
                meta = obj["metadata"]
                if self._find(rt.key, meta.get("namespace", ""), meta["name"]) is obj:
                    out.append(clone(self.gc.delete(rt, obj, propagation, dry_run, batch)))
        self._dispatch(batch)
        return out

    # ----------------------------------------------------------------------------------------------------- watch

    def watch(
        self,
        key: str,
        namespace: str | None = None,
        *,
        resource_version: int | str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        send_initial: bool = False,
    ) -> Watch:
        """Watch changes of one type.

        Args:
            key: store key.
            namespace: one namespace, or None for all.
            resource_version: start after this version, replaying retained history; None
                (or 0) starts now.
            label_selector: label selector string.
            field_selector: field selector string.
            send_initial: begin with a synthetic ADDED for every matching object (what the
                API does for a watch without resourceVersion or with ``0``).

        Raises:
            ApiError: 410 Expired when ``resource_version`` is older than the retained history.
            Invalid: 400 for a selector that does not parse.
        """
        rt = self.registry.get(key)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.key)
        rv = int(resource_version) if resource_version not in (None, "") else 0
        with self._lock:
            watch = Watch(self, rt.key, namespace if rt.namespaced else None, labels, fields)
            if rv and rv < self._history_floor:
                err = _error(
                    ApiError,
                    f"too old resource version: {rv} ({self._history_floor + 1})",
                    "list again to get a current resourceVersion, then watch from it",
                    410,
                    "Expired",
                )
                raise err
            if send_initial:
                for obj in self._select(rt, namespace, labels, fields):
                    watch._push(Event("ADDED", rt.key, obj, int(obj["metadata"]["resourceVersion"])))
            if rv:
                for ev in self._history:
                    if ev.resource_version > rv and ev.key == rt.key:
                        watch._offer(ev)
            watch.last_resource_version = rv or self._rv
            self._watches.setdefault(rt.key, []).append(watch)
        return watch

    def _drop_watch(self, watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get(watch.key)
            if watches and watch in watches:
                watches.remove(watch)

    # -------------------------------------------------------------------------------------------- pods: binding

    def bind_pod(self, namespace: str, name: str, node_name: str, *, field_manager: str = "kube-scheduler") -> Obj:
        """Bind a pending pod to a node (``pods/binding``), as the scheduler does.

        Raises:
            NotFound: no such pod.
            Conflict: the pod is already bound to a node.
        """
        rt = self.registry.get("pods")
        batch: list[Event] = []
        with self._lock:
            old = self._find("pods", namespace, name)
            if old is None:
                raise not_found(rt, name)
            bound = (old.get("spec") or {}).get("nodeName")
            if bound:
                raise _conflict(
                    rt, name, f'pod {name} is already assigned to node "{bound}"', "delete the pod to schedule it again"
                )
            new = clone(old)
            new["spec"]["nodeName"] = node_name
            result = self._update_locked(rt, old, new, batch, manager=field_manager)
            out = clone(result)
        self._dispatch(batch)
        return out

    # ------------------------------------------------------------------------------------------------------ logs

    def append_log(self, namespace: str, pod: str, container: str, line: str) -> None:
        """Record one line a container printed (the kubelet simulation calls this)."""
        now = self.clock.now()
        with self._lock:
            per_pod = self._logs.setdefault((namespace, pod), {})
            lines = per_pod.get(container)
            if lines is None:
                lines = per_pod[container] = deque(maxlen=LOG_LINES)
            lines.append((now, line.rstrip("\n")))

    def read_log(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        *,
        tail_lines: int | None = None,
        since_seconds: float | None = None,
        timestamps: bool = False,
    ) -> str:
        """What a container printed, as ``kubectl logs`` shows it.

        Raises:
            NotFound: no such pod.
            Invalid: 400 when the pod has several containers and none is named, or the name is wrong.
        """
        rt = self.registry.get("pods")
        with self._lock:
            obj = self._find("pods", namespace, pod)
            if obj is None:
                raise not_found(rt, pod)
            spec = obj.get("spec") or {}
            names = [c.get("name") for c in spec.get("containers") or ()]
            init_names = [c.get("name") for c in spec.get("initContainers") or ()]
            if container is None:
                default = (obj["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
                if default in names:
                    container = default
                elif len(names) == 1:
                    container = names[0]
                else:
                    raise _bad_request(
                        f"a container name must be specified for pod {pod}, choose one of: [{' '.join(names)}]"
                        + (f" or one of the init containers: [{' '.join(init_names)}]" if init_names else ""),
                        "pass a container name (kubectl logs POD -c CONTAINER)",
                    )
            elif container not in names and container not in init_names:
                raise _bad_request(
                    f"container {container} is not valid for pod {pod}", f"choose one of: {', '.join(names)}"
                )
            lines = list((self._logs.get((namespace, pod)) or {}).get(container) or ())
        if since_seconds is not None:
            cutoff = self.clock.now() - since_seconds
            lines = [item for item in lines if item[0] >= cutoff]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        if timestamps:
            return "".join(f"{rfc3339_nano(ts)} {text}\n" for ts, text in lines)
        return "".join(f"{text}\n" for _, text in lines)

    def log_length(self, namespace: str, pod: str, container: str) -> int:
        """How many lines of a container's log are retained (lets a follower poll cheaply)."""
        with self._lock:
            return len((self._logs.get((namespace, pod)) or {}).get(container) or ())

    # ---------------------------------------------------------------------------------------------------- events

    def record_event(
        self,
        involved: Obj,
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "labkit",
        host: str | None = None,
    ) -> None:
        """Record a core/v1 Event about an object, as ``kubectl describe`` and ``get events`` show them.

        A repeat of the same event (same object, reason, message, type, component) bumps
        ``count`` and ``lastTimestamp`` instead of adding a new object, like the kubelet's
        and controllers' event recorder. Never raises: events are best effort.
        """
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        ident = (meta.get("uid", ""), reason, message, type, component)
        now = self.clock.now()
        stamp = rfc3339(now)
        batch: list[Event] = []
        try:
            with self._lock:
                existing = self._event_index.get(ident)
                obj = self._find("events", *existing) if existing is not None else None
                if obj is not None:
                    new = clone(obj)
                    new["count"] = int(obj.get("count") or 1) + 1
                    new["lastTimestamp"] = stamp
                    self._update_locked(self.registry.get("events"), obj, new, batch, manager=component)
                else:
                    name = f"{meta.get('name', 'unknown')}.{int(now * 1e9):x}"
                    involved_ref = {
                        "apiVersion": involved.get("apiVersion"),
                        "kind": involved.get("kind"),
                        "name": meta.get("name"),
                        "namespace": meta.get("namespace"),
                        "uid": meta.get("uid"),
                        "resourceVersion": meta.get("resourceVersion"),
                    }
                    event = {
                        "apiVersion": "v1",
                        "kind": "Event",
                        "metadata": {"name": name, "namespace": namespace},
                        "involvedObject": {k: v for k, v in involved_ref.items() if v},
                        "reason": reason,
                        "message": message,
                        "type": type,
                        "source": {"component": component, **({"host": host} if host else {})},
                        "firstTimestamp": stamp,
                        "lastTimestamp": stamp,
                        "count": 1,
                        "eventTime": None,
                        "reportingComponent": component,
                        "reportingInstance": host or "",
                    }
                    self._create_locked(self.registry.get("events"), event, namespace, batch, manager=component)
                    if len(self._event_index) > 50_000:
                        self._event_index.clear()
                    self._event_index[ident] = (namespace, name)
        except ApiError:
            log.debug("event %s on %s not recorded", reason, meta.get("name"), exc_info=True)
        self._dispatch(batch)

    # --------------------------------------------------------------------------------------------------- secrets

    @staticmethod
    def secret_value(secret: Obj, key: str) -> str | None:
        """A decoded value of a Secret's ``data`` (None when absent)."""
        raw = (secret.get("data") or {}).get(key)
        return None if raw is None else base64.b64decode(raw).decode()


_SCALE_SCHEMA = Schema()


def _json_path_get(obj: Obj, path: str | None) -> Any:
    if not path:
        return None
    cur: Any = obj
    for part in path.lstrip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _json_path_set(obj: Obj, path: str, value: Any) -> None:
    parts = path.lstrip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[parts[-1]] = value
