"""Cluster: the platform's EKS cluster as the labs see it (Week 1 builds it; later weeks ensure it).

Week 1 walks through each step (``labkit.aws``: preflight, VPC, IAM, cluster, add-ons,
access, kubeconfig). Later labs start with :func:`ensure`, which runs the same idempotent
steps and returns at once when the cluster exists, so every notebook runs on its own.

The Week 1 lab's views and steps live beside it:

- :mod:`~labkit.cluster.planning`: planned launches, quotas, prices, the two profiles.
- :mod:`~labkit.cluster.inventory`: subnets, roles, add-ons, access entries, associations, tags, the token.
- :mod:`~labkit.cluster.podidentity`: the demo role, its association, and ``aws`` run in a pod.
- :mod:`~labkit.cluster.costs`: the running cost, per hour and per month.
- :mod:`~labkit.cluster.preview`: what a teardown would delete, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit.aws import AwsSession, connect, eks
from labkit.cluster.costs import CostView, cost_now
from labkit.cluster.inventory import (
    access_table,
    addons_table,
    associations_table,
    roles_table,
    subnets_table,
    tags_table,
    token_facts,
)
from labkit.cluster.planning import launch_table, planned_launches, price_table, profile_comparison, quota_table
from labkit.cluster.podidentity import AwsCliRun, run_aws_cli
from labkit.cluster.preview import TeardownPreview, teardown_preview
from labkit.context import LabContext
from labkit.context import current as current_lab
from labkit.kube import Kube


@dataclass
class ClusterInfo:
    """The cluster a lab works on, and the clients to reach it."""

    name: str
    profile: str
    endpoint: str
    version: str
    kubeconfig: Path
    aws: AwsSession
    kube: Kube
    created: bool

    def __str__(self) -> str:
        state = "created" if self.created else "found"
        return (
            f"cluster {self.name} ({self.profile} profile, Kubernetes {self.version}) {state}; "
            f"endpoint {self.endpoint}; kubeconfig {self.kubeconfig}"
        )


def ensure(lab: LabContext | None = None, *, profile: str | None = None) -> ClusterInfo:
    """The lab's cluster: found if it exists, else created with the Week 1 steps (idempotent)."""
    lab = lab or current_lab()
    settings = lab.settings
    # The AWS session first: on `eks` the platform (a kubeconfig) exists only once the cluster does.
    session = connect(settings)
    cluster = eks.describe_cluster(session, settings)
    created = cluster is None or cluster.get("status") != "ACTIVE"
    if created:
        made = eks.create_platform(session, settings, lab.lab, profile=profile)
        cluster, kubeconfig = made.cluster, made.kubeconfig
    else:
        kubeconfig = eks.write_kubeconfig(session, settings, cluster)
    assert kubeconfig is not None
    return ClusterInfo(
        name=settings.cluster_name,
        profile=eks.profile_of(cluster),
        endpoint=str(cluster.get("endpoint", "")),
        version=str(cluster.get("version", "")),
        kubeconfig=kubeconfig,
        aws=session,
        kube=Kube.of(lab.platform()),
        created=created,
    )


__all__ = [
    "AwsCliRun",
    "ClusterInfo",
    "CostView",
    "TeardownPreview",
    "access_table",
    "addons_table",
    "associations_table",
    "cost_now",
    "ensure",
    "launch_table",
    "planned_launches",
    "price_table",
    "profile_comparison",
    "quota_table",
    "roles_table",
    "run_aws_cli",
    "subnets_table",
    "tags_table",
    "teardown_preview",
    "token_facts",
]
