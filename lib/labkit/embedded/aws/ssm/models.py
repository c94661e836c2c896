"""The ``/aws/service/eks/...`` and ``/aws/service/bottlerocket/...`` parameter trees.

AMI ids are stable per region, Kubernetes version and variant (a hash), so the same
question always gets the same answer, and different regions get different AMIs.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from labkit.embedded.aws import catalog

PREFIXES = ("/aws/service/eks/", "/aws/service/bottlerocket/")
AL2023_VARIANTS = (
    ("x86_64", "standard"),
    ("x86_64", "nvidia"),
    ("x86_64", "neuron"),
    ("arm64", "standard"),
    ("arm64", "nvidia"),
)
AL2_VARIANTS = (("amazon-linux-2", "x86_64"), ("amazon-linux-2-gpu", "x86_64"), ("amazon-linux-2-arm64", "arm64"))
BOTTLEROCKET_VARIANTS = (("", "x86_64"), ("", "arm64"), ("-nvidia", "x86_64"), ("-nvidia", "arm64"))


def owns(name: str) -> bool:
    return name.startswith(PREFIXES)


def _ami(*parts: str) -> str:
    return "ami-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:17]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@functools.cache
def parameters(region: str) -> dict[str, str]:
    """Every public EKS AMI parameter of ``region``: name -> value."""
    cat = catalog.eks()
    amis = cat["amis"]
    out: dict[str, str] = {}
    for version in cat["kubernetes_versions"]:
        release = f"{version}.0-{amis['al2023_release']}"
        for arch, variant in AL2023_VARIANTS:
            base = f"/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/{arch}/{variant}/recommended"
            image_id = _ami(region, version, "al2023", arch, variant)
            image_name = f"amazon-eks-node-al2023-{arch}-{variant}-{version}-v{amis['al2023_release']}"
            out[f"{base}/image_id"] = image_id
            out[f"{base}/image_name"] = image_name
            out[f"{base}/release_version"] = release
            out[base] = json.dumps(
                {"schema_version": "3", "image_id": image_id, "image_name": image_name, "release_version": release}
            )
        if _version_tuple(version) <= _version_tuple(str(amis["al2_max_version"])):
            for flavour, _arch in AL2_VARIANTS:
                base = f"/aws/service/eks/optimized-ami/{version}/{flavour}/recommended"
                image_id = _ami(region, version, flavour)
                suffix = {"amazon-linux-2": "", "amazon-linux-2-gpu": "-gpu", "amazon-linux-2-arm64": "-arm64"}[flavour]
                image_name = f"amazon-eks{suffix}-node-{version}-v{amis['al2_release']}"
                out[f"{base}/image_id"] = image_id
                out[f"{base}/image_name"] = image_name
                out[f"{base}/release_version"] = f"{version}.0-{amis['al2_release']}"
        for flavour, arch in BOTTLEROCKET_VARIANTS:
            base = f"/aws/service/bottlerocket/aws-k8s-{version}{flavour}/{arch}/latest"
            out[f"{base}/image_id"] = _ami(region, version, "bottlerocket", flavour, arch)
            out[f"{base}/image_version"] = str(amis["bottlerocket_version"])
    return out


def parameter(region: str, name: str, modified: float) -> dict[str, Any] | None:
    """The SSM ``Parameter`` structure for ``name``, or ``None`` if there is no such parameter."""
    value = parameters(region).get(name)
    if value is None:
        return None
    return {
        "Name": name,
        "Type": "String",
        "Value": value,
        "Version": 1,
        "LastModifiedDate": modified,
        "ARN": f"arn:aws:ssm:{region}::parameter{name}",
        "DataType": "text",
    }


def by_path(region: str, path: str, recursive: bool) -> list[str]:
    """Names under ``path`` (direct children only unless ``recursive``), sorted."""
    prefix = path.rstrip("/") + "/"
    names = []
    for name in parameters(region):
        if not name.startswith(prefix):
            continue
        if recursive or "/" not in name[len(prefix) :]:
            names.append(name)
    return sorted(names)
