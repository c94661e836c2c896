"""The running cost meter: pure math over an inventory, and the inventory read from AWS."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.aws import cost, prices, teardown, vpc
from labkit.aws.cost import Inventory, Node
from labkit.errors import NotFound

FEES = {
    "eks_cluster_standard": 0.10,
    "eks_cluster_extended": 0.60,
    "nat_gateway": 0.045,
    "application_load_balancer": 0.0225,
    "network_load_balancer": 0.0225,
    "auto_mode_fraction": 0.12,
}
PRICES = {("g6.xlarge", "on-demand"): 0.8, ("g6.xlarge", "spot"): 0.3, ("m7i.large", "on-demand"): 0.1}


def _price(instance_type: str, capacity: str) -> float | None:
    return PRICES.get((instance_type, capacity))


def test_hourly_cost_adds_up() -> None:
    inventory = Inventory(
        region="us-west-2",
        cluster="c",
        nodes=[
            Node("a", "m7i.large"),
            Node("b", "m7i.large"),
            Node("c", "g6.xlarge"),
            Node("d", "g6.xlarge", "spot"),
            Node("e", "x9.unknown"),
        ],
        nat_gateways=1,
        load_balancers=[("web", "application"), ("api", "network"), ("grpc", "network")],
    )
    report = cost.hourly_cost(inventory, _price, FEES)
    expected = 0.10 + 2 * 0.1 + 0.8 + 0.3 + 0.045 + 0.0225 + 2 * 0.0225
    assert report.usd_per_hour == pytest.approx(expected)
    assert report.usd_per_day == pytest.approx(expected * 24, abs=1e-3)
    assert report.usd_per_month == pytest.approx(expected * 730, abs=0.01)
    assert report.unpriced == ["x9.unknown on-demand"]
    text = report.to_text()
    assert "EKS control plane (standard support)" in text
    assert "not in the total (price unknown): x9.unknown on-demand" in text


def test_extended_support_and_auto_mode_fees() -> None:
    inventory = Inventory(
        region="us-west-2",
        cluster="c",
        support_type="EXTENDED",
        auto_mode=True,
        nodes=[Node("a", "g6.xlarge", "spot"), Node("b", "g6.xlarge", "spot")],
    )
    report = cost.hourly_cost(inventory, _price, FEES)
    # control plane 0.60 + 2 spot nodes 0.3 + Auto Mode fee of 12 % of the ON-DEMAND price per node
    assert report.usd_per_hour == pytest.approx(0.60 + 2 * 0.3 + 2 * 0.12 * 0.8)
    assert cost.hourly_cost(Inventory(region="r"), _price, FEES).usd_per_hour == 0


def test_nodes_from_kubernetes_labels_and_merge() -> None:
    kube = cost.nodes_from_kubernetes(
        [
            {
                "metadata": {
                    "name": "n1",
                    "labels": {"node.kubernetes.io/instance-type": "g6.xlarge", "karpenter.sh/capacity-type": "spot"},
                },
                "spec": {"providerID": "aws:///us-west-2a/i-0aaa"},
            },
            {
                "metadata": {
                    "name": "n2",
                    "labels": {
                        "node.kubernetes.io/instance-type": "m7i.large",
                        "eks.amazonaws.com/capacityType": "ON_DEMAND",
                    },
                },
                "spec": {"providerID": "aws:///us-west-2b/i-0bbb"},
            },
            {"metadata": {"name": "virtual", "labels": {}}, "spec": {}},
        ]
    )
    assert [(n.name, n.instance_type, n.capacity_type, n.instance_id) for n in kube] == [
        ("n1", "g6.xlarge", "spot", "i-0aaa"),
        ("n2", "m7i.large", "on-demand", "i-0bbb"),
    ]
    ec2 = [Node("ip-1", "m7i.large", "on-demand", "i-0bbb")]
    merged = cost.merge_nodes(ec2, kube)
    assert sorted(n.instance_id for n in merged) == ["i-0aaa", "i-0bbb"], "each instance once"


def test_meter_reads_what_exists(session: Any, settings: Any) -> None:
    name = settings.cluster_name
    network = vpc.deploy(session, settings, "week1", zones=["us-west-2a", "us-west-2b"])
    node_tags = [{"ResourceType": "instance", "Tags": [{"Key": f"kubernetes.io/cluster/{name}", "Value": "owned"}]}]
    linux = session.call(
        "ssm", "get_parameter", Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )["Parameter"]["Value"]
    session.call(
        "ec2",
        "run_instances",
        ImageId=linux,
        InstanceType="m7i.large",
        MinCount=2,
        MaxCount=2,
        SubnetId=network.private_subnet_ids[0],
        TagSpecifications=node_tags,
    )
    session.call(
        "ec2",
        "run_instances",
        ImageId=linux,
        InstanceType="g6.xlarge",
        MinCount=1,
        MaxCount=1,
        SubnetId=network.private_subnet_ids[1],
        TagSpecifications=node_tags,
        InstanceMarketOptions={"MarketType": "spot"},
    )
    balancer = session.call(
        "elbv2",
        "create_load_balancer",
        Name=f"k8s-{name}"[:32],
        Subnets=list(network.public_subnet_ids),
        Type="network",
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": name}],
    )["LoadBalancers"][0]
    group = session.call(
        "elbv2",
        "create_target_group",
        Name=f"k8s-tg-{name}"[:32],
        Protocol="TCP",
        Port=80,
        VpcId=network.vpc_id,
        TargetType="ip",
    )["TargetGroups"][0]
    session.call(
        "elbv2",
        "create_listener",
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}],
    )
    template = session.call(
        "ec2",
        "create_launch_template",
        LaunchTemplateName=f"karpenter.k8s.aws/{name}",
        LaunchTemplateData={"ImageId": linux},
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "karpenter.k8s.aws/cluster", "Value": name}]}
        ],
    )["LaunchTemplate"]
    group_id = session.call(
        "ec2",
        "create_security_group",
        GroupName=f"k8s-traffic-{name}",
        Description="lb",
        VpcId=network.vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "elbv2.k8s.aws/cluster", "Value": name}]}
        ],
    )["GroupId"]
    inventory = cost.collect_inventory(session, settings)
    assert inventory.cluster is None, "no cluster yet: no control-plane fee"
    assert sorted((n.instance_type, n.capacity_type) for n in inventory.nodes) == [
        ("g6.xlarge", "spot"),
        ("m7i.large", "on-demand"),
        ("m7i.large", "on-demand"),
    ]
    assert inventory.nat_gateways == 1
    assert inventory.load_balancers == [(balancer["LoadBalancerName"], "network")]
    report = cost.meter(session, settings)
    fees = prices.fees()
    expected = (
        2 * prices.on_demand(session, "m7i.large").usd_per_hour
        + prices.spot(session, "g6.xlarge").usd_per_hour
        + fees["nat_gateway"]
        + fees["network_load_balancer"]
    )
    assert report.usd_per_hour == pytest.approx(expected)
    assert report.unpriced == []
    report = teardown.teardown(session, settings)
    deleted = "\n".join(report.deleted)
    assert "load balancer" in deleted, "teardown removes what the cluster's controllers left"
    assert "3 EC2 instance(s)" in deleted
    assert template["LaunchTemplateName"] in deleted
    assert f"k8s-traffic-{name}" in deleted
    with pytest.raises(NotFound):
        session.call("ec2", "describe_security_groups", GroupIds=[group_id])
    assert report.clean
    with pytest.raises(NotFound):
        session.call("elbv2", "describe_target_groups", Names=[group["TargetGroupName"]])
    assert cost.collect_inventory(session, settings).nodes == []
