"""The scheduler: place pending pods on nodes the way kube-scheduler does, and say why when it cannot.

The first half is pure functions over plain JSON dicts (no store, no clock), so the wait
explanations of the kit and the Karpenter simulation reuse them:

- :func:`pod_requests` sums what a pod asks for (containers, init containers, sidecars, overhead);
- :func:`evaluate` runs the filter plugins of the default profile, in kube-scheduler's order
  (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
  PodTopologySpread, InterPodAffinity), and returns one :class:`NodeVerdict` per node;
- :func:`explain` turns the verdicts plus the preemption dry run into an :class:`Explanation`
  whose ``message`` reads exactly like the ``FailedScheduling`` event of a real cluster, e.g.
  ``0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: true}, 2 Insufficient
  nvidia.com/gpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.``;
- :func:`select_node` scores the feasible nodes (least allocated, balanced allocation, preferred
  node affinity, PreferNoSchedule taints, soft topology spread, preferred pod (anti-)affinity,
  image locality) and picks the best, ties broken by a seedable random generator.

The second half is :class:`Scheduler`, the loop that binds pending pods through the store.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from labkit.errors import Conflict, NotFound

from .controllers.common import rfc3339

log = logging.getLogger("labkit.embedded.scheduler")

SCHEDULER_NAME = "default-scheduler"

# --------------------------------------------------------------------------- quantities

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIX: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


def parse_quantity(value: str | float) -> Fraction:
    """A Kubernetes resource quantity (``"100m"``, ``"1.5Gi"``, ``"2"``, ``"1e3"``) as an exact fraction.

    Raises:
        ValueError: the text is not a quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"quantity {value!r} is not a number")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(value).limit_denominator(10**9)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {value!r}"
        )
    number, exponent, suffix = m.groups()
    q = Fraction(number)
    if exponent is not None:
        q *= Fraction(10) ** int(exponent)
    return q * _SUFFIX[suffix or ""]


def resource_units(name: str, value: str | float) -> int:
    """A quantity in the scheduler's integer units: millicores for ``cpu``, whole units (bytes...) otherwise."""
    if isinstance(value, str):
        return _units(name == "cpu", value)
    q = parse_quantity(value)
    return math.ceil(q * 1000) if name == "cpu" else math.ceil(q)


@functools.lru_cache(maxsize=8192)
def _units(milli: bool, text: str) -> int:
    q = parse_quantity(text)
    return math.ceil(q * 1000) if milli else math.ceil(q)


def resource_list(values: Mapping[str, Any] | None) -> dict[str, int]:
    """A ``ResourceList`` (name -> quantity) in scheduler units; unparsable entries are skipped."""
    out: dict[str, int] = {}
    for name, value in (values or {}).items():
        try:
            out[name] = resource_units(name, value)
        except ValueError:
            log.debug("ignoring unparsable quantity %s=%r", name, value)
    return out


def format_bytes_ki(n: int) -> str:
    """Bytes as the kubelet writes memory capacity: ``"16203340Ki"``."""
    return f"{n // 1024}Ki"


# --------------------------------------------------------------------------- requests


def container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    """What one container requests; a limit without a request counts as the request (API defaulting)."""
    resources = container.get("resources") or {}
    out = resource_list(resources.get("limits"))
    out.update(resource_list(resources.get("requests")))
    return out


def _add(into: dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """What a pod needs on a node, as kube-scheduler computes it.

    Regular containers add up; each init container runs alone (plus the sidecars started before
    it), so the pod needs the larger of the two; restartable init containers (sidecars) add to the
    total; ``spec.overhead`` is added last.
    """
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        _add(total, container_requests(c))
    init_peak: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        req = container_requests(c)
        if c.get("restartPolicy") == "Always":
            _add(sidecars, req)
            for k, v in sidecars.items():
                init_peak[k] = max(init_peak.get(k, 0), v)
        else:
            for k in set(req) | set(sidecars):
                init_peak[k] = max(init_peak.get(k, 0), req.get(k, 0) + sidecars.get(k, 0))
    _add(total, sidecars)
    for k, v in init_peak.items():
        total[k] = max(total.get(k, 0), v)
    _add(total, resource_list(spec.get("overhead")))
    return total


def pod_priority(pod: Mapping[str, Any]) -> int:
    """``spec.priority`` (set by the Priority admission plugin); 0 when absent."""
    value = (pod.get("spec") or {}).get("priority")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def is_terminal(pod: Mapping[str, Any]) -> bool:
    """Whether the pod finished (``Succeeded`` or ``Failed``): it holds no resources any more."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(pod: Mapping[str, Any]) -> bool:
    """Whether deletion of the pod has started."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def needs_scheduling(pod: Mapping[str, Any], scheduler_name: str = SCHEDULER_NAME) -> bool:
    """Whether this scheduler should place the pod (unbound, alive, its ``schedulerName``)."""
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and (spec.get("schedulerName") or SCHEDULER_NAME) == scheduler_name
        and not is_terminating(pod)
        and not is_terminal(pod)
    )


