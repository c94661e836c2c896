"""The EKS cluster in two profiles, its add-ons, access entries, Pod Identity and kubeconfig.

``auto``: EKS Auto Mode. EKS runs compute (the built-in ``general-purpose`` and
``system`` NodePools), block storage and load balancing, with the VPC CNI; Cilium
cannot be the CNI. ``standard``: a small managed system node group and the
prerequisites of self-managed Karpenter (:mod:`labkit.aws.karpenter`), so Week 2 can
install Cilium and Week 3 Karpenter.

Request builders are pure functions; the rest creates idempotently and waits with
progress. Nothing here knows which target it runs on.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit.aws import iam, preflight
from labkit.aws import vpc as vpc_mod
from labkit.aws.session import AwsSession
from labkit.aws.tags import tags
from labkit.errors import Conflict, Forbidden, Invalid, NotFound, ServerError
from labkit.settings import Settings

DEFAULT_VERSION = "1.33"
CREATE_TIMEOUT_S = 30 * 60
NODEGROUP_TIMEOUT_S = 25 * 60
ADDON_TIMEOUT_S = 15 * 60
DELETE_TIMEOUT_S = 20 * 60
ACCESS_POLICY_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
CLUSTER_ADMIN = ACCESS_POLICY_PREFIX + "AmazonEKSClusterAdminPolicy"
AUTO_NODE_POOLS = ("general-purpose", "system")
PROFILE_ADDONS: dict[str, tuple[str, ...]] = {
    # Auto Mode runs networking, DNS, kube-proxy and the Pod Identity agent itself.
    "auto": (),
    "standard": ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"),
}
SYSTEM_NODEGROUP = "system"
SYSTEM_INSTANCE_TYPES = ("m7i.large",)


# --- pure request builders -------------------------------------------------------------------


def cluster_request(
    settings: Settings,
    lab: str,
    *,
    profile: str,
    version: str,
    cluster_role_arn: str,
    subnet_ids: Iterable[str],
    node_role_arn: str | None = None,
    support_type: str = "STANDARD",
) -> dict[str, Any]:
    """CreateCluster parameters for a profile (pure).

    Both profiles use API authentication (access entries), do not let EKS install
    self-managed add-ons (managed add-ons or Auto Mode do that) and stay on standard
    support, whose control plane costs a sixth of extended support's.
    """
    request: dict[str, Any] = {
        "name": settings.cluster_name,
        "version": version,
        "roleArn": cluster_role_arn,
        "resourcesVpcConfig": {
            "subnetIds": list(subnet_ids),
            "endpointPublicAccess": True,
            "endpointPrivateAccess": True,
        },
        "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
        "bootstrapSelfManagedAddons": False,
        "upgradePolicy": {"supportType": support_type},
        "tags": tags(settings, lab),
    }
    if profile == "auto":
        if not node_role_arn:
            raise Invalid("an Auto Mode cluster needs a node role", "create it first with labkit.aws.iam.node_role")
        request["computeConfig"] = {"enabled": True, "nodePools": list(AUTO_NODE_POOLS), "nodeRoleArn": node_role_arn}
        request["storageConfig"] = {"blockStorage": {"enabled": True}}
        request["kubernetesNetworkConfig"] = {"elasticLoadBalancing": {"enabled": True}, "ipFamily": "ipv4"}
    elif profile == "standard":
        request["kubernetesNetworkConfig"] = {"ipFamily": "ipv4"}
    else:
        raise Invalid(f"unknown cluster profile {profile!r}", "use 'auto' or 'standard'")
    return request


def nodegroup_request(
    settings: Settings,
    lab: str,
    *,
    node_role_arn: str,
    subnet_ids: Iterable[str],
    name: str = SYSTEM_NODEGROUP,
    instance_types: Iterable[str] = SYSTEM_INSTANCE_TYPES,
    size: tuple[int, int, int] = (2, 3, 2),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """CreateNodegroup parameters for the small system node group of ``standard`` (pure)."""
    low, high, desired = size
    return {
        "clusterName": settings.cluster_name,
        "nodegroupName": name,
        "nodeRole": node_role_arn,
        "subnets": list(subnet_ids),
        "instanceTypes": list(instance_types),
        "amiType": "AL2023_x86_64_STANDARD",
        "capacityType": "ON_DEMAND",
        "scalingConfig": {"minSize": low, "maxSize": high, "desiredSize": desired},
        "updateConfig": {"maxUnavailable": 1},
        "labels": {"labkit.io/pool": name, **(labels or {})},
        "tags": tags(settings, lab),
    }


def principal_from_caller(caller_arn: str) -> tuple[str, str | None]:
    """(IAM principal ARN, role name to look up) for an STS caller ARN (pure).

    An assumed-role session maps to its role; the role's path is unknown from the
    session ARN, so the caller looks the role up to get its full ARN.
    """
    parts = caller_arn.split(":", 5)
    if len(parts) < 6:
        return caller_arn, None
    partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
    if service == "sts" and resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        return f"arn:{partition}:iam::{account}:role/{role}", role
    if service == "sts" and resource.startswith("user/"):
        return f"arn:{partition}:iam::{account}:{resource}", None
    return caller_arn, None


# --- clusters --------------------------------------------------------------------------------


def describe_cluster(session: AwsSession, settings: Settings) -> dict[str, Any] | None:
    try:
        return dict(session.call("eks", "describe_cluster", name=settings.cluster_name)["cluster"])
    except NotFound:
        return None


def profile_of(cluster: dict[str, Any]) -> str:
    return "auto" if (cluster.get("computeConfig") or {}).get("enabled") else "standard"


def create_cluster(
    session: AwsSession,
    settings: Settings,
    lab: str,
    *,
    profile: str,
    subnet_ids: Iterable[str],
    cluster_role_arn: str,
    node_role_arn: str | None = None,
    version: str = DEFAULT_VERSION,
) -> dict[str, Any]:
    """Create the cluster (or find it) and wait until it is ACTIVE."""
    existing = describe_cluster(session, settings)
    if existing is not None:
        if existing["status"] == "DELETING":
            raise Conflict(f"cluster {settings.cluster_name} is being deleted", "wait for the teardown, then rerun")
        if profile_of(existing) != profile:
            raise Conflict(
                f"cluster {settings.cluster_name} exists with profile '{profile_of(existing)}', not '{profile}'",
                "tear it down first, or set cluster_profile to match it",
            )
    else:
        request = cluster_request(
            settings,
            lab,
            profile=profile,
            version=version,
            cluster_role_arn=cluster_role_arn,
            subnet_ids=subnet_ids,
            node_role_arn=node_role_arn,
        )
        _create_with_iam_retry(session, request)
    return wait_cluster_active(session, settings)


def _create_with_iam_retry(session: AwsSession, request: dict[str, Any], attempts: int = 6) -> None:
    """CreateCluster, retried while a just-created role is not yet visible to EKS (IAM is eventually consistent)."""
    for attempt in range(attempts):
        try:
            session.call("eks", "create_cluster", **request)
            return
        except Invalid as exc:
            if "assume" not in exc.what.lower() or attempt == attempts - 1:
                raise
            time.sleep(session.poll_s)
        except Conflict:
            return  # created by an earlier, interrupted attempt


def wait_cluster_active(session: AwsSession, settings: Settings) -> dict[str, Any]:
    def probe() -> tuple[bool, str]:
        cluster = describe_cluster(session, settings)
        if cluster is None:
            raise NotFound(f"cluster {settings.cluster_name} disappeared while waiting", "rerun the create cell")
        if cluster["status"] == "FAILED":
            raise ServerError(f"cluster {settings.cluster_name} FAILED to create", "tear down and retry")
        return cluster["status"] == "ACTIVE", cluster["status"]

    session.wait(f"cluster {settings.cluster_name}", probe, timeout_s=CREATE_TIMEOUT_S)
    found = describe_cluster(session, settings)
    assert found is not None
    return found


# --- node groups -----------------------------------------------------------------------------


def describe_nodegroup(session: AwsSession, settings: Settings, name: str) -> dict[str, Any] | None:
    try:
        return dict(
            session.call("eks", "describe_nodegroup", clusterName=settings.cluster_name, nodegroupName=name)[
                "nodegroup"
            ]
        )
    except NotFound:
        return None


def ensure_nodegroup(session: AwsSession, request: dict[str, Any]) -> dict[str, Any]:
    """Create a managed node group (or find it) and wait until it is ACTIVE."""
    cluster, name = request["clusterName"], request["nodegroupName"]
    with contextlib.suppress(Conflict):
        session.call("eks", "create_nodegroup", **request)

    def probe() -> tuple[bool, str]:
        found = session.call("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=name)["nodegroup"]
        if found["status"] in ("CREATE_FAILED", "DEGRADED"):
            issues = "; ".join(i.get("message", "") for i in (found.get("health") or {}).get("issues", []))
            raise ServerError(f"node group {name} is {found['status']}: {issues}", "check the node role and subnets")
        return found["status"] == "ACTIVE", found["status"]

    session.wait(f"node group {name}", probe, timeout_s=NODEGROUP_TIMEOUT_S)
    return dict(session.call("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=name)["nodegroup"])


# --- add-ons ---------------------------------------------------------------------------------


def ensure_addons(
    session: AwsSession, settings: Settings, lab: str, addon_names: Iterable[str]
) -> list[dict[str, Any]]:
    """Install managed add-ons (default version for the cluster) and wait until each is ACTIVE."""
    wanted = list(addon_names)
    for name in wanted:
        with contextlib.suppress(Conflict):
            session.call(
                "eks",
                "create_addon",
                clusterName=settings.cluster_name,
                addonName=name,
                resolveConflicts="OVERWRITE",
                tags=tags(settings, lab),
            )
    done = []
    for name in wanted:

        def probe(name: str = name) -> tuple[bool, str]:
            addon = session.call("eks", "describe_addon", clusterName=settings.cluster_name, addonName=name)["addon"]
            if addon["status"] in ("CREATE_FAILED", "DEGRADED"):
                raise ServerError(f"add-on {name} is {addon['status']}", "read its health issues in the EKS console")
            return addon["status"] == "ACTIVE", addon["status"]

        session.wait(f"add-on {name}", probe, timeout_s=ADDON_TIMEOUT_S)
        done.append(session.call("eks", "describe_addon", clusterName=settings.cluster_name, addonName=name)["addon"])
    return done


# --- access ----------------------------------------------------------------------------------


def participant_principal(session: AwsSession) -> str:
    """The IAM principal ARN of whoever runs the lab (an assumed role's full role ARN, path included)."""
    principal, role_name = principal_from_caller(session.identity()["Arn"])
    if role_name:
        try:
            return str(session.call("iam", "get_role", RoleName=role_name)["Role"]["Arn"])
        except (Forbidden, NotFound):
            return principal
    return principal


def ensure_access_entry(
    session: AwsSession,
    settings: Settings,
    lab: str,
    principal_arn: str,
    *,
    entry_type: str = "STANDARD",
    policy_arn: str | None = None,
    namespaces: Iterable[str] = (),
) -> dict[str, Any]:
    """An access entry for ``principal_arn``, with ``policy_arn`` associated (cluster scope unless namespaces)."""
    try:
        entry = session.call(
            "eks",
            "create_access_entry",
            clusterName=settings.cluster_name,
            principalArn=principal_arn,
            type=entry_type,
            tags=tags(settings, lab),
        )["accessEntry"]
    except Conflict:
        entry = session.call(
            "eks", "describe_access_entry", clusterName=settings.cluster_name, principalArn=principal_arn
        )["accessEntry"]
    if policy_arn:
        scope_ns = list(namespaces)
        scope: dict[str, Any] = {"type": "namespace", "namespaces": scope_ns} if scope_ns else {"type": "cluster"}
        session.call(
            "eks",
            "associate_access_policy",
            clusterName=settings.cluster_name,
            principalArn=principal_arn,
            policyArn=policy_arn,
            accessScope=scope,
        )
    return dict(entry)


def ensure_admin_access(
    session: AwsSession, settings: Settings, lab: str, principal_arn: str | None = None
) -> dict[str, Any]:
    """Cluster admin for the participant (or ``principal_arn``) through an access entry."""
    return ensure_access_entry(
        session, settings, lab, principal_arn or participant_principal(session), policy_arn=CLUSTER_ADMIN
    )


# --- Pod Identity ----------------------------------------------------------------------------


def ensure_pod_identity(
    session: AwsSession, settings: Settings, lab: str, *, namespace: str, service_account: str, role_arn: str
) -> dict[str, Any]:
    """Associate ``namespace/service_account`` with ``role_arn`` (updates the role of an existing association)."""
    existing = session.pages(
        "eks",
        "list_pod_identity_associations",
        "associations",
        clusterName=settings.cluster_name,
        namespace=namespace,
        serviceAccount=service_account,
    )
    if existing:
        association_id = existing[0]["associationId"]
        return dict(
            session.call(
                "eks",
                "update_pod_identity_association",
                clusterName=settings.cluster_name,
                associationId=association_id,
                roleArn=role_arn,
            )["association"]
        )
    return dict(
        session.call(
            "eks",
            "create_pod_identity_association",
            clusterName=settings.cluster_name,
            namespace=namespace,
            serviceAccount=service_account,
            roleArn=role_arn,
            tags=tags(settings, lab),
        )["association"]
    )


# --- kubeconfig ------------------------------------------------------------------------------


def write_kubeconfig(session: AwsSession, settings: Settings, cluster: dict[str, Any] | None = None) -> Path:
    """Write a kubeconfig whose user runs ``labkit eks-token`` (presigned STS, as ``aws eks get-token``)."""
    from labkit.targets import eks as eks_target

    cluster = cluster or describe_cluster(session, settings)
    if cluster is None or cluster.get("status") != "ACTIVE" or not cluster.get("endpoint"):
        raise NotFound(f"cluster {settings.cluster_name} is not ACTIVE yet", "create it and wait for it first")
    config = eks_target.kubeconfig(settings, cluster["endpoint"], cluster["certificateAuthority"]["data"])
    path = eks_target.kubeconfig_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    return path


def token(session: AwsSession, settings: Settings) -> str:
    """A bearer token for the cluster (``k8s-aws-v1.`` + presigned STS GetCallerIdentity)."""
    from labkit.targets import eks as eks_target

    return eks_target.token(session.boto, settings.cluster_name, settings.region)


# --- the whole Week 1 platform ---------------------------------------------------------------


@dataclass
class PlatformResources:
    """What :func:`create_platform` made (or found)."""

    profile: str
    cluster: dict[str, Any]
    vpc: vpc_mod.VpcOutputs
    roles: dict[str, str] = field(default_factory=dict)
    addons: list[str] = field(default_factory=list)
    admin_principal: str = ""
    karpenter: Any = None
    kubeconfig: Path | None = None
    preflight: preflight.PreflightReport | None = None


def create_platform(
    session: AwsSession,
    settings: Settings,
    lab: str,
    *,
    profile: str | None = None,
    version: str = DEFAULT_VERSION,
    launches: Iterable[preflight.Launch] | None = None,
) -> PlatformResources:
    """Preflight, IAM, VPC, cluster, add-ons, access and (``standard``) node group and Karpenter prerequisites.

    Every step is idempotent, so after an interruption rerunning continues where it stopped.
    """
    from labkit.aws import karpenter

    profile = profile or settings.cluster_profile
    planned = list(launches) if launches is not None else preflight.week1_launches(profile)
    report = preflight.check(session, planned)
    if profile == "standard":
        karpenter.controller_policy(session, settings)  # fails now, not after the cluster exists, if too large
    cluster_role = iam.cluster_role(session, settings, lab, profile)
    node_role = iam.node_role(session, settings, lab, profile)
    network = vpc_mod.deploy(session, settings, lab, instance_types=[launch.instance_type for launch in planned])
    cluster = create_cluster(
        session,
        settings,
        lab,
        profile=profile,
        subnet_ids=network.private_subnet_ids,
        cluster_role_arn=cluster_role.arn,
        node_role_arn=node_role.arn if profile == "auto" else None,
        version=version,
    )
    addons = ensure_addons(session, settings, lab, PROFILE_ADDONS[profile])
    admin = participant_principal(session)
    ensure_admin_access(session, settings, lab, admin)
    resources = PlatformResources(
        profile=profile,
        cluster=cluster,
        vpc=network,
        roles={"cluster": cluster_role.arn, "node": node_role.arn},
        addons=[a["addonName"] for a in addons],
        admin_principal=admin,
        preflight=report,
    )
    if profile == "standard":
        ensure_nodegroup(
            session,
            nodegroup_request(settings, lab, node_role_arn=node_role.arn, subnet_ids=network.private_subnet_ids),
        )
        resources.karpenter = karpenter.ensure_prerequisites(session, settings, lab, cluster)
        resources.roles["karpenter-node"] = resources.karpenter.node_role_arn
        resources.roles["karpenter"] = resources.karpenter.controller_role_arn
    resources.cluster = wait_cluster_active(session, settings)
    resources.kubeconfig = write_kubeconfig(session, settings, resources.cluster)
    return resources
