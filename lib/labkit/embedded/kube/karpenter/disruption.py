"""Karpenter's voluntary disruption, as pure decisions: budgets, candidates, drift, emptiness and consolidation.

- Budgets (:func:`allowed_disruptions`): each NodePool budget allows ``nodes`` (a count or a share of
  the pool's nodes, rounded up) per reason (``Empty``, ``Underutilized``, ``Drifted``; all when
  ``reasons`` is absent), while active: always, or for ``duration`` after each ``schedule`` (cron, UTC,
  on the simulated clock). The most restrictive active budget wins; nodes already being disrupted count
  against it.
- Candidates (:class:`Candidate`): initialised Karpenter nodes not already being disrupted, without
  ``karpenter.sh/do-not-disrupt`` on the node or on a pod, and whose pods' PodDisruptionBudgets allow an
  eviction. Empty and underutilised nodes must also have been quiet (no pod bound or removed) for the
  pool's ``consolidateAfter``.
- Decisions (:func:`decide`), one command per pass as Karpenter does: drifted nodes are replaced
  (replacements first when their pods fit nowhere else); empty nodes are deleted (``WhenEmpty`` and
  ``WhenEmptyOrUnderutilized``); under ``WhenEmptyOrUnderutilized`` a node whose pods fit on the other
  nodes is deleted, or replaced by one cheaper node (never spot by spot: SpotToSpotConsolidation is
  off by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scheduler import is_terminal, is_terminating, label_selector_matches
from .cron import Cron
from .nodepool import Pool, parse_duration
from .provisioner import ClaimPlan, Plan

EMPTY, UNDERUTILIZED, DRIFTED = "Empty", "Underutilized", "Drifted"
REASONS = (UNDERUTILIZED, EMPTY, DRIFTED)
UNBOUNDED = 2**31 - 1
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
DISRUPTED_TAINT = {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}


# --------------------------------------------------------------------------- budgets


def budget_active(budget: Mapping[str, Any], now: float) -> bool:
    """Whether a budget applies at ``now``: always without a schedule, else within ``duration`` of a firing.

    Raises:
        ValueError: the schedule or duration does not parse (Karpenter then blocks disruption: fail closed).
    """
    schedule, duration = budget.get("schedule"), budget.get("duration")
    if schedule is None and duration is None:
        return True
    if schedule is None or duration is None:
        raise ValueError("a budget's schedule must be set with its duration")
    seconds = parse_duration(str(duration))
    return Cron.parse(str(schedule)).active(now, seconds or 0.0)


def budget_nodes(budget: Mapping[str, Any], num_nodes: int) -> int:
    """How many nodes a budget lets go: a count, or a percentage of ``num_nodes`` rounded up."""
    value = str(budget.get("nodes", "10%")).strip()
    if value.endswith("%"):
        return math.ceil(num_nodes * float(value[:-1]) / 100)
    return int(value)


def allowed_disruptions(pool: Pool, num_nodes: int, now: float) -> dict[str, int]:
    """Nodes the pool's budgets allow to be disrupted now, per reason (:data:`UNBOUNDED` when no budget applies)."""
    allowed = dict.fromkeys(REASONS, UNBOUNDED)
    for budget in pool.budgets:
        try:
            value = budget_nodes(budget, num_nodes) if budget_active(budget, now) else UNBOUNDED
        except ValueError:
            value = 0
        for reason in budget.get("reasons") or REASONS:
            if reason in allowed:
                allowed[reason] = min(allowed[reason], value)
    return allowed


# --------------------------------------------------------------------------- pods


def is_daemonset_pod(pod: Mapping[str, Any]) -> bool:
    return any(ref.get("kind") == "DaemonSet" for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])


def is_mirror_pod(pod: Mapping[str, Any]) -> bool:
    return "kubernetes.io/config.mirror" in ((pod.get("metadata") or {}).get("annotations") or {})


