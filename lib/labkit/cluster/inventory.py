"""Readable views of what Week 1 created in AWS: subnets, roles, add-ons, access, Pod Identity, tags.

Each function reads through :class:`~labkit.aws.AwsSession` and returns a
:class:`~labkit.kube.Table`. :func:`token_facts` explains an EKS bearer token without
showing any part of its signature or credentials.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from labkit.aws import iam, vpc
from labkit.aws.session import AwsSession
from labkit.aws.tags import CLUSTER_KEY, KIT_KEY, LAB_KEY, OWNER_KEY, as_dict, cluster_filters
from labkit.aws.teardown import tagged_arns
from labkit.errors import NotFound
from labkit.kube.tables import Table
from labkit.settings import Settings

#: Subnet tags load balancers and Karpenter use to find subnets.
DISCOVERY_TAGS = ("kubernetes.io/role/elb", "kubernetes.io/role/internal-elb", "karpenter.sh/discovery")


def subnets_table(session: AwsSession, network: vpc.VpcOutputs) -> Table:
    """The VPC's subnets: zone, CIDR, tier, and the discovery tags EKS, load balancers and Karpenter read."""
    public = set(network.public_subnet_ids)
    ids = [*network.public_subnet_ids, *network.private_subnet_ids]
    found = session.call("ec2", "describe_subnets", SubnetIds=ids)["Subnets"]
    rows = []
    for subnet in sorted(found, key=lambda s: (s["SubnetId"] not in public, s.get("AvailabilityZone", ""))):
        subnet_tags = as_dict(subnet.get("Tags"))
        discovery = ", ".join(f"{k}={subnet_tags[k]}" for k in DISCOVERY_TAGS if k in subnet_tags)
        rows.append(
            (
                subnet_tags.get("Name", subnet["SubnetId"]),
                subnet["SubnetId"],
                subnet.get("AvailabilityZone", ""),
                subnet.get("CidrBlock", ""),
                "public" if subnet["SubnetId"] in public else "private",
                discovery or "-",
            )
        )
    return Table(
        ("NAME", "SUBNET", "ZONE", "CIDR", "TIER", "DISCOVERY-TAGS"), tuple(rows), f"subnets of {network.vpc_id}"
    )


def _principals(document: Any) -> str:
    doc = json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document or {}
    found = []
    for statement in doc.get("Statement", []):
        principal = statement.get("Principal") or {}
        for value in principal.values() if isinstance(principal, dict) else [principal]:
            found += value if isinstance(value, list) else [value]
    return ", ".join(sorted(set(found)))


def roles_table(session: AwsSession, settings: Settings) -> Table:
    """The cluster's IAM roles: who may assume each (trust) and the policies attached to it."""
    rows = []
    for role in sorted(iam.owned_roles(session, settings), key=lambda r: r["RoleName"]):
        try:
            attached = session.pages(
                "iam", "list_attached_role_policies", "AttachedPolicies", RoleName=role["RoleName"]
            )
        except NotFound:
            continue
        rows.append(
            (
                role["RoleName"],
                _principals(role.get("AssumeRolePolicyDocument")),
                ", ".join(sorted(p["PolicyName"] for p in attached)) or "-",
            )
        )
    return Table(("ROLE", "TRUSTS", "POLICIES"), tuple(rows), f"IAM roles of {settings.cluster_name}")


def addons_table(session: AwsSession, settings: Settings) -> Table:
    """The cluster's managed add-ons and their status."""
    name = settings.cluster_name
    rows = []
    for addon in session.pages("eks", "list_addons", "addons", clusterName=name):
        found = session.call("eks", "describe_addon", clusterName=name, addonName=addon)["addon"]
        rows.append((addon, str(found.get("addonVersion", "")), str(found.get("status", ""))))
    return Table(("ADD-ON", "VERSION", "STATUS"), tuple(rows), f"EKS add-ons of {name}")


