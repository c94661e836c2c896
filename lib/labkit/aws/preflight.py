"""Preflight: before anything is created, check identity, region and EC2 vCPU quotas.

EC2 limits running instances by vCPUs per quota bucket (standard families, G and VT,
P), separately for on-demand and spot. The preflight adds up the vCPUs a lab will
launch per bucket, adds what already runs, and compares with the applied quota; when
it is short, it names the exact quota code, its name and the console page to raise it.
Reading only: it creates nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from labkit.aws.session import AwsSession
from labkit.errors import Forbidden, LabkitError, NotFound, TargetUnavailable

SERVICE_CODE = "ec2"
ON_DEMAND = "on-demand"
SPOT = "spot"


@dataclass(frozen=True)
class QuotaSpec:
    """One EC2 vCPU quota: its code, name, bucket and capacity type."""

    code: str
    name: str
    bucket: str
    capacity_type: str


QUOTAS: dict[tuple[str, str], QuotaSpec] = {
    ("standard", ON_DEMAND): QuotaSpec(
        "L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "standard", ON_DEMAND
    ),
    ("g", ON_DEMAND): QuotaSpec("L-DB2E81BA", "Running On-Demand G and VT instances", "g", ON_DEMAND),
    ("p", ON_DEMAND): QuotaSpec("L-417A185B", "Running On-Demand P instances", "p", ON_DEMAND),
    ("standard", SPOT): QuotaSpec(
        "L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "standard", SPOT
    ),
    ("g", SPOT): QuotaSpec("L-3819A6DF", "All G and VT Spot Instance Requests", "g", SPOT),
    ("p", SPOT): QuotaSpec("L-7212CCBC", "All P Spot Instance Requests", "p", SPOT),
}

_STANDARD_LETTERS = set("acdhimrtz")


@dataclass(frozen=True)
class Launch:
    """Instances a lab will run: ``count`` x ``instance_type`` of ``capacity_type``."""

    instance_type: str
    count: int = 1
    capacity_type: str = ON_DEMAND


@dataclass(frozen=True)
class Check:
    """One preflight finding; ``blocking`` ones stop the lab."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True


@dataclass
class PreflightReport:
    """What the preflight found, in order."""

    region: str
    checks: list[Check] = field(default_factory=list)
    account: str = ""
    principal: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.blocking)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.blocking and not c.ok]

    def to_text(self) -> str:
        lines = [f"Preflight for region {self.region}" + (f", account {self.account}" if self.account else "")]
        for c in self.checks:
            mark = "ok  " if c.ok else ("FAIL" if c.blocking else "warn")
            lines.append(f"  [{mark}] {c.name}: {c.detail}")
            if not c.ok and c.fix:
                lines.append(f"         fix: {c.fix}")
        return "\n".join(lines)


class PreflightFailed(TargetUnavailable):
    """The account or region cannot run the lab yet; nothing was created."""

    def __init__(self, report: PreflightReport) -> None:
        first = report.failures[0]
        more = f" (and {len(report.failures) - 1} more; see .report)" if len(report.failures) > 1 else ""
        super().__init__(f"preflight failed: {first.name}: {first.detail}{more}", first.fix)
        self.report = report


# --- pure rules ------------------------------------------------------------------------------


def family(instance_type: str) -> str:
    """``g6e.xlarge`` -> ``g6e``."""
    return instance_type.split(".", 1)[0].lower()


def quota_bucket(instance_type: str) -> str | None:
    """``standard``, ``g`` (G and VT) or ``p``; ``None`` for families with other quotas (F, Inf, Trn, X, DL...)."""
    fam = family(instance_type)
    if fam.startswith("vt") or (fam.startswith("g") and re.match(r"^g\d", fam)):
        return "g"
    if re.match(r"^p\d", fam):
        return "p"
    if re.match(r"^(inf|trn|dl|f\d|x\d|u-|mac)", fam):
        return None
    return "standard" if fam[:1] in _STANDARD_LETTERS else None


