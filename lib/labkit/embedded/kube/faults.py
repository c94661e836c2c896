"""API fault injection: make a share of API calls fail, for tests and for lessons on retries.

A :class:`FaultInjector` holds rules. For every API call (a verb on a resource; discovery,
``/version`` and OpenAPI are never affected) the server asks :meth:`FaultInjector.decide`;
the first rule that matches and fires decides the fault. Draws come from one seeded
random generator, so a given sequence of calls fails the same way on every run.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["429", "500", "timeout"]
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass
class FaultRule:
    """One kind of fault for a share of matching calls.

    Attributes:
        kind: ``"429"`` (Too Many Requests with Retry-After), ``"500"`` (internal error) or
            ``"timeout"`` (the server holds the request, then drops the connection unanswered).
        rate: share of matching calls that fail, 0..1.
        verbs: only these verbs (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
            ``delete``, ``deletecollection``); empty means all.
        resources: only these resources, by plural or key (``pods``, ``deployments.apps``); empty means all.
        times: fail at most this many calls, then the rule is spent; None means no limit.
        retry_after: seconds in the ``Retry-After`` header of a 429.
        hang_seconds: how long a ``timeout`` fault holds the request before dropping it.
    """

    kind: FaultKind
    rate: float = 1.0
    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    times: int | None = None
    retry_after: int = 1
    hang_seconds: float = 2.0
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("429", "500", "timeout"):
            raise ValueError(f"unknown fault kind {self.kind!r}; use '429', '500' or 'timeout'")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        unknown = set(self.verbs) - set(VERBS)
        if unknown:
            raise ValueError(f"unknown verbs {sorted(unknown)}; use some of {list(VERBS)}")

    def matches(self, verb: str, resource: str) -> bool:
        """Whether this rule applies to ``verb`` on ``resource`` (a key such as ``deployments.apps``)."""
        if self.times is not None and self.fired >= self.times:
            return False
        if self.verbs and verb not in self.verbs:
            return False
        plural = resource.split(".", 1)[0]
        return not self.resources or resource in self.resources or plural in self.resources


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one call."""

    kind: FaultKind
    retry_after: int = 1
    hang_seconds: float = 2.0


class FaultInjector:
    """Rules deciding which API calls fail; thread-safe and deterministic under a seed.

    Args:
        seed: seed of the random draws; the same seed and calls give the same faults.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {"429": 0, "500": 0, "timeout": 0}

    def add(
        self,
        kind: FaultKind,
        rate: float = 1.0,
        *,
        verbs: tuple[str, ...] | list[str] = (),
        resources: tuple[str, ...] | list[str] = (),
        times: int | None = None,
        retry_after: int = 1,
        hang_seconds: float = 2.0,
    ) -> FaultRule:
        """Add a rule; see :class:`FaultRule` for the arguments. Returns the rule (its ``fired`` counts hits)."""
        rule = FaultRule(
            kind=kind,
            rate=rate,
            verbs=tuple(verbs),
            resources=tuple(resources),
            times=times,
            retry_after=retry_after,
            hang_seconds=hang_seconds,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (calls stop failing)."""
        with self._lock:
            self._rules.clear()

    def reseed(self, seed: int | None) -> None:
        """Restart the random draws from ``seed``."""
        with self._lock:
            self._rng = random.Random(seed)

    @property
    def rules(self) -> list[FaultRule]:
        """A copy of the current rules."""
        with self._lock:
            return list(self._rules)

    @property
    def active(self) -> bool:
        """Whether any rule is installed (a cheap check before :meth:`decide`)."""
        return bool(self._rules)

    def decide(self, verb: str, resource: str) -> Fault | None:
        """The fault for one call of ``verb`` on ``resource``, or None to serve it normally."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(verb, resource):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                self.injected[rule.kind] += 1
                return Fault(kind=rule.kind, retry_after=rule.retry_after, hang_seconds=rule.hang_seconds)
        return None
