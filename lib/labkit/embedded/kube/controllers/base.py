"""What every embedded controller is: a name, the store events it cares about, and a reconcile of one key."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import ApiError, Conflict

from .common import obj_key, random_suffix

log = logging.getLogger("labkit.embedded.controllers")


@dataclass
class ControllerContext:
    """What controllers share: the store, the simulated clock and a seedable random source."""

    store: Any
    clock: Any
    rng: random.Random = field(default_factory=random.Random)
    cache: Any = None  # an ObjectCache mirroring the hot types, when the cluster runs one

    def list(
        self, key: str, namespace: str | None = None, *, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of ``key`` (matching ``labels`` when given): shared from the cache when it mirrors the type
        (never modify those), else copies from the store."""
        if self.cache is not None and key in self.cache.keys:
            items = self.cache.list(key, namespace)
        else:
            items, _ = self.store.list(key, namespace)
        if labels:
            items = [o for o in items if all(((o.get("metadata") or {}).get("labels") or {}).get(k) == v
                                             for k, v in labels.items())]  # fmt: skip
        return items

    def now(self) -> float:
        return float(self.clock.now())

    def event(self, obj: dict[str, Any], reason: str, message: str, *, kind: str = "Normal", component: str) -> None:
        """Record a core/v1 Event about ``obj`` (best effort)."""
        try:
            self.store.record_event(obj, reason, message, type=kind, component=component)
        except ApiError:
            log.debug("event %s on %s dropped", reason, obj_key(obj))

    def create_named(self, key: str, obj: dict[str, Any], prefix: str, *, tries: int = 8) -> dict[str, Any]:
        """Create ``obj`` named ``prefix`` plus a generated suffix (as ``generateName`` does), retrying clashes."""
        meta = obj.setdefault("metadata", {})
        meta["generateName"] = prefix
        for _ in range(tries):
            meta["name"] = prefix + random_suffix(self.rng)
            try:
                return self.store.create(key, obj, namespace=meta.get("namespace"))
            except Conflict as exc:
                if getattr(exc, "reason", "") != "AlreadyExists":
                    raise
        raise Conflict(f"could not find a free name for {prefix}*", "delete some objects and retry")


class Controller:
    """A reconcile loop over one kind of object.

    Subclasses set :attr:`name` (the event ``source.component``) and :attr:`primary` (the store key
    of the objects they reconcile), map store events to keys in :meth:`keys_for`, and converge one
    object in :meth:`reconcile`, which returns simulated seconds until it wants to run again, or ``None``.
    """

    name = "controller"
    primary = ""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def keys_for(self, event: Any) -> Iterable[str]:
        """The keys of primary objects a store event touches (default: the primary object itself)."""
        if event.key == self.primary:
            return [obj_key(event.obj)]
        return []

    def reconcile(self, key: str) -> float | None:
        raise NotImplementedError

    def all_keys(self) -> Iterable[str]:
        """Every primary object (periodic resync)."""
        return [obj_key(o) for o in self.ctx.list(self.primary)]

    def event(self, obj: dict[str, Any], reason: str, message: str, *, kind: str = "Normal") -> None:
        self.ctx.event(obj, reason, message, kind=kind, component=self.name)
