"""The controller manager: every embedded controller on one worker thread with one de-duplicated queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .base import Controller, ControllerContext
from .workqueue import Worker

log = logging.getLogger("labkit.embedded.controllers")

#: Simulated seconds between full resyncs; never more often than :data:`MIN_RESYNC_WALL_S` of wall time.
RESYNC_SECONDS = 60.0
MIN_RESYNC_WALL_S = 2.0
#: Store types controllers list through the shared cache.
CACHED_KEYS = (
    "pods",
    "nodes",
    "namespaces",
    "services",
    "replicasets.apps",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "cronjobs.batch",
    "horizontalpodautoscalers.autoscaling",
    "persistentvolumeclaims",
    "priorityclasses.scheduling.k8s.io",
)


def default_controllers(ctx: ControllerContext) -> list[Controller]:
    """One instance of every built-in controller."""
    from .cronjob import CronJobController
    from .daemonset import DaemonSetController
    from .deployment import DeploymentController
    from .endpoints import EndpointsController, EndpointSliceController
    from .hpa import HorizontalPodAutoscalerController
    from .job import JobController
    from .podgc import PodGCController
    from .replicaset import ReplicaSetController
    from .statefulset import StatefulSetController
    from .volumes import PersistentVolumeBinder

    return [
        DeploymentController(ctx),
        ReplicaSetController(ctx),
        StatefulSetController(ctx),
        DaemonSetController(ctx),
        JobController(ctx),
        CronJobController(ctx),
        EndpointsController(ctx),
        EndpointSliceController(ctx),
        HorizontalPodAutoscalerController(ctx),
        PodGCController(ctx),
        PersistentVolumeBinder(ctx),
    ]


class ControllerManager:
    """Runs controllers like kube-controller-manager: store events and clock timers feed one queue.

    Args:
        ctx: store, clock and random source.
        controllers: the controllers to run (default: :func:`default_controllers`).
    """

    def __init__(self, ctx: ControllerContext, controllers: list[Controller] | None = None) -> None:
        from .cache import ObjectCache

        self.ctx = ctx
        self._own_cache = ctx.cache is None
        if ctx.cache is None:
            ctx.cache = ObjectCache(ctx.store, CACHED_KEYS)
        self.controllers = {c.name: c for c in (controllers or default_controllers(ctx))}
        self._worker = Worker("labkit-controller-manager", ctx.clock, self._handle, on_event=self._keys_for)
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Subscribe to the store, queue every existing object and start the worker thread."""
        if self._own_cache:
            self.ctx.cache.start()
        self._unsubscribe = self.ctx.store.subscribe(self._worker.push_event)
        self._worker.start()
        self.resync()
        self._schedule_resync()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._worker.stop()
        if self._own_cache:
            self.ctx.cache.stop()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or running (tests)."""
        return self._worker.wait_idle(timeout)

    def get(self, name: str) -> Controller:
        """The controller called ``name`` (e.g. ``"deployment-controller"``)."""
        return self.controllers[name]

    def enqueue(self, controller: str, key: str) -> None:
        """Ask ``controller`` to reconcile ``key`` now."""
        self._worker.add((controller, key))

    def resync(self) -> None:
        """Queue every primary object of every controller."""
        for c in self.controllers.values():
            try:
                for key in c.all_keys():
                    self._worker.add((c.name, key))
            except Exception:
                log.exception("%s: listing for resync failed", c.name)

    def _schedule_resync(self) -> None:
        delay = max(RESYNC_SECONDS, MIN_RESYNC_WALL_S * self.ctx.clock.scale)

        def fire() -> None:
            if self._worker.running:
                self.resync()
                self._schedule_resync()

        self.ctx.clock.call_later(delay, fire)

    def _keys_for(self, event: Any) -> Iterable[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for c in self.controllers.values():
            try:
                out.extend((c.name, k) for k in c.keys_for(event))
            except Exception:
                log.exception("%s: mapping %s %s failed", c.name, event.type, event.key)
        return out

    def _handle(self, item: tuple[str, str]) -> float | None:
        name, key = item
        return self.controllers[name].reconcile(key)
