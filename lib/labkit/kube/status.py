"""Reading object status the way ``kubectl`` does (pure): conditions, rollouts, pod state, ages.

Functions take plain dicts as the API serves them and return plain values, so
waits, tables and explanations share one reading of status.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (``2024-05-01T10:00:00Z``), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def human_duration(seconds: float | None) -> str:
    """A duration as ``kubectl`` prints ages: ``45s``, ``3m12s``, ``5h``, ``12d``."""
    if seconds is None:
        return "<unknown>"
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        return f"{years}y" if days % 365 == 0 else f"{years}y{days % 365}d"
    return f"{years}y"


def newest_time(objs: Any) -> float:
    """The latest timestamp written in ``objs`` (creation, event and condition times); 0 when none."""
    newest = 0.0
    for obj in objs:
        if not isinstance(obj, dict):
            continue
        stamps = [(obj.get("metadata") or {}).get("creationTimestamp")]
        stamps += [obj.get(k) for k in ("lastTimestamp", "eventTime", "firstTimestamp")]
        stamps += [c.get("lastTransitionTime") for c in conditions(obj)]
        for stamp in stamps:
            when = parse_time(stamp)
            if when is not None and when > newest:
                newest = when
    return newest


def age(obj: dict[str, Any], now: float) -> str:
    """The AGE column of an object at ``now`` (epoch seconds)."""
    created = parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    return human_duration(None if created is None else now - created)


# ---------------------------------------------------------------------------------------------- conditions


def conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """``status.conditions`` (an empty list when absent)."""
    found = (obj.get("status") or {}).get("conditions") or []
    return [c for c in found if isinstance(c, dict)]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of type ``type_`` (case-insensitive, as ``kubectl wait`` matches), or ``None``."""
    for c in conditions(obj):
        if str(c.get("type", "")).lower() == type_.lower():
            return c
    return None


def has_condition(obj: dict[str, Any], type_: str, status: str = "True") -> bool:
    """Whether ``type_`` is present with ``status`` (compared case-insensitively)."""
    c = condition(obj, type_)
    return c is not None and str(c.get("status", "")).lower() == status.lower()


# ---------------------------------------------------------------------------------------------- rollouts


@dataclass(frozen=True)
class Rollout:
    """Where a rollout stands, as ``kubectl rollout status`` reports it.

    Attributes:
        done: the rollout finished.
        message: the line ``kubectl`` prints now.
        failed: why it can never finish without a change (progress deadline exceeded), else ``""``.
    """

    done: bool
    message: str
    failed: str = ""


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def rollout(obj: dict[str, Any]) -> Rollout:
    """Rollout state of a Deployment, StatefulSet or DaemonSet (``kubectl rollout status`` logic)."""
    kind = obj.get("kind", "")
    name = obj.get("metadata", {}).get("name", "")
    if kind == "Deployment":
        return _deployment_rollout(obj, name)
    if kind == "StatefulSet":
        return _statefulset_rollout(obj, name)
    if kind == "DaemonSet":
        return _daemonset_rollout(obj, name)
    return Rollout(False, f"{kind} has no rollout", "rollout status works for Deployment, StatefulSet, DaemonSet only")


def _observed(obj: dict[str, Any]) -> bool:
    generation = _int(obj.get("metadata", {}).get("generation"), 0)
    observed = _int((obj.get("status") or {}).get("observedGeneration"), 0)
    return generation <= observed


def _deployment_rollout(obj: dict[str, Any], name: str) -> Rollout:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    if not _observed(obj):
        return Rollout(False, "Waiting for deployment spec update to be observed...")
    progressing = condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Rollout(False, f'deployment "{name}" exceeded its progress deadline', progressing.get("message", ""))
    replicas = _int(spec.get("replicas"), 1)
    updated = _int(st.get("updatedReplicas"))
    total = _int(st.get("replicas"))
    available = _int(st.get("availableReplicas"))
    if updated < replicas:
        return Rollout(
            False,
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas '
            "have been updated...",
        )
    if total > updated:
        return Rollout(
            False,
            f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are pending '
            "termination...",
        )
    if available < updated:
        return Rollout(
            False,
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas '
            "are available...",
        )
    return Rollout(True, f'deployment "{name}" successfully rolled out')