def quota_for(instance_type: str, capacity_type: str = ON_DEMAND) -> QuotaSpec | None:
    bucket = quota_bucket(instance_type)
    return None if bucket is None else QUOTAS.get((bucket, capacity_type))


def console_url(region: str, quota_code: str) -> str:
    """The Service Quotas console page of an EC2 quota in ``region``."""
    return f"https://{region}.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{quota_code}"


def vcpus_needed(launches: Iterable[Launch], vcpus: dict[str, int]) -> dict[QuotaSpec, int]:
    """vCPUs per quota the launches need (types with other quotas are left out)."""
    need: dict[QuotaSpec, int] = {}
    for launch in launches:
        spec = quota_for(launch.instance_type, launch.capacity_type)
        if spec is not None and launch.instance_type in vcpus:
            need[spec] = need.get(spec, 0) + launch.count * vcpus[launch.instance_type]
    return need


def vcpus_in_use(instances: Iterable[dict], vcpus: dict[str, int]) -> dict[QuotaSpec, int]:
    """vCPUs per quota of running/pending instances (EC2 DescribeInstances items)."""
    used: dict[QuotaSpec, int] = {}
    for inst in instances:
        capacity = SPOT if inst.get("InstanceLifecycle") == "spot" else ON_DEMAND
        spec = quota_for(str(inst.get("InstanceType", "")), capacity)
        if spec is None:
            continue
        cpu = inst.get("CpuOptions") or {}
        count = int(cpu.get("CoreCount", 0)) * int(cpu.get("ThreadsPerCore", 0)) or vcpus.get(inst["InstanceType"], 0)
        used[spec] = used.get(spec, 0) + count
    return used


def week1_launches(profile: str) -> list[Launch]:
    """What Week 1 starts, as on-demand standard vCPUs.

    ``standard``: the managed system node group (2 x m7i.large). ``auto``: EKS picks the
    instances of its built-in pools; two 2-vCPU nodes is what the system pool starts with.
    """
    return [Launch("m7i.large", 2)] if profile in ("auto", "standard") else []


# --- the checks ------------------------------------------------------------------------------


def run(session: AwsSession, launches: Iterable[Launch], *, min_azs: int = 2) -> PreflightReport:
    """Run every check and return the report (raises nothing for failed checks)."""
    launches = list(launches)
    region = session.region
    report = PreflightReport(region=region)
    if not session.has_credentials():
        report.checks.append(
            Check(
                "AWS credentials",
                False,
                "no credentials found (environment, AWS_PROFILE, ~/.aws, SSO)",
                "run `aws configure` or `aws sso login`, or set AWS_PROFILE / settings.aws_profile",
            )
        )
        return report
    try:
        ident = session.identity()
    except LabkitError as exc:
        report.checks.append(Check("AWS identity", False, exc.what, exc.fix or ""))
        return report
    report.account, report.principal = ident["Account"], ident["Arn"]
    report.checks.append(Check("AWS identity", True, f"{ident['Arn']} in account {ident['Account']}"))
    types = sorted({launch.instance_type for launch in launches})
    if not types:
        return report
    _check_offerings(session, report, types, min_azs)
    offered = [t for t in types if not any(c.name == f"{t} in {region}" and not c.ok for c in report.checks)]
    if offered:
        _check_quotas(session, report, [launch for launch in launches if launch.instance_type in offered], offered)
    return report


def check(session: AwsSession, launches: Iterable[Launch], *, min_azs: int = 2) -> PreflightReport:
    """Run the preflight; raise :class:`PreflightFailed` (nothing created) when a blocking check fails."""
    report = run(session, launches, min_azs=min_azs)
    if not report.ok:
        raise PreflightFailed(report)
    return report


