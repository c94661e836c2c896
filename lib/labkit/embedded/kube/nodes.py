"""Simulated nodes: EC2-like instance shapes, complete Node objects, and the cluster profiles.

:func:`make_node` builds a Node as a real kubelet registers it: capacity and allocatable
(with EKS's kube-reserved and eviction arithmetic), the five conditions, addresses, every
``nodeInfo`` field, ``daemonEndpoints`` and the well-known labels. :func:`profile_nodes` gives
the starting nodes of each profile:

- ``kind``: one control-plane node tainted ``node-role.kubernetes.io/control-plane:NoSchedule``
  plus two workers, as ``kind create cluster`` with two workers makes;
- ``eks-standard``: a managed node group ``system`` of two ``m6i.large`` nodes over two zones;
- ``eks-auto``: no nodes at all until a workload asks (the compute issue adds provisioning).
"""

from __future__ import annotations

import hashlib
import ipaddress
import platform
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import ConfigError

from .controllers.common import rfc3339
from .discovery import KUBE_MAJOR, KUBE_MINOR, KUBE_PATCH

KUBELET_VERSION = f"v{KUBE_MAJOR}.{KUBE_MINOR}.{KUBE_PATCH}"
EKS_KUBELET_VERSION = f"{KUBELET_VERSION}-eks-b9364f6"

PROFILES = ("kind", "eks-standard", "eks-auto")
#: Other spellings accepted for the profiles (the settings say ``auto``/``standard``).
PROFILE_ALIASES = {"auto": "eks-auto", "standard": "eks-standard", "eks": "eks-standard"}

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class InstanceShape:
    """What a node of one instance type offers.

    Attributes:
        name: instance type, e.g. ``m6i.large``.
        vcpu: virtual CPUs.
        memory_mib: memory in MiB (as EC2 advertises it).
        max_pods: the VPC CNI pod limit for the type (``eni-max-pods``).
        gpus: NVIDIA GPUs.
        gpu_name: Karpenter's ``instance-gpu-name`` label value (``a10g``, ``l4``...).
        gpu_memory_mib: memory of one GPU.
        arch: ``amd64`` or ``arm64``.
    """

    name: str
    vcpu: int
    memory_mib: int
    max_pods: int
    gpus: int = 0
    gpu_name: str = ""
    gpu_memory_mib: int = 0
    arch: str = "amd64"

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


def _shape(name: str, vcpu: int, memory_gib: float, max_pods: int, arch: str = "amd64") -> InstanceShape:
    return InstanceShape(name, vcpu, int(memory_gib * 1024), max_pods, arch=arch)


#: General-purpose shapes the labs use (GPU shapes come from the planner's catalog).
INSTANCE_SHAPES: dict[str, InstanceShape] = {
    s.name: s
    for s in (
        _shape("t3.medium", 2, 4, 17),
        _shape("t3.large", 2, 8, 35),
        _shape("t3.xlarge", 4, 16, 58),
        _shape("m5.large", 2, 8, 29),
        _shape("m5.xlarge", 4, 16, 58),
        _shape("m5.2xlarge", 8, 32, 58),
        _shape("m6i.large", 2, 8, 29),
        _shape("m6i.xlarge", 4, 16, 58),
        _shape("m6i.2xlarge", 8, 32, 58),
        _shape("m6i.4xlarge", 16, 64, 234),
        _shape("m7i.large", 2, 8, 29),
        _shape("m7i.xlarge", 4, 16, 58),
        _shape("m7g.large", 2, 8, 29, "arm64"),
        _shape("m7g.xlarge", 4, 16, 58, "arm64"),
        _shape("c6i.large", 2, 4, 29),
        _shape("c6i.xlarge", 4, 8, 58),
        _shape("c6i.2xlarge", 8, 16, 58),
        _shape("c7i.xlarge", 4, 8, 58),
        _shape("r6i.large", 2, 16, 29),
        _shape("r6i.xlarge", 4, 32, 58),
    )
}

_GPU_MAX_PODS = {"xlarge": 58, "2xlarge": 58, "4xlarge": 234, "8xlarge": 234, "12xlarge": 234, "16xlarge": 737}

