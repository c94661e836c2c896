"""Pod Identity in practice: a role for a service account, and the AWS CLI run in a pod to prove it.

:func:`run_aws_cli` runs one ``aws ...`` command in a Job under a service account and
returns its log, exit code and (for ``sts get-caller-identity``) the identity AWS saw.
It is rerunnable: a Job of the same name is deleted first. The manifest builders are
pure functions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit import kube as kube_mod
from labkit.aws import iam, names
from labkit.aws.eks import ensure_pod_identity
from labkit.aws.session import AwsSession
from labkit.errors import NotFound, WaitTimeout
from labkit.kube.client import Kube, resolve
from labkit.settings import Settings

#: The AWS CLI image, pinned (the ECR Public copy: no Docker Hub rate limits).
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.0"
DEMO_NAMESPACE = "identity-demo"
DEMO_SERVICE_ACCOUNT = "s3-reader"
RUN_TIMEOUT_S = 600  # cluster seconds: an Auto Mode node may have to start first
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"


def list_buckets_policy() -> dict[str, Any]:
    """A least-privilege policy for the demo: list the account's bucket names, nothing else (pure)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "ListBucketNames", "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }


@dataclass(frozen=True)
class DemoRole:
    """The demo's role and policy."""

    role_name: str
    role_arn: str
    policy_arn: str


def ensure_demo_role(
    session: AwsSession, settings: Settings, lab: str, trust_policy: dict[str, Any], purpose: str = "s3-reader"
) -> DemoRole:
    """The demo role with ``trust_policy`` and :func:`list_buckets_policy` attached (idempotent)."""
    policy_arn = iam.ensure_policy(
        session,
        settings,
        lab,
        names.policy(settings.cluster_name, purpose),
        json.dumps(list_buckets_policy(), separators=(",", ":")),
    )
    role = iam.ensure_role(
        session,
        settings,
        lab,
        names.role(settings.cluster_name, purpose),
        trust_policy=json.dumps(trust_policy, separators=(",", ":")),
        managed=[policy_arn],
        description=f"Pod Identity demo of {settings.cluster_name}: may list S3 bucket names",
    )
    return DemoRole(role.name, role.arn, policy_arn)


def associate(
    session: AwsSession, settings: Settings, lab: str, role_arn: str, *, namespace: str, service_account: str
) -> dict[str, Any]:
    """The Pod Identity association of ``namespace/service_account`` with ``role_arn`` (idempotent)."""
    return ensure_pod_identity(
        session, settings, lab, namespace=namespace, service_account=service_account, role_arn=role_arn
    )


# --- manifests (pure) -----------------------------------------------------------------------------


def job_name(service_account: str, args: Sequence[str]) -> str:
    """A Job name from the service account and the command, as a DNS label (pure)."""
    words = [w for w in args if not w.startswith("-")][:2]
    raw = "-".join(["aws", service_account, *words]).lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:52].rstrip("-")


def namespace_manifest(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}


def service_account_manifest(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def aws_cli_job(
    name: str, namespace: str, service_account: str, args: Sequence[str], *, image: str = AWS_CLI_IMAGE
) -> dict[str, Any]:
    """A Job that runs ``aws <args>`` once under ``service_account`` (pure).

    The image's entrypoint is ``aws``, so ``args`` are the CLI's arguments. No retries:
    a failure shows at once, with the CLI's message in the log.
    """
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "aws-cli"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                # A Job must not lose its node to consolidation mid-run (Karpenter and Auto Mode honour this).
                "metadata": {
                    "labels": {"app.kubernetes.io/name": "aws-cli"},
                    "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                },
                "spec": {
                    "serviceAccountName": service_account,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "aws",
                            "image": image,
                            "args": list(args),
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }
                    ],
                },
            },
        },
    }


# --- running it ---------------------------------------------------------------------------------


