"""Readable tables of Kubernetes objects, with ``kubectl get`` columns (pure).

:class:`Table` prints as aligned text (``print(table)``), renders as HTML in a
notebook (``_repr_html_``), and converts to dicts for checks. Builders take the
objects as plain dicts and the cluster's ``now`` (epoch seconds) for ages.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.kube import status

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron")
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
CAPACITY_TYPE_LABELS = ("karpenter.sh/capacity-type", "eks.amazonaws.com/capacityType")
NODEPOOL_LABELS = ("karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup")


@dataclass(frozen=True)
class Table:
    """Rows of strings under named columns.

    Attributes:
        columns: column headers, upper case like ``kubectl``.
        rows: one tuple of cell strings per object.
        title: optional caption (shown in HTML and above the text).
        kubectl: the equivalent ``kubectl`` command.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] = ()
    title: str = ""
    kubectl: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        """The cells of one column."""
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def as_dicts(self) -> list[dict[str, str]]:
        """Rows as ``{column: cell}`` dicts."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_text(self) -> str:
        """Aligned text, three spaces between columns, as ``kubectl get`` prints."""
        if not self.rows:
            return "No resources found."
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        lines = []
        for row in (self.columns, *self.rows):
            cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
            lines.append("   ".join(cells).rstrip())
        return "\n".join(lines)

    def to_html(self) -> str:
        """An HTML table (escaped), for notebooks and reports."""
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption style='text-align:left'>{html.escape(self.title)}</caption>" if self.title else ""
        empty = "" if self.rows else "<p>No resources found.</p>"
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{empty}"

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # The plain-text view of a notebook (and of executed notebooks in build/) is the kubectl-like table.
        printer.text(str(self))

    def __str__(self) -> str:
        return f"{self.title}\n{self.to_text()}" if self.title else self.to_text()


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: dict[str, Any], with_namespace: bool) -> list[str]:
    meta = _meta(obj)
    return (
        [str(meta.get("namespace") or ""), str(meta.get("name") or "")] if with_namespace else [str(meta.get("name"))]
    )


def _head(columns: Sequence[str], with_namespace: bool) -> tuple[str, ...]:
    return ("NAMESPACE", *columns) if with_namespace else tuple(columns)


@dataclass(frozen=True)
class Layout:
    """A ``kubectl get`` layout: called with objects and ``now``, it builds a :class:`Table`.

    Attributes:
        columns: headers after NAME.
        cells: the cells after NAME for one object, given ``now`` and ``wide``.
        wide_columns: headers added by ``wide`` (``cells`` adds their values).
        namespaced: whether ``with_namespace`` adds a NAMESPACE column (not for cluster-scoped kinds).
    """

    columns: tuple[str, ...]
    cells: Callable[[dict[str, Any], float, bool], list[str]]
    wide_columns: tuple[str, ...] = ()
    namespaced: bool = True

    def __call__(
        self,
        objs: Iterable[dict[str, Any]],
        now: float,
        *,
        wide: bool = False,
        with_namespace: bool = False,
        title: str = "",
        kubectl: str = "",
    ) -> Table:
        """The table of ``objs`` (ages relative to ``now``, epoch seconds)."""
        with_namespace = with_namespace and self.namespaced
        columns = ["NAME", *self.columns, *(self.wide_columns if wide else ())]
        rows = tuple(tuple(_name(o, with_namespace) + self.cells(o, now, wide)) for o in objs)
        return Table(_head(columns, with_namespace), rows, title, kubectl)


def _pod_cells(p: dict[str, Any], now: float, wide: bool) -> list[str]:
    out = [status.ready_count(p), status.pod_phase_text(p), str(status.restarts(p)), status.age(p, now)]
    if wide:
        st, spec = p.get("status") or {}, p.get("spec") or {}
        out += [str(st.get("podIP") or "<none>"), str(spec.get("nodeName") or "<none>")]
    return out


pods = Layout(("READY", "STATUS", "RESTARTS", "AGE"), _pod_cells, wide_columns=("IP", "NODE"))
"""``kubectl get pods``: NAME READY STATUS RESTARTS AGE (wide: IP NODE)."""


def _deployment_cells(d: dict[str, Any], now: float, wide: bool) -> list[str]:
    spec, st = d.get("spec") or {}, d.get("status") or {}
    replicas = spec.get("replicas", 1)
    out = [
        f"{st.get('readyReplicas', 0)}/{replicas}",
        str(st.get("updatedReplicas", 0)),
        str(st.get("availableReplicas", 0)),
        status.age(d, now),
    ]
    if wide:
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        out.append(",".join(str(c.get("image", "")) for c in containers))
    return out


deployments = Layout(("READY", "UP-TO-DATE", "AVAILABLE", "AGE"), _deployment_cells, wide_columns=("IMAGES",))
"""``kubectl get deployments``: NAME READY UP-TO-DATE AVAILABLE AGE (wide: IMAGES)."""


def _statefulset_cells(s: dict[str, Any], now: float, wide: bool) -> list[str]:
    spec, st = s.get("spec") or {}, s.get("status") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", status.age(s, now)]


statefulsets = Layout(("READY", "AGE"), _statefulset_cells)
"""``kubectl get statefulsets``: NAME READY AGE."""


def _daemonset_cells(d: dict[str, Any], now: float, wide: bool) -> list[str]:
    st = d.get("status") or {}
    keys = ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled")
    return [*(str(st.get(k, 0)) for k in keys), str(st.get("numberAvailable", 0)), status.age(d, now)]


daemonsets = Layout(("DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), _daemonset_cells)
"""``kubectl get daemonsets``: NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE AGE."""


def _job_cells(j: dict[str, Any], now: float, wide: bool) -> list[str]:
    spec, st = j.get("spec") or {}, j.get("status") or {}
    if status.has_condition(j, "Complete"):
        state = "Complete"
    elif status.has_condition(j, "Failed"):
        state = "Failed"
    elif _meta(j).get("deletionTimestamp"):
        state = "Terminating"
    else:
        state = "Running"
    return [state, f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}", status.age(j, now)]


jobs = Layout(("STATUS", "COMPLETIONS", "AGE"), _job_cells)
"""``kubectl get jobs``: NAME STATUS COMPLETIONS AGE."""


def _label(labels: dict[str, str], keys: Sequence[str]) -> str:
    return next((str(labels[k]) for k in keys if labels.get(k)), "<none>")


def gpu_count(node: dict[str, Any]) -> int:
    """Accelerators a node offers (``nvidia.com/gpu`` and friends, from capacity)."""
    capacity = (node.get("status") or {}).get("capacity") or {}
    return int(sum(status.quantity(capacity.get(r, 0)) for r in GPU_RESOURCES))


def node_roles(node: dict[str, Any]) -> str:
    labels = _meta(node).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    return ",".join(r for r in roles if r) or "<none>"


def node_status(node: dict[str, Any]) -> str:
    cond = status.condition(node, "Ready")
    text = "Unknown" if cond is None else "Ready" if str(cond.get("status")) == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _node_cells(n: dict[str, Any], now: float, wide: bool) -> list[str]:
    labels = _meta(n).get("labels") or {}
    info = (n.get("status") or {}).get("nodeInfo") or {}
    return [
        node_status(n),
        node_roles(n),
        status.age(n, now),
        str(info.get("kubeletVersion") or "<none>"),
        _label(labels, INSTANCE_TYPE_LABELS),
        _label(labels, ZONE_LABELS),
        _label(labels, CAPACITY_TYPE_LABELS).lower().replace("_", "-"),
        _label(labels, NODEPOOL_LABELS),
        str(gpu_count(n)),
    ]


nodes = Layout(
    ("STATUS", "ROLES", "AGE", "VERSION", "INSTANCE-TYPE", "ZONE", "CAPACITY", "NODEPOOL", "GPU"),
    _node_cells,
    namespaced=False,
)
"""``kubectl get nodes`` plus what a GPU platform needs: instance type, zone, capacity type, pool, GPUs."""


def service_ports(svc: dict[str, Any]) -> str:
    """The PORT(S) column: ``80/TCP``, ``80:30080/TCP``."""
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node_port}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(svc: dict[str, Any]) -> str:
    spec = svc.get("spec") or {}
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    found = [str(i.get("ip") or i.get("hostname")) for i in ingress if i.get("ip") or i.get("hostname")]
    found += [str(ip) for ip in spec.get("externalIPs") or []]
    if found:
        return ",".join(found)
    if spec.get("type") == "LoadBalancer":
        return "<pending>"
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    return "<none>"


def _service_cells(s: dict[str, Any], now: float, wide: bool) -> list[str]:
    spec = s.get("spec") or {}
    return [
        str(spec.get("type") or "ClusterIP"),
        str(spec.get("clusterIP") or "<none>"),
        _external_ip(s),
        service_ports(s),
        status.age(s, now),
    ]


services = Layout(("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), _service_cells)
"""``kubectl get services``: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE."""


def event_time(event: dict[str, Any]) -> float:
    """When an event last happened (epoch seconds; 0 when unknown)."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        when = status.parse_time(event.get(key))
        if when is not None:
            return when
    series = event.get("series") or {}
    when = status.parse_time(series.get("lastObservedTime"))
    if when is not None:
        return when
    return status.parse_time(_meta(event).get("creationTimestamp")) or 0.0


