"""The target interface: what every place the platform can run provides.

Lab code receives a :class:`Platform` and uses its Kubernetes ``ApiClient``,
boto3 session and service URLs without knowing which target it runs on.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from labkit.errors import PlatformNotRunning
from labkit.settings import Settings

if TYPE_CHECKING:
    import boto3
    from kubernetes.client import ApiClient


@dataclass(frozen=True)
class Finding:
    """One line of a doctor report: a requirement, whether it is met, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


@dataclass(frozen=True)
class TargetStatus:
    """Whether a target is usable here, with the findings that decide it."""

    target: str
    description: str
    findings: tuple[Finding, ...]

    @property
    def usable(self) -> bool:
        return all(f.ok for f in self.findings if f.required)

    @property
    def blockers(self) -> list[Finding]:
        return [f for f in self.findings if f.required and not f.ok]


@dataclass
class Platform:
    """A connected platform. Everything a lab needs to reach it, whatever the target.

    Reaching a Service is the kube layer's job (``labkit.kube.service_url``): it needs the
    Kubernetes API, which sits above targets. On ``embedded`` it resolves the pod's local
    address; on ``kind`` and ``eks`` it opens a port-forward that ends with :meth:`close`.

    Attributes:
        target: the target's name.
        settings: the settings it was connected with.
        kubeconfig: path of the kubeconfig for ``kubectl``/``helm`` (``None`` before a cluster exists).
        aws_env: environment variables boto3 needs for this target (endpoints, dummy credentials).
    """

    target: str
    settings: Settings
    kubeconfig: Path | None = None
    aws_env: Mapping[str, str] = field(default_factory=dict)
    _api_client: Any = field(default=None, repr=False)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # Connecting points this process's AWS SDK (and the `labkit eks-token` it spawns) at the platform.
        os.environ.update(self.aws_env)

    def kube_client(self) -> ApiClient:
        """A Kubernetes ``ApiClient`` for this platform's cluster (cached)."""
        if self._api_client is None:
            if self.kubeconfig is None or not self.kubeconfig.exists():
                raise PlatformNotRunning(
                    f"the {self.target} target has no cluster yet (no kubeconfig)",
                    "create the cluster first (Week 1), or run `labkit up` for this target",
                )
            from kubernetes import config

            self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def aws_session(self) -> boto3.Session:
        """A boto3 session for this platform's account (the embedded AWS on ``embedded``)."""
        import boto3

        os.environ.update(self.aws_env)  # endpoint variables are read by botocore at client creation
        return boto3.Session(profile_name=self.settings.aws_profile, region_name=self.settings.region)

    def env(self) -> dict[str, str]:
        """Shell variables that point ``kubectl``, ``helm`` and the AWS CLI at this platform."""
        out = dict(self.aws_env)
        if self.kubeconfig is not None and self.kubeconfig.exists():
            out["KUBECONFIG"] = str(self.kubeconfig)
        return out

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when this handle closes (port-forwards, cached clients)."""
        self._closers.append(fn)

    def close(self) -> None:
        """Release client-side resources (connections, port-forwards); the platform stays up."""
        for fn in reversed(self._closers):
            with contextlib.suppress(Exception):
                fn()
        self._closers.clear()
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None


class Target(ABC):
    """A place the platform can run: provision, connect, tear down, diagnose."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def diagnose(self, settings: Settings) -> TargetStatus:
        """Check, without creating anything, whether this target can be used here."""

    @abstractmethod
    def up(self, settings: Settings) -> Platform:
        """Bring the platform up (idempotent) and return a handle."""

    @abstractmethod
    def connect(self, settings: Settings) -> Platform:
        """Connect to a platform that is up; raises :class:`PlatformNotRunning` otherwise."""

    @abstractmethod
    def down(self, settings: Settings) -> list[str]:
        """Tear the platform down (idempotent); returns what was removed."""