# GPU name label and memory (MiB, as nvidia-smi reports it) per family.
_GPU_FAMILIES = {
    "g4dn": ("t4", 15360),
    "g5": ("a10g", 23028),
    "g6": ("l4", 23034),
    "g6e": ("l40s", 46068),
    "p4d": ("a100", 40960),
    "p5": ("h100", 81559),
}


def _gpu_shape(name: str, vcpu: int, memory_gib: float, gpus: int) -> InstanceShape:
    family, size = name.split(".", 1)
    label, gpu_mib = _GPU_FAMILIES[family]
    return InstanceShape(name, vcpu, int(memory_gib * 1024), _GPU_MAX_PODS.get(size, 737), gpus, label, gpu_mib)


#: The GPU shapes the labs use most; others come from the planner's catalog.
GPU_SHAPES: dict[str, InstanceShape] = {
    s.name: s
    for s in (
        _gpu_shape("g4dn.xlarge", 4, 16, 1),
        _gpu_shape("g5.xlarge", 4, 16, 1),
        _gpu_shape("g5.2xlarge", 8, 32, 1),
        _gpu_shape("g5.4xlarge", 16, 64, 1),
        _gpu_shape("g5.12xlarge", 48, 192, 4),
        _gpu_shape("g5.48xlarge", 192, 768, 8),
        _gpu_shape("g6.xlarge", 4, 16, 1),
        _gpu_shape("g6.2xlarge", 8, 32, 1),
        _gpu_shape("g6.4xlarge", 16, 64, 1),
        _gpu_shape("g6.12xlarge", 48, 192, 4),
        _gpu_shape("g6e.xlarge", 4, 32, 1),
        _gpu_shape("g6e.2xlarge", 8, 64, 1),
        _gpu_shape("g6e.12xlarge", 48, 384, 4),
        _gpu_shape("p4d.24xlarge", 96, 1152, 8),
        _gpu_shape("p5.48xlarge", 192, 2048, 8),
    )
}


def instance_shape(instance_type: str) -> InstanceShape:
    """The shape of ``instance_type``; GPU types come from :mod:`labkit.planner.catalog`.

    Raises:
        ConfigError: the type is unknown to both tables.
    """
    key = instance_type.strip().lower()
    if key in INSTANCE_SHAPES:
        return INSTANCE_SHAPES[key]
    if key in GPU_SHAPES:
        return GPU_SHAPES[key]
    try:
        from labkit.planner.catalog import get_instance_type

        it = get_instance_type(key)
        gpu = it.gpu_spec
    except (ImportError, ConfigError):
        raise ConfigError(
            f"unknown instance type {instance_type!r} for a simulated node",
            f"use one of {', '.join(sorted(INSTANCE_SHAPES))} or a GPU type from the planner catalog",
        ) from None
    size = key.split(".", 1)[1] if "." in key else ""
    return InstanceShape(
        key,
        it.vcpu,
        int(it.memory_gib * 1024),
        _GPU_MAX_PODS.get(size, 737),
        gpus=it.gpu_count,
        gpu_name=gpu.label,
        gpu_memory_mib=gpu.memory_mib,
    )


# --------------------------------------------------------------------------- allocatable


def eks_kube_reserved_cpu_milli(vcpu: int) -> int:
    """EKS AMIs' kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% above."""
    milli = 0.0
    for core in range(vcpu):
        milli += 1000 * (0.06 if core == 0 else 0.01 if core == 1 else 0.005 if core < 4 else 0.0025)
    return round(milli)


def eks_kube_reserved_memory_mib(max_pods: int) -> int:
    """EKS AMIs' kube-reserved memory: 255 MiB plus 11 MiB per pod the node may run."""
    return 255 + 11 * max_pods