def reschedulable_pods(pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pods that would move if their node went: workload pods, not DaemonSet, mirror, finished or terminating ones."""
    return [
        dict(p)
        for p in pods
        if not is_daemonset_pod(p) and not is_mirror_pod(p) and not is_terminal(p) and not is_terminating(p)
    ]


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _scaled(value: Any, total: int, *, round_up: bool) -> int:
    text = str(value)
    if text.endswith("%"):
        share = float(text[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(text)


def pdb_disruptions_allowed(pdb: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> int:
    """Evictions a PodDisruptionBudget allows now, from the pods it selects (as the disruption controller computes)."""
    spec = pdb.get("spec") or {}
    ns = (pdb.get("metadata") or {}).get("namespace")
    selected = [
        p
        for p in pods
        if (p.get("metadata") or {}).get("namespace") == ns
        and not is_terminal(p)
        and label_selector_matches(spec.get("selector"), (p.get("metadata") or {}).get("labels") or {})
    ]
    expected = len(selected)
    healthy = sum(1 for p in selected if _ready(p) and not is_terminating(p))
    if spec.get("maxUnavailable") is not None:
        return max(0, _scaled(spec["maxUnavailable"], expected, round_up=True) - (expected - healthy))
    if spec.get("minAvailable") is not None:
        return max(0, healthy - _scaled(spec["minAvailable"], expected, round_up=True))
    return max(0, healthy - expected)


def pdb_blocking(
    pod: Mapping[str, Any], pdbs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The PodDisruptionBudget that forbids evicting ``pod`` now, if any."""
    meta = pod.get("metadata") or {}
    all_pods = list(pods)
    for pdb in pdbs:
        if (pdb.get("metadata") or {}).get("namespace") != meta.get("namespace"):
            continue
        if not label_selector_matches((pdb.get("spec") or {}).get("selector"), meta.get("labels") or {}):
            continue
        if pdb_disruptions_allowed(pdb, all_pods) <= 0 and _ready(pod):
            return pdb
    return None


# --------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """A Karpenter node that disruption may act on.

    Attributes:
        node: the Node.
        nodeclaim: its NodeClaim.
        pool: its NodePool.
        pods: its reschedulable pods.
        price: what it costs per hour (its offering's price).
        capacity_type: ``spot``, ``on-demand`` or ``reserved``.
        quiet_since: simulated time of its last pod event (or its initialisation).
        drifted: its NodeClaim is marked ``Drifted``.
    """

    node: dict[str, Any]
    nodeclaim: dict[str, Any]
    pool: Pool
    pods: list[dict[str, Any]]
    price: float
    capacity_type: str
    quiet_since: float
    drifted: bool = False

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def claim_name(self) -> str:
        return str(self.nodeclaim["metadata"]["name"])

    def consolidatable(self, now: float) -> bool:
        """Quiet for the pool's ``consolidateAfter`` (``Never`` disables consolidation)."""
        after = self.pool.consolidate_after
        return after is not None and now - self.quiet_since >= after


def blocked_reason(
    candidate: Candidate, pdbs: Iterable[Mapping[str, Any]], all_pods: Iterable[Mapping[str, Any]]
) -> str | None:
    """Why a candidate may not be disrupted voluntarily (Karpenter's wording), or ``None``."""
    annotations = (candidate.node.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DO_NOT_DISRUPT) == "true":
        return f'disruption is blocked through the "{DO_NOT_DISRUPT}" annotation'
    pods = list(all_pods)
    for pod in candidate.pods:
        meta = pod.get("metadata") or {}
        if (meta.get("annotations") or {}).get(DO_NOT_DISRUPT) == "true":
            return f'pod "{meta.get("namespace")}/{meta.get("name")}" has "{DO_NOT_DISRUPT}" annotation'
        pdb = pdb_blocking(pod, pdbs, pods)
        if pdb is not None:
            pm = pdb.get("metadata") or {}
            return f'pdb "{pm.get("namespace")}/{pm.get("name")}" prevents pod evictions'
    return None


# --------------------------------------------------------------------------- commands


@dataclass
class Command:
    """One disruption decision: delete ``candidates`` after launching ``replacements`` (if any)."""

    reason: str
    candidates: list[Candidate]
    replacements: list[ClaimPlan] = field(default_factory=list)

    @property
    def action(self) -> str:
        return "replace" if self.replacements else "delete"

    def describe(self) -> str:
        """A one-line summary like Karpenter's ``disrupting node(s)`` log."""
        nodes = ", ".join(
            f"{c.name}/{c.nodeclaim['metadata'].get('labels', {}).get('node.kubernetes.io/instance-type', '?')}/"
            f"{c.capacity_type}"
            for c in self.candidates
        )
        pods = sum(len(c.pods) for c in self.candidates)
        text = (
            f"disrupting node(s) via {self.action} ({self.reason}), "
            f"terminating {len(self.candidates)} nodes ({pods} pods) {nodes}"
        )
        if self.replacements:
            text += f" and replacing with {len(self.replacements)} node(s)"
        return text


#: Simulates rescheduling the pods of some candidates with them gone: returns Karpenter's plan.
Simulate = Callable[[Sequence[Candidate]], Plan]


@dataclass
class Decision:
    """What one disruption pass decided, plus candidates it passed over and why (events to record)."""

    command: Command | None = None
    unconsolidatable: list[tuple[Candidate, str]] = field(default_factory=list)
    blocked_pools: list[tuple[Pool, str]] = field(default_factory=list)


def decide(
    candidates: Sequence[Candidate],
    budgets: Mapping[str, Mapping[str, int]],
    simulate: Simulate,
    now: float,
) -> Decision:
    """Choose the next disruption: drift, then emptiness, then single-node consolidation.

    Args:
        candidates: nodes that may be disrupted (already filtered by :func:`blocked_reason`).
        budgets: pool name -> reason -> nodes still allowed (budget minus nodes already being disrupted).
        simulate: reschedules the pods of some candidates with those nodes gone.
        now: simulated time.
    """
    decision = Decision()
    left = {p: dict(r) for p, r in budgets.items()}

    def take(c: Candidate, reason: str) -> bool:
        allowed = left.get(c.pool.name, {}).get(reason, UNBOUNDED)
        if allowed <= 0:
            msg = f"No allowed disruptions for disruption reason {reason} due to blocking budget"
            if not any(p.name == c.pool.name and m == msg for p, m in decision.blocked_pools):
                decision.blocked_pools.append((c.pool, msg))
            return False
        left.setdefault(c.pool.name, {})[reason] = allowed - 1
        return True

    # Drift: replace, launching replacements first when the pods fit nowhere else.
    for c in sorted((c for c in candidates if c.drifted), key=_cost):
        plan = simulate([c])
        if plan.errors:
            decision.unconsolidatable.append((c, _scheduling_errors(plan)))
            continue
        if take(c, DRIFTED):
            decision.command = Command(DRIFTED, [c], plan.claims)
            return decision

    # Emptiness: every empty, quiet candidate the budgets allow, at once.
    empties = [
        c
        for c in candidates
        if not c.pods and not c.drifted and c.pool.consolidate_after is not None and c.consolidatable(now)
    ]
    chosen = [c for c in sorted(empties, key=_cost) if take(c, EMPTY)]
    if chosen:
        decision.command = Command(EMPTY, chosen)
        return decision

    # Single-node consolidation of underutilised nodes.
    for c in sorted(candidates, key=_cost):
        if not c.pods or c.drifted or not c.consolidatable(now):
            continue
        if c.pool.consolidation_policy == "WhenEmpty":
            continue
        plan = simulate([c])
        if plan.errors:
            decision.unconsolidatable.append((c, _scheduling_errors(plan)))
            continue
        if len(plan.claims) > 1:
            decision.unconsolidatable.append((c, f"Can't remove without creating {len(plan.claims)} candidates"))
            continue
        if plan.claims:
            replacement = plan.claims[0]
            offering = replacement.cheapest()
            if offering is None or offering.price >= c.price:
                decision.unconsolidatable.append((c, "Can't replace with a cheaper node"))
                continue
            if c.capacity_type == "spot" and offering.capacity_type == "spot":
                decision.unconsolidatable.append(
                    (c, "SpotToSpotConsolidation is disabled, can't replace a spot node with a spot node")
                )
                continue
        if take(c, UNDERUTILIZED):
            decision.command = Command(UNDERUTILIZED, [c], plan.claims)
            return decision
    return decision


def _cost(c: Candidate) -> tuple[int, float, str]:
    """Disruption cost order: fewest pods first, then most expensive first."""
    return (len(c.pods), -c.price, c.name)


def _scheduling_errors(plan: Plan) -> str:
    first = next(iter(plan.errors.values()), [])
    return "; ".join(first) or "pods could not be rescheduled"
