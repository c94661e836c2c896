"""What every shim service shares at run time: the clock, timings, data and hooks.

One :class:`ShimRuntime` belongs to one :class:`~labkit.embedded.aws.server.EmbeddedAws`.
Models stay plain state; responses schedule status changes (``CREATING`` ->
``ACTIVE``) and events through the runtime. Durations are simulated seconds and run
on the embedded clock's scale; timestamps in responses are wall-clock epoch seconds,
like moto's own (``createdAt`` of a cluster and of its add-ons agree, and a client
asking for "spot prices since now" means its own now).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.embedded.clock import Clock

log = logging.getLogger("labkit.embedded.aws")


@dataclass(frozen=True)
class Timings:
    """How long (simulated seconds) the embedded EKS takes for slow operations.

    The defaults are close to what EKS takes; at the kit's default time scale of 60,
    a cluster is ACTIVE after about 10 s of wall time. :meth:`instant` is for tests.
    """

    cluster_create_s: float = 600.0
    nodegroup_create_s: float = 240.0
    nodegroup_delete_s: float = 180.0
    addon_create_s: float = 60.0
    addon_delete_s: float = 30.0

    @classmethod
    def instant(cls) -> Timings:
        """Every operation completes at once."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class ClusterEndpoint:
    """Where the Kubernetes API of an embedded EKS cluster answers.

    Attributes:
        url: HTTPS URL of the API server.
        ca_pem: PEM of the CA that signed the server certificate (text or bytes).
    """

    url: str
    ca_pem: str | bytes


EndpointProvider = Callable[[str], "ClusterEndpoint | tuple[str, str | bytes] | None"]
"""Called with a cluster name; returns the endpoint DescribeCluster reports, or ``None``."""


@dataclass(frozen=True)
class EksEvent:
    """Something the embedded EKS finished doing, for listeners such as the embedded Kubernetes.

    Listeners run on the embedded AWS's request threads or the clock's timer thread:
    keep them quick and thread-safe (hand work to the listener's own loop).

    Attributes:
        kind: ``cluster-active``, ``cluster-deleted``, ``nodegroup-active``, ``nodegroup-deleted``,
            ``addon-active`` or ``addon-deleted``.
        account_id: the account.
        region: the region.
        cluster: the cluster's name.
        name: the node group's or add-on's name (``None`` for cluster events).
        detail: what a listener needs: for clusters ``profile`` (``auto``/``standard``), ``version``,
            ``nodePools``; for node groups ``instanceTypes``, ``scalingConfig``, ``capacityType``,
            ``labels``, ``taints``, ``amiType``.
    """

    kind: str
    account_id: str
    region: str
    cluster: str
    name: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ShimRuntime:
    """Clock, timings, endpoint provider and event listeners of one embedded AWS."""

    clock: Clock
    timings: Timings = field(default_factory=Timings)
    endpoint_provider: EndpointProvider | None = None
    listeners: list[Callable[[EksEvent], None]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def now(self) -> float:
        """Wall-clock epoch seconds, for timestamps and for comparing with :meth:`ready_at`."""
        return time.time()

    def ready_at(self, sim_seconds: float) -> float:
        """The wall-clock time at which something taking ``sim_seconds`` of simulated time is done."""
        return self.now() + self.clock.wall_seconds(sim_seconds)

    def later(self, sim_seconds: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``sim_seconds`` of simulated time (at once, in this thread, when 0)."""
        if sim_seconds <= 0:
            fn()
        else:
            self.clock.call_later(sim_seconds, fn)

    def emit(self, event: EksEvent) -> None:
        """Tell every listener; a failing listener is logged, never raised into AWS calls."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("EKS event listener failed on %s", event.kind)

    def endpoint_for(self, cluster: str) -> ClusterEndpoint | None:
        if self.endpoint_provider is None:
            return None
        found = self.endpoint_provider(cluster)
        if found is None or isinstance(found, ClusterEndpoint):
            return found
        url, ca_pem = found
        return ClusterEndpoint(url, ca_pem)
