"""The disruption loop of the embedded Karpenter: candidates, budgets, commands, and Spot interruptions.

Every pass (every 10 simulated seconds, and when pods leave a node) lists Karpenter's nodes, keeps the
candidates (initialised, not nominated, not already disrupted, not blocked by ``do-not-disrupt`` or a
PodDisruptionBudget), computes what each pool's budgets still allow, and asks :func:`.disruption.decide`
for one command. A command with replacements launches them first and deletes its candidates once they
are initialised; the others delete at once. Spot interruptions (:meth:`..controller.KarpenterController.interrupt`)
delete the NodeClaim right after the warning and force whatever is left when the two minutes are up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from labkit.errors import NotFound

from ..controllers.common import parse_rfc3339
from . import objects as obj
from .base import NOMINATION_SECONDS, ControllerState, PendingCommand
from .catalog import spot_price
from .disruption import REASONS, Candidate, Command, allowed_disruptions, blocked_reason, decide, reschedulable_pods
from .interruption import INSTANCE_TERMINATED, TERMINATING_NODE, TERMINATING_NODECLAIM
from .nodepool import NODECLAIM_KEY
from .provisioner import Plan, build_snapshot, pool_usage, schedule
from .requirements import INSTANCE_TYPE_LABEL

log = logging.getLogger("labkit.embedded.karpenter")


class Disruptor(ControllerState):
    """Consolidation, drift and Spot interruption handling."""

    def _price(self, labels: Mapping[str, str]) -> float:
        info = self.catalog.get(labels.get(INSTANCE_TYPE_LABEL, ""))
        if info is None or info.price is None:
            return 0.0
        if labels.get("karpenter.sh/capacity-type") == "spot":
            return spot_price(info, labels.get("topology.kubernetes.io/zone", "")) or info.price
        return info.price

    def _disrupt(self) -> None:
        if not self._active:
            return
        self._check_pending_commands()
        now = self.clock.now()
        nodeclaims = self._list(NODECLAIM_KEY)
        ctxs, _, pools = self._pool_contexts(nodeclaims)
        nodes_by_name = {n["metadata"]["name"]: n for n in self._list("nodes")}
        all_pods = self._list("pods")
        pdbs = self._list("poddisruptionbudgets.policy")
        in_commands = {c.claim_name for p in self._pending for c in p.command.candidates}
        replacing = {n for p in self._pending for n in p.replacements}
        per_pool_nodes: dict[str, int] = {}
        per_pool_disrupting: dict[str, int] = {}
        candidates: list[Candidate] = []
        for nc in nodeclaims:
            pool_name = obj.pool_of(nc) or ""
            per_pool_nodes[pool_name] = per_pool_nodes.get(pool_name, 0) + 1
            name = nc["metadata"]["name"]
            node = nodes_by_name.get((nc.get("status") or {}).get("nodeName") or "")
            deleting = bool(nc["metadata"].get("deletionTimestamp")) or name in in_commands
            if deleting or (node is not None and obj.has_disrupted_taint(node)):
                per_pool_disrupting[pool_name] = per_pool_disrupting.get(pool_name, 0) + 1
                continue
            pool = pools.get(pool_name)
            if node is None or pool is None or name in replacing or not obj.is_true(nc, "Initialized"):
                continue
            if self._nominated.get(name, 0) > now or self._nominated.get(node["metadata"]["name"], 0) > now:
                continue
            on_node = [p for p in all_pods if (p.get("spec") or {}).get("nodeName") == node["metadata"]["name"]]
            initialized = parse_rfc3339((obj.get_condition(nc, "Initialized") or {}).get("lastTransitionTime")) or now
            cand = Candidate(
                node=node,
                nodeclaim=nc,
                pool=pool,
                pods=reschedulable_pods(on_node),
                price=self._price(node["metadata"].get("labels") or {}),
                capacity_type=(node["metadata"].get("labels") or {}).get("karpenter.sh/capacity-type", "on-demand"),
                quiet_since=max(initialized, self._last_pod_event.get(name) or obj.status_time(nc, "lastPodEventTime")),
                drifted=obj.is_true(nc, "Drifted"),
            )
            self._set_consolidatable(cand, now)
            if not (cand.drifted or cand.consolidatable(now)):
                continue
            blocked = blocked_reason(cand, pdbs, all_pods)
            if blocked is not None:
                self._event(node, "DisruptionBlocked", f"Cannot disrupt Node: {blocked}")
                self._event(nc, "DisruptionBlocked", f"Cannot disrupt NodeClaim: {blocked}")
                continue
            candidates.append(cand)
        if not candidates:
            return
        budgets: dict[str, dict[str, int]] = {}
        for name, pool in pools.items():
            allowed = allowed_disruptions(pool, per_pool_nodes.get(name, 0), now)
            budgets[name] = {r: allowed[r] - per_pool_disrupting.get(name, 0) for r in REASONS}

        def simulate(cands: list[Candidate]) -> Plan:
            skip = {c.name for c in cands}
            gone = {c.claim_name for c in cands}
            remaining_claims = [c for c in nodeclaims if c["metadata"]["name"] not in gone]
            nodes_list, bound, virtual, expected = self._snapshot_inputs(remaining_claims, ctxs)
            snapshot = build_snapshot(nodes_list, bound, virtual, skip=skip, expected_allocatable=expected)
            pods = [p for c in cands for p in c.pods]
            usage = pool_usage(remaining_claims, self.catalog)
            return schedule(pods, ctxs, snapshot=snapshot, usage=usage, unavailable=self._unavailable())

        decision = decide(candidates, budgets, simulate, now)
        for cand, message in decision.unconsolidatable:
            self._event(cand.node, "Unconsolidatable", message)
            self._event(cand.nodeclaim, "Unconsolidatable", message)
        for pool, message in decision.blocked_pools:
            self._event(pool.raw, "DisruptionBlocked", message)
        if decision.command is not None:
            self._execute(decision.command)

    def _set_consolidatable(self, cand: Candidate, now: float) -> None:
        ok = cand.consolidatable(now)
        current = obj.get_condition(cand.nodeclaim, "Consolidatable")
        if current is not None and (current.get("status") == "True") == ok:
            return
        if current is None and not ok:
            return

        def mutate(c: dict[str, Any]) -> bool:
            st = c.setdefault("status", {})
            if ok:
                return obj.set_condition(st, obj.condition("Consolidatable", "True", now))
            before = len(st.get("conditions") or [])
            st["conditions"] = [x for x in st.get("conditions") or [] if x.get("type") != "Consolidatable"]
            return len(st["conditions"]) != before

        self._write_status(NODECLAIM_KEY, cand.claim_name, mutate)

    def _execute(self, command: Command) -> None:
        log.info(command.describe())
        reason = command.reason
        for c in command.candidates:
            self._taint_disrupted(c.node)
        if command.replacements:
            names = []
            for plan in command.replacements:
                made = self._create_claim(plan)
                if made is None:
                    continue
                names.append(made["metadata"]["name"])
                self._event(made, "DisruptionLaunching", f"Launching NodeClaim: {reason}")
                self._event(made, "DisruptionWaitingReadiness", "Waiting on readiness to continue disruption")
            self._pending.append(PendingCommand(command, names))
            return
        self._terminate_candidates(command)

    def _terminate_candidates(self, command: Command) -> None:
        for c in command.candidates:
            self._event(c.node, "DisruptionTerminating", f"Disrupting Node: {command.reason}")
            self._event(c.nodeclaim, "DisruptionTerminating", f"Disrupting NodeClaim: {command.reason}")
            with contextlib.suppress(NotFound):
                self.store.delete(NODECLAIM_KEY, None, c.claim_name)

    def _check_pending_commands(self) -> None:
        still = []
        for pending in self._pending:
            claims = [self.store.try_get(NODECLAIM_KEY, None, n) for n in pending.replacements]
            if any(c is None or (c.get("metadata") or {}).get("deletionTimestamp") for c in claims):
                log.info("disruption abandoned: a replacement NodeClaim failed")
                for cand in pending.command.candidates:
                    self._untaint(cand.name)
                continue
            if all(obj.is_true(c, "Initialized") for c in claims if c is not None):
                # The replacements wait for the evicted pods: keep them from looking empty meanwhile.
                for name in pending.replacements:
                    self._nominated[name] = self.clock.now() + NOMINATION_SECONDS
                self._terminate_candidates(pending.command)
                continue
            still.append(pending)
        self._pending = still

    def _on_interruption(self, node_name: str) -> float | None:
        with self._lock:
            event = self._interruptions.get(node_name)
        if event is None:
            return None
        node = self.store.try_get("nodes", None, node_name)
        claim = self.store.try_get(NODECLAIM_KEY, None, event.nodeclaim)
        if node is not None:
            self._event(node, *TERMINATING_NODE)
            labels = node["metadata"].get("labels") or {}
            self.unavailable.mark(
                labels.get(INSTANCE_TYPE_LABEL, ""),
                labels.get("topology.kubernetes.io/zone", ""),
                labels.get("karpenter.sh/capacity-type", "spot"),
                self.clock.now(),
            )
        if claim is not None:
            self._event(claim, *TERMINATING_NODECLAIM)
            with contextlib.suppress(NotFound):
                self.store.delete(NODECLAIM_KEY, None, event.nodeclaim)
        return None

    def _reclaim(self, node_name: str) -> float | None:
        """The end of the warning: EC2 takes the instance back, whatever is still on it."""
        with self._lock:
            event = self._interruptions.pop(node_name, None)
        if event is None:
            return None
        node = self.store.try_get("nodes", None, node_name)
        if node is not None:
            self._event(node, *INSTANCE_TERMINATED, kind="Warning")
            self._forced.add(event.nodeclaim)
            with contextlib.suppress(NotFound):
                self.store.delete(NODECLAIM_KEY, None, event.nodeclaim)
            self._worker.add(("claim", event.nodeclaim))
        return None
