"""Wire format of the embedded EKS AMI parameters (json protocol); other names go to moto."""

from __future__ import annotations

import datetime as dt
from typing import Any

from labkit.embedded.aws import catalog
from labkit.embedded.aws.ssm import models
from labkit.embedded.aws.wire import Forward, ShimError, ShimRequest, ShimResponse, amz_json_response, paginate


def _modified() -> float:
    return dt.datetime.fromisoformat(f"{catalog.eks()['as_of']}T00:00:00+00:00").timestamp()


def _name(raw: str) -> str:
    # A parameter may be asked for with a version or label selector: /a/b:1
    return raw.split(":", 1)[0] if not raw.startswith("arn:") else raw


def get_parameter(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    name = _name(params.get("Name", ""))
    if not models.owns(name):
        return forward()
    found = models.parameter(request.region, name, _modified())
    if found is None:
        raise ShimError("ParameterNotFound", f"Parameter {name} not found.")
    return amz_json_response({"Parameter": found})


def get_parameters(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    names = [_name(n) for n in params.get("Names", [])]
    if not names or not all(models.owns(n) for n in names):
        return forward()
    found, missing = [], []
    for name in names:
        item = models.parameter(request.region, name, _modified())
        if item is None:
            missing.append(name)
        else:
            found.append(item)
    return amz_json_response({"Parameters": found, "InvalidParameters": missing})


def get_parameters_by_path(request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
    path = params.get("Path", "")
    if not models.owns(path.rstrip("/") + "/"):
        return forward()
    names = models.by_path(request.region, path, bool(params.get("Recursive")))
    page, token = paginate(names, params.get("MaxResults", 10), params.get("NextToken"))
    out: dict[str, Any] = {"Parameters": [models.parameter(request.region, n, _modified()) for n in page]}
    if token:
        out["NextToken"] = token
    return amz_json_response(out)
