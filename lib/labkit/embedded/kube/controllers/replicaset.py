"""The ReplicaSet controller: keep ``spec.replicas`` pods from the template alive, and report them."""

from __future__ import annotations

import contextlib
from typing import Any

from labkit.errors import ApiError, NotFound

from ..scheduler import label_selector_matches
from .base import Controller
from .common import (
    controller_ref,
    is_active_pod,
    is_owned_by,
    is_pod_available,
    is_pod_ready,
    obj_key,
    parse_rfc3339,
    pod_condition,
    pod_from_template,
    rfc3339,
    set_condition,
    split_key,
    write_status,
)

#: Simulated seconds before a ReplicaSet tries again after its pods could not be created.
CREATE_RETRY_SECONDS = 10.0


def delete_rank(pod: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key putting the pods a scale-down should remove first (as kube-controller-manager ranks them)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
    ready = pod_condition(pod, "Ready") or {}
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = parse_rfc3339((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0
    ready_since = parse_rfc3339(ready.get("lastTransitionTime")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,
        phase_rank,
        1 if ready.get("status") == "True" else 0,
        -ready_since,
        -restarts,
        -created,
    )


class ReplicaSetController(Controller):
    """Creates and deletes pods so each ReplicaSet runs ``spec.replicas`` of them."""

    name = "replicaset-controller"
    primary = "replicasets.apps"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "pods":
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "ReplicaSet":
                return [f"{event.obj['metadata']['namespace']}/{ref['name']}"]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        rs = self.store.try_get(self.primary, ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return None
        pods = self.ctx.list("pods", ns)
        owned = [p for p in pods if is_owned_by(p, rs)]
        active = [p for p in owned if is_active_pod(p)]
        desired = int((rs.get("spec") or {}).get("replicas", 1))
        failure: str | None = None
        if len(active) < desired:
            for _ in range(desired - len(active)):
                try:
                    pod = self._create_pod(rs)
                except ApiError as exc:
                    failure = str(getattr(exc, "what", exc))
                    self.event(rs, "FailedCreate", f"Error creating: {failure}", kind="Warning")
                    break
                active.append(pod)
                self.event(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        elif len(active) > desired:
            for pod in sorted(active, key=delete_rank)[: len(active) - desired]:
                with contextlib.suppress(NotFound):
                    self.store.delete("pods", ns, pod["metadata"]["name"])
                active.remove(pod)
                self.event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        again = self._update_status(rs, active, failure)
        if failure is not None:
            return CREATE_RETRY_SECONDS
        return again

    def _create_pod(self, rs: dict[str, Any]) -> dict[str, Any]:
        pod = pod_from_template(rs["spec"].get("template") or {}, rs)
        return self.ctx.create_named("pods", pod, rs["metadata"]["name"] + "-")

    def _update_status(self, rs: dict[str, Any], active: list[dict[str, Any]], failure: str | None) -> float | None:
        now = self.ctx.now()
        min_ready = float((rs.get("spec") or {}).get("minReadySeconds") or 0)
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if is_pod_ready(p)]
        available = [p for p in ready if is_pod_available(p, min_ready, now)]
        labelled = [p for p in active if label_selector_matches({"matchLabels": template_labels}, _labels(p))]
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(labelled),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        stamp = rfc3339(now)

        def mutate(obj: dict[str, Any]) -> bool:
            old = obj.get("status") or {}
            conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
            if failure is not None:
                conditions = set_condition(conditions, "ReplicaFailure", "True", "FailedCreate", failure, now=stamp)
            new = {**status, **({"conditions": conditions} if conditions else {})}
            if new == old:
                return False
            obj["status"] = new
            return True

        write_status(self.store, self.primary, rs["metadata"]["namespace"], rs["metadata"]["name"], mutate)
        waiting = [p for p in ready if p not in available]
        if not waiting or min_ready <= 0:
            return None
        since = [parse_rfc3339((pod_condition(p, "Ready") or {}).get("lastTransitionTime")) or now for p in waiting]
        return max(0.0, min(since) + min_ready - now) + 0.001


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})
