"""The AWS session of a lab, and the one choke point every AWS call of the kit goes through.

:meth:`AwsSession.call` sends a request with botocore's standard retry mode and maps
every botocore failure into the kit's error family, with a message that says what
happened and what to do next. Nothing else in :mod:`labkit.aws` touches botocore
exceptions. Waits (:meth:`AwsSession.wait`) poll with an interval that follows the
embedded target's time scale, so a ten-minute cluster creation is quick offline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import (
    ApiError,
    ConfigError,
    Conflict,
    Forbidden,
    Invalid,
    LabkitError,
    NotFound,
    ServerError,
    TargetUnavailable,
    Unreachable,
    WaitTimeout,
)
from labkit.settings import Settings

MAX_ATTEMPTS = 6
POLL_S = 15.0  # between status checks on a real account
PRICING_REGION = "us-east-1"  # the Price List API answers in us-east-1, eu-central-1 and ap-south-1

_NOT_FOUND = {
    "ResourceNotFoundException",
    "NoSuchEntity",
    "NotFoundException",
    "NoSuchResourceException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "ParameterNotFound",
}
_CONFLICT = {
    "ResourceInUseException",
    "EntityAlreadyExists",
    "AlreadyExistsException",
    "ResourceExistsException",
    "ConflictException",
    "QueueAlreadyExists",
    "DeleteConflict",
    "DependencyViolation",
    "ConcurrentModificationException",
    "ResourceConflictException",
}
_FORBIDDEN = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "OptInRequired",
}
_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
_LIMITS = {"LimitExceededException", "VcpuLimitExceeded", "InstanceLimitExceeded", "ServiceQuotaExceededException"}


def _fix_for(service: str, code: str, status: int) -> str:
    if code in _FORBIDDEN:
        if code in ("ExpiredToken", "ExpiredTokenException"):
            return "your AWS session expired: run `aws sso login` (or refresh your credentials) and rerun the cell"
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure"):
            return "your AWS credentials are not valid here: check AWS_PROFILE and `aws sts get-caller-identity`"
        return f"your identity lacks this {service} permission: ask the account admin, or use the workshop role"
    if code in _LIMITS:
        return (
            "an account limit was reached: run the preflight check to see which quota, then raise it in Service Quotas"
        )
    if code in _THROTTLED or status >= 500:
        return "AWS is busy or failing: wait a minute and rerun the cell (the kit already retried)"
    if code in _NOT_FOUND:
        return "check the name and region (settings.region); it may have been deleted already"
    if code in _CONFLICT:
        return "it exists already or is changing: wait for it to settle, or tear down and retry"
    return "check the request parameters; if labkit built them, report this as a bug with the cell's output"


def map_client_error(exc: Exception, service: str, operation: str) -> ApiError:
    """The kit error for a botocore ``ClientError`` (pure; used by :meth:`AwsSession.call`)."""
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {}) or {}
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", "")) or str(exc)
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    what = f"{service} {operation} failed: {code}: {message}"
    fix = _fix_for(service, code, status)
    kind: type[ApiError]
    if code in _NOT_FOUND or code.endswith((".NotFound", "NotFound", "NotFoundException")) or status == 404:
        kind = NotFound
    elif code in _CONFLICT or status == 409:
        kind = Conflict
    elif code in _FORBIDDEN or status in (401, 403):
        kind = Forbidden
    elif code in _THROTTLED or code in _LIMITS or status >= 500 or status == 429:
        kind = ServerError
    elif code == "ValidationError" and "does not exist" in message:  # CloudFormation's way of saying 404
        kind = NotFound
    else:
        kind = Invalid
    return kind(what, fix, status=status or None, reason=code)


def map_botocore_error(exc: Exception, service: str, operation: str) -> LabkitError | None:
    """The kit error for any botocore failure, or ``None`` if ``exc`` is not one."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        return map_client_error(exc, service, operation)
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)):
        return TargetUnavailable(
            f"no usable AWS credentials for {service} {operation}",
            "run `aws configure` or `aws sso login`, or set AWS_PROFILE (settings.aws_profile)",
        )
    if isinstance(exc, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError)):
        return TargetUnavailable(f"the AWS SSO session is missing or expired ({exc})", "run `aws sso login`")
    if isinstance(exc, bx.ProfileNotFound):
        return ConfigError(str(exc), "fix aws_profile in labkit.toml or AWS_PROFILE, or run `aws configure --profile`")
    if isinstance(
        exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionClosedError)
    ):
        return Unreachable(
            f"cannot reach the AWS {service} endpoint: {exc}",
            "check the network (proxy, VPN) and the region; on the embedded target run `labkit up`",
            reason=type(exc).__name__,
        )
    if isinstance(exc, bx.ParamValidationError):
        return Invalid(
            f"{service} {operation}: botocore rejected the request before sending it: {exc}",
            "this is a labkit bug: report it with the cell's output",
            reason="ParamValidationError",
        )
    if isinstance(exc, bx.BotoCoreError):
        return ApiError(f"{service} {operation} failed: {exc}", "rerun the cell; if it persists, report it")
    return None


