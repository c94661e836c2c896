"""Pod garbage collection: pods bound to a node that no longer exists are marked and deleted.

As on a real cluster, the pod gets a ``DisruptionTarget`` condition (reason ``DeletionByPodGC``),
turns ``Failed`` when it was still running, and is deleted; its controller then replaces it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labkit.errors import ApiError, NotFound

from .base import Controller
from .common import obj_key, rfc3339, set_condition, split_key, write_status


class PodGCController(Controller):
    """Deletes pods orphaned by a deleted node."""

    name = "pod-garbage-collector"
    primary = "pods"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == "nodes" and event.type == "DELETED":
            node = event.obj["metadata"]["name"]
            return [obj_key(p) for p in self.ctx.list("pods") if (p.get("spec") or {}).get("nodeName") == node]
        if event.key == "pods" and event.type == "ADDED" and (event.obj.get("spec") or {}).get("nodeName"):
            return [obj_key(event.obj)]
        return []

    def all_keys(self) -> list[str]:
        names = {n["metadata"]["name"] for n in self.ctx.list("nodes")}
        pods = self.ctx.list("pods")
        return [obj_key(p) for p in pods if (p.get("spec") or {}).get("nodeName") not in (None, "", *names)]

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        pod = self.store.try_get("pods", ns, name)
        if pod is None:
            return None
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or self.store.try_get("nodes", None, node) is not None:
            return None
        stamp = rfc3339(self.ctx.now())

        def mutate(obj: dict[str, Any]) -> bool:
            status = obj.setdefault("status", {})
            status["conditions"] = set_condition(
                status.get("conditions") or [],
                "DisruptionTarget",
                "True",
                "DeletionByPodGC",
                "PodGC: node no longer exists",
                now=stamp,
            )
            if status.get("phase") not in ("Succeeded", "Failed"):
                status["phase"] = "Failed"
            return True

        with contextlib.suppress(ApiError):
            write_status(self.store, "pods", ns, name, mutate)
        with contextlib.suppress(NotFound):
            self.store.delete("pods", ns, name)
        return None
