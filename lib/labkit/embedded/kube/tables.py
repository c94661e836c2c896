"""Server-side Table output (``meta.k8s.io/v1`` Table), so ``kubectl get`` shows the usual columns.

Pure functions: an object (a plain dict as served) and the simulated "now" give the row cells
kube-apiserver's printers would give: pods (READY, STATUS, RESTARTS, AGE, wide IP and NODE),
deployments, replica sets, nodes, services, and so on; custom resources per their CRD's
``additionalPrinterColumns`` (a JSONPath subset); NAME and AGE for anything else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NONE = "<none>"
TABLE_API_VERSION = "meta.k8s.io/v1"


@dataclass(frozen=True)
class Column:
    """One column definition; ``priority`` 1 columns appear only with ``-o wide``."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        """The ``columnDefinitions`` entry."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


# ---------------------------------------------------------------------------------------------
# time helpers


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (``2025-01-01T00:00:00Z``); None when absent or invalid."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages: ``45s``, ``3m12s``, ``25m``, ``5h3m``, ``2d4h``, ``400d``, ``3y``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: float) -> str:
    """How long ago ``timestamp`` was, as kubectl prints it; ``<unknown>`` when there is none."""
    t = parse_time(timestamp)
    return "<unknown>" if t is None else human_duration(now - t)


# ---------------------------------------------------------------------------------------------
# small accessors


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def _status(obj: dict) -> dict:
    return obj.get("status") or {}


def _created(obj: dict, now: float) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


def format_labels(labels: dict | None) -> str:
    """``a=b,c=d`` (sorted), or ``<none>``."""
    if not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def format_selector(selector: dict | None) -> str:
    """A label selector (matchLabels and matchExpressions) as kubectl prints it."""
    if not selector:
        return NONE
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) if parts else NONE


def _containers_images(template_spec: dict) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _template_spec(obj: dict) -> dict:
    return (_spec(obj).get("template") or {}).get("spec") or {}


_NAME = Column("Name", "string", "name", "Name must be unique within a namespace.")
_AGE = Column(
    "Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created."
)
_CONTAINERS = Column("Containers", "string", "", "Names of each container in the template.", 1)
_IMAGES = Column("Images", "string", "", "Images referenced by each container in the template.", 1)
_SELECTOR = Column("Selector", "string", "", "The label selector of the object.", 1)


# ---------------------------------------------------------------------------------------------
# per-kind printers: (columns, row function)

Printer = tuple[list[Column], Callable[[dict, float], list[Any]]]


def _pod_row(pod: dict, now: float) -> list[Any]:
    spec, status = _spec(pod), _status(pod)
    restarts = 0
    ready = 0
    last_restart: float | None = None
    restartable_init = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    total = len(spec.get("containers") or []) + len(restartable_init)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def note_restart(cs: dict) -> None:
        nonlocal last_restart
        finished = parse_time((((cs.get("lastState") or {}).get("terminated")) or {}).get("finishedAt"))
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished

    initializing = False
    init_specs = spec.get("initContainers") or []
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        note_restart(cs)
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        sidecar = any(c.get("name") == cs.get("name") and c.get("restartPolicy") == "Always" for c in init_specs)
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        restarts = sum(int(cs.get("restartCount") or 0) for cs in init_statuses if _is_sidecar(cs, init_specs))
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            note_restart(cs)
            state = cs.get("state") or {}
            waiting, term, running = state.get("waiting"), state.get("terminated"), state.get("running")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and running is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            reason = "Running" if pod_ready else "NotReady"
    meta = _meta(pod)
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"
    gates = spec.get("readinessGates") or []
    if gates:
        true_conditions = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gates_cell = f"{sum(1 for g in gates if g.get('conditionType') in true_conditions)}/{len(gates)}"
    else:
        gates_cell = NONE
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _created(pod, now),
        status.get("podIP") or NONE,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        gates_cell,
    ]


def _is_sidecar(cs: dict, init_specs: list[dict]) -> bool:
    return any(c.get("name") == cs.get("name") and c.get("restartPolicy") == "Always" for c in init_specs)


