"""Lab steps for GPU capacity: node pools, the Karpenter install, nodes, scaling and the cost meter.

Each step composes the pure builders (:mod:`.nodepools`, :mod:`.device_plugin`, :mod:`.karpenter`)
with the kube and AWS clients, and returns a result that prints readably, renders in a notebook and
carries the equivalent ``kubectl`` (or ``helm``) command. Steps take ``lab=`` (default: the current
lab) and ``kube=`` (default: that lab's cluster connection), like :mod:`labkit.kube`::

    from labkit import compute
    from labkit.compute.nodepools import GpuPool

    compute.create_gpu_pool(GpuPool(gpu_limit=2))      # node class + NodePool for the cluster's profile
    compute.watch_nodes(pool="gpu", until="ready")     # NodeClaim -> node, with a timeline
    compute.nodes_table()                              # instance type, capacity type, zone, GPUs, $/h

Times in results are cluster times: on the embedded target the cluster's clock runs ``time_scale``
times faster than the wall clock, so a two-minute node launch passes in two seconds.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit import context
from labkit import kube as kube_mod
from labkit.aws import connect, cost, eks, names, prices
from labkit.compute import device_plugin, karpenter
from labkit.compute.nodepools import POOL_LABEL, GpuPool, gpu_pool_manifests
from labkit.context import LabContext
from labkit.errors import Invalid, LabkitError, NotFound, TargetUnavailable, WaitTimeout
from labkit.kube import Kube, status
from labkit.kube.apply import ApplyResult
from labkit.kube.client import resolve
from labkit.kube.diagnose import explain_object
from labkit.kube.explain import Diagnosis
from labkit.kube.tables import Table, gpu_count
from labkit.planner import catalog
from labkit.progress import LiveView, Shown, pre_html

NODEPOOL_LABEL = "karpenter.sh/nodepool"
GPU = "nvidia.com/gpu"
POOL_READY_TIMEOUT_S = 120.0
KARPENTER_TIMEOUT_S = 300.0
NODE_TIMEOUT_S = 900.0
PENDING_TIMEOUT_S = 120.0
SCALER = "labkit-scale"  # field manager of replica changes (an apply of the manifest takes them back)
KARPENTER_LABELS = {"app.kubernetes.io/name": "karpenter", "app.kubernetes.io/instance": "karpenter"}


# ---------------------------------------------------------------------------------------------- plumbing


def lab_context(lab: LabContext | None) -> LabContext:
    """The lab a step works for: ``lab`` or the current one."""
    return lab or context.current()


def kube_for(lab: LabContext | None, kube: Any) -> Kube:
    """The cluster connection of a step: ``kube`` if given, else the lab's (or the current lab's)."""
    if kube is not None:
        return resolve(kube)
    if lab is not None:
        return Kube.of(lab.platform())
    return resolve(None)


def poll_seconds(k: Kube, cluster_seconds: float = 2.0) -> float:
    """Wall seconds between looks at the cluster: ``cluster_seconds`` of its time, at least 0.1 s."""
    return max(0.1, cluster_seconds / k.time_scale)


def clock_text(seconds: float) -> str:
    """``95s`` / ``4m36s`` / ``1h02m``: a duration of cluster time."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def scale_note(k: Kube, wall_s: float) -> str:
    """`` (1.6 s wall at time scale 60)`` on a scaled clock, else nothing."""
    return f" ({wall_s:.1f} s wall at time scale {k.time_scale:g})" if k.time_scale != 1.0 else ""


# ---------------------------------------------------------------------------------------------- the cluster


@dataclass(frozen=True)
class ClusterFacts:
    """What pool steps need to know about the lab's cluster."""

    name: str
    profile: str
    node_role: str
    tags: dict[str, str]


def cluster_facts(lab: LabContext | None = None) -> ClusterFacts:
    """The cluster's profile (from EKS), the role its GPU nodes get, and the tags they carry.

    The node role is the one Week 1 created: on ``auto`` the cluster's node role (Auto Mode nodes), on
    ``standard`` the role of nodes Karpenter launches (``...-karpenter-node``, which has an access entry).

    Raises:
        NotFound: the cluster or the node role does not exist yet.
    """
    lab = lab_context(lab)
    settings = lab.settings
    session = connect(settings, platform=lab.platform())
    cluster = eks.describe_cluster(session, settings)
    if cluster is None:
        raise NotFound(
            f"EKS cluster {settings.cluster_name} does not exist",
            "create it first: run the Week 1 lab, or labkit.cluster.ensure(lab)",
        )
    profile = eks.profile_of(cluster)
    role = names.role(settings.cluster_name, "node" if profile == "auto" else "karpenter-node")
    try:
        session.call("iam", "get_role", RoleName=role)
    except NotFound as exc:
        raise NotFound(
            f"IAM role {role} for the GPU nodes of {settings.cluster_name} does not exist",
            "rerun labkit.cluster.ensure(lab) (Week 1 creates the node roles)",
        ) from exc
    return ClusterFacts(settings.cluster_name, profile, role, settings.tags(lab.lab))


# ---------------------------------------------------------------------------------------------- Karpenter install


