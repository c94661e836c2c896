"""AWS prerequisites of self-managed Karpenter on the ``standard`` profile.

A node role and instance profile for the nodes Karpenter launches (with an
``EC2_LINUX`` access entry so they can join), an SQS queue that EventBridge fills
with spot interruption warnings, rebalance recommendations, instance state changes
and scheduled health events, the controller's least-privilege role, and the Pod
Identity association that gives the controller's service account that role. The
cluster security group gets the ``karpenter.sh/discovery`` tag the private subnets
already carry. Installing Karpenter itself is Week 3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labkit.aws import iam, names
from labkit.aws.eks import ensure_access_entry, ensure_pod_identity
from labkit.aws.session import AwsSession
from labkit.aws.tags import tag_list, tags
from labkit.errors import NotFound
from labkit.settings import Settings

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
TARGET_ID = "KarpenterInterruptionQueueTarget"
RETENTION_S = 300  # Karpenter acts on a message within seconds; older ones are stale

# Rule suffix -> event pattern. Karpenter reacts to each by cordoning and draining in time.
INTERRUPTION_EVENTS: dict[str, dict[str, list[str]]] = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
}


@dataclass(frozen=True)
class KarpenterPrerequisites:
    """What Week 3's Karpenter install needs to know."""

    node_role_name: str
    node_role_arn: str
    instance_profile_arn: str
    queue_name: str
    queue_url: str
    queue_arn: str
    rule_names: tuple[str, ...]
    controller_role_arn: str
    pod_identity_association_id: str
    namespace: str = NAMESPACE
    service_account: str = SERVICE_ACCOUNT


def queue_policy(queue_arn: str) -> str:
    """SQS policy: EventBridge and SQS may send; nothing over plain HTTP (pure)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EventBridgeSends",
                    "Effect": "Allow",
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                },
                {
                    "Sid": "DenyHTTP",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        },
        separators=(",", ":"),
    )


def rule_names(settings: Settings) -> list[str]:
    return [names.event_rule(settings.cluster_name, kind) for kind in INTERRUPTION_EVENTS]


def ensure_interruption_queue(session: AwsSession, settings: Settings, lab: str) -> tuple[str, str, list[str]]:
    """The interruption queue and its EventBridge rules; returns (queue URL, queue ARN, rule names)."""
    name = names.interruption_queue(settings.cluster_name)
    url = session.call(
        "sqs",
        "create_queue",
        QueueName=name,
        Attributes={"MessageRetentionPeriod": str(RETENTION_S), "SqsManagedSseEnabled": "true"},
        tags=tags(settings, lab),
    )["QueueUrl"]
    arn = session.call("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    session.call("sqs", "set_queue_attributes", QueueUrl=url, Attributes={"Policy": queue_policy(arn)})
    created = []
    for kind, pattern in INTERRUPTION_EVENTS.items():
        rule = names.event_rule(settings.cluster_name, kind)
        session.call(
            "events",
            "put_rule",
            Name=rule,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description=f"Karpenter interruption handling for {settings.cluster_name}: {kind}",
            Tags=tag_list(settings, lab),
        )
        session.call("events", "put_targets", Rule=rule, Targets=[{"Id": TARGET_ID, "Arn": arn}])
        created.append(rule)
    return url, arn, created


def tag_cluster_security_group(session: AwsSession, settings: Settings, cluster: dict[str, Any]) -> str | None:
    """Tag the EKS-created cluster security group for Karpenter discovery; returns its id."""
    group = (cluster.get("resourcesVpcConfig") or {}).get("clusterSecurityGroupId")
    if group:
        session.call(
            "ec2",
            "create_tags",
            Resources=[group],
            Tags=[{"Key": "karpenter.sh/discovery", "Value": settings.cluster_name}],
        )
    return group


def controller_policy(session: AwsSession, settings: Settings) -> str:
    """The controller's policy document for this cluster (raises if it would not fit IAM's size limit)."""
    node_role = f"arn:{session.partition}:iam::{session.account_id}:role{names.IAM_PATH}"
    node_role += names.role(settings.cluster_name, "karpenter-node")
    queue = f"arn:{session.partition}:sqs:{session.region}:{session.account_id}:"
    queue += names.interruption_queue(settings.cluster_name)
    return iam.render(
        "karpenter-controller-policy",
        Partition=session.partition,
        Region=session.region,
        AccountId=session.account_id,
        ClusterName=settings.cluster_name,
        NodeRoleArn=node_role,
        QueueArn=queue,
    )


def ensure_prerequisites(
    session: AwsSession, settings: Settings, lab: str, cluster: dict[str, Any]
) -> KarpenterPrerequisites:
    """Everything Karpenter needs from AWS, idempotently."""
    node_role, profile_arn = iam.karpenter_node_role(session, settings, lab)
    ensure_access_entry(session, settings, lab, node_role.arn, entry_type="EC2_LINUX")
    url, arn, rules = ensure_interruption_queue(session, settings, lab)
    controller = iam.karpenter_controller_role(session, settings, lab, node_role_arn=node_role.arn, queue_arn=arn)
    association = ensure_pod_identity(
        session, settings, lab, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, role_arn=controller.arn
    )
    tag_cluster_security_group(session, settings, cluster)
    return KarpenterPrerequisites(
        node_role_name=node_role.name,
        node_role_arn=node_role.arn,
        instance_profile_arn=profile_arn,
        queue_name=names.interruption_queue(settings.cluster_name),
        queue_url=url,
        queue_arn=arn,
        rule_names=tuple(rules),
        controller_role_arn=controller.arn,
        pod_identity_association_id=association["associationId"],
    )


def delete_interruption_queue(session: AwsSession, settings: Settings) -> list[str]:
    """Remove the rules' targets, the rules and the queue (idempotent); returns what was deleted."""
    deleted = []
    for rule in rule_names(settings):
        try:
            targets = session.call("events", "list_targets_by_rule", Rule=rule)["Targets"]
        except NotFound:
            continue
        if targets:
            session.call("events", "remove_targets", Rule=rule, Ids=[t["Id"] for t in targets])
        try:
            session.call("events", "delete_rule", Name=rule)
            deleted.append(f"EventBridge rule {rule}")
        except NotFound:
            pass
    try:
        url = session.call("sqs", "get_queue_url", QueueName=names.interruption_queue(settings.cluster_name))[
            "QueueUrl"
        ]
    except NotFound:
        return deleted
    session.call("sqs", "delete_queue", QueueUrl=url)
    deleted.append(f"SQS queue {url.rsplit('/', 1)[-1]}")
    return deleted
