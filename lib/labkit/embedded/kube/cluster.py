"""An embedded Kubernetes cluster: clock, store, API server, controllers, scheduler, kubelets and nodes.

>>> cluster = EmbeddedCluster(state_dir=Path("/tmp/k"), time_scale=60, profile="kind")
>>> cluster.start()          # writes /tmp/k/kubeconfig; the official client and kubectl use it
>>> cluster.delete_node("labkit-worker")   # fault injection: its pods are rescheduled elsewhere
>>> cluster.stop()

Profiles (:mod:`.nodes`): ``kind``, ``eks-standard`` and ``eks-auto`` (``auto``/``standard`` are
accepted too). Each starts with the system workloads a fresh cluster of that kind shows in
``kubectl get pods -A`` (CoreDNS, kube-proxy, the CNI...) and its StorageClasses, unless
``system_pods=False``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from pathlib import Path
from typing import Any

from labkit.errors import ApiError, Conflict, NotFound

from ..clock import Clock
from .controllers.base import ControllerContext
from .controllers.cache import ObjectCache
from .controllers.manager import CACHED_KEYS, ControllerManager
from .karpenter import KarpenterController
from .kubelet import Kubelet
from .nodes import KUBELET_VERSION, normalize_profile, profile_nodes
from .scheduler import Scheduler

log = logging.getLogger("labkit.embedded.cluster")

_ECR = "602401143452.dkr.ecr.{region}.amazonaws.com"
KUBECONFIG_FILE = "kubeconfig"


class EmbeddedCluster:
    """A Kubernetes cluster in this process, served on 127.0.0.1.

    Args:
        state_dir: folder for the kubeconfig (``state_dir/kubeconfig``, mode 0600) and the CA.
        time_scale: simulated seconds per wall second.
        profile: ``kind``, ``eks-standard`` or ``eks-auto``.
        tls: serve HTTPS (the default) or plain HTTP.
        seed: seeds names, container ids and scheduling ties, for reproducible runs.
        region: AWS region of the EKS profiles' nodes.
        name: cluster name (kind node names start with it).
        system_pods: create the profile's system workloads and StorageClasses.
        initial_nodes: create the profile's nodes at start; ``False`` when the embedded EKS adds
            them as its node groups become active.
        clock: a clock to share with other embedded services (it is not stopped with the cluster).

    Attributes:
        clock, store, server, controllers, scheduler, kubelet: the parts, once started.
        url: the API server's base URL.
        kubeconfig: path of the kubeconfig written at start.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        time_scale: float = 60.0,
        profile: str = "eks-auto",
        tls: bool = True,
        seed: int | None = None,
        region: str = "us-west-2",
        name: str = "labkit",
        system_pods: bool = True,
        initial_nodes: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.time_scale = time_scale
        self.profile = normalize_profile(profile)
        self.tls = tls
        self.seed = seed
        self.region = region
        self.name = name
        self.system_pods = system_pods
        self.initial_nodes = initial_nodes
        self._shared_clock = clock
        self.kubeconfig = self.state_dir / KUBECONFIG_FILE
        self.url = ""
        self.clock: Any = None
        self.store: Any = None
        self.server: Any = None
        self.controllers: ControllerManager | None = None
        self.scheduler: Scheduler | None = None
        self.kubelet: Kubelet | None = None
        self.karpenter: KarpenterController | None = None
        self.cache: ObjectCache | None = None
        self._lock = threading.Lock()

    # ---- lifecycle

    def start(self) -> None:
        """Start everything and write the kubeconfig; idempotent."""
        with self._lock:
            if self.server is not None:
                return
            from .server import ApiServer
            from .store import Store

            rng = random.Random(self.seed)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.clock = self._shared_clock or Clock(self.time_scale)
            self.store = Store(self.clock)
            self._bootstrap()
            self.cache = ObjectCache(self.store, CACHED_KEYS)
            self.cache.start()  # first subscriber: the loops read their own writes from it
            self.kubelet = Kubelet(self.store, self.clock, rng=random.Random(rng.random()))
            self.scheduler = Scheduler(self.store, self.clock, rng=random.Random(rng.random()), cache=self.cache)
            ctx = ControllerContext(self.store, self.clock, random.Random(rng.random()), cache=self.cache)
            self.controllers = ControllerManager(ctx)
            self._preload_images()
            self.kubelet.start()
            self.scheduler.start()
            self.controllers.start()
            # A new rng draw at the end keeps the other parts' seeds unchanged.
            self.karpenter = KarpenterController(
                self.store,
                self.clock,
                profile=self.profile,
                region=self.region,
                cluster_name=self.name,
                rng=random.Random(rng.random()),
            )
            self.karpenter.start()
            server = ApiServer(self.store, tls=self.tls, state_dir=self.state_dir)
            self.url = server.start()
            server.write_kubeconfig(self.kubeconfig)
            self.server = server

    def stop(self) -> None:
        """Stop the server, the loops and the clock (idempotent)."""
        with self._lock:
            for part in (self.server, self.karpenter, self.controllers, self.scheduler, self.kubelet):
                if part is not None:
                    try:
                        part.stop()
                    except Exception:
                        log.exception("stopping %s failed", type(part).__name__)
            if self.cache is not None:
                self.cache.stop()
            if self.clock is not None and self._shared_clock is None:
                self.clock.stop()
            self.server = self.controllers = self.scheduler = self.kubelet = self.cache = None
            self.karpenter = None

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until the controllers, scheduler and kubelet have nothing queued (tests)."""
        parts = [p for p in (self.controllers, self.scheduler, self.kubelet, self.karpenter) if p is not None]
        return all(p.wait_idle(timeout) for p in parts)

    # ---- nodes and faults

    def add_node(self, node: dict[str, Any]) -> dict[str, Any]:
        """Register a Node (see :func:`labkit.embedded.kube.nodes.make_node`); pending pods are retried."""
        return self._require_store().create("nodes", node)

    def delete_node(self, name: str) -> None:
        """Remove a node as a terminated instance would: its pods are garbage collected and replaced.

        Raises:
            NotFound: no such node.
        """
        self._require_store().delete("nodes", None, name)

    def cordon(self, name: str, unschedulable: bool = True) -> dict[str, Any]:
        """``kubectl cordon`` (or uncordon with ``unschedulable=False``)."""
        body: dict[str, Any] = {"spec": {"unschedulable": True if unschedulable else None}}
        return self._require_store().patch("nodes", None, name, body, "merge")

    def kill_container(self, namespace: str, pod: str, container: str | None = None, *, oom: bool = False) -> None:
        """Kill a pod's running container: it restarts (``restartCount`` + 1), not ready for a moment.

        Raises:
            NotFound: the pod has no running container of that name.
        """
        if self.kubelet is None:
            raise NotFound("the embedded cluster is not running", "start it first", status=404, reason="NotFound")
        reason = "OOMKilled" if oom else "Error"
        self.kubelet.kill_container(namespace, pod, container, exit_code=137, reason=reason)

    def interrupt_spot(self, node: str) -> Any:
        """Simulate a spot interruption of ``node`` (two-minute warning, drain, replacement)."""
        if self.karpenter is None:
            raise NotFound("the embedded cluster is not running", "start it first", status=404, reason="NotFound")
        return self.karpenter.interrupt(node)

    def _require_store(self) -> Any:
        if self.store is None:
            raise NotFound("the embedded cluster is not running", "start it first", status=404, reason="NotFound")
        return self.store

    # ---- bootstrap

    def _bootstrap(self) -> None:
        now = self.clock.now()
        nodes = profile_nodes(self.profile, cluster_name=self.name, region=self.region, now=now)
        for node in nodes if self.initial_nodes else []:
            self.store.create("nodes", node)
        for name, value in (("system-cluster-critical", 2000000000), ("system-node-critical", 2000001000)):
            with contextlib.suppress(Conflict):
                self.store.create(
                    "priorityclasses.scheduling.k8s.io",
                    {
                        "apiVersion": "scheduling.k8s.io/v1",
                        "kind": "PriorityClass",
                        "metadata": {"name": name},
                        "value": value,
                        "description": "Used for system critical pods that must run in the cluster, but can be "
                        "moved to another node if necessary."
                        if name == "system-cluster-critical"
                        else "Used for system critical pods that must not be moved from their current node.",
                        "preemptionPolicy": "PreemptLowerPriority",
                    },
                )
        if not self.system_pods:
            return
        for key, obj in self._system_objects():
            try:
                self.store.create(key, obj, namespace=(obj.get("metadata") or {}).get("namespace"))
            except ApiError as exc:
                log.debug("system object %s not created: %s", obj["metadata"].get("name"), exc)

    def _preload_images(self) -> None:
        """kind node images ship their system images; EKS nodes pull them."""
        if self.profile != "kind" or self.kubelet is None:
            return
        images = [
            "registry.k8s.io/coredns/coredns:v1.12.0",
            "docker.io/kindest/kindnetd:v20250512-df8de77b",
            f"registry.k8s.io/kube-proxy:{KUBELET_VERSION}",
            "docker.io/kindest/local-path-provisioner:v20250214-acbabc1a",
            "registry.k8s.io/etcd:3.5.21-0",
            f"registry.k8s.io/kube-apiserver:{KUBELET_VERSION}",
            f"registry.k8s.io/kube-controller-manager:{KUBELET_VERSION}",
            f"registry.k8s.io/kube-scheduler:{KUBELET_VERSION}",
        ]
        nodes, _ = self.store.list("nodes")
        for n in nodes:
            self.kubelet.preload_images(n["metadata"]["name"], images)

    def _system_objects(self) -> list[tuple[str, dict[str, Any]]]:
        if self.profile == "kind":
            return _kind_system(self.name)
        if self.profile == "eks-standard":
            return _eks_system(_ECR.format(region=self.region), managed_nodes=True)
        return _eks_system("", managed_nodes=False)


# --------------------------------------------------------------------------- system workloads


def _deployment(name: str, labels: dict[str, str], replicas: int, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "kube-system", "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def _daemonset(name: str, labels: dict[str, str], pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def _coredns(image: str, tolerate_control_plane: bool) -> list[tuple[str, dict[str, Any]]]:
    labels = {"k8s-app": "kube-dns"}
    tolerations = [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    if tolerate_control_plane:
        tolerations.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    spec = {
        "priorityClassName": "system-cluster-critical",
        "tolerations": tolerations,
        "containers": [
            {
                "name": "coredns",
                "image": image,
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                ],
                "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 10},
                "livenessProbe": {
                    "httpGet": {"path": "/health", "port": 8080},
                    "initialDelaySeconds": 60,
                    "failureThreshold": 5,
                },
            }
        ],
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {**labels, "kubernetes.io/name": "CoreDNS"},
        },
        "spec": {
            "selector": dict(labels),
            "clusterIP": "10.96.0.10",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }
    return [("deployments.apps", _deployment("coredns", labels, 2, spec)), ("services", service)]


def _node_agent(name: str, image: str, app_label: str = "k8s-app") -> tuple[str, dict[str, Any]]:
    labels = {app_label: name}
    spec = {
        "priorityClassName": "system-node-critical",
        "hostNetwork": True,
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": name, "image": image, "resources": {"requests": {"cpu": "25m"}}}],
    }
    return "daemonsets.apps", _daemonset(name, labels, spec)


def _kind_system(cluster: str) -> list[tuple[str, dict[str, Any]]]:
    objs = _coredns("registry.k8s.io/coredns/coredns:v1.12.0", tolerate_control_plane=True)
    objs.append(_node_agent("kube-proxy", f"registry.k8s.io/kube-proxy:{KUBELET_VERSION}"))
    objs.append(_node_agent("kindnet", "docker.io/kindest/kindnetd:v20250512-df8de77b", app_label="app"))
    provisioner = {
        "serviceAccountName": "default",
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "local-path-provisioner",
                "image": "docker.io/kindest/local-path-provisioner:v20250214-acbabc1a",
                "command": ["local-path-provisioner", "--debug", "start"],
            }
        ],
    }
    storage_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "local-path-storage"}}
    deploy = _deployment("local-path-provisioner", {"app": "local-path-provisioner"}, 1, provisioner)
    deploy["metadata"]["namespace"] = "local-path-storage"
    objs += [("namespaces", storage_ns), ("deployments.apps", deploy)]
    objs.append(
        (
            "storageclasses.storage.k8s.io",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "standard",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
        )
    )
    control_plane = f"{cluster}-control-plane"
    for component, image in (
        ("etcd", "registry.k8s.io/etcd:3.5.21-0"),
        ("kube-apiserver", f"registry.k8s.io/kube-apiserver:{KUBELET_VERSION}"),
        ("kube-controller-manager", f"registry.k8s.io/kube-controller-manager:{KUBELET_VERSION}"),
        ("kube-scheduler", f"registry.k8s.io/kube-scheduler:{KUBELET_VERSION}"),
    ):
        objs.append(("pods", _static_pod(component, image, control_plane)))
    return objs


def _static_pod(component: str, image: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{component}-{node}",
            "namespace": "kube-system",
            "labels": {"component": component, "tier": "control-plane"},
            "annotations": {"kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": component},
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
            "containers": [{"name": component, "image": image, "resources": {"requests": {"cpu": "100m"}}}],
        },
    }


def _eks_system(registry: str, *, managed_nodes: bool) -> list[tuple[str, dict[str, Any]]]:
    if not managed_nodes:
        # Auto Mode runs CoreDNS, kube-proxy and the VPC CNI off-cluster: nothing to see in kube-system.
        return []
    objs = _coredns(f"{registry}/eks/coredns:v1.12.1-eksbuild.2", tolerate_control_plane=False)
    objs.append(_node_agent("kube-proxy", f"{registry}/eks/kube-proxy:{KUBELET_VERSION}-minimal-eksbuild.2"))
    objs.append(_node_agent("aws-node", f"{registry}/amazon-k8s-cni:v1.19.5-eksbuild.1"))
    objs.append(
        (
            "storageclasses.storage.k8s.io",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": "gp2"},
                "provisioner": "kubernetes.io/aws-ebs",
                "parameters": {"type": "gp2", "fsType": "ext4"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
        )
    )
    return objs
