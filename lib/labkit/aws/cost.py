"""The running cost meter: what the platform costs per hour, from what exists now.

:func:`hourly_cost` is a pure function over an :class:`Inventory` (cluster, nodes by
instance type and capacity type, NAT gateways, load balancers) and a price lookup;
:func:`collect_inventory` reads the inventory from EC2, EKS and ELB (and, when given,
Kubernetes node labels); :func:`meter` does both. Data transfer, storage and load
balancer capacity units are not counted: the meter shows the hourly floor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit.aws import prices
from labkit.aws.session import AwsSession
from labkit.aws.tags import as_dict, belongs_to
from labkit.errors import LabkitError, NotFound
from labkit.settings import Settings

HOURS_PER_MONTH = 730
ON_DEMAND = prices.ON_DEMAND
SPOT = prices.SPOT


@dataclass(frozen=True)
class Node:
    """One worker node: its instance type and capacity type (``on-demand`` or ``spot``)."""

    name: str
    instance_type: str
    capacity_type: str = ON_DEMAND
    instance_id: str | None = None
    source: str = "ec2"


@dataclass
class Inventory:
    """What exists now and costs money by the hour."""

    region: str
    cluster: str | None = None
    support_type: str = "STANDARD"
    auto_mode: bool = False
    nodes: list[Node] = field(default_factory=list)
    nat_gateways: int = 0
    load_balancers: list[tuple[str, str]] = field(default_factory=list)  # (name, "application" | "network")


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: int
    unit_usd_per_hour: float | None
    source: str

    @property
    def usd_per_hour(self) -> float:
        return 0.0 if self.unit_usd_per_hour is None else self.quantity * self.unit_usd_per_hour


@dataclass
class CostReport:
    """Cost lines and totals; ``unpriced`` lists items whose price is unknown (not in the total)."""

    lines: list[CostLine]

    @property
    def usd_per_hour(self) -> float:
        return round(sum(line.usd_per_hour for line in self.lines), 6)

    @property
    def usd_per_day(self) -> float:
        return round(self.usd_per_hour * 24, 4)

    @property
    def usd_per_month(self) -> float:
        return round(self.usd_per_hour * HOURS_PER_MONTH, 2)

    @property
    def unpriced(self) -> list[str]:
        return [line.item for line in self.lines if line.unit_usd_per_hour is None]

    def to_text(self) -> str:
        rows = [f"{'item':44} {'qty':>4} {'$/h each':>10} {'$/h':>9}  source"]
        for line in self.lines:
            unit = "unknown" if line.unit_usd_per_hour is None else f"{line.unit_usd_per_hour:.4f}"
            rows.append(f"{line.item:44} {line.quantity:>4} {unit:>10} {line.usd_per_hour:>9.4f}  {line.source}")
        rows.append(
            f"{'total':44} {'':>4} {'':>10} {self.usd_per_hour:>9.4f}  = ${self.usd_per_day:.2f}/day, "
            f"${self.usd_per_month:.0f}/month"
        )
        if self.unpriced:
            rows.append(f"not in the total (price unknown): {', '.join(self.unpriced)}")
        return "\n".join(rows)


PriceLookup = Callable[[str, str], "prices.Price | float | None"]


def _value(found: prices.Price | float | None) -> tuple[float | None, str]:
    if found is None:
        return None, "no price"
    if isinstance(found, prices.Price):
        return found.usd_per_hour, f"{found.source} {found.as_of}"
    return float(found), "given"


def hourly_cost(inventory: Inventory, price_of: PriceLookup, fee_table: dict[str, float]) -> CostReport:
    """Cost lines for an inventory (pure).

    Args:
        inventory: what exists.
        price_of: ``(instance_type, capacity_type) -> Price | float | None``.
        fee_table: fees as in :func:`labkit.aws.prices.fees`.
    """
    lines: list[CostLine] = []
    if inventory.cluster:
        extended = inventory.support_type == "EXTENDED"
        fee = fee_table["eks_cluster_extended" if extended else "eks_cluster_standard"]
        lines.append(
            CostLine(f"EKS control plane ({'extended' if extended else 'standard'} support)", 1, fee, "fee table")
        )
    groups = Counter((n.instance_type, n.capacity_type) for n in inventory.nodes)
    for (instance_type, capacity), count in sorted(groups.items()):
        unit, source = _value(price_of(instance_type, capacity))
        lines.append(CostLine(f"{instance_type} {capacity}", count, unit, source))
        if inventory.auto_mode:
            base, base_source = _value(price_of(instance_type, ON_DEMAND))
            fee_unit = None if base is None else round(base * fee_table["auto_mode_fraction"], 6)
            lines.append(
                CostLine(
                    f"  EKS Auto Mode fee on {instance_type}",
                    count,
                    fee_unit,
                    f"{fee_table['auto_mode_fraction']:.0%} of on-demand ({base_source})",
                )
            )
    if inventory.nat_gateways:
        lines.append(CostLine("NAT gateway", inventory.nat_gateways, fee_table["nat_gateway"], "fee table"))
    kinds = Counter(kind for _, kind in inventory.load_balancers)
    for kind, count in sorted(kinds.items()):
        key = "network_load_balancer" if kind == "network" else "application_load_balancer"
        lines.append(CostLine(f"{kind} load balancer", count, fee_table[key], "fee table"))
    return CostReport(lines)


# --- inventory -------------------------------------------------------------------------------


def _capacity(value: str | None) -> str:
    return SPOT if (value or "").lower() == "spot" else ON_DEMAND


def instance_id_of(provider_id: str | None) -> str | None:
    """``aws:///us-west-2a/i-0abc`` -> ``i-0abc``."""
    if not provider_id or "/i-" not in provider_id:
        return None
    return provider_id.rsplit("/", 1)[-1]


