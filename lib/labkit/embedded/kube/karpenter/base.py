"""The state the parts of the embedded Karpenter share, and the store helpers they all use.

:class:`ControllerState` holds the store, clock, catalog and in-memory bookkeeping (batches,
nominations, pending disruption commands, interruptions); :class:`.lifecycle.NodeClaimLifecycle`,
:class:`.disrupting.Disruptor` and :class:`.controller.KarpenterController` build on it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import ApiError, Conflict, NotFound

from .. import nodes as node_profiles
from ..controllers.common import random_suffix, rfc3339
from ..controllers.workqueue import Worker
from . import objects as obj
from .catalog import DEFAULT_REGION, InstanceInfo, Offering, instance_types, offerings
from .disruption import DISRUPTED_TAINT, Command
from .interruption import Interruption, UnavailableOfferings
from .nodepool import AUTO_NODECLASS_KEY, EC2NODECLASS_KEY, NODECLAIM_KEY, NODECLASS_KEYS, NODEPOOL_KEY, Pool
from .provisioner import (
    ClaimPlan,
    InstanceOption,
    PoolContext,
    instance_options,
    node_class_problems,
    pool_usage,
    prepare_pools,
    virtual_node,
)

log = logging.getLogger("labkit.embedded.karpenter")

COMPONENT = "karpenter"
#: Shortest batch window and disruption period in wall seconds (see :class:`ControllerState`).
MIN_WALL_SECONDS = 0.02
#: Seconds a node stays nominated for the pods planned onto it (Karpenter: twice the batch maximum).
NOMINATION_SECONDS = 20.0


@dataclass
class PendingCommand:
    """A disruption command waiting for its replacement NodeClaims to be initialised."""

    command: Command
    replacements: list[str]


class ControllerState:
    """What every part of the embedded Karpenter shares (see :class:`.controller.KarpenterController` for the args)."""

    def __init__(
        self,
        store: Any,
        clock: Any,
        *,
        profile: str = "eks-auto",
        region: str = DEFAULT_REGION,
        cluster_name: str = "labkit",
        rng: random.Random | None = None,
        batch_idle_seconds: float = 1.0,
        batch_max_seconds: float = 10.0,
        disruption_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.profile = node_profiles.normalize_profile(profile)
        self.provider = "auto" if self.profile == "eks-auto" else "karpenter"
        self.region = region
        self.cluster_name = cluster_name
        self.rng = rng or random.Random()
        # Simulated time cannot resolve less than a few wall milliseconds of processing: keep the windows
        # at least MIN_WALL_SECONDS of wall time long, whatever the time scale.
        floor = MIN_WALL_SECONDS * float(getattr(clock, "scale", 1.0))
        self.batch_idle = max(batch_idle_seconds, floor)
        self.batch_max = max(batch_max_seconds, self.batch_idle)
        self.disruption_seconds = max(disruption_seconds, floor)
        self.catalog: dict[str, InstanceInfo] = instance_types()
        self.offerings: list[Offering] = offerings(region)
        self.options: dict[str, list[InstanceOption]] = {
            p: instance_options(self.offerings, p) for p in ("karpenter", "auto")
        }
        self.unavailable = UnavailableOfferings()
        self._unsubscribe: Any = None
        self._active = self.profile == "eks-auto"
        self._batch_start: float | None = None
        self._batch_last = 0.0
        self._disrupt_at: float | None = None
        self._last_pod_event: dict[str, float] = {}
        self._nominated: dict[str, float] = {}
        self._claim_due: dict[str, float] = {}
        self._pending: list[PendingCommand] = []
        self._forced: set[str] = set()
        self._interruptions: dict[str, Interruption] = {}
        self._lock = threading.Lock()
        self._worker = Worker("labkit-karpenter", clock, self._handle, on_event=self._keys_for)

    def _handle(self, key: Hashable) -> float | None:
        """Work on one queued key; returns when to look again (the controller provides it)."""
        raise NotImplementedError

    def _keys_for(self, event: Any) -> Iterable[Hashable]:
        """Queue keys a store event touches (the controller provides it)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ store helpers

    def _list(self, key: str, namespace: str | None = None) -> list[dict[str, Any]]:
        try:
            items, _ = self.store.list(key, namespace)
        except ApiError:
            return []
        return items

    def _event(self, target: Mapping[str, Any], reason: str, message: str, *, kind: str = "Normal") -> None:
        with contextlib.suppress(ApiError):
            self.store.record_event(dict(target), reason, message, type=kind, component=COMPONENT)

    def _write_status(self, key: str, name: str, mutate: Any) -> None:
        """Read, ``mutate`` (returns whether it changed anything) and write the status, retrying conflicts.

        Like Karpenter's status controller, every condition that changes status is announced with a Normal
        event (``Launched``: "Status condition transitioned, Type: Launched, Status: Unknown -> True, ...").
        """
        for _ in range(8):
            current = self.store.try_get(key, None, name)
            if current is None:
                return
            before = {c.get("type"): c.get("status") for c in (current.get("status") or {}).get("conditions") or []}
            if not mutate(current):
                return
            try:
                stored = self.store.update(key, current, subresource="status")
            except Conflict:
                continue
            except NotFound:
                return
            for c in (stored.get("status") or {}).get("conditions") or []:
                old = before.get(c.get("type"))
                if old is not None and old != c.get("status"):
                    message = (
                        f"Status condition transitioned, Type: {c['type']}, Status: {old} -> {c['status']}, "
                        f"Reason: {c.get('reason', '')}" + (f", Message: {c['message']}" if c.get("message") else "")
                    )
                    self._event(stored, str(c["type"]), message)
            return

    def _unavailable(self) -> frozenset[tuple[str, str, str]]:
        return self.unavailable.current(self.clock.now())

    def _pool_contexts(
        self, nodeclaims: list[dict[str, Any]]
    ) -> tuple[list[PoolContext], dict[str, dict[str, int]], dict[str, Pool]]:
        pools: list[Pool] = []
        for np in self._list(NODEPOOL_KEY):
            if (np.get("metadata") or {}).get("deletionTimestamp"):
                continue
            try:
                pools.append(Pool.from_nodepool(np))
            except ValueError as exc:
                log.warning("nodepool %s ignored: %s", np["metadata"]["name"], exc)
        nodeclasses = self._list(EC2NODECLASS_KEY) + self._list(AUTO_NODECLASS_KEY)
        not_ready = node_class_problems(pools, nodeclasses)
        ctxs = prepare_pools(
            pools,
            self.options,
            daemonsets=self._list("daemonsets.apps"),
            not_ready=not_ready,
            unavailable=self._unavailable(),
        )
        return ctxs, pool_usage(nodeclaims, self.catalog), {p.name: p for p in pools}

    def _snapshot_inputs(
        self, nodeclaims: list[dict[str, Any]], ctxs: list[PoolContext]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Nodes, bound pods, virtual nodes of launching NodeClaims, and what uninitialised nodes will offer."""
        overhead = {c.pool.name: c.overhead for c in ctxs}
        nodes_list = [n for n in self._list("nodes") if not obj.has_disrupted_taint(n)]
        pods = [p for p in self._list("pods") if (p.get("spec") or {}).get("nodeName")]
        node_names = {n["metadata"]["name"] for n in self._list("nodes")}
        virtual = []
        expected: dict[str, dict[str, Any]] = {}
        for nc in nodeclaims:
            if (nc.get("metadata") or {}).get("deletionTimestamp"):
                continue
            node = (nc.get("status") or {}).get("nodeName")
            if node and node in node_names:
                if not obj.is_true(nc, "Initialized"):
                    expected[node] = dict((nc.get("status") or {}).get("allocatable") or {})
                continue
            virtual.append(virtual_node(nc, overhead.get(obj.pool_of(nc) or "", {}), self.catalog))
        return nodes_list, pods, virtual, expected

    def _create_claim(self, plan: ClaimPlan) -> dict[str, Any] | None:
        nodepool = self.store.try_get(NODEPOOL_KEY, None, plan.pool.name)
        if nodepool is None:
            return None
        for _ in range(8):
            name = f"{plan.pool.name}-{random_suffix(self.rng)}"
            try:
                made = self.store.create(NODECLAIM_KEY, obj.nodeclaim(plan, name, nodepool))
            except Conflict as exc:
                if getattr(exc, "reason", "") != "AlreadyExists":
                    raise
                continue
            self._mark_unknown(name)
            return made
        return None

    def _mark_unknown(self, name: str) -> None:
        """A new NodeClaim's conditions start Unknown (so each later transition is announced)."""
        now = self.clock.now()

        def mutate(current: dict[str, Any]) -> bool:
            st = current.setdefault("status", {})
            changed = False
            for kind in obj.NODECLAIM_CONDITIONS:
                changed |= obj.set_condition(st, obj.condition(kind, "Unknown", now))
            return changed

        self._write_status(NODECLAIM_KEY, name, mutate)

    def _trigger_batch(self) -> None:
        now = self.clock.now()
        if self._batch_start is None:
            self._batch_start = now
            self._worker.add_after(("provision",), self.batch_idle)
        self._batch_last = now

    def _arm_disruption(self, delay: float) -> None:
        at = self.clock.now() + delay
        if self._disrupt_at is not None and self._disrupt_at <= at:
            return
        self._disrupt_at = at

        def fire() -> None:
            if self._disrupt_at is not None and self._disrupt_at <= at + 1e-6:
                self._disrupt_at = None
            self._worker.add(("disrupt",))

        self.clock.call_later(delay, fire)

    def _taint_disrupted(self, node: dict[str, Any]) -> None:
        if obj.has_disrupted_taint(node):
            return
        taints = [
            *((node.get("spec") or {}).get("taints") or []),
            {**DISRUPTED_TAINT, "timeAdded": rfc3339(self.clock.now())},
        ]
        with contextlib.suppress(NotFound, Conflict):
            self.store.patch("nodes", None, node["metadata"]["name"], {"spec": {"taints": taints}}, "merge")

    def _untaint(self, node_name: str) -> None:
        node = self.store.try_get("nodes", None, node_name)
        if node is None:
            return
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != DISRUPTED_TAINT["key"]]
        with contextlib.suppress(NotFound, Conflict):
            self.store.patch("nodes", None, node_name, {"spec": {"taints": taints or None}}, "merge")

    def _remove_finalizer(self, key: str, name: str) -> None:
        current = self.store.try_get(key, None, name)
        if current is None:
            return
        finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != obj.TERMINATION_FINALIZER]
        with contextlib.suppress(NotFound, Conflict):
            self.store.patch(key, None, name, {"metadata": {"finalizers": finalizers or None}}, "merge")

    def _nodeclass_for(self, nc: Mapping[str, Any]) -> dict[str, Any] | None:
        ref = (nc.get("spec") or {}).get("nodeClassRef") or {}
        key = NODECLASS_KEYS.get(str(ref.get("group", "")), EC2NODECLASS_KEY)
        return self.store.try_get(key, None, str(ref.get("name", "")))