def node_resources(
    shape: InstanceShape, *, disk_gib: int = 20, reserve: bool = True, max_pods: int | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """``(capacity, allocatable)`` as the kubelet reports them for a node of ``shape``.

    Memory capacity is what the kernel leaves (about 96% of the advertised size); allocatable
    subtracts kube-reserved and the 100 MiB hard eviction threshold; ephemeral storage keeps 90%
    minus 1 GiB kube-reserved. ``reserve=False`` reports everything as allocatable (kind).
    """
    pods = max_pods or shape.max_pods
    mem = int(shape.memory_mib * MIB * 0.963) // 1024 * 1024
    disk = disk_gib * GIB - 51 * MIB
    capacity = {
        "cpu": str(shape.vcpu),
        "ephemeral-storage": f"{disk // 1024}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{mem // 1024}Ki",
        "pods": str(pods),
    }
    if shape.gpus:
        capacity["nvidia.com/gpu"] = str(shape.gpus)
    if not reserve:
        return capacity, dict(capacity)
    cpu_milli = shape.vcpu * 1000 - eks_kube_reserved_cpu_milli(shape.vcpu)
    mem_alloc = mem - (eks_kube_reserved_memory_mib(pods) + 100) * MIB
    allocatable = dict(capacity)
    allocatable["cpu"] = f"{cpu_milli}m"
    allocatable["memory"] = f"{mem_alloc // 1024}Ki"
    allocatable["ephemeral-storage"] = str(int(disk * 0.9) - GIB)
    return capacity, allocatable


# --------------------------------------------------------------------------- node objects


def _ids(name: str) -> tuple[str, str, str]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    machine_id = digest[:32]
    system_uuid = str(uuid.UUID(digest[32:64]))
    boot_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, name + "/boot"))
    return machine_id, system_uuid, boot_id


def _node_info(name: str, flavor: str, arch: str) -> dict[str, str]:
    machine_id, system_uuid, boot_id = _ids(name)
    if flavor == "kind":
        os_image, kernel = "Debian GNU/Linux 12 (bookworm)", platform.release() or "6.8.0-generic"
        runtime, kubelet = "containerd://2.1.1", KUBELET_VERSION
    elif flavor == "bottlerocket":
        os_image = f"Bottlerocket (EKS Auto, Standard) 2025.6.4 (aws-k8s-{KUBE_MAJOR}.{KUBE_MINOR}-standard)"
        kernel, runtime, kubelet = "6.12.30", "containerd://1.7.27+bottlerocket", EKS_KUBELET_VERSION
    else:
        suffix = "aarch64" if arch == "arm64" else "x86_64"
        os_image, kernel = "Amazon Linux 2023.7.20250609", f"6.1.140-154.222.amzn2023.{suffix}"
        runtime, kubelet = "containerd://1.7.27", EKS_KUBELET_VERSION
    return {
        "architecture": arch,
        "bootID": boot_id,
        "containerRuntimeVersion": runtime,
        "kernelVersion": kernel,
        "kubeProxyVersion": "",
        "kubeletVersion": kubelet,
        "machineID": machine_id,
        "operatingSystem": "linux",
        "osImage": os_image,
        "systemUUID": system_uuid,
    }


