"""The kubelet of every simulated node: pod lifecycle on simulated time.

For each pod bound to a node the kubelet creates the sandbox (pod IP from the node's pod CIDR,
or from the node's subnet as the VPC CNI does), runs init containers one after another, then
pulls and starts the containers in order. Pulls take ``image size / node bandwidth`` (see
:data:`IMAGE_SIZES` and :func:`labkit.embedded.kube.nodes.pull_bandwidth`), one at a time per
node, and a node keeps what it pulled. Containers are :class:`~labkit.embedded.kube.runtime.ContainerProcess`
objects from the runtime registry. Startup, readiness and liveness probes run on their
``initialDelaySeconds``/``periodSeconds``/thresholds against ``process.ready()``, so a large
model server becomes Ready late. Exits restart per the restart policy with CrashLoopBackOff;
pods that do not restart end ``Succeeded`` or ``Failed``. The kubelet writes complete pod
status (conditions, containerStatuses that deserialize into ``V1ContainerStatus``), the events
``kubectl describe`` shows, and the container logs (``store.append_log``).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import ipaddress
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import ApiError, Conflict, NotFound

from .controllers.common import obj_key, rfc3339, split_key, write_status
from .nodes import pull_bandwidth
from .runtime import image_repository, runtime_for
from .scheduler import NodeInfo, insufficient_resources, is_terminal, pod_requests, qos_class

log = logging.getLogger("labkit.embedded.kubelet")

COMPONENT = "kubelet"
ADDRESS_ANNOTATION = "embedded.labkit.dev/address-"

#: Simulated seconds to create a pod sandbox (network namespace, CNI).
SANDBOX_SECONDS = 1.0
#: Simulated seconds to create and start one container.
CREATE_SECONDS = 0.3
#: Fixed cost of a pull on top of the transfer (resolve, authenticate, unpack start).
PULL_OVERHEAD_SECONDS = 1.0
#: A pull of an image already on the node (``imagePullPolicy: Always``) only checks the manifest.
CACHED_PULL_SECONDS = 0.5
#: Wall seconds between looks at processes that cannot say when they will change.
POLL_WALL_SECONDS = 0.2
#: How long a failed pull shows ``ErrImagePull`` before the back-off shows ``ImagePullBackOff``.
ERR_IMAGE_PULL_SECONDS = 5.0
#: Crash-loop back-off: first delay, cap, and how long a container must run to reset it.
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_RESET = 10.0, 300.0, 600.0

GB = 1_000_000_000
MB = 1_000_000

#: Compressed sizes of images the labs use, by repository (registry, ``library/`` and tag dropped).
IMAGE_SIZES: dict[str, int] = {
    "vllm/vllm-openai": 10 * GB,
    "huggingface/text-generation-inference": 5 * GB,
    "nvidia/tritonserver": 15 * GB,
    "lmsysorg/sglang": 12 * GB,
    "nvidia/k8s-device-plugin": 150 * MB,
    "nvidia/gpu-operator": 300 * MB,
    "langgenius/dify-api": 1200 * MB,
    "langgenius/dify-web": 400 * MB,
    "langgenius/dify-sandbox": 300 * MB,
    "langgenius/dify-plugin-daemon": 1 * GB,
    "qdrant/qdrant": 60 * MB,
    "semitechnologies/weaviate": 60 * MB,
    "postgres": 150 * MB,
    "pgvector/pgvector": 160 * MB,
    "redis": 45 * MB,
    "nginx": 70 * MB,
    "busybox": 2 * MB,
    "alpine": 4 * MB,
    "curlimages/curl": 12 * MB,
    "python": 50 * MB,
    "ubuntu": 30 * MB,
    "perl": 330 * MB,
    "grafana/grafana": 150 * MB,
    "prom/prometheus": 110 * MB,
    "argoproj/argocd": 180 * MB,
    "pause": 300_000,
}
#: Size of an image the table does not know.
DEFAULT_IMAGE_SIZE = 150 * MB
#: Images that fail to pull (fault injection): predicates on the image reference.
_unpullable: list[Callable[[str], bool]] = []


def register_image_size(repository: str, size_bytes: int) -> None:
    """Tell the kubelet how big an image is (by repository, e.g. ``"my-org/model-server"``)."""
    IMAGE_SIZES[image_repository(repository)] = int(size_bytes)


def image_size(image: str) -> int:
    """Compressed size of ``image`` in bytes: the table entry, else :data:`DEFAULT_IMAGE_SIZE`."""
    repo = image_repository(image)
    if repo in IMAGE_SIZES:
        return IMAGE_SIZES[repo]
    short = repo.rsplit("/", 1)[-1]
    for known, size in IMAGE_SIZES.items():
        if known.rsplit("/", 1)[-1] == short and "/" in known:
            return size
    return DEFAULT_IMAGE_SIZE


def normalize_image(image: str) -> str:
    """The full reference containerd reports: ``nginx`` -> ``docker.io/library/nginx:latest``."""
    ref = image
    first = ref.split("/", 1)[0]
    if "/" not in ref or not ("." in first or ":" in first or first == "localhost"):
        ref = "docker.io/" + ("library/" + ref if "/" not in ref else ref)
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def image_id(image: str) -> str:
    """A stable ``repo@sha256:...`` image id."""
    ref = normalize_image(image)
    repo = ref.split("@", 1)[0]
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def go_duration(seconds: float) -> str:
    """A duration as Go prints it (``512ms``, ``2.5s``, ``1m20.5s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


def add_unpullable_image(predicate: Callable[[str], bool] | str) -> None:
    """Make images fail to pull (``ErrImagePull``/``ImagePullBackOff``): a predicate or a substring."""
    if isinstance(predicate, str):
        text = predicate
        _unpullable.append(lambda image: text in image)
    else:
        _unpullable.append(predicate)


def clear_unpullable_images() -> None:
    """Undo :func:`add_unpullable_image`."""
    _unpullable.clear()


def _invalid_image_reason(image: str) -> str | None:
    if not image or image != image.strip() or " " in image:
        return f'couldn\'t parse image name "{image}": invalid reference format'
    repo = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image.split("@", 1)[0]
    if repo != repo.lower():
        return f'couldn\'t parse image name "{image}": invalid reference format: repository name must be lowercase'
    return None


# --------------------------------------------------------------------------- per-pod state


@dataclass
class _Probe:
    kind: str  # "Startup" | "Readiness" | "Liveness"
    spec: dict[str, Any]
    next_at: float
    successes: int = 0
    failures: int = 0

    @property
    def period(self) -> float:
        return float(max(1, int(self.spec.get("periodSeconds") or 10)))

    @property
    def initial_delay(self) -> float:
        return float(self.spec.get("initialDelaySeconds") or 0)

    @property
    def failure_threshold(self) -> int:
        return max(1, int(self.spec.get("failureThreshold") or 3))

    @property
    def success_threshold(self) -> int:
        return max(1, int(self.spec.get("successThreshold") or 1))


@dataclass
class _Container:
    spec: dict[str, Any]
    init: bool = False
    phase: str = "waiting"  # waiting | pulling | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    pull_started: float = 0.0
    pull_seconds: float = 0.0
    pull_done_at: float | None = None
    create_at: float = 0.0
    pull_fails: bool = False
    pull_failures: int = 0
    failed_at: float | None = None
    process: Any = None
    container_id: str = ""
    started_at: float | None = None
    ever_started: bool = False
    started: bool = False
    ready: bool = False
    restart_count: int = 0
    crashes: int = 0
    last_state: dict[str, Any] = field(default_factory=dict)
    terminated: dict[str, Any] | None = None
    retry_at: float | None = None
    probes: list[_Probe] = field(default_factory=list)
    kill: tuple[int, str] | None = None
    last_event: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    @property
    def sidecar(self) -> bool:
        return self.init and self.spec.get("restartPolicy") == "Always"

    @property
    def done_ok(self) -> bool:
        return self.phase == "terminated" and self.terminated is not None and self.terminated["exitCode"] == 0


@dataclass
class _PodRun:
    key: str
    uid: str
    node: str
    created_at: float
    ip: str
    host_ip: str
    host_network: bool
    restart_policy: str
    init: list[_Container]
    main: list[_Container]
    deleting_since: float | None = None
    condition_times: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def sandbox_at(self) -> float:
        return self.created_at + SANDBOX_SECONDS

    def containers(self) -> list[_Container]:
        return [*self.init, *self.main]


@dataclass
class _Step:
    """One sync of one pod: what the state machine reads and the wake-up times it collects."""

    run: _PodRun
    pod: dict[str, Any]
    node: dict[str, Any]
    now: float
    wakes: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- the kubelet


class Kubelet:
    """The kubelets of all simulated nodes, driven by store events on one worker thread.

    Args:
        store: the embedded store.
        clock: the simulated clock.
        rng: random source for container ids (seed it for reproducible runs).
    """

    def __init__(self, store: Any, clock: Any, *, rng: random.Random | None = None) -> None:
        from .controllers.workqueue import Worker

        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self._runs: dict[str, _PodRun] = {}
        self._lock = threading.RLock()
        self._images: dict[str, set[str]] = {}
        self._pull_free_at: dict[str, float] = {}
        self._ips_used: set[str] = set()
        self._worker = Worker("labkit-kubelet", clock, self._sync, on_event=self._keys_for)
        self._unsubscribe: Callable[[], None] | None = None

    # ---- lifecycle

    def start(self) -> None:
        """Subscribe to the store and take over every pod already bound to a node."""
        self._unsubscribe = self.store.subscribe(self._worker.push_event)
        self._worker.start()
        pods, _ = self.store.list("pods")
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName"):
                self._worker.add(obj_key(pod))

    def stop(self) -> None:
        """Stop the worker and every container process."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._worker.stop()
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            self._stop_processes(run)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no pod sync is queued or running (tests)."""
        return self._worker.wait_idle(timeout)

    # ---- faults and queries

    def kill_container(
        self, namespace: str, name: str, container: str | None = None, *, exit_code: int = 137, reason: str = "Error"
    ) -> None:
        """Kill a running container (``OOMKilled`` or a crash): it restarts per the pod's restart policy.

        Raises:
            NotFound: no such pod runs on a simulated node, or it has no such running container.
        """
        key = f"{namespace}/{name}"
        with self._lock:
            run = self._runs.get(key)
            targets = [] if run is None else [c for c in run.main if c.phase == "running"]
            if container is not None:
                targets = [c for c in targets if c.name == container]
            if not targets:
                raise NotFound(
                    f"pod {key} has no running container{' ' + repr(container) if container else ''} to kill",
                    "wait until the pod is Running (kubectl get pod -w), then try again",
                    status=404,
                    reason="NotFound",
                )
            targets[0].kill = (exit_code, reason)
        self._worker.add(key)

    def preload_images(self, node: str, images: Iterable[str]) -> None:
        """Mark images as already on a node (a kind node image ships its system images)."""
        with self._lock:
            self._images.setdefault(node, set()).update(normalize_image(i) for i in images)

    def images_on(self, node: str) -> set[str]:
        """Image references the node has pulled."""
        with self._lock:
            return set(self._images.get(node, ()))

    # ---- events in

    def _keys_for(self, event: Any) -> Iterable[str]:
        if event.key == "pods":
            key = obj_key(event.obj)
            if (event.obj.get("spec") or {}).get("nodeName") or key in self._runs:
                return [key]
            return []
        if event.key == "nodes" and event.type == "DELETED":
            name = event.obj["metadata"]["name"]
            with self._lock:
                return [k for k, r in self._runs.items() if r.node == name]
        return []

    # ---- one pod

    def _sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        pod = self.store.try_get("pods", ns, name)
        with self._lock:
            run = self._runs.get(key)
        uid = (pod or {}).get("metadata", {}).get("uid")
        if run is not None and (pod is None or run.uid != uid):
            self._forget(run)
            run = None
        if pod is None:
            return None
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return None
        node = self.store.try_get("nodes", None, node_name)
        if node is None:
            if run is not None:
                self._forget(run)
            return None
        now = self.clock.now()
        if run is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return None
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                self._finish_deletion(pod)
                return None
            if self._reject_if_it_does_not_fit(pod, node):
                return None
            run = self._new_run(pod, node, now)
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return self._terminate_pod(run, pod, now)
        step = _Step(run, pod, node, now)
        self._advance(step)
        self._drain_logs(run, pod)
        self._write_status(run, pod, now)
        if _phase(run, all(c.done_ok or (c.sidecar and c.started) for c in run.init)) in ("Succeeded", "Failed"):
            self._stop_processes(run)
            self._release_ip(run)
            return None
        if not step.wakes:
            return None
        return max(0.0, min(step.wakes) - now) + 1e-6

    def _reject_if_it_does_not_fit(self, pod: dict[str, Any], node: dict[str, Any]) -> bool:
        """Kubelet admission of a pod assigned without the scheduler: ``OutOfcpu`` and friends.

        Pods the scheduler bound (``PodScheduled`` set) were checked already and are admitted.
        """
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "PodScheduled" for c in conditions):
            return False
        others, _ = self.store.list("pods", field_selector=f"spec.nodeName={node['metadata']['name']}")
        info = NodeInfo(node)
        for other in others:
            if other["metadata"].get("uid") != pod["metadata"].get("uid") and not is_terminal(other):
                info.add(other)
        request = pod_requests(pod)
        missing = [r for r, _ in insufficient_resources(request, info) if r.startswith("Insufficient ")]
        if not missing:
            return False
        resource = missing[0].removeprefix("Insufficient ")
        used = info.requested.get(resource, 0)
        capacity = info.allocatable.get(resource, 0)
        message = (
            f"Pod was rejected: Node didn't have enough resource: {resource}, requested: {request.get(resource, 0)}, "
            f"used: {used}, capacity: {capacity}"
        )

        def mutate(obj: dict[str, Any]) -> bool:
            status = obj.setdefault("status", {})
            if status.get("phase") == "Failed":
                return False
            status.update({"phase": "Failed", "reason": f"OutOf{resource}", "message": message})
            status["startTime"] = status.get("startTime") or rfc3339(self.clock.now())
            return True

        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            write_status(self.store, "pods", meta["namespace"], meta["name"], mutate)
        with contextlib.suppress(ApiError):
            self.store.record_event(
                pod, f"OutOf{resource}", f"Node didn't have enough resource: {resource}, requested: "
                f"{request.get(resource, 0)}, used: {used}, capacity: {capacity}", type="Warning",
                component=COMPONENT, host=node["metadata"]["name"],
            )  # fmt: skip
        return True

    def _new_run(self, pod: dict[str, Any], node: dict[str, Any], now: float) -> _PodRun:
        spec = pod.get("spec") or {}
        host_ip = _internal_ip(node)
        host_network = bool(spec.get("hostNetwork"))
        ip = host_ip if host_network else self._allocate_ip(node)
        run = _PodRun(
            key=obj_key(pod),
            uid=pod["metadata"].get("uid", ""),
            node=node["metadata"]["name"],
            created_at=now,
            ip=ip,
            host_ip=host_ip,
            host_network=host_network,
            restart_policy=spec.get("restartPolicy") or "Always",
            init=[_Container(dict(c), init=True) for c in spec.get("initContainers") or []],
            main=[_Container(dict(c)) for c in spec.get("containers") or []],
        )
        for c in run.main:
            if run.init:
                c.reason = "PodInitializing"
        for c in run.init:
            c.reason = "PodInitializing"
        with self._lock:
            self._runs[run.key] = run
        return run

    def _forget(self, run: _PodRun) -> None:
        self._stop_processes(run)
        with self._lock:
            if self._runs.get(run.key) is run:
                del self._runs[run.key]
        self._release_ip(run)

    def _release_ip(self, run: _PodRun) -> None:
        """Give the pod's IP back (the sandbox is gone); the status keeps showing it, as on a real node."""
        if not run.host_network:
            with self._lock:
                self._ips_used.discard(run.ip)

    def _stop_processes(self, run: _PodRun) -> None:
        for c in run.containers():
            if c.process is not None:
                try:
                    c.process.stop()
                except Exception:
                    log.exception("stopping container %s of %s failed", c.name, run.key)
                c.process = None

    # ---- state machine

    def _advance(self, step: _Step) -> None:
        run = step.run
        if step.now < run.sandbox_at:
            step.wakes.append(run.sandbox_at)
            return
        for c in run.init:
            if c.done_ok:
                continue
            self._drive(c, step)
            if c.sidecar and c.started:
                continue
            if not c.done_ok:
                return
        previous_started = True
        for c in run.main:
            if not previous_started:
                break
            self._drive(c, step)
            previous_started = c.ever_started or c.phase == "terminated"

    def _drive(self, c: _Container, step: _Step) -> None:
        pod, now, wakes = step.pod, step.now, step.wakes
        if c.phase == "waiting":
            if c.retry_at is not None and now < c.retry_at:
                if c.reason == "ErrImagePull" and c.failed_at is not None:
                    if now >= c.failed_at + ERR_IMAGE_PULL_SECONDS:
                        c.reason = "ImagePullBackOff"
                        c.message = f'Back-off pulling image "{c.image}"'
                        self._event(pod, c, "BackOff", c.message, kind="Normal", now=now)
                    else:
                        wakes.append(c.failed_at + ERR_IMAGE_PULL_SECONDS)
                wakes.append(c.retry_at)
                return
            c.retry_at = None
            self._begin_pull(c, step)
        if c.phase == "pulling":
            if c.pull_done_at is not None and now < c.pull_done_at:
                wakes.append(c.pull_done_at)
                return
            self._finish_pull(c, step)
        if c.phase == "creating":
            if now < c.create_at:
                wakes.append(c.create_at)
                return
            self._create(c, step)
        if c.phase == "running":
            self._check_running(c, step)
        if c.phase == "waiting" and c.retry_at is not None:
            wakes.append(c.retry_at)

    def _begin_pull(self, c: _Container, step: _Step) -> None:
        run, pod, node, now, wakes = step.run, step.pod, step.node, step.now, step.wakes
        invalid = _invalid_image_reason(c.image)
        if invalid:
            c.reason, c.message = "InvalidImageName", f'Failed to apply default image tag "{c.image}": {invalid}'
            self._event(pod, c, "InspectFailed", c.message, kind="Warning", now=now)
            return
        policy = c.spec.get("imagePullPolicy") or "IfNotPresent"
        with self._lock:
            cached = normalize_image(c.image) in self._images.get(run.node, set())
        if cached and policy in ("IfNotPresent", "Never"):
            self._event(pod, c, "Pulled", f'Container image "{c.image}" already present on machine', now=now)
            c.phase, c.create_at = "creating", now + CREATE_SECONDS
            return
        if policy == "Never":
            c.reason = "ErrImageNeverPull"
            c.message = f'Container image "{c.image}" is not present with pull policy of Never'
            self._event(pod, c, "ErrImageNeverPull", c.message, kind="Warning", now=now)
            c.retry_at = now + BACKOFF_FIRST
            wakes.append(c.retry_at)
            return
        fails = any(p(c.image) for p in list(_unpullable))
        duration = (
            2.0
            if fails
            else CACHED_PULL_SECONDS
            if cached
            else (PULL_OVERHEAD_SECONDS + image_size(c.image) / pull_bandwidth(node))
        )
        with self._lock:
            start = max(now, self._pull_free_at.get(run.node, now))
            self._pull_free_at[run.node] = start + duration
        c.phase, c.pull_started, c.pull_done_at, c.pull_fails = "pulling", now, start + duration, fails
        c.pull_seconds = duration
        if not c.pull_failures:  # a retry keeps showing the back-off, as a real kubelet does
            c.reason = "ContainerCreating" if not c.init else "PodInitializing"
            c.message = ""
        self._event(pod, c, "Pulling", f'Pulling image "{c.image}"', now=now)
        wakes.append(c.pull_done_at)

    def _finish_pull(self, c: _Container, step: _Step) -> None:
        run, pod, now = step.run, step.pod, step.now
        done = c.pull_done_at or now
        if c.pull_fails:
            ref = normalize_image(c.image)
            c.phase, c.reason, c.failed_at = "waiting", "ErrImagePull", done
            c.message = (
                f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found'
            )
            self._event(pod, c, "Failed", f'Failed to pull image "{c.image}": {c.message}', kind="Warning", now=now)
            self._event(pod, c, "Failed", "Error: ErrImagePull", kind="Warning", now=now)
            c.pull_failures += 1
            c.retry_at = done + min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (c.pull_failures - 1))
            return
        size = image_size(c.image)
        self._event(
            pod,
            c,
            "Pulled",
            f'Successfully pulled image "{c.image}" in {go_duration(c.pull_seconds)} '
            f"({go_duration(done - c.pull_started)} including waiting). Image size: {size} bytes.",
            now=now,
        )
        self._remember_image(run.node, c.image, size)
        c.phase, c.create_at, c.pull_failures = "creating", now + CREATE_SECONDS, 0

    def _create(self, c: _Container, step: _Step) -> None:
        pod, node, now = step.pod, step.node, step.now
        try:
            process = runtime_for(c.image).create(pod, c.spec, node, self.clock)
            port = process.start()
        except Exception as exc:
            c.phase, c.reason, c.message = "waiting", "CreateContainerError", str(exc)
            self._event(pod, c, "Failed", f"Error: {exc}", kind="Warning", now=now)
            c.retry_at = now + BACKOFF_FIRST
            return
        if c.ever_started:
            c.restart_count += 1
        c.process = process
        c.container_id = "containerd://" + "".join(self.rng.choice("0123456789abcdef") for _ in range(64))
        c.phase, c.reason, c.message = "running", "", ""
        c.started_at, c.ever_started, c.terminated = now, True, None
        startup = c.spec.get("startupProbe")
        c.started = not startup
        c.ready = False
        c.probes = [
            _Probe(kind, dict(c.spec[field_name]), c.started_at)
            for kind, field_name in _PROBE_FIELDS
            if isinstance(c.spec.get(field_name), dict)
        ]
        if not any(p.kind == "Readiness" for p in c.probes):
            c.ready = c.started
        self._event(pod, c, "Created", f"Created container: {c.name}", now=now)
        self._event(pod, c, "Started", f"Started container {c.name}", now=now)
        if port:
            self._annotate_address(pod, c.name, port)

    def _check_running(self, c: _Container, step: _Step) -> None:
        now, wakes = step.now, step.wakes
        if c.kill is not None:
            code, reason = c.kill
            c.kill = None
            self._exited(c, step, code, reason)
            wakes.append(c.retry_at or now)
            return
        exit_code = getattr(c.process, "exit_code", None)
        code = exit_code() if callable(exit_code) else None
        if code is not None:
            self._exited(c, step, int(code), "Completed" if code == 0 else "Error")
            if c.phase == "waiting":
                wakes.append(c.retry_at or now)
            return
        self._run_probes(c, step)
        if c.phase != "running":
            if c.phase == "waiting":
                wakes.append(c.retry_at or now)
            return
        change = getattr(c.process, "next_change", None)
        predictable = callable(change)
        ok = bool(c.process.ready()) if predictable and c.process is not None else None
        for p in c.probes:
            # A process that says when it changes answers probes the same until then: skip no-op probe rounds.
            if not predictable or _probe_can_change(c, p, bool(ok)):
                wakes.append(p.next_at)
        if predictable:
            at = change()
            if at is not None:
                wakes.append(at)
        else:
            wakes.append(now + POLL_WALL_SECONDS * self.clock.scale)

    def _run_probes(self, c: _Container, step: _Step) -> None:
        run, pod, now = step.run, step.pod, step.now
        started_at = c.started_at or now
        for probe in c.probes:
            rounds = 0
            while probe.next_at <= now and c.phase == "running":
                t = probe.next_at
                probe.next_at += probe.period
                rounds += 1
                if rounds > probe.failure_threshold + probe.success_threshold + 2:
                    behind = int((now - probe.next_at) // probe.period) + 1
                    probe.next_at += behind * probe.period if behind > 0 else 0
                if probe.kind == "Startup" and c.started:
                    continue
                if probe.kind != "Startup" and not c.started:
                    continue
                if t - started_at < probe.initial_delay:
                    continue
                ok = bool(c.process.ready()) if c.process is not None else False
                if ok:
                    probe.successes, probe.failures = probe.successes + 1, 0
                else:
                    probe.failures, probe.successes = probe.failures + 1, 0
                if probe.kind == "Startup":
                    if ok:
                        c.started = True
                        if not any(p.kind == "Readiness" for p in c.probes):
                            c.ready = True
                    else:
                        self._unhealthy(pod, c, probe, run, now)
                        if probe.failures >= probe.failure_threshold:
                            self._event(
                                pod,
                                c,
                                "Killing",
                                f"Container {c.name} failed startup probe, will be restarted",
                                now=now,
                            )
                            self._exited(c, step, 137, "Error")
                elif probe.kind == "Liveness":
                    if not ok:
                        self._unhealthy(pod, c, probe, run, now)
                        if probe.failures >= probe.failure_threshold:
                            self._event(
                                pod,
                                c,
                                "Killing",
                                f"Container {c.name} failed liveness probe, will be restarted",
                                now=now,
                            )
                            self._exited(c, step, 137, "Error")
                elif ok:
                    if probe.successes >= probe.success_threshold:
                        c.ready = True
                else:
                    self._unhealthy(pod, c, probe, run, now)
                    if probe.failures >= probe.failure_threshold:
                        c.ready = False

    def _unhealthy(self, pod: dict[str, Any], c: _Container, probe: _Probe, run: _PodRun, now: float) -> None:
        spec = probe.spec
        if isinstance(spec.get("httpGet"), dict):
            http = spec["httpGet"]
            port = _port_number(c.spec, http.get("port"))
            scheme = str(http.get("scheme") or "HTTP").lower()
            detail = (
                f'Get "{scheme}://{run.ip}:{port}{http.get("path") or "/"}": dial tcp {run.ip}:{port}: '
                "connect: connection refused"
            )
        elif isinstance(spec.get("tcpSocket"), dict):
            port = _port_number(c.spec, spec["tcpSocket"].get("port"))
            detail = f"dial tcp {run.ip}:{port}: connect: connection refused"
        elif isinstance(spec.get("grpc"), dict):
            detail = f'timeout: failed to connect service "{run.ip}:{spec["grpc"].get("port")}" within 1s'
        else:
            detail = ""
        self._event(pod, c, "Unhealthy", f"{probe.kind} probe failed: {detail}".rstrip(), kind="Warning", now=now)

    def _exited(self, c: _Container, step: _Step, code: int, reason: str) -> None:
        run, pod, now = step.run, step.pod, step.now
        self._drain_container_logs(run, pod, c)
        if c.process is not None:
            try:
                c.process.stop()
            except Exception:
                log.exception("stopping container %s of %s failed", c.name, run.key)
            c.process = None
        started = c.started_at or now
        c.terminated = {
            "exitCode": code,
            "reason": reason,
            "startedAt": rfc3339(started),
            "finishedAt": rfc3339(now),
            "containerID": c.container_id,
        }
        c.phase, c.ready, c.started = "terminated", False, False
        policy = "Always" if c.sidecar else run.restart_policy
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if c.init and not c.sidecar:  # init containers run to completion; only failures are retried
            restart = code != 0 and policy != "Never"
        if not restart:
            return
        if now - started > BACKOFF_RESET:
            c.crashes = 0
        delay = 0.0 if c.crashes == 0 else min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (c.crashes - 1))
        c.crashes += 1
        c.last_state = {"terminated": dict(c.terminated)}
        c.phase = "waiting"
        c.retry_at = now + delay
        if delay > 0:
            meta = pod["metadata"]
            c.reason = "CrashLoopBackOff"
            c.message = (
                f"back-off {int(delay)}s restarting failed container={c.name} "
                f"pod={meta['name']}_{meta['namespace']}({meta.get('uid', '')})"
            )
            self._event(
                pod,
                c,
                "BackOff",
                f"Back-off restarting failed container {c.name} in pod "
                f"{meta['name']}_{meta['namespace']}({meta.get('uid', '')})",
                kind="Warning",
                now=now,
            )
        else:
            c.reason, c.message = "ContainerCreating", ""

    # ---- deletion

    def _terminate_pod(self, run: _PodRun, pod: dict[str, Any], now: float) -> float | None:
        if run.deleting_since is None:
            run.deleting_since = now
            for c in run.containers():
                if c.phase == "running":
                    self._event(pod, c, "Killing", f"Stopping container {c.name}", now=now)
            grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
            grace = 30.0 if grace is None else float(grace)
            return min(grace, 1.0) + 1e-6
        for c in run.containers():
            if c.phase == "running":
                self._exited_final(c, now)
        self._write_status(run, pod, now)
        self._forget(run)
        self._finish_deletion(pod)
        return None

    def _exited_final(self, c: _Container, now: float) -> None:
        if c.process is not None:
            c.process.stop()
            c.process = None
        c.terminated = {
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": rfc3339(c.started_at or now),
            "finishedAt": rfc3339(now),
            "containerID": c.container_id,
        }
        c.phase, c.ready, c.started = "terminated", False, False

    def _finish_deletion(self, pod: dict[str, Any]) -> None:
        """Remove a terminating pod once its containers stopped (force, when the store supports grace periods)."""
        meta = pod["metadata"]
        force = "grace_period_seconds" in inspect.signature(self.store.delete).parameters
        with contextlib.suppress(NotFound, Conflict):
            if force:
                self.store.delete("pods", meta["namespace"], meta["name"], grace_period_seconds=0)
            else:
                self.store.delete("pods", meta["namespace"], meta["name"])

    # ---- outputs

    def _drain_logs(self, run: _PodRun, pod: dict[str, Any]) -> None:
        for c in run.containers():
            self._drain_container_logs(run, pod, c)

    def _drain_container_logs(self, run: _PodRun, pod: dict[str, Any], c: _Container) -> None:
        if c.process is None:
            return
        meta = pod["metadata"]
        try:
            lines = c.process.log_lines()
        except Exception:
            log.exception("reading logs of %s/%s failed", run.key, c.name)
            return
        for line in lines:
            self.store.append_log(meta["namespace"], meta["name"], c.name, line)

    def _event(
        self, pod: dict[str, Any], c: _Container, reason: str, message: str, *, kind: str = "Normal", now: float
    ) -> None:
        involved = {**pod, "fieldPath": f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"}
        host = (pod.get("spec") or {}).get("nodeName")
        try:
            self.store.record_event(involved, reason, message, type=kind, component=COMPONENT, host=host)
        except ApiError:
            log.debug("event %s for %s dropped", reason, obj_key(pod))

    def _annotate_address(self, pod: dict[str, Any], container: str, port: int) -> None:
        meta = pod["metadata"]
        body = {"metadata": {"annotations": {ADDRESS_ANNOTATION + container: f"127.0.0.1:{port}"}}}
        with contextlib.suppress(NotFound, Conflict):
            self.store.patch("pods", meta["namespace"], meta["name"], body, "merge")

    def _remember_image(self, node: str, image: str, size: int) -> None:
        ref = normalize_image(image)
        with self._lock:
            held = self._images.setdefault(node, set())
            if ref in held:
                return
            held.add(ref)

        def mutate(obj: dict[str, Any]) -> bool:
            images = list((obj.get("status") or {}).get("images") or [])
            if any(ref in (i.get("names") or []) for i in images):
                return False
            images.insert(0, {"names": [image_id(image), ref], "sizeBytes": size})
            obj.setdefault("status", {})["images"] = images
            return True

        try:
            write_status(self.store, "nodes", None, node, mutate)
        except ApiError:
            log.debug("could not record image %s on node %s", ref, node)

    def _allocate_ip(self, node: dict[str, Any]) -> str:
        cidr = (node.get("spec") or {}).get("podCIDR")
        host_ip = _internal_ip(node)
        net = ipaddress.ip_network(cidr if cidr else f"{host_ip}/24", strict=False)
        with self._lock:
            for addr in net.hosts():
                text = str(addr)
                if text == host_ip or int(addr) - int(net.network_address) < 2 or text in self._ips_used:
                    continue
                self._ips_used.add(text)
                return text
        raise ApiError(
            f"node {node['metadata']['name']} has no free pod IP in {net}",
            "delete pods on that node or add nodes",
        )

    # ---- status

    def _write_status(self, run: _PodRun, pod: dict[str, Any], now: float) -> None:
        desired = self._status(run, pod, now)
        meta = pod["metadata"]

        def mutate(obj: dict[str, Any]) -> bool:
            if obj["metadata"].get("uid") != run.uid:
                return False
            status = obj.setdefault("status", {})
            before = {k: status.get(k) for k in desired}
            kept = [c for c in status.get("conditions") or [] if c.get("type") not in _KUBELET_CONDITIONS]
            desired_conditions = [*desired["conditions"], *kept]
            new = {**desired, "conditions": desired_conditions}
            if before == {k: new.get(k) for k in desired}:
                return False
            status.update(new)
            return True

        try:
            write_status(self.store, "pods", meta["namespace"], meta["name"], mutate)
        except ApiError as exc:
            log.debug("status of %s not written: %s", run.key, exc)

    def _condition(self, run: _PodRun, kind: str, status: str, now: float, **extra: str) -> dict[str, Any]:
        old = run.condition_times.get(kind)
        if old is None or old[0] != status:
            run.condition_times[kind] = (status, now)
        cond: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(run.condition_times[kind][1]),
        }
        cond.update({k: v for k, v in extra.items() if v})
        return cond

    def _status(self, run: _PodRun, pod: dict[str, Any], now: float) -> dict[str, Any]:
        sandbox = now >= run.sandbox_at
        init_done = all(c.done_ok or (c.sidecar and c.started) for c in run.init)
        phase = _phase(run, init_done)
        completed = phase in ("Succeeded", "Failed")
        unready = [c.name for c in run.main if not c.ready]
        pending_init = [c.name for c in run.init if not (c.done_ok or (c.sidecar and c.started))]
        gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
        current = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        gates_ok = all((current.get(g) or {}).get("status") == "True" for g in gates)
        containers_ready = not unready and not completed
        scheduled = current.get("PodScheduled")
        conditions = [
            self._condition(run, "PodReadyToStartContainers", "True" if sandbox and not completed else "False", now),
            self._condition(
                run,
                "Initialized",
                "True" if init_done else "False",
                now,
                reason="" if init_done else "ContainersNotInitialized",
                message="" if init_done else f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
        ]
        if completed:
            ready_extra = {"reason": "PodCompleted"}
        elif not containers_ready:
            message = f"containers with unready status: [{' '.join(unready)}]"
            ready_extra = {"reason": "ContainersNotReady", "message": message}
        else:
            ready_extra = {}
        pod_ready = containers_ready and gates_ok
        pod_ready_extra = dict(ready_extra)
        if containers_ready and not gates_ok:
            missing = [g for g in gates if (current.get(g) or {}).get("status") != "True"]
            pod_ready_extra = {
                "reason": "ReadinessGatesNotReady",
                "message": f'corresponding condition of pod readiness gate "{missing[0]}" does not exist.',
            }
        conditions.append(self._condition(run, "Ready", "True" if pod_ready else "False", now, **pod_ready_extra))
        conditions.append(
            self._condition(run, "ContainersReady", "True" if containers_ready else "False", now, **ready_extra)
        )
        if scheduled is not None and scheduled.get("status") == "True":
            conditions.append(dict(scheduled))
        else:
            conditions.append(self._condition(run, "PodScheduled", "True", now))
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": run.host_ip,
            "hostIPs": [{"ip": run.host_ip}],
            "startTime": rfc3339(run.created_at),
            "qosClass": (pod.get("status") or {}).get("qosClass") or qos_class(pod),
            "containerStatuses": [self._container_status(c) for c in run.main],
        }
        if sandbox:
            status["podIP"] = run.ip
            status["podIPs"] = [{"ip": run.ip}]
        if run.init:
            status["initContainerStatuses"] = [self._container_status(c) for c in run.init]
        return status

    def _container_status(self, c: _Container) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": c.name,
            "image": normalize_image(c.image) if c.ever_started else c.image,
            "imageID": image_id(c.image) if c.ever_started else "",
            "ready": bool(c.ready and c.phase == "running"),
            "restartCount": c.restart_count,
            "started": bool(c.phase == "running" and c.started),
            "lastState": dict(c.last_state),
        }
        if c.container_id:
            out["containerID"] = c.container_id
        if c.phase == "running":
            out["state"] = {"running": {"startedAt": rfc3339(c.started_at or 0)}}
        elif c.phase == "terminated" and c.terminated is not None:
            out["state"] = {"terminated": dict(c.terminated)}
        else:
            waiting: dict[str, Any] = {"reason": c.reason or "ContainerCreating"}
            if c.message:
                waiting["message"] = c.message
            out["state"] = {"waiting": waiting}
        return out


