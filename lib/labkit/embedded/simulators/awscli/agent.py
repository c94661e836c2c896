"""EKS Pod Identity as a container on the embedded cluster sees it, and the botocore backend of the CLI.

On EKS, when a pod's service account has a Pod Identity association, the EKS Pod
Identity webhook adds ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (the node-local agent on
169.254.170.23) and ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (a projected service
account token for the audience ``pods.eks.amazonaws.com``) to its containers. The SDK's
container credential provider hands that token to the agent, and the agent exchanges it
for the role's credentials with ``eks-auth:AssumeRoleForPodIdentity``, naming its cluster.
Without an association nothing is added, the credential chain finds nothing (nodes keep
the instance metadata service out of pods' reach with a hop limit of 1), and the CLI says
``Unable to locate credentials``.

:class:`PodIdentityAgent` does the agent's part against the embedded AWS, over HTTP
through botocore, with the token the kubelet would project. :class:`BotocoreBackend`
is what the simulated CLI calls AWS through: the container's credentials and region,
the embedded AWS as endpoint, and nothing from the host's AWS configuration.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, CredentialRetrievalError, NoCredentialsError

POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
AGENT_URI = "http://169.254.170.23/v1/credentials"
TOKEN_FILE = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
TOKEN_SECONDS = 86400
ISSUER = "https://kubernetes.default.svc.cluster.local"
_NO_ASSOCIATION = {"ResourceNotFoundException"}


@dataclass(frozen=True)
class Credentials:
    """Temporary or static AWS credentials and where the chain found them (``env`` or ``container-role``)."""

    access_key: str
    secret_key: str
    token: str | None
    source: str


@dataclass(frozen=True)
class PodIdentity:
    """What Pod Identity gives a container: its credentials, or why it could not get them.

    Attributes:
        credentials: the role's credentials (``None`` when the agent refused).
        region: the cluster's region (the webhook sets ``AWS_REGION`` and ``AWS_DEFAULT_REGION``).
        error: the agent's answer when it could not get credentials (the association's role is
            missing or does not trust ``pods.eks.amazonaws.com``).
        role_arn: the assumed role's session ARN, when credentials were issued.
    """

    credentials: Credentials | None
    region: str
    error: str = ""
    role_arn: str = ""

    def env(self) -> dict[str, str]:
        """The variables the Pod Identity webhook adds to each container of the pod."""
        return {
            "AWS_STS_REGIONAL_ENDPOINTS": "regional",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": AGENT_URI,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": TOKEN_FILE,
        }


def projected_token(
    namespace: str,
    service_account: str,
    *,
    now: float,
    service_account_uid: str = "",
    pod_name: str = "",
    pod_uid: str = "",
    audience: str = POD_IDENTITY_AUDIENCE,
    seconds: int = TOKEN_SECONDS,
) -> str:
    """The service account token the kubelet projects into the pod (unsigned, like the embedded API server's)."""
    claims: dict[str, Any] = {
        "aud": [audience],
        "exp": int(now) + seconds,
        "iat": int(now),
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": service_account_uid},
            **({"pod": {"name": pod_name, "uid": pod_uid}} if pod_name else {}),
        },
    }

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims, separators=(',', ':')).encode())}.{b64(b'labkit-embedded')}"


def isolated_session() -> Any:
    """A botocore session that reads nothing from the host's AWS configuration (a container has none)."""
    import botocore.session

    nothing = os.path.join(os.path.sep, "nonexistent", "labkit-aws-cli")
    return botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, nothing + "/config", None),
            "credentials_file": (None, None, nothing + "/credentials", None),
        }
    )


class ClientFactory:
    """botocore clients for the embedded AWS from one shared session (service models load once)."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = isolated_session()
            return self._session

    def service_model(self, service: str) -> Any:
        session = self.session
        with self._lock:
            return session.get_service_model(service)

    def client(self, service: str, region: str, credentials: Credentials) -> Any:
        """A client of ``service`` signed with ``credentials`` (no retries: the CLI reports the first answer)."""
        if self.endpoint_url is None:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url=f"https://{service}.{region}.amazonaws.com/")
        session = self.session
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        with self._lock:
            return session.create_client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=credentials.access_key,
                aws_secret_access_key=credentials.secret_key,
                aws_session_token=credentials.token,
                config=config,
            )


class PodIdentityAgent:
    """The EKS Pod Identity agent of one cluster: tokens in, role credentials out (``eks-auth``).

    Args:
        clients: clients for the embedded AWS.
        cluster: the EKS cluster's name (the agent is configured with it).
        region: the cluster's region.
        node_credentials: what the agent signs with (the node role's, on EKS).
    """

    def __init__(self, clients: ClientFactory, cluster: str, region: str, node_credentials: Credentials) -> None:
        self.clients = clients
        self.cluster = cluster
        self.region = region
        self.node_credentials = node_credentials

    def identity_for(self, token: str) -> PodIdentity | None:
        """Pod Identity for the token's service account; ``None`` when it has no association."""
        client = self.clients.client("eks-auth", self.region, self.node_credentials)
        try:
            answer = client.assume_role_for_pod_identity(clusterName=self.cluster, token=token)
        except ClientError as exc:
            error = exc.response.get("Error") or {}
            if error.get("Code") in _NO_ASSOCIATION:
                return None
            body = json.dumps({"code": error.get("Code", ""), "message": error.get("Message", "")})
            return PodIdentity(
                None,
                self.region,
                "Error retrieving metadata: Received non 200 response 400 from container metadata: " + body,
            )
        found = answer["credentials"]
        credentials = Credentials(
            found["accessKeyId"], found["secretAccessKey"], found.get("sessionToken"), "container-role"
        )
        return PodIdentity(credentials, self.region, role_arn=str((answer.get("assumedRoleUser") or {}).get("arn", "")))


class BotocoreBackend:
    """The simulated CLI's way to AWS: the container's credential chain and region, the embedded endpoint.

    The chain is the SDK's, in order: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in the
    container's environment, then the container credential provider (Pod Identity); nothing else
    answers inside a pod here.
    """

    def __init__(self, clients: ClientFactory, env: Mapping[str, str], pod_identity: PodIdentity | None) -> None:
        self.clients = clients
        self.env = dict(env)
        self.pod_identity = pod_identity

    def service_model(self, service: str) -> Any:
        return self.clients.service_model(service)

    def default_region(self) -> str | None:
        return self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION")

    def credentials(self) -> Credentials:
        """The first credentials the chain finds; raises botocore's errors as the SDK would."""
        key, secret = self.env.get("AWS_ACCESS_KEY_ID"), self.env.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return Credentials(key, secret, self.env.get("AWS_SESSION_TOKEN"), "env")
        if self.env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") and self.pod_identity is not None:
            if self.pod_identity.credentials is not None:
                return self.pod_identity.credentials
            raise CredentialRetrievalError(provider="container-role", error_msg=self.pod_identity.error)
        raise NoCredentialsError()

    def call(
        self, service: str, operation: str, params: dict[str, Any], *, region: str, paginate: bool
    ) -> dict[str, Any]:
        from botocore import xform_name

        client = self.clients.client(service, region, self.credentials())
        method = xform_name(operation)
        if paginate and client.can_paginate(method):
            return dict(client.get_paginator(method).paginate(**params).build_full_result())
        return dict(getattr(client, method)(**params))
