"""The Deployment controller: ReplicaSets per pod template, rolling updates, and the status ``kubectl rollout`` reads.

Each distinct pod template gets a ReplicaSet named ``<deployment>-<pod-template-hash>``; the
hash is an FNV-1a of the template spelled with Kubernetes' safe alphabet, so names look like real
ones (``web-7c5ddbdf54``). RollingUpdate scales the new ReplicaSet up and the old ones down
within ``maxSurge``/``maxUnavailable`` (defaults 25%/25%); Recreate scales the old ones to zero
first. The status carries replicas/updated/ready/available counts (zeros omitted, as the API
does), ``observedGeneration`` and the ``Available``/``Progressing`` conditions with their real
reasons (``MinimumReplicasAvailable``, ``NewReplicaSetCreated``, ``ReplicaSetUpdated``,
``NewReplicaSetAvailable``, ``ProgressDeadlineExceeded``, ``DeploymentPaused``).
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from labkit.errors import Conflict, NotFound

from .base import Controller
from .common import (
    controller_ref,
    fnv32a,
    int_or_percent,
    is_active_pod,
    is_owned_by,
    obj_key,
    owner_reference,
    parse_rfc3339,
    rfc3339,
    set_condition,
    split_key,
    template_hash_text,
    write_status,
)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


def pod_template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template (FNV-1a, spelled like Kubernetes' safe encoding)."""
    body = copy.deepcopy(template)
    labels = (body.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return template_hash_text(fnv32a(data))


def _without_hash(template: dict[str, Any]) -> str:
    body = copy.deepcopy(template)
    labels = (body.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return json.dumps(body, sort_keys=True)


def _replicas(rs: dict[str, Any]) -> int:
    return int((rs.get("spec") or {}).get("replicas") or 0)


def _status_count(rs: dict[str, Any], field_name: str) -> int:
    return int((rs.get("status") or {}).get(field_name) or 0)


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def surge_and_unavailable(deploy: dict[str, Any]) -> tuple[int, int]:
    """``(maxSurge, maxUnavailable)`` resolved against the desired replicas (surge rounds up, unavailable down)."""
    spec = deploy.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, desired
    ru = strategy.get("rollingUpdate") or {}
    surge = int_or_percent(ru.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = int_or_percent(ru.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


class DeploymentController(Controller):
    """Reconciles Deployments into ReplicaSets."""

    name = "deployment-controller"
    primary = "deployments.apps"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "replicasets.apps":
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "Deployment":
                return [f"{event.obj['metadata']['namespace']}/{ref['name']}"]
        if event.key == "pods" and event.type == "DELETED":
            # Recreate waits for the old pods to be gone.
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "ReplicaSet":
                name = str(ref["name"])
                labels = (event.obj.get("metadata") or {}).get("labels") or {}
                suffix = "-" + str(labels.get(HASH_LABEL, ""))
                if labels.get(HASH_LABEL) and name.endswith(suffix):
                    return [f"{event.obj['metadata']['namespace']}/{name[: -len(suffix)]}"]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        d = self.store.try_get(self.primary, ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return None
        all_rs = self.ctx.list("replicasets.apps", ns)
        owned = [rs for rs in all_rs if is_owned_by(rs, d)]
        spec = d.get("spec") or {}
        new_rs = self._find_new(d, owned)
        old_rss = sorted(
            (rs for rs in owned if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]),
            key=lambda rs: rs["metadata"].get("creationTimestamp") or "",
        )
        created = False
        if spec.get("paused"):
            if new_rs is not None:
                self._scale_to_desired_when_paused(d, new_rs, old_rss)
        elif (spec.get("strategy") or {}).get("type") == "Recreate":
            new_rs, created = self._recreate(d, new_rs, old_rss)
        else:
            new_rs, created = self._rolling(d, new_rs, old_rss)
        if new_rs is not None:
            self._stamp_revision(d, new_rs)
        self._cleanup(d, old_rss)
        all_rs = self.ctx.list("replicasets.apps", ns)
        owned = [rs for rs in all_rs if is_owned_by(rs, d)]
        if new_rs is not None:
            new_rs = next((rs for rs in owned if rs["metadata"]["uid"] == new_rs["metadata"]["uid"]), new_rs)
        return self._sync_status(d, new_rs, owned, created)

    # ---- ReplicaSets

    def _find_new(self, d: dict[str, Any], owned: list[dict[str, Any]]) -> dict[str, Any] | None:
        want = _without_hash(d["spec"].get("template") or {})
        matches = [rs for rs in owned if _without_hash((rs.get("spec") or {}).get("template") or {}) == want]
        if not matches:
            h = pod_template_hash(d["spec"].get("template") or {}, (d.get("status") or {}).get("collisionCount"))
            matches = [rs for rs in owned if ((rs["metadata"].get("labels") or {}).get(HASH_LABEL)) == h]
        if not matches:
            return None
        return min(matches, key=lambda rs: rs["metadata"].get("creationTimestamp") or "")

    def _create_rs(self, d: dict[str, Any], replicas: int, old_rss: list[dict[str, Any]]) -> dict[str, Any] | None:
        spec = d["spec"]
        collisions = (d.get("status") or {}).get("collisionCount")
        h = pod_template_hash(spec.get("template") or {}, collisions)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        surge, _ = surge_and_unavailable(d)
        desired = int(spec.get("replicas", 1))
        revision = max((_revision(rs) for rs in old_rss), default=0) + 1
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "namespace": d["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    DESIRED: str(desired),
                    MAX_REPLICAS: str(desired + surge),
                    REVISION: str(revision),
                },
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.store.create("replicasets.apps", rs, namespace=d["metadata"]["namespace"])
        except Conflict:
            existing = self.store.try_get("replicasets.apps", d["metadata"]["namespace"], rs["metadata"]["name"])
            if existing is not None and is_owned_by(existing, d):
                return existing
            self._bump_collisions(d)
            return None
        self.event(d, "ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} from 0 to {replicas}")
        return created

    def _bump_collisions(self, d: dict[str, Any]) -> None:
        def mutate(obj: dict[str, Any]) -> bool:
            status = obj.setdefault("status", {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            return True

        write_status(self.store, self.primary, d["metadata"]["namespace"], d["metadata"]["name"], mutate)

    def _scale(self, d: dict[str, Any], rs: dict[str, Any], replicas: int) -> dict[str, Any]:
        old = _replicas(rs)
        surge, _ = surge_and_unavailable(d)
        desired = int(d["spec"].get("replicas", 1))
        annotations = {DESIRED: str(desired), MAX_REPLICAS: str(desired + surge)}
        current = rs["metadata"].get("annotations") or {}
        if old == replicas and all(current.get(k) == v for k, v in annotations.items()):
            return rs
        try:
            rs = self.store.patch(
                "replicasets.apps",
                rs["metadata"]["namespace"],
                rs["metadata"]["name"],
                {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}},
                "merge",
            )
        except NotFound:
            return rs
        if old != replicas:
            direction = "up" if replicas > old else "down"
            self.event(
                d,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {old} to {replicas}",
            )
        return rs

    def _stamp_revision(self, d: dict[str, Any], new_rs: dict[str, Any]) -> None:
        ns = d["metadata"]["namespace"]
        all_rs = self.ctx.list("replicasets.apps", ns)
        others = [rs for rs in all_rs if is_owned_by(rs, d) and rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        top = max((_revision(rs) for rs in others), default=0)
        revision = _revision(new_rs)
        if revision <= top:
            revision = top + 1
            try:
                new_rs = self.store.patch(
                    "replicasets.apps", ns, new_rs["metadata"]["name"],
                    {"metadata": {"annotations": {REVISION: str(revision)}}}, "merge",
                )  # fmt: skip
            except NotFound:
                return
        if ((d["metadata"].get("annotations") or {}).get(REVISION)) != str(revision):
            with contextlib.suppress(NotFound):
                body = {"metadata": {"annotations": {REVISION: str(revision)}}}
                self.store.patch(self.primary, ns, d["metadata"]["name"], body, "merge")

    def _cleanup(self, d: dict[str, Any], old_rss: list[dict[str, Any]]) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in old_rss if _replicas(rs) == 0 and _status_count(rs, "replicas") == 0]
        idle.sort(key=_revision)
        for rs in idle[: max(0, len(idle) - limit)]:
            with contextlib.suppress(NotFound):
                self.store.delete("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"])

    # ---- strategies

    def _rolling(
        self, d: dict[str, Any], new_rs: dict[str, Any] | None, old_rss: list[dict[str, Any]]
    ) -> tuple[dict[str, Any] | None, bool]:
        desired = int(d["spec"].get("replicas", 1))
        surge, max_unavailable = surge_and_unavailable(d)
        created = False
        if new_rs is None:
            current = sum(_replicas(rs) for rs in old_rss)
            replicas = desired if not old_rss else max(0, min(desired, desired + surge - current))
            new_rs = self._create_rs(d, replicas, old_rss)
            if new_rs is None:
                return None, False
            created = True
        else:
            new_replicas = _replicas(new_rs)
            if new_replicas > desired:
                new_rs = self._scale(d, new_rs, desired)
            elif new_replicas < desired:
                total = new_replicas + sum(_replicas(rs) for rs in old_rss)
                room = desired + surge - total
                if room > 0:
                    new_rs = self._scale(d, new_rs, new_replicas + min(room, desired - new_replicas))
                else:
                    new_rs = self._scale(d, new_rs, new_replicas)
            else:
                new_rs = self._scale(d, new_rs, new_replicas)
        self._scale_down_old(d, new_rs, old_rss, desired, max_unavailable)
        return new_rs, created

    def _scale_down_old(
        self,
        d: dict[str, Any],
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
        desired: int,
        max_unavailable: int,
    ) -> None:
        old_total = sum(_replicas(rs) for rs in old_rss)
        if old_total == 0:
            return
        all_total = old_total + _replicas(new_rs)
        min_available = desired - max_unavailable
        new_unavailable = _replicas(new_rs) - _status_count(new_rs, "availableReplicas")
        max_scaled_down = all_total - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        # First drop old replicas that are not available anyway (they cost no availability).
        for i, rs in enumerate(old_rss):
            if max_scaled_down <= 0:
                break
            unhealthy = _replicas(rs) - _status_count(rs, "availableReplicas")
            if unhealthy <= 0:
                continue
            cut = min(max_scaled_down, unhealthy)
            old_rss[i] = self._scale(d, rs, _replicas(rs) - cut)
            max_scaled_down -= cut
        # Then available ones, oldest first, as long as availability stays above the minimum.
        available = _status_count(new_rs, "availableReplicas") + sum(
            _status_count(rs, "availableReplicas") for rs in old_rss
        )
        budget = available - min_available
        for i, rs in enumerate(old_rss):
            if budget <= 0:
                break
            if _replicas(rs) == 0:
                continue
            cut = min(budget, _replicas(rs))
            old_rss[i] = self._scale(d, rs, _replicas(rs) - cut)
            budget -= cut

    def _recreate(
        self, d: dict[str, Any], new_rs: dict[str, Any] | None, old_rss: list[dict[str, Any]]
    ) -> tuple[dict[str, Any] | None, bool]:
        for i, rs in enumerate(old_rss):
            if _replicas(rs):
                old_rss[i] = self._scale(d, rs, 0)
        pods = self.ctx.list("pods", d["metadata"]["namespace"])
        old_uids = {rs["metadata"]["uid"] for rs in old_rss}
        old_running = [p for p in pods if (controller_ref(p) or {}).get("uid") in old_uids and is_active_pod(p)]
        if old_running:
            return new_rs, False
        desired = int(d["spec"].get("replicas", 1))
        if new_rs is None:
            return self._create_rs(d, desired, old_rss), True
        return self._scale(d, new_rs, desired), False

    def _scale_to_desired_when_paused(
        self, d: dict[str, Any], new_rs: dict[str, Any], old_rss: list[dict[str, Any]]
    ) -> None:
        desired = int(d["spec"].get("replicas", 1))
        total = _replicas(new_rs) + sum(_replicas(rs) for rs in old_rss)
        if total != desired and not any(_replicas(rs) for rs in old_rss):
            self._scale(d, new_rs, desired)

    # ---- status

    def _sync_status(
        self, d: dict[str, Any], new_rs: dict[str, Any] | None, owned: list[dict[str, Any]], created: bool
    ) -> float | None:
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        _, max_unavailable = surge_and_unavailable(d)
        replicas = sum(_status_count(rs, "replicas") for rs in owned)
        updated = _status_count(new_rs, "replicas") if new_rs is not None else 0
        ready = sum(_status_count(rs, "readyReplicas") for rs in owned)
        available = sum(_status_count(rs, "availableReplicas") for rs in owned)
        counts = {
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available) if replicas or desired else 0,
        }
        now = self.ctx.now()
        stamp = rfc3339(now)
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        complete = (
            new_rs is not None
            and updated == desired
            and replicas == desired
            and available == desired
            and _replicas(new_rs) == desired
            and all(_replicas(rs) == 0 for rs in owned if rs["metadata"]["uid"] != new_uid)
        )
        deadline = spec.get("progressDeadlineSeconds")
        requeue: list[float] = []

        def mutate(obj: dict[str, Any]) -> bool:
            old = obj.get("status") or {}
            conditions = [dict(c) for c in old.get("conditions") or []]
            if available >= desired - max_unavailable:
                conditions = set_condition(
                    conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
                    now=stamp, update_time=True,
                )  # fmt: skip
            else:
                conditions = set_condition(
                    conditions, "Available", "False", "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.", now=stamp, update_time=True,
                )  # fmt: skip
            progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
            old_counts = {k: int(old.get(k) or 0) for k in counts}
            if spec.get("paused"):
                conditions = set_condition(
                    conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused",
                    now=stamp, update_time=True,
                )  # fmt: skip
            elif complete:
                conditions = set_condition(
                    conditions, "Progressing", "True", "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.', now=stamp, update_time=True,
                )  # fmt: skip
            elif created:
                conditions = set_condition(
                    conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"',
                    now=stamp, update_time=True,
                )  # fmt: skip
            elif new_rs is not None and (
                old_counts != counts
                or progressing is None
                or progressing.get("reason") in ("NewReplicaSetAvailable", "DeploymentPaused", "DeploymentResumed")
                or obj["metadata"].get("generation") != old.get("observedGeneration")
            ):
                conditions = set_condition(
                    conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.',
                    now=stamp, update_time=True,
                )  # fmt: skip
                next(c for c in conditions if c["type"] == "Progressing")["lastUpdateTime"] = stamp
            elif progressing is not None and progressing.get("status") == "True" and deadline is not None:
                since = parse_rfc3339(progressing.get("lastUpdateTime")) or now
                if progressing.get("reason") != "NewReplicaSetAvailable":
                    if now - since >= float(deadline):
                        conditions = set_condition(
                            conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs_name}" has timed out progressing.', now=stamp, update_time=True,
                        )  # fmt: skip
                    else:
                        requeue.append(since + float(deadline) - now + 0.001)
            conditions.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c.get("type", ""), 2))
            new = {k: v for k, v in counts.items() if v}
            new["observedGeneration"] = obj["metadata"].get("generation", 1)
            new["conditions"] = conditions
            if old.get("collisionCount") is not None:
                new["collisionCount"] = old["collisionCount"]
            if new == old:
                return False
            obj["status"] = new
            return True

        write_status(self.store, self.primary, d["metadata"]["namespace"], d["metadata"]["name"], mutate)
        if not complete and deadline is not None and not requeue and not spec.get("paused"):
            requeue.append(float(deadline) + 0.001)
        return min(requeue) if requeue else None
