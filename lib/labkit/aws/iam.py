"""IAM roles and policies of the cluster, its nodes and its controllers (least privilege).

Policy documents live in ``infra/aws/iam/``; AWS managed policies are attached by
name. Every role, policy and instance profile is created under the path
``/labkit/`` with the kit's tags, so teardown and the sweeper find them (the
Resource Groups Tagging API does not list IAM roles). Each ``ensure_*`` is
idempotent: it creates what is missing and fixes trust and attachments of what exists.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.aws import names
from labkit.aws.session import AwsSession, ignore_missing
from labkit.aws.tags import as_dict, belongs_to, tag_list
from labkit.errors import Conflict, Invalid, NotFound
from labkit.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
POLICY_DIR = REPO_ROOT / "infra" / "aws" / "iam"
MANAGED_POLICY_MAX_CHARS = 6144  # IAM counts characters other than whitespace

CLUSTER_POLICIES: dict[str, tuple[str, ...]] = {
    "standard": ("AmazonEKSClusterPolicy",),
    "auto": (
        "AmazonEKSClusterPolicy",
        "AmazonEKSComputePolicy",
        "AmazonEKSBlockStoragePolicy",
        "AmazonEKSLoadBalancingPolicy",
        "AmazonEKSNetworkingPolicy",
    ),
}
NODE_POLICIES: dict[str, tuple[str, ...]] = {
    "standard": (
        "AmazonEKSWorkerNodePolicy",
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonEKS_CNI_Policy",
        "AmazonSSMManagedInstanceCore",
    ),
    "auto": ("AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly"),
}


@dataclass(frozen=True)
class RoleRef:
    name: str
    arn: str


def managed_policy_arn(name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def document_text(name: str) -> str:
    """The raw text of ``infra/aws/iam/<name>.json``."""
    path = POLICY_DIR / f"{name}.json"
    if not path.is_file():
        raise NotFound(f"no policy document {path}", "the kit's infra/aws/iam folder is incomplete; reinstall it")
    return path.read_text()


def render(name: str, **values: str) -> str:
    """A policy document with its ``${Placeholders}`` filled in, compacted (pure but for the file read).

    Raises :class:`~labkit.errors.Invalid` if a placeholder is missing or the result is too
    large for a managed policy.
    """
    try:
        text = string.Template(document_text(name)).substitute(values)
    except KeyError as exc:
        raise Invalid(f"policy document {name} needs a value for {exc}", "this is a labkit bug: report it") from exc
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    size = len(re.sub(r"\s", "", compact))
    if size > MANAGED_POLICY_MAX_CHARS:
        raise Invalid(
            f"policy {name} is {size} characters, over IAM's {MANAGED_POLICY_MAX_CHARS} for a managed policy",
            "use a shorter cluster name",
        )
    return compact


def trust(name: str) -> str:
    """A trust policy: ``trust-eks-cluster``, ``trust-ec2`` or ``trust-pod-identity``."""
    return json.dumps(json.loads(document_text(name)), separators=(",", ":"))


# --- create ----------------------------------------------------------------------------------


def ensure_role(
    session: AwsSession,
    settings: Settings,
    lab: str,
    name: str,
    *,
    trust_policy: str,
    managed: Iterable[str] = (),
    description: str = "",
) -> RoleRef:
    """Create or fix a role: its trust policy, tags and attached managed policies (names or ARNs)."""
    try:
        role = session.call(
            "iam",
            "create_role",
            RoleName=name,
            Path=names.IAM_PATH,
            AssumeRolePolicyDocument=trust_policy,
            Description=description[:1000],
            Tags=tag_list(settings, lab),
        )["Role"]
    except Conflict:
        role = session.call("iam", "get_role", RoleName=name)["Role"]
        session.call("iam", "update_assume_role_policy", RoleName=name, PolicyDocument=trust_policy)
        session.call("iam", "tag_role", RoleName=name, Tags=tag_list(settings, lab))
    attached = {
        p["PolicyArn"] for p in session.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)
    }
    for policy in managed:
        arn = policy if policy.startswith("arn:") else managed_policy_arn(policy, session.partition)
        if arn not in attached:
            session.call("iam", "attach_role_policy", RoleName=name, PolicyArn=arn)
    return RoleRef(name, role["Arn"])


def ensure_policy(session: AwsSession, settings: Settings, lab: str, name: str, document: str) -> str:
    """Create a customer managed policy, or make ``document`` its default version; returns its ARN."""
    arn = f"arn:{session.partition}:iam::{session.account_id}:policy{names.IAM_PATH}{name}"
    try:
        return str(
            session.call(
                "iam",
                "create_policy",
                PolicyName=name,
                Path=names.IAM_PATH,
                PolicyDocument=document,
                Tags=tag_list(settings, lab),
            )["Policy"]["Arn"]
        )
    except Conflict:
        pass
    current = session.call("iam", "get_policy", PolicyArn=arn)["Policy"]
    version = session.call("iam", "get_policy_version", PolicyArn=arn, VersionId=current["DefaultVersionId"])
    existing = version["PolicyVersion"]["Document"]
    existing = json.loads(existing) if isinstance(existing, str) else existing
    if existing != json.loads(document):
        versions = session.call("iam", "list_policy_versions", PolicyArn=arn)["Versions"]
        old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        if len(versions) >= 5 and old:
            session.call("iam", "delete_policy_version", PolicyArn=arn, VersionId=old[0]["VersionId"])
        session.call("iam", "create_policy_version", PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
    session.call("iam", "tag_policy", PolicyArn=arn, Tags=tag_list(settings, lab))
    return arn


def ensure_instance_profile(session: AwsSession, settings: Settings, lab: str, name: str, role_name: str) -> str:
    """An instance profile holding ``role_name``; returns its ARN."""
    try:
        profile = session.call(
            "iam",
            "create_instance_profile",
            InstanceProfileName=name,
            Path=names.IAM_PATH,
            Tags=tag_list(settings, lab),
        )["InstanceProfile"]
    except Conflict:
        profile = session.call("iam", "get_instance_profile", InstanceProfileName=name)["InstanceProfile"]
    if role_name not in {r["RoleName"] for r in profile.get("Roles", [])}:
        session.call("iam", "add_role_to_instance_profile", InstanceProfileName=name, RoleName=role_name)
    return str(profile["Arn"])


def cluster_role(session: AwsSession, settings: Settings, lab: str, profile: str) -> RoleRef:
    """The role EKS assumes to run the control plane (and, on ``auto``, compute, storage, load balancing)."""
    return ensure_role(
        session,
        settings,
        lab,
        names.role(settings.cluster_name, "cluster"),
        trust_policy=trust("trust-eks-cluster"),
        managed=CLUSTER_POLICIES[profile],
        description=f"EKS cluster role of {settings.cluster_name} ({profile})",
    )


def node_role(session: AwsSession, settings: Settings, lab: str, profile: str) -> RoleRef:
    """The role of the cluster's EC2 nodes (Auto Mode nodes, or the managed system node group)."""
    return ensure_role(
        session,
        settings,
        lab,
        names.role(settings.cluster_name, "node"),
        trust_policy=trust("trust-ec2"),
        managed=NODE_POLICIES[profile],
        description=f"EKS node role of {settings.cluster_name} ({profile})",
    )