_PROBE_FIELDS = (("Startup", "startupProbe"), ("Readiness", "readinessProbe"), ("Liveness", "livenessProbe"))
_KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def _phase(run: _PodRun, init_done: bool) -> str:
    if not init_done:
        failed = any(
            c.phase == "terminated" and c.terminated and c.terminated["exitCode"] != 0
            for c in run.init
            if not c.sidecar
        )
        return "Failed" if failed and run.restart_policy == "Never" else "Pending"
    if run.main and all(c.phase == "terminated" for c in run.main):
        return "Succeeded" if all(c.done_ok for c in run.main) else "Failed"
    if any(c.phase == "running" or c.ever_started for c in run.main):
        return "Running"
    return "Pending"


def _probe_can_change(c: _Container, probe: _Probe, ok: bool) -> bool:
    """Whether the next round of ``probe`` can change the container's state, given the answer ``ok``."""
    if probe.kind == "Startup":
        return not c.started
    if not c.started:
        return False
    if probe.kind == "Readiness":
        return ok != c.ready
    return not ok


def _internal_ip(node: dict[str, Any]) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return str(a.get("address"))
    return "10.0.0.1"


def _port_number(container: dict[str, Any], port: Any) -> Any:
    if isinstance(port, str) and not port.isdigit():
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return p.get("containerPort")
    return port
