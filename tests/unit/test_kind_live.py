"""Live kind test: creates and deletes a real cluster. Opt in with --live-kind (needs Docker and kind)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from labkit import settings, targets

pytestmark = pytest.mark.live_kind


def test_kind_up_connect_down(tmp_path: Path) -> None:
    s = settings.load(
        {"target": "kind", "home": tmp_path, "cluster_name": f"labkit-{uuid.uuid4().hex[:6]}"},
        environ={},
        use_files=False,
    )
    status = targets.get("kind").diagnose(s)
    if not status.usable:
        pytest.skip(f"kind target not usable here: {status.blockers[0].detail}")
    try:
        platform = targets.up(s)
        from kubernetes import client

        nodes = client.CoreV1Api(platform.kube_client()).list_node().items
        assert len(nodes) == 3  # control plane + two workers, per infra/kind/cluster.yaml
    finally:
        removed = targets.down(s)
    assert removed == [f"kind cluster {s.cluster_name}"]
    assert targets.down(s) == []
