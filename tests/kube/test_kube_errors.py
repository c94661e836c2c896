"""Mapping client failures into the kit's errors, from fabricated ApiException objects (pure)."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from labkit.errors import ApiError, Conflict, Forbidden, Invalid, NotFound, ServerError, Unreachable
from labkit.kube.apierrors import RequestInfo, to_labkit_error, unknown_kind_error, with_context

DEPLOY = RequestInfo(
    method="GET",
    path="/apis/apps/v1/namespaces/serving/deployments/vllm",
    api_version="apps/v1",
    kind="Deployment",
    name="vllm",
    namespace="serving",
    server="https://127.0.0.1:6443",
    target="embedded",
)


def api_exception(status: int, body: dict | str | None = None, headers: dict | None = None) -> ApiException:
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or "").encode()
    return ApiException(http_resp=urllib3.HTTPResponse(body=raw, status=status, headers=headers or {}))


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details or {},
    }


def test_unknown_custom_kind_says_which_week_installs_its_crds() -> None:
    err = unknown_kind_error("NodePool", "karpenter.sh/v1")
    assert isinstance(err, NotFound)
    assert err.what == "the cluster does not know kind NodePool (karpenter.sh/v1)"
    assert err.fix is not None and "install its CRDs first (Week 3 installs Karpenter)" in err.fix


def test_a_404_on_a_custom_resource_path_is_an_unknown_kind() -> None:
    info = RequestInfo(
        method="GET",
        path="/apis/karpenter.sh/v1/nodepools/gpu",
        api_version="karpenter.sh/v1",
        kind="NodePool",
        name="gpu",
    )
    err = to_labkit_error(api_exception(404, "404 page not found"), info)
    assert isinstance(err, NotFound) and "does not know kind NodePool" in err.what


def test_object_not_found_names_the_object_and_how_to_look() -> None:
    exc = api_exception(
        404,
        status(
            404,
            "NotFound",
            'deployments.apps "vllm" not found',
            {"name": "vllm", "group": "apps", "kind": "deployments"},
        ),
    )
    err = to_labkit_error(exc, DEPLOY)
    assert isinstance(err, NotFound) and err.status == 404 and err.reason == "NotFound"
    assert err.what == "Deployment serving/vllm not found"
    assert err.fix == "check the name and namespace (kubectl get deployments -n serving)"


def test_missing_namespace_says_to_create_it() -> None:
    exc = api_exception(
        404, status(404, "NotFound", 'namespaces "serving" not found', {"name": "serving", "kind": "namespaces"})
    )
    err = to_labkit_error(exc, DEPLOY)
    assert err.what == "namespace serving does not exist"
    assert "kubectl create namespace serving" in (err.fix or "")


def test_conflicts_distinguish_exists_stale_and_field_ownership() -> None:
    exists = to_labkit_error(api_exception(409, status(409, "AlreadyExists", "already exists")), DEPLOY)
    assert isinstance(exists, Conflict) and exists.reason == "AlreadyExists" and "apply it instead" in exists.fix
    stale = to_labkit_error(
        api_exception(409, status(409, "Conflict", "the object has been modified; please apply your changes")),
        DEPLOY,
    )
    assert "changed since it was read" in stale.what and stale.fix == "read it again and retry the change"
    owned = to_labkit_error(
        api_exception(
            409, status(409, "Conflict", 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas')
        ),
        DEPLOY,
    )
    assert "--force-conflicts" in (owned.fix or "") and ".spec.replicas" in owned.what


def test_invalid_lists_the_causes_and_points_at_kubectl_explain() -> None:
    body = status(
        422,
        "Invalid",
        'Deployment.apps "vllm" is invalid',
        {"causes": [{"field": "spec.replicas", "message": "must be >= 0"}]},
    )
    err = to_labkit_error(api_exception(422, body), DEPLOY)
    assert isinstance(err, Invalid) and err.status == 422
    assert "spec.replicas: must be >= 0" in err.what
    assert "kubectl explain deployment" in (err.fix or "")
    media = to_labkit_error(api_exception(415, status(415, "UnsupportedMediaType", "unsupported")), DEPLOY)
    assert isinstance(media, Invalid) and "strategic merge" in (media.fix or "")


def test_forbidden_suggests_kubectl_auth_can_i() -> None:
    info = RequestInfo(
        method="DELETE", path="/x", api_version="apps/v1", kind="Deployment", name="vllm", namespace="serving"
    )
    err = to_labkit_error(api_exception(403, status(403, "Forbidden", "user cannot delete")), info)
    assert isinstance(err, Forbidden)
    assert err.fix == "ask for RBAC access; check with: kubectl auth can-i delete deployments -n serving"
    assert isinstance(to_labkit_error(api_exception(401, "Unauthorized"), info), Forbidden)


def test_throttling_and_server_errors_report_the_attempts() -> None:
    err = to_labkit_error(api_exception(429, status(429, "TooManyRequests", "slow down")), DEPLOY, attempts=5)
    assert isinstance(err, ServerError) and err.status == 429
    assert "throttled" in err.what and "after 5 attempts" in err.what
    assert "labkit doctor" in (err.fix or "")
    assert isinstance(to_labkit_error(api_exception(503, "unavailable"), DEPLOY), ServerError)


def test_expired_watch_version_is_an_api_error_with_410() -> None:
    err = to_labkit_error(api_exception(410, status(410, "Expired", "too old resource version")), DEPLOY)
    assert type(err) is ApiError and err.status == 410 and err.reason == "Expired"


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("embedded", "labkit up"),
        ("kind", "kind get clusters"),
        ("eks", "aws eks describe-cluster"),
        (None, "cluster-info"),
    ],
)
def test_connection_failures_are_unreachable_with_a_target_specific_fix(target: str | None, hint: str) -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None, "/api", reason=urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")
    )
    info = RequestInfo(method="GET", path="/api", server="https://127.0.0.1:1", target=target)
    err = to_labkit_error(refused, info, attempts=3)
    assert isinstance(err, Unreachable)
    assert err.what == "cannot reach the Kubernetes API at https://127.0.0.1:1 (connection refused) after 3 attempts"
    assert hint in (err.fix or "")


def test_tls_failures_say_the_kubeconfig_ca_does_not_match() -> None:
    err = to_labkit_error(ApiException(status=0, reason="SSLError\ncertificate verify failed"), DEPLOY)
    assert isinstance(err, Unreachable) and "TLS" in err.what and "kubeconfig" in (err.fix or "")


def test_with_context_keeps_the_class_status_and_cause() -> None:
    cause = ValueError("x")
    err = NotFound("Deployment a not found", "look", status=404, reason="NotFound")
    err.__cause__ = cause
    wrapped = with_context(err, "applying deployment.apps/a (a.yaml#1)")
    assert isinstance(wrapped, NotFound) and wrapped.status == 404 and wrapped.__cause__ is cause
    assert str(wrapped).startswith("applying deployment.apps/a (a.yaml#1): Deployment a not found\n  fix: look")
