"""infra/aws: the VPC template passes cfn-lint; IAM documents are valid, least-privilege and fit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from cfnlint.api import lint_all

from labkit.aws import eks, iam, names, vpc
from labkit.errors import Invalid


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (!Ref, !Sub ...) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}


_CfnLoader.add_multi_constructor("!", _tag)


def _template() -> dict[str, Any]:
    return yaml.load(vpc.TEMPLATE.read_text(), Loader=_CfnLoader)


def test_vpc_template_passes_cfn_lint() -> None:
    problems = [m for m in lint_all(vpc.TEMPLATE.read_text()) if m.rule.id[0] in "EW"]
    assert problems == [], "\n".join(str(m) for m in problems)


def test_vpc_template_shape() -> None:
    template = _template()
    resources = template["Resources"]
    subnets = {k: v for k, v in resources.items() if v["Type"] == "AWS::EC2::Subnet"}
    assert len(subnets) == 4
    zones = {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets.values()}
    assert len(zones) == 2, "two Availability Zones"
    public = [s for s in subnets.values() if s["Properties"].get("MapPublicIpOnLaunch")]
    private = [s for s in subnets.values() if not s["Properties"].get("MapPublicIpOnLaunch")]
    for subnet in public:
        assert {"Key": "kubernetes.io/role/elb", "Value": "1"} in subnet["Properties"]["Tags"]
    for subnet in private:
        tags = subnet["Properties"]["Tags"]
        assert {"Key": "kubernetes.io/role/internal-elb", "Value": "1"} in tags
        assert {"Key": "karpenter.sh/discovery", "Value": {"Ref": "ClusterName"}} in tags
    assert sum(v["Type"] == "AWS::EC2::NatGateway" for v in resources.values()) == 1
    assert resources["Vpc"]["Properties"]["EnableDnsHostnames"] is True, "EKS nodes need DNS hostnames"
    assert set(template["Outputs"]) >= {"VpcId", "PublicSubnetIds", "PrivateSubnetIds", "NatGatewayId"}


def test_stack_parameters_match_the_template(settings: Any) -> None:
    given = {p["ParameterKey"] for p in vpc.stack_parameters(settings, ["us-west-2a", "us-west-2b"])}
    assert given == set(_template()["Parameters"]), "every parameter is passed (moto ignores list defaults)"
    with pytest.raises(ValueError, match="exactly two"):
        vpc.stack_parameters(settings, ["us-west-2a"])


def test_trust_policies() -> None:
    for name, service, actions in (
        ("trust-eks-cluster", "eks.amazonaws.com", {"sts:AssumeRole", "sts:TagSession"}),
        ("trust-ec2", "ec2.amazonaws.com", {"sts:AssumeRole"}),
        ("trust-pod-identity", "pods.eks.amazonaws.com", {"sts:AssumeRole", "sts:TagSession"}),
    ):
        (statement,) = json.loads(iam.trust(name))["Statement"]
        assert statement["Principal"] == {"Service": service}
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert set(listed) == actions


def test_karpenter_policy_is_scoped_to_the_cluster_and_fits() -> None:
    values = {
        "Partition": "aws",
        "Region": "us-west-2",
        "AccountId": "123456789012",
        "ClusterName": "genai-platform",
        "NodeRoleArn": "arn:aws:iam::123456789012:role/labkit/labkit-genai-platform-karpenter-node",
        "QueueArn": "arn:aws:sqs:us-west-2:123456789012:labkit-genai-platform-karpenter",
    }
    document = json.loads(iam.render("karpenter-controller-policy", **values))
    assert "${" not in json.dumps(document)
    statements = {s["Sid"]: s for s in document["Statement"]}
    for sid in ("CreateOnlyClusterTaggedResources", "DeleteOnlyOwnResources", "ManageOwnInstanceProfiles"):
        assert "kubernetes.io/cluster/genai-platform" in json.dumps(statements[sid]["Condition"])
    assert statements["PassOnlyTheNodeRole"]["Resource"] == values["NodeRoleArn"]
    assert statements["ConsumeInterruptionQueue"]["Resource"] == values["QueueArn"]
    unconditioned_writes = [
        s["Sid"]
        for s in document["Statement"]
        if "Condition" not in s
        and s["Resource"] == "*"
        and any(
            not a.split(":")[1].startswith(("Describe", "Get", "List"))
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
    ]
    assert unconditioned_writes == [], "no write action on every resource"
    assert len(re.sub(r"\s", "", json.dumps(document))) <= iam.MANAGED_POLICY_MAX_CHARS
    with pytest.raises(Invalid, match="needs a value"):
        iam.render("karpenter-controller-policy", Partition="aws")
    long = "x" * 100
    too_long = {
        **values,
        "Region": "ap-southeast-4",
        "ClusterName": long,
        "NodeRoleArn": f"arn:aws:iam::123456789012:role/labkit/{names.role(long, 'karpenter-node')}",
        "QueueArn": f"arn:aws:sqs:ap-southeast-4:123456789012:{names.interruption_queue(long)}",
    }
    with pytest.raises(Invalid, match="shorter cluster name"):
        iam.render("karpenter-controller-policy", **too_long)


def test_names_fit_their_services() -> None:
    long = "a" * 100
    assert len(names.role(long, "karpenter-node")) <= 64
    assert names.role(long, "node") != names.role(long[:-1] + "b", "node"), "a hash keeps long names apart"
    assert names.role("genai-platform", "cluster") == "labkit-genai-platform-cluster"
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", names.vpc_stack("my_cluster"))
    assert len(names.interruption_queue(long)) <= 80
    assert len(names.event_rule(long, "instance-state-change")) <= 64


def test_cluster_requests_per_profile(settings: Any) -> None:
    auto = eks.cluster_request(
        settings,
        "week1",
        profile="auto",
        version="1.33",
        cluster_role_arn="arn:r",
        subnet_ids=["s1", "s2"],
        node_role_arn="arn:n",
    )
    assert auto["computeConfig"] == {
        "enabled": True,
        "nodePools": ["general-purpose", "system"],
        "nodeRoleArn": "arn:n",
    }
    assert auto["storageConfig"] == {"blockStorage": {"enabled": True}}
    assert auto["kubernetesNetworkConfig"]["elasticLoadBalancing"] == {"enabled": True}
    assert auto["accessConfig"]["authenticationMode"] == "API"
    assert auto["bootstrapSelfManagedAddons"] is False
    assert auto["tags"] == settings.tags("week1")
    standard = eks.cluster_request(
        settings, "week1", profile="standard", version="1.33", cluster_role_arn="arn:r", subnet_ids=["s1", "s2"]
    )
    assert "computeConfig" not in standard
    assert "elasticLoadBalancing" not in standard["kubernetesNetworkConfig"]
    with pytest.raises(Invalid, match="node role"):
        eks.cluster_request(settings, "week1", profile="auto", version="1.33", cluster_role_arn="r", subnet_ids=[])


def test_principal_from_caller() -> None:
    assert eks.principal_from_caller("arn:aws:sts::111122223333:assumed-role/Admin/alice") == (
        "arn:aws:iam::111122223333:role/Admin",
        "Admin",
    )
    assert eks.principal_from_caller("arn:aws:iam::111122223333:user/bob") == (
        "arn:aws:iam::111122223333:user/bob",
        None,
    )
