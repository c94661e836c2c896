"""Before the cluster: what Week 1 and Week 3 will launch, the quotas that limits, the prices, the profile.

Every function returns a :class:`~labkit.kube.Table` (text with ``print``, HTML in a
notebook) or plain data. Reading only: nothing here creates anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from labkit.aws import preflight, prices
from labkit.aws.preflight import Launch
from labkit.aws.session import AwsSession
from labkit.errors import Forbidden, LabkitError, NotFound
from labkit.kube.tables import Table

#: The GPU pool Week 3 plans: up to four one-GPU L4 nodes on demand, and two L40S nodes on spot.
WEEK3_GPU_LAUNCHES: tuple[Launch, ...] = (
    Launch("g6.xlarge", 4, preflight.ON_DEMAND),
    Launch("g6e.xlarge", 2, preflight.SPOT),
)


@dataclass(frozen=True)
class PlannedLaunch:
    """Instances a week of the workshop starts, and why."""

    week: int
    purpose: str
    launch: Launch


def planned_launches(profile: str) -> list[PlannedLaunch]:
    """What the workshop launches on ``profile``: Week 1's system nodes and Week 3's GPU pool."""
    system = "system nodes (Auto Mode's built-in pools)" if profile == "auto" else "managed system node group"
    planned = [PlannedLaunch(1, system, launch) for launch in preflight.week1_launches(profile)]
    planned += [PlannedLaunch(3, "GPU pool for model serving", launch) for launch in WEEK3_GPU_LAUNCHES]
    return planned


def launch_table(planned: Sequence[PlannedLaunch]) -> Table:
    """The plan as a table, with the EC2 quota each launch counts against (pure)."""
    rows = []
    for p in planned:
        spec = preflight.quota_for(p.launch.instance_type, p.launch.capacity_type)
        rows.append(
            (
                str(p.week),
                p.purpose,
                p.launch.instance_type,
                str(p.launch.count),
                p.launch.capacity_type,
                spec.code if spec else "(not checked)",
            )
        )
    return Table(("WEEK", "PURPOSE", "INSTANCE-TYPE", "COUNT", "CAPACITY", "QUOTA"), tuple(rows), "planned instances")


def instance_vcpus(session: AwsSession, instance_types: Iterable[str]) -> dict[str, int]:
    """vCPUs of each instance type, from EC2 DescribeInstanceTypes."""
    types = sorted(set(instance_types))
    if not types:
        return {}
    found = session.pages("ec2", "describe_instance_types", "InstanceTypes", InstanceTypes=types)
    return {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in found}


def _quota_value(session: AwsSession, code: str) -> float | None:
    try:
        answer = session.call("service-quotas", "get_service_quota", ServiceCode=preflight.SERVICE_CODE, QuotaCode=code)
    except NotFound:
        answer = session.call(
            "service-quotas", "get_aws_default_service_quota", ServiceCode=preflight.SERVICE_CODE, QuotaCode=code
        )
    except Forbidden:
        return None
    return float(answer["Quota"]["Value"])


def quota_table(session: AwsSession, planned: Iterable[Launch]) -> Table:
    """Per EC2 vCPU quota the plan touches: what it needs, what runs, the quota, and where to raise it."""
    planned = list(planned)
    vcpus = instance_vcpus(session, [launch.instance_type for launch in planned])
    need = preflight.vcpus_needed(planned, vcpus)
    running = session.pages(
        "ec2",
        "describe_instances",
        "Reservations",
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}],
    )
    instances = [i for r in running for i in r.get("Instances", [])]
    vcpus.update(instance_vcpus(session, {str(i.get("InstanceType")) for i in instances} - set(vcpus)))
    used = preflight.vcpus_in_use(instances, vcpus)
    rows = []
    for spec, wanted in sorted(need.items(), key=lambda kv: kv[0].code):
        value = _quota_value(session, spec.code)
        in_use = used.get(spec, 0)
        if value is None:
            verdict = "unknown (no permission to read it)"
        elif in_use + wanted <= value:
            verdict = "ok"
        else:
            verdict = f"RAISE to >= {in_use + wanted}"
        rows.append(
            (
                spec.code,
                spec.name,
                str(wanted),
                str(in_use),
                "?" if value is None else f"{value:g}",
                verdict,
                preflight.console_url(session.region, spec.code),
            )
        )
    columns = ("QUOTA", "NAME", "NEEDS-VCPU", "IN-USE", "APPLIED", "VERDICT", "WHERE-TO-RAISE")
    return Table(columns, tuple(rows), f"EC2 vCPU quotas in {session.region}")


def price_table(session: AwsSession, instance_types: Iterable[str]) -> Table:
    """On-demand and spot prices per hour, with where each number comes from and of when."""
    types = sorted(set(instance_types))
    vcpus = instance_vcpus(session, types)
    rows = []
    for name in types:
        on_demand = _price_or_none(lambda n=name: prices.on_demand(session, n))
        spot = _price_or_none(lambda n=name: prices.spot(session, n))
        saving = ""
        if on_demand and spot and on_demand.usd_per_hour > 0:
            saving = f"{1 - spot.usd_per_hour / on_demand.usd_per_hour:.0%}"
        rows.append(
            (
                name,
                str(vcpus.get(name, "?")),
                f"{on_demand.usd_per_hour:.4f}" if on_demand else "unknown",
                f"{spot.usd_per_hour:.4f}" if spot else "unknown",
                saving,
                f"{on_demand.source} {on_demand.as_of}" if on_demand else "",
                f"{spot.source} {spot.as_of}" if spot else "",
            )
        )
    columns = ("INSTANCE-TYPE", "VCPU", "ON-DEMAND-$/H", "SPOT-$/H", "SPOT-SAVES", "ON-DEMAND-SOURCE", "SPOT-SOURCE")
    return Table(columns, tuple(rows), f"Linux prices in {session.region}")


def _price_or_none(lookup: Callable[[], prices.Price]) -> prices.Price | None:
    try:
        return lookup()
    except LabkitError:
        return None


# --- the two profiles ---------------------------------------------------------------------------

PROFILE_ROWS: tuple[tuple[str, str, str], ...] = (
    (
        "who runs the nodes",
        "EKS: built-in NodePools general-purpose and system, Karpenter run by AWS",
        "you: a managed system node group now, self-managed Karpenter in Week 3",
    ),
    (
        "pod networking (CNI)",
        "Amazon VPC CNI, run by EKS; it cannot be replaced",
        "VPC CNI add-on now; Cilium in ENI mode in Week 2",
    ),
    ("Cilium as CNI (Week 2)", "no", "yes (ENI mode, with Hubble)"),
    (
        "add-ons you install",
        "none for networking, DNS, Pod Identity, block storage or load balancing: built in",
        "vpc-cni, kube-proxy, coredns, eks-pod-identity-agent (more when needed)",
    ),
    (
        "GPU nodes (Week 3)",
        "an Auto Mode NodePool; NVIDIA drivers and device plugin come with the nodes",
        "a Karpenter NodePool and EC2NodeClass, plus the NVIDIA device plugin",
    ),
    (
        "node patching and upgrades",
        "EKS replaces nodes (they live at most 21 days)",
        "you: AMI updates roll out through Karpenter drift and node group updates",
    ),
    (
        "extra cost",
        "Auto Mode fee on each node (about 12% of its on-demand price)",
        "none beyond the instances; your time to run Karpenter and add-ons",
    ),
)


def profile_comparison() -> Table:
    """EKS Auto Mode (``auto``) against standard EKS with Karpenter (``standard``), side by side (pure)."""
    return Table(
        ("", "AUTO (EKS AUTO MODE)", "STANDARD (+ KARPENTER, CILIUM-CAPABLE)"), PROFILE_ROWS, "cluster profiles"
    )
