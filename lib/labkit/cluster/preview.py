"""What ``labkit.aws.teardown.teardown`` would delete, in its order, without deleting anything.

The order is the teardown's dependency order: what runs on the cluster before the
cluster, what controllers left behind after it, IAM after everything that used it,
and the VPC last, when nothing uses it any more. The preview ends as the teardown does,
with everything still tagged for the cluster: after a real teardown that list must be empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.aws import eks, iam, karpenter, names, teardown
from labkit.aws import vpc as vpc_mod
from labkit.aws.session import AwsSession
from labkit.aws.tags import as_dict, belongs_to
from labkit.errors import NotFound
from labkit.kube.tables import Table
from labkit.settings import Settings


@dataclass(frozen=True)
class Step:
    """One teardown step: what it deletes now, and why it comes at this point."""

    order: int
    what: str
    items: tuple[str, ...]
    why: str


@dataclass
class TeardownPreview:
    """The steps a teardown would take now, and what is tagged for the cluster."""

    cluster: str
    steps: list[Step] = field(default_factory=list)
    tagged: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many things the steps would delete."""
        return sum(len(s.items) for s in self.steps)

    def table(self) -> Table:
        rows = tuple((str(s.order), s.what, str(len(s.items)), ", ".join(s.items) or "-", s.why) for s in self.steps)
        return Table(("STEP", "DELETES", "COUNT", "ITEMS", "WHY-HERE"), rows, f"teardown of {self.cluster}, in order")

    def __str__(self) -> str:
        lines = [f"Teardown of {self.cluster} would delete {self.count} thing(s), in this order:"]
        for s in self.steps:
            lines.append(f"  {s.order:>2}. {s.what}: {', '.join(s.items) if s.items else 'none'}")
        lines.append(f"then it lists what is still tagged for the cluster (now: {len(self.tagged)} resources)")
        lines.append("and fails if anything is left.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.table().to_html() + (
            f"<p>Then it lists what is still tagged for the cluster (now {len(self.tagged)} resources) and fails "
            "if anything is left.</p>"
        )


def _safe(fn: Callable[[], list[str]]) -> list[str]:
    try:
        return fn()
    except NotFound:
        return []


def _cluster_parts(session: AwsSession, settings: Settings) -> dict[str, list[str]]:
    name = settings.cluster_name
    exists = eks.describe_cluster(session, settings) is not None

    def listed(operation: str, key: str) -> list[Any]:
        return session.pages("eks", operation, key, clusterName=name) if exists else []

    return {
        "nodegroups": _safe(lambda: [str(n) for n in listed("list_nodegroups", "nodegroups")]),
        "addons": _safe(lambda: [str(a) for a in listed("list_addons", "addons")]),
        "associations": _safe(
            lambda: [
                f"{a['namespace']}/{a['serviceAccount']}"
                for a in listed("list_pod_identity_associations", "associations")
            ]
        ),
        "access": _safe(lambda: [str(p) for p in listed("list_access_entries", "accessEntries")]),
        "cluster": [name] if exists else [],
    }


def _load_balancers(session: AwsSession, settings: Settings) -> list[str]:
    balancers = session.pages("elbv2", "describe_load_balancers", "LoadBalancers")
    by_arn = {lb["LoadBalancerArn"]: lb["LoadBalancerName"] for lb in balancers}
    arns = list(by_arn)
    found = []
    for start in range(0, len(arns), 20):
        for desc in session.call("elbv2", "describe_tags", ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            lb_tags = as_dict(desc.get("Tags"))
            name = settings.cluster_name
            if name in (lb_tags.get("elbv2.k8s.aws/cluster"), lb_tags.get("eks:eks-cluster-name")) or belongs_to(
                lb_tags, settings
            ):
                found.append(by_arn[desc["ResourceArn"]])
    return found


def _controller_leftovers(session: AwsSession, settings: Settings) -> list[str]:
    name = settings.cluster_name
    reservations = session.pages(
        "ec2",
        "describe_instances",
        "Reservations",
        Filters=[
            {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{name}"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ],
    )
    found = [f"instance {i['InstanceId']} ({i['InstanceType']})" for r in reservations for i in r["Instances"]]
    templates = session.pages(
        "ec2",
        "describe_launch_templates",
        "LaunchTemplates",
        Filters=[{"Name": "tag:karpenter.k8s.aws/cluster", "Values": [name]}],
    )
    found += [f"launch template {t['LaunchTemplateName']}" for t in templates]
    groups = session.pages(
        "ec2",
        "describe_security_groups",
        "SecurityGroups",
        Filters=[{"Name": "tag:elbv2.k8s.aws/cluster", "Values": [name]}],
    )
    return found + [f"security group {g['GroupName']}" for g in groups]


def _karpenter_queue(session: AwsSession, settings: Settings) -> list[str]:
    found = []
    for rule in karpenter.rule_names(settings):
        try:
            session.call("events", "describe_rule", Name=rule)
            found.append(f"rule {rule}")
        except NotFound:
            continue
    queue = names.interruption_queue(settings.cluster_name)
    try:
        session.call("sqs", "get_queue_url", QueueName=queue)
        found.append(f"queue {queue}")
    except NotFound:
        pass
    return found


def _iam(session: AwsSession, settings: Settings) -> list[str]:
    found = [f"instance profile {p['InstanceProfileName']}" for p in iam.owned_instance_profiles(session, settings)]
    found += [f"role {r['RoleName']}" for r in iam.owned_roles(session, settings)]
    return found + [f"policy {p['PolicyName']}" for p in iam.owned_policies(session, settings)]


def teardown_preview(session: AwsSession, settings: Settings) -> TeardownPreview:
    """What a teardown of ``settings.cluster_name`` would delete now, step by step (deletes nothing)."""
    parts = _cluster_parts(session, settings)
    stack = vpc_mod.describe(session, settings)
    planned = [
        ("managed node groups", parts["nodegroups"], "their nodes run pods; EKS refuses to delete a cluster with them"),
        ("EKS add-ons", parts["addons"], "they run in the cluster"),
        ("Pod Identity associations", parts["associations"], "they belong to the cluster"),
        ("access entries", parts["access"], "they belong to the cluster"),
        ("the EKS cluster", parts["cluster"], "Auto Mode removes its own nodes with it"),
        ("load balancers of the cluster", _load_balancers(session, settings), "controllers made them; they hold ENIs"),
        (
            "instances, launch templates, security groups left by controllers",
            _controller_leftovers(session, settings),
            "Karpenter and the load balancer controller outlive nothing",
        ),
        ("Karpenter interruption queue and rules", _karpenter_queue(session, settings), "nothing sends to them now"),
        ("IAM instance profiles, roles, policies", _iam(session, settings), "nothing assumes them any more"),
        (
            "the VPC stack (subnets, NAT gateway, internet gateway)",
            [stack["StackName"]] if stack else [],
            "last: nothing may use the VPC",
        ),
    ]
    steps = [Step(i, what, tuple(items), why) for i, (what, items, why) in enumerate(planned, start=1)]
    return TeardownPreview(settings.cluster_name, steps, teardown.preview(session, settings))