def events(
    objs: Iterable[dict[str, Any]],
    now: float,
    *,
    wide: bool = False,
    with_namespace: bool = False,
    title: str = "",
    kubectl: str = "",
) -> Table:
    """``kubectl events``: LAST SEEN TYPE REASON OBJECT MESSAGE, oldest first."""
    rows = []
    for e in sorted(objs, key=event_time):
        involved = e.get("involvedObject") or e.get("regarding") or {}
        obj = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
        count = int(e.get("count") or (e.get("series") or {}).get("count") or 1)
        seen = status.human_duration(now - event_time(e)) if event_time(e) else "<unknown>"
        if count > 1:
            seen += f" (x{count})"
        row = [seen, str(e.get("type") or ""), str(e.get("reason") or ""), obj, str(e.get("message") or "").strip()]
        rows.append(tuple(([str(_meta(e).get("namespace") or "")] if with_namespace else []) + row))
    columns = _head(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], with_namespace)
    return Table(columns, tuple(rows), title, kubectl)


generic = Layout(("AGE",), lambda o, now, wide: [status.age(o, now)])
"""NAME AGE, for kinds without a dedicated layout."""


def from_server_table(
    table: dict[str, Any], *, wide: bool = False, with_namespace: bool = False, title: str = "", kubectl: str = ""
) -> Table:
    """A ``meta.k8s.io/v1`` ``Table`` the API server rendered (priority-0 columns unless ``wide``)."""
    defs = table.get("columnDefinitions") or []
    keep = [i for i, d in enumerate(defs) if wide or int(d.get("priority") or 0) == 0]
    columns = [str(defs[i].get("name", "")).upper() for i in keep]
    rows = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        values = ["<none>" if i >= len(cells) or cells[i] in (None, "") else str(cells[i]) for i in keep]
        if with_namespace:
            obj = row.get("object") or {}
            values.insert(0, str((obj.get("metadata") or {}).get("namespace") or ""))
        rows.append(tuple(values))
    return Table(_head(columns, with_namespace), tuple(rows), title, kubectl)


BUILDERS: dict[str, Callable[..., Table]] = {
    "Pod": pods,
    "Deployment": deployments,
    "StatefulSet": statefulsets,
    "DaemonSet": daemonsets,
    "Job": jobs,
    "Node": nodes,
    "Service": services,
    "Event": events,
}