# --------------------------------------------------------------------------- selectors, taints, affinity


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a ``LabelSelector`` (matchLabels + matchExpressions) matches; ``None`` matches nothing."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), list(expr.get("values") or [])
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_selector_term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """One ``NodeSelectorTerm``: all its label and field expressions hold (an empty term matches nothing)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not all(_expression_matches(e, labels) for e in exprs):
        return False
    node_fields = {"metadata.name": meta.get("name", "")}
    return all(_expression_matches(f, node_fields) for f in fields)


def node_matches_pod_affinity_selector(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """``spec.nodeSelector`` and required node affinity (terms ORed) both accept the node."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def toleration_tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether one toleration tolerates one taint (empty key with ``Exists`` tolerates everything)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    if not key:  # Equal with an empty key is invalid: it tolerates nothing
        return False
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(
    taints: Iterable[Mapping[str, Any]],
    tolerations: Iterable[Mapping[str, Any]] | None,
    effects: tuple[str, ...] = ("NoSchedule", "NoExecute"),
) -> Mapping[str, Any] | None:
    """The first taint with one of ``effects`` that no toleration tolerates, or ``None``."""
    tols = list(tolerations or [])
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(toleration_tolerates(t, taint) for t in tols):
            return taint
    return None


def node_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``spec.taints`` of a node."""
    return list((node.get("spec") or {}).get("taints") or [])


def taint_text(taint: Mapping[str, Any]) -> str:
    """A taint as kube-scheduler prints it: ``{key: value}``."""
    return "{" + f"{taint.get('key', '')}: {taint.get('value') or ''}" + "}"


# --------------------------------------------------------------------------- snapshot


@dataclass
class NodeInfo:
    """A node with the pods bound to it and what they request."""

    node: dict[str, Any]
    pods: list[dict[str, Any]] = field(default_factory=list)
    requested: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.node.get("metadata") or {}).get("labels") or {})

    @property
    def allocatable(self) -> dict[str, int]:
        status = self.node.get("status") or {}
        return resource_list(status.get("allocatable") or status.get("capacity"))

    score_used: dict[str, int] = field(default_factory=dict)

    def add(self, pod: dict[str, Any]) -> None:
        self.pods.append(pod)
        _add(self.requested, pod_requests(pod))
        _add(self.score_used, _score_request(pod))

    def without(self, removed: Iterable[Mapping[str, Any]]) -> NodeInfo:
        """A copy with some pods taken away (preemption dry runs)."""
        gone = {_uid(p) for p in removed}
        info = NodeInfo(self.node)
        for p in self.pods:
            if _uid(p) not in gone:
                info.add(p)
        return info


def _uid(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


@dataclass
class Snapshot:
    """The cluster as one scheduling cycle sees it.

    Attributes:
        nodes: node name -> :class:`NodeInfo`, in the order the nodes were given.
        namespace_labels: namespace name -> labels (for pod affinity ``namespaceSelector``).
    """

    nodes: dict[str, NodeInfo]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        nodes: Iterable[Mapping[str, Any]],
        pods: Iterable[Mapping[str, Any]],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Snapshot:
        """Bind every non-terminal pod with a ``spec.nodeName`` to its node; unknown nodes are ignored."""
        infos = {str(n["metadata"]["name"]): NodeInfo(dict(n)) for n in nodes}
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in infos and not is_terminal(pod):
                infos[node_name].add(dict(pod))
        return cls(infos, {k: dict(v) for k, v in (namespace_labels or {}).items()})

    def assume(self, pod: Mapping[str, Any], node_name: str) -> None:
        """Count ``pod`` on ``node_name`` for the rest of this cycle."""
        bound = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
        self.nodes[node_name].add(bound)

    def pods(self) -> Iterable[tuple[NodeInfo, dict[str, Any]]]:
        for info in self.nodes.values():
            for p in info.pods:
                yield info, p


# --------------------------------------------------------------------------- filters

#: Reasons exactly as kube-scheduler 1.33 writes them.
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_SPREAD = "node(s) didn't match pod topology spread constraints"
REASON_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
REASON_POD_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
REASON_NOT_HELPFUL = "Preemption is not helpful for scheduling"
REASON_NO_VICTIMS = "No preemption victims found for incoming pod"
NO_NODES_MESSAGE = "no nodes available to schedule pods"


@dataclass(frozen=True)
class NodeVerdict:
    """What the filters said about one node.

    Attributes:
        node: node name.
        plugin: the first filter plugin that rejected it ("" when the pod fits).
        reasons: the plugin's reasons, as the event prints them.
        unresolvable: True when evicting pods would not help (``UnschedulableAndUnresolvable``).
    """

    node: str
    plugin: str = ""
    reasons: tuple[str, ...] = ()
    unresolvable: bool = False

    @property
    def fits(self) -> bool:
        return not self.reasons


def _filter_unschedulable(pod: Mapping[str, Any], info: NodeInfo) -> NodeVerdict | None:
    if not (info.node.get("spec") or {}).get("unschedulable"):
        return None
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    if any(toleration_tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or []):
        return None
    return NodeVerdict(info.name, "NodeUnschedulable", (REASON_UNSCHEDULABLE,), True)


def _filter_taints(pod: Mapping[str, Any], info: NodeInfo) -> NodeVerdict | None:
    taint = untolerated_taint(node_taints(info.node), (pod.get("spec") or {}).get("tolerations"))
    if taint is None:
        return None
    return NodeVerdict(info.name, "TaintToleration", (f"node(s) had untolerated taint {taint_text(taint)}",), True)


def _filter_node_affinity(pod: Mapping[str, Any], info: NodeInfo) -> NodeVerdict | None:
    if node_matches_pod_affinity_selector(pod, info.node):
        return None
    return NodeVerdict(info.name, "NodeAffinity", (REASON_NODE_AFFINITY,), True)


def _host_ports(pod: Mapping[str, Any]) -> set[tuple[str, str, int]]:
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return out


def _ports_conflict(a: set[tuple[str, str, int]], b: set[tuple[str, str, int]]) -> bool:
    for ip1, proto1, port1 in a:
        for ip2, proto2, port2 in b:
            if port1 == port2 and proto1 == proto2 and (ip1 == ip2 or "0.0.0.0" in (ip1, ip2)):
                return True
    return False


def _filter_ports(pod: Mapping[str, Any], info: NodeInfo) -> NodeVerdict | None:
    wanted = _host_ports(pod)
    if not wanted:
        return None
    for other in info.pods:
        if _ports_conflict(wanted, _host_ports(other)):
            return NodeVerdict(info.name, "NodePorts", (REASON_NODE_PORTS,), False)
    return None


def insufficient_resources(request: Mapping[str, int], info: NodeInfo) -> list[tuple[str, bool]]:
    """``(reason, unresolvable)`` for every resource the node lacks, in kube-scheduler's order.

    A request larger than the node's whole allocatable is unresolvable: no eviction can help.
    """
    out: list[tuple[str, bool]] = []
    alloc = info.allocatable
    allowed_pods = alloc.get("pods", 110)
    if len(info.pods) + 1 > allowed_pods:
        out.append((REASON_TOO_MANY_PODS, False))
    basic = ("cpu", "memory", "ephemeral-storage")
    names = [*basic, *sorted(k for k in request if k not in (*basic, "pods"))]
    for name in names:
        want = request.get(name, 0)
        if want <= 0:
            continue
        have = alloc.get(name, 0)
        if want > have - info.requested.get(name, 0):
            out.append((f"Insufficient {name}", want > have))
    return out


def _filter_resources(pod: Mapping[str, Any], info: NodeInfo) -> NodeVerdict | None:
    missing = insufficient_resources(pod_requests(pod), info)
    if not missing:
        return None
    return NodeVerdict(info.name, "NodeResourcesFit", tuple(r for r, _ in missing), any(u for _, u in missing))


def _spread_constraints(pod: Mapping[str, Any], mode: str) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    out = []
    for c in spec.get("topologySpreadConstraints") or []:
        if (c.get("whenUnsatisfiable") or "DoNotSchedule") != mode:
            continue
        selector = dict(c.get("labelSelector") or {}) if c.get("labelSelector") is not None else None
        keys = [k for k in c.get("matchLabelKeys") or [] if k in labels]
        if selector is not None and keys:
            selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **{k: labels[k] for k in keys}}
        out.append({**c, "labelSelector": selector})
    return out


def _spread_counts(
    pod: Mapping[str, Any], constraint: Mapping[str, Any], snapshot: Snapshot, all_keys: list[str]
) -> dict[str, int]:
    """Matching pods per domain over the nodes the constraint counts (node inclusion policies)."""
    ns = (pod.get("metadata") or {}).get("namespace")
    key = constraint["topologyKey"]
    honor_affinity = (constraint.get("nodeAffinityPolicy") or "Honor") == "Honor"
    honor_taints = (constraint.get("nodeTaintsPolicy") or "Ignore") == "Honor"
    tolerations = (pod.get("spec") or {}).get("tolerations")
    counts: dict[str, int] = {}
    for info in snapshot.nodes.values():
        labels = info.labels
        if any(k not in labels for k in all_keys):
            continue
        if honor_affinity and not node_matches_pod_affinity_selector(pod, info.node):
            continue
        if honor_taints and untolerated_taint(node_taints(info.node), tolerations) is not None:
            continue
        domain = labels[key]
        counts.setdefault(domain, 0)
        for other in info.pods:
            if is_terminating(other) or (other.get("metadata") or {}).get("namespace") != ns:
                continue
            if label_selector_matches(constraint["labelSelector"], (other.get("metadata") or {}).get("labels") or {}):
                counts[domain] += 1
    return counts


def _filter_spread(pod: Mapping[str, Any], info: NodeInfo, snapshot: Snapshot) -> NodeVerdict | None:
    constraints = _spread_constraints(pod, "DoNotSchedule")
    if not constraints:
        return None
    all_keys = [c["topologyKey"] for c in constraints]
    labels = info.labels
    if any(k not in labels for k in all_keys):
        return NodeVerdict(info.name, "PodTopologySpread", (REASON_SPREAD_LABEL,), True)
    own = (pod.get("metadata") or {}).get("labels") or {}
    for c in constraints:
        counts = _spread_counts(pod, c, snapshot, all_keys)
        min_match = min(counts.values()) if counts else 0
        if len(counts) < int(c.get("minDomains") or 1):
            min_match = 0
        self_match = 1 if label_selector_matches(c["labelSelector"], own) else 0
        skew = counts.get(labels[c["topologyKey"]], 0) + self_match - min_match
        if skew > int(c.get("maxSkew") or 1):
            return NodeVerdict(info.name, "PodTopologySpread", (REASON_SPREAD,), False)
    return None


def _term_namespaces_match(
    term: Mapping[str, Any], owner_ns: str, other_ns: str, namespace_labels: Mapping[str, Mapping[str, str]]
) -> bool:
    names = term.get("namespaces") or []
    ns_selector = term.get("namespaceSelector")
    if not names and ns_selector is None:
        return other_ns == owner_ns
    if other_ns in names:
        return True
    return ns_selector is not None and label_selector_matches(ns_selector, namespace_labels.get(other_ns, {}))


def _term_matches_pod(
    term: Mapping[str, Any], owner: Mapping[str, Any], other: Mapping[str, Any], snapshot: Snapshot
) -> bool:
    owner_ns = (owner.get("metadata") or {}).get("namespace", "")
    other_meta = other.get("metadata") or {}
    if not _term_namespaces_match(term, owner_ns, other_meta.get("namespace", ""), snapshot.namespace_labels):
        return False
    return label_selector_matches(term.get("labelSelector"), other_meta.get("labels") or {})


def _required_terms(pod: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    aff = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    return list(aff.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _filter_pod_affinity(pod: Mapping[str, Any], info: NodeInfo, snapshot: Snapshot) -> NodeVerdict | None:
    labels = info.labels
    # Existing pods' required anti-affinity against the incoming pod.
    for other_info, other in snapshot.pods():
        for term in _required_terms(other, "podAntiAffinity"):
            key = term.get("topologyKey", "")
            if key not in labels or other_info.labels.get(key) != labels[key]:
                continue
            if _term_matches_pod(term, other, pod, snapshot):
                return NodeVerdict(info.name, "InterPodAffinity", (REASON_EXISTING_ANTI_AFFINITY,), False)
    for term in _required_terms(pod, "podAffinity"):
        key = term.get("topologyKey", "")
        matching = [(oi, o) for oi, o in snapshot.pods() if _term_matches_pod(term, pod, o, snapshot)]
        if key not in labels:
            return NodeVerdict(info.name, "InterPodAffinity", (REASON_POD_AFFINITY,), True)
        if any(oi.labels.get(key) == labels[key] for oi, _ in matching):
            continue
        # The first pod of a group may land anywhere when it matches its own term.
        if not matching and _term_matches_pod(term, pod, pod, snapshot):
            continue
        return NodeVerdict(info.name, "InterPodAffinity", (REASON_POD_AFFINITY,), True)
    for term in _required_terms(pod, "podAntiAffinity"):
        key = term.get("topologyKey", "")
        if key not in labels:
            continue
        for oi, o in snapshot.pods():
            if oi.labels.get(key) == labels[key] and _term_matches_pod(term, pod, o, snapshot):
                return NodeVerdict(info.name, "InterPodAffinity", (REASON_POD_ANTI_AFFINITY,), False)
    return None


def filter_node(pod: Mapping[str, Any], info: NodeInfo, snapshot: Snapshot) -> NodeVerdict:
    """Run the filter plugins in order; the first rejection decides (as kube-scheduler does)."""
    for check in (_filter_unschedulable, _filter_taints, _filter_node_affinity, _filter_ports, _filter_resources):
        verdict = check(pod, info)
        if verdict is not None:
            return verdict
    for check2 in (_filter_spread, _filter_pod_affinity):
        verdict = check2(pod, info, snapshot)
        if verdict is not None:
            return verdict
    return NodeVerdict(info.name)


def evaluate(pod: Mapping[str, Any], snapshot: Snapshot) -> list[NodeVerdict]:
    """One verdict per node of the snapshot, in snapshot order."""
    return [filter_node(pod, info, snapshot) for info in snapshot.nodes.values()]


# --------------------------------------------------------------------------- preemption


@dataclass(frozen=True)
class PreemptionPlan:
    """Where preemption would make room: the node and the pods to evict."""

    node: str
    victims: tuple[dict[str, Any], ...]


def _preemption(
    pod: Mapping[str, Any], snapshot: Snapshot, verdicts: list[NodeVerdict]
) -> tuple[PreemptionPlan | None, str]:
    """Dry-run DefaultPreemption: a plan, or the ``preemption: ...`` text saying why there is none."""
    spec = pod.get("spec") or {}
    if spec.get("preemptionPolicy") == "Never":
        return None, "preemption: not eligible due to preemptionPolicy=Never."
    priority = pod_priority(pod)
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    if nominated in snapshot.nodes:
        by_name = {v.node: v for v in verdicts}
        if not by_name[nominated].unresolvable and any(
            is_terminating(p) and pod_priority(p) < priority for p in snapshot.nodes[nominated].pods
        ):
            return None, "preemption: not eligible due to a terminating pod on the nominated node."
    reasons: Counter[str] = Counter()
    plans: list[tuple[tuple[int, int, int, str], PreemptionPlan]] = []
    for v in verdicts:
        info = snapshot.nodes[v.node]
        if v.fits:
            continue
        if v.unresolvable:
            reasons[REASON_NOT_HELPFUL] += 1
            continue
        lower = sorted(
            (p for p in info.pods if pod_priority(p) < priority and not is_terminating(p)),
            key=lambda p: (-pod_priority(p), (p.get("metadata") or {}).get("creationTimestamp") or ""),
        )
        if not lower:
            reasons[REASON_NO_VICTIMS] += 1
            continue
        trial = Snapshot({**snapshot.nodes, v.node: info.without(lower)}, snapshot.namespace_labels)
        verdict = filter_node(pod, trial.nodes[v.node], trial)
        if not verdict.fits:
            for r in verdict.reasons:
                reasons[r] += 1
            continue
        # Reprieve victims, highest priority first, while the pod still fits.
        victims = list(lower)
        for candidate in lower:
            keep = [p for p in victims if p is not candidate]
            trial = Snapshot({**snapshot.nodes, v.node: info.without(keep)}, snapshot.namespace_labels)
            if filter_node(pod, trial.nodes[v.node], trial).fits:
                victims = keep
        top = max(pod_priority(p) for p in victims)
        total = sum(pod_priority(p) for p in victims)
        plans.append(((top, total, len(victims), v.node), PreemptionPlan(v.node, tuple(victims))))
    if plans:
        return min(plans, key=lambda item: item[0])[1], ""
    return None, f"preemption: {_histogram_message(len(verdicts), reasons)}"


# --------------------------------------------------------------------------- explanations


def _histogram_message(total: int, reasons: Mapping[str, int]) -> str:
    parts = sorted(f"{n} {r}" for r, n in reasons.items())
    msg = f"0/{total} nodes are available:"
    if parts:
        msg += f" {', '.join(parts)}."
    return msg


@dataclass(frozen=True)
class Explanation:
    """Why a pod fits nowhere (or where it fits), as data and as kube-scheduler's text.

    Attributes:
        pod: ``namespace/name``.
        total_nodes: nodes considered.
        verdicts: one per node.
        message: the ``FailedScheduling`` text (empty when the pod fits somewhere).
        preemption: the eviction plan when preemption makes room, else ``None``.
        unresolvable: no node can take the pod even after evictions (a new node is needed).
    """

    pod: str
    total_nodes: int
    verdicts: tuple[NodeVerdict, ...]
    message: str
    preemption: PreemptionPlan | None = None

    @property
    def fits(self) -> bool:
        return any(v.fits for v in self.verdicts)

    @property
    def unresolvable(self) -> bool:
        return not self.fits and all(v.unresolvable for v in self.verdicts)

    def reasons_by_group(
        self,
        nodes: Iterable[Mapping[str, Any]],
        label_keys: tuple[str, ...] = (
            "karpenter.sh/nodepool",
            "eks.amazonaws.com/nodegroup",
            "eks.amazonaws.com/compute-type",
            "node.kubernetes.io/instance-type",
        ),
    ) -> dict[str, list[str]]:
        """Reasons per node group: the first of ``label_keys`` a node carries names its group.

        Returns:
            group name -> sorted distinct reasons (``[]`` for a group where the pod fits).
        """
        group_of: dict[str, str] = {}
        for n in nodes:
            labels = (n.get("metadata") or {}).get("labels") or {}
            name = n["metadata"]["name"]
            group_of[name] = next((f"{k}={labels[k]}" for k in label_keys if k in labels), name)
        out: dict[str, set[str]] = defaultdict(set)
        for v in self.verdicts:
            out[group_of.get(v.node, v.node)].update(v.reasons)
        return {g: sorted(r) for g, r in sorted(out.items())}

    def summary(self, nodes: Iterable[Mapping[str, Any]] | None = None) -> str:
        """A short human text: the event message, or per-group reasons when ``nodes`` are given."""
        if self.fits:
            return f"{self.pod} fits on {', '.join(v.node for v in self.verdicts if v.fits)}"
        if nodes is None or not self.verdicts:
            return self.message
        groups = self.reasons_by_group(nodes)
        lines = [f"{self.pod} fits on no node ({self.total_nodes} considered):"]
        lines += [f"  {g}: {'; '.join(r) or 'fits'}" for g, r in groups.items()]
        return "\n".join(lines)


def _pod_ref(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def explain(pod: Mapping[str, Any], snapshot: Snapshot) -> Explanation:
    """Why ``pod`` can or cannot be placed on the snapshot's nodes, with kube-scheduler's message."""
    if not snapshot.nodes:
        return Explanation(_pod_ref(pod), 0, (), NO_NODES_MESSAGE)
    verdicts = evaluate(pod, snapshot)
    if any(v.fits for v in verdicts):
        return Explanation(_pod_ref(pod), len(verdicts), tuple(verdicts), "")
    reasons: Counter[str] = Counter(r for v in verdicts for r in v.reasons)
    plan, post = _preemption(pod, snapshot, verdicts)
    message = _histogram_message(len(verdicts), reasons)
    if post:
        message += f" {post}"
    return Explanation(_pod_ref(pod), len(verdicts), tuple(verdicts), message, plan)


def explain_pod(
    pod: Mapping[str, Any],
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> Explanation:
    """:func:`explain` from plain lists of nodes and pods (what a client lists from the API)."""
    return explain(pod, Snapshot.build(nodes, pods, namespace_labels))


# --------------------------------------------------------------------------- scoring

#: Weights of the default profile's score plugins.
SCORE_WEIGHTS = {
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "ImageLocality": 1,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "TaintToleration": 3,
}
MAX_SCORE = 100
# What the scorer assumes for containers that request nothing (non-zero defaults).
_DEFAULT_MILLI_CPU = 100
_DEFAULT_MEMORY = 200 * 1024 * 1024


def _score_request(pod: Mapping[str, Any]) -> dict[str, int]:
    req = pod_requests(pod)
    return {
        "cpu": req.get("cpu") or _DEFAULT_MILLI_CPU,
        "memory": req.get("memory") or _DEFAULT_MEMORY,
    }


def _fractions(pod: Mapping[str, Any], info: NodeInfo) -> list[float]:
    alloc = info.allocatable
    want = _score_request(pod)
    used = info.score_used
    out = []
    for k in ("cpu", "memory"):
        cap = alloc.get(k, 0)
        out.append(1.0 if cap <= 0 else min(1.0, (used.get(k, 0) + want[k]) / cap))
    return out


def _normalize(raw: dict[str, float], reverse: bool = False) -> dict[str, float]:
    if not raw:
        return {}
    top = max(raw.values())
    if top <= 0:
        return dict.fromkeys(raw, float(MAX_SCORE) if reverse else 0.0)
    if reverse:
        return {k: MAX_SCORE - MAX_SCORE * v / top for k, v in raw.items()}
    return {k: MAX_SCORE * v / top for k, v in raw.items()}


_IMAGE_MIN_BYTES = 23 * 1024 * 1024
_IMAGE_MAX_BYTES = 1000 * 1024 * 1024


def _normalized_image(image: str) -> str:
    ref = image
    first = ref.split("/", 1)[0]
    if "/" not in ref or not ("." in first or ":" in first or first == "localhost"):
        ref = "docker.io/" + ("library/" + ref if "/" not in ref else ref)
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def _node_images(node: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for img in (node.get("status") or {}).get("images") or []:
        for name in img.get("names") or []:
            out[name] = int(img.get("sizeBytes") or 0)
    return out


def _image_names(pod: Mapping[str, Any]) -> set[str]:
    return {c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []}


def score_nodes(pod: Mapping[str, Any], snapshot: Snapshot, feasible: list[str]) -> dict[str, float]:
    """Weighted scores of the feasible nodes (higher is better)."""
    infos = [snapshot.nodes[n] for n in feasible]
    spec = pod.get("spec") or {}
    scores: dict[str, float] = dict.fromkeys(feasible, 0.0)

    # NodeResourcesFit (LeastAllocated) and BalancedAllocation.
    for info in infos:
        fr = _fractions(pod, info)
        least = sum((1 - f) * MAX_SCORE for f in fr) / len(fr)
        mean = sum(fr) / len(fr)
        std = math.sqrt(sum((f - mean) ** 2 for f in fr) / len(fr))
        scores[info.name] += SCORE_WEIGHTS["NodeResourcesFit"] * least
        scores[info.name] += SCORE_WEIGHTS["NodeResourcesBalancedAllocation"] * (1 - std) * MAX_SCORE

    # NodeAffinity (preferred terms).
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []
    raw = {}
    for info in infos:
        matched = [t for t in preferred if node_selector_term_matches(t.get("preference") or {}, info.node)]
        raw[info.name] = float(sum(int(t.get("weight", 0)) for t in matched))
    for k, v in _normalize(raw).items():
        scores[k] += SCORE_WEIGHTS["NodeAffinity"] * v

    # TaintToleration: fewer untolerated PreferNoSchedule taints is better.
    tolerations = spec.get("tolerations") or []
    raw = {}
    for info in infos:
        raw[info.name] = float(
            sum(
                1
                for t in node_taints(info.node)
                if t.get("effect") == "PreferNoSchedule" and not any(toleration_tolerates(x, t) for x in tolerations)
            )
        )
    for k, v in _normalize(raw, reverse=True).items():
        scores[k] += SCORE_WEIGHTS["TaintToleration"] * v

    # PodTopologySpread (ScheduleAnyway): fewer matching pods in the node's domains is better.
    soft = _spread_constraints(pod, "ScheduleAnyway")
    if soft:
        keys = [c["topologyKey"] for c in soft]
        raw = {}
        for info in infos:
            total = 0.0
            for c in soft:
                counts = _spread_counts(pod, c, snapshot, keys)
                total += counts.get(info.labels.get(c["topologyKey"], ""), 0)
            raw[info.name] = total
        for k, v in _normalize(raw, reverse=True).items():
            scores[k] += SCORE_WEIGHTS["PodTopologySpread"] * v

    # InterPodAffinity (preferred terms of the incoming pod).
    aff = spec.get("affinity") or {}
    soft_key = "preferredDuringSchedulingIgnoredDuringExecution"
    weighted = [(t, 1) for t in (aff.get("podAffinity") or {}).get(soft_key) or []]
    weighted += [(t, -1) for t in (aff.get("podAntiAffinity") or {}).get(soft_key) or []]
    if weighted:
        raw = {}
        for info in infos:
            total = 0.0
            for wt, sign in weighted:
                term = wt.get("podAffinityTerm") or {}
                key = term.get("topologyKey", "")
                if key not in info.labels:
                    continue
                for oi, o in snapshot.pods():
                    if oi.labels.get(key) == info.labels[key] and _term_matches_pod(term, pod, o, snapshot):
                        total += sign * int(wt.get("weight", 0))
            raw[info.name] = total
        low = min(raw.values())
        shifted = {k: v - low for k, v in raw.items()}
        for k, v in _normalize(shifted).items():
            scores[k] += SCORE_WEIGHTS["InterPodAffinity"] * v

    # ImageLocality: image sizes already on the node, weighted by how widely the image is spread,
    # scaled between 23 MB and 1000 MB per container (kube-scheduler's thresholds).
    images = _image_names(pod)
    if images:
        held = {info.name: _node_images(info.node) for info in snapshot.nodes.values()}
        total_nodes = len(snapshot.nodes)
        low, high = _IMAGE_MIN_BYTES * len(images), _IMAGE_MAX_BYTES * len(images)
        for info in infos:
            sum_scores = 0.0
            for image in images:
                size = held[info.name].get(_normalized_image(image))
                if size:
                    spread = sum(1 for h in held.values() if _normalized_image(image) in h) / total_nodes
                    sum_scores += size * spread
            clamped = min(max(sum_scores, low), high)
            scores[info.name] += SCORE_WEIGHTS["ImageLocality"] * MAX_SCORE * (clamped - low) / (high - low)
    return scores


def select_node(
    pod: Mapping[str, Any], snapshot: Snapshot, rng: random.Random | None = None
) -> tuple[str | None, Explanation]:
    """The node kube-scheduler would pick for ``pod`` (``None`` when none fits) and the explanation."""
    explanation = explain(pod, snapshot)
    feasible = [v.node for v in explanation.verdicts if v.fits]
    if not feasible:
        return None, explanation
    scores = score_nodes(pod, snapshot, feasible)
    best = max(scores.values())
    top = sorted(n for n, s in scores.items() if math.isclose(s, best, rel_tol=1e-9, abs_tol=1e-9))
    return (rng or random).choice(top), explanation


# --------------------------------------------------------------------------- the loop


UnschedulableListener = Callable[[dict[str, Any], Explanation], None]
#: Store types the scheduler reads through its cache.
CACHED_KEYS = ("pods", "nodes", "namespaces", "priorityclasses.scheduling.k8s.io")


class Scheduler:
    """Binds pending pods through the store, like kube-scheduler with the default profile.

    Pending pods are tried as they arrive; retries go in priority order (then age). A pod that fits is bound
    (``spec.nodeName``, ``PodScheduled=True``, a ``Scheduled`` event). One that fits nowhere
    stays Pending with ``PodScheduled=False`` reason ``Unschedulable`` and a ``FailedScheduling``
    Warning event; when lower-priority pods can be evicted to make room, they are deleted and the
    pod is nominated. Unschedulable pods are tried again whenever nodes or pods change, and at
    least every ``retry_seconds`` of simulated time.

    Attributes:
        unschedulable_listeners: callbacks ``(pod, explanation)`` called after every failed attempt
            (the Karpenter simulation provisions nodes from them).
    """

    def __init__(
        self,
        store: Any,
        clock: Any,
        *,
        rng: random.Random | None = None,
        name: str = SCHEDULER_NAME,
        retry_seconds: float = 300.0,
        cache: Any = None,
    ) -> None:
        from .controllers.cache import ObjectCache
        from .controllers.workqueue import Worker

        self.store = store
        self._own_cache = cache is None
        self.cache = cache or ObjectCache(store, CACHED_KEYS)
        self.clock = clock
        self.name = name
        self.rng = rng or random.Random()
        self.retry_seconds = retry_seconds
        self.unschedulable_listeners: list[UnschedulableListener] = []
        self._unschedulable: set[str] = set()
        self._lock = threading.Lock()
        self._worker = Worker(f"labkit-{name}", clock, self._sync, on_event=self._keys_for)
        self._unsubscribe: Callable[[], None] | None = None

    # ---- lifecycle

    def start(self) -> None:
        """Subscribe to the store, queue every pending pod and start the worker thread."""
        if self._own_cache:
            self.cache.start()
        self._unsubscribe = self.store.subscribe(self._worker.push_event)
        self._worker.start()
        for pod in self._by_priority(p for p in self.cache.list("pods") if needs_scheduling(p, self.name)):
            self._worker.add(_key(pod))
        self._schedule_retry()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._own_cache:
            self.cache.stop()
        self._worker.stop()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until the queue is empty (tests)."""
        return self._worker.wait_idle(timeout)

    def unschedulable_pods(self) -> list[dict[str, Any]]:
        """Pods this scheduler last found unschedulable and that are still pending."""
        out = []
        with self._lock:
            keys = sorted(self._unschedulable)
        for key in keys:
            ns, name = key.split("/", 1)
            pod = self.store.try_get("pods", ns, name)
            if pod is not None and needs_scheduling(pod, self.name):
                out.append(pod)
        return out

    def retry_all(self) -> None:
        """Queue every unschedulable pod again (a node appeared, a pod went away...)."""
        with self._lock:
            keys = list(self._unschedulable)
        pods = [p for k in keys if (p := self.cache.get("pods", *k.split("/", 1))) is not None]
        for pod in self._by_priority(pods):
            self._worker.add(_key(pod))

    def _by_priority(self, pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        classes = self._priority_classes()
        ranked = [_with_priority(p, classes) for p in pods]
        return sorted(ranked, key=lambda p: (-pod_priority(p), p["metadata"].get("creationTimestamp") or ""))

    # ---- events

    def _keys_for(self, event: Any) -> Iterable[str]:
        if event.key == "pods":
            pod = event.obj
            if event.type != "DELETED" and needs_scheduling(pod, self.name):
                return [_key(pod)]
            if _frees_room(event):
                with self._lock:
                    self._unschedulable.discard(_key(pod))
                    return list(self._unschedulable)
            return []
        if event.key == "nodes" and _node_changed(event):
            with self._lock:
                return list(self._unschedulable)
        return []

    def _schedule_retry(self) -> None:
        def fire() -> None:
            if self._worker.running:
                self.retry_all()
                self._schedule_retry()

        self.clock.call_later(self.retry_seconds, fire)

    # ---- one pod

    def _sync(self, key: str) -> float | None:
        ns, name = key.split("/", 1)
        pod = self.store.try_get("pods", ns, name)
        if pod is None or not needs_scheduling(pod, self.name):
            with self._lock:
                self._unschedulable.discard(key)
            return None
        gates = (pod.get("spec") or {}).get("schedulingGates") or []
        if gates:
            self._set_condition(
                pod, "False", "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates"
            )
            return None
        nodes = sorted(self.cache.list("nodes"), key=lambda n: n["metadata"]["name"])
        pods = self.cache.list("pods")
        namespaces = self.cache.list("namespaces")
        ns_labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in namespaces}
        classes = self._priority_classes()
        pod = _with_priority(pod, classes)
        pods = [_with_priority(p, classes) for p in pods]
        snapshot = Snapshot.build(nodes, pods, ns_labels)
        node, explanation = select_node(pod, snapshot, self.rng)
        if node is not None:
            self._bind(pod, node)
            with self._lock:
                self._unschedulable.discard(key)
            return None
        with self._lock:
            self._unschedulable.add(key)
        if explanation.preemption is not None:
            self._preempt(pod, explanation.preemption)
        self._set_condition(pod, "False", "Unschedulable", explanation.message)
        self.store.record_event(pod, "FailedScheduling", explanation.message, type="Warning", component=self.name)
        for listener in list(self.unschedulable_listeners):
            try:
                listener(pod, explanation)
            except Exception:  # a listener must not stop scheduling
                log.exception("unschedulable listener failed")
        return None

    def _priority_classes(self) -> dict[str, int]:
        classes = self.cache.list("priorityclasses.scheduling.k8s.io")
        out = {c["metadata"]["name"]: int(c.get("value", 0)) for c in classes}
        for c in classes:
            if c.get("globalDefault"):
                out[""] = int(c.get("value", 0))
        out.setdefault("system-cluster-critical", 2000000000)
        out.setdefault("system-node-critical", 2000001000)
        return out

    def _bind(self, pod: dict[str, Any], node: str) -> None:
        meta = pod["metadata"]
        try:
            bind = getattr(self.store, "bind_pod", None)
            if bind is not None:
                bind(meta["namespace"], meta["name"], node, field_manager=self.name)
            else:
                self.store.patch("pods", meta["namespace"], meta["name"], {"spec": {"nodeName": node}}, "merge")
        except (NotFound, Conflict):
            return
        self._set_condition(pod, "True", None, None)
        self.store.record_event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            component=self.name,
        )

    def _preempt(self, pod: dict[str, Any], plan: PreemptionPlan) -> None:
        uid = pod["metadata"].get("uid", "")
        for victim in plan.victims:
            vm = victim["metadata"]
            self.store.record_event(
                victim, "Preempted", f"Preempted by pod {uid} on node {plan.node}", component=self.name
            )
            with contextlib.suppress(NotFound):
                self.store.delete("pods", vm["namespace"], vm["name"])
        meta = pod["metadata"]
        with contextlib.suppress(NotFound, Conflict):
            self.store.patch(
                "pods",
                meta["namespace"],
                meta["name"],
                {"status": {"nominatedNodeName": plan.node}},
                "merge",
                subresource="status",
            )

    def _set_condition(self, pod: dict[str, Any], status: str, reason: str | None, message: str | None) -> None:
        meta = pod["metadata"]
        for _ in range(5):
            current = self.store.try_get("pods", meta["namespace"], meta["name"])
            if current is None:
                return
            st = current.setdefault("status", {})
            conditions = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
            old = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
            cond: dict[str, Any] = {"type": "PodScheduled", "status": status, "lastProbeTime": None}
            if reason:
                cond["reason"] = reason
            if message:
                cond["message"] = message
            same = old is not None and old.get("status") == status
            cond["lastTransitionTime"] = old.get("lastTransitionTime") if same and old else rfc3339(self.clock.now())
            if old == cond:
                return
            st["conditions"] = [*conditions, cond]
            st.setdefault("phase", "Pending")
            if status == "False" and not st.get("qosClass"):
                st["qosClass"] = qos_class(current)
            try:
                self.store.update("pods", current, subresource="status")
                return
            except Conflict:
                continue
            except NotFound:
                return


