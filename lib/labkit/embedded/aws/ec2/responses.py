"""Wire format of the embedded EC2 additions (ec2 protocol, XML)."""

from __future__ import annotations

from typing import Any

from labkit.embedded.aws.ec2 import models
from labkit.embedded.aws.runtime import ShimRuntime
from labkit.embedded.aws.wire import Forward, ShimError, ShimRequest, ShimResponse, paginate, xml_response, xml_text


class Ec2Responses:
    def __init__(self, runtime: ShimRuntime) -> None:
        self.runtime = runtime

    def describe_spot_price_history(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        filters = request.form_filters()
        instance_types = request.form_list("InstanceType") + filters.get("instance-type", [])
        products = request.form_list("ProductDescription") + filters.get("product-description", [])
        zone = request.form_value("AvailabilityZone") or next(iter(filters.get("availability-zone", [])), None)
        try:
            start = models.parse_time(request.form_value("StartTime"))
            end = models.parse_time(request.form_value("EndTime"))
        except ValueError as exc:
            raise ShimError("InvalidParameterValue", f"Invalid time: {exc}") from exc
        records = models.history(
            request.account_id,
            request.region,
            instance_types=instance_types,
            products=products,
            zone=zone,
            start=start,
            end=end,
            now=self.runtime.now(),
        )
        max_results = request.form_value("MaxResults")
        page, token = paginate(records, int(max_results) if max_results else 1000, request.form_value("NextToken"))
        items = "".join(
            "<item>" + "".join(xml_text(k, v) for k, v in models.as_dict(r).items()) + "</item>" for r in page
        )
        inner = f"<spotPriceHistorySet>{items}</spotPriceHistorySet>" + xml_text("nextToken", token or "")
        return xml_response("DescribeSpotPriceHistory", inner)
