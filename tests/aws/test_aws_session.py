"""The AWS choke point: every botocore failure becomes a kit error that says what to do."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError

from labkit.aws import session as session_mod
from labkit.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServerError,
    TargetUnavailable,
    Unreachable,
    WaitTimeout,
)


def _client_error(code: str, status: int, message: str = "boom") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ResourceNotFoundException", 404, NotFound),
        ("NoSuchEntity", 404, NotFound),
        ("InvalidVpcID.NotFound", 400, NotFound),
        ("ResourceInUseException", 409, Conflict),
        ("EntityAlreadyExists", 409, Conflict),
        ("AccessDeniedException", 403, Forbidden),
        ("ExpiredToken", 400, Forbidden),
        ("ThrottlingException", 400, ServerError),
        ("VcpuLimitExceeded", 400, ServerError),
        ("InternalFailure", 500, ServerError),
        ("InvalidParameterException", 400, Invalid),
    ],
)
def test_client_errors_map_to_the_family(code: str, status: int, kind: type) -> None:
    error = session_mod.map_client_error(_client_error(code, status), "eks", "create_cluster")
    assert type(error) is kind
    assert error.reason == code
    assert "eks create_cluster failed" in error.what
    assert error.fix


def test_cloudformation_says_missing_stacks_with_validation_error() -> None:
    error = session_mod.map_client_error(
        _client_error("ValidationError", 400, "Stack with id x does not exist"), "cloudformation", "describe_stacks"
    )
    assert isinstance(error, NotFound)


def test_expired_session_says_to_log_in_again() -> None:
    error = session_mod.map_client_error(_client_error("ExpiredTokenException", 400), "sts", "get_caller_identity")
    assert "aws sso login" in (error.fix or "")


def test_no_credentials_is_target_unavailable(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    session = session_mod.connect(settings, poll_s=0.01)
    assert session.has_credentials() is False
    with pytest.raises(TargetUnavailable, match="no usable AWS credentials") as err:
        session.call("sts", "get_caller_identity")
    assert "aws sso login" in (err.value.fix or "")


def test_unknown_profile_is_a_config_error(settings_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="fix aws_profile"):
        session_mod.connect(settings_factory(aws_profile="no-such-profile"))


def test_unreachable_endpoint(settings: Any, aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_EKS", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(session_mod, "MAX_ATTEMPTS", 1)
    session = session_mod.connect(settings, poll_s=0.01)
    with pytest.raises(Unreachable, match="cannot reach the AWS eks endpoint"):
        session.call("eks", "list_clusters")


def test_botocore_parameter_validation_still_runs(session: Any) -> None:
    with pytest.raises(Invalid, match="botocore rejected the request"):
        session.call("eks", "create_cluster", name="x")


def test_wait_times_out_with_the_last_status(session: Any) -> None:
    session.time_factor = 0.0001
    with pytest.raises(WaitTimeout, match="last status: CREATING"):
        session.wait("thing", lambda: (False, "CREATING"), timeout_s=60)
    statuses: list[str] = []
    answers = iter([(False, "A"), (False, "A"), (True, "B")])
    assert session.wait("thing", lambda: next(answers), timeout_s=60, on_status=statuses.append) == "B"
    assert statuses == ["A", "B"]


def test_connect_scales_waits_on_the_embedded_target(settings_factory: Any) -> None:
    embedded = settings_factory(target="embedded", time_scale=60)

    class FakePlatform:
        def aws_session(self) -> Any:
            import boto3

            return boto3.Session(region_name="us-west-2")

    session = session_mod.connect(embedded, platform=FakePlatform())
    assert session.time_factor == pytest.approx(1 / 60)
    assert session.poll_s == pytest.approx(session_mod.POLL_S / 60)
    real = session_mod.connect(settings_factory(target="eks"))
    assert (real.time_factor, real.poll_s) == (1.0, session_mod.POLL_S)


def test_identity_and_partition(session: Any) -> None:
    assert session.account_id == "123456789012"
    assert session.partition == "aws"
    assert session_mod.partition_of("us-gov-west-1") == "aws-us-gov"
