"""The embedded target end to end: EKS through boto3 creates a Kubernetes cluster the official client talks to.

This is the real code path of the Week 1 lab: create the cluster through the EKS API, write the
kubeconfig (whose user runs `labkit eks-token`), list nodes, tear down and find nothing left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from labkit import settings as settings_mod
from labkit.aws import connect, eks, teardown
from labkit.targets.embedded import start_in_process

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object]]:
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)  # connecting points this process's AWS SDK at the platform; undo that after
    s = settings_mod.load({"target": "embedded", "home": home, "time_scale": 3000}, environ={}, use_files=False)
    services, handle = start_in_process(s, home / "state.json")
    yield services, handle
    services.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("profile", ["standard", "auto"])
def test_create_cluster_write_kubeconfig_talk_to_it(platform: tuple, profile: str) -> None:
    services, handle = platform
    s = handle.settings.replace(cluster_name=f"e2e-{profile}", cluster_profile=profile)
    session = connect(s, platform=handle)
    made = eks.create_platform(session, s, "week1-test")
    assert made.kubeconfig == Path(s.home) / "eks" / s.cluster_name / "kubeconfig"
    assert made.kubeconfig.stat().st_mode & 0o777 == 0o600

    # The kubeconfig's endpoint is the embedded API server; its user runs `labkit eks-token`.
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(made.kubeconfig))
    core = client.CoreV1Api(api)
    assert "kube-system" in {ns.metadata.name for ns in core.list_namespace().items}
    nodes = core.list_node().items
    if profile == "standard":
        # The managed system node group's nodes, labelled as EKS labels them.
        assert len(nodes) == 2
        assert {n.metadata.labels["eks.amazonaws.com/nodegroup"] for n in nodes} == {eks.SYSTEM_NODEGROUP}
    else:
        assert nodes == []  # Auto Mode: no nodes until workloads ask for them
    assert services.cluster(s.cluster_name) is not None
    api.close()

    report = teardown.teardown(session, s)
    assert teardown.survivors(session, s) == []
    assert services.cluster(s.cluster_name) is None, report.to_text()
