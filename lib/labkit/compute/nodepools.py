"""GPU node pool manifests for Karpenter (``standard`` profile) and EKS Auto Mode (``auto``).

Pure builders: a :class:`GpuPool` describes what a platform team allows (GPU families,
counts, memory, capacity types, a GPU limit as the cost cap, disruption rules) and
the functions here turn it into a ``karpenter.sh/v1`` NodePool plus its node class:
an ``EC2NodeClass`` (``karpenter.k8s.aws/v1``) on Karpenter, a ``NodeClass``
(``eks.amazonaws.com/v1``) on Auto Mode. Nothing is sent anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.errors import ConfigError

CAPACITY_TYPES = ("reserved", "spot", "on-demand")
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "g7e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200")
AMIS = {"al2023": "al2023@latest", "bottlerocket": "bottlerocket@latest"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
POOL_LABEL = "labkit.dev/pool"

# Label keys per profile: Karpenter's well-known labels, or EKS Auto Mode's equivalents.
_KEYS = {
    "standard": {
        "family": "karpenter.k8s.aws/instance-family",
        "gpu_count": "karpenter.k8s.aws/instance-gpu-count",
        "gpu_memory": "karpenter.k8s.aws/instance-gpu-memory",
        "gpu_name": "karpenter.k8s.aws/instance-gpu-name",
        "gpu_manufacturer": "karpenter.k8s.aws/instance-gpu-manufacturer",
    },
    "auto": {
        "family": "eks.amazonaws.com/instance-family",
        "gpu_count": "eks.amazonaws.com/instance-gpu-count",
        "gpu_memory": "eks.amazonaws.com/instance-gpu-memory",
        "gpu_name": "eks.amazonaws.com/instance-gpu-name",
        "gpu_manufacturer": "eks.amazonaws.com/instance-gpu-manufacturer",
    },
}


def _business_hours_freeze() -> list[dict[str, Any]]:
    # Empty nodes may always go (reason Empty); during working hours nothing is consolidated away
    # for being underutilised or drifted, so serving nodes are not disrupted mid-traffic.
    return [
        {"nodes": "1"},
        {"nodes": "0", "reasons": ["Underutilized", "Drifted"], "schedule": "0 8 * * mon-fri", "duration": "10h"},
    ]


@dataclass(frozen=True)
class GpuPool:
    """What a GPU node pool may launch and how it may be disrupted.

    Attributes:
        name: NodePool (and node class) name.
        families: instance families allowed, e.g. ``("g6", "g6e")``.
        gpu_counts: GPUs per instance allowed, e.g. ``(1, 4)``; ``None`` allows any.
        min_gpu_memory_gib: smallest GPU memory per GPU; ``None`` allows any.
        gpu_names: GPU models allowed (``l4``, ``a10g``, ``l40s``, ``h100`` ...); ``None`` allows any.
        capacity_types: any of ``reserved``, ``spot``, ``on-demand``.
        gpu_limit: most GPUs the pool may run at once: the cost cap.
        zones: availability zones allowed; ``None`` allows all the node class reaches.
        ami: ``al2023`` (NVIDIA variant chosen by Karpenter) or ``bottlerocket``.
        root_volume_gib: root volume size; model server images are 5-10 GB, weights more.
        consolidation_policy: ``WhenEmpty`` (safest for serving) or ``WhenEmptyOrUnderutilized``.
        consolidate_after: how long a node must be empty/underutilised before removal.
        budgets: disruption budgets; default freezes non-empty disruption in working hours.
        expire_after: node lifetime before replacement (``Never`` to disable).
        weight: priority among pools (higher is tried first).
    """

    name: str = "gpu"
    families: tuple[str, ...] = ("g6", "g6e", "g5")
    gpu_counts: tuple[int, ...] | None = None
    min_gpu_memory_gib: int | None = None
    gpu_names: tuple[str, ...] | None = None
    capacity_types: tuple[str, ...] = ("on-demand",)
    gpu_limit: int = 4
    zones: tuple[str, ...] | None = None
    ami: str = "al2023"
    root_volume_gib: int = 200
    consolidation_policy: str = "WhenEmpty"
    consolidate_after: str = "10m"
    budgets: tuple[dict[str, Any], ...] = field(default_factory=lambda: tuple(_business_hours_freeze()))
    expire_after: str = "720h"
    weight: int | None = None

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in GPU_FAMILIES]
        if not self.families or unknown:
            raise ConfigError(
                f"GPU pool '{self.name}': unknown instance families {unknown or '(none)'}",
                f"choose from {', '.join(GPU_FAMILIES)}",
            )
        bad = [c for c in self.capacity_types if c not in CAPACITY_TYPES]
        if not self.capacity_types or bad:
            raise ConfigError(
                f"GPU pool '{self.name}': unknown capacity types {bad or '(none)'}",
                f"use any of {', '.join(CAPACITY_TYPES)}",
            )
        if self.gpu_limit < 1:
            raise ConfigError(
                f"GPU pool '{self.name}': gpu_limit must be at least 1",
                "the limit is the pool's cost cap: set the most GPUs you are willing to pay for",
            )
        if self.ami not in AMIS:
            raise ConfigError(f"GPU pool '{self.name}': unknown AMI '{self.ami}'", "use 'al2023' or 'bottlerocket'")
        if self.consolidation_policy not in ("WhenEmpty", "WhenEmptyOrUnderutilized"):
            raise ConfigError(
                f"GPU pool '{self.name}': unknown consolidation policy '{self.consolidation_policy}'",
                "use 'WhenEmpty' or 'WhenEmptyOrUnderutilized'",
            )
        if self.gpu_counts is not None and any(c < 1 for c in self.gpu_counts):
            raise ConfigError(f"GPU pool '{self.name}': GPU counts must be positive", "e.g. gpu_counts=(1, 4)")


def requirements(pool: GpuPool, profile: str) -> list[dict[str, Any]]:
    """The NodePool requirements for ``pool`` with the label keys of ``profile``."""
    keys = _KEYS[profile]
    reqs: list[dict[str, Any]] = [
        {"key": keys["family"], "operator": "In", "values": list(pool.families)},
        {"key": keys["gpu_manufacturer"], "operator": "In", "values": ["nvidia"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(pool.capacity_types)},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]
    if pool.gpu_counts:
        reqs.append({"key": keys["gpu_count"], "operator": "In", "values": [str(c) for c in sorted(pool.gpu_counts)]})
    if pool.min_gpu_memory_gib:
        # Gt is strict and the label is in MiB.
        reqs.append({"key": keys["gpu_memory"], "operator": "Gt", "values": [str(pool.min_gpu_memory_gib * 1024 - 1)]})
    if pool.gpu_names:
        reqs.append({"key": keys["gpu_name"], "operator": "In", "values": [n.lower() for n in pool.gpu_names]})
    if pool.zones:
        reqs.append({"key": "topology.kubernetes.io/zone", "operator": "In", "values": list(pool.zones)})
    return reqs


def nodepool(pool: GpuPool, profile: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``karpenter.sh/v1`` NodePool for ``pool`` on ``profile`` (``standard`` or ``auto``)."""
    if profile not in _KEYS:
        raise ConfigError(f"unknown cluster profile '{profile}'", "use 'auto' or 'standard'")
    node_class = (
        {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name}
        if profile == "standard"
        else {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": pool.name}
    )
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": {POOL_LABEL: pool.name, **(labels or {})}},
            "spec": {
                "nodeClassRef": node_class,
                "requirements": requirements(pool, profile),
                "taints": [dict(GPU_TAINT)],
                "expireAfter": pool.expire_after,
            },
        },
        "limits": {"nvidia.com/gpu": str(pool.gpu_limit)},
        "disruption": {
            "consolidationPolicy": pool.consolidation_policy,
            "consolidateAfter": pool.consolidate_after,
            "budgets": [dict(b) for b in pool.budgets],
        },
    }
    if pool.weight is not None:
        spec["weight"] = pool.weight
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool.name, "labels": {POOL_LABEL: pool.name}},
        "spec": spec,
    }


