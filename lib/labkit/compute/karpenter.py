"""Installing self-managed Karpenter on the ``standard`` profile (Helm values and command, pure)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

VERSION = "1.14.1"
CHART = "oci://public.ecr.aws/karpenter/karpenter"
NAMESPACE = "kube-system"
VALUES_FILE = Path(__file__).resolve().parents[3] / "infra" / "helm" / "karpenter" / "values.yaml"


def values(cluster_name: str, interruption_queue: str, *, base: Path = VALUES_FILE) -> dict[str, Any]:
    """Helm values: the kit's defaults plus this cluster's name and interruption queue."""
    merged = copy.deepcopy(yaml.safe_load(base.read_text()))
    merged.setdefault("settings", {}).update({"clusterName": cluster_name, "interruptionQueue": interruption_queue})
    return merged


def helm_command(values_path: str, version: str = VERSION) -> list[str]:
    """The ``helm upgrade --install`` command for Karpenter (shown in the lab, run by the helm client)."""
    return [
        "helm",
        "upgrade",
        "--install",
        "karpenter",
        CHART,
        "--version",
        version,
        "--namespace",
        NAMESPACE,
        "--values",
        values_path,
        "--wait",
    ]