def controller_manifests(values: dict[str, Any], *, version: str = karpenter.VERSION) -> list[dict[str, Any]]:
    """The core of what the Karpenter chart installs, rendered from the same values (pure).

    A ServiceAccount, the controller Deployment (settings as environment variables, probes, resources,
    affinity away from Karpenter's own nodes, spread over hosts) and its PodDisruptionBudget. The chart
    also installs RBAC (ClusterRoles, Roles and bindings), a metrics Service and, from its ``crds/``
    folder, the NodePool, NodeClaim and EC2NodeClass CRDs; the embedded cluster serves those CRDs already.
    """
    account = (values.get("serviceAccount") or {}).get("name") or "karpenter"
    settings = values.get("settings") or {}
    gates = settings.get("featureGates") or {}
    env: list[dict[str, Any]] = [
        {"name": "SYSTEM_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CLUSTER_NAME", "value": str(settings.get("clusterName", ""))},
        {"name": "INTERRUPTION_QUEUE", "value": str(settings.get("interruptionQueue", ""))},
        {"name": "METRICS_PORT", "value": "8080"},
        {"name": "HEALTH_PROBE_PORT", "value": "8081"},
    ]
    if gates:
        flags = ",".join(f"{k[0].upper()}{k[1:]}={str(v).lower()}" for k, v in sorted(gates.items()))
        env.append({"name": "FEATURE_GATES", "value": flags})
    controller = values.get("controller") or {}
    pod_spec: dict[str, Any] = {
        "serviceAccountName": account,
        "priorityClassName": "system-cluster-critical",
        "securityContext": {"fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "controller",
                "image": f"public.ecr.aws/karpenter/controller:{version}",
                "env": env,
                "ports": [
                    {"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "http", "containerPort": 8081, "protocol": "TCP"},
                ],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 30},
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "initialDelaySeconds": 5},
                "resources": controller.get("resources") or {},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(KARPENTER_LABELS)},
            }
        ],
    }
    if values.get("affinity"):
        pod_spec["affinity"] = values["affinity"]
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": karpenter.NAMESPACE, "labels": dict(KARPENTER_LABELS)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "karpenter", "namespace": karpenter.NAMESPACE, "labels": dict(KARPENTER_LABELS)},
            "spec": {
                "replicas": int(values.get("replicas", 2)),
                "selector": {"matchLabels": dict(KARPENTER_LABELS)},
                "template": {"metadata": {"labels": dict(KARPENTER_LABELS)}, "spec": pod_spec},
            },
        },
    ]
    budget = values.get("podDisruptionBudget") or {}
    if budget:
        objs.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {
                    "name": budget.get("name", "karpenter"),
                    "namespace": karpenter.NAMESPACE,
                    "labels": dict(KARPENTER_LABELS),
                },
                "spec": {
                    "maxUnavailable": budget.get("maxUnavailable", 1),
                    "selector": {"matchLabels": dict(KARPENTER_LABELS)},
                },
            }
        )
    return objs


@dataclass(frozen=True)
class KarpenterInstall(Shown):
    """How Karpenter came to run on the cluster.

    Attributes:
        method: ``built-in`` (EKS Auto Mode), ``helm`` (the chart, on a real cluster) or ``manifests``
            (the chart's core objects applied directly: the embedded target has no Helm and no registry).
        version: the Karpenter version.
        helm: the ``helm upgrade --install`` command (run, or what a real cluster runs).
        values: the chart values used.
        applied: what was applied (``manifests`` only).
        ready: the controller's rollout line.
        note: what to know about this method.
    """

    method: str
    version: str
    helm: str
    values: dict[str, Any] = field(default_factory=dict, repr=False)
    applied: ApplyResult | None = None
    ready: str = ""
    note: str = ""

    @property
    def kubectl(self) -> str:
        return self.helm

    def __str__(self) -> str:
        head = {
            "built-in": "Karpenter is built into EKS Auto Mode: nothing to install",
            "helm": f"Karpenter {self.version} installed with Helm",
            "manifests": f"Karpenter {self.version} controller applied as manifests (no Helm on this target)",
        }[self.method]
        lines = [head]
        if self.applied is not None:
            lines += [f"  {item}" for item in self.applied.items]
        if self.ready:
            lines.append(f"  {self.ready}")
        if self.helm and self.method != "built-in":
            lines.append(f"  {'ran' if self.method == 'helm' else 'on EKS this step runs'}: {self.helm}")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def _values_path(lab: LabContext) -> Path:
    return lab.settings.home / "helm" / lab.settings.cluster_name / "karpenter-values.yaml"