_POD: Printer = (
    [
        _NAME,
        Column("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "string", "", "The aggregate status of the containers in this pod."),
        Column("Restarts", "string", "", "The number of times the containers in this pod have been restarted."),
        _AGE,
        Column("IP", "string", "", "IP address allocated to the pod.", 1),
        Column("Node", "string", "", "Name of the Node this pod runs on.", 1),
        Column("Nominated Node", "string", "", "Name of the node nominated for preemption.", 1),
        Column("Readiness Gates", "string", "", "Pod readiness gates.", 1),
    ],
    _pod_row,
)


def _deployment_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    containers, images = _containers_images(_template_spec(obj))
    return [
        _meta(obj).get("name", ""),
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1) or 0)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _created(obj, now),
        containers,
        images,
        format_selector(spec.get("selector")),
    ]


_DEPLOYMENT: Printer = (
    [
        _NAME,
        Column("Ready", "string", "", "Number of the pod with ready state"),
        Column("Up-to-date", "integer", "", "Total number of non-terminated pods with the desired template spec."),
        Column("Available", "integer", "", "Total number of available pods (ready for at least minReadySeconds)."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ],
    _deployment_row,
)


def _replicaset_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    containers, images = _containers_images(_template_spec(obj))
    return [
        _meta(obj).get("name", ""),
        int(spec.get("replicas", 1) or 0),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        _created(obj, now),
        containers,
        images,
        format_selector(spec.get("selector")),
    ]


_REPLICASET: Printer = (
    [
        _NAME,
        Column("Desired", "integer", "", "Number of desired pods."),
        Column("Current", "integer", "", "Number of actual replicas."),
        Column("Ready", "integer", "", "Number of ready replicas."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ],
    _replicaset_row,
)


def _statefulset_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    containers, images = _containers_images(_template_spec(obj))
    return [
        _meta(obj).get("name", ""),
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1) or 0)}",
        _created(obj, now),
        containers,
        images,
    ]


_STATEFULSET: Printer = (
    [_NAME, Column("Ready", "string", "", "Number of the pod with ready state"), _AGE, _CONTAINERS, _IMAGES],
    _statefulset_row,
)


def _daemonset_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    template_spec = _template_spec(obj)
    containers, images = _containers_images(template_spec)
    return [
        _meta(obj).get("name", ""),
        int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0),
        int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0),
        int(status.get("numberAvailable") or 0),
        format_labels(template_spec.get("nodeSelector")),
        _created(obj, now),
        containers,
        images,
        format_selector(spec.get("selector")),
    ]


_DAEMONSET: Printer = (
    [
        _NAME,
        Column("Desired", "integer", "", "The total number of nodes that should be running the daemon pod."),
        Column("Current", "integer", "", "The number of nodes running at least one daemon pod."),
        Column("Ready", "integer", "", "The number of nodes with a ready daemon pod."),
        Column("Up-to-date", "integer", "", "The number of nodes running the updated daemon pod."),
        Column("Available", "integer", "", "The number of nodes with an available daemon pod."),
        Column("Node Selector", "string", "", "NodeSelector of the pod template."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ],
    _daemonset_row,
)


def _job_status(obj: dict) -> str:
    conditions = {c.get("type"): c.get("status") for c in _status(obj).get("conditions") or []}
    for kind in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if conditions.get(kind) == "True":
            return kind
    if _meta(obj).get("deletionTimestamp"):
        return "Terminating"
    return "Running"


def _job_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    succeeded = int(status.get("succeeded") or 0)
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1) or 0)
    if completions is not None:
        completions_cell = f"{succeeded}/{int(completions)}"
    elif parallelism > 1:
        completions_cell = f"{succeeded}/1 of {parallelism}"
    else:
        completions_cell = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration((end if end is not None else now) - start)
    containers, images = _containers_images(_template_spec(obj))
    return [
        _meta(obj).get("name", ""),
        _job_status(obj),
        completions_cell,
        duration,
        _created(obj, now),
        containers,
        images,
        format_selector(spec.get("selector")),
    ]