@dataclass
class AwsCliRun:
    """One ``aws`` command run in a pod: what it printed and how it ended."""

    namespace: str
    service_account: str
    args: list[str]
    job: str
    pod: str
    succeeded: bool
    exit_code: int | None
    log: str
    kubectl: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return "aws " + " ".join(self.args)

    @property
    def output(self) -> Any:
        """The log parsed as JSON (the CLI's default output), or ``None`` if it is not JSON."""
        try:
            return json.loads(self.log)
        except ValueError:
            return None

    @property
    def identity(self) -> dict[str, str] | None:
        """What ``aws sts get-caller-identity`` printed (``UserId``, ``Account``, ``Arn``), or ``None``."""
        found = self.output
        return found if isinstance(found, dict) and "Arn" in found else None

    def __str__(self) -> str:
        outcome = "succeeded" if self.succeeded else f"FAILED (exit code {self.exit_code})"
        head = f"$ {self.command}   # pod {self.pod} in {self.namespace}, service account {self.service_account}"
        return f"{head}\n{self.log.strip() or '(no output)'}\n-> {outcome}"


def _exit_code(pod: dict[str, Any]) -> int | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated.get("exitCode", 0))
    return None


def _wait_finished(k: Kube, name: str, namespace: str, timeout: float) -> tuple[dict[str, Any], str]:
    """Wait until the Job's pod has ended; returns the pod and its log, read at once.

    Watched, not polled, and read at once, because the pod may not stay: on EKS Auto Mode (and
    with Karpenter) the node a finished Job ran on is empty and consolidated away within a
    minute, and its pods go with it. A watch sees the pod's last state even then.
    """
    deadline = time.monotonic() + k.wall_timeout(timeout)
    uid = k.get("batch/v1", "Job", name, namespace)["metadata"]["uid"]
    selector = f"job-name={name}"

    def ended(pod: dict[str, Any]) -> bool:
        owned = any(o.get("uid") == uid for o in pod["metadata"].get("ownerReferences") or [])
        return owned and _exit_code(pod) is not None

    def result(pod: dict[str, Any]) -> tuple[dict[str, Any], str]:
        try:
            log = k.read_log(str(pod["metadata"]["name"]), namespace, tail_lines=200)
        except NotFound:
            log = "(the pod and its log are gone: its node was consolidated right after the Job ended)"
        return pod, log

    listing = k.list("v1", "Pod", namespace, label_selector=selector)
    for pod in listing.items:
        if ended(pod):
            return result(pod)
    version = listing.resource_version
    while time.monotonic() < deadline:
        left = max(1.0, deadline - time.monotonic())
        for event in k.watch("v1", "Pod", namespace, resource_version=version, label_selector=selector, timeout_s=left):
            pod = event["object"]
            version = pod["metadata"].get("resourceVersion", version)
            if event["type"] != "BOOKMARK" and ended(pod):
                return result(pod)
    raise WaitTimeout(
        f"job {namespace}/{name} did not finish within {timeout:.0f}s",
        f"kubectl describe job {name} -n {namespace}; kubectl logs job/{name} -n {namespace}",
    )


def run_aws_cli(
    args: Sequence[str],
    *,
    service_account: str,
    namespace: str = DEMO_NAMESPACE,
    name: str | None = None,
    image: str = AWS_CLI_IMAGE,
    timeout: float = RUN_TIMEOUT_S,
    kube: Any = None,
) -> AwsCliRun:
    """Run ``aws <args>`` in a Job under ``namespace/service_account`` and wait for it to finish.

    Creates the namespace and the service account if they are missing, replaces a Job of the
    same name, waits until it completes or fails (a failure is a result, not an exception), and
    reads the pod's log.

    Raises:
        WaitTimeout: the Job neither completed nor failed in time (the message says why).
    """
    k = resolve(kube)
    name = name or job_name(service_account, args)
    kube_mod.apply([namespace_manifest(namespace), service_account_manifest(service_account, namespace)], kube=k)
    kube_mod.delete_resource("job", name, namespace=namespace, propagation="Foreground", kube=k)
    applied = kube_mod.apply(aws_cli_job(name, namespace, service_account, args, image=image), kube=k)
    pod, log = _wait_finished(k, name, namespace, timeout)
    exit_code = _exit_code(pod)
    return AwsCliRun(
        namespace=namespace,
        service_account=service_account,
        args=list(args),
        job=name,
        pod=str(pod["metadata"]["name"]),
        succeeded=exit_code == 0,
        exit_code=exit_code,
        log=log,
        kubectl=[applied.kubectl, f"kubectl logs job/{name} -n {namespace}"],
    )
