"""The objects the embedded Karpenter writes: NodeClaims, their Nodes, status conditions and node class status.

Pure builders (no store, no clock): the controller passes the time in. Shapes follow Karpenter v1:
a NodeClaim named ``<nodepool>-<suffix>`` owned by its NodePool, with the ``karpenter.sh/termination``
finalizer, the pool's template labels, taints and ``nodeClassRef``, and requirements narrowed to the
instance types it may launch; at launch it gets the instance's labels, ``providerID``, ``imageID``,
capacity and allocatable; the Node carries the same labels plus ``karpenter.sh/registered`` and
``karpenter.sh/initialized``, the pool's taints, and an ownerReference to its NodeClaim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from .. import nodes
from ..controllers.common import parse_rfc3339, rfc3339
from .catalog import InstanceInfo, Offering
from .nodepool import HASH_ANNOTATION, HASH_VERSION, HASH_VERSION_ANNOTATION, Pool
from .provisioner import PROVIDER_PREFIX, ClaimPlan
from .requirements import (
    ARCH_LABEL,
    CAPACITY_TYPE_LABEL,
    COMPUTE_TYPE_LABEL,
    INSTANCE_TYPE_LABEL,
    OS_LABEL,
    REGION_LABEL,
    ZONE_LABEL,
    Requirement,
)

API_VERSION = "karpenter.sh/v1"
TERMINATION_FINALIZER = "karpenter.sh/termination"
REGISTERED_LABEL = "karpenter.sh/registered"
INITIALIZED_LABEL = "karpenter.sh/initialized"
NODECLAIM_CONDITIONS = ("Launched", "Registered", "Initialized", "Ready")
DISRUPTED_TAINT_KEY = "karpenter.sh/disrupted"
#: Image names that identify the NVIDIA device plugin.
DEVICE_PLUGIN_MARKERS = ("k8s-device-plugin", "nvidia-device-plugin")


# --------------------------------------------------------------------------- conditions


def condition(
    kind: str, status: str, now: float, reason: str = "", message: str = "", *, generation: int = 1
) -> dict[str, Any]:
    """A status condition as Karpenter writes it (reason defaults to the type when True)."""
    if not reason:
        reason = kind if status == "True" else "AwaitingReconciliation"
    if status == "Unknown" and not message:
        message = "object is awaiting reconciliation"
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now),
        "observedGeneration": generation,
    }


def get_condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def is_true(obj: Mapping[str, Any], kind: str) -> bool:
    c = get_condition(obj, kind)
    return c is not None and c.get("status") == "True"


def set_condition(status: dict[str, Any], new: dict[str, Any]) -> bool:
    """Set ``new`` in ``status.conditions``, keeping lastTransitionTime while the status holds; True if it changed."""
    conditions = list(status.get("conditions") or [])
    for i, old in enumerate(conditions):
        if old.get("type") != new["type"]:
            continue
        if old.get("status") == new["status"]:
            new = {**new, "lastTransitionTime": old.get("lastTransitionTime", new["lastTransitionTime"])}
        if all(old.get(k) == new.get(k) for k in ("status", "reason", "message", "observedGeneration")):
            return False
        conditions[i] = new
        status["conditions"] = conditions
        return True
    conditions.append(new)
    status["conditions"] = conditions
    return True


# --------------------------------------------------------------------------- NodeClaims


def nodeclaim(plan: ClaimPlan, name: str, nodepool: Mapping[str, Any]) -> dict[str, Any]:
    """A new NodeClaim for a planned claim (no status yet: the lifecycle controller launches it)."""
    pool = plan.pool
    reqs = plan.requirements.copy()
    reqs.add(Requirement.of(INSTANCE_TYPE_LABEL, "In", plan.instance_type_names()))
    tspec = ((nodepool.get("spec") or {}).get("template") or {}).get("spec") or {}
    meta = nodepool.get("metadata") or {}
    spec: dict[str, Any] = {
        "nodeClassRef": dict(pool.node_class_ref),
        "requirements": reqs.to_expressions(),
        "resources": {"requests": _quantities(plan.requests)},
        "expireAfter": str(tspec.get("expireAfter", "720h")),
    }
    if pool.taints:
        spec["taints"] = [dict(t) for t in pool.taints]
    if pool.startup_taints:
        spec["startupTaints"] = [dict(t) for t in pool.startup_taints]
    if tspec.get("terminationGracePeriod"):
        spec["terminationGracePeriod"] = tspec["terminationGracePeriod"]
    return {
        "apiVersion": API_VERSION,
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "generateName": f"{pool.name}-",
            "labels": dict(pool.labels),
            "annotations": {
                **dict(pool.annotations),
                HASH_ANNOTATION: pool.template_hash,
                HASH_VERSION_ANNOTATION: HASH_VERSION,
            },
            "finalizers": [TERMINATION_FINALIZER],
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "NodePool",
                    "name": meta.get("name", pool.name),
                    "uid": meta.get("uid", ""),
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _quantities(units: Mapping[str, int]) -> dict[str, str]:
    from .provisioner import format_quantity

    return {k: format_quantity(k, v) for k, v in sorted(units.items()) if v}


def instance_labels(info: InstanceInfo, offering: Offering, provider: str, node_class: str) -> dict[str, str]:
    """The labels a launched NodeClaim (and its Node) gets from its instance and offering."""
    prefix = PROVIDER_PREFIX[provider]
    labels = {
        INSTANCE_TYPE_LABEL: info.name,
        ZONE_LABEL: offering.zone,
        REGION_LABEL: offering.zone[:-1],
        CAPACITY_TYPE_LABEL: offering.capacity_type,
        ARCH_LABEL: info.arch,
        OS_LABEL: "linux",
        **info.labels(prefix),
    }
    if provider == "auto":
        labels[COMPUTE_TYPE_LABEL] = "auto"
        labels["eks.amazonaws.com/nodeclass"] = node_class
    else:
        labels["karpenter.k8s.aws/ec2nodeclass"] = node_class
    return labels


def instance_id(uid: str) -> str:
    """A stable fake EC2 instance id for a NodeClaim (``i-0`` plus 16 hex digits)."""
    return "i-0" + hashlib.sha256(f"instance/{uid}".encode()).hexdigest()[:16]


def image_id(ami_family: str, arch: str, gpu: bool, cluster: str) -> str:
    """A stable fake AMI id for an AMI family, architecture and GPU variant."""
    variant = f"{ami_family}/{arch}/{'nvidia' if gpu else 'standard'}/{cluster}"
    return "ami-0" + hashlib.sha256(variant.encode()).hexdigest()[:16]


def node_name(provider: str, region: str, uid: str) -> str:
    """The Node name: the instance id on Auto Mode, the private DNS name (``ip-192-168-...``) on Karpenter."""
    if provider == "auto":
        return instance_id(uid)
    digest = hashlib.sha256(f"ip/{uid}".encode()).digest()
    return f"ip-192-168-{64 + digest[0] % 128}-{2 + digest[1] % 250}.{region}.compute.internal"


def launched_status(
    info: InstanceInfo, offering: Offering, *, provider_id: str, image: str, now: float, disk_gib: int = 20
) -> dict[str, Any]:
    """Status fields a NodeClaim gets at launch (``Launched=True``); capacity as its node will report it."""
    capacity, allocatable = nodes.node_resources(info.shape(), disk_gib=disk_gib)
    status: dict[str, Any] = {
        "providerID": provider_id,
        "imageID": image,
        "capacity": dict(capacity),
        "allocatable": dict(allocatable),
    }
    for kind in NODECLAIM_CONDITIONS:
        set_condition(status, condition(kind, "True" if kind == "Launched" else "Unknown", now))
    return status


def node_for(
    claim: Mapping[str, Any],
    info: InstanceInfo,
    *,
    name: str,
    region: str,
    flavor: str,
    disk_gib: int,
    now: float,
    advertise_gpus: bool = True,
) -> dict[str, Any]:
    """The Node a launched NodeClaim registers as (Ready), owned by the NodeClaim.

    Args:
        claim: the launched NodeClaim.
        info: its instance type.
        name: node name (:func:`node_name`).
        region: the cluster's region.
        flavor: ``al2023`` or ``bottlerocket`` (the node's OS image).
        disk_gib: root (or data) volume size.
        now: simulated time.
        advertise_gpus: False on AL2023 nodes of the ``standard`` profile, whose NVIDIA device plugin is a
            DaemonSet: ``nvidia.com/gpu`` appears only once it runs.
    """
    meta = claim["metadata"]
    spec = claim.get("spec") or {}
    status = claim.get("status") or {}
    labels = {**(meta.get("labels") or {}), REGISTERED_LABEL: "true"}
    taints = [dict(t) for t in spec.get("taints") or []] + [dict(t) for t in spec.get("startupTaints") or []]
    node = nodes.make_node(
        name,
        info.name,
        labels[ZONE_LABEL],
        labels,
        taints or None,
        region=region,
        provider_id=status.get("providerID"),
        flavor=flavor,
        disk_gib=disk_gib,
        now=now,
    )
    if not advertise_gpus:
        for part in ("capacity", "allocatable"):
            node["status"][part].pop("nvidia.com/gpu", None)
    nmeta = node["metadata"]
    nmeta["annotations"].update(
        {k: v for k, v in (meta.get("annotations") or {}).items() if k in (HASH_ANNOTATION, HASH_VERSION_ANNOTATION)}
    )
    nmeta["finalizers"] = [TERMINATION_FINALIZER]
    nmeta["ownerReferences"] = [
        {
            "apiVersion": API_VERSION,
            "kind": "NodeClaim",
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "blockOwnerDeletion": True,
        }
    ]
    return node


def claim_for_node(node: Mapping[str, Any]) -> str | None:
    """The NodeClaim that owns a Node, if Karpenter launched it."""
    for ref in (node.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "NodeClaim" and str(ref.get("apiVersion", "")).startswith("karpenter.sh/"):
            return str(ref.get("name"))
    return None


# --------------------------------------------------------------------------- node classes


def ec2nodeclass_status(obj: Mapping[str, Any], *, region: str, cluster: str, now: float) -> dict[str, Any]:
    """Resolved status of an EC2NodeClass: AMIs, subnets, security groups, instance profile, conditions all Ready."""
    spec = obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name", "")
    family = ami_family(obj)
    amis = []
    for arch in ("amd64", "arm64"):
        for gpu in (False, True):
            if gpu and arch == "arm64":
                continue
            reqs = [{"key": ARCH_LABEL, "operator": "In", "values": [arch]}]
            if gpu:
                reqs.append({"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Exists"})
            amis.append(
                {
                    "id": image_id(family, arch, gpu, cluster),
                    "name": f"{family}-{arch}{'-nvidia' if gpu else ''}",
                    "requirements": reqs,
                }
            )
    status: dict[str, Any] = {
        "amis": amis,
        "subnets": [
            {
                "id": "subnet-0" + hashlib.sha256(f"{cluster}/{z}".encode()).hexdigest()[:16],
                "zone": f"{region}{z}",
                "zoneID": f"usw2-az{i + 1}",
            }
            for i, z in enumerate("abc")
        ],
        "securityGroups": [
            {"id": "sg-0" + hashlib.sha256(f"{cluster}/node".encode()).hexdigest()[:16], "name": f"{cluster}-node"}
        ],
        "instanceProfile": f"{cluster}_{hashlib.sha256(name.encode()).hexdigest()[:20]}",
    }
    if spec.get("role") is None and spec.get("instanceProfile") is None:
        status["conditions"] = [
            condition("Ready", "False", now, "InstanceProfileNotReady", "spec.role or spec.instanceProfile must be set")
        ]
        return status
    for kind in (
        "AMIsReady",
        "SubnetsReady",
        "SecurityGroupsReady",
        "InstanceProfileReady",
        "ValidationSucceeded",
        "Ready",
    ):
        set_condition(status, condition(kind, "True", now))
    return status


def auto_nodeclass_status(obj: Mapping[str, Any], *, region: str, cluster: str, now: float) -> dict[str, Any]:
    """Resolved status of an EKS Auto Mode NodeClass: subnets, security groups, conditions Ready."""
    status: dict[str, Any] = {
        "subnets": [
            {
                "id": "subnet-0" + hashlib.sha256(f"{cluster}/{z}".encode()).hexdigest()[:16],
                "zone": f"{region}{z}",
                "zoneID": f"usw2-az{i + 1}",
            }
            for i, z in enumerate("abc")
        ],
        "securityGroups": [
            {
                "id": "sg-0" + hashlib.sha256(f"{cluster}/auto".encode()).hexdigest()[:16],
                "name": f"eks-cluster-sg-{cluster}",
            }
        ],
        "instanceProfile": f"eks-{region}-{cluster}-{_short_hash(str((obj.get('metadata') or {}).get('name')))}",
    }
    for kind in ("SubnetsReady", "SecurityGroupsReady", "InstanceProfileReady", "ValidationSucceeded", "Ready"):
        set_condition(status, condition(kind, "True", now))
    return status


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def ami_family(nodeclass: Mapping[str, Any] | None) -> str:
    """``al2023`` or ``bottlerocket`` (Auto Mode NodeClasses are Bottlerocket-based)."""
    if nodeclass is None:
        return "al2023"
    if str(nodeclass.get("apiVersion", "")).startswith("eks.amazonaws.com/"):
        return "bottlerocket"
    spec = nodeclass.get("spec") or {}
    family = str(spec.get("amiFamily") or "").lower()
    for term in spec.get("amiSelectorTerms") or []:
        alias = str(term.get("alias") or "")
        if alias:
            family = alias.split("@", 1)[0].lower()
    return "bottlerocket" if family.startswith("bottlerocket") else "al2023"


def disk_gib(nodeclass: Mapping[str, Any] | None, provider: str) -> int:
    """Ephemeral storage size: the node class's root/data volume (default 20 GiB on Karpenter, 80 GiB on Auto Mode)."""
    default = 80 if provider == "auto" else 20
    if nodeclass is None:
        return default
    spec = nodeclass.get("spec") or {}
    size = (spec.get("ephemeralStorage") or {}).get("size")
    if size is None:
        mappings = spec.get("blockDeviceMappings") or []
        chosen = next((m for m in mappings if m.get("rootVolume")), mappings[-1] if mappings else None)
        size = ((chosen or {}).get("ebs") or {}).get("volumeSize")
    if size is None:
        return default
    text = str(size)
    for suffix, factor in (("Ti", 1024), ("Gi", 1), ("T", 1000), ("G", 1)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return default


def pool_of(claim: Mapping[str, Any]) -> str | None:
    return ((claim.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool")


def pool_hash_drifted(claim: Mapping[str, Any], pool: Pool) -> bool:
    """Whether the NodePool template changed since the NodeClaim was made (hash annotations differ)."""
    ann = (claim.get("metadata") or {}).get("annotations") or {}
    return ann.get(HASH_VERSION_ANNOTATION) == HASH_VERSION and ann.get(HASH_ANNOTATION) not in (
        None,
        pool.template_hash,
    )


# --------------------------------------------------------------------------- small predicates


def status_time(claim: Mapping[str, Any], field: str) -> float:
    """A timestamp of a NodeClaim's status (``lastPodEventTime``...) in epoch seconds; 0 when unset."""
    return parse_rfc3339((claim.get("status") or {}).get(field)) or 0.0


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """``Ready=True``."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def node_ready(node: Mapping[str, Any]) -> bool:
    """``Ready=True``."""
    return pod_ready(node)


def has_disrupted_taint(node: Mapping[str, Any]) -> bool:
    """Whether Karpenter has tainted the node ``karpenter.sh/disrupted`` (it is being drained)."""
    return any(t.get("key") == DISRUPTED_TAINT_KEY for t in (node.get("spec") or {}).get("taints") or [])


def is_device_plugin(pod: Mapping[str, Any]) -> bool:
    """Whether a pod runs the NVIDIA device plugin (by image)."""
    images = [c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []]
    return any(marker in image for image in images for marker in DEVICE_PLUGIN_MARKERS)