_JOB: Printer = (
    [
        _NAME,
        Column("Status", "string", "", "Status of the job."),
        Column("Completions", "string", "", "The completion status of the job."),
        Column("Duration", "string", "", "Time required to complete the job."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ],
    _job_row,
)


def _cronjob_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    containers, images = _containers_images(((job_spec.get("template") or {}).get("spec")) or {})
    last = status.get("lastScheduleTime")
    return [
        _meta(obj).get("name", ""),
        spec.get("schedule", ""),
        spec.get("timeZone") or NONE,
        "True" if spec.get("suspend") else "False",
        len(status.get("active") or []),
        age(last, now) if last else NONE,
        _created(obj, now),
        containers,
        images,
        format_selector(job_spec.get("selector")),
    ]


_CRONJOB: Printer = (
    [
        _NAME,
        Column("Schedule", "string", "", "The schedule in Cron format."),
        Column("Timezone", "string", "", "The time zone name for the given schedule."),
        Column("Suspend", "boolean", "", "Whether subsequent executions are suspended."),
        Column("Active", "integer", "", "Number of currently running jobs."),
        Column("Last Schedule", "string", "", "When the job was last successfully scheduled."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ],
    _cronjob_row,
)


def node_roles(labels: dict | None) -> str:
    """Roles from ``node-role.kubernetes.io/<role>`` and ``kubernetes.io/role`` labels, or ``<none>``."""
    roles: set[str] = set()
    for key, value in (labels or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.split("/", 1)[1]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) if roles else NONE


def _node_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = ["Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    addresses = status.get("addresses") or []
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    external = next((a.get("address") for a in addresses if a.get("type") == "ExternalIP"), None)
    info = status.get("nodeInfo") or {}
    return [
        _meta(obj).get("name", ""),
        ",".join(states),
        node_roles(_meta(obj).get("labels")),
        _created(obj, now),
        info.get("kubeletVersion", ""),
        internal or NONE,
        external or NONE,
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


_NODE: Printer = (
    [
        _NAME,
        Column("Status", "string", "", "The status of the node"),
        Column("Roles", "string", "", "The roles of the node"),
        _AGE,
        Column("Version", "string", "", "Kubelet Version reported by the node."),
        Column("Internal-IP", "string", "", "List of addresses reachable to the node.", 1),
        Column("External-IP", "string", "", "List of addresses reachable to the node.", 1),
        Column("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release.", 1),
        Column("Kernel-Version", "string", "", "Kernel Version reported by the node.", 1),
        Column("Container-Runtime", "string", "", "Container Runtime Version reported by the node.", 1),
    ],
    _node_row,
)


def _service_external_ip(spec: dict, status: dict) -> str:
    svc_type = spec.get("type") or "ClusterIP"
    external_ips = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else NONE
    if svc_type == "ExternalName":
        return spec.get("externalName") or NONE
    if svc_type == "LoadBalancer":
        ingress = [
            i.get("ip") or i.get("hostname") or "" for i in ((status.get("loadBalancer") or {}).get("ingress") or [])
        ]
        ips = [*ingress, *external_ips]
        return ",".join(i for i in ips if i) if any(ips) else "<pending>"
    return "<unknown>"


def _service_ports(spec: dict) -> str:
    ports = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}/{p.get('protocol') or 'TCP'}"
        if p.get("nodePort"):
            text = f"{p.get('port')}:{p['nodePort']}/{p.get('protocol') or 'TCP'}"
        ports.append(text)
    return ",".join(ports) if ports else NONE


def _service_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    return [
        _meta(obj).get("name", ""),
        spec.get("type") or "ClusterIP",
        spec.get("clusterIP") or NONE,
        _service_external_ip(spec, status),
        _service_ports(spec),
        _created(obj, now),
        format_labels(spec.get("selector")),
    ]


_SERVICE: Printer = (
    [
        _NAME,
        Column("Type", "string", "", "The type of the service."),
        Column("Cluster-IP", "string", "", "The cluster IP of the service."),
        Column("External-IP", "string", "", "The external IPs of the service."),
        Column("Port(s)", "string", "", "The ports of the service."),
        _AGE,
        Column("Selector", "string", "", "The selector of the service.", 1),
    ],
    _service_row,
)


def _namespace_row(obj: dict, now: float) -> list[Any]:
    return [_meta(obj).get("name", ""), _status(obj).get("phase") or "Active", _created(obj, now)]


_NAMESPACE: Printer = (
    [_NAME, Column("Status", "string", "", "The status of the namespace"), _AGE],
    _namespace_row,
)


def _event_row(obj: dict, now: float) -> list[Any]:
    meta = _meta(obj)
    involved = obj.get("involvedObject") or {}
    first = obj.get("firstTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp")
    last = obj.get("lastTimestamp") or ((obj.get("series") or {}).get("lastObservedTime")) or first
    count = int(obj.get("count") or ((obj.get("series") or {}).get("count")) or 1)
    last_seen = age(last, now)
    if count > 1:
        last_seen = f"{last_seen} (x{count} over {age(first, now)})"
    source = obj.get("source") or {}
    source_cell = ", ".join(s for s in (source.get("component"), source.get("host")) if s) or (
        obj.get("reportingComponent") or ""
    )
    return [
        last_seen,
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
        involved.get("fieldPath", ""),
        source_cell,
        age(first, now),
        count,
        meta.get("name", ""),
    ]


_EVENT: Printer = (
    [
        Column("Last Seen", "string", "", "Time when the event was last observed."),
        Column("Type", "string", "", "Type of this event (Normal, Warning)."),
        Column("Reason", "string", "", "Why the action was taken."),
        Column("Object", "string", "", "The object that this event is about."),
        Column("Message", "string", "", "A human-readable description of the status of this operation."),
        Column("Subobject", "string", "", "The field of the object this event is about.", 1),
        Column("Source", "string", "", "The component reporting this event.", 1),
        Column("First Seen", "string", "", "The time at which the event was first recorded.", 1),
        Column("Count", "string", "", "The number of times this event has occurred.", 1),
        Column("Name", "string", "name", "Name must be unique within a namespace.", 1),
    ],
    _event_row,
)


def _configmap_row(obj: dict, now: float) -> list[Any]:
    return [
        _meta(obj).get("name", ""),
        len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
        _created(obj, now),
    ]


_CONFIGMAP: Printer = (
    [_NAME, Column("Data", "integer", "", "Number of data entries."), _AGE],
    _configmap_row,
)


def _secret_row(obj: dict, now: float) -> list[Any]:
    return [
        _meta(obj).get("name", ""),
        obj.get("type") or "Opaque",
        len(obj.get("data") or {}),
        _created(obj, now),
    ]


_SECRET: Printer = (
    [
        _NAME,
        Column("Type", "string", "", "The type of the secret"),
        Column("Data", "integer", "", "Number of data entries."),
        _AGE,
    ],
    _secret_row,
)


def _serviceaccount_row(obj: dict, now: float) -> list[Any]:
    return [_meta(obj).get("name", ""), len(obj.get("secrets") or []), _created(obj, now)]


_SERVICEACCOUNT: Printer = (
    [_NAME, Column("Secrets", "string", "", "Secrets is a list of the secrets."), _AGE],
    _serviceaccount_row,
)


def _endpoints_row(obj: dict, now: float) -> list[Any]:
    addresses: list[str] = []
    for subset in obj.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for a in subset.get("addresses") or []:
            addresses.extend(f"{a.get('ip')}:{p}" if p is not None else str(a.get("ip")) for p in ports)
    if not addresses:
        cell = NONE
    elif len(addresses) > 3:
        cell = ",".join(addresses[:3]) + f" + {len(addresses) - 3} more..."
    else:
        cell = ",".join(addresses)
    return [_meta(obj).get("name", ""), cell, _created(obj, now)]


_ENDPOINTS: Printer = (
    [_NAME, Column("Endpoints", "string", "", "Endpoints of the service"), _AGE],
    _endpoints_row,
)


def _pvc_row(obj: dict, now: float) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    capacity = (status.get("capacity") or {}).get("storage", "")
    modes = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return [
        _meta(obj).get("name", ""),
        status.get("phase") or "Pending",
        spec.get("volumeName", ""),
        capacity,
        ",".join(modes.get(m, m) for m in status.get("accessModes") or []),
        spec.get("storageClassName") or "",
        spec.get("volumeAttributesClassName") or "<unset>",
        _created(obj, now),
        spec.get("volumeMode") or "Filesystem",
    ]


_PVC: Printer = (
    [
        _NAME,
        Column("Status", "string", "", "The phase of the claim."),
        Column("Volume", "string", "", "The binding reference to the PersistentVolume."),
        Column("Capacity", "string", "", "The actual resources of the underlying volume."),
        Column("Access Modes", "string", "", "The actual access modes the volume backing the PVC has."),
        Column("StorageClass", "string", "", "The name of the StorageClass required by the claim."),
        Column("VolumeAttributesClass", "string", "", "The VolumeAttributesClass the claim uses."),
        _AGE,
        Column("VolumeMode", "string", "", "How the volume is intended to be consumed.", 1),
    ],
    _pvc_row,
)


def _storageclass_row(obj: dict, now: float) -> list[Any]:
    name = _meta(obj).get("name", "")
    annotations = _meta(obj).get("annotations") or {}
    if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [
        name,
        obj.get("provisioner", ""),
        obj.get("reclaimPolicy") or "Delete",
        obj.get("volumeBindingMode") or "Immediate",
        bool(obj.get("allowVolumeExpansion")),
        _created(obj, now),
    ]


_STORAGECLASS: Printer = (
    [
        _NAME,
        Column("Provisioner", "string", "", "The provisioner of the storage class."),
        Column("ReclaimPolicy", "string", "", "The reclaim policy of dynamically provisioned volumes."),
        Column("VolumeBindingMode", "string", "", "When volumes are bound and provisioned."),
        Column("AllowVolumeExpansion", "string", "", "Whether volumes can be expanded."),
        _AGE,
    ],
    _storageclass_row,
)


def _crd_row(obj: dict, now: float) -> list[Any]:
    return [_meta(obj).get("name", ""), _meta(obj).get("creationTimestamp", "")]


_CRD: Printer = (
    [_NAME, Column("Created At", "date", "", "The time the object was created.")],
    _crd_row,
)


def _lease_row(obj: dict, now: float) -> list[Any]:
    return [_meta(obj).get("name", ""), _spec(obj).get("holderIdentity") or "", _created(obj, now)]


_LEASE: Printer = (
    [_NAME, Column("Holder", "string", "", "The holder of the lease."), _AGE],
    _lease_row,
)


def _generic_row(obj: dict, now: float) -> list[Any]:
    return [_meta(obj).get("name", ""), _created(obj, now)]


GENERIC: Printer = ([_NAME, _AGE], _generic_row)

PRINTERS: dict[str, Printer] = {
    "pods": _POD,
    "deployments.apps": _DEPLOYMENT,
    "replicasets.apps": _REPLICASET,
    "statefulsets.apps": _STATEFULSET,
    "daemonsets.apps": _DAEMONSET,
    "jobs.batch": _JOB,
    "cronjobs.batch": _CRONJOB,
    "nodes": _NODE,
    "services": _SERVICE,
    "namespaces": _NAMESPACE,
    "events": _EVENT,
    "configmaps": _CONFIGMAP,
    "secrets": _SECRET,
    "serviceaccounts": _SERVICEACCOUNT,
    "endpoints": _ENDPOINTS,
    "persistentvolumeclaims": _PVC,
    "storageclasses.storage.k8s.io": _STORAGECLASS,
    "customresourcedefinitions.apiextensions.k8s.io": _CRD,
    "leases.coordination.k8s.io": _LEASE,
}


# ---------------------------------------------------------------------------------------------
# JSONPath subset for CRD additionalPrinterColumns


class JsonPathError(ValueError):
    """A JSONPath expression outside the supported subset."""


_FILTER_RE = re.compile(r"^\?\(@((?:\.[^=!<>]+)*)\s*(?:(==|!=)\s*(?:\"([^\"]*)\"|'([^']*)'|([^)\s]+)))?\s*\)$")


def _parse_jsonpath(expr: str) -> list[tuple[str, Any]]:
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1].strip()
    if expr.startswith("$"):
        expr = expr[1:]
    steps: list[tuple[str, Any]] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == ".":
            i += 1
            name = []
            while i < len(expr) and expr[i] not in ".[":
                if expr[i] == "\\" and i + 1 < len(expr):
                    i += 1
                name.append(expr[i])
                i += 1
            if name:
                steps.append(("key", "".join(name)))
        elif ch == "[":
            end = expr.find("]", i)
            if end < 0:
                raise JsonPathError(f"unclosed [ in {expr!r}")
            inner = expr[i + 1 : end].strip()
            i = end + 1
            if inner == "*":
                steps.append(("all", None))
            elif inner.startswith("?"):
                m = _FILTER_RE.match(inner)
                if not m:
                    raise JsonPathError(f"unsupported filter {inner!r}")
                path = [p for p in m.group(1).split(".") if p]
                value = next((g for g in (m.group(3), m.group(4), m.group(5)) if g is not None), None)
                steps.append(("filter", (path, m.group(2), value)))
            elif inner[:1] in "'\"":
                steps.append(("key", inner[1:-1]))
            elif re.fullmatch(r"-?\d+", inner):
                steps.append(("index", int(inner)))
            else:
                raise JsonPathError(f"unsupported subscript [{inner}]")
        else:
            raise JsonPathError(f"unexpected {ch!r} in JSONPath {expr!r}")
    return steps


def _filter_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """Values at ``expr`` in ``obj`` (``.spec.replicas``, ``.items[*].name``, ``[?(@.type=="Ready")]``)."""
    current = [obj]
    for kind, arg in _parse_jsonpath(expr):
        nxt: list[Any] = []
        for value in current:
            if (kind == "key" and isinstance(value, dict) and arg in value) or (
                kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value)
            ):
                nxt.append(value[arg])
            elif kind == "all":
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            elif kind == "filter" and isinstance(value, list):
                path, op, want = arg
                for item in value:
                    found: Any = item
                    for p in path:
                        found = found.get(p) if isinstance(found, dict) else None
                    if op is None:
                        if found is not None:
                            nxt.append(item)
                    elif (found is not None and _filter_value(found) == want) == (op == "=="):
                        nxt.append(item)
        current = nxt
    return current


def _crd_cell(value: list[Any], column_type: str, now: float) -> Any:
    if not value:
        return None
    if len(value) > 1:
        return ",".join(_filter_value(v) if not isinstance(v, dict | list) else str(v) for v in value)
    v = value[0]
    if column_type == "date":
        return age(v, now) if isinstance(v, str) else v
    if column_type == "integer" and isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict | list):
        import json

        return json.dumps(v, separators=(",", ":"))
    return v


