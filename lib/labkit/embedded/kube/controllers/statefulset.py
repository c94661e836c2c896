"""The StatefulSet controller: stable, ordered pods ``<name>-0..N-1`` with their own volume claims.

OrderedReady creates ordinal *i* only when every lower ordinal is Running and Ready, and removes
the highest ordinal first; Parallel does both at once. RollingUpdate replaces pods from the
highest ordinal down to ``partition``, one at a time, waiting for each to be Ready. Each
template revision gets a ControllerRevision and a ``controller-revision-hash`` label, and the
status carries ``currentRevision``/``updateRevision`` so ``kubectl rollout status`` works.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from labkit.errors import ApiError, Conflict, NotFound

from .base import Controller
from .common import (
    controller_ref,
    fnv32a,
    is_owned_by,
    is_pod_available,
    is_pod_ready,
    obj_key,
    owner_reference,
    pod_from_template,
    split_key,
    template_hash_text,
    write_status,
)

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def template_revision(template: dict[str, Any]) -> str:
    """The revision hash of a pod template (what ``controller-revision-hash`` values end with)."""
    return template_hash_text(fnv32a(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()))


def _ordinal(pod: dict[str, Any], sts_name: str) -> int | None:
    name = pod["metadata"]["name"]
    prefix = sts_name + "-"
    if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
        return None
    return int(name[len(prefix) :])


def _running_ready(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_ready(pod)


class StatefulSetController(Controller):
    """Reconciles StatefulSets into ordered pods and their PersistentVolumeClaims."""

    name = "statefulset-controller"
    primary = "statefulsets.apps"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "pods":
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "StatefulSet":
                return [f"{event.obj['metadata']['namespace']}/{ref['name']}"]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        sts = self.store.try_get(self.primary, ns, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return None
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        update_revision = f"{name}-{template_revision(spec.get('template') or {})}"
        self._ensure_revision(sts, update_revision)
        pods = self.ctx.list("pods", ns)
        owned = {o: p for p in pods if is_owned_by(p, sts) and (o := _ordinal(p, name)) is not None}
        parallel = spec.get("podManagementPolicy") == "Parallel"

        # Replace failed pods.
        for o, p in list(owned.items()):
            if (p.get("status") or {}).get("phase") == "Failed" and not p["metadata"].get("deletionTimestamp"):
                self._delete_pod(sts, p)
                del owned[o]

        # Scale up.
        for o in range(replicas):
            if o in owned:
                if not parallel and not _running_ready(owned[o]):
                    break
                continue
            pod = self._create_pod(sts, o, update_revision)
            if pod is None:
                break
            owned[o] = pod
            if not parallel:
                break
        else:
            # Scale down (only once every pod we keep is healthy, when ordered).
            extra = sorted((o for o in owned if o >= replicas), reverse=True)
            healthy = all(_running_ready(owned[o]) for o in owned if o < replicas)
            if extra and (parallel or healthy):
                for o in extra if parallel else extra[:1]:
                    self._delete_pod(sts, owned.pop(o))
            elif not extra:
                self._rolling_update(sts, owned, replicas, update_revision)
        return self._status(sts, owned, replicas, update_revision)

    # ---- pods and claims

    def _create_pod(self, sts: dict[str, Any], ordinal: int, revision: str) -> dict[str, Any] | None:
        spec = sts["spec"]
        name = f"{sts['metadata']['name']}-{ordinal}"
        pod = pod_from_template(spec.get("template") or {}, sts)
        pod["metadata"]["name"] = name
        pod["metadata"]["generateName"] = sts["metadata"]["name"] + "-"
        pod["metadata"]["labels"].update(
            {REVISION_LABEL: revision, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
        )
        pod["spec"]["hostname"] = name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = pod["spec"].setdefault("volumes", [])
        for claim in spec.get("volumeClaimTemplates") or []:
            cname = claim["metadata"]["name"]
            pvc_name = f"{cname}-{name}"
            self._ensure_claim(sts, claim, pvc_name)
            volumes[:] = [v for v in volumes if v.get("name") != cname]
            volumes.append({"name": cname, "persistentVolumeClaim": {"claimName": pvc_name}})
        if not volumes:
            del pod["spec"]["volumes"]
        try:
            created = self.store.create("pods", pod, namespace=sts["metadata"]["namespace"])
        except Conflict:
            return None
        except ApiError as exc:
            self.event(
                sts, "FailedCreate", f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed error: "
                f"{getattr(exc, 'what', exc)}", kind="Warning",
            )  # fmt: skip
            return None
        self.event(sts, "SuccessfulCreate", f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful")
        return created

    def _ensure_claim(self, sts: dict[str, Any], claim: dict[str, Any], pvc_name: str) -> None:
        ns = sts["metadata"]["namespace"]
        if self.store.try_get("persistentvolumeclaims", ns, pvc_name) is not None:
            return
        selector = ((sts["spec"].get("selector") or {}).get("matchLabels")) or {}
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": pvc_name,
                "namespace": ns,
                "labels": {**((claim.get("metadata") or {}).get("labels") or {}), **selector},
            },
            "spec": copy.deepcopy(claim.get("spec") or {}),
        }
        policy = (sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted", "Retain")
        if policy == "Delete":
            body["metadata"]["ownerReferences"] = [owner_reference(sts, block=True)]
        try:
            self.store.create("persistentvolumeclaims", body, namespace=ns)
            self.event(
                sts, "SuccessfulCreate",
                f"create Claim {pvc_name} Pod {pvc_name.removeprefix(claim['metadata']['name'] + '-')} "
                f"in StatefulSet {sts['metadata']['name']} success",
            )  # fmt: skip
        except Conflict:
            pass

    def _delete_pod(self, sts: dict[str, Any], pod: dict[str, Any]) -> None:
        with contextlib.suppress(NotFound):
            self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.event(
            sts, "SuccessfulDelete",
            f"delete Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} successful",
        )  # fmt: skip

    def _rolling_update(
        self, sts: dict[str, Any], owned: dict[int, dict[str, Any]], replicas: int, revision: str
    ) -> None:
        strategy = sts["spec"].get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        if not all(_running_ready(owned[o]) for o in owned if o < replicas):
            return
        for o in sorted(owned, reverse=True):
            if o < partition:
                break
            if (owned[o]["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                self._delete_pod(sts, owned.pop(o))
                return

    def _ensure_revision(self, sts: dict[str, Any], revision: str) -> None:
        ns = sts["metadata"]["namespace"]
        if self.store.try_get("controllerrevisions.apps", ns, revision) is not None:
            return
        existing, _ = self.store.list("controllerrevisions.apps", ns)
        number = 1 + max((int(r.get("revision") or 0) for r in existing if is_owned_by(r, sts)), default=0)
        body = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": revision,
                "namespace": ns,
                "labels": {
                    **(((sts["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}),
                    "controller.kubernetes.io/hash": revision.rsplit("-", 1)[-1],
                },
                "ownerReferences": [owner_reference(sts)],
            },
            "data": {"spec": {"template": {**copy.deepcopy(sts["spec"].get("template") or {}), "$patch": "replace"}}},
            "revision": number,
        }
        with contextlib.suppress(ApiError):
            self.store.create("controllerrevisions.apps", body, namespace=ns)

    # ---- status

    def _status(
        self, sts: dict[str, Any], owned: dict[int, dict[str, Any]], replicas: int, update_revision: str
    ) -> float | None:
        now = self.ctx.now()
        min_ready = float((sts.get("spec") or {}).get("minReadySeconds") or 0)
        pods = [p for p in owned.values() if not p["metadata"].get("deletionTimestamp")]
        updated = [p for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == update_revision]
        old_status = sts.get("status") or {}
        current_revision = old_status.get("currentRevision") or update_revision
        if len(updated) == replicas and len(pods) == replicas:
            current_revision = update_revision
        current = [p for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == current_revision]
        status = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": sum(1 for p in pods if is_pod_ready(p)),
            "currentReplicas": len(current),
            "updatedReplicas": len(updated),
            "availableReplicas": sum(1 for p in pods if is_pod_available(p, min_ready, now)),
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": int(old_status.get("collisionCount") or 0),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas", "collisionCount")}

        def mutate(obj: dict[str, Any]) -> bool:
            if obj.get("status") == status:
                return False
            obj["status"] = dict(status)
            return True

        write_status(self.store, self.primary, sts["metadata"]["namespace"], sts["metadata"]["name"], mutate)
        if min_ready > 0 and status["readyReplicas"] != status["availableReplicas"]:
            return min_ready
        return None
