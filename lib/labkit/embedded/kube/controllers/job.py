"""The Job controller: run pods to ``completions`` with ``parallelism``, give up at ``backoffLimit``.

Supports NonIndexed and Indexed completion modes, ``activeDeadlineSeconds``, ``suspend``,
``ttlSecondsAfterFinished`` and the pod-failure back-off (10 s, doubling, capped at 6 minutes).
A finished Job carries the conditions a real one does (``SuccessCriteriaMet`` then ``Complete``,
or ``FailureTarget`` then ``Failed``), so ``kubectl wait --for=condition=complete`` works.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labkit.errors import ApiError, NotFound

from .base import Controller
from .common import (
    controller_ref,
    is_active_pod,
    is_owned_by,
    is_pod_ready,
    obj_key,
    parse_rfc3339,
    pod_from_template,
    rfc3339,
    set_condition,
    split_key,
    write_status,
)

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
BACKOFF_FIRST, BACKOFF_MAX = 10.0, 360.0


def _index_text(indexes: set[int]) -> str:
    """``{0,1,2,5}`` as the API writes completed indexes: ``"0-2,5"``."""
    out: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def _pod_index(pod: dict[str, Any]) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _finished(job: dict[str, Any]) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


class JobController(Controller):
    """Reconciles Jobs into pods."""

    name = "job-controller"
    primary = "jobs.batch"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "pods":
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "Job":
                return [f"{event.obj['metadata']['namespace']}/{ref['name']}"]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        job = self.store.try_get(self.primary, ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        now = self.ctx.now()
        finished = _finished(job)
        if finished:
            return self._ttl(job, now)
        spec = job.get("spec") or {}
        pods = self.ctx.list("pods", ns)
        owned = [p for p in pods if is_owned_by(p, job)]
        active = [p for p in owned if is_active_pod(p)]
        succeeded_pods = [p for p in owned if (p.get("status") or {}).get("phase") == "Succeeded"]
        failed_pods = [p for p in owned if (p.get("status") or {}).get("phase") == "Failed"]
        status = job.get("status") or {}
        succeeded = max(len(succeeded_pods), int(status.get("succeeded") or 0))
        failed = max(len(failed_pods), int(status.get("failed") or 0))
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1) or 0)
        done_indexes = {i for p in succeeded_pods if (i := _pod_index(p)) is not None}

        if spec.get("suspend"):
            self._delete(job, active)
            self._status(job, [], succeeded, failed, done_indexes=done_indexes, now=now, suspended=True)
            return None

        start = parse_rfc3339(status.get("startTime")) or now
        deadline = spec.get("activeDeadlineSeconds")
        outcome: tuple[str, str, str] | None = None
        restarts = 0
        if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure":
            restarts = sum(
                int(c.get("restartCount") or 0)
                for p in active
                for c in (p.get("status") or {}).get("containerStatuses") or []
            )
        if failed + restarts > int(spec.get("backoffLimit", 6)):
            outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and now - start >= float(deadline):
            outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif (
            completions is not None
            and ((indexed and len(done_indexes) >= int(completions)) or (not indexed and succeeded >= int(completions)))
        ) or (completions is None and succeeded >= 1 and not active):
            outcome = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        if outcome is not None:
            self._delete(job, active)
            self._status(job, [], succeeded, failed, done_indexes=done_indexes, now=now, outcome=outcome)
            return self._ttl(self.store.try_get(self.primary, ns, name) or job, now)

        again: list[float] = []
        if completions is None:
            wanted = parallelism if succeeded == 0 else 0
        elif indexed:
            wanted = min(parallelism, int(completions) - len(done_indexes))
        else:
            wanted = min(parallelism, int(completions) - succeeded)
        missing = wanted - len(active)
        if missing > 0:
            wait = self._backoff_wait(failed_pods, now)
            if wait > 0:
                again.append(wait)
            else:
                active += self._create(job, missing, active, done_indexes, indexed=indexed, completions=completions)
        elif missing < 0:
            extra = sorted(active, key=lambda p: 1 if (p.get("spec") or {}).get("nodeName") else 0)[:-missing]
            self._delete(job, extra)
            active = [p for p in active if p not in extra]
        self._status(job, active, succeeded, failed, done_indexes=done_indexes, now=now)
        if deadline is not None:
            again.append(max(0.0, start + float(deadline) - now) + 0.001)
        return min(again) if again else None

    def _backoff_wait(self, failed_pods: list[dict[str, Any]], now: float) -> float:
        if not failed_pods:
            return 0.0
        last = max(_finished_at(p) or 0.0 for p in failed_pods)
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (len(failed_pods) - 1))
        return max(0.0, last + delay - now)

    def _create(
        self,
        job: dict[str, Any],
        count: int,
        active: list[dict[str, Any]],
        done_indexes: set[int],
        *,
        indexed: bool,
        completions: Any,
    ) -> list[dict[str, Any]]:
        created = []
        busy = {i for p in active if (i := _pod_index(p)) is not None}
        free = [i for i in range(int(completions or 0)) if i not in done_indexes and i not in busy] if indexed else []
        for n in range(count):
            pod = pod_from_template(job["spec"].get("template") or {}, job)
            prefix = job["metadata"]["name"] + "-"
            if indexed:
                if n >= len(free):
                    break
                index = free[n]
                pod["metadata"].setdefault("annotations", {})[INDEX_ANNOTATION] = str(index)
                pod["metadata"]["labels"][INDEX_LABEL] = str(index)
                pod["spec"].setdefault("hostname", f"{job['metadata']['name']}-{index}")
                for c in pod["spec"].get("containers") or []:
                    c.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "value": str(index)})
                prefix = f"{job['metadata']['name']}-{index}-"
            try:
                made = self.ctx.create_named("pods", pod, prefix)
            except ApiError as exc:
                self.event(job, "FailedCreate", f"Error creating: {getattr(exc, 'what', exc)}", kind="Warning")
                break
            created.append(made)
            self.event(job, "SuccessfulCreate", f"Created pod: {made['metadata']['name']}")
        return created

    def _delete(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Delete pods that are still active. Re-read first: a pod the cache still shows running may
        have just ended, and a finished pod is kept (its log and exit code are what people read)."""
        for p in pods:
            fresh = self.store.try_get("pods", p["metadata"]["namespace"], p["metadata"]["name"])
            if fresh is None or not is_active_pod(fresh):
                continue
            with contextlib.suppress(NotFound):
                self.store.delete("pods", p["metadata"]["namespace"], p["metadata"]["name"])
                self.event(job, "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}")

    def _status(
        self,
        job: dict[str, Any],
        active: list[dict[str, Any]],
        succeeded: int,
        failed: int,
        *,
        done_indexes: set[int],
        now: float,
        outcome: tuple[str, str, str] | None = None,
        suspended: bool = False,
    ) -> None:
        stamp = rfc3339(now)
        indexed = (job.get("spec") or {}).get("completionMode") == "Indexed"
        events: list[tuple[str, str, str]] = []

        def mutate(obj: dict[str, Any]) -> bool:
            old = obj.get("status") or {}
            new: dict[str, Any] = {}
            conditions = [dict(c) for c in old.get("conditions") or []]
            if suspended:
                conditions = set_condition(
                    conditions, "Suspended", "True", "JobSuspended", "Job suspended", now=stamp, probe_time=True
                )
            else:
                if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
                    conditions = set_condition(
                        conditions, "Suspended", "False", "JobResumed", "Job resumed", now=stamp, probe_time=True
                    )
                new["startTime"] = old.get("startTime") or stamp
            if outcome is not None:
                kind, reason, message = outcome
                target = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
                conditions = set_condition(conditions, target, "True", reason, message, now=stamp, probe_time=True)
                conditions = set_condition(conditions, kind, "True", reason, message, now=stamp, probe_time=True)
                if kind == "Complete":
                    new["completionTime"] = old.get("completionTime") or stamp
                    events.append(("Normal", "Completed", "Job completed"))
                else:
                    events.append(("Warning", reason, message))
            if conditions:
                new["conditions"] = conditions
            counts = {
                "active": len(active),
                "ready": sum(1 for p in active if is_pod_ready(p)),
                "succeeded": succeeded,
                "failed": failed,
                "terminating": 0,
            }
            new.update({k: v for k, v in counts.items() if v or k in ("ready", "terminating")})
            if indexed and done_indexes:
                new["completedIndexes"] = _index_text(done_indexes)
            new["uncountedTerminatedPods"] = {}
            if new == old:
                return False
            obj["status"] = new
            return True

        write_status(self.store, self.primary, job["metadata"]["namespace"], job["metadata"]["name"], mutate)
        for kind, reason, message in events:
            self.event(job, reason, message, kind=kind)

    def _ttl(self, job: dict[str, Any], now: float) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        status = job.get("status") or {}
        finished_at = next(
            (
                parse_rfc3339(c.get("lastTransitionTime"))
                for c in status.get("conditions") or []
                if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            ),
            None,
        )
        if finished_at is None:
            return None
        left = finished_at + float(ttl) - now
        if left > 0:
            return left + 0.001
        with contextlib.suppress(NotFound):
            self.store.delete(
                self.primary, job["metadata"]["namespace"], job["metadata"]["name"], propagation="Background"
            )
        return None


def _finished_at(pod: dict[str, Any]) -> float | None:
    times = [
        parse_rfc3339(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    found = [t for t in times if t is not None]
    return max(found) if found else None