def _statefulset_rollout(obj: dict[str, Any], name: str) -> Rollout:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return Rollout(False, "", f"rollout status is only available for RollingUpdate strategy type, not {strategy}")
    if _int(st.get("observedGeneration"), 0) == 0 or not _observed(obj):
        return Rollout(False, "Waiting for statefulset spec update to be observed...")
    replicas = _int(spec.get("replicas"), 1)
    ready = _int(st.get("readyReplicas"))
    if ready < replicas:
        return Rollout(False, f"Waiting for {replicas - ready} pods to be ready...")
    partition = _int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition"), 0)
    if partition > 0:
        updated = _int(st.get("updatedReplicas"))
        if updated < replicas - partition:
            return Rollout(
                False,
                f"Waiting for partitioned roll out to finish: {updated} out of {replicas - partition} "
                "new pods have been updated...",
            )
        return Rollout(True, f"partitioned roll out complete: {updated} new pods have been updated...")
    update_rev, current_rev = st.get("updateRevision"), st.get("currentRevision")
    if update_rev != current_rev:
        return Rollout(
            False,
            f"waiting for statefulset rolling update to complete {_int(st.get('updatedReplicas'))} pods at "
            f"revision {update_rev}...",
        )
    return Rollout(True, f"statefulset rolling update complete {replicas} pods at revision {current_rev}...")


def _daemonset_rollout(obj: dict[str, Any], name: str) -> Rollout:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return Rollout(False, "", f"rollout status is only available for RollingUpdate strategy type, not {strategy}")
    if not _observed(obj):
        return Rollout(False, "Waiting for daemon set spec update to be observed...")
    desired = _int(st.get("desiredNumberScheduled"))
    updated = _int(st.get("updatedNumberScheduled"))
    available = _int(st.get("numberAvailable"))
    if updated < desired:
        return Rollout(
            False,
            f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} new pods have been '
            "updated...",
        )
    if available < desired:
        return Rollout(
            False,
            f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} updated pods are '
            "available...",
        )
    return Rollout(True, f'daemon set "{name}" successfully rolled out')


# ---------------------------------------------------------------------------------------------- pods


def pod_ready(pod: dict[str, Any]) -> bool:
    """Whether the pod's ``Ready`` condition is ``True``."""
    return has_condition(pod, "Ready")


def container_statuses(pod: dict[str, Any], *, init: bool = False) -> list[dict[str, Any]]:
    key = "initContainerStatuses" if init else "containerStatuses"
    return [c for c in (pod.get("status") or {}).get(key) or [] if isinstance(c, dict)]


def ready_count(pod: dict[str, Any]) -> str:
    """The READY column: ``1/2``."""
    containers = (pod.get("spec") or {}).get("containers") or []
    ready = sum(1 for c in container_statuses(pod) if c.get("ready"))
    return f"{ready}/{len(containers)}"


def restarts(pod: dict[str, Any]) -> int:
    """Total container restarts (the RESTARTS column)."""
    return sum(_int(c.get("restartCount")) for c in container_statuses(pod))


def pod_phase_text(pod: dict[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods`` (``Running``, ``Pending``, ``CrashLoopBackOff``, ``Init:0/1``...)."""
    st = pod.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Unknown"
    init_specs = (pod.get("spec") or {}).get("initContainers") or []
    initializing = False
    for i, c in enumerate(container_statuses(pod, init=True)):
        state = c.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and _int(term.get("exitCode")) == 0:
            continue
        if term:
            if term.get("reason"):
                reason = f"Init:{term['reason']}"
            elif _int(term.get("signal")):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{_int(term.get('exitCode'))}"
        elif wait and wait.get("reason") and wait.get("reason") != "PodInitializing":
            reason = f"Init:{wait['reason']}"
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for c in reversed(container_statuses(pod)):
            state = c.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if _int(term.get("signal")) else f"ExitCode:{term.get('exitCode')}"
            elif c.get("ready") and "running" in state:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running" if pod_ready(pod) else "NotReady"
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


# ---------------------------------------------------------------------------------------------- quantities

_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def quantity(value: Any) -> float:
    """A Kubernetes quantity (``500m``, ``16Gi``, ``4``) as a number; unparseable values are 0."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value or "").strip())
    if not match or match.group(2) not in _SUFFIX:
        return 0.0
    try:
        return float(Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2)]))
    except InvalidOperation:
        return 0.0


def short_time(value: Any, now: float) -> str:
    """How long ago an RFC 3339 timestamp was, ``kubectl`` style (``<unknown>`` when absent)."""
    when = parse_time(value)
    return human_duration(None if when is None else now - when)


def selector_string(selector: dict[str, Any] | None) -> str:
    """A ``LabelSelector`` (``matchLabels`` + ``matchExpressions``) as a ``labelSelector`` query string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