def access_table(session: AwsSession, settings: Settings) -> Table:
    """Who may use the cluster's Kubernetes API: access entries, their type and access policies."""
    name = settings.cluster_name
    rows = []
    for principal in session.pages("eks", "list_access_entries", "accessEntries", clusterName=name):
        entry = session.call("eks", "describe_access_entry", clusterName=name, principalArn=principal)["accessEntry"]
        policies = session.pages(
            "eks",
            "list_associated_access_policies",
            "associatedAccessPolicies",
            clusterName=name,
            principalArn=principal,
        )
        shown = []
        for p in policies:
            scope = p.get("accessScope") or {}
            where = (
                "cluster" if scope.get("type") == "cluster" else "namespaces " + ",".join(scope.get("namespaces", []))
            )
            shown.append(f"{p['policyArn'].rsplit('/', 1)[-1]} ({where})")
        rows.append((principal, str(entry.get("type", "")), ", ".join(shown) or "-"))
    return Table(("PRINCIPAL", "TYPE", "ACCESS-POLICIES"), tuple(rows), f"access entries of {name}")


def associations_table(session: AwsSession, settings: Settings) -> Table:
    """Pod Identity associations: which service account gets which IAM role."""
    name = settings.cluster_name
    rows = []
    for assoc in session.pages("eks", "list_pod_identity_associations", "associations", clusterName=name):
        found = session.call(
            "eks", "describe_pod_identity_association", clusterName=name, associationId=assoc["associationId"]
        )["association"]
        rows.append((found["namespace"], found["serviceAccount"], found["roleArn"], found["associationId"]))
    return Table(
        ("NAMESPACE", "SERVICE-ACCOUNT", "ROLE", "ASSOCIATION"), tuple(rows), f"Pod Identity associations of {name}"
    )


def _kind_of(arn: str) -> str:
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5]
    kind = resource.split("/", 1)[0] if "/" in resource else resource.split(":", 1)[0]
    return f"{service}:{kind}" if service != "sqs" else "sqs:queue"


def tags_table(session: AwsSession, settings: Settings) -> Table:
    """Every resource tagged for this owner's cluster, with the kit's tags (Tagging API plus IAM)."""
    found = [(arn, found_tags) for arn, found_tags in tagged_arns(session, cluster_filters(settings))]
    for getter in (iam.owned_roles, iam.owned_policies, iam.owned_instance_profiles):
        found += [(item["Arn"], item["Tags"]) for item in getter(session, settings)]
    rows = [
        (
            _kind_of(arn),
            arn.split(":", 5)[5],
            found_tags.get(LAB_KEY, "-"),
            found_tags.get(OWNER_KEY, "-"),
            found_tags.get(CLUSTER_KEY, "-"),
        )
        for arn, found_tags in sorted(found, key=lambda item: (_kind_of(item[0]), item[0]))
    ]
    return Table(
        ("TYPE", "RESOURCE", LAB_KEY.upper(), OWNER_KEY.upper(), CLUSTER_KEY.upper()),
        tuple(rows),
        f"resources tagged {KIT_KEY} for {settings.cluster_name}",
    )


@dataclass(frozen=True)
class TokenFacts:
    """What an EKS bearer token is made of, without its signature or credentials."""

    prefix: str
    method: str
    host: str
    action: str
    cluster_header: str
    expires_s: int
    signed_headers: str
    length: int

    def __str__(self) -> str:
        return (
            f"a {self.length}-character token: '{self.prefix}' + base64url of a presigned STS URL\n"
            f"  {self.method} https://{self.host}/?Action={self.action}\n"
            f"  signed headers: {self.signed_headers} (x-k8s-aws-id = {self.cluster_header})\n"
            f"  the signature is valid {self.expires_s} s; EKS calls STS with it to learn who you are"
        )


def token_facts(token: str, cluster_name: str) -> TokenFacts:
    """Decode an EKS token (``k8s-aws-v1.`` + presigned STS GetCallerIdentity URL); keeps secrets out (pure)."""
    prefix = "k8s-aws-v1."
    if not token.startswith(prefix):
        raise ValueError("not an EKS token: it must start with k8s-aws-v1.")
    body = token[len(prefix) :]
    url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    return TokenFacts(
        prefix=prefix,
        method="GET",
        host=parsed.netloc,
        action=query.get("Action", ""),
        cluster_header=cluster_name if "x-k8s-aws-id" in query.get("X-Amz-SignedHeaders", "") else "(missing)",
        expires_s=int(query.get("X-Amz-Expires", "0") or 0),
        signed_headers=query.get("X-Amz-SignedHeaders", ""),
        length=len(token),
    )
