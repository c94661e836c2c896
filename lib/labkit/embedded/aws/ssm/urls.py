"""Routes of the embedded EKS AMI parameters."""

from __future__ import annotations

from labkit.embedded.aws.ssm import responses
from labkit.embedded.aws.wire import Route, target_route


def routes() -> list[Route]:
    return [
        target_route("ssm", "GetParameter", responses.get_parameter),
        target_route("ssm", "GetParameters", responses.get_parameters),
        target_route("ssm", "GetParametersByPath", responses.get_parameters_by_path),
    ]
