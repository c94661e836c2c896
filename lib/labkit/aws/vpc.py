"""The cluster's VPC, deployed from ``infra/aws/vpc.yaml`` with CloudFormation.

Two public and two private subnets in two Availability Zones that offer the lab's
instance types, one NAT gateway, and the subnet tags load balancers and Karpenter
discover. The kit's tags are stack tags, which CloudFormation copies to every
resource. Deploying again returns the existing stack's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.aws import names
from labkit.aws.session import AwsSession
from labkit.aws.tags import tag_list
from labkit.errors import Conflict, NotFound, WaitTimeout
from labkit.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = REPO_ROOT / "infra" / "aws" / "vpc.yaml"
CREATE_TIMEOUT_S = 20 * 60
DELETE_TIMEOUT_S = 20 * 60
# AZs where EKS cannot place its control plane ENIs (EKS user guide).
UNSUPPORTED_EKS_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})
DEFAULT_CIDRS = {
    "VpcCidr": "10.42.0.0/16",
    "PublicSubnetCidrs": "10.42.0.0/20,10.42.16.0/20",
    "PrivateSubnetCidrs": "10.42.128.0/18,10.42.192.0/18",
}
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS", "DELETE_FAILED"}


@dataclass(frozen=True)
class VpcOutputs:
    """What the stack created."""

    stack_name: str
    vpc_id: str
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    nat_gateway_id: str
    availability_zones: tuple[str, ...] = ()


def template_body() -> str:
    return TEMPLATE.read_text()


def stack_parameters(
    settings: Settings, zones: Iterable[str], cidrs: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """CreateStack parameters (pure). Every parameter is passed, defaults included."""
    zones = list(zones)
    if len(zones) != 2:
        raise ValueError(f"the VPC template spans exactly two Availability Zones, got {zones}")
    values = {
        "ClusterName": settings.cluster_name,
        "AvailabilityZones": ",".join(zones),
        **DEFAULT_CIDRS,
        **(cidrs or {}),
    }
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def parse_outputs(stack: dict[str, Any]) -> VpcOutputs:
    """Stack outputs -> :class:`VpcOutputs` (pure)."""
    out = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    zones = next(
        (p["ParameterValue"] for p in stack.get("Parameters", []) if p.get("ParameterKey") == "AvailabilityZones"), ""
    )
    return VpcOutputs(
        stack_name=stack["StackName"],
        vpc_id=out["VpcId"],
        public_subnet_ids=tuple(out["PublicSubnetIds"].split(",")),
        private_subnet_ids=tuple(out["PrivateSubnetIds"].split(",")),
        nat_gateway_id=out.get("NatGatewayId", ""),
        availability_zones=tuple(z for z in zones.split(",") if z),
    )


def choose_zones(session: AwsSession, instance_types: Iterable[str] = (), count: int = 2) -> list[str]:
    """The first ``count`` zones (by name) that EKS supports and that offer every instance type."""
    zones = session.call("ec2", "describe_availability_zones", Filters=[{"Name": "state", "Values": ["available"]}])[
        "AvailabilityZones"
    ]
    candidates = sorted(
        z["ZoneName"]
        for z in zones
        if z.get("ZoneType", "availability-zone") == "availability-zone"
        and z.get("ZoneId") not in UNSUPPORTED_EKS_ZONE_IDS
    )
    types = sorted(set(instance_types))
    if types:
        offered: dict[str, set[str]] = {}
        for o in session.pages(
            "ec2",
            "describe_instance_type_offerings",
            "InstanceTypeOfferings",
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": types}],
        ):
            offered.setdefault(o["Location"], set()).add(o["InstanceType"])
        candidates = [z for z in candidates if set(types) <= offered.get(z, set())]
    if len(candidates) < count:
        raise Conflict(
            f"only {len(candidates)} Availability Zone(s) in {session.region} offer {', '.join(types) or 'EKS'}",
            "choose another region or other instance types (the preflight lists what is offered)",
        )
    return candidates[:count]


def describe(session: AwsSession, settings: Settings) -> dict[str, Any] | None:
    """The VPC stack of ``settings``' cluster, or ``None``."""
    try:
        stacks = session.call("cloudformation", "describe_stacks", StackName=names.vpc_stack(settings.cluster_name))
    except NotFound:
        return None
    found = [s for s in stacks.get("Stacks", []) if s.get("StackStatus") != "DELETE_COMPLETE"]
    return found[0] if found else None


def failure_reason(session: AwsSession, stack_name: str) -> str:
    """The first failed resource of a stack and why, from its events (``unknown`` if none failed)."""
    try:
        events = session.call("cloudformation", "describe_stack_events", StackName=stack_name)["StackEvents"]
    except NotFound:
        return "unknown"
    for event in reversed(events):
        if event.get("ResourceStatus", "").endswith("FAILED"):
            return f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason', '')}"
    return "unknown"


def deploy(
    session: AwsSession,
    settings: Settings,
    lab: str,
    *,
    instance_types: Iterable[str] = (),
    zones: Iterable[str] | None = None,
) -> VpcOutputs:
    """Create the VPC stack (or find it) and wait until it is complete."""
    name = names.vpc_stack(settings.cluster_name)
    stack = describe(session, settings)
    if stack is None:
        chosen = list(zones) if zones is not None else choose_zones(session, instance_types)
        session.call(
            "cloudformation",
            "create_stack",
            StackName=name,
            TemplateBody=template_body(),
            Parameters=stack_parameters(settings, chosen),
            Tags=tag_list(settings, lab),
            OnFailure="ROLLBACK",
        )

    def probe() -> tuple[bool, str]:
        found = describe(session, settings)
        status = found["StackStatus"] if found else "MISSING"
        if status in _FAILED or status == "MISSING":
            raise Conflict(
                f"VPC stack {name} is {status}: {failure_reason(session, name)}",
                "run the teardown cell to delete it, fix the cause, and rerun",
            )
        return status in _DONE, status

    session.wait(f"VPC stack {name}", probe, timeout_s=CREATE_TIMEOUT_S)
    stack = describe(session, settings)
    assert stack is not None
    return parse_outputs(stack)


def delete(session: AwsSession, settings: Settings) -> bool:
    """Delete the VPC stack and wait until it is gone; ``False`` if there was none."""
    stack = describe(session, settings)
    if stack is None:
        return False
    stack_id = stack["StackId"]
    session.call("cloudformation", "delete_stack", StackName=stack_id)

    def probe() -> tuple[bool, str]:
        try:
            found = session.call("cloudformation", "describe_stacks", StackName=stack_id)["Stacks"]
        except NotFound:
            return True, "DELETE_COMPLETE"
        status = found[0]["StackStatus"] if found else "DELETE_COMPLETE"
        if status == "DELETE_FAILED":
            raise WaitTimeout(
                f"VPC stack {stack['StackName']} could not be deleted: {failure_reason(session, stack_id)}",
                "something still uses the VPC (load balancers, ENIs left by controllers): delete those, then rerun",
            )
        return status == "DELETE_COMPLETE", status

    session.wait(f"deletion of VPC stack {stack['StackName']}", probe, timeout_s=DELETE_TIMEOUT_S)
    return True
