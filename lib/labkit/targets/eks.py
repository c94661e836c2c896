"""The ``eks`` target: a real EKS cluster in the participant's AWS account.

Connecting reads the cluster with ``eks:DescribeCluster`` and writes a kubeconfig
whose credentials come from ``labkit eks-token`` (a presigned STS call, as
``aws eks get-token`` makes), so no AWS CLI is needed. Creating and deleting the
cluster is the Week 1 lab's job (``labkit.cluster``); ``up``/``down`` say so.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from labkit.errors import PlatformNotRunning, TargetUnavailable
from labkit.settings import Settings
from labkit.targets import tools
from labkit.targets.base import Finding, Platform, Target, TargetStatus

TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_EXPIRES_S = 60  # what aws-iam-authenticator accepts; the token itself is valid 15 minutes


def kubeconfig_path(settings: Settings) -> Path:
    return settings.home / "eks" / settings.cluster_name / "kubeconfig"


def kubeconfig(settings: Settings, endpoint: str, ca_data: str) -> dict[str, Any]:
    """A kubeconfig for an EKS cluster whose user runs ``labkit eks-token`` (pure)."""
    name = f"labkit-{settings.cluster_name}"
    beside = Path(sys.executable).parent / "labkit"  # works when the environment is not activated
    command = str(beside) if beside.exists() else "labkit"
    args = ["eks-token", "--cluster", settings.cluster_name, "--region", settings.region]
    env = [{"name": "AWS_PROFILE", "value": settings.aws_profile}] if settings.aws_profile else None
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": command,
                        "args": args,
                        "env": env,
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
    }


def token(session: Any, cluster_name: str, region: str) -> str:
    """A bearer token for an EKS cluster: a presigned STS GetCallerIdentity URL."""
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    credentials = session.get_credentials()
    if credentials is None:
        raise TargetUnavailable("no AWS credentials found", "run `aws configure`, `aws sso login`, or set AWS_PROFILE")
    signer = RequestSigner(ServiceId("sts"), region, "sts", "v4", credentials, session.events)
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster_name},
            "context": {},
        },
        region_name=region,
        expires_in=TOKEN_EXPIRES_S,
        operation_name="",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class EksTarget(Target):
    name = "eks"
    description = "a real EKS cluster in your AWS account (costs money; tagged; torn down by the labs)"

    def diagnose(self, settings: Settings) -> TargetStatus:
        import boto3
        import botocore.exceptions

        findings = []
        try:
            session = boto3.Session(profile_name=settings.aws_profile)
            credentials = session.get_credentials()
            method = getattr(credentials, "method", "unknown") if credentials else None
            findings.append(
                Finding(
                    "AWS credentials",
                    credentials is not None,
                    f"found ({method})" if credentials else "none found",
                    "run `aws configure` or `aws sso login`, or set AWS_PROFILE / AWS_ACCESS_KEY_ID",
                )
            )
            region = session.region_name or settings.region
            findings.append(
                Finding(
                    "AWS region",
                    bool(region),
                    f"{settings.region} (labkit), {session.region_name or 'unset'} (AWS config)",
                    "set LABKIT_REGION or `region` in labkit.toml",
                )
            )
        except botocore.exceptions.ProfileNotFound as exc:
            findings.append(Finding("AWS profile", False, str(exc), "fix aws_profile / AWS_PROFILE"))
        for name in ("kubectl", "helm"):
            tool = tools.probe(name)
            findings.append(
                Finding(
                    name,
                    tool.present,
                    f"{name} {tool.version}" if tool.present else f"{name} not found",
                    tool.install_hint,
                    required=False,
                )
            )
        return TargetStatus(self.name, self.description, tuple(findings))

    def up(self, settings: Settings) -> Platform:
        raise TargetUnavailable(
            "`labkit up --target eks` does not create clusters yet: creating an EKS cluster is a Week 1 lab step",
            "run solutions/week1 with target='eks' once it lands, then `labkit env --target eks`",
        )

    def connect(self, settings: Settings) -> Platform:
        import boto3
        import botocore.exceptions

        session = boto3.Session(profile_name=settings.aws_profile, region_name=settings.region)
        try:
            cluster = session.client("eks").describe_cluster(name=settings.cluster_name)["cluster"]
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise PlatformNotRunning(
                    f"no EKS cluster '{settings.cluster_name}' in {settings.region}",
                    "create it in the Week 1 lab, or set cluster_name/region",
                ) from exc
            raise TargetUnavailable(
                f"cannot read EKS cluster: {exc}", "check credentials and eks:DescribeCluster"
            ) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise TargetUnavailable("no AWS credentials found", "run `aws configure` or `aws sso login`") from exc
        path = kubeconfig_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(kubeconfig(settings, cluster["endpoint"], cluster["certificateAuthority"]["data"]))
        )
        os.chmod(path, 0o600)
        return Platform(target=self.name, settings=settings, kubeconfig=path)

    def down(self, settings: Settings) -> list[str]:
        raise TargetUnavailable(
            "`labkit down --target eks` does not delete clusters yet",
            "tear down with the Week 1 lab's teardown step once it lands",
        )
