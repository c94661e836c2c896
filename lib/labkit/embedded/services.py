"""Start and stop every embedded service as one platform.

The platform runs in threads of the current process: inside ``labkit up``'s
background process, inside ``labkit run`` (shared by every notebook of the run),
or inside a notebook kernel that found nothing running.

It starts the embedded AWS (moto plus the shim) on one shared :class:`Clock`. A
Kubernetes cluster exists only once the labs create one through the EKS API, as
on AWS: when the embedded EKS reports a cluster ACTIVE, an :class:`EmbeddedCluster`
of the matching profile starts and ``DescribeCluster`` returns its endpoint and
CA, so "create cluster, write kubeconfig, talk to it" is the real code path.
Managed node groups add their nodes; deleting the cluster stops it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.embedded.clock import Clock

log = logging.getLogger("labkit.embedded.services")

# moto keeps its state per process. A platform started after another one in the same process
# (one `labkit run` after another, as the notebook tests do) starts from a fresh account, as a
# new `labkit up` process does; otherwise EKS would report clusters whose Kubernetes is gone.
_started_in_process = False


def _fresh_account() -> None:
    from moto.core.base_backend import BackendDict

    BackendDict.reset()


@dataclass
class EmbeddedPlatform:
    """The embedded services, started together.

    Args:
        state_dir: folder for kubeconfigs, CAs and other files clients read.
        region: the AWS region the embedded account answers in.
        time_scale: how much faster than wall time the simulated clock runs.
        cluster_profile: default profile (``auto`` or ``standard``); a cluster created through
            EKS takes the profile its CreateCluster request implies.
    """

    state_dir: Path
    region: str = "us-west-2"
    time_scale: float = 60.0
    cluster_profile: str = "auto"
    clock: Clock | None = field(default=None, repr=False)
    clusters: dict[str, Any] = field(default_factory=dict, repr=False)
    _aws: Any = field(default=None, repr=False)
    _unbind: Any = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def start(self) -> dict[str, Any]:
        """Start every service; returns the endpoints and environment clients need."""
        from labkit.embedded.aws import EmbeddedAws
        from labkit.embedded.simulators import awscli, register_all

        global _started_in_process
        with self._lock:
            if _started_in_process:
                _fresh_account()
            _started_in_process = True
            self.state_dir.mkdir(parents=True, exist_ok=True)
            register_all()  # model-server runtimes, before any cluster starts pods
            self.clock = Clock(self.time_scale)
            self._aws = EmbeddedAws(self.region, clock=self.clock)
            env = self._aws.start()
            self._aws.set_cluster_endpoint(self._endpoint)
            self._aws.add_eks_listener(self._on_eks_event)
            self._unbind = awscli.bind(self._aws, self.clusters)  # AWS CLI pods get Pod Identity credentials
            return {"aws_endpoint": env["AWS_ENDPOINT_URL"], "env": env}

    def stop(self) -> None:
        """Stop every service (idempotent)."""
        with self._lock:
            for cluster in self.clusters.values():
                cluster.stop()
            self.clusters.clear()
            if self._unbind is not None:
                self._unbind()
                self._unbind = None
            if self._aws is not None:
                self._aws.stop()
                self._aws = None
            if self.clock is not None:
                self.clock.stop()
                self.clock = None

    def cluster(self, name: str) -> Any:
        """The running embedded Kubernetes cluster behind EKS cluster ``name`` (``None`` if none)."""
        return self.clusters.get(name)

    # ---- EKS -> Kubernetes

    def _endpoint(self, name: str) -> tuple[str, bytes] | None:
        cluster = self.clusters.get(name)
        if cluster is None or cluster.server is None:
            return None
        return cluster.url, cluster.server.ca_pem

    def _on_eks_event(self, event: Any) -> None:
        try:
            with self._lock:
                handler = {
                    "cluster-active": self._cluster_active,
                    "cluster-deleted": self._cluster_deleted,
                    "nodegroup-active": self._nodegroup_active,
                    "nodegroup-deleted": self._nodegroup_deleted,
                }.get(event.kind)
                if handler is not None:
                    handler(event)
        except Exception:  # a failing listener must not break the AWS API call that triggered it
            log.exception("embedded EKS event %s for %s failed", event.kind, event.cluster)

    def _cluster_active(self, event: Any) -> None:
        from labkit.embedded.kube.cluster import EmbeddedCluster

        if event.cluster in self.clusters:
            return
        profile = "eks-auto" if event.detail.get("profile", self.cluster_profile) == "auto" else "eks-standard"
        cluster = EmbeddedCluster(
            state_dir=self.state_dir / "clusters" / event.cluster,
            time_scale=self.time_scale,
            profile=profile,
            region=event.region or self.region,
            name=event.cluster,
            initial_nodes=False,  # standard: nodes arrive with the managed node group; auto: Karpenter
            clock=self.clock,
        )
        cluster.start()
        self.clusters[event.cluster] = cluster

    def _cluster_deleted(self, event: Any) -> None:
        cluster = self.clusters.pop(event.cluster, None)
        if cluster is not None:
            cluster.stop()

    def _nodegroup_active(self, event: Any) -> None:
        from labkit.embedded.kube.nodes import managed_nodegroup_nodes

        cluster = self.clusters.get(event.cluster)
        if cluster is None:
            return
        detail = event.detail
        taints = [
            {"key": t["key"], "value": t.get("value", ""), "effect": _TAINT_EFFECTS.get(t["effect"], t["effect"])}
            for t in detail.get("taints") or []
        ]
        nodes = managed_nodegroup_nodes(
            event.cluster,
            event.region or self.region,
            event.name,
            (detail.get("instanceTypes") or ["m6i.large"])[0],
            int((detail.get("scalingConfig") or {}).get("desiredSize", 2)),
            labels=detail.get("labels") or {},
            taints=taints,
            capacity_type=detail.get("capacityType") or "ON_DEMAND",
            now=self.clock.now() if self.clock else None,
        )
        existing = {n["metadata"]["name"] for n in cluster.store.list("nodes")[0]}
        for node in nodes:
            if node["metadata"]["name"] not in existing:
                cluster.add_node(node)

    def _nodegroup_deleted(self, event: Any) -> None:
        cluster = self.clusters.get(event.cluster)
        if cluster is None:
            return
        nodes, _ = cluster.store.list("nodes", label_selector=f"eks.amazonaws.com/nodegroup={event.name}")
        for node in nodes:
            cluster.delete_node(node["metadata"]["name"])


# EKS API taint effects -> Kubernetes taint effects
_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
