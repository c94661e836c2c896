"""Fixtures shared by the embedded-twin tests: a simulated clock and an empty store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from labkit.embedded.clock import Clock
from labkit.embedded.kube.store import Store


@pytest.fixture
def clock() -> Iterator[Clock]:
    """A clock running 60 times faster than wall time; stopped after the test."""
    c = Clock(scale=60)
    yield c
    c.stop()


@pytest.fixture
def store(clock: Clock) -> Store:
    """A fresh store with the system namespaces (default, kube-system, ...)."""
    return Store(clock)
