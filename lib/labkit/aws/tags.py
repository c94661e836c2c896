"""Tags the kit puts on every AWS resource, in each API's shape (pure).

The tag set is :meth:`labkit.settings.Settings.tags`: kit, owner, lab and cluster, so
teardown finds a cluster's resources and the sweeper finds an owner's leftovers.
"""

from __future__ import annotations

from typing import Any

from labkit.settings import Settings

KIT_KEY = "labkit:kit"
OWNER_KEY = "labkit:owner"
LAB_KEY = "labkit:lab"
CLUSTER_KEY = "labkit:cluster"


def tags(settings: Settings, lab: str) -> dict[str, str]:
    """``{key: value}`` (EKS, SQS and most newer APIs)."""
    return dict(settings.tags(lab))


def tag_list(settings: Settings, lab: str) -> list[dict[str, str]]:
    """``[{"Key": k, "Value": v}]`` (IAM, EC2, CloudFormation, EventBridge, ELB)."""
    return [{"Key": k, "Value": v} for k, v in tags(settings, lab).items()]


def as_dict(tag_list_: list[dict[str, Any]] | None) -> dict[str, str]:
    """``[{"Key", "Value"}]`` -> ``{key: value}``."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in tag_list_ or []}


def kit_value(settings: Settings) -> str:
    return settings.tags("any")[KIT_KEY]


def cluster_filters(settings: Settings) -> list[dict[str, Any]]:
    """Resource Groups Tagging API filters for this owner's resources of this cluster."""
    return [
        {"Key": KIT_KEY, "Values": [kit_value(settings)]},
        {"Key": OWNER_KEY, "Values": [settings.owner]},
        {"Key": CLUSTER_KEY, "Values": [settings.cluster_name]},
    ]


def owner_filters(settings: Settings) -> list[dict[str, Any]]:
    """Tagging API filters for everything the kit made for this owner (any cluster)."""
    return [{"Key": KIT_KEY, "Values": [kit_value(settings)]}, {"Key": OWNER_KEY, "Values": [settings.owner]}]


def belongs_to(found: dict[str, str], settings: Settings, *, any_cluster: bool = False) -> bool:
    """Whether a resource's tags mark it as this owner's (and this cluster's) kit resource."""
    if found.get(KIT_KEY) != kit_value(settings) or found.get(OWNER_KEY) != settings.owner:
        return False
    return any_cluster or found.get(CLUSTER_KEY) == settings.cluster_name