def karpenter_node_role(session: AwsSession, settings: Settings, lab: str) -> tuple[RoleRef, str]:
    """The role and instance profile of nodes Karpenter launches (``standard`` profile)."""
    role = ensure_role(
        session,
        settings,
        lab,
        names.role(settings.cluster_name, "karpenter-node"),
        trust_policy=trust("trust-ec2"),
        managed=NODE_POLICIES["standard"],
        description=f"Nodes launched by Karpenter for {settings.cluster_name}",
    )
    profile_arn = ensure_instance_profile(
        session, settings, lab, names.instance_profile(settings.cluster_name), role.name
    )
    return role, profile_arn


def karpenter_controller_role(
    session: AwsSession, settings: Settings, lab: str, *, node_role_arn: str, queue_arn: str
) -> RoleRef:
    """The Karpenter controller's role, for Pod Identity, with the cluster-scoped policy from ``infra``."""
    document = render(
        "karpenter-controller-policy",
        Partition=session.partition,
        Region=session.region,
        AccountId=session.account_id,
        ClusterName=settings.cluster_name,
        NodeRoleArn=node_role_arn,
        QueueArn=queue_arn,
    )
    policy_arn = ensure_policy(
        session, settings, lab, names.policy(settings.cluster_name, "karpenter-controller"), document
    )
    return ensure_role(
        session,
        settings,
        lab,
        names.role(settings.cluster_name, "karpenter"),
        trust_policy=trust("trust-pod-identity"),
        managed=[policy_arn],
        description=f"Karpenter controller of {settings.cluster_name} (EKS Pod Identity)",
    )


def pod_identity_role(
    session: AwsSession, settings: Settings, lab: str, purpose: str, managed: Iterable[str] = ()
) -> RoleRef:
    """A role a service account gets through EKS Pod Identity (trusts ``pods.eks.amazonaws.com``)."""
    return ensure_role(
        session,
        settings,
        lab,
        names.role(settings.cluster_name, purpose),
        trust_policy=trust("trust-pod-identity"),
        managed=managed,
        description=f"Pod Identity role '{purpose}' of {settings.cluster_name}",
    )


