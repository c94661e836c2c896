"""The embedded Karpenter: provisioning, NodeClaim lifecycle, disruption and interruption over the store.

:class:`KarpenterController` subscribes to the store and does on one worker thread, on the shared
simulated clock, what Karpenter (or EKS Auto Mode's managed Karpenter) does on a cluster:

- registers its CRDs; on ``eks-auto`` creates the built-in ``general-purpose`` and ``system`` NodePools
  and the ``default`` NodeClass;
- batches pods the scheduler left Pending as ``Unschedulable`` (1 s idle, 10 s at most), plans nodes
  for them (:mod:`.provisioner`), creates NodeClaims and records ``Nominated`` events, or a
  ``FailedScheduling`` Warning from ``karpenter`` with the reason per NodePool;
- launches each NodeClaim (cheapest offering), registers its Node after the instance type's launch
  time (45-60 s for CPU types, 90-120 s for GPU types), marks it Initialized and Ready, keeps NodePool
  and node class status;
- every 10 s (and when pods leave a node) runs disruption (:mod:`.disruption`): drift, emptiness,
  consolidation within budgets; ``expireAfter``; draining taints the node ``karpenter.sh/disrupted``,
  evicts its pods (PodDisruptionBudgets honoured), then deletes Node and NodeClaim;
- :meth:`KarpenterController.interrupt` simulates a Spot interruption (:mod:`.interruption`).

On the ``eks-standard`` (and ``kind``) profile Karpenter is something the labs install: the CRDs are
served from the start, but nothing is provisioned until a Deployment ``karpenter`` in ``kube-system``
(or ``karpenter``) has a Ready pod, as after the Week 3 ``helm install``. On ``standard`` GPU nodes from
an AL2023 node class advertise ``nvidia.com/gpu`` only once an NVIDIA device plugin pod is Ready on
them (the AMI lacks the plugin); Bottlerocket and Auto Mode nodes have it built in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from labkit.errors import Conflict, Invalid, NotFound

from ..scheduler import is_terminal, is_terminating, resource_list
from . import crds
from . import objects as obj
from .base import NOMINATION_SECONDS
from .disrupting import Disruptor
from .disruption import (
    is_daemonset_pod,
)
from .interruption import (
    QUEUE_DELAY_SECONDS,
    SPOT_INTERRUPTED,
    SPOT_WARNING_SECONDS,
    Interruption,
)
from .lifecycle import NodeClaimLifecycle
from .nodepool import (
    AUTO_NODECLASS_KEY,
    EC2NODECLASS_KEY,
    HASH_ANNOTATION,
    HASH_VERSION,
    HASH_VERSION_ANNOTATION,
    NODECLAIM_KEY,
    NODEPOOL_KEY,
    Pool,
    builtin_nodepools,
    default_nodeclass,
    parse_duration,
)
from .provisioner import (
    Plan,
    build_snapshot,
    node_class_problems,
    pod_key,
    prepare_pools,
    schedule,
)
from .requirements import NODEPOOL_LABEL

log = logging.getLogger("labkit.embedded.karpenter")

INSTALL_DEPLOYMENT = "karpenter"
INSTALL_NAMESPACES = ("kube-system", "karpenter")


def _is_provisionable(pod: Mapping[str, Any]) -> bool:
    """A pod Karpenter should find capacity for: Pending, unbound, marked Unschedulable, not a DaemonSet pod."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or is_terminating(pod) or is_terminal(pod) or is_daemonset_pod(pod):
        return False
    if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return True
    return False


