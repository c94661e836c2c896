"""Fetching what an explanation needs (pods, events, log tails) and explaining an object.

The reading of status is pure (:mod:`labkit.kube.explain`); this module does the
few API calls it needs, through :class:`~labkit.kube.client.Kube`. Gathering is
best-effort: a failure to fetch details never hides the problem being explained.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labkit.errors import LabkitError
from labkit.kube import explain, status
from labkit.kube.client import Kube, resolve
from labkit.kube.explain import Diagnosis

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")


def namespace_events(kube: Kube, namespace: str | None) -> list[dict[str, Any]]:
    """Events of a namespace (cluster-scoped objects report theirs in ``default``); ``[]`` on failure."""
    try:
        return kube.list("v1", "Event", namespace or "default").items
    except LabkitError:
        return []


def pod_logs(kube: Kube, pod: dict[str, Any], *, tail: int = explain.LOG_LINES) -> dict[str, str]:
    """Log tails of the containers whose log explains a problem (crashed, failing, not ready)."""
    meta = pod.get("metadata") or {}
    out: dict[str, str] = {}
    for container, previous in explain.containers_to_log(pod):
        for prev in (True, False) if previous else (False,):
            with contextlib.suppress(LabkitError):
                text = kube.read_log(
                    str(meta.get("name")),
                    str(meta.get("namespace") or "default"),
                    container=container,
                    tail_lines=tail,
                    previous=prev,
                )
                if text.strip():
                    out[container + (" (previous run)" if prev else "")] = text
                    break
    return out


def pods_of(kube: Kube, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods a workload selects (by its ``spec.selector``), in its namespace."""
    selector = status.selector_string((obj.get("spec") or {}).get("selector"))
    if not selector:
        return []
    namespace = (obj.get("metadata") or {}).get("namespace") or "default"
    return kube.list("v1", "Pod", namespace, label_selector=selector).items


def _owned_by(child: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = (owner.get("metadata") or {}).get("uid")
    return any(ref.get("uid") == uid for ref in (child.get("metadata") or {}).get("ownerReferences") or [])


def explain_object(kube: Kube, obj: dict[str, Any], *, events: list[dict[str, Any]] | None = None) -> Diagnosis:
    """Why ``obj`` is not in the awaited state: pods, conditions, events and log tails as fits its kind."""
    kind = obj.get("kind", "")
    namespace = (obj.get("metadata") or {}).get("namespace")
    if events is None:
        events = namespace_events(kube, namespace)
    now = kube.cluster_now([obj], events)
    if kind == "Pod":
        return explain.diagnose_pod(obj, events, pod_logs(kube, obj), now=now)
    if kind in WORKLOADS:
        try:
            pods = pods_of(kube, obj)
        except LabkitError:
            pods = []
        related: list[dict[str, Any]] = []
        if kind == "Deployment":
            with contextlib.suppress(LabkitError):
                selector = status.selector_string((obj.get("spec") or {}).get("selector"))
                sets = kube.list("apps/v1", "ReplicaSet", namespace, label_selector=selector or None).items
                related = [rs for rs in sets if _owned_by(rs, obj)]
        stuck = [p for p in pods if not status.pod_ready(p)][: explain.MAX_PODS]
        logs = {str(p["metadata"]["name"]): pod_logs(kube, p) for p in stuck}
        return explain.diagnose_workload(obj, pods, events, logs, now=now, related=related)
    return explain.diagnose_object(obj, events, now=now)


def explain_pod(name: str, namespace: str = "default", *, kube: Any = None) -> Diagnosis:
    """Explain one pod: why it is Pending, not Ready or crashing (``print()`` the result)."""
    k = resolve(kube)
    return explain_object(k, k.get("v1", "Pod", name, namespace))
