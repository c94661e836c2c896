"""Why is it not ready? Explanations of pods and workloads from their status and events (pure).

A wait that times out must say why, in words a participant can act on: the
scheduler's message for a Pending pod ("0/3 nodes are available: 3 Insufficient
nvidia.com/gpu"), the waiting reason of a container (``ImagePullBackOff``,
``CrashLoopBackOff``) with its last log lines, a failing readiness probe (from
``Unhealthy`` events), and recent Warning events. The functions here read
objects already fetched; :mod:`labkit.kube.diagnose` fetches them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.kube import refs, status
from labkit.kube.tables import event_time

MAX_EVENTS = 5
MAX_PODS = 3
LOG_LINES = 8
_TAINT = re.compile(r"untolerated taint\(?s?\)?\s*(\{[^}]*\})")
# Taints every cluster has on some nodes; a pod is not meant to tolerate them, so they call for no fix.
_SYSTEM_TAINTS = (
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/unschedulable",
    "node.cloudprovider.kubernetes.io/uninitialized",
)


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong with an object, and what to do.

    Attributes:
        subject: ``pod serving/vllm-0``, ``deployment serving/vllm``.
        summary: one line: the state and its main reason.
        details: further lines (conditions, containers, events, log tails).
        hints: what to do next, most specific first.
    """

    subject: str
    summary: str
    details: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()

    def text(self, indent: str = "") -> str:
        """The explanation as indented text."""
        lines = [f"{indent}{self.subject}: {self.summary}"]
        lines += [f"{indent}  {d}" for d in self.details]
        return "\n".join(lines)

    @property
    def fix(self) -> str:
        """The hints joined into one ``fix`` line."""
        return "; ".join(dict.fromkeys(self.hints)) if self.hints else ""

    def __str__(self) -> str:
        text = self.text()
        return f"{text}\n  fix: {self.fix}" if self.hints else text


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def subject(obj: Mapping[str, Any]) -> str:
    """``pod serving/vllm-0`` / ``nodepool.karpenter.sh/gpu``."""
    meta = _meta(obj)
    name = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
    return f"{refs.display_name(str(obj.get('apiVersion', 'v1')), str(obj.get('kind', '')))} {name}"


# ---------------------------------------------------------------------------------------------- events


