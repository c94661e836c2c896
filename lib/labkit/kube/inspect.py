"""Looking at the cluster: objects, readable tables, logs, events and a short ``describe`` of a pod.

Tables print like ``kubectl get`` and render as HTML in notebooks. Ages use the
API server's clock (its ``Date`` header), so they are right on the embedded
target whose clock runs faster than wall time.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from labkit.errors import NotFound
from labkit.kube import diagnose, explain, kubectl, refs, status, tables
from labkit.kube.client import Kube, resolve
from labkit.kube.tables import Table


def _now(kube: Kube, objs: list[dict[str, Any]]) -> float:
    """The cluster's clock, never earlier than a timestamp in ``objs``."""
    return kube.cluster_now(objs)


def _target(kube: Kube, ref: str, name: str | None) -> tuple[str, str, bool, str | None]:
    resource, name = refs.parse_ref(ref, name)
    res = kube.resolve(resource)
    return res.group_version, res.kind, bool(res.namespaced), name


def _plural(kube: Kube, api_version: str, kind: str) -> str:
    return str(kube.resource(api_version, kind).name)


def get(ref: str, name: str | None = None, *, namespace: str | None = None, kube: Any = None) -> dict[str, Any]:
    """One object as a dict: ``get("deployment/vllm", namespace="serving")``.

    Raises:
        NotFound: no such object, namespace or kind.
    """
    k = resolve(kube)
    api_version, kind, namespaced, obj_name = _target(k, ref, name)
    if not obj_name:
        raise NotFound(f"get({ref!r}) names no object", "give a name, or use get_table() to list")
    return k.get(api_version, kind, obj_name, (namespace or "default") if namespaced else None)


def get_table(
    ref: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    all_namespaces: bool = False,
    wide: bool = False,
    kube: Any = None,
    show_kubectl: bool = False,
) -> Table:
    """A ``kubectl get`` table: ``get_table("pods", namespace="serving")``, ``get_table("nodes")``.

    Pods, Deployments, StatefulSets, DaemonSets, Jobs, Nodes (with instance type, zone, capacity
    type and GPUs), Services and Events have kit layouts; other kinds use the server's own columns.
    """
    k = resolve(kube)
    api_version, kind, namespaced, obj_name = _target(k, ref, name)
    ns = None if (not namespaced or all_namespaces) else (namespace or "default")
    shown = refs.display_name(api_version, kind)
    cmd = kubectl.get_cmd(
        shown,
        obj_name,
        namespace=ns,
        selector=label_selector,
        all_namespaces=all_namespaces and namespaced,
        output="wide" if wide else None,
    )
    if show_kubectl:
        print(f"$ {cmd}")
    with_ns = namespaced and all_namespaces
    title = _plural(k, api_version, kind) + (f" in {ns}" if ns else "")
    builder = tables.BUILDERS.get(kind) if refs.builtin(api_version, kind) else None
    if builder is None:
        server = k.table(api_version, kind, ns, name=obj_name, label_selector=label_selector)
        if server.get("kind") == "Table":
            return tables.from_server_table(server, wide=wide, with_namespace=with_ns, title=title, kubectl=cmd)
        objs = [server] if obj_name else list(server.get("items") or [])
        return tables.generic(objs, _now(k, objs), with_namespace=with_ns, title=title, kubectl=cmd)
    if obj_name:
        objs = [k.get(api_version, kind, obj_name, ns)]
    else:
        objs = k.list(api_version, kind, ns, label_selector=label_selector).items
    objs.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace") or "", (o.get("metadata") or {}).get("name")))
    return builder(objs, _now(k, objs), wide=wide, with_namespace=with_ns, title=title, kubectl=cmd)


def events_table(
    namespace: str | None = "default",
    *,
    for_ref: str | None = None,
    warnings_only: bool = False,
    kube: Any = None,
    show_kubectl: bool = False,
) -> Table:
    """Recent events of a namespace (``None``: all), optionally only those about ``for_ref`` (``pod/x``)."""
    k = resolve(kube)
    cmd = kubectl.events_cmd(namespace=namespace, for_ref=for_ref, warnings_only=warnings_only)
    if show_kubectl:
        print(f"$ {cmd}")
    events = k.list("v1", "Event", namespace).items
    if for_ref:
        api_version, kind, namespaced, obj_name = _target(k, for_ref, None)
        if not obj_name:
            raise NotFound(f"for_ref={for_ref!r} names no object", "write it as kind/name, e.g. pod/vllm-0")
        obj = k.get(api_version, kind, obj_name, (namespace or "default") if namespaced else None)
        events = explain.events_about(obj, events)
    if warnings_only:
        events = [e for e in events if e.get("type") == "Warning"]
    title = "Events" + (f" of {for_ref}" if for_ref else "") + (f" in {namespace}" if namespace else "")
    return tables.events(events, _now(k, events), with_namespace=namespace is None, title=title, kubectl=cmd)


