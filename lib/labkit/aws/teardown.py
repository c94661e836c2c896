"""Teardown in dependency order, a check that nothing tagged survived, and the sweeper.

Order: node groups, add-ons, Pod Identity associations, access entries, the cluster,
what its controllers left (load balancers, Karpenter's instances and launch templates,
load balancer security groups), the Karpenter queue and rules, IAM, and last the VPC
stack (nothing may use the VPC any more). Every step is idempotent: missing
things are skipped, so a teardown can be rerun after an interruption. It ends by
listing everything still tagged for the cluster (Resource Groups Tagging API plus
IAM, which that API does not list) and raises :class:`TeardownIncomplete` if
anything survived. :func:`sweep` does the same for every cluster an owner left behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.aws import eks, iam, karpenter
from labkit.aws import vpc as vpc_mod
from labkit.aws.session import AwsSession, connect, ignore_missing
from labkit.aws.tags import CLUSTER_KEY, as_dict, belongs_to, cluster_filters, owner_filters
from labkit.errors import ConfigError, Conflict, LabkitError, NotFound
from labkit.settings import Settings

GONE_STATES = {"deleted", "terminated", "shutting-down", "deleting"}


@dataclass
class TeardownReport:
    """What a teardown deleted and what is still there."""

    cluster: str
    deleted: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.survivors

    def to_text(self) -> str:
        lines = [f"Teardown of {self.cluster}: {len(self.deleted)} deleted"]
        lines += [f"  - {d}" for d in self.deleted]
        if self.survivors:
            lines.append(f"  STILL THERE ({len(self.survivors)}):")
            lines += [f"  ! {s}" for s in self.survivors]
        else:
            lines.append("  nothing tagged for this cluster is left")
        return "\n".join(lines)


class TeardownIncomplete(LabkitError):
    """Something tagged for the cluster survived the teardown."""

    def __init__(self, report: TeardownReport) -> None:
        super().__init__(
            f"teardown of {report.cluster} left {len(report.survivors)} resource(s): "
            + ", ".join(report.survivors[:5])
            + (" ..." if len(report.survivors) > 5 else ""),
            "rerun the teardown (it is idempotent); if they stay, delete them in the console and check why",
        )
        self.report = report


# --- the steps -----------------------------------------------------------------------------


def _wait_empty(session: AwsSession, what: str, count: Callable[[], int], timeout_s: float) -> None:
    def probe() -> tuple[bool, str]:
        left = count()
        return left == 0, f"{left} left"

    session.wait(what, probe, timeout_s=timeout_s)


def _delete_cluster_parts(session: AwsSession, settings: Settings, report: TeardownReport) -> None:
    name = settings.cluster_name
    if eks.describe_cluster(session, settings) is None:
        return

    def list_of(operation: str, key: str) -> list[Any]:
        try:
            return session.pages("eks", operation, key, clusterName=name)
        except NotFound:
            return []

    for nodegroup in list_of("list_nodegroups", "nodegroups"):
        if ignore_missing(
            lambda n=nodegroup: session.call("eks", "delete_nodegroup", clusterName=name, nodegroupName=n)
        ):
            report.deleted.append(f"node group {nodegroup}")
    _wait_empty(
        session, "node group deletion", lambda: len(list_of("list_nodegroups", "nodegroups")), eks.DELETE_TIMEOUT_S
    )
    for addon in list_of("list_addons", "addons"):
        if ignore_missing(lambda a=addon: session.call("eks", "delete_addon", clusterName=name, addonName=a)):
            report.deleted.append(f"add-on {addon}")
    _wait_empty(session, "add-on deletion", lambda: len(list_of("list_addons", "addons")), eks.ADDON_TIMEOUT_S)
    for assoc in list_of("list_pod_identity_associations", "associations"):
        if ignore_missing(
            lambda a=assoc: session.call(
                "eks", "delete_pod_identity_association", clusterName=name, associationId=a["associationId"]
            )
        ):
            report.deleted.append(f"Pod Identity association {assoc['namespace']}/{assoc['serviceAccount']}")
    for principal in list_of("list_access_entries", "accessEntries"):
        if ignore_missing(
            lambda p=principal: session.call("eks", "delete_access_entry", clusterName=name, principalArn=p)
        ):
            report.deleted.append(f"access entry {principal}")
    if ignore_missing(lambda: session.call("eks", "delete_cluster", name=name)):
        report.deleted.append(f"EKS cluster {name}")

    def gone() -> tuple[bool, str]:
        found = eks.describe_cluster(session, settings)
        return found is None, "gone" if found is None else found["status"]

    session.wait(f"deletion of cluster {name}", gone, timeout_s=eks.DELETE_TIMEOUT_S)


def _cluster_load_balancers(session: AwsSession, settings: Settings) -> list[str]:
    """ARNs of load balancers the cluster's controllers (or the kit) created."""
    arns = [lb["LoadBalancerArn"] for lb in session.pages("elbv2", "describe_load_balancers", "LoadBalancers")]
    found = []
    for start in range(0, len(arns), 20):
        for desc in session.call("elbv2", "describe_tags", ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            lb_tags = as_dict(desc.get("Tags"))
            if (
                lb_tags.get("elbv2.k8s.aws/cluster") == settings.cluster_name
                or lb_tags.get("eks:eks-cluster-name") == settings.cluster_name
                or belongs_to(lb_tags, settings)
            ):
                found.append(desc["ResourceArn"])
    return found


def _delete_load_balancers(session: AwsSession, settings: Settings, report: TeardownReport) -> None:
    for arn in _cluster_load_balancers(session, settings):
        try:
            groups = session.pages("elbv2", "describe_target_groups", "TargetGroups", LoadBalancerArn=arn)
        except NotFound:
            groups = []
        if ignore_missing(lambda a=arn: session.call("elbv2", "delete_load_balancer", LoadBalancerArn=a)):
            report.deleted.append(f"load balancer {arn.rsplit('/', 2)[-2]}")
        for group in groups:
            ignore_missing(
                lambda g=group: session.call("elbv2", "delete_target_group", TargetGroupArn=g["TargetGroupArn"])
            )


def _delete_cluster_ec2(session: AwsSession, settings: Settings, report: TeardownReport) -> None:
    """What controllers launched for the cluster outlives it: instances, launch templates, security groups."""
    name = settings.cluster_name
    live = ["pending", "running", "stopping", "stopped"]
    reservations = session.pages(
        "ec2",
        "describe_instances",
        "Reservations",
        Filters=[
            {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{name}"]},
            {"Name": "instance-state-name", "Values": live},
        ],
    )
    ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    if ids:
        session.call("ec2", "terminate_instances", InstanceIds=ids)
        report.deleted.append(f"{len(ids)} EC2 instance(s) of the cluster")

        def terminated() -> tuple[bool, str]:
            found = session.pages("ec2", "describe_instances", "Reservations", InstanceIds=ids)
            left = [i for r in found for i in r["Instances"] if i["State"]["Name"] != "terminated"]
            return not left, f"{len(left)} terminating"

        session.wait("instance termination", terminated, timeout_s=eks.DELETE_TIMEOUT_S)
    templates = session.pages(
        "ec2",
        "describe_launch_templates",
        "LaunchTemplates",
        Filters=[{"Name": "tag:karpenter.k8s.aws/cluster", "Values": [name]}],
    )
    for template in templates:
        if ignore_missing(
            lambda t=template: session.call("ec2", "delete_launch_template", LaunchTemplateId=t["LaunchTemplateId"])
        ):
            report.deleted.append(f"launch template {template['LaunchTemplateName']}")
    groups = session.pages(
        "ec2",
        "describe_security_groups",
        "SecurityGroups",
        Filters=[{"Name": "tag:elbv2.k8s.aws/cluster", "Values": [name]}],
    )
    for group in groups:
        try:
            if ignore_missing(lambda g=group: session.call("ec2", "delete_security_group", GroupId=g["GroupId"])):
                report.deleted.append(f"security group {group['GroupName']}")
        except Conflict as exc:  # still attached: the survivors list shows it
            report.deleted.append(f"security group {group['GroupName']} NOT deleted: {exc.what}")


def _delete_iam(session: AwsSession, settings: Settings, report: TeardownReport) -> None:
    for profile in iam.owned_instance_profiles(session, settings):
        if iam.delete_instance_profile(session, profile["InstanceProfileName"]):
            report.deleted.append(f"instance profile {profile['InstanceProfileName']}")
    for role in iam.owned_roles(session, settings):
        if iam.delete_role(session, role["RoleName"]):
            report.deleted.append(f"IAM role {role['RoleName']}")
    for policy in iam.owned_policies(session, settings):
        if iam.delete_policy(session, policy["Arn"]):
            report.deleted.append(f"IAM policy {policy['PolicyName']}")


def _delete_leftover(session: AwsSession, arn: str) -> bool:
    """Delete one tagged resource found by the Tagging API, for the types the kit creates."""
    service = arn.split(":")[2]
    resource = arn.split(":", 5)[5]
    if service == "sqs":
        account, name = arn.split(":")[4], arn.split(":")[5]
        return ignore_missing(
            lambda: session.call(
                "sqs",
                "delete_queue",
                QueueUrl=session.call("sqs", "get_queue_url", QueueName=name, QueueOwnerAWSAccountId=account)[
                    "QueueUrl"
                ],
            )
        )
    if service == "events" and resource.startswith("rule/"):
        rule = resource.split("/", 1)[1]
        try:
            targets = session.call("events", "list_targets_by_rule", Rule=rule)["Targets"]
        except NotFound:
            return False
        if targets:
            session.call("events", "remove_targets", Rule=rule, Ids=[t["Id"] for t in targets])
        return ignore_missing(lambda: session.call("events", "delete_rule", Name=rule))
    if service == "cloudformation" and resource.startswith("stack/"):
        return ignore_missing(lambda: session.call("cloudformation", "delete_stack", StackName=arn))
    if service == "elasticloadbalancing" and resource.startswith("loadbalancer/"):
        return ignore_missing(lambda: session.call("elbv2", "delete_load_balancer", LoadBalancerArn=arn))
    if service == "elasticloadbalancing" and resource.startswith("targetgroup/"):
        return ignore_missing(lambda: session.call("elbv2", "delete_target_group", TargetGroupArn=arn))
    return False


# --- what is left --------------------------------------------------------------------------


def _really_there(session: AwsSession, arn: str) -> bool:
    """Drop resources AWS keeps listing for a while after deletion (deleted NAT gateways, terminated instances)."""
    resource = arn.split(":", 5)[5]
    try:
        if resource.startswith("natgateway/"):
            gateways = session.call("ec2", "describe_nat_gateways", NatGatewayIds=[resource.split("/")[1]])[
                "NatGateways"
            ]
            return any(g["State"] not in GONE_STATES for g in gateways)
        if resource.startswith("instance/"):
            reservations = session.call("ec2", "describe_instances", InstanceIds=[resource.split("/")[1]])[
                "Reservations"
            ]
            return any(i["State"]["Name"] not in GONE_STATES for r in reservations for i in r["Instances"])
    except NotFound:
        return False
    return True


def tagged_arns(session: AwsSession, tag_filters: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """(ARN, tags) of live resources matching ``tag_filters`` in the session's region (Tagging API)."""
    found = session.pages("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList", TagFilters=tag_filters)
    return [(r["ResourceARN"], as_dict(r.get("Tags"))) for r in found if _really_there(session, r["ResourceARN"])]


def survivors(session: AwsSession, settings: Settings) -> list[str]:
    """Everything still tagged for this owner's cluster: regional resources and IAM."""
    left = [arn for arn, _ in tagged_arns(session, cluster_filters(settings))]
    left += [r["Arn"] for r in iam.owned_roles(session, settings)]
    left += [p["Arn"] for p in iam.owned_policies(session, settings)]
    left += [p["Arn"] for p in iam.owned_instance_profiles(session, settings)]
    return sorted(left)


# --- entry points ----------------------------------------------------------------------------


def teardown(session: AwsSession, settings: Settings, *, check: bool = True) -> TeardownReport:
    """Delete everything the kit made for ``settings.cluster_name``; raise if something tagged survives."""
    report = TeardownReport(cluster=settings.cluster_name)
    _delete_cluster_parts(session, settings, report)
    _delete_load_balancers(session, settings, report)
    _delete_cluster_ec2(session, settings, report)
    report.deleted += karpenter.delete_interruption_queue(session, settings)
    _delete_iam(session, settings, report)
    try:
        if vpc_mod.delete(session, settings):
            report.deleted.append(f"VPC stack of {settings.cluster_name}")
    except Conflict as exc:  # something still uses the VPC: keep going, the survivors list shows what
        report.deleted.append(f"VPC stack NOT deleted: {exc.what}")
    for arn, _ in tagged_arns(session, cluster_filters(settings)):
        if _delete_leftover(session, arn):
            report.deleted.append(f"leftover {arn}")
    report.survivors = survivors(session, settings)
    if check and report.survivors:
        raise TeardownIncomplete(report)
    return report


def preview(session: AwsSession, settings: Settings) -> list[str]:
    """What :func:`teardown` would find tagged for the cluster now (deletes nothing)."""
    return survivors(session, settings)


@dataclass
class SweepReport:
    """Per cluster name: the teardown's report; plus clusters left alone because they are too young."""

    torn_down: dict[str, TeardownReport] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return all(r.clean for r in self.torn_down.values())

    def to_text(self) -> str:
        if not self.torn_down and not self.skipped:
            return "Nothing to sweep: no resources tagged for this owner in this region."
        parts = [r.to_text() for r in self.torn_down.values()]
        parts += [f"Skipped {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(parts)


def _created_at(session: AwsSession, settings: Settings) -> dict[str, dt.datetime]:
    """Earliest known creation time per cluster name among the owner's resources."""
    times: dict[str, dt.datetime] = {}

    def note(cluster: str | None, when: Any) -> None:
        if not cluster or not isinstance(when, dt.datetime):
            return
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        times[cluster] = min(times.get(cluster, when), when)

    for role in iam.owned_roles(session, settings, any_cluster=True):
        note(role["Tags"].get(CLUSTER_KEY), role.get("CreateDate"))
    for name in session.pages("eks", "list_clusters", "clusters"):
        try:
            cluster = session.call("eks", "describe_cluster", name=name)["cluster"]
        except NotFound:
            continue
        if belongs_to(cluster.get("tags") or {}, settings, any_cluster=True):
            note(cluster["tags"].get(CLUSTER_KEY), cluster.get("createdAt"))
    for stack in session.pages("cloudformation", "describe_stacks", "Stacks"):
        stack_tags = as_dict(stack.get("Tags"))
        if belongs_to(stack_tags, settings, any_cluster=True):
            note(stack_tags.get(CLUSTER_KEY), stack.get("CreationTime"))
    return times


def leftover_clusters(session: AwsSession, settings: Settings) -> set[str]:
    """Cluster names with anything tagged for this owner in the region or in IAM."""
    found = {t.get(CLUSTER_KEY, "") for _, t in tagged_arns(session, owner_filters(settings))}
    for getter in (iam.owned_roles, iam.owned_policies, iam.owned_instance_profiles):
        found |= {r["Tags"].get(CLUSTER_KEY, "") for r in getter(session, settings, any_cluster=True)}
    return {name for name in found if name}


def parse_age(text: str) -> dt.timedelta:
    """``"90m"``, ``"12h"``, ``"2d"`` or ``"1w"`` as a timedelta (for ``labkit sweep --older-than``)."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in units or not value[:-1].replace(".", "", 1).isdigit():
        raise ConfigError(f"cannot read the age {text!r}", "write a number and a unit: 90m, 12h, 2d or 1w")
    return dt.timedelta(**{units[value[-1]]: float(value[:-1])})


def sweep(
    settings: Settings,
    older_than: dt.timedelta | None = None,
    *,
    session: AwsSession | None = None,
    dry_run: bool = False,
) -> SweepReport:
    """Tear down every cluster this owner left in ``settings.region`` (``labkit sweep``).

    Args:
        settings: whose leftovers (``owner``) and where (``region``); ``cluster_name`` is ignored.
        older_than: only clusters whose oldest resource is at least this old (unknown age counts as old).
        session: an AWS session; :func:`~labkit.aws.session.connect` if ``None``.
        dry_run: report what would be torn down, delete nothing.

    Raises:
        TeardownIncomplete: a cluster's teardown left tagged resources behind.
    """
    session = session or connect(settings)
    report = SweepReport()
    clusters = leftover_clusters(session, settings)
    ages = _created_at(session, settings) if older_than is not None else {}
    now = dt.datetime.now(dt.UTC)
    for name in sorted(clusters):
        born = ages.get(name)
        if older_than is not None and born is not None and now - born < older_than:
            report.skipped[name] = f"created {born:%Y-%m-%d %H:%M} UTC, younger than {older_than}"
            continue
        target = settings.replace(cluster_name=name)
        if dry_run:
            report.torn_down[name] = TeardownReport(cluster=name, survivors=survivors(session, target))
            continue
        report.torn_down[name] = teardown(session, target, check=False)
    if not dry_run:
        dirty = [r for r in report.torn_down.values() if not r.clean]
        if dirty:
            raise TeardownIncomplete(dirty[0])
    return report