@dataclass
class AwsSession:
    """A boto3 session plus the kit's settings, retries, error mapping and waits.

    Build it with :func:`connect`. ``poll_s`` is the interval between status checks and
    ``time_factor`` scales every wait's timeout (``1/time_scale`` on the embedded target).
    """

    boto: Any
    settings: Settings
    poll_s: float = POLL_S
    time_factor: float = 1.0
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _identity: dict[str, str] | None = field(default=None, repr=False)

    @property
    def region(self) -> str:
        return self.settings.region

    def client(self, service: str, region: str | None = None) -> Any:
        """A cached botocore client with standard-mode retries."""
        key = (service, region or self.region)
        if key not in self._clients:
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                user_agent_extra="labkit",
                connect_timeout=10,
                read_timeout=60,
            )
            try:
                self._clients[key] = self.boto.client(service, region_name=key[1], config=config)
            except Exception as exc:
                mapped = map_botocore_error(exc, service, "client")
                if mapped is None:
                    raise
                raise mapped from exc
        return self._clients[key]

    def call(self, service: str, operation: str, *, region: str | None = None, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (snake_case, e.g. ``create_cluster``); botocore failures become kit errors."""
        client = self.client(service, region)
        try:
            return dict(getattr(client, operation)(**params))
        except Exception as exc:
            mapped = map_botocore_error(exc, service, operation)
            if mapped is None:
                raise
            raise mapped from exc

    def pages(self, service: str, operation: str, key: str, *, region: str | None = None, **params: Any) -> list[Any]:
        """Every item under ``key`` across all pages of a list call."""
        client = self.client(service, region)
        try:
            paginator = client.get_paginator(operation)
            return [item for page in paginator.paginate(**params) for item in page.get(key, [])]
        except Exception as exc:
            mapped = map_botocore_error(exc, service, operation)
            if mapped is None:
                raise
            raise mapped from exc

    def identity(self) -> dict[str, str]:
        """STS GetCallerIdentity (cached): ``Account``, ``Arn``, ``UserId``."""
        if self._identity is None:
            found = self.call("sts", "get_caller_identity")
            self._identity = {k: str(found[k]) for k in ("Account", "Arn", "UserId")}
        return self._identity

    @property
    def account_id(self) -> str:
        return self.identity()["Account"]

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    def has_credentials(self) -> bool:
        """Whether the credential chain finds credentials (no network call)."""
        try:
            return self.boto.get_credentials() is not None
        except Exception as exc:
            mapped = map_botocore_error(exc, "sts", "credentials")
            if mapped is None:
                raise
            raise mapped from exc

    def wait(
        self,
        what: str,
        probe: Callable[[], tuple[bool, str]],
        *,
        timeout_s: float,
        on_status: Callable[[str], None] | None = None,
    ) -> str:
        """Poll ``probe`` until it returns ``(True, status)``; returns the final status.

        ``timeout_s`` is real-account time; it is scaled by ``time_factor``. Raises
        :class:`~labkit.errors.WaitTimeout` naming the last status seen.
        """
        # Scaled time on the embedded target, but never under 10 s of wall time: a busy machine
        # must not turn a slow simulated step into a failure.
        wall = timeout_s * self.time_factor
        deadline = time.monotonic() + max(
            wall if self.time_factor >= 1 else max(wall, MIN_WALL_WAIT_S), self.poll_s * 3
        )
        last = ""
        for _ in _ticks(what):
            done, status = probe()
            if status != last and on_status is not None:
                on_status(status)
            last = status
            if done:
                return status
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{what} did not finish within {timeout_s / 60:.0f} minutes (last status: {status or 'unknown'})",
                    "look at it in the AWS console; rerun the cell to keep waiting (every step is idempotent)",
                )
            time.sleep(self.poll_s)
        return last


MIN_WALL_WAIT_S = 10.0


def _ticks(what: str) -> Iterator[int]:
    """An endless counter shown as a progress bar in interactive notebooks."""
    from labkit.progress import progress

    def forever() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    yield from progress(forever(), desc=f"waiting for {what}")


def partition_of(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def connect(settings: Settings, *, platform: Any = None, poll_s: float | None = None) -> AwsSession:
    """The AWS session for ``settings``' target.

    On ``embedded`` the session talks to the embedded AWS of the running platform (started
    if none runs); on ``eks`` and ``kind`` it uses the normal credential chain
    (``settings.aws_profile``, environment, SSO). Creates nothing in AWS.
    """
    import boto3

    if platform is not None:
        boto = platform.aws_session()
    elif settings.target == "embedded":
        from labkit import targets

        boto = targets.connect(settings).aws_session()
    else:
        try:
            boto = boto3.Session(profile_name=settings.aws_profile, region_name=settings.region)
        except Exception as exc:
            mapped = map_botocore_error(exc, "sts", "session")
            if mapped is None:
                raise
            raise mapped from exc
    embedded = settings.target == "embedded"
    factor = 1.0 / settings.time_scale if embedded else 1.0
    interval = poll_s if poll_s is not None else (max(0.05, POLL_S * factor) if embedded else POLL_S)
    return AwsSession(boto=boto, settings=settings, poll_s=interval, time_factor=factor)


def ignore_missing(fn: Callable[[], Any]) -> bool:
    """Run ``fn``; ``False`` if what it acts on does not exist (idempotent deletes)."""
    try:
        fn()
    except NotFound:
        return False
    return True
