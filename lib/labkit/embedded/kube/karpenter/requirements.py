"""Karpenter's scheduling requirements: label keys with allowed value sets, intersected and compared.

A :class:`Requirement` is one key with a set of values that is either listed (``In``) or excluded
(``NotIn``; ``Exists`` is "excludes nothing"), optionally bounded by ``Gt``/``Lt``. NodePool
requirements, template labels, a pod's node selector and required node affinity, and each instance
type's labels all become :class:`Requirements`; Karpenter launches an instance type only when its
requirements intersect the NodeClaim's. Text forms (``key In [a b]``, ``key Exists >4``) and error
messages (``key K, <pod requirement> not in <nodeclaim requirement>``, ``label "K" does not have known
values``) follow Karpenter v1.0 (kubernetes-sigs/karpenter ``pkg/scheduling``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT = "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"
OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT)

NODEPOOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"
HOSTNAME_LABEL = "kubernetes.io/hostname"
COMPUTE_TYPE_LABEL = "eks.amazonaws.com/compute-type"

#: Aliases Karpenter translates to the stable keys (pod requirements are normalised too).
NORMALIZED_LABELS = {
    "failure-domain.beta.kubernetes.io/zone": ZONE_LABEL,
    "failure-domain.beta.kubernetes.io/region": REGION_LABEL,
    "beta.kubernetes.io/arch": ARCH_LABEL,
    "beta.kubernetes.io/os": OS_LABEL,
    "beta.kubernetes.io/instance-type": INSTANCE_TYPE_LABEL,
}

#: Labels that never appear in requirement text (they interfere with provisioning).
RESTRICTED_LABELS = frozenset({HOSTNAME_LABEL})

#: Karpenter core's well-known labels: a pod may require them even when a NodePool does not mention them.
CORE_WELL_KNOWN = frozenset(
    {
        NODEPOOL_LABEL,
        ZONE_LABEL,
        REGION_LABEL,
        INSTANCE_TYPE_LABEL,
        ARCH_LABEL,
        OS_LABEL,
        CAPACITY_TYPE_LABEL,
        "node.kubernetes.io/windows-build",
    }
)

_INSTANCE_SUFFIXES = (
    "instance-category",
    "instance-family",
    "instance-generation",
    "instance-size",
    "instance-cpu",
    "instance-cpu-manufacturer",
    "instance-memory",
    "instance-hypervisor",
    "instance-encryption-in-transit-supported",
    "instance-gpu-count",
    "instance-gpu-name",
    "instance-gpu-manufacturer",
    "instance-gpu-memory",
)


def instance_label_keys(prefix: str) -> tuple[str, ...]:
    """The instance label keys under ``prefix`` (``karpenter.k8s.aws`` or ``eks.amazonaws.com``)."""
    return tuple(f"{prefix}/{s}" for s in _INSTANCE_SUFFIXES)


def well_known_labels(prefix: str) -> frozenset[str]:
    """Core well-known labels plus the provider's (instance labels, zone id; Auto Mode's compute type)."""
    extra = {*instance_label_keys(prefix), "topology.k8s.aws/zone-id"}
    if prefix == "eks.amazonaws.com":
        extra.add(COMPUTE_TYPE_LABEL)
    return CORE_WELL_KNOWN | extra


def _bounds_ok(value: str, gt: int | None, lt: int | None) -> bool:
    if gt is None and lt is None:
        return True
    try:
        n = int(value)
    except ValueError:
        return False
    return (gt is None or n > gt) and (lt is None or n < lt)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True)
class Requirement:
    """One key's allowed values.

    Attributes:
        key: the label key (normalised).
        complement: True when ``values`` are excluded (NotIn/Exists/Gt/Lt), False when listed (In/DoesNotExist).
        values: the listed or excluded values.
        gt: values must be integers greater than this.
        lt: values must be integers less than this.
    """

    key: str
    complement: bool
    values: frozenset[str] = field(default_factory=frozenset)
    gt: int | None = None
    lt: int | None = None

    @classmethod
    def of(cls, key: str, operator: str, values: Iterable[Any] = ()) -> Requirement:
        """A requirement from a ``NodeSelectorRequirement`` (``key``, ``operator``, ``values``).

        Raises:
            ValueError: unknown operator, or ``Gt``/``Lt`` without exactly one integer value.
        """
        key = NORMALIZED_LABELS.get(key, key)
        vals = [str(v) for v in values or ()]
        if operator == IN:
            return cls(key, False, frozenset(vals))
        if operator == NOT_IN:
            return cls(key, True, frozenset(vals))
        if operator == EXISTS:
            return cls(key, True)
        if operator == DOES_NOT_EXIST:
            return cls(key, False)
        if operator in (GT, LT):
            if len(vals) != 1:
                raise ValueError(f"{key} {operator} needs exactly one value, got {vals}")
            n = int(vals[0])
            return cls(key, True, gt=n) if operator == GT else cls(key, True, lt=n)
        raise ValueError(f"unknown operator {operator!r} for {key}; use one of {', '.join(OPERATORS)}")

    @property
    def operator(self) -> str:
        """``In``, ``NotIn``, ``Exists`` (also for Gt/Lt, shown with bounds) or ``DoesNotExist``."""
        if self.complement:
            return NOT_IN if self.values else EXISTS
        return IN if self.values else DOES_NOT_EXIST

    def has(self, value: str) -> bool:
        """Whether a node with ``key=value`` satisfies this requirement."""
        if not _bounds_ok(value, self.gt, self.lt):
            return False
        return (value not in self.values) if self.complement else (value in self.values)

    def has_intersection(self, other: Requirement) -> bool:
        """Whether some value satisfies both (Karpenter's ``HasIntersection``)."""
        gt, lt = _max(self.gt, other.gt), _min(self.lt, other.lt)
        if gt is not None and lt is not None and gt >= lt:
            return False
        if self.complement and other.complement:
            return True
        if self.complement:
            return any(v not in self.values and _bounds_ok(v, gt, lt) for v in other.values)
        if other.complement:
            return any(v not in other.values and _bounds_ok(v, gt, lt) for v in self.values)
        return any(v in other.values and _bounds_ok(v, gt, lt) for v in self.values)

    def intersection(self, other: Requirement) -> Requirement:
        """The values allowed by both."""
        gt, lt = _max(self.gt, other.gt), _min(self.lt, other.lt)
        if gt is not None and lt is not None and gt >= lt:
            return Requirement(self.key, False)
        if self.complement and other.complement:
            return Requirement(self.key, True, self.values | other.values, gt, lt)
        if self.complement:
            keep = frozenset(v for v in other.values if v not in self.values and _bounds_ok(v, gt, lt))
        elif other.complement:
            keep = frozenset(v for v in self.values if v not in other.values and _bounds_ok(v, gt, lt))
        else:
            keep = frozenset(v for v in self.values & other.values if _bounds_ok(v, gt, lt))
        return Requirement(self.key, False, keep)

    def __str__(self) -> str:
        op = self.operator
        if op in (EXISTS, DOES_NOT_EXIST):
            text = f"{self.key} {op}"
        else:
            values = sorted(self.values)
            if len(values) > 5:
                values = [*values[:5], f"and {len(values) - 5} others"]
            text = f"{self.key} {op} [{' '.join(values)}]"
        if self.gt is not None:
            text += f" >{self.gt}"
        if self.lt is not None:
            text += f" <{self.lt}"
        return text


class Requirements(Mapping[str, Requirement]):
    """Requirements by key; adding a key that is present keeps the intersection."""

    def __init__(self, items: Iterable[Requirement] = ()) -> None:
        self._by_key: dict[str, Requirement] = {}
        for r in items:
            self.add(r)

    # ---- constructors

    @classmethod
    def from_expressions(cls, expressions: Iterable[Mapping[str, Any]] | None) -> Requirements:
        """From ``NodeSelectorRequirement`` dicts (``minValues`` is ignored)."""
        return cls(
            Requirement.of(e.get("key", ""), e.get("operator", ""), e.get("values") or ()) for e in expressions or ()
        )

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> Requirements:
        """``key In [value]`` for every label."""
        return cls(Requirement.of(k, IN, [v]) for k, v in (labels or {}).items())

    def copy(self) -> Requirements:
        out = Requirements()
        out._by_key = dict(self._by_key)
        return out

    # ---- Mapping

    def __getitem__(self, key: str) -> Requirement:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    # ---- algebra

    def add(self, requirement: Requirement) -> None:
        """Add ``requirement``, intersecting with an existing one for the same key."""
        old = self._by_key.get(requirement.key)
        self._by_key[requirement.key] = requirement if old is None else old.intersection(requirement)

    def merged(self, other: Iterable[Requirement] | Requirements) -> Requirements:
        """A copy with ``other`` added."""
        out = self.copy()
        for r in other.values() if isinstance(other, Requirements) else other:
            out.add(r)
        return out

    def intersects(self, incoming: Requirements) -> str | None:
        """``None`` when every shared key has common values, else the errors (Karpenter's ``Intersects``)."""
        errors = []
        for key in sorted(set(self._by_key) & set(incoming._by_key)):
            existing, new = self._by_key[key], incoming._by_key[key]
            if existing.has_intersection(new):
                continue
            if new.operator in (NOT_IN, DOES_NOT_EXIST) and existing.operator in (NOT_IN, DOES_NOT_EXIST):
                continue
            errors.append(f"key {key}, {new} not in {existing}")
        return "; ".join(errors) or None

    def compatible(self, incoming: Requirements, allow_undefined: frozenset[str] = frozenset()) -> str | None:
        """``None`` when ``incoming`` (a pod's) can be met by these (a NodeClaim's), else why not.

        Keys in ``allow_undefined`` (well-known labels) may be absent here; other keys the pod requires
        must be defined here unless the pod only excludes values (NotIn/DoesNotExist).
        """
        for key in sorted(incoming):
            if key in allow_undefined or key in self._by_key or incoming[key].operator in (NOT_IN, DOES_NOT_EXIST):
                continue
            return f'label "{key}" does not have known values{_typo_hint(key, allow_undefined | set(self._by_key))}'
        return self.intersects(incoming)

    def single_values(self) -> dict[str, str]:
        """Keys restricted to exactly one value (``In [v]``): the labels a NodeClaim gets from them."""
        return {k: next(iter(r.values)) for k, r in self._by_key.items() if r.operator == IN and len(r.values) == 1}

    def to_expressions(self) -> list[dict[str, Any]]:
        """As ``NodeSelectorRequirement`` dicts (Gt/Lt bounds as their own entries), sorted by key."""
        out: list[dict[str, Any]] = []
        for key in sorted(self._by_key):
            r = self._by_key[key]
            if r.gt is not None or r.lt is not None:
                if r.gt is not None:
                    out.append({"key": key, "operator": GT, "values": [str(r.gt)]})
                if r.lt is not None:
                    out.append({"key": key, "operator": LT, "values": [str(r.lt)]})
                if r.values:
                    out.append({"key": key, "operator": NOT_IN, "values": sorted(r.values)})
                continue
            entry: dict[str, Any] = {"key": key, "operator": r.operator}
            if r.values:
                entry["values"] = sorted(r.values)
            out.append(entry)
        return out

    def __str__(self) -> str:
        return ", ".join(sorted(str(r) for k, r in self._by_key.items() if k not in RESTRICTED_LABELS))

    def __repr__(self) -> str:
        return f"Requirements({self})"


def _typo_hint(key: str, known: Iterable[str]) -> str:
    suffix = key.split("/", 1)[-1]
    for candidate in sorted(known):
        if candidate != key and (key in candidate or candidate.endswith("/" + suffix)):
            return f' (typo of "{candidate}"?)'
    return ""


# --------------------------------------------------------------------------- pods


def pod_requirement_terms(pod: Mapping[str, Any]) -> list[Requirements]:
    """A pod's node requirements, one alternative per required node affinity term.

    ``nodeSelector`` applies to every alternative. Karpenter tries the first term and relaxes to the
    next when it cannot be met; callers try them in order.
    """
    spec = pod.get("spec") or {}
    base = Requirements.from_labels(spec.get("nodeSelector"))
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = [t for t in required.get("nodeSelectorTerms") or [] if t.get("matchExpressions")]
    if not terms:
        return [base]
    return [base.merged(Requirements.from_expressions(t.get("matchExpressions"))) for t in terms]
