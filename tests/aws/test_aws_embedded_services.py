"""The embedded AWS shim: Pricing, Service Quotas, spot history, EKS AMI parameters, stack deletion."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError
from wire_check import capture, check_all

from labkit import planner
from labkit.embedded.aws import EmbeddedAws

LINUX_USED = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
}


def _filters(**fields: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def _usd(item: str) -> float:
    data = json.loads(item)
    (term,) = data["terms"]["OnDemand"].values()
    (dimension,) = term["priceDimensions"].values()
    return float(dimension["pricePerUnit"]["USD"])


def test_pricing_returns_one_json_string_per_matching_product(session: Any, embedded_aws: EmbeddedAws) -> None:
    pricing = session.client("pricing", "us-east-1")
    seen = capture(pricing)
    result = pricing.get_products(
        ServiceCode="AmazonEC2",
        Filters=_filters(instanceType="g6e.xlarge", location="US West (Oregon)", **LINUX_USED),
    )
    assert len(result["PriceList"]) == 1
    item = result["PriceList"][0]
    assert isinstance(item, str), "the real API returns JSON strings, not objects"
    attrs = json.loads(item)["product"]["attributes"]
    assert attrs["regionCode"] == "us-west-2"
    assert attrs["gpu"] == "1"
    assert _usd(item) == embedded_aws.price_table()["instances"]["g6e.xlarge"]["on_demand"]
    assert check_all(pricing, seen) == []


def test_pricing_filters_decide_between_product_variants(session: Any) -> None:
    pricing = session.client("pricing", "us-east-1")
    loose = pricing.get_products(
        ServiceCode="AmazonEC2", Filters=_filters(instanceType="g5.xlarge", regionCode="us-east-1")
    )
    variants = {
        (a["operatingSystem"], a["tenancy"], a["capacitystatus"])
        for a in (json.loads(i)["product"]["attributes"] for i in loose["PriceList"])
    }
    assert ("Linux", "Shared", "Used") in variants
    assert ("Windows", "Shared", "Used") in variants
    assert ("Linux", "Shared", "AllocatedCapacityReservation") in variants
    windows = pricing.get_products(
        ServiceCode="AmazonEC2",
        Filters=_filters(instanceType="g5.xlarge", regionCode="us-east-1", operatingSystem="Windows"),
    )
    linux = pricing.get_products(
        ServiceCode="AmazonEC2", Filters=_filters(instanceType="g5.xlarge", regionCode="us-east-1", **LINUX_USED)
    )
    assert _usd(windows["PriceList"][0]) > _usd(linux["PriceList"][0])


def test_pricing_serves_cpu_only_types_from_the_planner_catalog(session: Any) -> None:
    pricing = session.client("pricing", "us-east-1")
    result = pricing.get_products(
        ServiceCode="AmazonEC2", Filters=_filters(instanceType="c6i.large", regionCode="us-west-2", **LINUX_USED)
    )
    (item,) = result["PriceList"]
    attrs = json.loads(item)["product"]["attributes"]
    assert (attrs["instanceFamily"], attrs["vcpu"], attrs["memory"]) == ("Compute optimized", "2", "4 GiB")
    assert attrs["usagetype"] == "USW2-BoxUsage:c6i.large"
    assert "gpu" not in attrs
    assert _usd(item) == planner.get_ec2_instance_type("c6i.large").price_per_hour


def test_pricing_pages_and_describes_services(session: Any) -> None:
    pricing = session.client("pricing", "us-east-1")
    first = pricing.get_products(ServiceCode="AmazonEC2", Filters=_filters(location="US East (Ohio)"), MaxResults=7)
    assert len(first["PriceList"]) == 7
    assert "NextToken" in first
    second = pricing.get_products(
        ServiceCode="AmazonEC2", Filters=_filters(location="US East (Ohio)"), MaxResults=7, NextToken=first["NextToken"]
    )
    assert set(first["PriceList"]).isdisjoint(second["PriceList"])
    services = pricing.describe_services(ServiceCode="AmazonEC2")["Services"]
    assert "instanceType" in services[0]["AttributeNames"]
    values = [
        v["Value"]
        for v in pricing.get_attribute_values(ServiceCode="AmazonEC2", AttributeName="instanceType")["AttributeValues"]
    ]
    assert "p5.48xlarge" in values


def test_pricing_answers_only_in_its_regions(session: Any) -> None:
    with pytest.raises(ClientError, match="no endpoint in us-west-2"):
        session.client("pricing", "us-west-2").get_products(ServiceCode="AmazonEC2", Filters=[])


def test_service_quotas_serve_the_dated_table_and_test_overrides(session: Any, embedded_aws: EmbeddedAws) -> None:
    quotas = session.client("service-quotas")
    seen = capture(quotas)
    table = {q["code"]: q for q in embedded_aws.quota_table()["quotas"]}
    assert set(table) >= {"L-1216C47A", "L-DB2E81BA", "L-417A185B", "L-3819A6DF", "L-7212CCBC"}
    quota = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-DB2E81BA")["Quota"]
    assert quota["QuotaName"] == "Running On-Demand G and VT instances"
    assert quota["Value"] == table["L-DB2E81BA"]["value"]
    assert quota["UsageMetric"]["MetricDimensions"]["Class"] == "G/OnDemand"
    default = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode="L-DB2E81BA")["Quota"]
    assert default["Value"] == table["L-DB2E81BA"]["default"]
    embedded_aws.set_quota("L-DB2E81BA", 8, region="us-west-2")
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-DB2E81BA")["Quota"]["Value"] == 8
    other_region = session.client("service-quotas", "us-east-1")
    assert other_region.get_service_quota(ServiceCode="ec2", QuotaCode="L-DB2E81BA")["Quota"]["Value"] != 8
    codes = [
        q["QuotaCode"] for q in session.pages("service-quotas", "list_service_quotas", "Quotas", ServiceCode="ec2")
    ]
    assert sorted(codes) == sorted(table)
    with pytest.raises(ClientError) as err:
        quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-NOPE")
    assert err.value.response["Error"]["Code"] == "NoSuchResourceException"
    assert check_all(quotas, seen) == []
    # other services still reach moto
    assert quotas.list_aws_default_service_quotas(ServiceCode="vpc")["Quotas"]


def test_spot_price_history_is_realistic_per_zone(session: Any, embedded_aws: EmbeddedAws) -> None:
    table = embedded_aws.price_table()["instances"]["g6.xlarge"]
    typical = table["on_demand"] * table["spot_ratio"]
    now = dt.datetime.now(dt.UTC)
    history = session.pages(
        "ec2",
        "describe_spot_price_history",
        "SpotPriceHistory",
        InstanceTypes=["g6.xlarge"],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=now,
    )
    zones = {h["AvailabilityZone"] for h in history}
    assert len(zones) >= 2, "one current record per zone that offers the type"
    assert len(history) == len(zones)
    for record in history:
        assert 0.85 * typical <= float(record["SpotPrice"]) <= 1.15 * typical
    week = session.pages(
        "ec2",
        "describe_spot_price_history",
        "SpotPriceHistory",
        InstanceTypes=["g6.xlarge"],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=now - dt.timedelta(days=2),
    )
    assert len(week) > len(history), "a longer interval returns the changes within it"
    assert len({h["SpotPrice"] for h in week}) > 1, "prices move over time"
    assert session.pages("ec2", "describe_spot_price_history", "SpotPriceHistory", InstanceTypes=["x9.nothing"]) == []


def test_eks_ami_parameters(session: Any) -> None:
    ssm = session.client("ssm")
    seen = capture(ssm)
    base = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/nvidia/recommended"
    image = ssm.get_parameter(Name=f"{base}/image_id")["Parameter"]
    assert image["Value"].startswith("ami-")
    assert json.loads(ssm.get_parameter(Name=base)["Parameter"]["Value"])["image_id"] == image["Value"]
    other_region = session.client("ssm", "eu-central-1").get_parameter(Name=f"{base}/image_id")["Parameter"]["Value"]
    assert other_region != image["Value"], "AMIs are regional"
    rocket = ssm.get_parameter(Name="/aws/service/bottlerocket/aws-k8s-1.33-nvidia/x86_64/latest/image_id")
    assert rocket["Parameter"]["Value"].startswith("ami-")
    found = ssm.get_parameters(Names=[f"{base}/image_id", f"{base}/nope"])
    assert found["InvalidParameters"] == [f"{base}/nope"]
    names = [
        p["Name"]
        for p in session.pages(
            "ssm",
            "get_parameters_by_path",
            "Parameters",
            Path="/aws/service/eks/optimized-ami/1.33/amazon-linux-2023",
            Recursive=True,
        )
    ]
    assert f"{base}/image_id" in names
    with pytest.raises(ClientError) as err:
        ssm.get_parameter(
            Name="/aws/service/eks/optimized-ami/1.10/amazon-linux-2023/x86_64/standard/recommended/image_id"
        )
    assert err.value.response["Error"]["Code"] == "ParameterNotFound"
    assert check_all(ssm, seen) == []
    # everything else is moto's
    assert ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")


def test_deleting_a_vpc_stack_deletes_its_nat_gateway_and_routes(session: Any, settings: Any) -> None:
    from labkit.aws import vpc

    out = vpc.deploy(session, settings, "week1", zones=["us-west-2a", "us-west-2b"])
    ec2 = session.client("ec2")
    assert ec2.describe_nat_gateways(NatGatewayIds=[out.nat_gateway_id])["NatGateways"][0]["State"] == "available"
    assert vpc.delete(session, settings) is True
    assert ec2.describe_nat_gateways(NatGatewayIds=[out.nat_gateway_id])["NatGateways"][0]["State"] == "deleted"
    assert not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [out.vpc_id]}])["Vpcs"]
    assert not ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [out.vpc_id]}])["RouteTables"]
    assert vpc.delete(session, settings) is False


def test_tables_are_dated_and_the_fallback_agrees_with_the_embedded_price_list(embedded_aws: EmbeddedAws) -> None:
    from labkit.aws import prices

    world = embedded_aws.price_table()
    fallback = prices.fallback_table()
    for table in (world, fallback, embedded_aws.quota_table()):
        dt.date.fromisoformat(table["as_of"])
        assert table["source"]
    assert set(world["instances"]) == set(fallback["instances"]), "both serve every priced type of the planner"
    for name, spec in world["instances"].items():
        assert fallback["instances"][name] == {"on_demand": spec["on_demand"], "spot_ratio": spec["spot_ratio"]}
    assert world["as_of"] == fallback["as_of"]
    assert {r: i["location"] for r, i in world["regions"].items()} == {
        r: loc for r, loc in prices.LOCATIONS.items() if r in world["regions"]
    }
    assert yaml.safe_dump(world)  # plain data