def _pick_pod(k: Kube, ref: str, namespace: str) -> str:
    """The pod a ``logs`` reference means: ``pod/x``, ``x``, or a workload (its first ready pod)."""
    resource, _, name = ref.partition("/")
    if not name:
        return resource
    res = k.resolve(resource)
    if res.kind == "Pod":
        return name
    owner = k.get(res.group_version, res.kind, name, namespace)
    pods = diagnose.pods_of(k, owner)
    if not pods:
        raise NotFound(
            f"{ref} in {namespace} has no pods",
            f"check it is running: kubectl get {refs.display_name(res.group_version, res.kind)} {name} -n {namespace}",
        )
    pods.sort(key=lambda p: (not status.pod_ready(p), p["metadata"]["name"]))
    return str(pods[0]["metadata"]["name"])


def logs(
    pod: str,
    *,
    namespace: str = "default",
    container: str | None = None,
    tail: int | None = 50,
    previous: bool = False,
    kube: Any = None,
    show_kubectl: bool = False,
) -> str:
    """A pod's log (last ``tail`` lines): ``logs("vllm-0", namespace="serving")`` or ``logs("deployment/vllm")``."""
    k = resolve(kube)
    name = _pick_pod(k, pod, namespace)
    cmd = kubectl.logs_cmd(pod, namespace=namespace, container=container, tail=tail, previous=previous)
    if show_kubectl:
        print(f"$ {cmd}")
    return k.read_log(name, namespace, container=container, tail_lines=tail, previous=previous)


@dataclass(frozen=True)
class Description:
    """A short ``kubectl describe``: plain text, shown preformatted in notebooks."""

    text: str
    kubectl: str = ""

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


def _resources_text(container: dict[str, Any]) -> str:
    res = container.get("resources") or {}
    parts = []
    for key in ("requests", "limits"):
        values = res.get(key) or {}
        if values:
            parts.append(f"{key} " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
    return "; ".join(parts) or "no requests or limits"


def describe_pod(name: str, namespace: str = "default", *, kube: Any = None) -> Description:
    """The essentials of ``kubectl describe pod``: placement, containers, conditions, events, and why not ready."""
    k = resolve(kube)
    pod = k.get("v1", "Pod", name, namespace)
    events = diagnose.namespace_events(k, namespace)
    now = k.cluster_now([pod], events)
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    labels = ",".join(f"{a}={b}" for a, b in sorted((meta.get("labels") or {}).items())) or "<none>"
    lines = [
        f"Name:       {meta.get('name')}",
        f"Namespace:  {meta.get('namespace')}",
        f"Node:       {spec.get('nodeName') or '<none>'}",
        f"Status:     {status.pod_phase_text(pod)}",
        f"IP:         {st.get('podIP') or '<none>'}",
        f"Age:        {status.age(pod, now)}",
        f"Labels:     {labels}",
        "Containers:",
    ]
    statuses = {c.get("name"): c for c in status.container_statuses(pod)}
    for c in spec.get("containers") or []:
        cs = statuses.get(c.get("name")) or {}
        state = next(iter((cs.get("state") or {"waiting": {}}).keys()), "waiting")
        reason = ((cs.get("state") or {}).get(state) or {}).get("reason", "")
        lines.append(f"  {c.get('name')}: {c.get('image')}")
        lines.append(
            f"    state {state}{' (' + reason + ')' if reason else ''}, ready {bool(cs.get('ready'))}, "
            f"restarts {cs.get('restartCount', 0)}"
        )
        lines.append(f"    {_resources_text(c)}")
    lines.append("Conditions:")
    for cond in status.conditions(pod):
        extra = f" ({cond['reason']})" if cond.get("reason") else ""
        lines.append(f"  {cond.get('type')}={cond.get('status')}{extra}")
    mine = explain.events_about(pod, events)
    lines.append("Events:" if mine else "Events:     <none>")
    lines += [f"  {line}" for line in explain.event_lines(mine, now, limit=10)]
    if not status.pod_ready(pod) and st.get("phase") != "Succeeded":
        diagnosis = diagnose.explain_object(k, pod, events=events)
        lines.append("Why not ready:")
        lines.append(f"  {diagnosis.summary}")
        lines += [f"  fix: {h}" for h in diagnosis.hints]
    return Description("\n".join(lines), kubectl.describe_cmd(f"pod/{name}", namespace=namespace))
