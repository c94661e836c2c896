"""EmbeddedAws: moto in server mode in this process, with the shim in front, on 127.0.0.1.

boto3 reaches it through the standard endpoint variables (``AWS_ENDPOINT_URL`` and,
for the services the shim completes, ``AWS_ENDPOINT_URL_<SERVICE>``), so library code
is the same as against a real account. moto's state is process-wide: run one
EmbeddedAws per process (tests share one per session).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable
from typing import Any

from labkit.embedded.aws import catalog
from labkit.embedded.aws.app import ShimApp
from labkit.embedded.aws.runtime import ClusterEndpoint, EksEvent, EndpointProvider, ShimRuntime, Timings
from labkit.embedded.aws.servicequotas.models import QuotaBook
from labkit.embedded.aws.wire import DEFAULT_ACCOUNT_ID, Route, ShimError
from labkit.embedded.clock import Clock

# Dummy credentials: not secrets, only there so botocore signs requests.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Services the shim answers or completes; each gets its own AWS_ENDPOINT_URL_<SERVICE> variable.
SHIM_SERVICES = ("PRICING", "SERVICE_QUOTAS", "EKS", "EKS_AUTH", "SSM", "EC2", "CLOUDFORMATION")


class EmbeddedAws:
    """moto plus the shim, served on an ephemeral port of 127.0.0.1.

    Args:
        region: the region clients are pointed at (the server answers in every region).
        clock: the embedded twin's clock; a wall-time clock if ``None``.
        timings: how long slow EKS operations take in simulated time; by default close to
            EKS with a clock, instant without one.
        account_id: the account moto answers as.

    Example:
        >>> aws = EmbeddedAws("us-west-2", timings=Timings.instant())
        >>> env = aws.start()          # {"AWS_ENDPOINT_URL": "http://127.0.0.1:PORT", ...}
        >>> aws.stop()
    """

    def __init__(
        self,
        region: str = "us-west-2",
        *,
        clock: Clock | None = None,
        timings: Timings | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self._own_clock = clock is None
        if timings is None:  # without the twin's clock there is no time scale: finish at once
            timings = Timings() if clock is not None else Timings.instant()
        self.runtime = ShimRuntime(clock=clock or Clock(1.0), timings=timings)
        self.quotas = QuotaBook()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.url: str | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Start serving (idempotent); returns the environment variables that point boto3 here."""
        with self._lock:
            if self._server is None:
                self._serve()
            return self.env()

    def env(self) -> dict[str, str]:
        """The environment for clients: endpoint variables, region and dummy credentials."""
        if self.url is None:
            raise RuntimeError("EmbeddedAws is not started")
        env = {
            "AWS_ENDPOINT_URL": self.url,
            **{f"AWS_ENDPOINT_URL_{service}": self.url for service in SHIM_SERVICES},
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            **DUMMY_CREDENTIALS,
        }
        return env

    def stop(self) -> None:
        """Stop serving (idempotent). moto's state stays in the process."""
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
            if self._own_clock:
                self.runtime.clock.stop()
            self.url = None

    def _serve(self) -> None:
        from moto.core.config import default_user_config
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        from labkit.embedded.aws.cloudformation.models import install as install_cfn_deletes

        default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True
        install_cfn_deletes()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = ShimApp(DomainDispatcherApplication(create_backend_app), self._routes())
        with contextlib.redirect_stdout(io.StringIO()):
            self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="labkit-embedded-aws", daemon=True
        )
        self._thread.start()

    def _routes(self) -> list[Route]:
        from labkit.embedded.aws.cloudformation import urls as cfn_urls
        from labkit.embedded.aws.ec2 import urls as ec2_urls
        from labkit.embedded.aws.eks import urls as eks_urls
        from labkit.embedded.aws.pricing import urls as pricing_urls
        from labkit.embedded.aws.servicequotas import urls as quota_urls
        from labkit.embedded.aws.ssm import urls as ssm_urls

        return [
            *eks_urls.routes(self.runtime),
            *pricing_urls.routes(),
            *quota_urls.routes(self.quotas),
            *ec2_urls.routes(self.runtime),
            *ssm_urls.routes(),
            *cfn_urls.routes(),
        ]

    def __enter__(self) -> EmbeddedAws:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- hooks for the rest of the embedded platform --------------------------------------------

    def set_cluster_endpoint(self, provider: EndpointProvider | None) -> None:
        """Make DescribeCluster report the embedded Kubernetes API server.

        ``provider`` is called with a cluster name and returns a :class:`ClusterEndpoint` or a
        ``(url, ca_pem)`` tuple (``None``: keep moto's placeholder). For one embedded API server,
        ``aws.set_cluster_endpoint(lambda name: (kube.url, kube.server.ca_pem))``.
        """
        self.runtime.endpoint_provider = provider

    def add_eks_listener(self, listener: Callable[[EksEvent], None]) -> None:
        """Call ``listener`` when a cluster, node group or add-on becomes ACTIVE or is deleted."""
        self.runtime.listeners.append(listener)

    def remove_eks_listener(self, listener: Callable[[EksEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self.runtime.listeners.remove(listener)

    def set_quota(self, quota_code: str, value: float, region: str | None = None) -> None:
        """Set an EC2 quota's applied value (all regions unless ``region``), e.g. low for a test."""
        self.quotas.set(quota_code, value, region)

    def reset_quotas(self) -> None:
        """Back to the quota table's values."""
        self.quotas.reset()

    @staticmethod
    def quota_table() -> dict[str, Any]:
        """The dated EC2 quota table the embedded account starts with."""
        return catalog.quotas()

    @staticmethod
    def price_table() -> dict[str, Any]:
        """The dated price list the embedded Pricing API and spot history serve (the planner's catalog)."""
        return catalog.prices()

    def pod_identity_credentials(
        self, cluster: str, namespace: str, service_account: str, region: str | None = None
    ) -> dict[str, Any]:
        """Credentials a pod of ``namespace/service_account`` gets through EKS Pod Identity.

        The same answer ``eks-auth`` AssumeRoleForPodIdentity gives; raises ``LookupError`` when
        no association exists and ``PermissionError`` when the role does not trust Pod Identity.
        """
        from labkit.embedded.aws.eks.responses import pod_identity_credentials

        try:
            return pod_identity_credentials(self.account_id, region or self.region, cluster, namespace, service_account)
        except ShimError as exc:
            if exc.code == "AccessDeniedException":
                raise PermissionError(exc.message) from exc
            raise LookupError(exc.message) from exc


__all__ = ["ClusterEndpoint", "EksEvent", "EmbeddedAws", "Timings"]
