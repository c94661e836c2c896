"""Service endpoints: the Endpoints and EndpointSlice objects behind every Service with a selector.

Ready pods are ``addresses`` (EndpointSlice ``conditions.ready: true``); pods with an IP that are
not ready yet are ``notReadyAddresses`` (``ready: false``), unless the Service sets
``publishNotReadyAddresses``. Named target ports resolve per pod against its container ports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from labkit.errors import Conflict, NotFound

from .base import Controller
from .common import (
    is_pod_ready,
    obj_key,
    owner_reference,
    rfc3339,
    split_key,
)

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def _selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _resolve_port(port: dict[str, Any], pod: dict[str, Any]) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == (port.get("protocol") or "TCP"):
                return int(p["containerPort"])
    return None


def endpoint_pods(service: dict[str, Any], pods: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """``(pod, ready)`` for every pod the Service routes to (has an IP, not finished, not terminating)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        if not _selects(selector, pod) or not status.get("podIP"):
            continue
        if status.get("phase") in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            continue
        out.append((pod, publish or is_pod_ready(pod)))
    out.sort(key=lambda item: tuple(int(x) for x in item[0]["status"]["podIP"].split(".") if x.isdigit()))
    return out


def _address(pod: dict[str, Any], service_name: str) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    addr: dict[str, Any] = {
        "ip": pod["status"]["podIP"],
        "targetRef": {
            "kind": "Pod",
            "namespace": pod["metadata"]["namespace"],
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"].get("uid", ""),
        },
    }
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == service_name:
        addr["hostname"] = spec["hostname"]
    return addr


def build_subsets(service: dict[str, Any], pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``subsets`` of the Service's Endpoints: pods grouped by their resolved port list."""
    ports = (service.get("spec") or {}).get("ports") or []
    name = service["metadata"]["name"]
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[dict[str, Any]]]] = {}
    for pod, ready in endpoint_pods(service, pods):
        resolved = []
        for p in ports:
            number = _resolve_port(p, pod)
            if number is not None:
                resolved.append((p.get("name") or "", number, p.get("protocol") or "TCP"))
        key = tuple(resolved)
        group = groups.setdefault(key, {"addresses": [], "notReadyAddresses": []})
        group["addresses" if ready else "notReadyAddresses"].append(_address(pod, name))
    subsets = []
    for key, group in groups.items():
        subset: dict[str, Any] = {k: v for k, v in group.items() if v}
        subset["ports"] = [
            {**({"name": n} if n else {}), "port": number, "protocol": proto} for n, number, proto in key
        ]
        subsets.append(subset)
    return subsets


class _ServiceController(Controller):
    """Shared event mapping: a pod change touches the Services selecting it (now or before)."""

    primary = "services"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == "services":
            return [obj_key(event.obj)]
        if event.key == "pods":
            ns = event.obj["metadata"].get("namespace")
            pods = [event.obj] + ([event.old] if getattr(event, "old", None) else [])
            services = self.ctx.list("services", ns)
            return [
                obj_key(s)
                for s in services
                if any(_selects((s.get("spec") or {}).get("selector") or {}, p) for p in pods)
            ]
        return []


class EndpointsController(_ServiceController):
    """Writes ``v1/Endpoints`` for every Service with a selector."""

    name = "endpoint-controller"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == "endpoints" and event.type == "DELETED":
            return [obj_key(event.obj)]
        return super().keys_for(event)

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        svc = self.store.try_get("services", ns, name)
        current = self.store.try_get("endpoints", ns, name)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            if svc is None and current is not None and _managed_endpoints(current):
                with contextlib.suppress(NotFound):
                    self.store.delete("endpoints", ns, name)
            return None
        pods = self.ctx.list("pods", ns, labels=svc["spec"]["selector"])
        subsets = build_subsets(svc, pods)
        labels = dict(svc["metadata"].get("labels") or {})
        labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
        labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
        if svc["spec"].get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        if current is not None:
            if (current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels:
                return None
            current["subsets"] = subsets
            if not subsets:
                current.pop("subsets", None)
            current["metadata"]["labels"] = labels
            current["metadata"].setdefault("annotations", {})[TRIGGER_TIME] = rfc3339(self.ctx.now())
            try:
                self.store.update("endpoints", current)
            except (Conflict, NotFound):
                return 0.0
            return None
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "annotations": {TRIGGER_TIME: rfc3339(self.ctx.now())},
            },
        }
        if subsets:
            body["subsets"] = subsets
        try:
            self.store.create("endpoints", body, namespace=ns)
        except Conflict:
            return 0.0
        return None


