"""The NodeClaim lifecycle of the embedded Karpenter: launch, register, initialise, expire, terminate.

A NodeClaim is launched (cheapest offering of the instance types it lists, ``Launched``), its Node
registers after the instance type's launch time (``Registered``) and is ``Initialized`` and ``Ready``
once Ready with every resource expected (GPUs too: on AL2023 nodes of the ``standard`` profile only
after the NVIDIA device plugin runs). ``expireAfter`` deletes it. Deleting it drains the node (taint
``karpenter.sh/disrupted``, evict pods within their PodDisruptionBudgets), deletes the Node and then
releases the NodeClaim's finalizer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from labkit.errors import Conflict, NotFound

from ..controllers.common import parse_rfc3339, rfc3339
from ..scheduler import resource_list
from . import objects as obj
from .base import ControllerState
from .catalog import InstanceInfo
from .disruption import pdb_blocking, reschedulable_pods
from .nodepool import NODECLAIM_KEY, NODEPOOL_KEY, Pool, parse_duration
from .provisioner import PROVIDER_PREFIX, choose_offering
from .requirements import INSTANCE_TYPE_LABEL, NODEPOOL_LABEL, Requirements, well_known_labels

log = logging.getLogger("labkit.embedded.karpenter")


class NodeClaimLifecycle(ControllerState):
    """Reconciles one NodeClaim at a time (the ``claim`` keys of the controller's queue)."""

    def _reconcile_claim(self, name: str) -> float | None:
        nc = self.store.try_get(NODECLAIM_KEY, None, name)
        if nc is None:
            self._forget_claim(name)
            return None
        if (nc.get("metadata") or {}).get("deletionTimestamp"):
            return self._terminate(nc)
        if not self._active:
            return None
        now = self.clock.now()
        if not obj.is_true(nc, "Launched"):
            return self._launch(nc, now)
        info = self.catalog.get(((nc["metadata"].get("labels") or {}).get(INSTANCE_TYPE_LABEL)) or "")
        if info is None:
            return None
        created = parse_rfc3339(nc["metadata"].get("creationTimestamp")) or now
        due = created + info.launch_seconds(name)
        if not obj.is_true(nc, "Registered"):
            if now < due:
                return due - now + 1e-3
            nc = self._register(nc, info, now)
            if nc is None:
                return None
        node_name = (nc.get("status") or {}).get("nodeName") or ""
        node = self.store.try_get("nodes", None, node_name)
        if node is None:
            # The instance's node is gone (deleted by hand): Karpenter deletes the NodeClaim.
            with contextlib.suppress(NotFound):
                self.store.delete(NODECLAIM_KEY, None, name)
            return None
        if (node.get("metadata") or {}).get("deletionTimestamp"):
            with contextlib.suppress(NotFound):
                self.store.delete(NODECLAIM_KEY, None, name)
            return None
        if not obj.is_true(nc, "Initialized"):
            waiting = self._initialize(nc, node, info, now)
            if waiting is not None:
                return waiting
        self._sync_claim_status(nc, now)
        return self._expiry(nc, now)

    def _launch(self, nc: dict[str, Any], now: float) -> float | None:
        name = nc["metadata"]["name"]
        reqs = Requirements.from_expressions((nc.get("spec") or {}).get("requirements"))
        provider = (
            "auto"
            if ((nc.get("spec") or {}).get("nodeClassRef") or {}).get("group") == "eks.amazonaws.com"
            else "karpenter"
        )
        names = reqs.get(INSTANCE_TYPE_LABEL)
        options = [o for o in self.options[provider] if names is None or names.has(o.name)]
        offering = choose_offering(reqs, options, self._unavailable(), self._zone_counts(obj.pool_of(nc) or ""))
        if offering is None:
            self._event(
                nc,
                "InsufficientCapacityError",
                f"NodeClaim {name} event: creating instance, insufficient capacity, all requested instance types "
                "were unavailable during launch",
                kind="Warning",
            )
            with contextlib.suppress(NotFound):
                self.store.delete(NODECLAIM_KEY, None, name)
            return None
        info = offering.instance
        nodeclass = self._nodeclass_for(nc)
        family = obj.ami_family(nodeclass)
        uid = nc["metadata"].get("uid", name)
        provider_id = f"aws:///{offering.zone}/{obj.instance_id(uid)}"
        labels = {
            **(nc["metadata"].get("labels") or {}),
            **obj.instance_labels(
                info, offering, provider, str(((nc.get("spec") or {}).get("nodeClassRef") or {}).get("name", ""))
            ),
        }
        try:
            nc = self.store.patch(NODECLAIM_KEY, None, name, {"metadata": {"labels": labels}}, "merge")
        except NotFound:
            return None
        status = obj.launched_status(
            info,
            offering,
            provider_id=provider_id,
            image=obj.image_id(family, info.arch, info.is_gpu, self.cluster_name),
            now=now,
            disk_gib=obj.disk_gib(nodeclass, provider),
        )

        def mutate(current: dict[str, Any]) -> bool:
            st = current.setdefault("status", {})
            st.update({k: v for k, v in status.items() if k != "conditions"})
            for c in status["conditions"]:
                obj.set_condition(st, c)
            return True

        self._write_status(NODECLAIM_KEY, name, mutate)
        log.info("launched nodeclaim %s: %s %s %s", name, info.name, offering.zone, offering.capacity_type)
        created = parse_rfc3339(nc["metadata"].get("creationTimestamp")) or now
        return max(0.0, created + info.launch_seconds(name) - now) + 1e-3

    def _zone_counts(self, pool: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for nc in self._list(NODECLAIM_KEY):
            labels = nc["metadata"].get("labels") or {}
            if labels.get(NODEPOOL_LABEL) == pool and "topology.kubernetes.io/zone" in labels:
                zone = labels["topology.kubernetes.io/zone"]
                counts[zone] = counts.get(zone, 0) + 1
        return counts

    def _needs_device_plugin(self, nc: Mapping[str, Any]) -> bool:
        """AL2023 nodes on the standard profile get ``nvidia.com/gpu`` from the device plugin DaemonSet."""
        if (
            self.provider == "auto"
            or ((nc.get("spec") or {}).get("nodeClassRef") or {}).get("group") == "eks.amazonaws.com"
        ):
            return False
        return obj.ami_family(self._nodeclass_for(nc)) == "al2023"

    def _register(self, nc: dict[str, Any], info: InstanceInfo, now: float) -> dict[str, Any] | None:
        name = nc["metadata"]["name"]
        nodeclass = self._nodeclass_for(nc)
        provider = (
            "auto"
            if ((nc.get("spec") or {}).get("nodeClassRef") or {}).get("group") == "eks.amazonaws.com"
            else "karpenter"
        )
        node_name = obj.node_name(provider, self.region, nc["metadata"].get("uid", name))
        node = obj.node_for(
            nc,
            info,
            name=node_name,
            region=self.region,
            flavor=obj.ami_family(nodeclass),
            disk_gib=obj.disk_gib(nodeclass, provider),
            now=now,
            advertise_gpus=not (info.is_gpu and self._needs_device_plugin(nc)),
        )
        try:
            self.store.create("nodes", node)
        except Conflict:
            existing = self.store.try_get("nodes", None, node_name)
            if existing is None or obj.claim_for_node(existing) != name:
                raise
        with contextlib.suppress(NotFound):
            self.store.patch(
                NODECLAIM_KEY, None, name, {"metadata": {"labels": {obj.REGISTERED_LABEL: "true"}}}, "merge"
            )

        def mutate(current: dict[str, Any]) -> bool:
            st = current.setdefault("status", {})
            st["nodeName"] = node_name
            obj.set_condition(st, obj.condition("Registered", "True", now))
            return True

        self._write_status(NODECLAIM_KEY, name, mutate)
        self._last_pod_event.setdefault(name, now)
        log.info("registered nodeclaim %s as node %s", name, node_name)
        return self.store.try_get(NODECLAIM_KEY, None, name)

    def _initialize(self, nc: dict[str, Any], node: dict[str, Any], info: InstanceInfo, now: float) -> float | None:
        """Initialized once the node is Ready with every resource the NodeClaim expects (GPUs too)."""
        name = nc["metadata"]["name"]
        node_name = node["metadata"]["name"]
        alloc = resource_list((node.get("status") or {}).get("allocatable"))
        if info.is_gpu and alloc.get("nvidia.com/gpu", 0) <= 0:
            if self._device_plugin_ready(node_name):
                self._advertise_gpus(node, info)
                return 1e-3
            message = 'Resource "nvidia.com/gpu" was requested but not registered'

            def waiting(current: dict[str, Any]) -> bool:
                return obj.set_condition(
                    current.setdefault("status", {}),
                    obj.condition("Initialized", "False", now, "ResourceNotRegistered", message),
                )

            self._write_status(NODECLAIM_KEY, name, waiting)
            return None
        if not obj.node_ready(node):
            return 1.0
        labels = {obj.INITIALIZED_LABEL: "true"}
        startup = {(t.get("key"), t.get("effect")) for t in (nc.get("spec") or {}).get("startupTaints") or []}
        taints = [
            t for t in (node.get("spec") or {}).get("taints") or [] if (t.get("key"), t.get("effect")) not in startup
        ]
        body: dict[str, Any] = {"metadata": {"labels": labels}}
        if startup:
            body["spec"] = {"taints": taints or None}
        with contextlib.suppress(NotFound):
            self.store.patch("nodes", None, node_name, body, "merge")
            self.store.patch(NODECLAIM_KEY, None, name, {"metadata": {"labels": labels}}, "merge")

        def mutate(current: dict[str, Any]) -> bool:
            st = current.setdefault("status", {})
            obj.set_condition(st, obj.condition("Initialized", "True", now))
            obj.set_condition(st, obj.condition("Ready", "True", now))
            return True

        self._write_status(NODECLAIM_KEY, name, mutate)
        log.info("initialized nodeclaim %s", name)
        self._worker.add(("disrupt",))  # a disruption may be waiting for this replacement
        return None

    def _device_plugin_ready(self, node_name: str) -> bool:
        for pod in self._list("pods"):
            if (
                (pod.get("spec") or {}).get("nodeName") == node_name
                and obj.is_device_plugin(pod)
                and obj.pod_ready(pod)
            ):
                return True
        return False

    def _advertise_gpus(self, node: dict[str, Any], info: InstanceInfo) -> None:
        count = str(info.gpus)
        body = {"status": {"capacity": {"nvidia.com/gpu": count}, "allocatable": {"nvidia.com/gpu": count}}}
        with contextlib.suppress(NotFound):
            self.store.patch("nodes", None, node["metadata"]["name"], body, "merge", subresource="status")

    def _sync_claim_status(self, nc: dict[str, Any], now: float) -> None:
        """``lastPodEventTime`` and the ``Drifted`` condition."""
        name = nc["metadata"]["name"]
        last = self._last_pod_event.get(name)
        pool_obj = self.store.try_get(NODEPOOL_KEY, None, obj.pool_of(nc) or "")
        drift = None
        if pool_obj is not None:
            pool = Pool.from_nodepool(pool_obj)
            labels = nc["metadata"].get("labels") or {}
            if obj.pool_hash_drifted(nc, pool):
                drift = ("NodePoolDrifted", "")
            elif Requirements.from_labels(labels).compatible(
                pool.requirements, well_known_labels(PROVIDER_PREFIX[pool.provider])
            ):
                drift = ("RequirementsDrifted", "")

        def mutate(current: dict[str, Any]) -> bool:
            st = current.setdefault("status", {})
            changed = False
            if last is not None:
                stamp = rfc3339(last)
                if st.get("lastPodEventTime") != stamp:
                    st["lastPodEventTime"] = stamp
                    changed = True
            if drift is not None:
                changed |= obj.set_condition(st, obj.condition("Drifted", "True", now, drift[0], drift[1]))
            elif obj.get_condition(current, "Drifted") is not None:
                st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "Drifted"]
                changed = True
            return changed

        self._write_status(NODECLAIM_KEY, name, mutate)

    def _expiry(self, nc: dict[str, Any], now: float) -> float | None:
        expire = parse_duration(str((nc.get("spec") or {}).get("expireAfter", "720h")))
        if expire is None:
            return None
        created = parse_rfc3339(nc["metadata"].get("creationTimestamp")) or now
        left = created + expire - now
        if left > 0:
            return left + 1e-3
        self._event(nc, "Expired", f"NodeClaim expired after {nc['spec'].get('expireAfter')}", kind="Normal")
        node = self.store.try_get("nodes", None, (nc.get("status") or {}).get("nodeName") or "")
        if node is not None:
            self._event(node, "DisruptionTerminating", "Disrupting Node: Expired")
        with contextlib.suppress(NotFound):
            self.store.delete(NODECLAIM_KEY, None, nc["metadata"]["name"])
        return None

    def _terminate(self, nc: dict[str, Any]) -> float | None:
        """Drain and remove the node, then release the NodeClaim (its finalizer)."""
        name = nc["metadata"]["name"]
        node_name = (nc.get("status") or {}).get("nodeName")
        node = self.store.try_get("nodes", None, node_name) if node_name else None
        if node is not None:
            self._taint_disrupted(node)
            left = self._drain(node, force=name in self._forced)
            if left:
                return 1.0
            for pod in self._list("pods"):
                if (pod.get("spec") or {}).get("nodeName") == node_name:
                    with contextlib.suppress(NotFound):
                        self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            with contextlib.suppress(NotFound):
                self.store.delete("nodes", None, node_name)
                self._remove_finalizer("nodes", node_name)
            log.info("deleted node %s", node_name)
        self._remove_finalizer(NODECLAIM_KEY, name)
        self._forget_claim(name)
        self._trigger_batch()
        return None

    def _drain(self, node: dict[str, Any], *, force: bool) -> int:
        """Evict the node's workload pods; returns how many could not be evicted yet (PDBs)."""
        node_name = node["metadata"]["name"]
        all_pods = self._list("pods")
        pdbs = self._list("poddisruptionbudgets.policy")
        blocked = 0
        for pod in reschedulable_pods(p for p in all_pods if (p.get("spec") or {}).get("nodeName") == node_name):
            meta = pod["metadata"]
            if not force:
                pdb = pdb_blocking(pod, pdbs, all_pods)
                if pdb is not None:
                    blocked += 1
                    self._event(
                        node,
                        "FailedDraining",
                        f'Failed to drain node, 1 pod is waiting to be evicted, pdb "{pdb["metadata"]["namespace"]}/'
                        f'{pdb["metadata"]["name"]}" prevents evicting {meta["namespace"]}/{meta["name"]}',
                        kind="Warning",
                    )
                    continue
            self._event(pod, "Evicted", "Evicted pod")
            with contextlib.suppress(NotFound):
                self.store.delete("pods", meta["namespace"], meta["name"])
            all_pods = [p for p in all_pods if p["metadata"].get("uid") != meta.get("uid")]
        return blocked

    def _forget_claim(self, name: str) -> None:
        self._last_pod_event.pop(name, None)
        self._nominated.pop(name, None)
        self._claim_due.pop(name, None)
        self._forced.discard(name)
