"""AWS CLI pods get credentials the way EKS Pod Identity gives them, from the embedded AWS.

The agent exchanges a projected service account token through ``eks-auth``
AssumeRoleForPodIdentity; a pod of the embedded cluster running the AWS CLI image prints
``sts get-caller-identity`` with the associated role's session, or fails with the CLI's
``Unable to locate credentials`` when its service account has no association.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from labkit.embedded.aws import EmbeddedAws, Timings
from labkit.embedded.clock import Clock
from labkit.embedded.kube import runtime as kube_runtime
from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.embedded.kube.nodes import make_node
from labkit.embedded.simulators import register_all
from labkit.embedded.simulators.awscli import RUNTIME, bind, is_aws_cli_image
from labkit.embedded.simulators.awscli.agent import (
    BotocoreBackend,
    ClientFactory,
    Credentials,
    PodIdentityAgent,
    projected_token,
)
from labkit.embedded.simulators.awscli.cli import EXIT_CONFIG, EXIT_OTHER, NO_CREDENTIALS, run_aws

pytestmark = pytest.mark.timeout(60)

REGION = "us-west-2"
IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.0"
EKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": ["sts:AssumeRole"]}],
}
POD_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ],
}
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


class Account:
    """The embedded AWS with one EKS cluster, two roles and their Pod Identity associations."""

    def __init__(self, aws: EmbeddedAws) -> None:
        self.aws = aws
        self.cluster = f"pi-{uuid.uuid4().hex[:8]}"
        env = aws.env()
        self.session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        iam = self.client("iam")
        cluster_role = iam.create_role(RoleName=f"{self.cluster}-eks", AssumeRolePolicyDocument=json.dumps(EKS_TRUST))
        self.reader = iam.create_role(RoleName=f"{self.cluster}-reader", AssumeRolePolicyDocument=json.dumps(POD_TRUST))
        self.untrusted = iam.create_role(
            RoleName=f"{self.cluster}-ec2-only", AssumeRolePolicyDocument=json.dumps(EC2_TRUST)
        )
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
                "SubnetId"
            ]
            for i, zone in enumerate("ab")
        ]
        eks = self.client("eks")
        eks.create_cluster(
            name=self.cluster,
            roleArn=cluster_role["Role"]["Arn"],
            resourcesVpcConfig={"subnetIds": subnets},
            accessConfig={"authenticationMode": "API"},
        )
        for service_account, role in (("reader", self.reader), ("broken", self.untrusted)):
            eks.create_pod_identity_association(
                clusterName=self.cluster, namespace="demo", serviceAccount=service_account, roleArn=role["Role"]["Arn"]
            )

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.aws.url)

    def agent(self) -> PodIdentityAgent:
        env = self.aws.env()
        node = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], None, "node")
        return PodIdentityAgent(ClientFactory(self.aws.url), self.cluster, REGION, node)


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    clock = Clock(scale=600)
    aws = EmbeddedAws(REGION, clock=clock, timings=Timings.instant())
    aws.start()
    try:
        yield Account(aws)
    finally:
        aws.stop()
        clock.stop()


def token(service_account: str, namespace: str = "demo") -> str:
    return projected_token(namespace, service_account, now=time.time(), pod_name="p", pod_uid="u")


# --------------------------------------------------------------------------- the agent and the CLI


def test_agent_exchanges_the_token_for_the_associated_roles_credentials(account: Account) -> None:
    identity = account.agent().identity_for(token("reader"))
    assert identity is not None and identity.credentials is not None
    assert identity.credentials.source == "container-role"
    assert identity.role_arn.startswith(f"arn:aws:sts::{account.aws.account_id}:assumed-role/{account.cluster}-reader/")
    env = identity.env()
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://169.254.170.23/v1/credentials"
    assert env["AWS_REGION"] == REGION
    backend = BotocoreBackend(ClientFactory(account.aws.url), env, identity)
    printed = run_aws(["sts", "get-caller-identity"], backend, env)
    assert printed.exit_code == 0, printed.text()
    assert json.loads(printed.text())["Arn"] == identity.role_arn


def test_a_service_account_without_association_has_no_credentials(account: Account) -> None:
    assert account.agent().identity_for(token("nobody")) is None
    assert account.agent().identity_for(token("reader", namespace="other")) is None
    printed = run_aws(["sts", "get-caller-identity"], BotocoreBackend(ClientFactory(account.aws.url), {}, None), {})
    assert printed.exit_code == EXIT_CONFIG
    assert printed.text().strip() == NO_CREDENTIALS


def test_a_role_that_does_not_trust_pod_identity_is_refused(account: Account) -> None:
    identity = account.agent().identity_for(token("broken"))
    assert identity is not None and identity.credentials is None
    assert "AccessDeniedException" in identity.error and "pods.eks.amazonaws.com" in identity.error
    env = identity.env()
    backend = BotocoreBackend(ClientFactory(account.aws.url), env, identity)
    printed = run_aws(["sts", "get-caller-identity"], backend, env)
    assert printed.exit_code == EXIT_OTHER
    assert "Error when retrieving credentials from container-role" in printed.text()


def test_static_credentials_in_the_environment_come_first(account: Account) -> None:
    iam = account.client("iam")
    user = f"{account.cluster}-ci"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    identity = account.agent().identity_for(token("reader"))
    env = {
        **(identity.env() if identity else {}),
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    printed = run_aws(
        ["sts", "get-caller-identity", "--query", "Arn", "--output", "text"],
        BotocoreBackend(ClientFactory(account.aws.url), env, identity),
        env,
    )
    assert printed.text() == f"arn:aws:iam::{account.aws.account_id}:user/{user}"


def test_the_container_ignores_the_hosts_aws_configuration(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile-on-this-host")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTKEY")
    identity = account.agent().identity_for(token("reader"))
    assert identity is not None and identity.credentials is not None
    printed = run_aws(["sts", "get-caller-identity"], BotocoreBackend(ClientFactory(account.aws.url), {}, None), {})
    assert printed.exit_code == EXIT_CONFIG  # the host's key is not the container's


def test_aws_cli_images_are_recognised() -> None:
    digest = "public.ecr.aws/aws-cli/aws-cli@sha256:ab"
    for image in (IMAGE, "amazon/aws-cli", "docker.io/amazon/aws-cli:2.22.0", digest):
        assert is_aws_cli_image(image), image
    for image in ("busybox", "amazon/aws-for-fluent-bit:2.32.0", "vllm/vllm-openai:v0.10.2"):
        assert not is_aws_cli_image(image), image


# --------------------------------------------------------------------------- pods in the embedded cluster


@pytest.fixture
def cluster(account: Account, tmp_path: Path) -> Iterator[EmbeddedCluster]:
    register_all()
    c = EmbeddedCluster(
        state_dir=tmp_path,
        time_scale=600,
        profile="eks-standard",
        tls=False,
        system_pods=False,
        name=account.cluster,
        region=REGION,
    )
    c.start()
    unbind = bind(account.aws, {account.cluster: c})
    try:
        c.add_node(make_node("node-1", "m7i.large", f"{REGION}a", now=c.clock.now()))
        c.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
        for name in ("reader", "nobody"):
            c.store.create(
                "serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
                namespace="demo",
            )
        yield c
    finally:
        unbind()
        c.stop()
        kube_runtime.unregister_runtime(RUNTIME)


def run_pod(cluster: EmbeddedCluster, name: str, service_account: str, **container: Any) -> tuple[dict[str, Any], str]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            "containers": [{"name": "aws", "image": IMAGE, **container}],
        },
    }
    cluster.store.create("pods", pod, namespace="demo")
    deadline = time.monotonic() + 20
    while True:
        found = cluster.store.get("pods", "demo", name)
        if (found.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return found, cluster.store.read_log("demo", name)
        assert time.monotonic() < deadline, f"pod {name} did not finish: {found.get('status')}"
        time.sleep(0.02)


def exit_code(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"])


def test_a_pod_with_an_association_prints_its_role(cluster: EmbeddedCluster, account: Account) -> None:
    pod, log = run_pod(cluster, "whoami", "reader", args=["sts", "get-caller-identity"])
    assert pod["status"]["phase"] == "Succeeded", log
    assert exit_code(pod) == 0
    identity = json.loads(log)
    assert f":assumed-role/{account.cluster}-reader/" in identity["Arn"]
    assert identity["Account"] == account.aws.account_id


def test_a_pod_without_an_association_cannot_find_credentials(cluster: EmbeddedCluster) -> None:
    pod, log = run_pod(cluster, "anonymous", "nobody", args=["sts", "get-caller-identity"])
    assert pod["status"]["phase"] == "Failed"
    assert exit_code(pod) == EXIT_CONFIG
    assert NO_CREDENTIALS in log


def test_a_shell_script_runs_several_commands(cluster: EmbeddedCluster, account: Account) -> None:
    script = "aws --version && aws sts get-caller-identity --query Account --output text && aws s3 ls"
    pod, log = run_pod(cluster, "script", "reader", command=["sh", "-c", script])
    assert pod["status"]["phase"] == "Succeeded", log
    lines = log.splitlines()
    assert lines[0].startswith("aws-cli/2.27.0 ")
    assert lines[1] == account.aws.account_id


def test_without_the_platform_binding_there_is_no_pod_identity(cluster: EmbeddedCluster, account: Account) -> None:
    from labkit.embedded.simulators.awscli import runtime

    with runtime._bindings_lock:
        saved = list(runtime._bindings)
        runtime._bindings.clear()
    try:
        pod, log = run_pod(cluster, "unbound", "reader", args=["sts", "get-caller-identity"])
    finally:
        with runtime._bindings_lock:
            runtime._bindings[:] = saved
    assert exit_code(pod) == EXIT_CONFIG and NO_CREDENTIALS in log
