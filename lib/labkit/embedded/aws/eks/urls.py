"""Routes of the embedded EKS additions (URIs come from botocore's EKS model)."""

from __future__ import annotations

from labkit.embedded.aws.eks.responses import EksResponses
from labkit.embedded.aws.runtime import ShimRuntime
from labkit.embedded.aws.wire import Route, rest_route

OPERATIONS = {
    "CreateCluster": "create_cluster",
    "DescribeCluster": "describe_cluster",
    "DeleteCluster": "delete_cluster",
    "CreateNodegroup": "create_nodegroup",
    "DescribeNodegroup": "describe_nodegroup",
    "DeleteNodegroup": "delete_nodegroup",
    "TagResource": "tag_resource",
    "UntagResource": "untag_resource",
    "ListTagsForResource": "list_tags_for_resource",
    "CreateAddon": "create_addon",
    "DescribeAddon": "describe_addon",
    "ListAddons": "list_addons",
    "UpdateAddon": "update_addon",
    "DeleteAddon": "delete_addon",
    "DescribeAddonVersions": "describe_addon_versions",
    "CreateAccessEntry": "create_access_entry",
    "DescribeAccessEntry": "describe_access_entry",
    "ListAccessEntries": "list_access_entries",
    "UpdateAccessEntry": "update_access_entry",
    "DeleteAccessEntry": "delete_access_entry",
    "AssociateAccessPolicy": "associate_access_policy",
    "DisassociateAccessPolicy": "disassociate_access_policy",
    "ListAssociatedAccessPolicies": "list_associated_access_policies",
    "ListAccessPolicies": "list_access_policies",
    "CreatePodIdentityAssociation": "create_pod_identity_association",
    "DescribePodIdentityAssociation": "describe_pod_identity_association",
    "ListPodIdentityAssociations": "list_pod_identity_associations",
    "UpdatePodIdentityAssociation": "update_pod_identity_association",
    "DeletePodIdentityAssociation": "delete_pod_identity_association",
}


def routes(runtime: ShimRuntime) -> list[Route]:
    r = EksResponses(runtime)
    out = [rest_route("eks", operation, getattr(r, method)) for operation, method in OPERATIONS.items()]
    out.append(rest_route("eks-auth", "AssumeRoleForPodIdentity", r.assume_role_for_pod_identity))
    return out
