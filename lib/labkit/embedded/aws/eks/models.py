"""EKS state moto lacks: Auto Mode fields, add-ons, access entries, Pod Identity associations.

Clusters and node groups themselves live in moto's EKS backend; this backend keeps
what moto does not (and the timing of status changes), per account and region, and
joins moto's Resource Groups Tagging API so tagged EKS resources can be found.
Times are wall-clock epoch seconds passed in by the responses layer; ``ready_in`` is
already converted from simulated to wall seconds.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.resource_tagging import TaggableResourcesMixin, TaggedResource
from moto.utilities.utils import get_partition

from labkit.embedded.aws import catalog
from labkit.embedded.aws.wire import in_use, invalid_parameter, invalid_request, not_found

AUTO_NODE_POOLS = ("general-purpose", "system")
AUTH_MODES = ("API", "API_AND_CONFIG_MAP", "CONFIG_MAP")
ACCESS_ENTRY_TYPES = ("STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX", "HYPERPOD_LINUX")
POLICY_ARN_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"


def _uuid() -> str:
    return str(uuid.uuid4())


def principal_of(caller_arn: str) -> str:
    """The IAM principal behind an STS caller ARN (what EKS stores for the cluster creator)."""
    parts = caller_arn.split(":", 5)
    if len(parts) < 6:
        return caller_arn
    partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
    if service == "sts" and resource.startswith("assumed-role/"):
        return f"arn:{partition}:iam::{account}:role/{resource.split('/')[1]}"
    if service == "sts" and resource.startswith("user/"):
        return f"arn:{partition}:iam::{account}:{resource}"
    return caller_arn


def trust_statements(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    doc = json.loads(document) if isinstance(document, str) else document
    statements = doc.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def trusts(document: str | dict[str, Any], service: str, actions: tuple[str, ...]) -> bool:
    """Whether a trust policy lets ``service`` perform every one of ``actions``."""
    allowed: set[str] = set()
    for statement in trust_statements(document):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if service not in services:
            continue
        acts = statement.get("Action", [])
        allowed.update([acts] if isinstance(acts, str) else acts)
    return all(a in allowed or "sts:*" in allowed for a in actions)


@dataclass
class ClusterState:
    """The parts of a cluster moto does not keep."""

    name: str
    version: str
    created_at: float
    ready_at: float
    access_config: dict[str, Any]
    compute_config: dict[str, Any] | None
    storage_config: dict[str, Any] | None
    elastic_load_balancing: dict[str, Any] | None
    bootstrap_self_managed_addons: bool
    upgrade_policy: dict[str, Any]
    security_group_id: str | None
    vpc_id: str | None
    creator_arn: str
    activated: bool = False  # listeners were told it is ACTIVE

    @property
    def auto_mode(self) -> bool:
        return bool(self.compute_config and self.compute_config.get("enabled"))

    @property
    def profile(self) -> str:
        return "auto" if self.auto_mode else "standard"

    @property
    def api_auth(self) -> bool:
        return self.access_config.get("authenticationMode") in ("API", "API_AND_CONFIG_MAP")

    def status(self, now: float) -> str:
        return "ACTIVE" if now >= self.ready_at else "CREATING"


@dataclass
class NodegroupState:
    cluster: str
    name: str
    ready_at: float
    remote_access_requested: bool
    deleting: bool = False

    def status(self, now: float) -> str:
        if self.deleting:
            return "DELETING"
        return "ACTIVE" if now >= self.ready_at else "CREATING"


@dataclass
class Addon:
    cluster: str
    name: str
    version: str
    arn: str
    created_at: float
    ready_at: float
    modified_at: float
    service_account_role_arn: str | None = None
    configuration_values: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    pod_identity_associations: list[str] = field(default_factory=list)
    deleting: bool = False

    def status(self, now: float) -> str:
        if self.deleting:
            return "DELETING"
        return "ACTIVE" if now >= self.ready_at else "CREATING"

    def describe(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "addonName": self.name,
            "clusterName": self.cluster,
            "status": self.status(now),
            "addonVersion": self.version,
            "health": {"issues": []},
            "addonArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": dict(self.tags),
            "owner": "aws",
            "publisher": "eks",
        }
        if self.service_account_role_arn:
            out["serviceAccountRoleArn"] = self.service_account_role_arn
        if self.configuration_values:
            out["configurationValues"] = self.configuration_values
        if self.pod_identity_associations:
            out["podIdentityAssociations"] = list(self.pod_identity_associations)
        return out


@dataclass
class AssociatedPolicy:
    policy_arn: str
    access_scope: dict[str, Any]
    associated_at: float
    modified_at: float

    def describe(self) -> dict[str, Any]:
        return {
            "policyArn": self.policy_arn,
            "accessScope": self.access_scope,
            "associatedAt": self.associated_at,
            "modifiedAt": self.modified_at,
        }


@dataclass
class AccessEntry:
    cluster: str
    principal_arn: str
    arn: str
    type: str
    username: str
    kubernetes_groups: list[str]
    created_at: float
    modified_at: float
    tags: dict[str, str] = field(default_factory=dict)
    policies: dict[str, AssociatedPolicy] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "clusterName": self.cluster,
            "principalArn": self.principal_arn,
            "kubernetesGroups": list(self.kubernetes_groups),
            "accessEntryArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": dict(self.tags),
            "username": self.username,
            "type": self.type,
        }


@dataclass
class PodIdentityAssociation:
    cluster: str
    association_id: str
    arn: str
    namespace: str
    service_account: str
    role_arn: str
    created_at: float
    modified_at: float
    tags: dict[str, str] = field(default_factory=dict)
    owner_arn: str | None = None
    disable_session_tags: bool = False
    target_role_arn: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "clusterName": self.cluster,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "roleArn": self.role_arn,
            "associationArn": self.arn,
            "associationId": self.association_id,
            "tags": dict(self.tags),
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "disableSessionTags": self.disable_session_tags,
        }
        if self.owner_arn:
            out["ownerArn"] = self.owner_arn
        if self.target_role_arn:
            out["targetRoleArn"] = self.target_role_arn
        return out

    def summary(self) -> dict[str, Any]:
        out = {
            "clusterName": self.cluster,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "associationArn": self.arn,
            "associationId": self.association_id,
        }
        if self.owner_arn:
            out["ownerArn"] = self.owner_arn
        return out


# --- the EKS catalogue ----------------------------------------------------------------------


def kubernetes_versions() -> list[str]:
    return [str(v) for v in catalog.eks()["kubernetes_versions"]]


def default_version() -> str:
    return str(catalog.eks()["default_version"])


def platform_version(version: str) -> str:
    return str(catalog.eks()["platform_versions"].get(version, "eks.1"))


def addon_catalog() -> dict[str, Any]:
    return dict(catalog.eks()["addons"])


def default_addon_version(name: str, kubernetes_version: str) -> str | None:
    for entry in addon_catalog().get(name, {}).get("versions", []):
        if kubernetes_version in entry.get("default_for", []):
            return str(entry["version"])
    return None


def addon_supports(name: str, version: str, kubernetes_version: str) -> bool:
    return any(
        e["version"] == version and kubernetes_version in e["kubernetes"]
        for e in addon_catalog().get(name, {}).get("versions", [])
    )


def access_policy_arns() -> list[str]:
    return [POLICY_ARN_PREFIX + name for name in catalog.eks()["access_policies"]]


class EksShimBackend(BaseBackend, TaggableResourcesMixin):
    """Per-account, per-region EKS state kept next to moto's EKS backend."""

    SERVICE_NAMESPACE = "eks"

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self.partition = get_partition(region_name)
        self.clusters: dict[str, ClusterState] = {}
        self.nodegroups: dict[tuple[str, str], NodegroupState] = {}
        self.addons: dict[tuple[str, str], Addon] = {}
        self.access_entries: dict[tuple[str, str], AccessEntry] = {}
        self.pod_identities: dict[tuple[str, str], PodIdentityAssociation] = {}

    # --- moto's side -------------------------------------------------------------------------

    @property
    def moto(self) -> Any:
        from moto.eks.models import eks_backends

        return eks_backends[self.account_id][self.region_name]

    @property
    def iam(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id][self.partition]

    @property
    def ec2(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account_id][self.region_name]

    def arn(self, resource: str) -> str:
        return f"arn:{self.partition}:eks:{self.region_name}:{self.account_id}:{resource}"

    def role(self, role_arn: str, what: str) -> Any:
        try:
            return self.iam.get_role_by_arn(role_arn)
        except Exception:
            raise invalid_parameter(f"{what} {role_arn} does not exist or cannot be assumed") from None

    def require_cluster(self, name: str, now: float, *, active: bool = True) -> ClusterState:
        if name not in self.moto.clusters or name not in self.clusters:
            raise not_found(f"No cluster found for name: {name}.")
        state = self.clusters[name]
        if active and state.status(now) != "ACTIVE":
            raise invalid_request(f"Cluster '{name}' is not in ACTIVE status")
        return state

    # --- clusters ------------------------------------------------------------------------------

    def validate_cluster_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check a CreateCluster body the way EKS does; returns it with defaults filled in."""
        version = str(body.get("version") or default_version())
        if version not in kubernetes_versions():
            raise invalid_parameter(
                f"unsupported Kubernetes version {version}. Supported: {', '.join(kubernetes_versions())}"
            )
        compute = body.get("computeConfig") or {}
        storage = (body.get("storageConfig") or {}).get("blockStorage") or {}
        network = body.get("kubernetesNetworkConfig") or {}
        elb = network.get("elasticLoadBalancing") or {}
        flags = (bool(compute.get("enabled")), bool(storage.get("enabled")), bool(elb.get("enabled")))
        if any(flags) and not all(flags):
            raise invalid_parameter(
                "EKS Auto Mode needs computeConfig.enabled, storageConfig.blockStorage.enabled and "
                "kubernetesNetworkConfig.elasticLoadBalancing.enabled all set to true, or all to false"
            )
        auth = (body.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP")
        if auth not in AUTH_MODES:
            raise invalid_parameter(f"authenticationMode must be one of {', '.join(AUTH_MODES)}")
        if all(flags):
            if auth == "CONFIG_MAP":
                raise invalid_parameter("EKS Auto Mode requires authenticationMode API or API_AND_CONFIG_MAP")
            pools = compute.get("nodePools") or []
            unknown = [p for p in pools if p not in AUTO_NODE_POOLS]
            if unknown:
                raise invalid_parameter(f"unknown built-in node pools {unknown}; use {list(AUTO_NODE_POOLS)}")
            if pools and not compute.get("nodeRoleArn"):
                raise invalid_parameter("computeConfig.nodeRoleArn is required when nodePools are given")
            if compute.get("nodeRoleArn"):
                node_role = self.role(compute["nodeRoleArn"], "Node role")
                if not trusts(node_role.assume_role_policy_document, "ec2.amazonaws.com", ("sts:AssumeRole",)):
                    raise invalid_parameter(f"Node role {compute['nodeRoleArn']} must trust ec2.amazonaws.com")
        role = self.role(str(body.get("roleArn", "")), "Role with arn")
        actions = ("sts:AssumeRole", "sts:TagSession") if all(flags) else ("sts:AssumeRole",)
        if not trusts(role.assume_role_policy_document, "eks.amazonaws.com", actions):
            raise invalid_parameter(
                f"Role with arn: {body.get('roleArn')}, could not be assumed because its trust policy does not let "
                f"eks.amazonaws.com perform {' and '.join(actions)}"
            )
        self.validate_subnets(list((body.get("resourcesVpcConfig") or {}).get("subnetIds") or []), minimum_azs=2)
        return {**body, "version": version}

    def validate_subnets(self, subnet_ids: list[str], *, minimum_azs: int = 1) -> str | None:
        """Subnets must exist and (for clusters) span two AZs; returns their VPC id."""
        if not subnet_ids:
            raise invalid_parameter("subnets must be specified")
        zones, vpcs = set(), set()
        for subnet_id in subnet_ids:
            try:
                subnet = self.ec2.get_subnet(subnet_id)
            except Exception:
                raise invalid_parameter(f"Subnet {subnet_id} does not exist") from None
            zones.add(subnet.availability_zone)
            vpcs.add(subnet.vpc_id)
        if len(zones) < minimum_azs:
            raise invalid_parameter(
                f"Subnets specified must be in at least {minimum_azs} different AZs; got {sorted(zones)}"
            )
        if len(vpcs) > 1:
            raise invalid_parameter("Subnets must all belong to the same VPC")
        return vpcs.pop() if vpcs else None

    def register_cluster(self, body: dict[str, Any], now: float, ready_in: float, creator_arn: str) -> ClusterState:
        name = body["name"]
        subnets = list((body.get("resourcesVpcConfig") or {}).get("subnetIds") or [])
        vpc_id = self.validate_subnets(subnets)
        access = {"authenticationMode": "CONFIG_MAP", "bootstrapClusterCreatorAdminPermissions": True}
        access.update(body.get("accessConfig") or {})
        network = body.get("kubernetesNetworkConfig") or {}
        state = ClusterState(
            name=name,
            version=body["version"],
            created_at=now,
            ready_at=now + ready_in,
            access_config=access,
            compute_config=body.get("computeConfig"),
            storage_config=body.get("storageConfig"),
            elastic_load_balancing=network.get("elasticLoadBalancing"),
            bootstrap_self_managed_addons=bool(body.get("bootstrapSelfManagedAddons", True)),
            upgrade_policy=body.get("upgradePolicy") or {"supportType": "EXTENDED"},
            security_group_id=None,
            vpc_id=vpc_id,
            creator_arn=principal_of(creator_arn),
        )
        sg = self.ec2.create_security_group(
            name=f"eks-cluster-sg-{name}-{uuid.uuid4().hex[:10]}",
            description="EKS created security group applied to ENI that is attached to EKS Control Plane master "
            "nodes, as well as any managed workloads.",
            vpc_id=vpc_id,
            tags={
                "aws:eks:cluster-name": name,
                f"kubernetes.io/cluster/{name}": "owned",
                "Name": f"eks-cluster-sg-{name}",
            },
        )
        state.security_group_id = sg.id
        self.clusters[name] = state
        if state.api_auth and access.get("bootstrapClusterCreatorAdminPermissions", True):
            entry = self.create_access_entry(name, state.creator_arn, entry_type="STANDARD", now=now, check=False)
            self.associate_access_policy(
                name, entry.principal_arn, POLICY_ARN_PREFIX + "AmazonEKSClusterAdminPolicy", {"type": "cluster"}, now
            )
        if state.auto_mode and state.compute_config and state.compute_config.get("nodeRoleArn"):
            entry = self.create_access_entry(
                name, state.compute_config["nodeRoleArn"], entry_type="EC2", now=now, check=False
            )
            self.associate_access_policy(
                name,
                entry.principal_arn,
                POLICY_ARN_PREFIX + "AmazonEKSAutoNodePolicy",
                {"type": "cluster"},
                now,
                check=False,
            )
        return state

    def forget_cluster(self, name: str) -> ClusterState | None:
        """Drop everything EKS deletes together with a cluster; returns what was kept for it."""
        state = self.clusters.pop(name, None)
        for store in (self.nodegroups, self.addons, self.access_entries, self.pod_identities):
            for key in [k for k in store if k[0] == name]:
                store.pop(key)
        if state and state.security_group_id:
            with contextlib.suppress(Exception):  # already gone
                self.ec2.delete_security_group(group_id=state.security_group_id)
        return state

    def render_cluster(self, cluster: dict[str, Any], now: float, endpoint: tuple[str, str] | None) -> dict[str, Any]:
        """moto's cluster JSON with what EKS also returns."""
        state = self.clusters.get(cluster.get("name", ""))
        if state is None:
            return cluster
        out = dict(cluster)
        status = state.status(now)
        out["status"] = status
        out["version"] = state.version
        out["platformVersion"] = platform_version(state.version)
        out["accessConfig"] = dict(state.access_config)
        out["upgradePolicy"] = dict(state.upgrade_policy)
        out["health"] = {"issues": []}
        network = {"serviceIpv4Cidr": "172.20.0.0/16", "ipFamily": "ipv4", **(out.get("kubernetesNetworkConfig") or {})}
        if state.elastic_load_balancing is not None:
            network["elasticLoadBalancing"] = dict(state.elastic_load_balancing)
        out["kubernetesNetworkConfig"] = network
        if state.compute_config is not None:
            out["computeConfig"] = dict(state.compute_config)
        if state.storage_config is not None:
            out["storageConfig"] = dict(state.storage_config)
        vpc = dict(out.get("resourcesVpcConfig") or {})
        vpc.setdefault("securityGroupIds", [])
        vpc.setdefault("endpointPublicAccess", True)
        vpc.setdefault("endpointPrivateAccess", False)
        vpc.setdefault("publicAccessCidrs", ["0.0.0.0/0"])
        if state.security_group_id:
            vpc["clusterSecurityGroupId"] = state.security_group_id
        if state.vpc_id:
            vpc["vpcId"] = state.vpc_id
        out["resourcesVpcConfig"] = vpc
        if status != "ACTIVE":
            out.pop("endpoint", None)
            out["certificateAuthority"] = {}
        elif endpoint is not None:
            out["endpoint"], out["certificateAuthority"] = endpoint[0], {"data": endpoint[1]}
        return out

    # --- node groups ---------------------------------------------------------------------------

    def register_nodegroup(self, cluster: str, body: dict[str, Any], now: float, ready_in: float) -> NodegroupState:
        state = NodegroupState(cluster, body["nodegroupName"], now + ready_in, bool(body.get("remoteAccess")))
        self.nodegroups[(cluster, state.name)] = state
        cluster_state = self.clusters[cluster]
        node_role = body.get("nodeRole")
        if cluster_state.api_auth and node_role and (cluster, node_role) not in self.access_entries:
            self.create_access_entry(cluster, node_role, entry_type="EC2_LINUX", now=now, check=False)
        return state

    def render_nodegroup(self, nodegroup: dict[str, Any], now: float) -> dict[str, Any]:
        state = self.nodegroups.get((nodegroup.get("clusterName", ""), nodegroup.get("nodegroupName", "")))
        if state is None:
            return nodegroup
        out = dict(nodegroup)
        out["status"] = state.status(now)
        if not state.remote_access_requested:
            out.pop("remoteAccess", None)
            resources = dict(out.get("resources") or {})
            resources.pop("remoteAccessSecurityGroup", None)
            out["resources"] = resources
        return out

    # --- add-ons -------------------------------------------------------------------------------

    def create_addon(self, cluster: str, body: dict[str, Any], now: float, ready_in: float) -> Addon:
        state = self.require_cluster(cluster, now)
        name = body.get("addonName", "")
        if name not in addon_catalog():
            raise invalid_parameter(f"Addon {name} specified is not supported")
        if (cluster, name) in self.addons:
            raise in_use(f"Addon already exists: {name}")
        version = body.get("addonVersion") or default_addon_version(name, state.version)
        if version is None or not addon_supports(name, version, state.version):
            raise invalid_parameter(f"Addon version {version} of {name} is not supported on Kubernetes {state.version}")
        if body.get("serviceAccountRoleArn"):
            self.role(body["serviceAccountRoleArn"], "Service account role")
        addon = Addon(
            cluster=cluster,
            name=name,
            version=version,
            arn=self.arn(f"addon/{cluster}/{name}/{_uuid()}"),
            created_at=now,
            ready_at=now + ready_in,
            modified_at=now,
            service_account_role_arn=body.get("serviceAccountRoleArn"),
            configuration_values=body.get("configurationValues"),
            tags=dict(body.get("tags") or {}),
        )
        for assoc in body.get("podIdentityAssociations") or []:
            created = self.create_pod_identity(
                cluster,
                namespace="kube-system",
                service_account=assoc["serviceAccount"],
                role_arn=assoc["roleArn"],
                now=now,
                owner_arn=addon.arn,
            )
            addon.pod_identity_associations.append(created.arn)
        self.addons[(cluster, name)] = addon
        return addon

    def addon(self, cluster: str, name: str) -> Addon:
        if cluster not in self.clusters:
            raise not_found(f"No cluster found for name: {cluster}.")
        if (cluster, name) not in self.addons:
            raise not_found(f"No addon: {name} found in cluster: {cluster}")
        return self.addons[(cluster, name)]

    def update_addon(self, cluster: str, name: str, body: dict[str, Any], now: float) -> Addon:
        addon = self.addon(cluster, name)
        state = self.require_cluster(cluster, now)
        if body.get("addonVersion"):
            if not addon_supports(name, body["addonVersion"], state.version):
                raise invalid_parameter(f"Addon version {body['addonVersion']} of {name} is not supported")
            addon.version = body["addonVersion"]
        if "serviceAccountRoleArn" in body:
            addon.service_account_role_arn = body["serviceAccountRoleArn"] or None
        if "configurationValues" in body:
            addon.configuration_values = body["configurationValues"] or None
        addon.modified_at = now
        return addon

    def remove_addon(self, cluster: str, name: str) -> None:
        addon = self.addons.pop((cluster, name), None)
        if addon is None:
            return
        for key, assoc in list(self.pod_identities.items()):
            if assoc.owner_arn == addon.arn:
                self.pod_identities.pop(key)

    # --- access entries ------------------------------------------------------------------------

    def create_access_entry(
        self,
        cluster: str,
        principal_arn: str,
        *,
        entry_type: str | None,
        now: float,
        username: str | None = None,
        groups: list[str] | None = None,
        tags: dict[str, str] | None = None,
        check: bool = True,
    ) -> AccessEntry:
        if check:
            state = self.require_cluster(cluster, now)
            if not state.api_auth:
                raise invalid_request(
                    f"The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform "
                    f"this operation (cluster {cluster})"
                )
        entry_type = entry_type or "STANDARD"
        if entry_type not in ACCESS_ENTRY_TYPES:
            raise invalid_parameter(f"type must be one of {', '.join(ACCESS_ENTRY_TYPES)}")
        parts = principal_arn.split(":", 5)
        if len(parts) < 6 or parts[2] != "iam" or not parts[5].startswith(("role/", "user/")):
            raise invalid_parameter(f"The specified principalArn is invalid: {principal_arn}")
        if entry_type != "STANDARD" and groups:
            raise invalid_parameter(f"kubernetesGroups cannot be specified for access entries of type {entry_type}")
        if (cluster, principal_arn) in self.access_entries:
            raise in_use(f"The specified access entry resource is already in use on this cluster: {principal_arn}")
        is_role = parts[5].startswith("role/")
        name = parts[5].split("/")[-1]
        if username is None:
            if entry_type in ("EC2_LINUX", "EC2_WINDOWS", "EC2", "HYBRID_LINUX", "HYPERPOD_LINUX"):
                username = "system:node:{{EC2PrivateDNSName}}"
            elif entry_type == "FARGATE_LINUX":
                username = "system:node:{{SessionName}}"
            elif is_role:
                username = f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{name}/{{{{SessionName}}}}"
            else:
                username = principal_arn
        kind = "role" if is_role else "user"
        entry = AccessEntry(
            cluster=cluster,
            principal_arn=principal_arn,
            arn=self.arn(f"access-entry/{cluster}/{kind}/{parts[4]}/{name}/{_uuid()}"),
            type=entry_type,
            username=username,
            kubernetes_groups=list(groups or []),
            created_at=now,
            modified_at=now,
            tags=dict(tags or {}),
        )
        self.access_entries[(cluster, principal_arn)] = entry
        return entry

    def access_entry(self, cluster: str, principal_arn: str) -> AccessEntry:
        if cluster not in self.clusters:
            raise not_found(f"No cluster found for name: {cluster}.")
        if (cluster, principal_arn) not in self.access_entries:
            raise not_found(
                f"The specified principalArn could not be found. You can view your available access "
                f"entries with 'list-access-entries'. ({principal_arn})"
            )
        return self.access_entries[(cluster, principal_arn)]

    def associate_access_policy(
        self,
        cluster: str,
        principal_arn: str,
        policy_arn: str,
        scope: dict[str, Any],
        now: float,
        *,
        check: bool = True,
    ) -> AssociatedPolicy:
        entry = self.access_entry(cluster, principal_arn)
        if policy_arn not in access_policy_arns():
            raise invalid_parameter(f"The specified policyArn is invalid: {policy_arn}")
        if check and entry.type != "STANDARD":
            raise invalid_request(
                f"Access policies can only be associated with access entries of type STANDARD; "
                f"{principal_arn} is {entry.type}"
            )
        scope_type = scope.get("type")
        if scope_type not in ("cluster", "namespace"):
            raise invalid_parameter("accessScope.type must be cluster or namespace")
        if scope_type == "namespace" and not scope.get("namespaces"):
            raise invalid_parameter("accessScope.namespaces is required when accessScope.type is namespace")
        if scope_type == "cluster" and scope.get("namespaces"):
            raise invalid_parameter("accessScope.namespaces must be empty when accessScope.type is cluster")
        previous = entry.policies.get(policy_arn)
        associated = AssociatedPolicy(
            policy_arn,
            {"type": scope_type, "namespaces": list(scope.get("namespaces") or [])},
            previous.associated_at if previous else now,
            now,
        )
        entry.policies[policy_arn] = associated
        return associated

    # --- Pod Identity --------------------------------------------------------------------------

    def create_pod_identity(
        self,
        cluster: str,
        *,
        namespace: str,
        service_account: str,
        role_arn: str,
        now: float,
        tags: dict[str, str] | None = None,
        owner_arn: str | None = None,
        disable_session_tags: bool = False,
        target_role_arn: str | None = None,
    ) -> PodIdentityAssociation:
        self.require_cluster(cluster, now)
        if not namespace or not service_account:
            raise invalid_parameter("namespace and serviceAccount are required")
        self.role(role_arn, "Role")
        for assoc in self.pod_identities.values():
            if assoc.cluster == cluster and assoc.namespace == namespace and assoc.service_account == service_account:
                raise in_use(f"Association already exists: {assoc.association_id} for {namespace}/{service_account}")
        association_id = "a-" + uuid.uuid4().hex[:17]
        assoc = PodIdentityAssociation(
            cluster=cluster,
            association_id=association_id,
            arn=self.arn(f"podidentityassociation/{cluster}/{association_id}"),
            namespace=namespace,
            service_account=service_account,
            role_arn=role_arn,
            created_at=now,
            modified_at=now,
            tags=dict(tags or {}),
            owner_arn=owner_arn,
            disable_session_tags=disable_session_tags,
            target_role_arn=target_role_arn,
        )
        self.pod_identities[(cluster, association_id)] = assoc
        return assoc

    def pod_identity(self, cluster: str, association_id: str) -> PodIdentityAssociation:
        if cluster not in self.clusters:
            raise not_found(f"No cluster found for name: {cluster}.")
        if (cluster, association_id) not in self.pod_identities:
            raise not_found(f"No Pod Identity Association found with id: {association_id}")
        return self.pod_identities[(cluster, association_id)]

    def pod_identity_for(self, cluster: str, namespace: str, service_account: str) -> PodIdentityAssociation | None:
        for assoc in self.pod_identities.values():
            if assoc.cluster == cluster and assoc.namespace == namespace and assoc.service_account == service_account:
                return assoc
        return None

    # --- tags ------------------------------------------------------------------------------------

    def _tagged(self) -> Iterator[tuple[str, str, dict[str, str]]]:
        """(arn, resource type, live tag dict) of every taggable EKS resource here."""
        for cluster in self.moto.clusters.values():
            yield cluster.arn, "eks:cluster", cluster.tags
            for nodegroup in cluster.nodegroups.values():
                yield nodegroup.arn, "eks:nodegroup", nodegroup.tags
        for addon in self.addons.values():
            yield addon.arn, "eks:addon", addon.tags
        for entry in self.access_entries.values():
            yield entry.arn, "eks:access-entry", entry.tags
        for assoc in self.pod_identities.values():
            yield assoc.arn, "eks:podidentityassociation", assoc.tags

    def tags_of(self, arn: str) -> dict[str, str] | None:
        for found, _, tags in self._tagged():
            if found == arn:
                return tags
        return None

    def iter_tagged_resources(self) -> Iterator[TaggedResource]:
        for arn, kind, tags in self._tagged():
            yield TaggedResource(arn=arn, tags=dict(tags), resource_type=kind)

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        found = self.tags_of(arn)
        if found is None:
            raise not_found(f"Resource was not found: {arn}")
        found.update(tags)

    def untag_resource(self, arn: str, tag_keys: list[str]) -> None:
        found = self.tags_of(arn)
        if found is None:
            raise not_found(f"Resource was not found: {arn}")
        for key in tag_keys:
            found.pop(key, None)


eks_shim_backends = BackendDict(EksShimBackend, "eks")
