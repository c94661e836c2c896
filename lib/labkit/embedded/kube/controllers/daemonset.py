"""The DaemonSet controller: one pod on every node the template may run on.

A node is eligible when the template's node selector and required node affinity accept it and
every ``NoSchedule``/``NoExecute`` taint is tolerated (the tolerations DaemonSet pods get for
free included). Pods target their node with a ``matchFields`` node affinity on
``metadata.name`` and are bound by the scheduler, as on a real cluster. RollingUpdate replaces
pods of older templates at most ``maxUnavailable`` at a time.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from labkit.errors import ApiError, NotFound

from ..scheduler import node_matches_pod_affinity_selector, node_taints, untolerated_taint
from .base import Controller
from .common import (
    controller_ref,
    int_or_percent,
    is_owned_by,
    is_pod_available,
    is_pod_ready,
    obj_key,
    pod_from_template,
    split_key,
    write_status,
)
from .statefulset import REVISION_LABEL, template_revision

GENERATION_LABEL = "pod-template-generation"

#: Tolerations the DaemonSet controller adds to every daemon pod.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def daemon_pod_spec(template: dict[str, Any]) -> dict[str, Any]:
    """The template's pod spec with the DaemonSet tolerations added."""
    spec = copy.deepcopy(template.get("spec") or {})
    tolerations = spec.setdefault("tolerations", [])
    wanted = list(DAEMON_TOLERATIONS) + ([_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
    for t in wanted:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tolerations):
            tolerations.append(dict(t))
    return spec


def should_run(template: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether a daemon pod of ``template`` belongs on ``node``."""
    pod = {"metadata": template.get("metadata") or {}, "spec": daemon_pod_spec(template)}
    if not node_matches_pod_affinity_selector(pod, node):
        return False
    return untolerated_taint(node_taints(node), pod["spec"].get("tolerations")) is None


def _target_node(pod: dict[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and f.get("values"):
                return str(f["values"][0])
    return None


def _pin(spec: dict[str, Any], node: str) -> None:
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    field = {"key": "metadata.name", "operator": "In", "values": [node]}
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchFields": [field]}]}


class DaemonSetController(Controller):
    """Reconciles DaemonSets into one pod per eligible node."""

    name = "daemonset-controller"
    primary = "daemonsets.apps"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "pods":
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "DaemonSet":
                return [f"{event.obj['metadata']['namespace']}/{ref['name']}"]
        if event.key == "nodes":
            old = getattr(event, "old", None)
            if (
                event.type == "MODIFIED"
                and old is not None
                and old.get("spec") == event.obj.get("spec")
                and (old["metadata"].get("labels") == event.obj["metadata"].get("labels"))
            ):
                return []
            return list(self.all_keys())
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        ds = self.store.try_get(self.primary, ns, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return None
        template = (ds.get("spec") or {}).get("template") or {}
        revision = f"{name}-{template_revision(template)}"
        nodes = self.ctx.list("nodes")
        eligible = {n["metadata"]["name"]: n for n in nodes if should_run(template, n)}
        pods = self.ctx.list("pods", ns)
        owned = [p for p in pods if is_owned_by(p, ds) and not p["metadata"].get("deletionTimestamp")]
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in owned:
            if (p.get("status") or {}).get("phase") == "Failed":
                self._delete(ds, p)
                continue
            by_node.setdefault(_target_node(p) or "", []).append(p)
        for node_name, node_pods in list(by_node.items()):
            if node_name not in eligible:
                for p in node_pods:
                    self._delete(ds, p)
                del by_node[node_name]
            elif len(node_pods) > 1:
                keep = min(node_pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
                for p in node_pods:
                    if p is not keep:
                        self._delete(ds, p)
                by_node[node_name] = [keep]
        for node_name in eligible:
            if node_name not in by_node:
                pod = self._create(ds, node_name, revision)
                if pod is not None:
                    by_node[node_name] = [pod]
        self._rolling_update(ds, by_node, revision)
        return self._status(ds, eligible, by_node, revision)

    def _create(self, ds: dict[str, Any], node: str, revision: str) -> dict[str, Any] | None:
        template = ds["spec"].get("template") or {}
        pod = pod_from_template(template, ds)
        pod["spec"] = daemon_pod_spec(template)
        _pin(pod["spec"], node)
        pod["metadata"]["labels"][REVISION_LABEL] = revision.rsplit("-", 1)[-1]
        pod["metadata"]["labels"][GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
        try:
            made = self.ctx.create_named("pods", pod, ds["metadata"]["name"] + "-")
        except ApiError as exc:
            self.event(ds, "FailedCreate", f"Error creating: {getattr(exc, 'what', exc)}", kind="Warning")
            return None
        self.event(ds, "SuccessfulCreate", f"Created pod: {made['metadata']['name']}")
        return made

    def _delete(self, ds: dict[str, Any], pod: dict[str, Any]) -> None:
        with contextlib.suppress(NotFound):
            self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.event(ds, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def _rolling_update(self, ds: dict[str, Any], by_node: dict[str, list[dict[str, Any]]], revision: str) -> None:
        strategy = ds["spec"].get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return
        current = revision.rsplit("-", 1)[-1]
        pods = [ps[0] for ps in by_node.values() if ps]
        budget = max(1, int_or_percent((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(pods),
                                       round_up=True))  # fmt: skip
        unavailable = sum(1 for p in pods if not is_pod_ready(p))
        for node, ps in list(by_node.items()):
            if unavailable >= budget:
                return
            p = ps[0] if ps else None
            if p is not None and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != current:
                self._delete(ds, p)
                by_node[node] = []
                unavailable += 1 if is_pod_ready(p) else 0

    def _status(
        self,
        ds: dict[str, Any],
        eligible: dict[str, Any],
        by_node: dict[str, list[dict[str, Any]]],
        revision: str,
    ) -> float | None:
        now = self.ctx.now()
        min_ready = float((ds.get("spec") or {}).get("minReadySeconds") or 0)
        current = revision.rsplit("-", 1)[-1]
        pods = [ps[0] for n, ps in by_node.items() if ps and n in eligible]
        ready = [p for p in pods if is_pod_ready(p)]
        available = [p for p in pods if is_pod_available(p, min_ready, now)]
        status = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": len(eligible),
            "numberMisscheduled": 0,
            "numberReady": len(ready),
            "numberAvailable": len(available),
            "updatedNumberScheduled": sum(
                1 for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == current
            ),
            "numberUnavailable": max(0, len(eligible) - len(available)),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        required = ("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady")
        status = {k: v for k, v in status.items() if v or k in required}

        def mutate(obj: dict[str, Any]) -> bool:
            if obj.get("status") == status:
                return False
            obj["status"] = dict(status)
            return True

        write_status(self.store, self.primary, ds["metadata"]["namespace"], ds["metadata"]["name"], mutate)
        if min_ready > 0 and len(ready) != len(available):
            return min_ready
        return None
