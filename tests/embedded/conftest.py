"""Fixtures shared by the embedded-twin tests: a simulated clock, an empty store, a running cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from twin_support import StartCluster

from labkit.embedded.clock import Clock
from labkit.embedded.kube.cluster import EmbeddedCluster
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


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[StartCluster]:
    """Starts an EmbeddedCluster in ``tmp_path`` and an official client for it; both stop after the test.

    Call it with the EmbeddedCluster options the test depends on, e.g.
    ``start_cluster(profile="kind", time_scale=300.0, seed=3, system_pods=False)``.
    """
    started: list[tuple[EmbeddedCluster, client.ApiClient]] = []

    def start(**options: Any) -> tuple[EmbeddedCluster, client.ApiClient]:
        state = tmp_path if not started else tmp_path / f"cluster-{len(started)}"
        cluster = EmbeddedCluster(state_dir=state, **options)
        cluster.start()
        try:
            api = config.new_client_from_config(str(cluster.kubeconfig))
        except BaseException:
            cluster.stop()
            raise
        started.append((cluster, api))
        return cluster, api

    yield start
    for cluster, api in reversed(started):
        api.close()
        cluster.stop()