# --- find and delete -------------------------------------------------------------------------


def owned_roles(session: AwsSession, settings: Settings, *, any_cluster: bool = False) -> list[dict[str, Any]]:
    """The kit's roles of this owner (and cluster), with their tags (``Tags`` as a dict)."""
    found = []
    for role in session.pages("iam", "list_roles", "Roles", PathPrefix=names.IAM_PATH):
        try:
            role_tags = as_dict(session.pages("iam", "list_role_tags", "Tags", RoleName=role["RoleName"]))
        except NotFound:
            continue
        if belongs_to(role_tags, settings, any_cluster=any_cluster):
            found.append({**role, "Tags": role_tags})
    return found


def owned_policies(session: AwsSession, settings: Settings, *, any_cluster: bool = False) -> list[dict[str, Any]]:
    found = []
    for policy in session.pages("iam", "list_policies", "Policies", Scope="Local", PathPrefix=names.IAM_PATH):
        try:
            policy_tags = as_dict(session.pages("iam", "list_policy_tags", "Tags", PolicyArn=policy["Arn"]))
        except NotFound:
            continue
        if belongs_to(policy_tags, settings, any_cluster=any_cluster):
            found.append({**policy, "Tags": policy_tags})
    return found


def owned_instance_profiles(
    session: AwsSession, settings: Settings, *, any_cluster: bool = False
) -> list[dict[str, Any]]:
    found = []
    for profile in session.pages("iam", "list_instance_profiles", "InstanceProfiles", PathPrefix=names.IAM_PATH):
        try:
            full = session.call("iam", "get_instance_profile", InstanceProfileName=profile["InstanceProfileName"])
        except NotFound:
            continue
        profile_tags = as_dict(full["InstanceProfile"].get("Tags"))
        if belongs_to(profile_tags, settings, any_cluster=any_cluster):
            found.append({**full["InstanceProfile"], "Tags": profile_tags})
    return found


def delete_instance_profile(session: AwsSession, name: str) -> bool:
    try:
        profile = session.call("iam", "get_instance_profile", InstanceProfileName=name)["InstanceProfile"]
    except NotFound:
        return False
    for role in profile.get("Roles", []):
        ignore_missing(
            lambda r=role: session.call(
                "iam", "remove_role_from_instance_profile", InstanceProfileName=name, RoleName=r["RoleName"]
            )
        )
    return ignore_missing(lambda: session.call("iam", "delete_instance_profile", InstanceProfileName=name))


def delete_role(session: AwsSession, name: str) -> bool:
    """Detach, empty and delete a role; ``False`` if it did not exist."""
    try:
        attached = session.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)
    except NotFound:
        return False
    for policy in attached:
        ignore_missing(
            lambda p=policy: session.call("iam", "detach_role_policy", RoleName=name, PolicyArn=p["PolicyArn"])
        )
    for inline in session.pages("iam", "list_role_policies", "PolicyNames", RoleName=name):
        ignore_missing(lambda n=inline: session.call("iam", "delete_role_policy", RoleName=name, PolicyName=n))
    for profile in session.pages("iam", "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name):
        ignore_missing(
            lambda p=profile: session.call(
                "iam", "remove_role_from_instance_profile", InstanceProfileName=p["InstanceProfileName"], RoleName=name
            )
        )
    return ignore_missing(lambda: session.call("iam", "delete_role", RoleName=name))


def delete_policy(session: AwsSession, arn: str) -> bool:
    """Detach a customer managed policy from everything, delete its versions and itself."""
    try:
        session.call("iam", "get_policy", PolicyArn=arn)
    except NotFound:
        return False
    entities = session.call("iam", "list_entities_for_policy", PolicyArn=arn)
    for role in entities.get("PolicyRoles", []):
        ignore_missing(lambda r=role: session.call("iam", "detach_role_policy", RoleName=r["RoleName"], PolicyArn=arn))
    for user in entities.get("PolicyUsers", []):
        ignore_missing(lambda u=user: session.call("iam", "detach_user_policy", UserName=u["UserName"], PolicyArn=arn))
    for group in entities.get("PolicyGroups", []):
        ignore_missing(
            lambda g=group: session.call("iam", "detach_group_policy", GroupName=g["GroupName"], PolicyArn=arn)
        )
    for version in session.call("iam", "list_policy_versions", PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            ignore_missing(
                lambda v=version: session.call("iam", "delete_policy_version", PolicyArn=arn, VersionId=v["VersionId"])
            )
    return ignore_missing(lambda: session.call("iam", "delete_policy", PolicyArn=arn))
