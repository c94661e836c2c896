"""A NodePool as the embedded Karpenter reads it, plus EKS Auto Mode's built-in pools and node class.

:class:`Pool` is the parsed view of a ``karpenter.sh/v1`` NodePool: its requirements (template
requirements plus template labels plus ``karpenter.sh/nodepool``), taints, limits, node class
reference and disruption settings. :func:`builtin_nodepools` and :func:`default_nodeclass` give the
objects EKS Auto Mode creates on a new cluster (``general-purpose`` and ``system`` on the ``default``
NodeClass): C/M/R families of generation 5 or newer, on-demand only; ``general-purpose`` is amd64,
``system`` is amd64/arm64 and tainted ``CriticalAddonsOnly``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..scheduler import resource_list
from .requirements import NODEPOOL_LABEL, Requirements

GROUP = "karpenter.sh"
NODEPOOL_KEY = "nodepools.karpenter.sh"
NODECLAIM_KEY = "nodeclaims.karpenter.sh"
EC2NODECLASS_KEY = "ec2nodeclasses.karpenter.k8s.aws"
AUTO_NODECLASS_KEY = "nodeclasses.eks.amazonaws.com"

#: Store key of the node class a ``nodeClassRef`` group names.
NODECLASS_KEYS = {"karpenter.k8s.aws": EC2NODECLASS_KEY, "eks.amazonaws.com": AUTO_NODECLASS_KEY}
#: Kind of node class per group.
NODECLASS_KINDS = {"karpenter.k8s.aws": "EC2NodeClass", "eks.amazonaws.com": "NodeClass"}

HASH_ANNOTATION = "karpenter.sh/nodepool-hash"
HASH_VERSION_ANNOTATION = "karpenter.sh/nodepool-hash-version"
HASH_VERSION = "v3"

DEFAULT_EXPIRE_AFTER = "720h"
DEFAULT_BUDGETS: tuple[dict[str, Any], ...] = ({"nodes": "10%"},)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """A Go duration (``30s``, ``10m``, ``1h30m``, ``720h``) in seconds; ``Never``, empty or ``None`` give ``None``.

    Raises:
        ValueError: not a duration.
    """
    if text is None or text in ("", "Never"):
        return None
    s = str(text).strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"invalid duration {text!r}: use Go duration text such as 30s, 10m or 720h, or Never")
    return total


def _taints(items: Any) -> tuple[dict[str, Any], ...]:
    return tuple({k: v for k, v in dict(t).items() if k in ("key", "value", "effect")} for t in items or ())


@dataclass(frozen=True)
class Pool:
    """A NodePool, parsed.

    Attributes:
        name: NodePool name.
        weight: priority (higher first; absent = 0).
        labels: labels every node gets (template labels plus ``karpenter.sh/nodepool``).
        annotations: template annotations.
        requirements: template requirements plus the labels.
        taints: template taints (pods must tolerate them).
        startup_taints: taints removed once the node is initialised.
        node_class_ref: ``{group, kind, name}``.
        limits: resource caps in scheduler units (``cpu`` in millicores, ``memory`` in bytes, counts).
        expire_after: node lifetime in seconds (``None``: never).
        consolidation_policy: ``WhenEmpty`` or ``WhenEmptyOrUnderutilized``.
        consolidate_after: seconds a node must be quiet before consolidation (``None``: never).
        budgets: disruption budgets as written.
        raw: the NodePool object.
    """

    name: str
    weight: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    requirements: Requirements = field(default_factory=Requirements)
    taints: tuple[dict[str, Any], ...] = ()
    startup_taints: tuple[dict[str, Any], ...] = ()
    node_class_ref: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    expire_after: float | None = None
    consolidation_policy: str = "WhenEmptyOrUnderutilized"
    consolidate_after: float | None = 0.0
    budgets: tuple[dict[str, Any], ...] = DEFAULT_BUDGETS
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_nodepool(cls, obj: Mapping[str, Any]) -> Pool:
        """Parse a NodePool object (defaults as the CRD's schema sets them).

        Raises:
            ValueError: a requirement, duration or limit does not parse.
        """
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        tspec = template.get("spec") or {}
        name = str(meta.get("name", ""))
        labels = {**(tmeta.get("labels") or {}), NODEPOOL_LABEL: name}
        reqs = Requirements.from_expressions(tspec.get("requirements")).merged(Requirements.from_labels(labels))
        disruption = spec.get("disruption") or {}
        budgets = disruption.get("budgets")
        return cls(
            name=name,
            weight=int(spec.get("weight") or 0),
            labels=labels,
            annotations=dict(tmeta.get("annotations") or {}),
            requirements=reqs,
            taints=_taints(tspec.get("taints")),
            startup_taints=_taints(tspec.get("startupTaints")),
            node_class_ref=dict(tspec.get("nodeClassRef") or {}),
            limits=resource_list(spec.get("limits")),
            expire_after=parse_duration(tspec.get("expireAfter", DEFAULT_EXPIRE_AFTER)),
            consolidation_policy=str(disruption.get("consolidationPolicy") or "WhenEmptyOrUnderutilized"),
            consolidate_after=parse_duration(disruption.get("consolidateAfter", "0s")),
            budgets=tuple(dict(b) for b in budgets) if budgets is not None else DEFAULT_BUDGETS,
            raw=obj,
        )

    @property
    def provider(self) -> str:
        """``auto`` when the pool uses an EKS Auto Mode NodeClass, else ``karpenter``."""
        return "auto" if self.node_class_ref.get("group") == "eks.amazonaws.com" else "karpenter"

    @property
    def node_class_key(self) -> str:
        """Store key of the referenced node class."""
        return NODECLASS_KEYS.get(str(self.node_class_ref.get("group", "")), EC2NODECLASS_KEY)

    @property
    def node_class_name(self) -> str:
        return str(self.node_class_ref.get("name", ""))

    @property
    def template_hash(self) -> str:
        """Hash of the template fields whose change makes existing nodes drift (requirements excluded)."""
        spec = (self.raw.get("spec") or {}).get("template") or {}
        tspec = dict(spec.get("spec") or {})
        tspec.pop("requirements", None)
        body = {"metadata": spec.get("metadata") or {}, "spec": tspec}
        return str(int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:15], 16))


def sort_pools(pools: list[Pool]) -> list[Pool]:
    """Highest weight first, then by name (the order Karpenter tries NodePools in)."""
    return sorted(pools, key=lambda p: (-p.weight, p.name))


# --------------------------------------------------------------------------- EKS Auto Mode built-ins

AUTO_DEFAULT_NODECLASS = "default"
CRITICAL_ADDONS_TAINT = {"key": "CriticalAddonsOnly", "effect": "NoSchedule"}


def _auto_requirements(arches: list[str]) -> list[dict[str, Any]]:
    return [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        {"key": "eks.amazonaws.com/instance-category", "operator": "In", "values": ["c", "m", "r"]},
        {"key": "eks.amazonaws.com/instance-generation", "operator": "Gt", "values": ["4"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": arches},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]


def builtin_nodepools() -> list[dict[str, Any]]:
    """EKS Auto Mode's ``general-purpose`` and ``system`` NodePools, as a new Auto Mode cluster has them."""
    managed = {"app.kubernetes.io/managed-by": "eks"}

    def pool(name: str, arches: list[str], taints: list[dict[str, Any]] | None) -> dict[str, Any]:
        tspec: dict[str, Any] = {
            "expireAfter": "336h",
            "nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": AUTO_DEFAULT_NODECLASS},
            "requirements": _auto_requirements(arches),
            "terminationGracePeriod": "24h0m0s",
        }
        if taints:
            tspec["taints"] = taints
        return {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": name, "labels": dict(managed)},
            "spec": {
                "disruption": {
                    "budgets": [{"nodes": "10%"}],
                    "consolidateAfter": "30s",
                    "consolidationPolicy": "WhenEmptyOrUnderutilized",
                },
                "template": {"metadata": {}, "spec": tspec},
            },
        }

    return [
        pool("general-purpose", ["amd64"], None),
        pool("system", ["amd64", "arm64"], [dict(CRITICAL_ADDONS_TAINT)]),
    ]


def default_nodeclass(cluster_name: str = "labkit") -> dict[str, Any]:
    """EKS Auto Mode's built-in ``default`` NodeClass (Bottlerocket-based, 80 GiB ephemeral storage)."""
    return {
        "apiVersion": "eks.amazonaws.com/v1",
        "kind": "NodeClass",
        "metadata": {"name": AUTO_DEFAULT_NODECLASS, "labels": {"app.kubernetes.io/managed-by": "eks"}},
        "spec": {
            "role": f"{cluster_name}-auto-node-role",
            "ephemeralStorage": {"iops": 3000, "size": "80Gi", "throughput": 125},
            "networkPolicy": "DefaultAllow",
            "networkPolicyEventLogs": "Disabled",
            "snatPolicy": "Random",
            "securityGroupSelectorTerms": [{"id": "sg-0" + hashlib.sha256(cluster_name.encode()).hexdigest()[:16]}],
            "subnetSelectorTerms": [{"tags": {"kubernetes.io/role/internal-elb": "1"}}],
        },
    }
