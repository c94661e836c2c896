"""What the embedded Karpenter may launch: instance types and their offerings (type x zone x capacity type).

The planner's catalog (:mod:`labkit.planner.catalog`) is the single source of instance shapes and
prices: its GPU types and its CPU-only types, both with us-east-1 on-demand prices from one dated
table. Node shapes (allocatable after kube-reserved) come from :mod:`..nodes`, so a pod Karpenter
plans onto a type fits the Node that is then registered.

Spot prices are modelled as on-demand times the family's typical spot discount from the same catalog
(:func:`labkit.planner.catalog.spot_ratio`, the ratio the embedded AWS's spot price history also uses)
times a small fixed skew per zone (:data:`ZONE_SPOT_SKEW`), so spot offerings differ by zone the way
real ones do while staying deterministic.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from labkit.errors import ConfigError
from labkit.planner import catalog as planner

from .. import nodes
from ..scheduler import resource_list

CAPACITY_TYPES = ("reserved", "spot", "on-demand")
DEFAULT_REGION = "us-west-2"
DEFAULT_ZONE_LETTERS = ("a", "b", "c")

#: Label prefix of the instance labels per provider: Karpenter's AWS provider or EKS Auto Mode.
PREFIXES = {"karpenter": "karpenter.k8s.aws", "auto": "eks.amazonaws.com"}

#: Per-zone multiplier on spot prices (zone letter -> factor): spot markets differ by zone.
ZONE_SPOT_SKEW: dict[str, float] = {"a": 1.00, "b": 0.96, "c": 1.04, "d": 0.98}

#: CPU maker per family, for the ``instance-cpu-manufacturer`` label (default intel).
_CPU_MAKER = {"g5": "amd", "g6": "amd", "g6e": "amd", "p5": "amd", "m7g": "aws"}

#: Simulated seconds from launch to a Ready node: (base, spread) for CPU-only and GPU types.
LAUNCH_SECONDS = {"cpu": (45.0, 15.0), "gpu": (90.0, 30.0)}


@dataclass(frozen=True)
class InstanceInfo:
    """One EC2 instance type as Karpenter sees it.

    Attributes:
        name: e.g. ``g6.xlarge``.
        vcpu: virtual CPUs.
        memory_mib: memory as EC2 advertises it.
        max_pods: VPC CNI pod limit.
        arch: ``amd64`` or ``arm64``.
        price: on-demand USD per hour (us-east-1 list price), ``None`` when the type has no on-demand price.
        gpus: NVIDIA GPUs.
        gpu_name: Karpenter's GPU name label value (``l4``, ``a10g``...).
        gpu_memory_mib: memory of one GPU as EC2 reports it.
    """

    name: str
    vcpu: int
    memory_mib: int
    max_pods: int
    arch: str
    price: float | None
    gpus: int = 0
    gpu_name: str = ""
    gpu_memory_mib: int = 0
    _shape: nodes.InstanceShape | None = field(default=None, compare=False, repr=False)

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def size(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else ""

    @property
    def category(self) -> str:
        """Leading letters of the family: ``g`` for ``g6e``, ``m`` for ``m7i``."""
        return _until_digit(self.family)

    @property
    def generation(self) -> str:
        """First digit run of the family: ``6`` for ``g6e``, ``4`` for ``p4d``."""
        rest = self.family[len(self.category) :]
        digits = ""
        for ch in rest:
            if not ch.isdigit():
                break
            digits += ch
        return digits or "0"

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    def shape(self) -> nodes.InstanceShape:
        """The node shape: the embedded nodes' own table where it knows the type, else built from this entry."""
        if self._shape is not None:
            return self._shape
        return nodes.InstanceShape(
            self.name,
            self.vcpu,
            self.memory_mib,
            self.max_pods,
            self.gpus,
            self.gpu_name,
            self.gpu_memory_mib,
            self.arch,
        )

    def labels(self, prefix: str) -> dict[str, str]:
        """The instance labels Karpenter puts on its nodes, under ``prefix``.

        ``prefix`` is ``karpenter.k8s.aws`` (Karpenter's AWS provider) or ``eks.amazonaws.com`` (Auto Mode).
        """
        out = {
            f"{prefix}/instance-category": self.category,
            f"{prefix}/instance-family": self.family,
            f"{prefix}/instance-generation": self.generation,
            f"{prefix}/instance-size": self.size,
            f"{prefix}/instance-cpu": str(self.vcpu),
            f"{prefix}/instance-cpu-manufacturer": _CPU_MAKER.get(self.family, "intel"),
            f"{prefix}/instance-memory": str(self.memory_mib),
            f"{prefix}/instance-hypervisor": "nitro",
            f"{prefix}/instance-encryption-in-transit-supported": "true",
        }
        if self.gpus:
            out.update(
                {
                    f"{prefix}/instance-gpu-count": str(self.gpus),
                    f"{prefix}/instance-gpu-name": self.gpu_name,
                    f"{prefix}/instance-gpu-manufacturer": "nvidia",
                    f"{prefix}/instance-gpu-memory": str(self.gpu_memory_mib),
                }
            )
        return out

    @functools.cached_property
    def resources(self) -> tuple[dict[str, str], dict[str, str]]:
        """``(capacity, allocatable)`` of a node of this type, as the kubelet reports them."""
        return nodes.node_resources(self.shape())

    @functools.cached_property
    def capacity_units(self) -> dict[str, int]:
        """Capacity in scheduler units (millicores, bytes, counts)."""
        return resource_list(self.resources[0])

    @functools.cached_property
    def allocatable_units(self) -> dict[str, int]:
        """Allocatable in scheduler units."""
        return resource_list(self.resources[1])

    def launch_seconds(self, salt: str = "") -> float:
        """Simulated seconds from launch to a Ready node: 45-60 s for CPU types, 90-120 s for GPU types.

        Deterministic for a given ``salt`` (the NodeClaim name), so a restart computes the same time.
        """
        base, spread = LAUNCH_SECONDS["gpu" if self.gpus else "cpu"]
        digest = hashlib.sha256(f"{self.name}/{salt}".encode()).digest()
        return base + spread * digest[0] / 255