def _frees_room(event: Any) -> bool:
    """Whether a pod event can make room: deleted, finished, terminating or relabelled (spread, affinity)."""
    pod, old = event.obj, getattr(event, "old", None)
    if event.type == "DELETED":
        return True
    if old is None:
        return False
    if is_terminal(pod) and not is_terminal(old):
        return True
    if is_terminating(pod) and not is_terminating(old):
        return True
    return (pod.get("metadata") or {}).get("labels") != (old.get("metadata") or {}).get("labels")


def _node_changed(event: Any) -> bool:
    """Whether a node event can change where pods fit (not heartbeats or image lists)."""
    old = getattr(event, "old", None)
    if event.type != "MODIFIED" or old is None:
        return True
    new = event.obj
    return (
        new.get("spec") != old.get("spec")
        or (new.get("metadata") or {}).get("labels") != (old.get("metadata") or {}).get("labels")
        or (new.get("status") or {}).get("allocatable") != (old.get("status") or {}).get("allocatable")
    )


def _key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _with_priority(pod: dict[str, Any], classes: Mapping[str, int]) -> dict[str, Any]:
    """The pod with ``spec.priority`` resolved from its PriorityClass (or the global default)."""
    spec = pod.get("spec") or {}
    name = spec.get("priorityClassName") or ""
    if name and name in classes:
        value = classes[name]
    elif isinstance(spec.get("priority"), int) and (spec["priority"] != 0 or "" not in classes):
        value = int(spec["priority"])
    else:
        value = classes.get("", 0)
    if spec.get("priority") == value:
        return pod
    return {**pod, "spec": {**spec, "priority": value}}


def qos_class(pod: Mapping[str, Any]) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` from the containers' requests and limits."""
    containers = list((pod.get("spec") or {}).get("containers") or []) + list(
        (pod.get("spec") or {}).get("initContainers") or []
    )
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits = resource_list(res.get("limits"))
        requests = {**limits, **resource_list(res.get("requests"))}
        if limits or requests:
            any_set = True
        for k in ("cpu", "memory"):
            if k not in limits or requests.get(k) != limits.get(k):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
