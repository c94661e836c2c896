"""The simulated kubelet: image pulls by size, probes on simulated time, restarts, logs, typed statuses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from twin_support import StartCluster, wait_for

from labkit.embedded.kube import runtime
from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.embedded.kube.controllers.common import parse_rfc3339
from labkit.embedded.kube.kubelet import go_duration, image_size, normalize_image
from labkit.embedded.kube.runtime import register_runtime, unregister_runtime

SCALE = 300.0
NS = "default"


@pytest.fixture
def eks(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.CoreV1Api]:
    c, api = start_cluster(profile="eks-standard", time_scale=SCALE, seed=11, system_pods=False)
    return c, client.CoreV1Api(api)


@pytest.fixture(autouse=True)
def _default_runtime_only() -> Iterator[None]:
    """These tests are about the kubelet's own timing with its default runtime: set the registered
    simulator runtimes (process-wide, registered by any embedded platform started earlier) aside."""
    saved = runtime.registered_runtimes()
    for rt in saved:
        runtime.unregister_runtime(rt)
    yield
    for rt in saved:
        runtime.register_runtime(rt)


def pod(name: str, image: str, **container: Any) -> dict[str, Any]:
    restart = container.pop("restartPolicy", "Always")
    node = container.pop("nodeName", None)
    spec: dict[str, Any] = {"restartPolicy": restart, "containers": [{"name": "main", "image": image, **container}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


def log_text(core: client.CoreV1Api, name: str) -> str:
    # Client 36 returns pod logs as the repr of bytes unless the raw response is read (same on real clusters).
    return core.read_namespaced_pod_log(name, NS, _preload_content=False).data.decode()


def condition_time(p: client.V1Pod, kind: str) -> float:
    cond = next(c for c in p.status.conditions if c.type == kind and c.status == "True")
    return cond.last_transition_time.timestamp()


def ready(core: client.CoreV1Api, name: str) -> client.V1Pod | None:
    p = core.read_namespaced_pod(name, NS)
    return p if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) else None


def events_of(core: client.CoreV1Api, name: str) -> list[tuple[str, str]]:
    return [(e.reason, e.message) for e in core.list_namespaced_event(NS).items if e.involved_object.name == name]


def test_pull_time_tables() -> None:
    assert image_size("vllm/vllm-openai:v0.8.5") == 10_000_000_000
    assert image_size("ghcr.io/huggingface/text-generation-inference:3.0") == 5_000_000_000
    assert image_size("busybox") < 10_000_000
    assert image_size("example.com/unknown:1") == 150_000_000
    assert normalize_image("nginx") == "docker.io/library/nginx:latest"
    assert normalize_image("vllm/vllm-openai:v0.8.5") == "docker.io/vllm/vllm-openai:v0.8.5"
    assert normalize_image("ghcr.io/a/b:1") == "ghcr.io/a/b:1"
    assert [go_duration(s) for s in (0.5123, 2.5, 80.25, 3725)] == ["512ms", "2.5s", "1m20.25s", "1h2m5s"]


def test_a_large_model_server_becomes_ready_late(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    _, core = eks
    probe = {"httpGet": {"path": "/health", "port": 8000}, "initialDelaySeconds": 60, "periodSeconds": 10}
    started = time.monotonic()
    core.create_namespaced_pod(NS, pod("small", "nginx:1.27", readinessProbe={"tcpSocket": {"port": 80}}))
    core.create_namespaced_pod(NS, pod("vllm", "vllm/vllm-openai:v0.8.5", readinessProbe=probe))
    small = wait_for(lambda: ready(core, "small"), what="small pod ready")
    big = wait_for(lambda: ready(core, "vllm"), what="vllm pod ready")
    wall = time.monotonic() - started
    small_s = condition_time(small, "Ready") - small.status.start_time.timestamp()
    big_s = condition_time(big, "Ready") - big.status.start_time.timestamp()
    assert small_s < 60  # a few seconds, plus scheduling slack on a busy test machine (1 ms wall = 0.3 s here)
    # 10 GB at 80 MB/s plus the 60 s initial delay, rounded up to the 10 s probe period: never earlier.
    assert 185 <= big_s <= 300
    assert wall >= 185 / SCALE  # simulated time, honouring the time scale
    pulled = dict(events_of(core, "vllm"))["Pulled"]
    assert pulled.startswith('Successfully pulled image "vllm/vllm-openai:v0.8.5" in 2m6s')
    assert pulled.endswith("Image size: 10000000000 bytes.")
    status = big.status.container_statuses[0]
    assert status.image == "docker.io/vllm/vllm-openai:v0.8.5"
    assert status.image_id.startswith("docker.io/vllm/vllm-openai@sha256:")
    assert status.container_id.startswith("containerd://")
    assert status.started and status.ready and status.state.running.started_at is not None
    assert big.status.pod_ip.startswith("192.168.") and big.status.host_ip != big.status.pod_ip
    types = [c.type for c in big.status.conditions]
    assert types == ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]


def test_second_pull_on_the_same_node_is_instant(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    cluster, core = eks
    node = cluster.store.list("nodes")[0][0]["metadata"]["name"]
    core.create_namespaced_pod(NS, pod("one", "redis:7.4", nodeName=node))
    wait_for(lambda: ready(core, "one"), what="first pod ready")
    core.create_namespaced_pod(NS, pod("two", "redis:7.4", nodeName=node))
    wait_for(lambda: ready(core, "two"), what="second pod ready")
    assert ("Pulled", 'Container image "redis:7.4" already present on machine') in events_of(core, "two")
    images = {n for img in core.read_node(node).status.images for n in img.names}
    assert "docker.io/library/redis:7.4" in images


def test_job_like_pod_logs_and_exit_code(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    _, core = eks
    core.create_namespaced_pod(
        NS, pod("task", "busybox:1.36", restartPolicy="Never", command=["sh", "-c", "echo hello $HOSTNAME; exit 3"])
    )
    p = wait_for(lambda: (x := core.read_namespaced_pod("task", NS)).status.phase == "Failed" and x, what="pod Failed")
    term = p.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (3, "Error")
    assert log_text(core, "task") == "hello task\n"
    assert {c.type: c.reason for c in p.status.conditions}["Ready"] == "PodCompleted"


def test_crash_loop_back_off(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    _, core = eks
    core.create_namespaced_pod(NS, pod("crash", "busybox:1.36"))  # a shell image with no command exits at once

    def looping() -> Any:
        s = core.read_namespaced_pod("crash", NS).status.container_statuses
        w = s and s[0].state.waiting
        return s if w and w.reason == "CrashLoopBackOff" and s[0].restart_count >= 1 else None

    status = wait_for(looping, what="CrashLoopBackOff")[0]
    assert status.last_state.terminated.reason == "Completed"
    assert status.state.waiting.message.startswith("back-off 10s restarting failed container=main pod=crash_default(")
    assert any(r == "BackOff" for r, _ in events_of(core, "crash"))


def test_init_containers_run_first(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    _, core = eks
    body = pod("with-init", "nginx:1.27")
    body["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1.36", "command": ["sleep", "20"]}]
    core.create_namespaced_pod(NS, body)

    def initializing() -> Any:
        p = core.read_namespaced_pod("with-init", NS)
        init = p.status.init_container_statuses
        return p if init and init[0].state.running else None

    p = wait_for(initializing, what="init container running")
    assert p.status.phase == "Pending"
    assert p.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert {c.type: c.message for c in p.status.conditions}[
        "Initialized"
    ] == "containers with incomplete status: [setup]"
    p = wait_for(lambda: ready(core, "with-init"), what="pod ready after init")
    assert p.status.init_container_statuses[0].state.terminated.reason == "Completed"
    assert p.status.phase == "Running"


class SlowModel:
    """A model server that serves only after loading for ``load_seconds`` (simulated)."""

    def __init__(self, clock: Any, load_seconds: float) -> None:
        self.clock, self.load_seconds, self.t0, self.said = clock, load_seconds, 0.0, False

    def start(self) -> int | None:
        self.t0 = self.clock.now()
        return None

    def ready(self) -> bool:
        return self.clock.now() - self.t0 >= self.load_seconds

    def stop(self) -> None:
        pass

    def log_lines(self) -> list[str]:
        if self.said:
            return []
        self.said = True
        return ["Loading model weights"]


class SlowModelRuntime:
    def matches(self, image: str) -> bool:
        return image.startswith("example.com/slow-model")

    def create(self, pod: dict[str, Any], container: dict[str, Any], node: Any, clock: Any) -> SlowModel:
        return SlowModel(clock, load_seconds=120)


@pytest.fixture
def slow_runtime() -> Iterator[None]:
    rt = SlowModelRuntime()
    register_runtime(rt)
    yield
    unregister_runtime(rt)


def test_liveness_kills_a_slow_loader_unless_a_startup_probe_guards_it(
    eks: tuple[EmbeddedCluster, client.CoreV1Api], slow_runtime: None
) -> None:
    _, core = eks
    health = {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10, "failureThreshold": 3}
    core.create_namespaced_pod(NS, pod("eager", "example.com/slow-model:1", livenessProbe=health))
    guarded = pod(
        "guarded",
        "example.com/slow-model:1",
        livenessProbe=health,
        readinessProbe=health,
        startupProbe={**health, "failureThreshold": 30},
    )
    core.create_namespaced_pod(NS, guarded)
    ok = wait_for(lambda: ready(core, "guarded"), what="guarded pod ready")
    assert ok.status.container_statuses[0].restart_count == 0
    eager = core.read_namespaced_pod("eager", NS).status.container_statuses[0]
    assert eager.restart_count >= 1
    assert eager.last_state.terminated.exit_code == 137
    messages = [m for r, m in events_of(core, "eager") if r in ("Unhealthy", "Killing")]
    assert 'Liveness probe failed: Get "http://' in messages[0]
    assert "Container main failed liveness probe, will be restarted" in messages
    assert log_text(core, "guarded") == "Loading model weights\n"


def test_unschedulable_pod_status_deserializes(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    cluster, core = eks
    core.create_namespaced_pod(NS, pod("waiting", "nginx", resources={"requests": {"cpu": "64"}}))
    p = wait_for(
        lambda: (x := core.read_namespaced_pod("waiting", NS)).status.conditions and x, what="PodScheduled condition"
    )
    cond = p.status.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("PodScheduled", "False", "Unschedulable")
    assert p.status.phase == "Pending" and p.status.qos_class == "Burstable"
    assert parse_rfc3339(cluster.store.get("pods", NS, "waiting")["status"]["conditions"][0]["lastTransitionTime"])


def test_kubelet_rejects_a_pod_assigned_to_a_full_node(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    cluster, core = eks
    node = cluster.store.list("nodes")[0][0]["metadata"]["name"]
    core.create_namespaced_pod(NS, pod("too-big", "nginx", nodeName=node, resources={"requests": {"cpu": "4"}}))
    p = wait_for(lambda: (x := core.read_namespaced_pod("too-big", NS)).status.phase == "Failed" and x, what="Failed")
    assert p.status.reason == "OutOfcpu"
    assert p.status.message == (
        "Pod was rejected: Node didn't have enough resource: cpu, requested: 4000, used: 0, capacity: 1930"
    )


def test_an_image_that_cannot_be_pulled_backs_off(eks: tuple[EmbeddedCluster, client.CoreV1Api]) -> None:
    from labkit.embedded.kube.kubelet import add_unpullable_image, clear_unpullable_images

    _, core = eks
    add_unpullable_image("example.com/typo")
    try:
        core.create_namespaced_pod(NS, pod("typo", "example.com/typo/app:1.0"))

        back_off = ("BackOff", 'Back-off pulling image "example.com/typo/app:1.0"')
        wait_for(lambda: back_off in events_of(core, "typo"), what="image pull back-off")
        assert ("Failed", "Error: ErrImagePull") in events_of(core, "typo")
        waiting = core.read_namespaced_pod("typo", NS).status.container_statuses[0].state.waiting
        assert waiting.reason in ("ErrImagePull", "ImagePullBackOff")
        assert "not found" in waiting.message or waiting.message == back_off[1]
        assert core.read_namespaced_pod("typo", NS).status.phase == "Pending"
    finally:
        clear_unpullable_images()
