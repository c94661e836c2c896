"""Wire fixes for moto's CloudFormation answers (query protocol, XML)."""

from __future__ import annotations

import ast
import re
from typing import Any

from labkit.embedded.aws.wire import Forward, ShimRequest, ShimResponse

_LIST_VALUE = re.compile(r"<ParameterValue>(\[[^<]*\])</ParameterValue>")


def _joined(match: re.Match[str]) -> str:
    try:
        values = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return match.group(0)
    if not isinstance(values, list):
        return match.group(0)
    return f"<ParameterValue>{','.join(str(v) for v in values)}</ParameterValue>"


def describe_stacks(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    """moto returns list parameters as Python reprs (``['a', 'b']``); CloudFormation returns ``a,b``."""
    response = forward()
    if response.ok:
        response.body = _LIST_VALUE.sub(_joined, response.body.decode()).encode()
    return response
