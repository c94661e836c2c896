"""Routes of the embedded Price List Service."""

from __future__ import annotations

from labkit.embedded.aws.pricing import responses
from labkit.embedded.aws.wire import Route, target_route


def routes() -> list[Route]:
    return [
        target_route("pricing", "GetProducts", responses.get_products),
        target_route("pricing", "DescribeServices", responses.describe_services),
        target_route("pricing", "GetAttributeValues", responses.get_attribute_values),
    ]
