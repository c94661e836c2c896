"""labkit.cluster.ensure: later labs find the Week 1 cluster, or build it with the same steps."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import labkit
from labkit import cluster
from labkit.targets.embedded import STATE_ENV, start_in_process

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def lab(tmp_path) -> Iterator[labkit.LabContext]:
    saved = dict(os.environ)
    os.environ["LABKIT_HOME"] = str(tmp_path)
    os.environ["LABKIT_TIME_SCALE"] = "3000"
    ctx = labkit.setup(target="embedded", headless=True, lab="ensure-test", cluster_name="ensure-test")
    services, _ = start_in_process(ctx.settings, tmp_path / "state.json")
    os.environ[STATE_ENV] = str(tmp_path / "state.json")
    try:
        yield ctx
    finally:
        services.stop()
        os.environ.clear()
        os.environ.update(saved)


def test_ensure_creates_then_finds(lab: labkit.LabContext) -> None:
    first = cluster.ensure(lab)
    assert first.created
    assert first.profile == "auto"
    assert first.kubeconfig.exists()
    second = cluster.ensure(lab)
    assert not second.created
    assert second.endpoint == first.endpoint
    namespaces = {n["metadata"]["name"] for n in second.kube.list("v1", "Namespace").items}
    assert {"default", "kube-system"} <= namespaces
    assert "ensure-test" in str(second)
