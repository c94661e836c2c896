"""IAM helpers: idempotent ensures, policy versions, and deletes that leave nothing attached."""

from __future__ import annotations

import json
from typing import Any

from labkit.aws import iam, names, teardown, vpc


def _doc(action: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})


def test_ensure_role_fixes_what_exists(session: Any, settings: Any) -> None:
    name = names.role(settings.cluster_name, "demo")
    first = iam.ensure_role(session, settings, "week1", name, trust_policy=iam.trust("trust-ec2"))
    again = iam.pod_identity_role(session, settings, "week1", "demo", ["AmazonS3ReadOnlyAccess"])
    assert again.arn == first.arn
    assert first.arn.endswith(f":role/labkit/{name}")
    role = session.call("iam", "get_role", RoleName=name)["Role"]
    document = role["AssumeRolePolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}, "trust was updated"
    attached = session.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)
    assert [p["PolicyName"] for p in attached] == ["AmazonS3ReadOnlyAccess"]
    assert [r["RoleName"] for r in iam.owned_roles(session, settings)] == [name]
    session.call("iam", "put_role_policy", RoleName=name, PolicyName="inline", PolicyDocument=_doc("s3:ListBucket"))
    assert iam.delete_role(session, name) is True
    assert iam.delete_role(session, name) is False


def test_policy_versions_roll_and_deletion_detaches_everywhere(session: Any, settings: Any) -> None:
    name = names.policy(settings.cluster_name, "demo")
    arn = iam.ensure_policy(session, settings, "week1", name, _doc("s3:ListBucket"))
    assert iam.ensure_policy(session, settings, "week1", name, _doc("s3:ListBucket")) == arn
    assert len(session.call("iam", "list_policy_versions", PolicyArn=arn)["Versions"]) == 1, "same document: no version"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListAllMyBuckets", "s3:GetBucketTagging"):
        iam.ensure_policy(session, settings, "week1", name, _doc(action))
    versions = session.call("iam", "list_policy_versions", PolicyArn=arn)["Versions"]
    assert len(versions) == 5, "IAM keeps at most five versions: the oldest is deleted first"
    default = next(v for v in versions if v["IsDefaultVersion"])
    current = session.call("iam", "get_policy_version", PolicyArn=arn, VersionId=default["VersionId"])["PolicyVersion"]
    document = current["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Action"] == "s3:GetBucketTagging"
    user = f"{settings.cluster_name}-u"
    group = f"{settings.cluster_name}-g"
    session.call("iam", "create_user", UserName=user)
    session.call("iam", "create_group", GroupName=group)
    session.call("iam", "attach_user_policy", UserName=user, PolicyArn=arn)
    session.call("iam", "attach_group_policy", GroupName=group, PolicyArn=arn)
    assert [p["Arn"] for p in iam.owned_policies(session, settings)] == [arn]
    assert iam.delete_policy(session, arn) is True
    assert session.call("iam", "list_attached_user_policies", UserName=user)["AttachedPolicies"] == []
    assert iam.delete_policy(session, arn) is False
    session.call("iam", "delete_user", UserName=user)
    session.call("iam", "delete_group", GroupName=group)


def test_instance_profiles(session: Any, settings: Any) -> None:
    _, profile_arn = iam.karpenter_node_role(session, settings, "week1")
    assert iam.karpenter_node_role(session, settings, "week1")[1] == profile_arn
    found = iam.owned_instance_profiles(session, settings)
    assert [p["Arn"] for p in found] == [profile_arn]
    assert teardown.teardown(session, settings).clean
    assert iam.delete_instance_profile(session, names.instance_profile(settings.cluster_name)) is False


def test_stack_failure_reason(session: Any, settings: Any) -> None:
    out = vpc.deploy(session, settings, "week1", zones=["us-west-2a", "us-west-2c"])
    assert out.availability_zones == ("us-west-2a", "us-west-2c")
    assert vpc.failure_reason(session, out.stack_name) == "unknown", "nothing failed"
    assert vpc.deploy(session, settings, "week1") == out, "deploying again returns the same stack"
    assert vpc.delete(session, settings)