def crd_printer(columns: list[dict]) -> Printer:
    """A printer from a CRD version's ``additionalPrinterColumns`` (NAME first, as kubectl shows)."""
    cols = [_NAME] + [
        Column(
            c.get("name", ""),
            c.get("type", "string"),
            c.get("format", ""),
            c.get("description", ""),
            int(c.get("priority", 0) or 0),
        )
        for c in columns
    ]
    paths = [c.get("jsonPath", "") for c in columns]
    types = [c.get("type", "string") for c in columns]

    def row(obj: dict, now: float) -> list[Any]:
        cells: list[Any] = [_meta(obj).get("name", "")]
        for path, column_type in zip(paths, types, strict=True):
            try:
                cells.append(_crd_cell(jsonpath(obj, path), column_type, now))
            except JsonPathError:
                cells.append(None)
        return cells

    return cols, row


# ---------------------------------------------------------------------------------------------
# the Table object


def row_object(obj: dict, include: str) -> dict | None:
    """What a row carries: nothing, the object's metadata (PartialObjectMetadata) or the object."""
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION, "metadata": _meta(obj)}


def table(
    printer: Printer,
    objects: list[dict],
    now: float,
    *,
    resource_version: str | None = None,
    continue_token: str | None = None,
    include_object: str = "Metadata",
    headers: bool = True,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects``.

    Args:
        printer: columns and row function (from :data:`PRINTERS`, :func:`crd_printer` or :data:`GENERIC`).
        objects: the objects, as served.
        now: the (simulated) current time in epoch seconds, for AGE columns.
        resource_version: the list's resourceVersion.
        continue_token: set when the list is paginated.
        include_object: ``None``, ``Metadata`` (default) or ``Object``: what each row's ``object`` holds.
        headers: False leaves ``columnDefinitions`` empty (watch events after the first).
    """
    columns, row_fn = printer
    meta: dict[str, Any] = {}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_fn(obj, now)}
        ro = row_object(obj, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": meta,
        "columnDefinitions": [c.definition() for c in columns] if headers else [],
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for ``as=Table`` in ``meta.k8s.io`` (v1 or v1beta1)."""
    if "as=Table" not in accept:
        return False
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return True
    return False