def nodes_from_kubernetes(items: Iterable[Any]) -> list[Node]:
    """Nodes from Kubernetes Node objects (dicts or client models), by their well-known labels (pure)."""
    found = []
    for item in items:
        obj = item.to_dict() if hasattr(item, "to_dict") else item
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        spec = obj.get("spec") or {}
        instance_type = labels.get("node.kubernetes.io/instance-type") or labels.get("beta.kubernetes.io/instance-type")
        if not instance_type:
            continue
        capacity = labels.get("karpenter.sh/capacity-type") or labels.get("eks.amazonaws.com/capacityType")
        provider = spec.get("providerID") or spec.get("provider_id")
        found.append(
            Node(meta.get("name", ""), instance_type, _capacity(capacity), instance_id_of(provider), "kubernetes")
        )
    return found


def nodes_from_ec2(reservations: Iterable[dict[str, Any]]) -> list[Node]:
    """Running or pending EC2 instances as nodes (pure)."""
    found = []
    for reservation in reservations:
        for inst in reservation.get("Instances", []):
            if inst.get("State", {}).get("Name") not in ("pending", "running"):
                continue
            name = as_dict(inst.get("Tags")).get("Name") or inst.get("PrivateDnsName") or inst["InstanceId"]
            capacity = SPOT if inst.get("InstanceLifecycle") == "spot" else ON_DEMAND
            found.append(Node(name, inst["InstanceType"], capacity, inst["InstanceId"], "ec2"))
    return found


def merge_nodes(ec2_nodes: Iterable[Node], kube_nodes: Iterable[Node]) -> list[Node]:
    """EC2 instances plus Kubernetes nodes EC2 did not report, each instance once (pure)."""
    merged = list(ec2_nodes)
    seen = {n.instance_id for n in merged if n.instance_id}
    for node in kube_nodes:
        if node.instance_id and node.instance_id in seen:
            continue
        merged.append(node)
    return merged


def collect_inventory(session: AwsSession, settings: Settings, kube_nodes: Iterable[Any] | None = None) -> Inventory:
    """Read what exists for the cluster: EKS, its EC2 instances, NAT gateways, load balancers."""
    name = settings.cluster_name
    inventory = Inventory(region=session.region)
    try:
        cluster = session.call("eks", "describe_cluster", name=name)["cluster"]
        inventory.cluster = name
        inventory.support_type = (cluster.get("upgradePolicy") or {}).get("supportType", "EXTENDED")
        inventory.auto_mode = bool((cluster.get("computeConfig") or {}).get("enabled"))
    except NotFound:
        pass
    reservations = session.pages(
        "ec2",
        "describe_instances",
        "Reservations",
        Filters=[
            {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{name}"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ],
    )
    kube = nodes_from_kubernetes(kube_nodes or [])
    inventory.nodes = merge_nodes(nodes_from_ec2(reservations), kube)
    nats = session.pages(
        "ec2",
        "describe_nat_gateways",
        "NatGateways",
        Filter=[
            {"Name": "tag:labkit:cluster", "Values": [name]},
            {"Name": "state", "Values": ["pending", "available"]},
        ],
    )
    inventory.nat_gateways = sum(1 for n in nats if belongs_to(as_dict(n.get("Tags")), settings))
    balancers = session.pages("elbv2", "describe_load_balancers", "LoadBalancers")
    by_arn = {lb["LoadBalancerArn"]: lb for lb in balancers}
    arns = list(by_arn)
    for start in range(0, len(arns), 20):
        for desc in session.call("elbv2", "describe_tags", ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            lb_tags = as_dict(desc.get("Tags"))
            if name in (lb_tags.get("elbv2.k8s.aws/cluster"), lb_tags.get("eks:eks-cluster-name")) or belongs_to(
                lb_tags, settings
            ):
                lb = by_arn[desc["ResourceArn"]]
                inventory.load_balancers.append((lb["LoadBalancerName"], lb.get("Type", "application")))
    return inventory


def meter(session: AwsSession, settings: Settings, kube_nodes: Iterable[Any] | None = None) -> CostReport:
    """The platform's hourly cost now."""
    inventory = collect_inventory(session, settings, kube_nodes)

    def price_of(instance_type: str, capacity: str) -> prices.Price | None:
        try:
            return prices.price(session, instance_type, capacity)
        except LabkitError:
            return None

    return hourly_cost(inventory, price_of, prices.fees())