def events_about(obj: Mapping[str, Any], events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events whose involved object is ``obj`` (by uid, else by kind/namespace/name), oldest first."""
    meta = _meta(obj)
    uid, name, ns, kind = meta.get("uid"), meta.get("name"), meta.get("namespace"), obj.get("kind")
    out = []
    for e in events:
        inv = e.get("involvedObject") or e.get("regarding") or {}
        if uid and inv.get("uid"):
            if inv.get("uid") == uid:
                out.append(e)
        elif inv.get("name") == name and inv.get("kind") == kind and (inv.get("namespace") or None) == (ns or None):
            out.append(e)
    return sorted(out, key=event_time)


def event_lines(events: Sequence[dict[str, Any]], now: float, *, limit: int = MAX_EVENTS) -> list[str]:
    """``Warning FailedScheduling (x3, 20s ago): message`` for the newest events, deduplicated."""
    seen: dict[tuple[str, str, str], tuple[int, float]] = {}
    for e in events:
        message = str(e.get("message") or "").strip()
        if e.get("reason") == "FailedScheduling":
            message = scheduler_summary(message)
        key = (str(e.get("type") or "Normal"), str(e.get("reason") or ""), message)
        count = int(e.get("count") or (e.get("series") or {}).get("count") or 1)
        prev_count, _ = seen.get(key, (0, 0.0))
        seen[key] = (prev_count + count, event_time(e))
    ordered = sorted(seen.items(), key=lambda kv: kv[1][1])[-limit:]
    lines = []
    for (type_, reason, message), (count, when) in ordered:
        ago = f"{status.human_duration(now - when)} ago" if when else "time unknown"
        times = f"x{count}, " if count > 1 else ""
        lines.append(f"{type_} {reason} ({times}{ago}): {message}")
    return lines


# ---------------------------------------------------------------------------------------------- hints


def scheduling_hints(message: str) -> list[str]:
    """What to do about a scheduler message (``0/3 nodes are available: ...``)."""
    hints = []
    for resource in re.findall(r"Insufficient ([\w./-]*\w)", message):
        if resource in ("nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron"):
            hints.append(
                f"no node has a free {resource}: add GPU capacity (a GPU NodePool, Week 3) or lower the pod's "
                f"{resource} request"
            )
        else:
            hints.append(f"no node has enough free {resource}: lower the pod's {resource} request or add nodes")
    for taint in dict.fromkeys(_TAINT.findall(message)):
        if any(system in taint for system in _SYSTEM_TAINTS):
            continue
        why = " (GPU nodes are tainted so only GPU pods land there)" if "gpu" in taint.lower() else ""
        hints.append(
            f"the pod does not tolerate the taint {taint} of the nodes meant for it: add a matching toleration{why}"
        )
    if "node affinity/selector" in message or "didn't match Pod's node affinity" in message:
        hints.append("no node matches the pod's nodeSelector/affinity: compare with kubectl get nodes --show-labels")
    if "didn't match pod topology spread constraints" in message:
        hints.append("topology spread constraints cannot be met with the current nodes: relax them or add zones")
    if "unbound immediate PersistentVolumeClaims" in message or "persistentvolumeclaim" in message.lower():
        hints.append("a PersistentVolumeClaim is not bound: check kubectl get pvc and its StorageClass")
    if re.search(r"\b0/0 nodes\b", message) or "no nodes available" in message:
        hints.append(
            "the cluster has no nodes yet: with Auto Mode or Karpenter a NodePool must create one "
            "(kubectl get nodepools); otherwise add a node group"
        )
    return hints


_WAITING_HINTS = {
    "ImagePullBackOff": "the image cannot be pulled: check its name and tag, and that nodes can reach the registry",
    "ErrImagePull": "the image cannot be pulled: check its name and tag, and that nodes can reach the registry",
    "InvalidImageName": "the image name is malformed: fix the image reference",
    "CrashLoopBackOff": "the container keeps exiting: read its last log lines (kubectl logs --previous)",
    "CreateContainerConfigError": "a ConfigMap or Secret (or a key) the container references is missing: create it",
    "CreateContainerError": "the runtime could not create the container: read the events above",
    "RunContainerError": "the container could not start: check its command and mounts",
    "ContainerCreating": "the container is still being created (image pull, volumes): wait longer or raise the timeout",
    "PodInitializing": "init containers are still running: wait longer",
}


# ---------------------------------------------------------------------------------------------- pods


def _probe_text(probe: Mapping[str, Any] | None) -> str:
    if not probe:
        return ""
    delay = int(probe.get("initialDelaySeconds") or 0)
    if "httpGet" in probe:
        h = probe["httpGet"]
        how = f"HTTP GET {h.get('path', '/')} on port {h.get('port')}"
    elif "tcpSocket" in probe:
        how = f"TCP port {probe['tcpSocket'].get('port')}"
    elif "exec" in probe:
        how = "exec " + " ".join(str(c) for c in (probe["exec"].get("command") or []))
    elif "grpc" in probe:
        how = f"gRPC port {probe['grpc'].get('port')}"
    else:
        how = "probe"
    return f"{how}, initialDelaySeconds={delay}"


def containers_to_log(pod: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """Containers whose log explains a problem: ``(name, previous)`` (``previous`` after a crash)."""
    out = []
    for c in status.container_statuses(dict(pod)) + status.container_statuses(dict(pod), init=True):
        state, last = c.get("state") or {}, c.get("lastState") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        crashed = waiting == "CrashLoopBackOff" or bool(last.get("terminated"))
        failed = bool(state.get("terminated")) and int((state.get("terminated") or {}).get("exitCode") or 0) != 0
        not_ready = "running" in state and not c.get("ready")
        if crashed or failed or not_ready:
            out.append((str(c.get("name")), crashed and not failed and int(c.get("restartCount") or 0) > 0))
    return out


def scheduler_summary(message: str) -> str:
    """The scheduler's message without its ``preemption: ...`` tail (noise for a reader)."""
    return message.split(" preemption:", 1)[0].strip()


def diagnose_pod(
    pod: Mapping[str, Any],
    events: Iterable[dict[str, Any]] = (),
    logs: Mapping[str, str] | None = None,
    *,
    now: float,
) -> Diagnosis:
    """Explain a pod's state: scheduling, containers, probes, events and log tails.

    Args:
        pod: the pod object.
        events: events of its namespace (those about other objects are ignored).
        logs: last log text per container name (from :func:`containers_to_log`).
        now: the cluster's clock, epoch seconds.
    """
    pod = dict(pod)
    meta, spec, st = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    mine = events_about(pod, events)
    warnings = [e for e in mine if e.get("type") == "Warning"]
    details: list[str] = []
    hints: list[str] = []
    phase = str(st.get("phase") or "Unknown")
    summary = status.pod_phase_text(pod)

    if meta.get("deletionTimestamp"):
        finalizers = meta.get("finalizers") or []
        summary = "Terminating" + (f" (held by finalizers {', '.join(finalizers)})" if finalizers else "")
        if finalizers:
            hints.append("the controllers owning these finalizers must remove them; check they are running")

    scheduled = status.condition(pod, "PodScheduled")
    if scheduled is not None and str(scheduled.get("status")) == "False":
        message = str(scheduled.get("message") or scheduled.get("reason") or "unschedulable")
        summary = f"Pending, not scheduled: {scheduler_summary(message)}"
        hints += scheduling_hints(message)
        if not hints:
            hints.append("the scheduler cannot place it: read the message above")
    elif phase == "Pending" and not spec.get("nodeName") and not meta.get("deletionTimestamp"):
        failed = [e for e in warnings if e.get("reason") == "FailedScheduling"]
        if failed:
            message = str(failed[-1].get("message") or "")
            summary = f"Pending, not scheduled: {scheduler_summary(message)}"
            hints += scheduling_hints(message)
        else:
            summary = "Pending, not scheduled yet"
            hints.append("no scheduling decision yet: on Auto Mode or Karpenter a node may still be starting; wait")

    containers = {c.get("name"): c for c in spec.get("containers") or []}
    statuses = {c.get("name"): c for c in status.container_statuses(pod)}
    for c in status.container_statuses(pod, init=True):
        state = c.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode") == 0:
            continue
        waiting, term = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            details.append(f"init container {c.get('name')}: {waiting.get('reason')} {waiting.get('message') or ''}")
            hints.append(_WAITING_HINTS.get(str(waiting.get("reason")), "an init container is stuck: read its log"))
        elif term:
            details.append(f"init container {c.get('name')}: exited {term.get('exitCode')} ({term.get('reason', '')})")
            hints.append("an init container failed: read its log")
        elif "running" in state:
            details.append(f"init container {c.get('name')}: running")

    unhealthy = [e for e in mine if e.get("reason") == "Unhealthy"]
    for name, cspec in containers.items():
        c = statuses.get(name)
        if c is None:
            if spec.get("nodeName"):
                details.append(f"container {name}: not started yet")
            continue
        state, last = c.get("state") or {}, c.get("lastState") or {}
        restarts = int(c.get("restartCount") or 0)
        if state.get("waiting"):
            w = state["waiting"]
            reason = str(w.get("reason") or "Waiting")
            details.append(f"container {name}: {reason}" + (f": {w['message']}" if w.get("message") else ""))
            if reason in _WAITING_HINTS:
                hints.append(_WAITING_HINTS[reason])
        elif state.get("terminated"):
            t = state["terminated"]
            details.append(f"container {name}: exited with code {t.get('exitCode')} ({t.get('reason') or 'Error'})")
            if int(t.get("exitCode") or 0) != 0:
                hints.append(_WAITING_HINTS["CrashLoopBackOff"])
        elif "running" in state and not c.get("ready"):
            probe = _probe_text(cspec.get("readinessProbe"))
            probe_events = [e for e in unhealthy if "eadiness" in str(e.get("message") or "")] or unhealthy
            if probe_events:
                details.append(f"container {name}: running, readiness probe failing ({probe or 'probe'})")
                hints.append(
                    "the readiness probe fails: check the probe's path and port match the server, and read its log"
                )
            else:
                details.append(
                    f"container {name}: running, not ready yet" + (f" (readiness: {probe})" if probe else "")
                )
                hints.append(
                    "it is still starting up (a model server loads its weights first): wait longer or raise the timeout"
                )
        if restarts:
            lt = last.get("terminated") or {}
            code = f", last exit code {lt.get('exitCode')} ({lt.get('reason') or 'Error'})" if lt else ""
            details.append(f"container {name}: restarted {restarts} time{'s' if restarts > 1 else ''}{code}")

    if phase == "Failed":
        summary = f"Failed: {st.get('reason') or ''} {st.get('message') or ''}".strip()
    shown = event_lines(warnings, now)
    if not warnings and mine:
        shown = event_lines(mine, now, limit=2)
    if shown:
        details.append("events:")
        details += [f"  {line}" for line in shown]
    for container, text in (logs or {}).items():
        lines = [ln for ln in text.splitlines() if ln.strip()][-LOG_LINES:]
        if lines:
            details.append(f"last log lines of {container}:")
            details += [f"  | {ln}" for ln in lines]
    return Diagnosis(subject(pod), summary, tuple(details), tuple(dict.fromkeys(hints)))


def not_true_conditions(obj: Mapping[str, Any]) -> list[str]:
    """``Available=False (MinimumReplicasUnavailable): message`` for each condition that is not True."""
    lines = []
    for c in status.conditions(dict(obj)):
        if str(c.get("status")) != "True":
            reason = f" ({c['reason']})" if c.get("reason") else ""
            message = f": {c['message']}" if c.get("message") else ""
            lines.append(f"{c.get('type')}={c.get('status')}{reason}{message}")
    return lines


def diagnose_workload(
    obj: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    events: Iterable[dict[str, Any]] = (),
    logs: Mapping[str, Mapping[str, str]] | None = None,
    *,
    now: float,
    related: Sequence[Mapping[str, Any]] = (),
) -> Diagnosis:
    """Explain a Deployment / StatefulSet / DaemonSet / Job through its conditions and its stuck pods.

    Args:
        obj: the workload.
        pods: its pods.
        events: events of its namespace.
        logs: per pod name, per container, log text.
        now: the cluster's clock.
        related: objects whose events also matter (a Deployment's ReplicaSets).
    """
    obj = dict(obj)
    events = list(events)
    kind = obj.get("kind", "")
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        state = status.rollout(obj)
        summary = state.failed or state.message
    else:
        summary = "; ".join(not_true_conditions(obj)) or "not in the awaited state"
    details = [f"condition {line}" for line in not_true_conditions(obj)]
    ready = [p for p in pods if status.pod_ready(dict(p))]
    details.append(f"pods: {len(pods)} ({len(ready)} ready)")
    hints: list[str] = []
    stuck = [p for p in pods if not status.pod_ready(dict(p))]
    for pod in stuck[:MAX_PODS]:
        name = str(_meta(pod).get("name"))
        d = diagnose_pod(pod, events, (logs or {}).get(name), now=now)
        details += d.text().splitlines()
        hints += d.hints
    if len(stuck) > MAX_PODS:
        details.append(f"... and {len(stuck) - MAX_PODS} more pods not ready")
    if not pods and kind != "DaemonSet":
        hints.append("no pods were created: read the workload's events (quota, admission or a bad template)")
    warnings = [e for o in (obj, *related) for e in events_about(o, events) if e.get("type") == "Warning"]
    if warnings:
        details.append("events:")
        details += [f"  {line}" for line in event_lines(sorted(warnings, key=event_time), now)]
    return Diagnosis(subject(obj), summary, tuple(details), tuple(dict.fromkeys(hints)))


def diagnose_object(obj: Mapping[str, Any], events: Iterable[dict[str, Any]] = (), *, now: float) -> Diagnosis:
    """Explain any object through its conditions, deletion state and Warning events."""
    obj = dict(obj)
    meta = _meta(obj)
    details = [f"condition {line}" for line in not_true_conditions(obj)]
    hints: list[str] = []
    if meta.get("deletionTimestamp"):
        finalizers = meta.get("finalizers") or []
        summary = "being deleted" + (f", held by finalizers {', '.join(finalizers)}" if finalizers else "")
        if finalizers:
            hints.append("the controllers owning these finalizers must finish their cleanup; check they are running")
        if obj.get("kind") == "Namespace":
            hints.append(
                "objects inside the namespace are still being deleted: kubectl get all -n " + str(meta["name"])
            )
    else:
        summary = "; ".join(not_true_conditions(obj)) or "not in the awaited state"
    mine = [e for e in events_about(obj, events) if e.get("type") == "Warning"]
    if mine:
        details.append("events:")
        details += [f"  {line}" for line in event_lines(mine, now)]
    return Diagnosis(subject(obj), summary, tuple(details), tuple(hints))


@dataclass(frozen=True)
class Explanation:
    """Several diagnoses in one message (what a ``WaitTimeout`` carries)."""

    headline: str
    parts: tuple[Diagnosis, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def text(self) -> str:
        lines = [self.headline]
        for d in self.parts:
            lines.append(d.text("  "))
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    @property
    def fix(self) -> str:
        hints = [h for d in self.parts for h in d.hints]
        return "; ".join(dict.fromkeys(hints))