def install_karpenter(
    *,
    lab: LabContext | None = None,
    kube: Any = None,
    version: str = karpenter.VERSION,
    profile: str | None = None,
    timeout: float = KARPENTER_TIMEOUT_S,
) -> KarpenterInstall:
    """Install the Karpenter controller on a ``standard`` cluster (nothing to do on Auto Mode).

    The chart values come from ``infra/helm/karpenter/values.yaml`` plus this cluster's name and
    interruption queue (:func:`labkit.compute.karpenter.values`). On a real cluster the step runs
    ``helm upgrade --install`` with them. The embedded target has no ``helm`` binary and no registry
    to pull the chart from, so there the step applies the chart's core objects rendered from the same
    values (:func:`controller_manifests`): the lesson is what a Helm release consists of.

    Raises:
        TargetUnavailable: ``helm`` is missing on a real cluster, or the target cannot run Karpenter's AWS provider.
        WaitTimeout: the controller did not become Ready (the message says why).
    """
    lab = lab_context(lab)
    k = kube_for(lab, kube)
    settings = lab.settings
    profile = profile or cluster_facts(lab).profile
    values = karpenter.values(settings.cluster_name, names.interruption_queue(settings.cluster_name))
    path = _values_path(lab)
    helm_cmd = shlex.join(karpenter.helm_command(str(path), version))
    if profile == "auto":
        return KarpenterInstall("built-in", version, "", values, note="EKS runs Karpenter in the control plane")
    if settings.target == "embedded":
        # The difference is the lesson: Helm renders templates with values and applies the result.
        applied = kube_mod.apply(controller_manifests(values, version=version), kube=k)
        rolled = kube_mod.rollout_status(
            "deployment/karpenter", namespace=karpenter.NAMESPACE, timeout=timeout, kube=k, progress=False
        )
        return KarpenterInstall(
            "manifests",
            version,
            helm_cmd,
            values,
            applied,
            rolled.message,
            note="the chart also installs RBAC, a metrics Service and the CRDs (served here already)",
        )
    if settings.target == "kind":
        raise TargetUnavailable(
            "Karpenter's AWS provider cannot launch nodes for a kind cluster",
            "run this lab on the embedded or eks target (kind uses Karpenter's KWOK provider instead)",
        )
    found = shutil.which("helm")
    if found is None:
        raise TargetUnavailable("helm is not installed", "install Helm 3: https://helm.sh/docs/intro/install/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    import sh

    helm = sh.Command(found)
    try:
        helm(*karpenter.helm_command(str(path), version)[1:], _timeout=timeout)
    except sh.ErrorReturnCode as exc:
        stderr = exc.stderr.decode(errors="replace").strip().splitlines()
        raise LabkitError(
            f"helm could not install Karpenter: {stderr[-1] if stderr else exc}",
            "check the Pod Identity association of kube-system/karpenter (Week 1) and `helm status karpenter -n "
            "kube-system`",
        ) from exc
    rolled = kube_mod.rollout_status(
        "deployment/karpenter", namespace=karpenter.NAMESPACE, timeout=timeout, kube=k, progress=False
    )
    return KarpenterInstall("helm", version, helm_cmd, values, None, rolled.message)


# ---------------------------------------------------------------------------------------------- GPU pools


def cost_cap(pool: GpuPool) -> tuple[float, float] | None:
    """Cheapest and dearest on-demand $/hour of ``pool.gpu_limit`` GPUs on instances the pool allows (pure).

    From the planner's price catalog (us-east-1 on-demand); ``None`` when it prices none of them.
    """
    per_gpu = []
    for it in catalog.instance_types():
        if it.family not in pool.families or it.price_per_hour is None:
            continue
        if pool.gpu_counts and it.gpu_count not in pool.gpu_counts:
            continue
        if pool.gpu_names and it.gpu_spec.label.lower() not in {n.lower() for n in pool.gpu_names}:
            continue
        if pool.min_gpu_memory_gib and it.gpu_spec.memory_mib < pool.min_gpu_memory_gib * 1024:
            continue
        per_gpu.append(it.price_per_hour / it.gpu_count)
    if not per_gpu:
        return None
    return min(per_gpu) * pool.gpu_limit, max(per_gpu) * pool.gpu_limit


@dataclass(frozen=True)
class GpuPoolSetup(Shown):
    """A GPU node pool applied to the cluster.

    Attributes:
        pool: what the pool allows.
        profile: ``auto`` (EKS Auto Mode NodeClass) or ``standard`` (Karpenter EC2NodeClass).
        node_role: the IAM role its nodes get.
        applied: the node class and NodePool apply.
        prerequisites: what had to run first (Karpenter, the device plugin), one line each.
        ready: the NodePool's Ready condition line.
        kubectl: the equivalent ``kubectl apply``.
    """

    pool: GpuPool
    profile: str
    node_role: str
    applied: ApplyResult
    prerequisites: tuple[str, ...] = ()
    ready: str = ""
    kubectl: str = ""

    def __str__(self) -> str:
        engine = "EKS Auto Mode" if self.profile == "auto" else "Karpenter"
        p = self.pool
        lines = [f"GPU NodePool '{p.name}' ({engine}, {self.profile} profile, node role {self.node_role})"]
        lines += [f"  {line}" for line in self.prerequisites]
        lines += [f"  {item}" for item in self.applied.items]
        if self.ready:
            lines.append(f"  {self.ready}")
        cap = cost_cap(p)
        money = f", ${cap[0]:.2f}-${cap[1]:.2f}/hour on demand at the most" if cap else ""
        lines.append(f"  limit: {p.gpu_limit} {GPU} (the cost cap{money})")
        lines.append(
            f"  families {', '.join(p.families)}; capacity {', '.join(p.capacity_types)}; taint {GPU}=true:NoSchedule"
        )
        lines.append(f"  disruption: {p.consolidation_policy} after {p.consolidate_after}; budgets {list(p.budgets)}")
        return "\n".join(lines)


def install_device_plugin(*, lab: LabContext | None = None, kube: Any = None) -> ApplyResult:
    """Apply the NVIDIA device plugin DaemonSet (the ``standard`` profile's AL2023 GPU nodes need it)."""
    return kube_mod.apply(device_plugin.daemonset(), kube=kube_for(lab, kube))


def create_gpu_pool(
    pool: GpuPool | None = None,
    *,
    lab: LabContext | None = None,
    kube: Any = None,
    install: bool = True,
    timeout: float = POOL_READY_TIMEOUT_S,
    show_kubectl: bool = False,
) -> GpuPoolSetup:
    """Create a GPU NodePool and its node class for the cluster's profile, and wait until it is Ready.

    On ``auto`` the node class is an EKS Auto Mode ``NodeClass`` and Auto Mode provisions. On
    ``standard`` it is a Karpenter ``EC2NodeClass``; with ``install`` the step first installs what
    Karpenter needs there: the controller (:func:`install_karpenter`) and the NVIDIA device plugin,
    without which an AL2023 GPU node advertises no ``nvidia.com/gpu`` and GPU pods stay Pending.

    Raises:
        NotFound: the cluster or its node role does not exist (run ``labkit.cluster.ensure``).
        WaitTimeout: the NodePool did not become Ready (e.g. Karpenter is not running).
    """
    pool = pool or GpuPool()
    lab = lab_context(lab)
    k = kube_for(lab, kube)
    facts = cluster_facts(lab)
    prerequisites: list[str] = []
    if facts.profile == "standard" and install:
        installed = install_karpenter(lab=lab, kube=k, profile=facts.profile)
        prerequisites.append(str(installed).splitlines()[0])
        plugin = install_device_plugin(lab=lab, kube=k)
        prerequisites += [f"NVIDIA device plugin: {item}" for item in plugin.items]
    objs = gpu_pool_manifests(pool, facts.profile, cluster_name=facts.name, node_role=facts.node_role, tags=facts.tags)
    applied = kube_mod.apply(objs, kube=k, show_kubectl=show_kubectl)
    waited = kube_mod.wait_for(
        "nodepool.karpenter.sh", pool.name, for_="condition=Ready", timeout=timeout, kube=k, progress=False
    )
    return GpuPoolSetup(
        pool,
        facts.profile,
        facts.node_role,
        applied,
        tuple(prerequisites),
        f"NodePool Ready: {waited.message}",
        applied.kubectl,
    )


def delete_gpu_pool(name: str = "gpu", *, lab: LabContext | None = None, kube: Any = None) -> ApplyResult:
    """Delete a GPU NodePool, then its node class.

    The NodePool goes first and is awaited: Karpenter drains and terminates its nodes, and only then may
    the node class they were launched from go.
    """
    k = kube_for(lab, kube)
    pool = k.try_get("karpenter.sh/v1", "NodePool", name)
    ref = (((pool or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeClassRef") or {}
    first = kube_mod.delete(
        {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}},
        kube=k,
        timeout=NODE_TIMEOUT_S,
    )
    items = list(first.items)
    commands = [first.kubectl]
    if ref.get("group") and ref.get("kind") and ref.get("name"):
        node_class = {"apiVersion": f"{ref['group']}/v1", "kind": ref["kind"], "metadata": {"name": ref["name"]}}
        second = kube_mod.delete(node_class, kube=k, timeout=NODE_TIMEOUT_S)
        items += second.items
        commands.append(second.kubectl)
    return ApplyResult(tuple(items), " && ".join(commands))


# ---------------------------------------------------------------------------------------------- nodes


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _gpus_requested(pod: dict[str, Any]) -> float:
    total = 0.0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(GPU, (res.get("requests") or {}).get(GPU))
        total += status.quantity(value) if value is not None else 0.0
    return total


def _price_lookup(lab: LabContext) -> Callable[[str, str], float | None]:
    session = connect(lab.settings, platform=lab.platform())
    found: dict[tuple[str, str], float | None] = {}

    def price(instance_type: str, capacity: str) -> float | None:
        key = (instance_type, "spot" if capacity == "spot" else "on-demand")
        if key not in found:
            try:
                found[key] = prices.price(session, instance_type, key[1]).usd_per_hour
            except LabkitError:
                found[key] = None
        return found[key]

    return price


class NodesTable(Table, Shown):
    """A :class:`~labkit.kube.tables.Table` of nodes that also prints as text in a notebook."""


def nodes_table(
    *, lab: LabContext | None = None, kube: Any = None, pool: str | None = None, gpu_only: bool = False
) -> NodesTable:
    """Nodes with what a GPU platform needs to see: pool, instance type, capacity type, zone, GPUs used, $/hour.

    Args:
        pool: only nodes of this NodePool.
        gpu_only: only nodes that have (or will have) GPUs.
    """
    lab = lab_context(lab)
    k = kube_for(lab, kube)
    nodes = k.list("v1", "Node").items
    pods = k.list("v1", "Pod").items
    used: dict[str, float] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            used[node] = used.get(node, 0.0) + _gpus_requested(p)
    price = _price_lookup(lab)
    now = k.cluster_now(nodes)
    rows = []
    total = 0.0
    for n in sorted(nodes, key=lambda o: (_labels(o).get(NODEPOOL_LABEL, ""), o["metadata"]["name"])):
        labels = _labels(n)
        node_pool = labels.get(NODEPOOL_LABEL) or labels.get("eks.amazonaws.com/nodegroup") or "<none>"
        if pool and node_pool != pool:
            continue
        gpus = gpu_count(n)
        is_gpu = (
            gpus > 0
            or labels.get("karpenter.k8s.aws/instance-gpu-count")
            or labels.get("eks.amazonaws.com/instance-gpu-count")
        )
        if gpu_only and not is_gpu:
            continue
        itype = labels.get("node.kubernetes.io/instance-type", "<none>")
        capacity = labels.get("karpenter.sh/capacity-type") or labels.get("eks.amazonaws.com/capacityType") or ""
        capacity = capacity.lower().replace("_", "-") or "on-demand"
        usd = price(itype, capacity)
        total += usd or 0.0
        rows.append(
            (
                n["metadata"]["name"],
                node_pool,
                itype,
                capacity,
                labels.get("topology.kubernetes.io/zone", "<none>"),
                f"{used.get(n['metadata']['name'], 0):g}/{gpus}",
                "?" if usd is None else f"{usd:.4f}",
                status.age(n, now),
                "Ready" if status.has_condition(n, "Ready") else "NotReady",
            )
        )
    title = f"nodes{' of pool ' + pool if pool else ''}: {len(rows)}, ${total:.2f}/hour for instances"
    cmd = (
        "kubectl get nodes -L karpenter.sh/nodepool,node.kubernetes.io/instance-type,"
        "karpenter.sh/capacity-type,topology.kubernetes.io/zone" + (f" -l karpenter.sh/nodepool={pool}" if pool else "")
    )
    columns = ("NAME", "NODEPOOL", "INSTANCE-TYPE", "CAPACITY", "ZONE", "GPU-USED", "$/HOUR", "AGE", "STATUS")
    return NodesTable(columns, tuple(rows), title, cmd)


@dataclass(frozen=True)
class NodeEvent:
    """One step in a node's life, at a cluster time (epoch seconds)."""

    at: float
    subject: str
    what: str


@dataclass
class NodeWatch(Shown):
    """What happened to a pool's nodes while watching.

    Attributes:
        pool: the NodePool watched.
        until: ``ready`` (nodes came) or ``gone`` (nodes left).
        started: cluster time the watch began.
        events: the timeline, oldest first.
        done: whether the awaited state was reached.
        elapsed_wall_s: wall seconds spent.
        nodes: a nodes table at the end.
        time_scale: the cluster clock's speed-up.
    """

    pool: str
    until: str
    started: float
    events: list[NodeEvent] = field(default_factory=list)
    done: bool = False
    elapsed_wall_s: float = 0.0
    nodes: Table | None = None
    time_scale: float = 1.0

    @property
    def kubectl(self) -> str:
        return f"kubectl get nodeclaims,nodes -l karpenter.sh/nodepool={self.pool} -w"

    def lines(self) -> list[str]:
        """The timeline as text lines (times relative to the start of the watch).

        Watching nodes go shows only what happened since the watch began.
        """
        goal = "ready" if self.until == "ready" else "gone"
        state = "done" if self.done else "watching"
        head = f"NodePool {self.pool}: waiting for nodes to be {goal} ({state})"
        out = [head]
        shown = [e for e in self.events if self.until == "ready" or e.at >= self.started - 1.0]
        for e in sorted(shown, key=lambda e: e.at):
            delta = e.at - self.started
            when = f"+{clock_text(delta)}" if delta >= 0 else f"-{clock_text(-delta)}"
            out.append(f"  {when:>8}  {e.subject}: {e.what}")
        return out

    def __str__(self) -> str:
        text = "\n".join(self.lines())
        if self.elapsed_wall_s and self.time_scale != 1.0:
            text += f"\n  ({self.elapsed_wall_s:.1f} s wall at time scale {self.time_scale:g}; times are cluster time)"
        if self.nodes is not None:
            text += f"\n{self.nodes}"
        return text

    def _repr_html_(self) -> str:
        table = self.nodes.to_html() if self.nodes is not None else ""
        head = "\n".join(self.lines())
        if self.elapsed_wall_s and self.time_scale != 1.0:
            head += f"\n({self.elapsed_wall_s:.1f} s wall at time scale {self.time_scale:g})"
        return pre_html(head) + table

    def add(self, at: float | None, subject: str, what: str) -> bool:
        """Record an event once; returns whether it was new."""
        if at is None:
            return False
        if any(e.subject == subject and e.what == what for e in self.events):
            return False
        self.events.append(NodeEvent(at, subject, what))
        return True


def _claim_events(watch: NodeWatch, claim: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> None:
    name = claim["metadata"]["name"]
    subject = f"nodeclaim/{name}"
    labels = _labels(claim)
    watch.add(status.parse_time(claim["metadata"].get("creationTimestamp")), subject, "created for pending pods")
    conds = {c.get("type"): c for c in status.conditions(claim)}

    def when(kind: str) -> float | None:
        c = conds.get(kind) or {}
        return status.parse_time(c.get("lastTransitionTime")) if str(c.get("status")) == "True" else None

    itype = labels.get("node.kubernetes.io/instance-type")
    if itype:
        what = (
            f"launched {itype} ({labels.get('karpenter.sh/capacity-type', '?')}) in "
            f"{labels.get('topology.kubernetes.io/zone', '?')}"
        )
        watch.add(when("Launched"), subject, what)
    node_name = (claim.get("status") or {}).get("nodeName")
    if node_name:
        watch.add(when("Registered"), subject, f"registered as node {node_name}")
        node = nodes.get(node_name)
        gpus = gpu_count(node) if node else 0
        watch.add(when("Initialized"), subject, f"initialized: {gpus} {GPU} allocatable")
    watch.add(when("Ready"), subject, "Ready")
    deleting = status.parse_time(claim["metadata"].get("deletionTimestamp"))
    watch.add(deleting, subject, "deleting: draining and terminating the instance")


def _disruption_reasons(k: Kube, watch: NodeWatch, claims: Iterable[str]) -> None:
    wanted = set(claims)
    if not wanted:
        return
    try:
        events = k.list("v1", "Event", "default").items
    except LabkitError:
        return
    for e in events:
        inv = e.get("involvedObject") or {}
        if inv.get("kind") != "NodeClaim" or inv.get("name") not in wanted:
            continue
        if e.get("reason") in ("DisruptionTerminating", "DisruptionBlocked", "Unconsolidatable"):
            at = status.parse_time(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"))
            watch.add(at, f"nodeclaim/{inv['name']}", f"{e.get('reason')}: {e.get('message', '')}")


def watch_nodes(
    *,
    pool: str = "gpu",
    until: str = "ready",
    count: int = 1,
    lab: LabContext | None = None,
    kube: Any = None,
    timeout: float = NODE_TIMEOUT_S,
) -> NodeWatch:
    """Watch a pool's NodeClaims and nodes until ``count`` are Ready (``until="ready"``) or all are gone.

    The timeline comes from the objects' own timestamps (creation, ``Launched``, ``Registered``,
    ``Initialized``, ``Ready``, deletion) and Karpenter's disruption events, so its times are the
    cluster's, whatever the polling.

    Raises:
        Invalid: ``until`` is neither ``ready`` nor ``gone``.
        WaitTimeout: not reached within ``timeout`` cluster seconds; the message says why.
    """
    if until not in ("ready", "gone"):
        raise Invalid(f"unknown until={until!r}", "use until='ready' (nodes come) or until='gone' (nodes leave)")
    lab = lab_context(lab)
    k = kube_for(lab, kube)
    selector = f"{NODEPOOL_LABEL}={pool}"
    started_wall = time.monotonic()
    watch = NodeWatch(pool, until, k.cluster_now(), time_scale=k.time_scale)
    live = LiveView(lambda w: w.lines(), headless=lab.headless)
    deadline = started_wall + k.wall_timeout(timeout)
    seen: set[str] = set()
    try:
        while True:
            claims = k.list("karpenter.sh/v1", "NodeClaim", label_selector=selector).items
            nodes = {n["metadata"]["name"]: n for n in k.list("v1", "Node", label_selector=selector).items}
            for c in claims:
                name = c["metadata"]["name"]
                if until == "ready" and name not in seen and not status.has_condition(c, "Ready"):
                    # A NodeClaim still coming when the watch starts: its timeline starts at its creation.
                    created = status.parse_time(c["metadata"].get("creationTimestamp"))
                    watch.started = min(watch.started, created or watch.started)
                seen.add(name)
                _claim_events(watch, c, nodes)
            now = k.cluster_now(claims, list(nodes.values()))
            current = {c["metadata"]["name"] for c in claims}
            for gone in sorted(seen - current):
                watch.add(now, f"nodeclaim/{gone}", "gone: the instance is terminated")
            if until == "gone":
                _disruption_reasons(k, watch, seen)
                watch.done = not claims and not nodes
            else:
                ready = [
                    c for c in claims if status.has_condition(c, "Ready") and (c.get("status") or {}).get("nodeName")
                ]
                watch.done = len(ready) >= count
            live.show(watch)
            if watch.done:
                break
            if time.monotonic() >= deadline:
                raise _watch_timeout(k, watch, claims, timeout)
            time.sleep(poll_seconds(k))
    finally:
        live.close()
    watch.elapsed_wall_s = time.monotonic() - started_wall
    watch.nodes = nodes_table(lab=lab, kube=k, pool=pool)
    return watch


def _node_name(claim: dict[str, Any]) -> str:
    return str((claim.get("status") or {}).get("nodeName") or "")


def _watch_timeout(k: Kube, watch: NodeWatch, claims: list[dict[str, Any]], timeout: float) -> WaitTimeout:
    if watch.until == "gone":
        _disruption_reasons(k, watch, [c["metadata"]["name"] for c in claims])
        blocked = [e.what for e in watch.events if "Blocked" in e.what or "Unconsolidatable" in e.what]
        why = "; ".join(blocked[-3:]) or "no disruption was attempted"
        return WaitTimeout(
            f"the nodes of NodePool {watch.pool} were not removed within {timeout:g}s: {why}",
            "check for pods still on them (kubectl get pods -A -o wide), PodDisruptionBudgets, the pool's "
            "disruption budgets and consolidateAfter",
        )
    lines = [f"NodePool {watch.pool} got no Ready node within {timeout:g}s"]
    pool = k.try_get("karpenter.sh/v1", "NodePool", watch.pool)
    if pool is None:
        lines.append(f"  NodePool {watch.pool} does not exist")
    else:
        lines += [f"  NodePool {c}" for c in _not_true(pool)]
    for c in claims:
        lines += [f"  nodeclaim/{c['metadata']['name']} {cond}" for cond in _not_true(c)]
    warnings = _karpenter_warnings(k)
    lines += [f"  {w}" for w in warnings[-3:]]
    if not claims and not warnings:
        lines.append("  no NodeClaim was created: is a pod Pending that only this pool can serve?")
    return WaitTimeout(
        "\n".join(lines),
        "read the reasons above; kubectl describe nodepool and the pending pods' events say more",
    )


def _not_true(obj: dict[str, Any]) -> list[str]:
    return [
        f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}: {c.get('message', '')})"
        for c in status.conditions(obj)
        if str(c.get("status")) != "True"
    ]


def _karpenter_warnings(k: Kube) -> list[str]:
    try:
        events = k.list("v1", "Event").items
    except LabkitError:
        return []
    out = []
    for e in sorted(events, key=lambda e: status.parse_time(e.get("lastTimestamp")) or 0.0):
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        if e.get("type") == "Warning" and "karpenter" in str(source):
            inv = e.get("involvedObject") or {}
            out.append(f"{inv.get('kind', '').lower()}/{inv.get('name')}: {e.get('message', '')}")
    return out


# ---------------------------------------------------------------------------------------------- pending pods


@dataclass(frozen=True)
class PendingExplanation(Shown):
    """Why a pod is Pending: the GPU pools' limits it runs into, and the scheduler's and Karpenter's reasons.

    Attributes:
        pod: ``namespace/name``.
        gpus: GPUs the pod asks for.
        limits: one line per GPU NodePool whose ``spec.limits`` blocks the pod.
        diagnosis: the pod's explanation (:func:`labkit.kube.explain_pod`).
        kubectl: the equivalent ``kubectl describe``.
    """

    pod: str
    gpus: float
    limits: tuple[str, ...]
    diagnosis: Diagnosis
    kubectl: str
    notes: tuple[str, ...] = ()

    @property
    def fix(self) -> str:
        return self.diagnosis.fix

    def __str__(self) -> str:
        lines = [f"pod {self.pod} asks for {self.gpus:g} {GPU}"] if self.gpus else []
        lines += self.limits
        lines += self.notes
        lines.append(str(self.diagnosis))
        return "\n".join(lines)


def limit_findings(pod: dict[str, Any], nodepools: Iterable[dict[str, Any]]) -> list[str]:
    """Which GPU NodePools' ``nvidia.com/gpu`` limits keep ``pod`` from a node, and why (pure).

    A pod that selects a pool (``labkit.dev/pool``) is checked against that pool only.
    """
    want = _gpus_requested(pod)
    if want <= 0:
        return []
    wanted_pool = ((pod.get("spec") or {}).get("nodeSelector") or {}).get(POOL_LABEL)
    out = []
    for np in nodepools:
        name = np["metadata"]["name"]
        template_labels = (((np.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        if wanted_pool and template_labels.get(POOL_LABEL, name) != wanted_pool:
            continue
        limit_value = ((np.get("spec") or {}).get("limits") or {}).get(GPU)
        if limit_value is None:
            continue
        limit = status.quantity(limit_value)
        used = status.quantity(((np.get("status") or {}).get("resources") or {}).get(GPU, 0))
        left = max(0.0, limit - used)
        if want > limit:
            out.append(
                f"NodePool {name} caps {GPU} at {limit:g} (spec.limits, its cost cap): a pod asking for {want:g} "
                f"can never run there; raise the limit only if the team should pay for {want:g} GPUs"
            )
        elif want > left:
            out.append(
                f"NodePool {name}: limit {limit:g} {GPU}, {used:g} in use, {left:g} left: this pod needs "
                f"{want:g}, so it waits until GPUs are freed (or the limit is raised)"
            )
    return out


def why_pending(
    pod: str | None = None,
    *,
    namespace: str = "default",
    label_selector: str | None = None,
    lab: LabContext | None = None,
    kube: Any = None,
    timeout: float = PENDING_TIMEOUT_S,
) -> PendingExplanation:
    """Why a pod stays Pending, once the scheduler and Karpenter have both had their say.

    Give the pod's name, or a label selector that picks it. Waits (up to ``timeout`` cluster seconds)
    until Karpenter has either nominated a NodeClaim for the pod or recorded why it cannot, then
    explains the pod (:func:`labkit.kube.explain_pod`) and names the GPU NodePool limits it runs into.
    When Karpenter stays silent the explanation says so (is it running?).

    Raises:
        NotFound: no such pod.
    """
    k = kube_for(lab, kube)
    deadline = time.monotonic() + k.wall_timeout(timeout)
    while True:
        found = _find_pod(k, pod, namespace, label_selector)
        said = found is not None and ((found.get("spec") or {}).get("nodeName") or _karpenter_said(k, found))
        if said or time.monotonic() >= deadline:
            break
        time.sleep(poll_seconds(k))
    if found is None:
        raise NotFound(
            f"no pod {pod or '-l ' + str(label_selector)} in namespace {namespace}",
            "check the name or selector: kubectl get pods -n " + namespace + " --show-labels",
        )
    name = found["metadata"]["name"]
    notes = (
        ()
        if said
        else (
            f"Karpenter recorded nothing about this pod within {timeout:g}s: check that it runs (EKS Auto Mode, "
            "or the karpenter Deployment in kube-system on standard) and that a NodePool matches the pod",
        )
    )
    return PendingExplanation(
        f"{namespace}/{name}",
        _gpus_requested(found),
        tuple(limit_findings(found, k.list("karpenter.sh/v1", "NodePool").items)),
        explain_object(k, found),
        f"kubectl describe pod {name} -n {namespace}",
        notes,
    )


def _find_pod(k: Kube, name: str | None, namespace: str, selector: str | None) -> dict[str, Any] | None:
    if name:
        return k.try_get("v1", "Pod", name, namespace)
    if not selector:
        raise Invalid("why_pending needs a pod name or a label_selector", "e.g. label_selector='app=llama'")
    pods = [p for p in k.list("v1", "Pod", namespace, label_selector=selector).items if not _terminating(p)]
    return sorted(pods, key=lambda p: p["metadata"]["name"])[0] if pods else None


def _terminating(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _karpenter_said(k: Kube, pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    try:
        events = k.list("v1", "Event", meta.get("namespace") or "default").items
    except LabkitError:
        return False
    for e in events:
        inv = e.get("involvedObject") or {}
        if inv.get("name") != meta.get("name") or inv.get("kind") != "Pod":
            continue
        source = str((e.get("source") or {}).get("component") or e.get("reportingComponent") or "")
        message = str(e.get("message") or "").lower()
        if e.get("reason") == "Nominated":
            return True
        if e.get("reason") == "FailedScheduling" and ("karpenter" in source or "nodepool" in message):
            return True
    return False


# ---------------------------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class Scaled(Shown):
    """A workload scaled to a replica count."""

    ref: str
    namespace: str
    before: int
    after: int
    kubectl: str

    def __str__(self) -> str:
        return f"{self.ref} -n {self.namespace} scaled from {self.before} to {self.after} replicas"


def scale(
    ref: str,
    replicas: int,
    *,
    namespace: str = "default",
    lab: LabContext | None = None,
    kube: Any = None,
    show_kubectl: bool = False,
) -> Scaled:
    """Set a Deployment's or StatefulSet's replicas, like ``kubectl scale``: ``scale("deployment/vllm", 0)``.

    An autoscaler (HPA, KEDA) that owns the replica count will change it back; scale it through its
    own ``minReplicas`` instead.

    Raises:
        Invalid: a negative count, or a kind that does not scale.
        NotFound: no such workload.
    """
    if replicas < 0:
        raise Invalid(f"replicas must be 0 or more, got {replicas}", "pass 0 to scale to zero")
    k = kube_for(lab, kube)
    resource, _, name = ref.partition("/")
    if not name:
        raise Invalid(f"scale({ref!r}) names no object", "write it as kind/name, e.g. deployment/vllm")
    res = k.resolve(resource)
    if res.kind not in ("Deployment", "StatefulSet", "ReplicaSet"):
        raise Invalid(f"{res.kind} does not scale", "scale a Deployment, StatefulSet or ReplicaSet")
    shown = f"{res.kind.lower()}.{res.group}/{name}" if res.group else f"{res.kind.lower()}/{name}"
    cmd = f"kubectl scale {shown} --replicas={replicas} -n {namespace}"
    if show_kubectl:
        print(f"$ {cmd}")
    current = k.get(res.group_version, res.kind, name, namespace)
    before = int((current.get("spec") or {}).get("replicas", 1))
    k.patch(
        res.group_version, res.kind, name, {"spec": {"replicas": replicas}}, namespace=namespace, field_manager=SCALER
    )
    return Scaled(shown, namespace, before, replicas, cmd)


# ---------------------------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class CostNow(Shown):
    """The platform's hourly cost right now (the cost meter), with where each price came from."""

    report: cost.CostReport

    @property
    def usd_per_hour(self) -> float:
        return self.report.usd_per_hour

    def __str__(self) -> str:
        return self.report.to_text()


def cost_now(*, lab: LabContext | None = None, kube: Any = None) -> CostNow:
    """What the cluster costs per hour now: control plane, nodes (by instance and capacity type), fees."""
    lab = lab_context(lab)
    k = kube_for(lab, kube)
    session = connect(lab.settings, platform=lab.platform())
    return CostNow(cost.meter(session, lab.settings, k.list("v1", "Node").items))


__all__ = [
    "ClusterFacts",
    "CostNow",
    "GpuPoolSetup",
    "KarpenterInstall",
    "LiveView",
    "NodeEvent",
    "NodeWatch",
    "NodesTable",
    "PendingExplanation",
    "Scaled",
    "Shown",
    "cluster_facts",
    "controller_manifests",
    "cost_cap",
    "cost_now",
    "create_gpu_pool",
    "delete_gpu_pool",
    "install_device_plugin",
    "install_karpenter",
    "kube_for",
    "limit_findings",
    "nodes_table",
    "scale",
    "watch_nodes",
    "why_pending",
]
