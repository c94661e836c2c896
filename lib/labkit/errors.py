"""The kit's error family.

Every failure a participant can meet is one of these, and its message says what
happened and what to do next. Transport errors from the Kubernetes client, boto3
and HTTP are mapped into this family by the client modules, raised ``from`` the
original so nothing is lost.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base of every error the kit raises on purpose.

    Args:
        what: what happened, in a sentence a participant can act on.
        fix: what to do next; shown on its own line.
    """

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(what if fix is None else f"{what}\n  fix: {fix}")


class ConfigError(LabkitError):
    """Settings are invalid; raised before anything is created."""


class TargetUnavailable(LabkitError):
    """A target cannot be used on this machine (missing tool, no credentials, not built yet)."""


class PlatformNotRunning(LabkitError):
    """A target's platform is not up (nothing to connect to, or it stopped)."""


class ApiError(LabkitError):
    """A backend (Kubernetes API, AWS, a model server) answered with an error.

    Attributes:
        status: HTTP status code, when there was one.
        reason: short machine-readable reason (``NotFound``, ``Conflict``, an AWS error code).
    """

    def __init__(self, what: str, fix: str | None = None, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(what, fix)
        self.status = status
        self.reason = reason


class NotFound(ApiError):
    """The object does not exist (HTTP 404)."""


class Conflict(ApiError):
    """The object exists already or changed underneath us (HTTP 409)."""


class Invalid(ApiError):
    """The request was rejected as invalid (HTTP 400/415/422)."""


class Forbidden(ApiError):
    """The caller is not allowed to do this (HTTP 401/403)."""


class ServerError(ApiError):
    """The backend failed or throttled (HTTP 429/5xx) and retries were used up."""


class Unreachable(ApiError):
    """No connection to the backend (refused, reset, DNS, TLS)."""


class WaitTimeout(LabkitError):
    """Something did not reach the awaited state in time; the message explains why."""


class CheckFailed(LabkitError):
    """A check cell found the participant's work incomplete or wrong."""


class LabRunFailed(LabkitError):
    """One or more notebooks failed during ``labkit run``."""