def node_conditions(now: float, *, ready: bool = True) -> list[dict[str, Any]]:
    """The five node conditions of a healthy (or not ready) node."""
    t = rfc3339(now)

    def cond(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": t,
            "lastTransitionTime": t,
        }

    return [
        cond("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route"),
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready
        else cond("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
    ]


def make_node(  # noqa: PLR0917 - the signature the Karpenter simulation codes against
    name: str,
    instance_type: str,
    zone: str,
    labels: Mapping[str, str] | None = None,
    taints: list[Mapping[str, Any]] | None = None,
    capacity: Mapping[str, str] | None = None,
    *,
    region: str | None = None,
    internal_ip: str | None = None,
    provider_id: str | None = None,
    pod_cidr: str | None = None,
    flavor: str = "al2023",
    disk_gib: int = 20,
    now: float | None = None,
) -> dict[str, Any]:
    """A complete Node object as a kubelet of ``instance_type`` in ``zone`` registers it.

    Args:
        name: node name (``ip-192-168-12-34.us-west-2.compute.internal``, ``i-0abc...`` on Auto Mode).
        instance_type: EC2 type (see :func:`instance_shape`), or ``kind`` for a kind container.
        zone: availability zone, e.g. ``us-west-2a``.
        labels: extra labels (node group, node pool...); they win over the well-known ones.
        taints: ``spec.taints``.
        capacity: overrides of capacity entries (allocatable follows with the same reservations).
        region: defaults to the zone without its letter.
        internal_ip: the node's address; derived from the name when not given.
        provider_id: ``spec.providerID``; defaults to ``aws:///<zone>/<instance id>``.
        pod_cidr: ``spec.podCIDR`` (kind assigns one per node; the VPC CNI does not).
        flavor: ``al2023``, ``bottlerocket`` (Auto Mode) or ``kind``: decides ``nodeInfo``.
        disk_gib: root volume size (ephemeral storage).
        now: simulated epoch seconds for condition times (defaults to the wall clock).
    """
    now = time.time() if now is None else now
    region = region or zone.rstrip("abcdefghijklmnopqrstuvwxyz")
    if instance_type == "kind":
        shape = InstanceShape("kind", 8, 16 * 1024, 110)
        cap, alloc = node_resources(shape, disk_gib=disk_gib, reserve=False)
    else:
        shape = instance_shape(instance_type)
        cap, alloc = node_resources(shape, disk_gib=disk_gib)
    if capacity:
        for k, v in capacity.items():
            cap[k] = str(v)
            alloc[k] = str(v)
    ip = internal_ip or _ip_from_name(name)
    well_known: dict[str, str] = {
        "beta.kubernetes.io/arch": shape.arch,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": shape.arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if instance_type != "kind":
        well_known.update(
            {
                "beta.kubernetes.io/instance-type": instance_type,
                "node.kubernetes.io/instance-type": instance_type,
                "failure-domain.beta.kubernetes.io/region": region,
                "failure-domain.beta.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": zone,
                "topology.k8s.aws/zone-id": _zone_id(zone),
            }
        )
        if shape.gpus:
            well_known["nvidia.com/gpu.present"] = "true"
    addresses = [{"type": "InternalIP", "address": ip}]
    if instance_type == "kind":
        addresses.append({"type": "Hostname", "address": name})
        provider = provider_id or f"kind://docker/labkit/{name}"
    else:
        dns = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
        addresses += [{"type": "InternalDNS", "address": dns}, {"type": "Hostname", "address": dns}]
        provider = provider_id or f"aws:///{zone}/{instance_id(name)}"
    spec: dict[str, Any] = {"providerID": provider}
    if pod_cidr:
        spec["podCIDR"] = pod_cidr
        spec["podCIDRs"] = [pod_cidr]
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {**well_known, **dict(labels or {})},
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": ip,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "capacity": cap,
            "allocatable": alloc,
            "conditions": node_conditions(now),
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": _node_info(name, "kind" if instance_type == "kind" else flavor, shape.arch),
            "images": [],
            "runtimeHandlers": [
                {"name": "runc", "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}},
                {"name": "", "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}},
            ],
            "features": {"supplementalGroupsPolicy": True},
            "config": {},
        },
    }


def instance_id(name: str) -> str:
    """A stable fake EC2 instance id for a node name (``i-`` plus 17 hex digits)."""
    return "i-0" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _zone_id(zone: str) -> str:
    region, letter = zone[:-1], zone[-1:]
    parts = region.split("-")
    short = parts[0] + "".join(p[0] for p in parts[1:-1]) + parts[-1] if len(parts) > 2 else region
    index = "abcdef".find(letter) + 1
    return f"{short}-az{max(index, 1)}"


def _ip_from_name(name: str) -> str:
    if name.startswith("ip-"):
        parts = name[3:].split(".", 1)[0].split("-")
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            return ".".join(parts)
    digest = hashlib.sha256(name.encode()).digest()
    return f"192.168.{64 + digest[0] % 128}.{2 + digest[1] % 250}"


def node_pool_label(node: Mapping[str, Any]) -> str | None:
    """The node group / node pool a node belongs to, from its labels."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key in ("karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup"):
        if key in labels:
            return labels[key]
    return None


# --------------------------------------------------------------------------- image pulls

#: Effective image pull throughput (bytes per second, download plus unpack) by node kind.
PULL_BYTES_PER_SECOND = {"kind": 40e6, "gpu": 125e6, "default": 80e6}


def pull_bandwidth(node: Mapping[str, Any] | None) -> float:
    """How fast a node pulls images: a kind container, a GPU instance or another EC2 instance."""
    if node is None:
        return PULL_BYTES_PER_SECOND["default"]
    labels = (node.get("metadata") or {}).get("labels") or {}
    provider = (node.get("spec") or {}).get("providerID") or ""
    if provider.startswith("kind://"):
        return PULL_BYTES_PER_SECOND["kind"]
    itype = labels.get("node.kubernetes.io/instance-type", "")
    if itype.split(".", 1)[0] in ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p4de", "p5", "p5e", "p5en"):
        return PULL_BYTES_PER_SECOND["gpu"]
    return PULL_BYTES_PER_SECOND["default"]


# --------------------------------------------------------------------------- profiles


def normalize_profile(profile: str) -> str:
    """The canonical profile name.

    Raises:
        ConfigError: not a known profile.
    """
    name = PROFILE_ALIASES.get(profile, profile)
    if name not in PROFILES:
        raise ConfigError(f"unknown cluster profile {profile!r}", f"use one of {', '.join(PROFILES)}")
    return name


def profile_nodes(
    profile: str, *, cluster_name: str = "labkit", region: str = "us-west-2", now: float | None = None
) -> list[dict[str, Any]]:
    """The nodes a fresh cluster of ``profile`` starts with."""
    profile = normalize_profile(profile)
    if profile == "kind":
        return _kind_nodes(cluster_name, now)
    if profile == "eks-standard":
        return _managed_node_group(cluster_name, region, now)
    return []


def _kind_nodes(cluster: str, now: float | None) -> list[dict[str, Any]]:
    names = [f"{cluster}-control-plane", f"{cluster}-worker", f"{cluster}-worker2"]
    out = []
    for i, name in enumerate(names):
        labels = {}
        taints = None
        if i == 0:
            labels = {
                "node-role.kubernetes.io/control-plane": "",
                "node.kubernetes.io/exclude-from-external-load-balancers": "",
            }
            taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        out.append(
            make_node(
                name,
                "kind",
                "kind",
                labels,
                taints,
                internal_ip=f"172.18.0.{i + 2}",
                pod_cidr=f"10.244.{i}.0/24",
                disk_gib=100,
                now=now,
            )
        )
    return out


def _managed_node_group(cluster: str, region: str, now: float | None) -> list[dict[str, Any]]:
    return managed_nodegroup_nodes(cluster, region, "system", "m6i.large", 2, now=now)


def managed_nodegroup_nodes(
    cluster: str,
    region: str,
    nodegroup: str,
    instance_type: str,
    count: int,
    *,
    labels: Mapping[str, str] | None = None,
    taints: list[Mapping[str, Any]] | None = None,
    capacity_type: str = "ON_DEMAND",
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The nodes of an EKS managed node group: spread over two zones, named and labelled as EKS does."""
    out = []
    digest = hashlib.sha256(f"{cluster}/{nodegroup}".encode()).hexdigest()
    ami = "ami-0" + digest[:16]
    template = "lt-0" + digest[16:32]
    subnets = [ipaddress.ip_network("192.168.96.0/19"), ipaddress.ip_network("192.168.128.0/19")]
    for i in range(count):
        zone = f"{region}{'ab'[i % 2]}"
        offset = int(hashlib.sha256(f"{digest}/{i}".encode()).hexdigest()[:6], 16) % 8000
        ip = str(subnets[i % 2].network_address + 20 + offset)
        name = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
        node_labels = {
            "eks.amazonaws.com/capacityType": capacity_type,
            "eks.amazonaws.com/nodegroup": nodegroup,
            "eks.amazonaws.com/nodegroup-image": ami,
            "eks.amazonaws.com/sourceLaunchTemplateId": template,
            "eks.amazonaws.com/sourceLaunchTemplateVersion": "1",
            "k8s.io/cloud-provider-aws": digest[:32],
            **(labels or {}),
        }
        out.append(make_node(name, instance_type, zone, node_labels, list(taints or []), internal_ip=ip, now=now))
    return out
