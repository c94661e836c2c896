"""Karpenter's provisioning simulation, as pure functions: which pending pods go where, and why not.

:func:`schedule` takes a batch of pending pods and does what Karpenter's scheduler does (v1.0):
pods sorted by CPU then memory, largest first; each goes to an existing or in-flight node where it
fits (kube-scheduler's filters from :mod:`..scheduler`), else onto a NodeClaim planned in this batch,
else onto a new NodeClaim of the first NodePool (highest weight first) that can take it: its taints
tolerated, its requirements compatible with the pod's node selector and required node affinity, an
instance type left with enough allocatable for the pod plus the pool's DaemonSet overhead and an
available offering, within the pool's ``spec.limits``. A planned NodeClaim keeps every instance type
that still fits all its pods; :func:`choose_offering` later launches the cheapest (spot before
on-demand when both are allowed).

A pod no pool can take gets Karpenter's reasons, one per NodePool, in Karpenter v1.0's words::

    incompatible with nodepool "gpu", daemonset overhead={"cpu":"150m","pods":"2"}, no instance type
    satisfied resources {"cpu":"1150m","nvidia.com/gpu":"8","pods":"3"} and requirements
    karpenter.k8s.aws/instance-family In [g6], ... (no instance type has enough resources)
    all available instance types exceed limits for nodepool: "gpu"
    incompatible with nodepool "gpu", daemonset overhead={}, did not tolerate nvidia.com/gpu=true:NoSchedule

:func:`explain` gives those reasons for one pod.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scheduler import (
    Snapshot,
    filter_node,
    label_selector_matches,
    pod_requests,
    resource_list,
    untolerated_taint,
)
from .catalog import InstanceInfo, Offering
from .nodepool import Pool, sort_pools
from .requirements import (
    ARCH_LABEL,
    CAPACITY_TYPE_LABEL,
    COMPUTE_TYPE_LABEL,
    HOSTNAME_LABEL,
    INSTANCE_TYPE_LABEL,
    OS_LABEL,
    REGION_LABEL,
    ZONE_LABEL,
    Requirement,
    Requirements,
    instance_label_keys,
    pod_requirement_terms,
    well_known_labels,
)

PROVIDER_PREFIX = {"karpenter": "karpenter.k8s.aws", "auto": "eks.amazonaws.com"}
#: Most instance types a NodeClaim lists in its ``node.kubernetes.io/instance-type`` requirement.
MAX_INSTANCE_TYPES = 60
#: Launch preference among capacity types (lower first).
CAPACITY_PRIORITY = {"reserved": 0, "spot": 1, "on-demand": 2}

Pod = Mapping[str, Any]


# --------------------------------------------------------------------------- quantities


def format_quantity(name: str, units: int) -> str:
    """A quantity in scheduler units as Kubernetes prints it (``150m``, ``2``, ``4Gi``, ``1500M``)."""
    if name == "cpu":
        return str(units // 1000) if units % 1000 == 0 else f"{units}m"
    if name in ("memory", "ephemeral-storage") or name.startswith("hugepages-"):
        if units == 0:
            return "0"
        for suffix, size in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if units % size == 0:
                return f"{units // size}{suffix}"
        for suffix, size in (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
            if units % size == 0:
                return f"{units // size}{suffix}"
    return str(units)


def format_resources(units: Mapping[str, int]) -> str:
    """A resource list as Karpenter prints it: compact JSON with sorted keys (``{"cpu":"1","pods":"2"}``)."""
    return json.dumps({k: format_quantity(k, v) for k, v in sorted(units.items()) if v}, separators=(",", ":"))


def _add(into: dict[str, int], other: Mapping[str, int]) -> dict[str, int]:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v
    return into


def requests_for_pods(pods: Iterable[Pod]) -> dict[str, int]:
    """What pods ask for, plus one ``pods`` per pod (Karpenter's ``RequestsForPods``)."""
    total: dict[str, int] = {}
    for p in pods:
        _add(total, pod_requests(p))
        total["pods"] = total.get("pods", 0) + 1
    return total


def fits(requests: Mapping[str, int], allocatable: Mapping[str, int]) -> bool:
    """Whether every positive request is within allocatable."""
    return all(v <= allocatable.get(k, 0) for k, v in requests.items() if v > 0)


# --------------------------------------------------------------------------- instance options


@dataclass(frozen=True)
class InstanceOption:
    """An instance type with the requirements its labels and offerings imply.

    Attributes:
        info: the instance type.
        requirements: ``key In [value]`` per label it would carry; GPU keys ``DoesNotExist`` on CPU types;
            zone and capacity type: every value an offering has.
        offerings: its offerings.
    """

    info: InstanceInfo
    requirements: Requirements
    offerings: tuple[Offering, ...]

    @property
    def name(self) -> str:
        return self.info.name

    def has_offering(self, reqs: Requirements, unavailable: frozenset[tuple[str, str, str]] = frozenset()) -> bool:
        """Whether an available offering has a zone and capacity type ``reqs`` allow."""
        return any(_offering_ok(o, reqs, unavailable) for o in self.offerings)

    def cheapest_price(self, reqs: Requirements, unavailable: frozenset[tuple[str, str, str]] = frozenset()) -> float:
        prices = [o.price for o in self.offerings if _offering_ok(o, reqs, unavailable)]
        return min(prices) if prices else float("inf")


def _offering_ok(o: Offering, reqs: Requirements, unavailable: frozenset[tuple[str, str, str]]) -> bool:
    if (o.instance.name, o.zone, o.capacity_type) in unavailable:
        return False
    zone = reqs.get(ZONE_LABEL)
    ct = reqs.get(CAPACITY_TYPE_LABEL)
    return (zone is None or zone.has(o.zone)) and (ct is None or ct.has(o.capacity_type))


def instance_options(offerings: Iterable[Offering], provider: str = "karpenter") -> list[InstanceOption]:
    """One :class:`InstanceOption` per instance type that has offerings, cheapest on-demand first."""
    prefix = PROVIDER_PREFIX[provider]
    by_type: dict[str, list[Offering]] = {}
    for o in offerings:
        by_type.setdefault(o.instance.name, []).append(o)
    out = []
    for name, offs in by_type.items():
        info = offs[0].instance
        reqs = Requirements(
            [
                Requirement.of(INSTANCE_TYPE_LABEL, "In", [name]),
                Requirement.of(ARCH_LABEL, "In", [info.arch]),
                Requirement.of(OS_LABEL, "In", ["linux"]),
                Requirement.of(ZONE_LABEL, "In", sorted({o.zone for o in offs})),
                Requirement.of(REGION_LABEL, "In", sorted({o.zone[:-1] for o in offs})),
                Requirement.of(CAPACITY_TYPE_LABEL, "In", sorted({o.capacity_type for o in offs})),
            ]
        )
        labels = info.labels(prefix)
        for key in instance_label_keys(prefix):
            reqs.add(Requirement.of(key, "In", [labels[key]]) if key in labels else Requirement.of(key, "DoesNotExist"))
        if provider == "auto":
            reqs.add(Requirement.of(COMPUTE_TYPE_LABEL, "In", ["auto"]))
        out.append(InstanceOption(info, reqs, tuple(offs)))
    out.sort(key=lambda opt: (opt.info.price if opt.info.price is not None else float("inf"), opt.name))
    return out


# --------------------------------------------------------------------------- filtering instance types


@dataclass
class FilterResult:
    """Which instance types survived, and flags for the failure reason (Karpenter's ``filterResults``)."""

    remaining: list[InstanceOption] = field(default_factory=list)
    requirements_met: bool = False
    fits: bool = False
    has_offering: bool = False
    requirements_and_fits: bool = False
    requirements_and_offering: bool = False
    fits_and_offering: bool = False
    cpu_request: int = 0

    def failure_reason(self) -> str:
        """Why every instance type was filtered out, in Karpenter's words."""
        if self.remaining:
            return ""
        r, f, o = self.requirements_met, self.fits, self.has_offering
        if not r and not f and not o:
            return "no instance type met the scheduling requirements or had enough resources or had a required offering"
        if not r and not f:
            return "no instance type met the scheduling requirements or had enough resources"
        if not r and not o:
            return "no instance type met the scheduling requirements or had a required offering"
        if not f and not o:
            return "no instance type had enough resources or had a required offering"
        if not r:
            return "no instance type met all requirements"
        if not f:
            msg = "no instance type has enough resources"
            if self.cpu_request >= 10**9:  # 1M cores in millicores: the "m vs M" typo
                msg += " (CPU request >= 1 Million, m vs M typo?)"
            return msg
        if not o:
            return "no instance type has the required offering"
        if self.requirements_and_fits:
            return (
                "no instance type which met the scheduling requirements and had enough resources, "
                "had a required offering"
            )
        if self.fits_and_offering:
            return (
                "no instance type which had enough resources and the required offering met the scheduling requirements"
            )
        if self.requirements_and_offering:
            return (
                "no instance type which met the scheduling requirements and the required offering "
                "had the required resources"
            )
        return "no instance type met the requirements/resources/offering tuple"


def filter_instance_types(
    options: Iterable[InstanceOption],
    reqs: Requirements,
    requests: Mapping[str, int],
    unavailable: frozenset[tuple[str, str, str]] = frozenset(),
) -> FilterResult:
    """Keep the instance types that meet ``reqs``, fit ``requests`` and have an available offering."""
    res = FilterResult(cpu_request=requests.get("cpu", 0))
    for opt in options:
        compat = opt.requirements.intersects(reqs) is None
        ok_fit = fits(requests, opt.info.allocatable_units)
        offer = opt.has_offering(reqs, unavailable)
        res.requirements_met |= compat
        res.fits |= ok_fit
        res.has_offering |= offer
        res.requirements_and_fits |= compat and ok_fit and not offer
        res.requirements_and_offering |= compat and offer and not ok_fit
        res.fits_and_offering |= ok_fit and offer and not compat
        if compat and ok_fit and offer:
            res.remaining.append(opt)
    return res


# --------------------------------------------------------------------------- taints, daemonsets, affinity


def taint_text(taint: Mapping[str, Any]) -> str:
    """``key=value:Effect`` as Karpenter prints a taint."""
    return f"{taint.get('key', '')}={taint.get('value') or ''}:{taint.get('effect', '')}"


def untolerated(pool_taints: Iterable[Mapping[str, Any]], pod: Pod) -> str | None:
    """Karpenter's taint error for the first pool taint ``pod`` does not tolerate, or ``None``."""
    taint = untolerated_taint(list(pool_taints), (pod.get("spec") or {}).get("tolerations"))
    return None if taint is None else f"did not tolerate {taint_text(taint)}"


def daemonset_pod(ds: Mapping[str, Any]) -> dict[str, Any]:
    """The pod a DaemonSet would run on a node (its template)."""
    template = (ds.get("spec") or {}).get("template") or {}
    meta = dict(template.get("metadata") or {})
    meta.setdefault("namespace", (ds.get("metadata") or {}).get("namespace", "default"))
    return {"metadata": meta, "spec": dict(template.get("spec") or {})}


def daemon_overhead(pool: Pool, daemonsets: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Requests of the DaemonSet pods that would run on a node of ``pool`` (taints tolerated, requirements met)."""
    allow = well_known_labels(PROVIDER_PREFIX[pool.provider])
    pods = []
    for ds in daemonsets:
        pod = daemonset_pod(ds)
        if untolerated([*pool.taints, *pool.startup_taints], pod) is not None:
            continue
        if pool.requirements.compatible(pod_requirement_terms(pod)[0], allow) is not None:
            continue
        pods.append(pod)
    return requests_for_pods(pods)


def _anti_affinity_conflict(pod: Pod, others: Iterable[Pod]) -> bool:
    """Whether required pod anti-affinity on ``kubernetes.io/hostname`` forbids ``pod`` beside ``others``."""

    def terms(p: Pod) -> list[Mapping[str, Any]]:
        aff = ((p.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
        return [
            t
            for t in aff.get("requiredDuringSchedulingIgnoredDuringExecution") or []
            if t.get("topologyKey") == HOSTNAME_LABEL
        ]

    def hits(owner: Pod, other: Pod) -> bool:
        owner_ns = (owner.get("metadata") or {}).get("namespace")
        other_meta = other.get("metadata") or {}
        for t in terms(owner):
            namespaces = t.get("namespaces") or [owner_ns]
            if other_meta.get("namespace") in namespaces and label_selector_matches(
                t.get("labelSelector"), other_meta.get("labels") or {}
            ):
                return True
        return False

    return any(hits(pod, o) or hits(o, pod) for o in others)


# --------------------------------------------------------------------------- planned NodeClaims


@dataclass
class ClaimPlan:
    """A NodeClaim planned in this batch: its pool, requirements, remaining instance types and pods."""

    pool: Pool
    requirements: Requirements
    overhead: dict[str, int]
    options: list[InstanceOption]
    pods: list[dict[str, Any]] = field(default_factory=list)
    unavailable: frozenset[tuple[str, str, str]] = frozenset()

    @property
    def requests(self) -> dict[str, int]:
        """The pods' requests (without the DaemonSet overhead)."""
        return requests_for_pods(self.pods)

    def try_add(self, pod: Pod) -> str | None:
        """Add ``pod`` when it fits; returns Karpenter's reason when it does not (nothing changes then)."""
        err = untolerated(self.pool.taints, pod)
        if err is not None:
            return err
        if _anti_affinity_conflict(pod, self.pods):
            return "would violate pod anti-affinity on kubernetes.io/hostname"
        allow = well_known_labels(PROVIDER_PREFIX[self.pool.provider])
        last = ""
        for terms in pod_requirement_terms(pod):
            bad = self.requirements.compatible(terms, allow)
            if bad is not None:
                last = f"incompatible requirements, {bad}"
                continue
            reqs = self.requirements.merged(terms)
            total = _add(_add(dict(self.overhead), self.requests), requests_for_pods([pod]))
            result = filter_instance_types(self.options, reqs, total, self.unavailable)
            if not result.remaining:
                shown = _add(dict(self.overhead), requests_for_pods([pod]))
                last = (
                    f"no instance type satisfied resources {format_resources(shown)} and requirements {reqs} "
                    f"({result.failure_reason()})"
                )
                continue
            self.requirements = reqs
            self.options = result.remaining
            self.pods.append(dict(pod))
            return None
        return last

    def instance_type_names(self) -> list[str]:
        """The instance types it may launch, cheapest first, at most :data:`MAX_INSTANCE_TYPES`."""
        ranked = sorted(self.options, key=lambda o: (o.cheapest_price(self.requirements, self.unavailable), o.name))
        return [o.name for o in ranked[:MAX_INSTANCE_TYPES]]

    def cheapest(self, zone_counts: Mapping[str, int] | None = None) -> Offering | None:
        """The offering it would launch (see :func:`choose_offering`)."""
        return choose_offering(self.requirements, self.options, self.unavailable, zone_counts)


def choose_offering(
    reqs: Requirements,
    options: Iterable[InstanceOption],
    unavailable: frozenset[tuple[str, str, str]] = frozenset(),
    zone_counts: Mapping[str, int] | None = None,
) -> Offering | None:
    """The offering Karpenter launches for a NodeClaim: reserved, then spot, then on-demand; cheapest first.

    Ties (on-demand prices are equal across zones) go to the zone with the fewest nodes of the pool
    (``zone_counts``), then to the zone name.
    """
    counts = zone_counts or {}
    best: tuple[Any, ...] | None = None
    chosen = None
    for opt in options:
        if opt.requirements.intersects(reqs) is not None:
            continue
        for o in opt.offerings:
            if not _offering_ok(o, reqs, unavailable):
                continue
            rank = (CAPACITY_PRIORITY.get(o.capacity_type, 9), o.price, counts.get(o.zone, 0), o.zone, o.name)
            if best is None or rank < best:
                best, chosen = rank, o
    return chosen


# --------------------------------------------------------------------------- usage and limits


def claim_capacity(nodeclaim: Mapping[str, Any], catalog: Mapping[str, InstanceInfo]) -> dict[str, int]:
    """What a NodeClaim counts against its pool's limits: its capacity, or before launch the largest it may get."""
    status = nodeclaim.get("status") or {}
    if status.get("capacity"):
        out = resource_list(status["capacity"])
    else:
        reqs = Requirements.from_expressions((nodeclaim.get("spec") or {}).get("requirements"))
        names = reqs.get(INSTANCE_TYPE_LABEL)
        out = {}
        for name in sorted(names.values) if names is not None and not names.complement else []:
            info = catalog.get(name)
            if info is not None:
                for k, v in info.capacity_units.items():
                    out[k] = max(out.get(k, 0), v)
    out["nodes"] = 1
    return out


def pool_usage(
    nodeclaims: Iterable[Mapping[str, Any]], catalog: Mapping[str, InstanceInfo]
) -> dict[str, dict[str, int]]:
    """Resources per pool summed over its NodeClaims (what ``spec.limits`` is checked against)."""
    out: dict[str, dict[str, int]] = {}
    for nc in nodeclaims:
        pool = ((nc.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool")
        if pool:
            _add(out.setdefault(pool, {}), claim_capacity(nc, catalog))
    return out


def remaining_resources(pool: Pool, usage: Mapping[str, int]) -> dict[str, int] | None:
    """``limits - usage`` for each limited resource, or ``None`` when the pool has no limits."""
    if not pool.limits:
        return None
    return {k: v - usage.get(k, 0) for k, v in pool.limits.items()}


def within_limits(opt: InstanceOption, remaining: Mapping[str, int] | None) -> bool:
    """Whether launching ``opt`` keeps the pool within its limits."""
    if remaining is None:
        return True
    cap = {**opt.info.capacity_units, "nodes": 1}
    return all(cap.get(k, 0) <= left for k, left in remaining.items())


# --------------------------------------------------------------------------- the batch


@dataclass
class PoolContext:
    """A NodePool ready for scheduling: the pool, whether it can launch (and why not), its overhead and types."""

    pool: Pool
    options: list[InstanceOption]
    overhead: dict[str, int]
    not_ready: str | None = None


@dataclass
class Plan:
    """What one provisioning batch decided.

    Attributes:
        claims: NodeClaims to create.
        existing: pod key -> node (or in-flight NodeClaim) name it should schedule on.
        errors: pod key -> Karpenter's reasons, one per NodePool.
    """

    claims: list[ClaimPlan] = field(default_factory=list)
    existing: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def message(self, pod_key: str) -> str:
        """The ``FailedScheduling`` event text Karpenter records on the pod."""
        return "Failed to schedule pod, " + "; ".join(self.errors.get(pod_key, []))


def pod_key(pod: Pod) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _cpu_memory(pod: Pod) -> tuple[int, int]:
    req = pod_requests(pod)
    return req.get("cpu", 0), req.get("memory", 0)


def prepare_pools(
    pools: Iterable[Pool],
    options_by_provider: Mapping[str, list[InstanceOption]],
    *,
    daemonsets: Iterable[Mapping[str, Any]] = (),
    not_ready: Mapping[str, str] | None = None,
    unavailable: frozenset[tuple[str, str, str]] = frozenset(),
) -> list[PoolContext]:
    """Each pool with the instance types its requirements allow and its DaemonSet overhead, highest weight first."""
    ds = list(daemonsets)
    out = []
    for pool in sort_pools(list(pools)):
        options = [
            o
            for o in options_by_provider.get(pool.provider, [])
            if o.requirements.intersects(pool.requirements) is None and o.has_offering(pool.requirements, unavailable)
        ]
        out.append(PoolContext(pool, options, daemon_overhead(pool, ds), (not_ready or {}).get(pool.name)))
    return out


def schedule(
    pods: Iterable[Pod],
    pools: Sequence[PoolContext],
    *,
    snapshot: Snapshot | None = None,
    usage: Mapping[str, Mapping[str, int]] | None = None,
    all_options: Mapping[str, list[InstanceOption]] | None = None,
    unavailable: frozenset[tuple[str, str, str]] = frozenset(),
) -> Plan:
    """Place a batch of pending pods on existing nodes, planned NodeClaims or new NodeClaims.

    Args:
        pods: the pending pods.
        pools: from :func:`prepare_pools`.
        snapshot: existing and in-flight nodes with their pods (kube-scheduler's view); ``None`` for none.
        usage: resources each pool's NodeClaims hold (for ``spec.limits``).
        all_options: every instance type per provider, used to word the reason when a pool's own
            requirements rule out every type.
        unavailable: ``(type, zone, capacity type)`` offerings with no capacity right now.
    """
    plan = Plan()
    remaining = {ctx.pool.name: remaining_resources(ctx.pool, (usage or {}).get(ctx.pool.name, {})) for ctx in pools}
    if not pools:
        for p in pods:
            plan.errors[pod_key(p)] = ["no nodepools found"]
        return plan
    ordered = sorted(pods, key=lambda p: tuple(-x for x in _cpu_memory(p)))
    for pod in ordered:
        key = pod_key(pod)
        if snapshot is not None:
            node = _fit_existing(pod, snapshot)
            if node is not None:
                snapshot.assume(pod, node)
                plan.existing[key] = node
                continue
        placed = False
        for claim in sorted(plan.claims, key=lambda c: len(c.pods)):
            left = remaining[claim.pool.name]
            if left is None:
                if claim.try_add(pod) is None:
                    placed = True
                    break
                continue
            # The claim may grow into any type that fits the limit once its own reservation is given back.
            before, reserved = claim.options, _reservation(claim)
            allowed = {k: v + reserved.get(k, 0) for k, v in left.items()}
            claim.options = [o for o in before if within_limits(o, allowed)]
            if claim.options and claim.try_add(pod) is None:
                remaining[claim.pool.name] = {k: v - _reservation(claim).get(k, 0) for k, v in allowed.items()}
                placed = True
                break
            claim.options = before
        if placed:
            continue
        errors: list[str] = []
        for ctx in pools:
            pool = ctx.pool
            if ctx.not_ready:
                errors.append(f'skipped nodepool "{pool.name}", not ready: {ctx.not_ready}')
                continue
            left = remaining[pool.name]
            options = [o for o in ctx.options if within_limits(o, left)]
            if ctx.options and not options:
                errors.append(f'all available instance types exceed limits for nodepool: "{pool.name}"')
                continue
            if not ctx.options and all_options is not None:
                options = list(all_options.get(pool.provider, []))
            claim = ClaimPlan(pool, pool.requirements.copy(), dict(ctx.overhead), options, unavailable=unavailable)
            err = claim.try_add(pod)
            if err is None and not ctx.options:
                err = "no instance type satisfied the nodepool's requirements"
            if err is not None:
                errors.append(
                    f'incompatible with nodepool "{pool.name}", '
                    f"daemonset overhead={format_resources(ctx.overhead)}, {err}"
                )
                continue
            plan.claims.append(claim)
            if left is not None:
                reserved = _reservation(claim)
                remaining[pool.name] = {k: v - reserved.get(k, 0) for k, v in left.items()}
            placed = True
            break
        if not placed:
            plan.errors[key] = errors
    return plan


def _reservation(claim: ClaimPlan) -> dict[str, int]:
    """What a planned claim holds against its pool's limits: the capacity of the type it would launch.

    (Karpenter holds the largest type a claim may still become; holding the one it launches lets a batch of
    small pods under a tight limit each get a node, instead of waiting for the next batch.)
    """
    offering = claim.cheapest()
    if offering is None:
        biggest: dict[str, int] = {}
        for o in claim.options:
            for k, v in o.info.capacity_units.items():
                biggest[k] = max(biggest.get(k, 0), v)
        return {**biggest, "nodes": 1}
    return {**offering.instance.capacity_units, "nodes": 1}


def _fit_existing(pod: Pod, snapshot: Snapshot) -> str | None:
    for name, info in snapshot.nodes.items():
        if filter_node(pod, info, snapshot).fits:
            return name
    return None


# --------------------------------------------------------------------------- snapshot of existing and in-flight nodes


def virtual_node(
    nodeclaim: Mapping[str, Any], overhead: Mapping[str, int], catalog: Mapping[str, InstanceInfo]
) -> dict[str, Any]:
    """The Node a launching NodeClaim will become, with the pool's DaemonSet overhead already taken out."""
    meta = nodeclaim.get("metadata") or {}
    spec = nodeclaim.get("spec") or {}
    status = nodeclaim.get("status") or {}
    reqs = Requirements.from_expressions(spec.get("requirements"))
    labels = {**reqs.single_values(), **(meta.get("labels") or {}), HOSTNAME_LABEL: str(meta.get("name", ""))}
    alloc = resource_list(status.get("allocatable"))
    if not alloc:
        names = reqs.get(INSTANCE_TYPE_LABEL)
        infos = [catalog[n] for n in sorted(names.values) if n in catalog] if names is not None else []
        if infos:
            cheapest = min(infos, key=lambda i: (i.price if i.price is not None else float("inf"), i.name))
            alloc = dict(cheapest.allocatable_units)
    for k, v in overhead.items():
        alloc[k] = alloc.get(k, 0) - v
    return {
        "metadata": {"name": str(meta.get("name", "")), "labels": labels},
        "spec": {"taints": list(spec.get("taints") or [])},
        "status": {"allocatable": {k: str(v) if k != "cpu" else f"{v}m" for k, v in alloc.items()}},
    }


def build_snapshot(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    virtual: Iterable[Mapping[str, Any]] = (),
    *,
    skip: Iterable[str] = (),
    expected_allocatable: Mapping[str, Mapping[str, Any]] | None = None,
) -> Snapshot:
    """Existing nodes with their pods, plus in-flight ones (:func:`virtual_node`), as kube-scheduler sees them.

    Args:
        skip: node names to leave out (being deleted, or the candidates of a disruption).
        expected_allocatable: node name -> the allocatable its NodeClaim expects, used while the node has
            not registered every resource yet (a GPU node before its device plugin runs).
    """
    gone = set(skip)
    kept = []
    for node in nodes:
        n = dict(node)
        name = n["metadata"]["name"]
        if name in gone or (n.get("metadata") or {}).get("deletionTimestamp"):
            continue
        expected = (expected_allocatable or {}).get(name)
        if expected:
            status = dict(n.get("status") or {})
            alloc = dict(status.get("allocatable") or {})
            have = resource_list(alloc)
            for k, v in expected.items():
                if have.get(k, 0) <= 0:
                    alloc[k] = v
            n = {**n, "status": {**status, "allocatable": alloc}}
        kept.append(n)
    kept.extend(v for v in virtual if v["metadata"]["name"] not in gone)
    return Snapshot.build(kept, pods)


# --------------------------------------------------------------------------- explain


def explain(
    pod: Pod,
    nodepools: Iterable[Mapping[str, Any]],
    offerings: Iterable[Offering],
    nodeclaims: Iterable[Mapping[str, Any]] = (),
    *,
    nodeclasses: Iterable[Mapping[str, Any]] | None = None,
    daemonsets: Iterable[Mapping[str, Any]] = (),
    unavailable: frozenset[tuple[str, str, str]] = frozenset(),
) -> list[str]:
    """Why Karpenter would launch no node for ``pod``: one reason per NodePool, or ``[]`` when a pool can.

    Args:
        pod: the pending pod.
        nodepools: NodePool objects.
        offerings: what may be launched (:func:`.catalog.offerings`).
        nodeclaims: existing NodeClaims (their capacity counts against each pool's limits).
        nodeclasses: EC2NodeClass / NodeClass objects; a pool whose node class is missing is not ready.
            ``None`` skips that check.
        daemonsets: DaemonSets whose pods add overhead to every node they would run on.
        unavailable: offerings out of capacity.
    """
    offs = list(offerings)
    catalog = {o.instance.name: o.instance for o in offs}
    by_provider = {p: instance_options(offs, p) for p in PROVIDER_PREFIX}
    parsed = [Pool.from_nodepool(np) for np in nodepools]
    not_ready = {} if nodeclasses is None else node_class_problems(parsed, nodeclasses)
    ctxs = prepare_pools(parsed, by_provider, daemonsets=daemonsets, not_ready=not_ready, unavailable=unavailable)
    plan = schedule(
        [pod], ctxs, usage=pool_usage(nodeclaims, catalog), all_options=by_provider, unavailable=unavailable
    )
    return plan.errors.get(pod_key(pod), [])


def node_class_problems(pools: Iterable[Pool], nodeclasses: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Pool name -> why its node class is not usable (missing or terminating), for pools with a problem."""
    present: dict[tuple[str, str], Mapping[str, Any]] = {}
    for nc in nodeclasses:
        group = str(nc.get("apiVersion", "")).split("/", 1)[0]
        present[(group, str((nc.get("metadata") or {}).get("name", "")))] = nc
    out = {}
    for pool in pools:
        ref = pool.node_class_ref
        group, kind, name = str(ref.get("group", "")), str(ref.get("kind", "")), str(ref.get("name", ""))
        found = present.get((group, name))
        if found is None:
            out[pool.name] = f'NodeClassNotFound, {kind or "NodeClass"} "{name}" not found on cluster'
        elif (found.get("metadata") or {}).get("deletionTimestamp"):
            out[pool.name] = f'NodeClassTerminating, {kind or "NodeClass"} "{name}" is terminating'
    return out
