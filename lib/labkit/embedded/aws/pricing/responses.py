"""Wire format of the embedded Price List Service (json protocol)."""

from __future__ import annotations

from typing import Any

from labkit.embedded.aws.pricing import models
from labkit.embedded.aws.wire import Forward, ShimError, ShimRequest, ShimResponse, amz_json_response, paginate


def _check_region(request: ShimRequest) -> None:
    if request.region not in models.PRICING_REGIONS:
        raise ShimError(
            "UnknownEndpoint",
            f"the Price List API has no endpoint in {request.region}; use one of {', '.join(models.PRICING_REGIONS)}",
            404,
        )


def get_products(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    _check_region(request)
    items = models.get_products(params.get("ServiceCode", ""), list(params.get("Filters", [])))
    page, token = paginate(items, params.get("MaxResults"), params.get("NextToken"))
    out: dict[str, Any] = {"FormatVersion": params.get("FormatVersion", "aws_v1"), "PriceList": page}
    if token:
        out["NextToken"] = token
    return amz_json_response(out)


def describe_services(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    _check_region(request)
    code = params.get("ServiceCode")
    services = (
        []
        if code not in (None, models.EC2)
        else [{"ServiceCode": models.EC2, "AttributeNames": models.attribute_names()}]
    )
    return amz_json_response({"Services": services, "FormatVersion": "aws_v1"})


def get_attribute_values(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    _check_region(request)
    if params.get("ServiceCode") != models.EC2:
        return amz_json_response({"AttributeValues": []})
    values = [{"Value": v} for v in models.attribute_values(params.get("AttributeName", ""))]
    page, token = paginate(values, params.get("MaxResults"), params.get("NextToken"))
    out: dict[str, Any] = {"AttributeValues": page}
    if token:
        out["NextToken"] = token
    return amz_json_response(out)