def _managed_endpoints(ep: dict[str, Any]) -> bool:
    return (ep["metadata"].get("labels") or {}).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller"


class EndpointSliceController(_ServiceController):
    """Writes ``discovery.k8s.io/v1`` EndpointSlices (one per Service) owned by the Service."""

    name = "endpointslice-controller"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == "endpointslices.discovery.k8s.io" and event.type == "DELETED":
            svc = (event.obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if svc:
                return [f"{event.obj['metadata']['namespace']}/{svc}"]
        return super().keys_for(event)

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        svc = self.store.try_get("services", ns, name)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            return None  # slices are owned by the Service: garbage collection removes them
        slices, _ = self.store.list(
            "endpointslices.discovery.k8s.io",
            ns,
            label_selector=f"{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={SLICE_MANAGER}",
        )
        pods = self.ctx.list("pods", ns, labels=svc["spec"]["selector"])
        endpoints, ports = self._build(svc, pods)
        labels = {
            **(svc["metadata"].get("labels") or {}),
            SERVICE_NAME_LABEL: name,
            MANAGED_BY_LABEL: SLICE_MANAGER,
        }
        if svc["spec"].get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        if slices:
            current = slices[0]
            for extra in slices[1:]:
                with contextlib.suppress(NotFound):
                    self.store.delete("endpointslices.discovery.k8s.io", ns, extra["metadata"]["name"])
            if current.get("endpoints") == endpoints and current.get("ports") == ports:
                return None
            current["endpoints"] = endpoints
            current["ports"] = ports
            current["metadata"]["labels"] = labels
            current["metadata"].setdefault("annotations", {})[TRIGGER_TIME] = rfc3339(self.ctx.now())
            try:
                self.store.update("endpointslices.discovery.k8s.io", current)
            except (Conflict, NotFound):
                return 0.0
            return None
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "namespace": ns,
                "labels": labels,
                "annotations": {TRIGGER_TIME: rfc3339(self.ctx.now())},
                "ownerReferences": [owner_reference({**svc, "apiVersion": "v1", "kind": "Service"})],
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }
        self.ctx.create_named("endpointslices.discovery.k8s.io", body, f"{name}-")
        return None

    def _build(self, svc: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[list[Obj], list[Obj]]:
        ports_spec = (svc.get("spec") or {}).get("ports") or []
        zones: dict[str, str] = {}
        nodes = self.ctx.list("nodes")
        for n in nodes:
            zone = (n["metadata"].get("labels") or {}).get("topology.kubernetes.io/zone")
            if zone:
                zones[n["metadata"]["name"]] = zone
        endpoints = []
        resolved_ports: dict[str, dict[str, Any]] = {}
        for pod, ready in endpoint_pods(svc, pods):
            entry: dict[str, Any] = {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "targetRef": {
                    "kind": "Pod",
                    "namespace": pod["metadata"]["namespace"],
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"].get("uid", ""),
                },
            }
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                entry["nodeName"] = node
                if node in zones:
                    entry["zone"] = zones[node]
            spec = pod.get("spec") or {}
            if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
                entry["hostname"] = spec["hostname"]
            endpoints.append(entry)
            for p in ports_spec:
                number = _resolve_port(p, pod)
                if number is not None:
                    port = {"name": p.get("name") or "", "port": number, "protocol": p.get("protocol") or "TCP"}
                    if p.get("appProtocol"):
                        port["appProtocol"] = p["appProtocol"]
                    resolved_ports.setdefault(port["name"], port)
        return endpoints, list(resolved_ports.values())
