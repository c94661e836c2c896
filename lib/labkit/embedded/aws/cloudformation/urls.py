"""Routes of the embedded CloudFormation fixes."""

from __future__ import annotations

from labkit.embedded.aws.cloudformation import responses
from labkit.embedded.aws.wire import Route, action_route


def routes() -> list[Route]:
    return [action_route("cloudformation", "DescribeStacks", responses.describe_stacks)]