class KarpenterController(NodeClaimLifecycle, Disruptor):
    """Karpenter (or EKS Auto Mode's compute) for the embedded cluster.

    Args:
        store: the embedded store.
        clock: the shared simulated clock.
        profile: ``eks-auto`` (Auto Mode: built-in pools, always on), ``eks-standard`` or ``kind``
            (Karpenter once installed); the aliases ``auto``/``standard`` work too.
        region: region of the zones nodes land in (``<region>a``, ``b``, ``c``).
        cluster_name: used in node class status and AMI ids.
        rng: random source for NodeClaim names (seed it for reproducible runs).
        batch_idle_seconds: provisioning waits this long without new pending pods...
        batch_max_seconds: ...but no longer than this after the first one.
        disruption_seconds: how often disruption is evaluated (simulated seconds).
    """

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Register the CRDs (and Auto Mode's built-ins), subscribe to the store and start working."""
        crds.register(self.store, self.provider)
        if self.profile == "eks-auto":
            self._create_if_missing(AUTO_NODECLASS_KEY, default_nodeclass(self.cluster_name))
            for np in builtin_nodepools():
                self._create_if_missing(NODEPOOL_KEY, np)
        self._unsubscribe = self.store.subscribe(self._worker.push_event)
        self._worker.start()
        self._worker.add(("install",))
        for key in (EC2NODECLASS_KEY, AUTO_NODECLASS_KEY):
            for nc in self._list(key):
                self._worker.add(("nodeclass", key, nc["metadata"]["name"]))
        for np in self._list(NODEPOOL_KEY):
            self._worker.add(("pool", np["metadata"]["name"]))
        for nc in self._list(NODECLAIM_KEY):
            self._worker.add(("claim", nc["metadata"]["name"]))
        self._worker.add(("provision",))
        self._arm_disruption(self.disruption_seconds)

    def stop(self) -> None:
        """Unsubscribe and stop the worker (nodes and NodeClaims stay as they are)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._worker.stop()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or running (tests)."""
        return self._worker.wait_idle(timeout)

    @property
    def active(self) -> bool:
        """Whether Karpenter runs: always on Auto Mode, once installed elsewhere."""
        return self._active

    def _create_if_missing(self, key: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(Conflict):
            self.store.create(key, body)

    # ------------------------------------------------------------------ public actions

    def interrupt(self, node_name: str) -> Interruption:
        """Simulate EC2's two-minute Spot interruption warning for ``node_name``.

        Karpenter reacts at once (taint, evict, delete; pods are recreated and provisioned on a new node);
        the instance itself goes when the two minutes are up.

        Raises:
            NotFound: no such node.
            Invalid: the node was not launched by Karpenter, or is not a Spot instance.
        """
        node = self.store.try_get("nodes", None, node_name)
        if node is None:
            raise NotFound(
                f'node "{node_name}" not found', "list nodes with kubectl get nodes", status=404, reason="NotFound"
            )
        claim = obj.claim_for_node(node)
        if claim is None:
            raise Invalid(
                f'node "{node_name}" was not launched by Karpenter',
                "interrupt a node with the karpenter.sh/nodepool label",
                status=422,
                reason="Invalid",
            )
        ct = ((node.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/capacity-type")
        if ct != "spot":
            raise Invalid(
                f'node "{node_name}" is {ct or "not a spot"} capacity; only Spot instances get interruption warnings',
                'allow spot in the NodePool (karpenter.sh/capacity-type In ["spot"]) and interrupt one of its nodes',
                status=422,
                reason="Invalid",
            )
        event = Interruption(node_name, claim, self.clock.now())
        with self._lock:
            self._interruptions[node_name] = event
        claim_obj = self.store.try_get(NODECLAIM_KEY, None, claim) or {"metadata": {"name": claim}}
        for target in (node, claim_obj):
            self._event(target, *SPOT_INTERRUPTED, kind="Warning")
        self._worker.add_after(("interrupt", node_name), QUEUE_DELAY_SECONDS)
        self._worker.add_after(("reclaim", node_name), SPOT_WARNING_SECONDS)
        return event

    def explain(self, namespace: str, name: str) -> list[str]:
        """Why Karpenter launches nothing for a pending pod right now (``[]`` when it can).

        Raises:
            NotFound: no such pod.
        """
        pod = self.store.get("pods", namespace, name)
        ctxs, usage, _ = self._pool_contexts(self._list(NODECLAIM_KEY))
        plan = schedule([pod], ctxs, usage=usage, all_options=self.options, unavailable=self._unavailable())
        return plan.errors.get(pod_key(pod), [])

    # ------------------------------------------------------------------ events in

    def _keys_for(self, event: Any) -> Iterable[Hashable]:
        key = event.key
        o = event.obj
        meta = o.get("metadata") or {}
        name = meta.get("name", "")
        out: list[Hashable] = []
        if key == "pods":
            if (
                self.profile != "eks-auto"
                and meta.get("namespace") in INSTALL_NAMESPACES
                and str(name).startswith(f"{INSTALL_DEPLOYMENT}-")
            ):
                out.append(("install",))
            if event.type != "DELETED" and _is_provisionable(o):
                self._trigger_batch()
            out.extend(self._pod_moved(event))
        elif key == NODECLAIM_KEY:
            out.append(("claim", name))
            pool = obj.pool_of(o)
            if pool:
                out.append(("pool", pool))
            if event.type == "DELETED":
                self._trigger_batch()
        elif key == NODEPOOL_KEY:
            out.append(("pool", name))
            if event.type == "MODIFIED":  # its NodeClaims may have drifted
                out.extend(
                    ("claim", c["metadata"]["name"]) for c in self._list(NODECLAIM_KEY) if obj.pool_of(c) == name
                )
            if event.type != "DELETED":
                self._trigger_batch()
        elif key in (EC2NODECLASS_KEY, AUTO_NODECLASS_KEY):
            out.append(("nodeclass", key, name))
            out.extend(("pool", np["metadata"]["name"]) for np in self._list(NODEPOOL_KEY))
            self._trigger_batch()
        elif key == "nodes":
            claim = obj.claim_for_node(o)
            if claim:
                out.append(("claim", claim))
        elif key == "deployments.apps" and name == INSTALL_DEPLOYMENT and meta.get("namespace") in INSTALL_NAMESPACES:
            out.append(("install",))
        return out

    def _pod_moved(self, event: Any) -> list[Hashable]:
        """Note pods bound to or leaving a Karpenter node (consolidation waits for quiet nodes)."""
        pod, old = event.obj, getattr(event, "old", None)
        node = (pod.get("spec") or {}).get("nodeName") or ((old or {}).get("spec") or {}).get("nodeName")
        if not node:
            return []
        if event.type == "DELETED":
            was_bound, is_bound = not is_terminal(pod), False
        else:
            before = old or {}
            was_bound = bool((before.get("spec") or {}).get("nodeName")) and not is_terminal(before)
            was_bound = was_bound and not is_terminating(before)
            is_bound = not is_terminal(pod) and not is_terminating(pod)
        moved = was_bound != is_bound
        if not moved and not obj.is_device_plugin(pod):
            return []
        node_obj = self.store.try_get("nodes", None, node)
        claim = obj.claim_for_node(node_obj) if node_obj else None
        if claim is None:
            return []
        if moved:
            self._last_pod_event[claim] = self.clock.now()
            pool_name = ((node_obj.get("metadata") or {}).get("labels") or {}).get(NODEPOOL_LABEL, "")
            pool = self.store.try_get(NODEPOOL_KEY, None, pool_name)
            if pool is not None:
                with contextlib.suppress(ValueError):
                    after = parse_duration(
                        ((pool.get("spec") or {}).get("disruption") or {}).get("consolidateAfter", "0s")
                    )
                    if after is not None:
                        self._arm_disruption(after + 1.0)
        return [("claim", claim)]

    # ------------------------------------------------------------------ dispatch

    def _handle(self, key: Hashable) -> float | None:
        kind = key[0] if isinstance(key, tuple) else key
        if kind == "install":
            return self._check_install()
        if kind == "provision":
            return self._provision()
        if kind == "claim":
            return self._claim_timer(key[1], self._reconcile_claim(key[1]))
        if kind == "pool":
            return self._reconcile_pool(key[1])
        if kind == "nodeclass":
            return self._reconcile_nodeclass(key[1], key[2])
        if kind == "disrupt":
            self._disrupt()
            self._arm_disruption(self.disruption_seconds)
            return None
        if kind == "interrupt":
            return self._on_interruption(key[1])
        if kind == "reclaim":
            return self._reclaim(key[1])
        return None

    def _claim_timer(self, name: str, delay: float | None) -> float | None:
        """Ask for a NodeClaim's next reconcile only when no earlier one is already due (timers do not pile up)."""
        if delay is None:
            return None
        now = self.clock.now()
        at = now + delay
        due = self._claim_due.get(name)
        if due is not None and now < due <= at + 1e-6:
            return None
        self._claim_due[name] = at
        return delay

    # ------------------------------------------------------------------ install gate (standard)

    def _check_install(self) -> float | None:
        if self.profile == "eks-auto":
            self._active = True
            return None
        was = self._active
        self._active = self._installed()
        if self._active and not was:
            log.info("karpenter is installed: provisioning starts")
            for key in (EC2NODECLASS_KEY, AUTO_NODECLASS_KEY):
                for nc in self._list(key):
                    self._worker.add(("nodeclass", key, nc["metadata"]["name"]))
            for np in self._list(NODEPOOL_KEY):
                self._worker.add(("pool", np["metadata"]["name"]))
            for nc in self._list(NODECLAIM_KEY):
                self._worker.add(("claim", nc["metadata"]["name"]))
            self._worker.add(("provision",))
        return None

    def _installed(self) -> bool:
        """A Deployment ``karpenter`` in kube-system (or karpenter) with a Ready pod."""
        for ns in INSTALL_NAMESPACES:
            dep = self.store.try_get("deployments.apps", ns, INSTALL_DEPLOYMENT)
            if dep is None:
                continue
            if int((dep.get("status") or {}).get("readyReplicas") or 0) > 0:
                return True
            selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            for pod in self._list("pods", ns):
                labels = (pod.get("metadata") or {}).get("labels") or {}
                if selector and all(labels.get(k) == v for k, v in selector.items()) and obj.pod_ready(pod):
                    return True
        return False

    # ------------------------------------------------------------------ provisioning

    def _provision(self) -> float | None:
        now = self.clock.now()
        if self._batch_start is not None:
            idle = now - self._batch_last
            if idle < self.batch_idle and now - self._batch_start < self.batch_max:
                return min(self.batch_idle - idle, self.batch_max - (now - self._batch_start)) + 1e-3
        self._batch_start = None
        if not self._active:
            return None
        pending = [p for p in self._list("pods") if _is_provisionable(p)]
        if not pending:
            return None
        nodeclaims = self._list(NODECLAIM_KEY)
        ctxs, usage, _ = self._pool_contexts(nodeclaims)
        nodes_list, bound, virtual, expected = self._snapshot_inputs(nodeclaims, ctxs)
        snapshot = build_snapshot(nodes_list, bound, virtual, expected_allocatable=expected)
        plan = schedule(
            pending, ctxs, snapshot=snapshot, usage=usage, all_options=self.options, unavailable=self._unavailable()
        )
        self._apply_plan(
            plan, pending, {n["metadata"]["name"]: n for n in nodes_list}, {v["metadata"]["name"] for v in virtual}
        )
        return None

    def _apply_plan(
        self, plan: Plan, pods: list[dict[str, Any]], nodes_by_name: Mapping[str, Any], virtual: set[str]
    ) -> list[str]:
        by_key = {pod_key(p): p for p in pods}
        now = self.clock.now()
        created = []
        for claim in plan.claims:
            made = self._create_claim(claim)
            if made is None:
                continue
            name = made["metadata"]["name"]
            created.append(name)
            self._nominated[name] = now + NOMINATION_SECONDS
            for p in claim.pods:
                self._event(p, "Nominated", f"Pod should schedule on: nodeclaim/{name}")
        for key, target in plan.existing.items():
            pod = by_key.get(key)
            if pod is None:
                continue
            self._nominated[target] = now + NOMINATION_SECONDS
            if target in virtual:
                self._event(pod, "Nominated", f"Pod should schedule on: nodeclaim/{target}")
            else:
                node = nodes_by_name.get(target) or {}
                claim = obj.claim_for_node(node)
                where = f"nodeclaim/{claim}, node/{target}" if claim else f"node/{target}"
                self._event(pod, "Nominated", f"Pod should schedule on: {where}")
        for key, errors in plan.errors.items():
            pod = by_key.get(key)
            if pod is not None and errors:
                self._event(pod, "FailedScheduling", plan.message(key), kind="Warning")
        return created

    # ------------------------------------------------------------------ NodePool and node class status

    def _reconcile_pool(self, name: str) -> float | None:
        np = self.store.try_get(NODEPOOL_KEY, None, name)
        if np is None or not self._active:
            return None
        try:
            pool = Pool.from_nodepool(np)
        except ValueError as exc:
            pool = None
            invalid = str(exc)
        now = self.clock.now()
        if pool is not None:
            ann = np["metadata"].get("annotations") or {}
            if ann.get(HASH_ANNOTATION) != pool.template_hash or ann.get(HASH_VERSION_ANNOTATION) != HASH_VERSION:
                with contextlib.suppress(NotFound, Conflict):
                    self.store.patch(
                        NODEPOOL_KEY,
                        None,
                        name,
                        {
                            "metadata": {
                                "annotations": {
                                    HASH_ANNOTATION: pool.template_hash,
                                    HASH_VERSION_ANNOTATION: HASH_VERSION,
                                }
                            }
                        },
                        "merge",
                    )
        claims = [c for c in self._list(NODECLAIM_KEY) if obj.pool_of(c) == name]
        resources: dict[str, int] = {}
        for c in claims:
            for k, v in resource_list((c.get("status") or {}).get("capacity")).items():
                resources[k] = resources.get(k, 0) + v
        nodes_count = sum(1 for c in claims if (c.get("status") or {}).get("nodeName"))
        problems = (
            {}
            if pool is None
            else node_class_problems([pool], self._list(EC2NODECLASS_KEY) + self._list(AUTO_NODECLASS_KEY))
        )
        generation = int(np["metadata"].get("generation") or 1)

        def mutate(current: dict[str, Any]) -> bool:
            from .provisioner import format_quantity

            st = current.setdefault("status", {})
            changed = False
            res = {k: format_quantity(k, v) for k, v in sorted(resources.items())}
            if st.get("resources") != res:
                st["resources"] = res
                changed = True
            if st.get("nodes") != nodes_count:
                st["nodes"] = nodes_count
                changed = True
            if pool is None:
                changed |= obj.set_condition(
                    st,
                    obj.condition(
                        "ValidationSucceeded", "False", now, "NodePoolValidationFailed", invalid, generation=generation
                    ),
                )
            else:
                changed |= obj.set_condition(
                    st, obj.condition("ValidationSucceeded", "True", now, generation=generation)
                )
            if name in problems:
                reason, _, message = problems[name].partition(", ")
                changed |= obj.set_condition(
                    st, obj.condition("NodeClassReady", "False", now, reason, message, generation=generation)
                )
            elif pool is not None:
                changed |= obj.set_condition(st, obj.condition("NodeClassReady", "True", now, generation=generation))
            failing = [
                c["type"] for c in st.get("conditions") or [] if c["type"] != "Ready" and c.get("status") == "False"
            ]
            if failing:
                changed |= obj.set_condition(
                    st,
                    obj.condition(
                        "Ready",
                        "False",
                        now,
                        "UnhealthyDependents",
                        ", ".join(f"{t}=False" for t in failing),
                        generation=generation,
                    ),
                )
            else:
                changed |= obj.set_condition(st, obj.condition("Ready", "True", now, generation=generation))
            return changed

        self._write_status(NODEPOOL_KEY, name, mutate)
        if pool is not None and name not in problems:
            ctx = prepare_pools([pool], self.options, unavailable=self._unavailable())[0]
            if not ctx.options:
                self._event(
                    np,
                    "NoCompatibleInstanceTypes",
                    "NodePool requirements filtered out all compatible available instance types",
                    kind="Warning",
                )
        return None

    def _reconcile_nodeclass(self, key: str, name: str) -> float | None:
        nc = self.store.try_get(key, None, name)
        if nc is None or not self._active or (nc.get("metadata") or {}).get("deletionTimestamp"):
            return None
        now = self.clock.now()
        build = obj.auto_nodeclass_status if key == AUTO_NODECLASS_KEY else obj.ec2nodeclass_status
        status = build(nc, region=self.region, cluster=self.cluster_name, now=now)

        def mutate(current: dict[str, Any]) -> bool:
            st = current.setdefault("status", {})
            changed = False
            for k, v in status.items():
                if k == "conditions":
                    continue
                if st.get(k) != v:
                    st[k] = v
                    changed = True
            for c in status.get("conditions") or []:
                changed |= obj.set_condition(st, c)
            return changed

        self._write_status(key, name, mutate)
        return None


__all__ = ["KarpenterController"]


__all__ = ["KarpenterController"]
