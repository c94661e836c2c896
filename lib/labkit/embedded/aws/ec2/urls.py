"""Routes of the embedded EC2 additions."""

from __future__ import annotations

from labkit.embedded.aws.ec2.responses import Ec2Responses
from labkit.embedded.aws.runtime import ShimRuntime
from labkit.embedded.aws.wire import Route, action_route


def routes(runtime: ShimRuntime) -> list[Route]:
    r = Ec2Responses(runtime)
    return [action_route("ec2", "DescribeSpotPriceHistory", r.describe_spot_price_history)]
