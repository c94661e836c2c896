"""Preflight: each failure stops before anything exists and names the fix."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.aws import eks, preflight
from labkit.aws import session as session_mod
from labkit.aws.preflight import Launch, PreflightFailed
from labkit.embedded.aws import EmbeddedAws


@pytest.mark.parametrize(
    ("instance_type", "bucket"),
    [
        ("g6e.xlarge", "g"),
        ("g5.48xlarge", "g"),
        ("vt1.3xlarge", "g"),
        ("p5.48xlarge", "p"),
        ("p4d.24xlarge", "p"),
        ("m7i.large", "standard"),
        ("c7i.xlarge", "standard"),
        ("t3.medium", "standard"),
        ("r6i.large", "standard"),
        ("inf2.xlarge", None),
        ("trn1.2xlarge", None),
        ("x2idn.16xlarge", None),
    ],
)
def test_quota_buckets(instance_type: str, bucket: str | None) -> None:
    assert preflight.quota_bucket(instance_type) == bucket


def test_quota_codes_per_bucket_and_capacity_type() -> None:
    assert preflight.quota_for("g6.xlarge").code == "L-DB2E81BA"
    assert preflight.quota_for("g6.xlarge", "spot").code == "L-3819A6DF"
    assert preflight.quota_for("p5.48xlarge").code == "L-417A185B"
    assert preflight.quota_for("p5.48xlarge", "spot").code == "L-7212CCBC"
    assert preflight.quota_for("m7i.large").code == "L-1216C47A"
    assert preflight.console_url("eu-west-1", "L-DB2E81BA") == (
        "https://eu-west-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-DB2E81BA"
    )


def test_vcpu_arithmetic() -> None:
    vcpus = {"g6.xlarge": 4, "g6.12xlarge": 48, "m7i.large": 2}
    need = preflight.vcpus_needed(
        [Launch("g6.xlarge", 2), Launch("g6.12xlarge", 1, "spot"), Launch("m7i.large", 3), Launch("inf2.xlarge", 1)],
        vcpus,
    )
    assert {spec.code: n for spec, n in need.items()} == {"L-DB2E81BA": 8, "L-3819A6DF": 48, "L-1216C47A": 6}
    used = preflight.vcpus_in_use(
        [
            {"InstanceType": "g6.xlarge", "CpuOptions": {"CoreCount": 2, "ThreadsPerCore": 2}},
            {"InstanceType": "g6.xlarge", "InstanceLifecycle": "spot"},
            {"InstanceType": "m7i.large", "CpuOptions": {"CoreCount": 1, "ThreadsPerCore": 1}},
        ],
        vcpus,
    )
    assert {spec.code: n for spec, n in used.items()} == {"L-DB2E81BA": 4, "L-3819A6DF": 4, "L-1216C47A": 1}


def test_a_ready_account_passes(session: Any) -> None:
    report = preflight.check(session, [Launch("g6e.xlarge", 2), Launch("m7i.large", 2)])
    assert report.ok
    assert report.account == "123456789012"
    text = report.to_text()
    assert "L-DB2E81BA" in text
    assert "[ok  ] quota L-1216C47A" in text


def test_no_credentials_on_eks_stops_before_anything_exists(
    settings: Any, session_factory: Any, account_snapshot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = session_factory(settings)
    before = account_snapshot(observer)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    participant = session_mod.connect(settings, poll_s=0.005)
    with pytest.raises(PreflightFailed, match="AWS credentials") as err:
        eks.create_platform(participant, settings, "week1")
    assert "aws sso login" in (err.value.fix or "")
    assert account_snapshot(observer) == before


def test_region_without_the_instance_types_stops_before_anything_exists(
    settings_factory: Any, session_factory: Any, account_snapshot: Any
) -> None:
    settings = settings_factory(region="af-south-1")
    session = session_factory(settings)
    before = account_snapshot(session)
    with pytest.raises(PreflightFailed, match=r"g6e\.xlarge is not offered in af-south-1") as err:
        eks.create_platform(session, settings, "week1", launches=[Launch("g6e.xlarge", 1), Launch("m7i.large", 2)])
    assert "choose a region that offers g6e.xlarge" in (err.value.fix or "")
    assert account_snapshot(session) == before


def test_quota_below_need_names_the_quota(
    session: Any, settings: Any, embedded_aws: EmbeddedAws, account_snapshot: Any
) -> None:
    embedded_aws.set_quota("L-DB2E81BA", 4)
    before = account_snapshot(session)
    with pytest.raises(PreflightFailed) as err:
        eks.create_platform(session, settings, "week3", launches=[Launch("g6e.2xlarge", 1), Launch("m7i.large", 2)])
    failure = err.value.report.failures[0]
    assert "Running On-Demand G and VT instances (L-DB2E81BA): quota 4 vCPUs" in failure.detail
    assert "needs 8" in failure.detail
    assert "L-DB2E81BA" in (err.value.fix or "")
    assert "servicequotas/home/services/ec2/quotas/L-DB2E81BA" in (err.value.fix or "")
    assert account_snapshot(session) == before


def test_running_instances_count_against_the_quota(
    settings_factory: Any, session_factory: Any, embedded_aws: EmbeddedAws
) -> None:
    settings = settings_factory(region="us-east-2")
    session = session_factory(settings)
    embedded_aws.set_quota("L-DB2E81BA", 8, region="us-east-2")
    image = session.call(
        "ssm", "get_parameter", Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )["Parameter"]["Value"]
    running = session.call("ec2", "run_instances", ImageId=image, InstanceType="g5.xlarge", MinCount=1, MaxCount=1)
    ids = [i["InstanceId"] for i in running["Instances"]]
    try:
        assert preflight.run(session, [Launch("g5.xlarge", 1)]).ok
        report = preflight.run(session, [Launch("g5.xlarge", 2)])
        assert not report.ok
        assert "4 in use, this lab needs 8" in report.failures[0].detail
        assert "at least 12 vCPUs" in report.failures[0].fix
    finally:
        session.call("ec2", "terminate_instances", InstanceIds=ids)
