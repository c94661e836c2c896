"""The HorizontalPodAutoscaler controller, without a metrics pipeline by default.

It keeps the target within ``minReplicas``/``maxReplicas`` (as the real controller does even when
metrics fail) and reports the status and conditions of a cluster with no metrics-server:
``ScalingActive=False`` with reason ``FailedGetResourceMetric``. A later simulation can plug a
metrics source in: ``metrics(hpa, target) -> desired replicas | None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.errors import ApiError, NotFound

from .base import Controller, ControllerContext
from .common import obj_key, rfc3339, set_condition, split_key, write_status

#: Seconds between evaluations (``--horizontal-pod-autoscaler-sync-period``).
SYNC_SECONDS = 15.0

_TARGET_KEYS = {
    "Deployment": "deployments.apps",
    "StatefulSet": "statefulsets.apps",
    "ReplicaSet": "replicasets.apps",
}

MetricsSource = Callable[[dict[str, Any], dict[str, Any]], int | None]


def _no_metrics_message(hpa: dict[str, Any]) -> tuple[str, str]:
    for metric in (hpa.get("spec") or {}).get("metrics") or []:
        if metric.get("type") == "Resource":
            name = (metric.get("resource") or {}).get("name", "cpu")
            return (
                "FailedGetResourceMetric",
                f"the HPA was unable to compute the replica count: failed to get {name} utilization: unable to get "
                f"metrics for resource {name}: unable to fetch metrics from resource metrics API: the server could "
                "not find the requested resource (get pods.metrics.k8s.io)",
            )
    return (
        "FailedGetExternalMetric",
        "the HPA was unable to compute the replica count: unable to get metrics: no metrics API is served",
    )


class HorizontalPodAutoscalerController(Controller):
    """Clamps scale targets to the HPA's bounds and writes its status.

    Attributes:
        metrics: optional source of desired replica counts (``None`` result: no metrics).
    """

    name = "horizontal-pod-autoscaler"
    primary = "horizontalpodautoscalers.autoscaling"

    def __init__(self, ctx: ControllerContext, metrics: MetricsSource | None = None) -> None:
        super().__init__(ctx)
        self.metrics = metrics

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        hpa = self.store.try_get(self.primary, ns, name)
        if hpa is None or hpa["metadata"].get("deletionTimestamp"):
            return None
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target_key = _TARGET_KEYS.get(ref.get("kind", ""))
        target = self.store.try_get(target_key, ns, ref.get("name", "")) if target_key else None
        now = rfc3339(self.ctx.now())
        conditions = [dict(c) for c in (hpa.get("status") or {}).get("conditions") or []]
        if target is None:
            conditions = set_condition(
                conditions, "AbleToScale", "False", "FailedGetScale",
                f'the HPA controller was unable to get the target\'s current scale: {ref.get("kind", "").lower()}s'
                f'.apps "{ref.get("name", "")}" not found', now=now,
            )  # fmt: skip
            self._write(hpa, conditions, current=0, desired=0)
            return SYNC_SECONDS
        current = int((target.get("spec") or {}).get("replicas", 1))
        low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        desired = current
        wanted = self.metrics(hpa, target) if self.metrics is not None else None
        if current == 0 and low != 0:
            conditions = set_condition(
                conditions, "ScalingActive", "False", "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero", now=now,
            )  # fmt: skip
        elif current > high:
            desired = high
        elif current < low:
            desired = low
        elif wanted is None:
            reason, message = _no_metrics_message(hpa)
            conditions = set_condition(conditions, "ScalingActive", "False", reason, message, now=now)
            self.event(hpa, reason, message.removeprefix("the HPA was unable to compute the replica count: "),
                       kind="Warning")  # fmt: skip
        else:
            desired = max(low, min(high, int(wanted)))
            conditions = set_condition(
                conditions, "ScalingActive", "True", "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count from the metrics", now=now,
            )  # fmt: skip
        conditions = set_condition(
            conditions, "AbleToScale", "True", "SucceededRescale" if desired != current else "ReadyForNewScale",
            f"the HPA controller was able to update the target scale to {desired}" if desired != current
            else "recommended size matches current size", now=now,
        )  # fmt: skip
        limited = desired in (low, high) and wanted is not None and wanted != desired
        conditions = set_condition(
            conditions, "ScalingLimited", "True" if limited else "False",
            ("TooManyReplicas" if desired == high else "TooFewReplicas") if limited else "DesiredWithinRange",
            "the desired replica count is more than the maximum replica count" if limited and desired == high
            else "the desired replica count is less than the minimum replica count" if limited
            else "the desired count is within the acceptable range", now=now,
        )  # fmt: skip
        if desired != current:
            try:
                self.store.patch(target_key, ns, ref["name"], {"spec": {"replicas": desired}}, "merge")
                self.event(
                    hpa, "SuccessfulRescale", f"New size: {desired}; reason: "
                    + ("Current number of replicas above Spec.MaxReplicas" if current > high
                       else "Current number of replicas below Spec.MinReplicas" if current < low
                       else "metrics above target" if desired > current else "All metrics below target"),
                )  # fmt: skip
            except (NotFound, ApiError):
                pass
        self._write(hpa, conditions, current=current, desired=desired, rescaled=desired != current)
        return SYNC_SECONDS

    def _write(
        self,
        hpa: dict[str, Any],
        conditions: list[dict[str, Any]],
        *,
        current: int,
        desired: int,
        rescaled: bool = False,
    ) -> None:
        stamp = rfc3339(self.ctx.now())

        def mutate(obj: dict[str, Any]) -> bool:
            old = obj.get("status") or {}
            new: dict[str, Any] = {"currentReplicas": current, "desiredReplicas": desired, "conditions": conditions}
            if current == 0:
                new.pop("currentReplicas")
            new["currentMetrics"] = old.get("currentMetrics")
            if new["currentMetrics"] is None:
                new.pop("currentMetrics")
            last = stamp if rescaled else old.get("lastScaleTime")
            if last:
                new["lastScaleTime"] = last
            new["observedGeneration"] = obj["metadata"].get("generation", 1)
            if new == old:
                return False
            obj["status"] = new
            return True

        write_status(self.store, self.primary, hpa["metadata"]["namespace"], hpa["metadata"]["name"], mutate)
