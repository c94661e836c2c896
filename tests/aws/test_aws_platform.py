"""Week 1 end to end on the embedded AWS: create each profile, tear down, sweep leftovers."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
import yaml

from labkit.aws import eks, iam, karpenter, names, teardown, vpc
from labkit.aws.tags import CLUSTER_KEY, KIT_KEY, OWNER_KEY
from labkit.embedded.aws import EmbeddedAws
from labkit.errors import ConfigError

KUBE_URL = "https://127.0.0.1:6443"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def kube_endpoint(embedded_aws: EmbeddedAws) -> Any:
    embedded_aws.set_cluster_endpoint(lambda name: (KUBE_URL, CA_PEM))
    yield
    embedded_aws.set_cluster_endpoint(None)


def _tags_ok(found: dict[str, str], settings: Any) -> bool:
    return (
        found.get(KIT_KEY) == "genai-eks-labkit"
        and found.get(OWNER_KEY) == settings.owner
        and found.get(CLUSTER_KEY) == settings.cluster_name
    )


def test_auto_profile_end_to_end(session: Any, settings: Any, kube_endpoint: Any) -> None:
    made = eks.create_platform(session, settings, "week1", profile="auto")
    cluster = made.cluster
    assert cluster["status"] == "ACTIVE"
    assert cluster["computeConfig"]["nodePools"] == ["general-purpose", "system"]
    assert cluster["computeConfig"]["nodeRoleArn"] == made.roles["node"]
    assert cluster["storageConfig"]["blockStorage"]["enabled"] is True
    assert cluster["kubernetesNetworkConfig"]["elasticLoadBalancing"]["enabled"] is True
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["upgradePolicy"]["supportType"] == "STANDARD"
    assert _tags_ok(cluster["tags"], settings)
    assert made.addons == [], "Auto Mode runs the VPC CNI, kube-proxy, CoreDNS and the Pod Identity agent itself"
    assert made.karpenter is None
    attached = {
        p["PolicyName"]
        for p in session.pages(
            "iam",
            "list_attached_role_policies",
            "AttachedPolicies",
            RoleName=names.role(settings.cluster_name, "cluster"),
        )
    }
    assert attached == set(iam.CLUSTER_POLICIES["auto"])
    node_policies = {
        p["PolicyName"]
        for p in session.pages(
            "iam", "list_attached_role_policies", "AttachedPolicies", RoleName=names.role(settings.cluster_name, "node")
        )
    }
    assert node_policies == {"AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly"}
    # the participant is cluster admin through an access entry
    policies = session.call(
        "eks", "list_associated_access_policies", clusterName=settings.cluster_name, principalArn=made.admin_principal
    )["associatedAccessPolicies"]
    assert [p["policyArn"] for p in policies] == [eks.CLUSTER_ADMIN]
    # the VPC: private subnets in two zones, discoverable by load balancers and Karpenter
    subnets = session.call("ec2", "describe_subnets", SubnetIds=list(made.vpc.private_subnet_ids))["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    for subnet in subnets:
        tags = {t["Key"]: t["Value"] for t in subnet["Tags"]}
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert tags["karpenter.sh/discovery"] == settings.cluster_name
        assert _tags_ok(tags, settings), "stack tags reach every resource"
    # kubeconfig points at the cluster's endpoint and runs `labkit eks-token`
    config = yaml.safe_load(made.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == KUBE_URL
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode() == CA_PEM
    assert config["users"][0]["user"]["exec"]["args"][:3] == ["eks-token", "--cluster", settings.cluster_name]
    assert eks.token(session, settings).startswith("k8s-aws-v1.")

    again = eks.create_platform(session, settings, "week1", profile="auto")
    assert again.cluster["arn"] == cluster["arn"], "rerunning finds what exists"

    assert len(teardown.preview(session, settings)) >= 10
    report = teardown.teardown(session, settings)
    assert report.clean, report.to_text()
    assert any(d.startswith("EKS cluster") for d in report.deleted)
    assert teardown.survivors(session, settings) == []
    assert teardown.teardown(session, settings).deleted == [], "a second teardown finds nothing to do"


def test_standard_profile_end_to_end(
    session: Any, settings_factory: Any, session_factory: Any, kube_endpoint: Any
) -> None:
    settings = settings_factory(cluster_profile="standard")
    session = session_factory(settings)
    made = eks.create_platform(session, settings, "week1")
    name = settings.cluster_name
    assert made.profile == "standard"
    assert "computeConfig" not in made.cluster
    assert sorted(made.addons) == sorted(eks.PROFILE_ADDONS["standard"])
    nodegroup = session.call("eks", "describe_nodegroup", clusterName=name, nodegroupName="system")["nodegroup"]
    assert nodegroup["status"] == "ACTIVE"
    assert nodegroup["instanceTypes"] == ["m7i.large"]
    assert nodegroup["scalingConfig"] == {"minSize": 2, "maxSize": 3, "desiredSize": 2}
    assert _tags_ok(nodegroup["tags"], settings)
    prereqs = made.karpenter
    # Karpenter nodes can join: an EC2_LINUX access entry for their role
    entry = session.call("eks", "describe_access_entry", clusterName=name, principalArn=prereqs.node_role_arn)
    assert entry["accessEntry"]["type"] == "EC2_LINUX"
    profile = session.call("iam", "get_instance_profile", InstanceProfileName=names.instance_profile(name))
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [prereqs.node_role_name]
    # the interruption queue is fed by four EventBridge rules
    assert len(prereqs.rule_names) == 4
    for rule in prereqs.rule_names:
        targets = session.call("events", "list_targets_by_rule", Rule=rule)["Targets"]
        assert [t["Arn"] for t in targets] == [prereqs.queue_arn]
    patterns = [json.loads(session.call("events", "describe_rule", Name=r)["EventPattern"]) for r in prereqs.rule_names]
    assert {p["detail-type"][0] for p in patterns} == {
        "AWS Health Event",
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
    }
    queue = session.call("sqs", "get_queue_attributes", QueueUrl=prereqs.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(queue["Policy"])["Statement"][0]["Principal"]["Service"][0] == "events.amazonaws.com"
    assert _tags_ok(session.call("sqs", "list_queue_tags", QueueUrl=prereqs.queue_url)["Tags"], settings)
    # the controller's service account gets its role through Pod Identity
    assoc = session.call(
        "eks", "describe_pod_identity_association", clusterName=name, associationId=prereqs.pod_identity_association_id
    )["association"]
    assert (assoc["namespace"], assoc["serviceAccount"], assoc["roleArn"]) == (
        "kube-system",
        "karpenter",
        prereqs.controller_role_arn,
    )
    controller_policies = session.pages(
        "iam", "list_attached_role_policies", "AttachedPolicies", RoleName=names.role(name, "karpenter")
    )
    document = session.call("iam", "get_policy_version", PolicyArn=controller_policies[0]["PolicyArn"], VersionId="v1")[
        "PolicyVersion"
    ]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    text = json.dumps(document)
    assert f"kubernetes.io/cluster/{name}" in text and prereqs.queue_arn in text and prereqs.node_role_arn in text
    # the cluster security group is discoverable too
    group = made.cluster["resourcesVpcConfig"]["clusterSecurityGroupId"]
    tags = session.call("ec2", "describe_security_groups", GroupIds=[group])["SecurityGroups"][0]["Tags"]
    assert {"Key": "karpenter.sh/discovery", "Value": name} in tags

    report = teardown.teardown(session, settings)
    assert report.clean, report.to_text()
    order = [d.split(" ")[0] for d in report.deleted]
    assert order.index("node") < order.index("add-on") < order.index("EKS") < order.index("IAM") < order.index("VPC")
    assert teardown.survivors(session, settings) == []


def test_a_run_killed_midway_is_swept(settings_factory: Any, session_factory: Any, kube_endpoint: Any) -> None:
    owner = settings_factory().owner
    first = settings_factory(owner=owner, cluster_profile="standard")
    session = session_factory(first)
    # the kernel died after the VPC, the roles, the cluster and one add-on
    iam.cluster_role(session, first, "week1", "standard")
    node = iam.node_role(session, first, "week1", "standard")
    network = vpc.deploy(session, first, "week1", instance_types=["m7i.large"])
    eks.create_cluster(
        session,
        first,
        "week1",
        profile="standard",
        subnet_ids=network.private_subnet_ids,
        cluster_role_arn=iam.cluster_role(session, first, "week1", "standard").arn,
    )
    eks.ensure_addons(session, first, "week1", ["coredns"])
    karpenter.ensure_interruption_queue(session, first, "week1")
    assert node.arn
    # and an earlier, auto run of the same owner died right after its IAM roles
    second = settings_factory(owner=owner)
    iam.cluster_role(session, second, "week1", "auto")
    # someone else's leftovers are not ours to delete
    stranger = settings_factory()
    iam.node_role(session, stranger, "week1", "auto")

    assert teardown.leftover_clusters(session, first) == {first.cluster_name, second.cluster_name}
    preview = teardown.sweep(first, session=session, dry_run=True)
    assert set(preview.torn_down) == {first.cluster_name, second.cluster_name}
    assert eks.describe_cluster(session, first) is not None, "a dry run deletes nothing"

    report = teardown.sweep(first, session=session)
    assert report.clean, report.to_text()
    assert teardown.leftover_clusters(session, first) == set()
    assert eks.describe_cluster(session, first) is None
    assert vpc.describe(session, first) is None
    assert teardown.leftover_clusters(session, stranger) == {stranger.cluster_name}
    teardown.teardown(session, stranger)


def test_sweep_leaves_young_clusters_alone(settings: Any, session: Any) -> None:
    iam.node_role(session, settings, "week1", "auto")
    report = teardown.sweep(settings, older_than=dt.timedelta(hours=1), session=session)
    assert list(report.skipped) == [settings.cluster_name]
    assert "younger than" in report.to_text()
    assert teardown.survivors(session, settings) != []
    report = teardown.sweep(settings, older_than=dt.timedelta(0), session=session)
    assert report.clean
    assert teardown.survivors(session, settings) == []


def test_teardown_fails_loudly_when_something_survives(settings: Any, session: Any) -> None:
    tags = [
        {"Key": KIT_KEY, "Value": "genai-eks-labkit"},
        {"Key": OWNER_KEY, "Value": settings.owner},
        {"Key": CLUSTER_KEY, "Value": settings.cluster_name},
    ]
    # a tagged resource teardown does not know how to delete (a security group made by hand)
    vpc_id = session.call("ec2", "create_vpc", CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    group = session.call(
        "ec2",
        "create_security_group",
        GroupName=settings.cluster_name,
        Description="x",
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
    )["GroupId"]
    with pytest.raises(teardown.TeardownIncomplete, match=group) as err:
        teardown.teardown(session, settings)
    assert err.value.report.survivors
    assert "rerun the teardown" in (err.value.fix or "")
    session.call("ec2", "delete_security_group", GroupId=group)
    assert teardown.teardown(session, settings).clean


def test_parse_age() -> None:
    assert teardown.parse_age("12h") == dt.timedelta(hours=12)
    assert teardown.parse_age("2d") == dt.timedelta(days=2)
    assert teardown.parse_age("90m") == dt.timedelta(minutes=90)
    with pytest.raises(ConfigError, match="90m, 12h, 2d or 1w"):
        teardown.parse_age("soon")
