"""Price list state: AmazonEC2 products built from the price list, and GetProducts filtering.

The price list is :func:`labkit.embedded.aws.catalog.prices`: every instance type of the planner's
catalog at its us-east-1 on-demand price, served in every region the embedded Price List knows.

Each instance type yields, per region, the product variants a real price list has, so
the usual filters (operatingSystem, tenancy, preInstalledSw, capacitystatus) decide
which one a caller gets: Linux/Shared/Used (the list price), reserved-capacity variants,
dedicated tenancy and Windows.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from labkit.embedded.aws import catalog
from labkit.embedded.aws.wire import ShimError

EC2 = "AmazonEC2"
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
WINDOWS_PER_VCPU = 0.046  # what Windows adds per vCPU-hour on top of Linux
DEDICATED_FACTOR = 1.1
OFFER_TERM = "JRTCKXETXF"  # the on-demand offer term code
RATE_CODE = "6YS6EN2CT7"  # the hourly price dimension code


def _sku(*parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest().upper()
    return "".join(c for c in digest if c.isalnum())[:16]


def _variants(base: float, vcpu: int) -> list[tuple[dict[str, str], float]]:
    linux = {
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "licenseModel": "No License required",
    }
    return [
        ({**linux, "capacitystatus": "Used"}, base),
        ({**linux, "capacitystatus": "UnusedCapacityReservation"}, base),
        ({**linux, "capacitystatus": "AllocatedCapacityReservation"}, 0.0),
        ({**linux, "tenancy": "Dedicated", "capacitystatus": "Used"}, round(base * DEDICATED_FACTOR, 6)),
        ({**linux, "operatingSystem": "Windows", "capacitystatus": "Used"}, round(base + vcpu * WINDOWS_PER_VCPU, 6)),
    ]


def _usage_type(prefix: str, attrs: Mapping[str, str], instance_type: str) -> str:
    kind = "DedicatedUsage" if attrs["tenancy"] == "Dedicated" else "BoxUsage"
    if attrs["capacitystatus"] == "UnusedCapacityReservation":
        kind = "UnusedBox"
    elif attrs["capacitystatus"] == "AllocatedCapacityReservation":
        kind = "Reservation"
    return f"{prefix}{kind}:{instance_type}"


def _product(region: str, info: Mapping[str, Any], instance_type: str, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    table = catalog.prices()
    out = []
    for attrs, price in _variants(float(spec["on_demand"]), int(spec["vcpu"])):
        sku = _sku(region, instance_type, *attrs.values())
        attributes = {
            "servicecode": EC2,
            "servicename": "Amazon Elastic Compute Cloud",
            "location": info["location"],
            "locationType": "AWS Region",
            "regionCode": region,
            "instanceType": instance_type,
            "instanceFamily": spec["family"],
            "currentGeneration": "Yes",
            "vcpu": str(spec["vcpu"]),
            "memory": f"{spec['memory_gib']} GiB",
            "storage": "EBS only",
            "operation": "RunInstances" if attrs["operatingSystem"] == "Linux" else "RunInstances:0002",
            "usagetype": _usage_type(info["usage_prefix"], attrs, instance_type),
            **attrs,
        }
        if spec.get("gpus"):
            attributes["gpu"] = str(spec["gpus"])
            attributes["gpuMemory"] = f"{int(spec['gpus']) * int(spec['gpu_memory_gib'])} GiB"
            attributes["physicalProcessor"] = "AMD EPYC" if instance_type.startswith(("g5.", "g6")) else "Intel Xeon"
        description = (
            f"${price:.4f} per On Demand {attrs['operatingSystem']} {instance_type} Instance Hour"
            if attrs["capacitystatus"] == "Used"
            else f"${price:.4f} per {attrs['capacitystatus']} {instance_type} Instance Hour"
        )
        out.append(
            {
                "product": {"productFamily": "Compute Instance", "attributes": attributes, "sku": sku},
                "serviceCode": EC2,
                "terms": {
                    "OnDemand": {
                        f"{sku}.{OFFER_TERM}": {
                            "priceDimensions": {
                                f"{sku}.{OFFER_TERM}.{RATE_CODE}": {
                                    "unit": "Hrs",
                                    "endRange": "Inf",
                                    "description": description,
                                    "appliesTo": [],
                                    "rateCode": f"{sku}.{OFFER_TERM}.{RATE_CODE}",
                                    "beginRange": "0",
                                    "pricePerUnit": {"USD": f"{price:.10f}"},
                                }
                            },
                            "sku": sku,
                            "effectiveDate": f"{table['as_of']}T00:00:00Z",
                            "offerTermCode": OFFER_TERM,
                            "termAttributes": {},
                        }
                    }
                },
                "version": table["as_of"].replace("-", "") + "000000",
                "publicationDate": f"{table['as_of']}T00:00:00Z",
            }
        )
    return out


@functools.cache
def products(region: str) -> tuple[dict[str, Any], ...]:
    """Every EC2 product of ``region`` in the price list (cached; read-only)."""
    table = catalog.prices()
    info = table["regions"].get(region)
    if info is None:
        return ()
    found: list[dict[str, Any]] = []
    for instance_type, spec in table["instances"].items():
        found.extend(_product(region, info, instance_type, spec))
    return tuple(found)


def _region_hint(filters: Iterable[Mapping[str, str]]) -> list[str]:
    """Regions a filter set can match, to avoid building every region's products."""
    table = catalog.prices()["regions"]
    for f in filters:
        if f.get("Type", "TERM_MATCH") in ("TERM_MATCH", "EQUALS"):
            if f["Field"] == "regionCode":
                return [f["Value"]] if f["Value"] in table else []
            if f["Field"] == "location":
                return [code for code, info in table.items() if info["location"] == f["Value"]]
    return list(table)


def _matches(attributes: Mapping[str, str], f: Mapping[str, str]) -> bool:
    kind = f.get("Type", "TERM_MATCH")
    actual = attributes.get(f["Field"])
    value = f["Value"]
    if kind in ("TERM_MATCH", "EQUALS"):
        return actual is not None and actual.lower() == value.lower()
    if kind == "CONTAINS":
        return actual is not None and value.lower() in actual.lower()
    options = [v.strip().lower() for v in value.split(",")]
    if kind == "ANY_OF":
        return actual is not None and actual.lower() in options
    if kind == "NONE_OF":
        return actual is None or actual.lower() not in options
    raise ShimError("InvalidParameterException", f"Invalid filter type: {kind}")


def get_products(service_code: str, filters: list[Mapping[str, str]]) -> list[str]:
    """Price list items (JSON strings, as the real API returns them) matching ``filters``."""
    if service_code != EC2:
        return []
    for f in filters:
        if "Field" not in f or "Value" not in f:
            raise ShimError("InvalidParameterException", "Each filter needs Field and Value")
    out = []
    for region in _region_hint(filters):
        for item in products(region):
            if all(_matches(item["product"]["attributes"], f) for f in filters):
                out.append(json.dumps(item))
    return out


def attribute_names() -> list[str]:
    sample = products("us-east-1")
    names: set[str] = set()
    for item in sample:
        names.update(item["product"]["attributes"])
    return sorted(names)


def attribute_values(name: str) -> list[str]:
    values: set[str] = set()
    for region in catalog.prices()["regions"]:
        for item in products(region):
            value = item["product"]["attributes"].get(name)
            if value is not None:
                values.add(value)
    return sorted(values)
