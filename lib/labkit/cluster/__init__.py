"""Cluster: the platform's EKS cluster as the labs see it (Week 1 builds it; later weeks ensure it).

Week 1 walks through each step (``labkit.aws``: preflight, VPC, IAM, cluster, add-ons,
access, kubeconfig). Later labs start with :func:`ensure`, which runs the same idempotent
steps and returns at once when the cluster exists, so every notebook runs on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit.aws import AwsSession, connect, eks
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
    platform = lab.platform()
    session = connect(settings, platform=platform)
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
        kube=Kube.of(platform),
        created=created,
    )


__all__ = ["ClusterInfo", "ensure"]
