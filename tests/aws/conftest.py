"""One embedded AWS per test session; each test gets its own owner and cluster name.

Every AWS call a test makes goes through botocore (so its parameter validation runs)
to the embedded AWS over HTTP, reached through the standard ``AWS_ENDPOINT_URL*``
variables. Calls are recorded per (service, operation) for the coverage check in
``test_aws_zz_call_coverage.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore import xform_name

from labkit import settings as settings_mod
from labkit.aws import session as session_mod
from labkit.embedded.aws import EmbeddedAws, Timings
from labkit.embedded.clock import Clock

CALLS: set[tuple[str, str]] = set()
REGION = "us-west-2"


@pytest.fixture(scope="session")
def embedded_aws() -> Iterator[EmbeddedAws]:
    clock = Clock(scale=1000.0)
    aws = EmbeddedAws(REGION, clock=clock, timings=Timings.instant())
    aws.start()
    yield aws
    aws.stop()
    clock.stop()


@pytest.fixture
def aws_env(embedded_aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = embedded_aws.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    embedded_aws.reset_quotas()
    embedded_aws.runtime.timings = Timings.instant()
    return env


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def make_settings(tmp_path: Any, **overrides: Any) -> settings_mod.Settings:
    values = {
        "target": "eks",
        "region": REGION,
        "cluster_name": unique("c-"),
        "owner": unique("o-"),
        "home": str(tmp_path / "home"),
        "cluster_profile": "auto",
        **overrides,
    }
    return settings_mod.load(values, use_files=False, environ={})


@pytest.fixture
def settings(tmp_path: Any) -> settings_mod.Settings:
    return make_settings(tmp_path)


def _record(model: Any = None, **_: Any) -> None:
    if model is not None:
        CALLS.add((model.service_model.service_name, xform_name(model.name)))


_SHARED: dict[str, Any] = {}


def open_session(settings: settings_mod.Settings) -> session_mod.AwsSession:
    """A session on the embedded AWS; tests share one boto3 session so service models load once."""
    import boto3

    if settings.region not in _SHARED:
        boto = boto3.Session(region_name=settings.region)
        boto.events.register("before-call", _record)
        _SHARED[settings.region] = boto
    return session_mod.AwsSession(boto=_SHARED[settings.region], settings=settings, poll_s=0.005)


@pytest.fixture
def session(settings: settings_mod.Settings, aws_env: dict[str, str]) -> session_mod.AwsSession:
    return open_session(settings)


def snapshot(session: session_mod.AwsSession) -> dict[str, int]:
    """Counts of what a lab could have created, account-wide (other tests share the account)."""
    return {
        "vpcs": len(session.pages("ec2", "describe_vpcs", "Vpcs")),
        "stacks": len(
            [
                s
                for s in session.pages("cloudformation", "describe_stacks", "Stacks")
                if s["StackStatus"] != "DELETE_COMPLETE"
            ]
        ),
        "clusters": len(session.pages("eks", "list_clusters", "clusters")),
        "roles": len(session.pages("iam", "list_roles", "Roles", PathPrefix="/labkit/")),
        "queues": len(session.call("sqs", "list_queues").get("QueueUrls", [])),
        "rules": len(session.call("events", "list_rules").get("Rules", [])),
    }


@pytest.fixture
def settings_factory(tmp_path: Any) -> Any:
    """``settings_factory(**overrides)``: fresh settings with a new cluster and owner."""
    return lambda **overrides: make_settings(tmp_path, **overrides)


@pytest.fixture
def session_factory(aws_env: dict[str, str]) -> Any:
    """``session_factory(settings)``: an AwsSession on the embedded AWS with a short poll interval."""
    return open_session


@pytest.fixture
def account_snapshot() -> Any:
    return snapshot


@pytest.fixture
def recorded_calls() -> set[tuple[str, str]]:
    """(service, operation) of every request the tests' boto3 sessions sent so far."""
    return CALLS
