"""Spot interruptions and insufficient capacity: what the embedded Karpenter does when EC2 takes capacity back.

EC2 gives a Spot instance a two-minute warning before reclaiming it. Karpenter's interruption
controller reads the warning from its SQS queue, records ``SpotInterrupted`` ("Spot interruption
warning was triggered") and ``TerminatingOnInterruption`` on the Node and NodeClaim, marks that
offering unavailable for a while (so the replacement goes elsewhere), and deletes the NodeClaim at
once: the node is tainted, its pods are evicted (their controllers recreate them; they go Pending
and are provisioned on a new node) and the node goes. Whatever is still there when the two minutes
are up is lost with the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Seconds between EC2's Spot interruption warning and the instance's termination.
SPOT_WARNING_SECONDS = 120.0
#: Seconds Karpenter's SQS poll takes to see the warning.
QUEUE_DELAY_SECONDS = 2.0
#: How long an offering that ran out of capacity (or was reclaimed) is skipped (Karpenter's ICE cache: 3 minutes).
UNAVAILABLE_SECONDS = 180.0

SPOT_INTERRUPTED = ("SpotInterrupted", "Spot interruption warning was triggered")
TERMINATING_NODE = ("TerminatingOnInterruption", "Interruption triggered termination for the Node")
TERMINATING_NODECLAIM = ("TerminatingOnInterruption", "Interruption triggered termination for the NodeClaim")
INSTANCE_TERMINATED = (
    "InstanceTerminated",
    "Instance was reclaimed by EC2 at the end of the Spot interruption warning",
)


@dataclass
class UnavailableOfferings:
    """Offerings (instance type, zone, capacity type) with no capacity until a simulated time."""

    until: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def mark(self, instance_type: str, zone: str, capacity_type: str, now: float, seconds: float | None = None) -> None:
        """No capacity for this offering for ``seconds`` (default :data:`UNAVAILABLE_SECONDS`) from ``now``."""
        self.until[(instance_type, zone, capacity_type)] = now + (UNAVAILABLE_SECONDS if seconds is None else seconds)

    def current(self, now: float) -> frozenset[tuple[str, str, str]]:
        """The offerings unavailable at ``now`` (expired entries are dropped)."""
        for key in [k for k, t in self.until.items() if t <= now]:
            del self.until[key]
        return frozenset(self.until)


@dataclass(frozen=True)
class Interruption:
    """A pending Spot interruption: the node, its NodeClaim and when EC2 reclaims the instance."""

    node: str
    nodeclaim: str
    warned_at: float

    @property
    def terminates_at(self) -> float:
        return self.warned_at + SPOT_WARNING_SECONDS
