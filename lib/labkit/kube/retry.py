"""Retries with exponential backoff and jitter for Kubernetes API calls.

What is retried: HTTP 429 (honouring ``Retry-After``), 5xx, and connection
failures. A ``POST`` (create) is retried only when the server cannot have acted
on it (429, 503, or no connection), so a retry never creates an object twice.
The loop takes its ``sleep`` and random source as arguments so tests drive it
without waiting.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3.exceptions

T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry.

    Attributes:
        attempts: total tries, the first included (1 disables retries).
        base_delay: seconds before the first retry; doubles each time.
        max_delay: cap of one backoff delay, in seconds.
        max_retry_after: cap on a server's ``Retry-After``, in seconds.
        statuses: HTTP statuses worth retrying.
    """

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``retry`` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


NO_RETRY = RetryPolicy(attempts=1)


def retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or ``None``."""
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _transport_failure(exc: BaseException) -> tuple[bool, bool]:
    """(is a transport failure, request certainly never reached the server)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        inner = exc.reason
        if isinstance(inner, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True, True
        return True, False
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        return True, True
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.TimeoutError | ConnectionError):
        return True, isinstance(exc, ConnectionRefusedError)
    return False, False


def classify(exc: BaseException, method: str, policy: RetryPolicy) -> tuple[bool, float | None]:
    """Whether ``exc`` from a ``method`` request is worth retrying, and the server's requested delay."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        if status not in policy.statuses:
            return False, None
        if method.upper() not in IDEMPOTENT and status not in (429, 503):
            return False, None  # a create may have happened: retrying could make it twice
        return True, retry_after(getattr(exc, "headers", None))
    transport, never_sent = _transport_failure(exc)
    if not transport:
        return False, None
    return (never_sent or method.upper() in IDEMPOTENT), None


@dataclass
class Attempts:
    """How many tries a call took (filled in by :func:`call_with_retry`)."""

    count: int = 0
    delays: list[float] = field(default_factory=list)


def call_with_retry(
    fn: Callable[[], T],
    *,
    method: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    attempts: Attempts | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, fails for good, or ``policy.attempts`` are used up.

    The last failure is re-raised unchanged; ``attempts`` records how many tries were made.
    """
    tracker = attempts if attempts is not None else Attempts()
    while True:
        tracker.count += 1
        try:
            return fn()
        except Exception as exc:
            retryable, server_delay = classify(exc, method, policy)
            if not retryable or tracker.count >= policy.attempts:
                raise
            if server_delay is not None:
                delay = min(server_delay, policy.max_retry_after)
            else:
                delay = policy.backoff(tracker.count, rng)
            tracker.delays.append(delay)
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