def _check_offerings(session: AwsSession, report: PreflightReport, types: list[str], min_azs: int) -> None:
    region = session.region
    filters = [{"Name": "instance-type", "Values": types}]
    in_region = {
        o["InstanceType"]
        for o in session.pages(
            "ec2", "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="region", Filters=filters
        )
    }
    for t in types:
        report.checks.append(
            Check(
                f"{t} in {region}",
                t in in_region,
                "offered" if t in in_region else f"{t} is not offered in {region}",
                f"choose a region that offers {t} (settings.region), or another instance type; list regions with "
                f"`aws ec2 describe-instance-type-offerings --filters Name=instance-type,Values={t} --region <r>`",
            )
        )
    by_zone: dict[str, set[str]] = {}
    for o in session.pages(
        "ec2",
        "describe_instance_type_offerings",
        "InstanceTypeOfferings",
        LocationType="availability-zone",
        Filters=filters,
    ):
        by_zone.setdefault(o["Location"], set()).add(o["InstanceType"])
    wanted = set(types) & in_region
    zones = sorted(z for z, offered in by_zone.items() if wanted <= offered)
    if wanted:
        report.checks.append(
            Check(
                "Availability Zones",
                len(zones) >= min_azs,
                f"{len(zones)} zone(s) offer {', '.join(sorted(wanted))}: {', '.join(zones) or 'none'}",
                f"the VPC needs {min_azs} zones that offer every instance type; pick other types or another region",
            )
        )


def _check_quotas(session: AwsSession, report: PreflightReport, launches: list[Launch], types: list[str]) -> None:
    region = session.region
    vcpus = {
        t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"])
        for t in session.pages("ec2", "describe_instance_types", "InstanceTypes", InstanceTypes=types)
    }
    for t in types:
        if quota_bucket(t) is None:
            report.checks.append(
                Check(
                    f"{t} quota",
                    False,
                    f"{t} belongs to a quota the kit does not check",
                    "check it in Service Quotas yourself",
                    blocking=False,
                )
            )
    need = vcpus_needed(launches, vcpus)
    if not need:
        return
    running = session.pages(
        "ec2",
        "describe_instances",
        "Reservations",
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}],
    )
    instances = [i for r in running for i in r.get("Instances", [])]
    all_types = {str(i.get("InstanceType")) for i in instances} - set(vcpus)
    if all_types:
        for t in session.pages("ec2", "describe_instance_types", "InstanceTypes", InstanceTypes=sorted(all_types)):
            vcpus[t["InstanceType"]] = int(t["VCpuInfo"]["DefaultVCpus"])
    used = vcpus_in_use(instances, vcpus)
    for spec, wanted in sorted(need.items(), key=lambda kv: kv[0].code):
        try:
            value = float(
                session.call("service-quotas", "get_service_quota", ServiceCode=SERVICE_CODE, QuotaCode=spec.code)[
                    "Quota"
                ]["Value"]
            )
        except NotFound:
            value = float(
                session.call(
                    "service-quotas", "get_aws_default_service_quota", ServiceCode=SERVICE_CODE, QuotaCode=spec.code
                )["Quota"]["Value"]
            )
        except Forbidden as exc:
            report.checks.append(
                Check(
                    f"quota {spec.code}",
                    False,
                    f"cannot read {spec.name}: {exc.what}",
                    "allow servicequotas:GetServiceQuota, or check the quota in the console: "
                    + console_url(region, spec.code),
                    blocking=False,
                )
            )
            continue
        in_use = used.get(spec, 0)
        ok = in_use + wanted <= value
        detail = f"{spec.name} ({spec.code}): quota {value:g} vCPUs, {in_use} in use, this lab needs {wanted}"
        fix = (
            f"raise quota {spec.code} '{spec.name}' in {region} to at least {in_use + wanted} vCPUs in Service "
            f"Quotas: {console_url(region, spec.code)} (increases can take hours; new accounts start low)"
        )
        report.checks.append(Check(f"quota {spec.code}", ok, detail, fix))
