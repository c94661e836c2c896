"""Targets: the commands kind would run, the EKS kubeconfig and token, target lookup."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from labkit import settings, targets
from labkit.errors import ConfigError, PlatformNotRunning, TargetUnavailable
from labkit.targets import eks, kind


@pytest.fixture
def kind_settings(tmp_path: Path) -> settings.Settings:
    return settings.load({"target": "kind", "home": tmp_path}, environ={}, use_files=False)


def test_kind_create_and_delete_commands(kind_settings: settings.Settings, tmp_path: Path) -> None:
    create = kind.create_command(kind_settings)
    assert create[:5] == ["kind", "create", "cluster", "--name", "genai-platform"]
    assert create[create.index("--config") + 1].endswith("infra/kind/cluster.yaml")
    assert create[create.index("--kubeconfig") + 1] == str(tmp_path / "kind" / "genai-platform" / "kubeconfig")
    assert "--wait" not in create  # nodes stay NotReady until Cilium is installed in Week 2
    assert kind.delete_command(kind_settings)[:5] == ["kind", "delete", "cluster", "--name", "genai-platform"]


def test_kind_config_disables_the_default_cni() -> None:
    import yaml

    config = yaml.safe_load(kind.KIND_CONFIG.read_text())
    assert config["networking"]["disableDefaultCNI"] is True
    assert [n["role"] for n in config["nodes"]].count("control-plane") == 1


def test_kind_up_without_tools_explains_the_fix(kind_settings: settings.Settings, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no kind
    with pytest.raises(TargetUnavailable) as info:
        targets.up(kind_settings)
    assert "docker CLI not found" in info.value.what
    assert "docs.docker.com" in (info.value.fix or "")


def test_kind_connect_before_up(kind_settings: settings.Settings) -> None:
    with pytest.raises(PlatformNotRunning, match="labkit up --target kind"):
        targets.get("kind").connect(kind_settings)


def test_eks_kubeconfig_uses_labkit_token_exec(tmp_path: Path) -> None:
    s = settings.load({"target": "eks", "region": "eu-west-1", "aws_profile": "workshop"}, environ={}, use_files=False)
    config = eks.kubeconfig(s, "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "Q0FEQVRB")
    user = config["users"][0]["user"]["exec"]
    assert user["command"].endswith("labkit")  # absolute when the venv is not activated
    assert user["args"] == ["eks-token", "--cluster", "genai-platform", "--region", "eu-west-1"]
    assert user["env"] == [{"name": "AWS_PROFILE", "value": "workshop"}]
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0FEQVRB"


def test_eks_token_is_a_presigned_sts_call_for_the_cluster() -> None:
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-west-2")
    token = eks.token(session, "genai-platform", "us-west-2")
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert parsed.netloc == "sts.us-west-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]


def test_eks_token_without_credentials_says_how_to_log_in(monkeypatch: pytest.MonkeyPatch) -> None:
    session = boto3.Session(region_name="us-west-2")
    monkeypatch.setattr(session, "get_credentials", lambda: None)
    with pytest.raises(TargetUnavailable, match="no AWS credentials"):
        eks.token(session, "c", "us-west-2")


def test_eks_up_says_where_clusters_are_created() -> None:
    s = settings.load({"target": "eks"}, environ={}, use_files=False)
    with pytest.raises(TargetUnavailable, match="Week 1"):
        targets.up(s)


def test_unknown_target_lookup() -> None:
    with pytest.raises(ConfigError, match="unknown target 'ecs'"):
        targets.get("ecs")