def ec2_nodeclass(pool: GpuPool, *, cluster_name: str, node_role: str, tags: dict[str, str]) -> dict[str, Any]:
    """The ``EC2NodeClass`` a Karpenter GPU pool launches with (subnets and security groups by discovery tag)."""
    discovery = {"karpenter.sh/discovery": cluster_name}
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": pool.name, "labels": {POOL_LABEL: pool.name}},
        "spec": {
            "role": node_role,
            "amiSelectorTerms": [{"alias": AMIS[pool.ami]}],
            "subnetSelectorTerms": [{"tags": discovery}],
            "securityGroupSelectorTerms": [{"tags": discovery}],
            "blockDeviceMappings": _block_devices(pool),
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            "tags": dict(tags),
        },
    }


def _block_devices(pool: GpuPool) -> list[dict[str, Any]]:
    def ebs(gib: int) -> dict[str, Any]:
        return {
            "volumeSize": f"{gib}Gi",
            "volumeType": "gp3",
            "iops": 3000,
            "throughput": 250,
            "encrypted": True,
            "deleteOnTermination": True,
        }

    if pool.ami == "al2023":
        return [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": ebs(pool.root_volume_gib)}]
    # Bottlerocket: a small OS volume, and a data volume that holds images and ephemeral storage.
    return [{"deviceName": "/dev/xvda", "ebs": ebs(4)}, {"deviceName": "/dev/xvdb", "ebs": ebs(pool.root_volume_gib)}]


def auto_mode_nodeclass(pool: GpuPool, *, cluster_name: str, node_role: str, tags: dict[str, str]) -> dict[str, Any]:
    """The EKS Auto Mode ``NodeClass`` for a GPU pool: larger ephemeral storage for model images."""
    return {
        "apiVersion": "eks.amazonaws.com/v1",
        "kind": "NodeClass",
        "metadata": {"name": pool.name, "labels": {POOL_LABEL: pool.name}},
        "spec": {
            "role": node_role,
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster_name}}],
            "securityGroupSelectorTerms": [{"tags": {"aws:eks:cluster-name": cluster_name}}],
            "ephemeralStorage": {"size": f"{pool.root_volume_gib}Gi", "iops": 3000, "throughput": 250},
            "tags": dict(tags),
        },
    }


def gpu_pool_manifests(
    pool: GpuPool, profile: str, *, cluster_name: str, node_role: str, tags: dict[str, str]
) -> list[dict[str, Any]]:
    """Node class then NodePool for ``profile``, in apply order."""
    build = ec2_nodeclass if profile == "standard" else auto_mode_nodeclass
    return [build(pool, cluster_name=cluster_name, node_role=node_role, tags=tags), nodepool(pool, profile)]
