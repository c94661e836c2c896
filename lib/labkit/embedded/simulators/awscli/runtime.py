"""The container runtime behind AWS CLI pods (``public.ecr.aws/aws-cli/aws-cli``, ``amazon/aws-cli``).

A container of that image runs its ``command``/``args`` through the simulated CLI
(:mod:`.cli`): it prints to the pod log and exits with the CLI's return code, so a Pod
or Job completes or fails as it would. Its credentials come the way EKS Pod Identity
gives them (:mod:`.agent`): the runtime finds the EKS cluster the pod runs in, projects
the service account token, and asks the embedded AWS's ``eks-auth``
``AssumeRoleForPodIdentity`` for the role's credentials.

The embedded platform tells the runtime where its AWS and its clusters are with
:func:`bind` when it starts (and :func:`unbind` when it stops). A pod no bound
platform knows (a cluster started without the embedded AWS) has no Pod Identity.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.embedded.simulators.awscli.agent import (
    BotocoreBackend,
    ClientFactory,
    Credentials,
    PodIdentity,
    PodIdentityAgent,
    projected_token,
)
from labkit.embedded.simulators.awscli.cli import EXIT_OTHER, Printed, cli_version, run_container

#: Repositories (registry and tag dropped) of the AWS CLI images.
IMAGES = ("aws-cli/aws-cli", "amazon/aws-cli")
#: Compressed size of the image, for the kubelet's pull time.
IMAGE_BYTES = 135_000_000
#: Wall seconds between the kubelet's looks while the CLI's calls are in flight.
PENDING_POLL_WALL_S = 0.05


def is_aws_cli_image(image: str) -> bool:
    """Whether ``image`` is an AWS CLI image (any registry, any tag)."""
    from labkit.embedded.kube.runtime import image_repository

    return image_repository(image) in IMAGES


@dataclass(frozen=True)
class Place:
    """Where a pod runs, as far as AWS is concerned: the EKS cluster, its API objects and the AWS endpoint."""

    cluster: str
    region: str
    store: Any
    aws_url: str | None
    node_credentials: Credentials


@dataclass
class _Binding:
    aws: Any
    clusters: Mapping[str, Any]


_bindings: list[_Binding] = []
_bindings_lock = threading.Lock()
_factories: dict[str | None, ClientFactory] = {}


def clients_for(aws_url: str | None) -> ClientFactory:
    """The shared client factory of an AWS endpoint (service models load once per endpoint)."""
    with _bindings_lock:
        if aws_url not in _factories:
            _factories[aws_url] = ClientFactory(aws_url)
        return _factories[aws_url]


def bind(aws: Any, clusters: Mapping[str, Any]) -> Callable[[], None]:
    """Let AWS CLI pods of ``clusters`` (EKS name -> embedded cluster, a live mapping) reach ``aws``.

    Args:
        aws: the platform's :class:`~labkit.embedded.aws.EmbeddedAws` (its ``url``, ``region``, ``env()``).
        clusters: the platform's clusters by EKS name; read at each pod start, so clusters created
            later are found.

    Returns:
        A function that undoes the binding (call it when the platform stops).
    """
    binding = _Binding(aws, clusters)
    with _bindings_lock:
        _bindings.append(binding)
    return lambda: unbind(binding)


def unbind(binding: Any) -> None:
    with _bindings_lock:
        _bindings[:] = [b for b in _bindings if b is not binding]
        _factories.pop(getattr(binding.aws, "url", None), None)


def locate(pod: dict[str, Any]) -> Place | None:
    """The EKS cluster of a bound platform whose API server holds ``pod`` (by uid), or ``None``."""
    uid = (pod.get("metadata") or {}).get("uid")
    if not uid:
        return None
    with _bindings_lock:
        bindings = list(_bindings)
    for binding in bindings:
        for name, cluster in list(binding.clusters.items()):
            store = getattr(cluster, "store", None)
            if store is None or store.get_by_uid(uid) is None:
                continue
            env = binding.aws.env() if getattr(binding.aws, "url", None) else {}
            node = Credentials(env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", ""), None, "node")
            region = getattr(cluster, "region", None) or binding.aws.region
            return Place(name, region, store, getattr(binding.aws, "url", None), node)
    return None


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The literal ``env`` values of a container (``valueFrom`` is not resolved)."""
    return {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e and "value" in e}


