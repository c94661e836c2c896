"""Plain helpers shared by the embedded-twin tests (no fixtures: those live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config

from labkit.embedded.clock import Clock
from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.embedded.kube.server import ApiServer
from labkit.embedded.kube.store import Store

StartCluster = Callable[..., tuple[EmbeddedCluster, client.ApiClient]]
"""The ``start_cluster`` fixture: EmbeddedCluster options in, the started cluster and an official client out."""


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *, missing_ok: bool = False
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that, or fail the test.

    Args:
        predicate: Called every 10 ms of wall time.
        timeout: Wall-clock seconds before the test fails: generous, so a busy machine does not fail a
            test, and free for passing tests, which return as soon as the predicate holds.
        what: Named in the failure message.
        missing_ok: Treat a 404 from the API (the object is not created yet) as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except client.ApiException as exc:
            if not missing_ok or exc.status != 404:
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout}s wall)")
        time.sleep(0.01)


@contextmanager
def api_server(
    state: Path, *, history: int | None = None, bookmark_interval: float | None = None
) -> Iterator[tuple[Store, ApiServer, client.ApiClient]]:
    """A bare API server over a fresh store on a real-time clock, and an official client for it.

    Args:
        state: Folder for the server's certificates and the kubeconfig.
        history: Watch history kept by the store (the store's default when None).
        bookmark_interval: Seconds between watch bookmarks (the server's default when None).
    """
    clock = Clock(scale=1.0)
    store = Store(clock) if history is None else Store(clock, history=history)
    server = ApiServer(store, state_dir=state)
    if bookmark_interval is not None:
        server.bookmark_interval = bookmark_interval
    server.start()
    api = config.new_client_from_config(config_file=str(server.write_kubeconfig(state / "kubeconfig")))
    try:
        yield store, server, api
    finally:
        api.close()
        server.stop()
        clock.stop()