def _until_digit(text: str) -> str:
    out = ""
    for ch in text:
        if ch.isdigit():
            break
        out += ch
    return out


@dataclass(frozen=True)
class Offering:
    """Something Karpenter can launch: an instance type in a zone with a capacity type, at a price."""

    instance: InstanceInfo
    zone: str
    capacity_type: str
    price: float

    @property
    def name(self) -> str:
        return self.instance.name


# --------------------------------------------------------------------------- catalog


def _known_shape(name: str) -> nodes.InstanceShape | None:
    try:
        return nodes.instance_shape(name)
    except ConfigError:
        return None


@functools.cache
def instance_types() -> dict[str, InstanceInfo]:
    """Every instance type Karpenter may launch, by name: the planner catalog's CPU-only and GPU types."""
    out: dict[str, InstanceInfo] = {}
    for cpu in planner.cpu_instance_types():
        info = InstanceInfo(
            name=cpu.name,
            vcpu=cpu.vcpu,
            memory_mib=int(cpu.memory_gib * 1024),
            max_pods=cpu.max_pods,
            arch=cpu.arch,
            price=cpu.price_per_hour,
        )
        out[cpu.name] = _with_shape(info)
    for it in planner.instance_types():
        gpu = it.gpu_spec
        shape = _known_shape(it.name)
        info = InstanceInfo(
            name=it.name,
            vcpu=it.vcpu,
            memory_mib=int(it.memory_gib * 1024),
            max_pods=shape.max_pods if shape else 737,
            arch="amd64",
            price=it.price_per_hour,
            gpus=it.gpu_count,
            gpu_name=gpu.label,
            gpu_memory_mib=gpu.memory_mib,
        )
        out[it.name] = _with_shape(info)
    return out


def _with_shape(info: InstanceInfo) -> InstanceInfo:
    """Attach the node shape: the embedded nodes' own when it knows the type, else register this one there.

    Registering keeps :func:`..nodes.make_node` and Karpenter's plan on the same numbers.
    """
    shape = _known_shape(info.name)
    if shape is None:
        shape = info.shape()
        nodes.INSTANCE_SHAPES.setdefault(info.name, shape)
    return dataclasses.replace(info, _shape=shape)


def get(name: str) -> InstanceInfo:
    """The instance type called ``name``.

    Raises:
        ConfigError: Karpenter's catalog does not know it.
    """
    found = instance_types().get(name.strip().lower())
    if found is None:
        raise ConfigError(
            f"unknown instance type {name!r} for the embedded Karpenter",
            f"use one of {', '.join(sorted(instance_types()))}",
        )
    return found


def zones(region: str = DEFAULT_REGION, letters: Iterable[str] = DEFAULT_ZONE_LETTERS) -> list[str]:
    """Availability zones of ``region`` (``us-west-2a``, ``us-west-2b``, ``us-west-2c``)."""
    return [f"{region}{letter}" for letter in letters]


def spot_price(info: InstanceInfo, zone: str) -> float | None:
    """Modelled spot price of ``info`` in ``zone`` (``None`` when the type has no on-demand price to start from).

    On-demand times the family's typical spot discount (:func:`labkit.planner.catalog.spot_ratio`) times
    the zone's skew.
    """
    if info.price is None:
        return None
    return round(info.price * planner.spot_ratio(info.name) * ZONE_SPOT_SKEW.get(zone[-1:], 1.0), 5)


def offerings(
    region: str = DEFAULT_REGION,
    *,
    zone_names: Iterable[str] | None = None,
    capacity_types: Iterable[str] = ("spot", "on-demand"),
    types: Mapping[str, InstanceInfo] | None = None,
) -> list[Offering]:
    """Every offering in ``region``: each instance type in each zone for each capacity type, with its price.

    Types without an on-demand price (p5e: Capacity Blocks only) have no offering.
    """
    zs = list(zone_names) if zone_names is not None else zones(region)
    out: list[Offering] = []
    for info in (types or instance_types()).values():
        if info.price is None:
            continue
        for zone in zs:
            for ct in capacity_types:
                price = info.price if ct in ("on-demand", "reserved") else spot_price(info, zone)
                if price is not None:
                    out.append(Offering(info, zone, ct, price))
    return out