class AwsCliProcess:
    """One AWS CLI container (the kubelet's ``ContainerProcess``); its commands run on a worker thread.

    Args:
        pod: the pod.
        container: the container spec.
        clock: the cluster's simulated clock.
        place: where the pod runs (``None``: no Pod Identity, no AWS endpoint).
    """

    def __init__(self, pod: dict[str, Any], container: dict[str, Any], clock: Any, place: Place | None) -> None:
        self.pod = pod
        self.container = container
        self.clock = clock
        self.place = place
        self.pod_identity: PodIdentity | None = None
        self._started_at: float | None = None
        self._result: Printed | None = None
        self._shown = 0
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> int | None:
        """Start the CLI (it serves nothing)."""
        self._started_at = self.clock.now()
        threading.Thread(target=self._work, name="labkit-aws-cli", daemon=True).start()
        return None

    def _work(self) -> None:
        try:
            result = self._run()
        except Exception as exc:  # a simulator bug must end the container, not hang it
            result = Printed([(0.0, f"(labkit simulator) the AWS CLI failed: {type(exc).__name__}: {exc}")], EXIT_OTHER)
        with self._lock:
            self._result = result

    def _run(self) -> Printed:
        env = container_env(self.container)
        clients = clients_for(self.place.aws_url if self.place else None)
        if self.place is not None and self.place.aws_url:
            self.pod_identity = self._pod_identity(clients, self.place)
        if self.pod_identity is not None:
            env = {**self.pod_identity.env(), **env}
        argv = [str(w) for w in (self.container.get("command") or ["aws"]) + (self.container.get("args") or [])]
        identity = self.pod_identity
        return run_container(
            argv,
            lambda e: BotocoreBackend(clients, e, identity),
            env,
            version=cli_version(str(self.container.get("image", ""))),
        )

    def _pod_identity(self, clients: ClientFactory, place: Place) -> PodIdentity | None:
        meta = self.pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        account = str((self.pod.get("spec") or {}).get("serviceAccountName") or "default")
        found = place.store.try_get("serviceaccounts", namespace, account) if place.store is not None else None
        token = projected_token(
            namespace,
            account,
            now=self.clock.now(),
            service_account_uid=str(((found or {}).get("metadata") or {}).get("uid", "")),
            pod_name=str(meta.get("name", "")),
            pod_uid=str(meta.get("uid", "")),
        )
        agent = PodIdentityAgent(clients, place.cluster, place.region, place.node_credentials)
        return agent.identity_for(token)

    # --- what the kubelet asks

    def _elapsed(self) -> float:
        return 0.0 if self._started_at is None else self.clock.now() - self._started_at

    def ready(self) -> bool:
        """Running (a CLI has no probes to pass)."""
        return self._started_at is not None and not self._stopped and self.exit_code() is None

    def log_lines(self) -> list[str]:
        """Lines printed since the last call."""
        with self._lock:
            if self._result is None:
                return []
            elapsed = self._elapsed()
            due = [line for at, line in self._result.lines[self._shown :] if at <= elapsed]
            self._shown += len(due)
            return due

    def exit_code(self) -> int | None:
        """The CLI's return code once it has finished, else ``None``."""
        with self._lock:
            if self._result is None or self._elapsed() < self._result.seconds:
                return None
            return self._result.exit_code

    def next_change(self) -> float | None:
        """Simulated epoch seconds of the next line or the exit (soon, while the calls are in flight)."""
        with self._lock:
            if self._started_at is None or self._stopped:
                return None
            if self._result is None:
                return self.clock.now() + PENDING_POLL_WALL_S * self.clock.scale
            pending = [at for at, _ in self._result.lines[self._shown :]]
            at = min([*pending, self._result.seconds])
            return self._started_at + at

    def stop(self) -> None:
        """Stop (the CLI is killed where it is)."""
        self._stopped = True


class AwsCliRuntime:
    """Runs AWS CLI images with the simulated CLI (register with the kubelet's runtime registry)."""

    def matches(self, image: str) -> bool:
        return is_aws_cli_image(image)

    def create(
        self, pod: dict[str, Any], container: dict[str, Any], node: dict[str, Any] | None, clock: Any
    ) -> AwsCliProcess:
        """A (not yet started) AWS CLI container of ``pod``."""
        return AwsCliProcess(pod, container, clock, locate(pod))


RUNTIME = AwsCliRuntime()


def register() -> None:
    """Register :data:`RUNTIME` and the image's size with the embedded kubelet (idempotent)."""
    from labkit.embedded.kube.kubelet import register_image_size
    from labkit.embedded.kube.runtime import register_runtime

    for repository in IMAGES:
        register_image_size(repository, IMAGE_BYTES)
    register_runtime(RUNTIME)
