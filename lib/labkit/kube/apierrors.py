"""Mapping Kubernetes client failures into the kit's error family (pure).

``to_labkit_error`` turns an ``ApiException`` (or a urllib3/socket error) and a
description of the request into a :class:`~labkit.errors.LabkitError` whose
message says what happened and what to do next. :class:`labkit.kube.Kube`
raises the result ``from`` the original, so nothing is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labkit.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    LabkitError,
    NotFound,
    ServerError,
    Unreachable,
)
from labkit.kube import refs

# Which lab installs the CRDs of a group, for "the cluster does not know kind X" messages.
CRD_SOURCES: dict[str, str] = {
    "karpenter.sh": "Week 3 installs Karpenter",
    "karpenter.k8s.aws": "Week 3 installs Karpenter",
    "eks.amazonaws.com": "EKS Auto Mode provides it (cluster profile 'auto')",
    "cilium.io": "Week 2 installs Cilium",
    "gateway.networking.k8s.io": "Week 2 installs the Gateway API CRDs",
    "kyverno.io": "Week 2 installs Kyverno",
    "monitoring.coreos.com": "Week 5 installs the Prometheus operator",
    "opentelemetry.io": "Week 5 installs the OpenTelemetry operator",
    "argoproj.io": "Week 5 installs Argo CD",
    "nvidia.com": "Week 3 installs the NVIDIA GPU operator",
    "keda.sh": "Week 3 installs KEDA",
}


@dataclass(frozen=True)
class RequestInfo:
    """What a request was about, so errors can name it.

    Attributes:
        method: HTTP method.
        path: request path.
        api_version: the object's API version, when known.
        kind: the object's kind, when known.
        name: the object's name, when known.
        namespace: the object's namespace, when known.
        server: the API server URL.
        target: the platform target (``embedded``, ``kind``, ``eks``), when known.
    """

    method: str = "GET"
    path: str = ""
    api_version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    server: str = ""
    target: str | None = None

    @property
    def what(self) -> str:
        """``Deployment serving/vllm`` or the path when no object is known."""
        if not self.kind:
            return f"{self.method} {self.path}"
        where = f"{self.namespace}/{self.name}" if self.namespace and self.name else (self.name or self.namespace)
        return f"{self.kind} {where}".strip()

    @property
    def plural_hint(self) -> str:
        if not self.kind:
            return "all"
        known = refs.builtin(self.api_version, self.kind)
        return known.plural if known else refs.display_name(self.api_version, self.kind)


def status_body(body: Any) -> dict[str, Any]:
    """The ``Status`` object of an error response (``{}`` when the body is not one)."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return {"message": body.strip()[:500]} if body.strip() else {}
    return body if isinstance(body, dict) else {}


def unknown_kind_error(kind: str, api_version: str) -> NotFound:
    """The cluster serves no such type: its CRDs are not installed (or the apiVersion is wrong)."""
    group = refs.group_of(api_version)
    source = CRD_SOURCES.get(group)
    if refs.builtin(api_version, kind) is not None:
        fix = f"this cluster does not serve {api_version}; check the apiVersion (kubectl api-resources)"
    elif group:
        fix = f"install its CRDs first ({source})" if source else "install the CRDs that define it first"
        fix += "; kubectl api-resources lists what the cluster knows"
    else:
        fix = "check the kind and apiVersion (kubectl api-resources lists what the cluster knows)"
    return NotFound(f"the cluster does not know kind {kind} ({api_version})", fix, status=404, reason="NotFound")


def _unreachable_fix(target: str | None) -> str:
    if target == "embedded":
        return "start the embedded platform: run `labkit up` (or rerun the notebook's setup cell)"
    if target == "kind":
        return (
            "check Docker runs and the kind cluster exists (`kind get clusters`); `labkit up --target kind` creates it"
        )
    if target == "eks":
        return "check the cluster exists and your network reaches it (`aws eks describe-cluster`); refresh credentials"
    return "check the cluster is running and your kubeconfig points at it (`kubectl cluster-info`)"


def _connection_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    text = str(inner)
    for marker, short in (
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
        ("Connection reset", "connection reset"),
        ("Connection aborted", "connection aborted"),
        ("RemoteDisconnected", "server closed the connection"),
    ):
        if marker in text:
            return short
    return type(inner).__name__ + (f": {text[:200]}" if text else "")


def _causes(status: dict[str, Any]) -> list[str]:
    causes = (status.get("details") or {}).get("causes") or []
    out = []
    for c in causes:
        if isinstance(c, dict):
            field = c.get("field") or ""
            message = c.get("message") or c.get("reason") or ""
            out.append(f"{field}: {message}" if field else str(message))
    return out


def to_labkit_error(exc: BaseException, info: RequestInfo, *, attempts: int = 1) -> LabkitError:
    """Translate a client failure into the kit's error family.

    Args:
        exc: an ``ApiException`` (status, reason, body, headers) or a transport error.
        info: what the request was about.
        attempts: how many tries were made (shown when retries were used up).
    """
    status_code = getattr(exc, "status", None)
    if not isinstance(status_code, int) or status_code == 0:
        if isinstance(status_code, int) and "SSL" in str(getattr(exc, "reason", "")):
            return Unreachable(
                f"TLS handshake with the Kubernetes API at {info.server or 'the cluster'} failed",
                "the kubeconfig's certificate authority does not match the server; refresh the kubeconfig",
                reason="TLS",
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return Unreachable(
            f"cannot reach the Kubernetes API at {info.server or 'the cluster'} ({_connection_reason(exc)}){tries}",
            _unreachable_fix(info.target),
            reason="Unreachable",
        )
    status = status_body(getattr(exc, "body", None))
    message = str(status.get("message") or getattr(exc, "reason", "") or "").strip()
    reason = str(status.get("reason") or "")
    kw = {"status": status_code}
    if status_code == 404:
        details = status.get("details") or {}
        if details.get("kind") == "namespaces" or (
            info.namespace and message == f'namespaces "{info.namespace}" not found'
        ):
            ns = details.get("name") or info.namespace
            return NotFound(
                f"namespace {ns} does not exist",
                f"create it first (apply its Namespace manifest, or kubectl create namespace {ns})",
                reason="NotFound",
                **kw,
            )
        type_missing = "could not find the requested resource" in message or "page not found" in message
        if info.kind and type_missing and not details.get("name"):
            return unknown_kind_error(info.kind, info.api_version)
        if info.kind and info.name:
            ns = f" -n {info.namespace}" if info.namespace else ""
            return NotFound(
                f"{info.what} not found",
                f"check the name and namespace (kubectl get {info.plural_hint}{ns})",
                reason="NotFound",
                **kw,
            )
        return NotFound(
            f"{info.what}: {message or 'not found'}", "check the name, namespace and kind", reason="NotFound", **kw
        )
    if status_code == 409:
        if reason == "AlreadyExists":
            return Conflict(
                f"{info.what} already exists",
                "apply it instead (server-side apply updates in place), or delete it first",
                reason="AlreadyExists",
                **kw,
            )
        if "conflict" in message.lower() and ("apply" in message.lower() or "manager" in message.lower()):
            return Conflict(
                f"{info.what}: {message}",
                "another field manager owns these fields: re-apply with force=True "
                "(kubectl apply --server-side --force-conflicts) to take them over, or drop them from your manifest",
                reason="Conflict",
                **kw,
            )
        return Conflict(
            f"{info.what} changed since it was read: {message}",
            "read it again and retry the change",
            reason=reason or "Conflict",
            **kw,
        )
    if status_code in (400, 415, 422):
        causes = _causes(status)
        what = f"{info.what} was rejected: {message}"
        if causes and not all(c in message for c in causes):
            what += "\n    " + "\n    ".join(causes)
        if status_code == 415:
            fix = "custom resources accept merge, JSON or apply patches, not strategic merge patches"
        elif status_code == 422:
            explain = f" (kubectl explain {info.kind.lower()})" if info.kind else ""
            fix = f"fix the fields named above in the manifest{explain}"
        else:
            fix = "fix the request or manifest; the message above names the problem"
        return Invalid(
            what,
            fix,
            reason=reason or {400: "BadRequest", 415: "UnsupportedMediaType"}.get(status_code, "Invalid"),
            **kw,
        )
    if status_code in (401, 403):
        if status_code == 401:
            fix = "your credentials were refused: refresh the kubeconfig (on EKS: aws eks update-kubeconfig)"
        else:
            verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                info.method.upper(), info.method.lower()
            )
            fix = f"ask for RBAC access; check with: kubectl auth can-i {verb} {info.plural_hint}"
            if info.namespace:
                fix += f" -n {info.namespace}"
        return Forbidden(
            f"not allowed: {info.what}: {message}",
            fix,
            reason=reason or ("Unauthorized" if status_code == 401 else "Forbidden"),
            **kw,
        )
    if status_code == 410:
        return ApiError(
            f"{info.what}: {message or 'resource version too old'}",
            "list again and watch from the new resourceVersion",
            reason=reason or "Expired",
            **kw,
        )
    if status_code == 429 or status_code >= 500:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        kind = "throttled the request" if status_code == 429 else "failed"
        return ServerError(
            f"the Kubernetes API {kind} ({status_code} {reason or getattr(exc, 'reason', '')}) for {info.what}"
            f"{tries}: {message}".rstrip(": "),
            "the API server is overloaded or unhealthy: wait a moment and rerun the cell"
            + ("; `labkit doctor` checks the embedded platform" if info.target == "embedded" else ""),
            reason=reason or ("TooManyRequests" if status_code == 429 else "InternalError"),
            **kw,
        )
    return ApiError(f"{info.what}: {status_code} {message}", "see the message above", reason=reason, **kw)


def with_context(err: LabkitError, prefix: str) -> LabkitError:
    """A copy of ``err`` whose message starts with ``prefix`` (e.g. which manifest was being applied)."""
    if isinstance(err, ApiError):
        new: LabkitError = type(err)(f"{prefix}: {err.what}", err.fix, status=err.status, reason=err.reason)
    else:
        new = type(err)(f"{prefix}: {err.what}", err.fix)
    new.__cause__ = err.__cause__
    return new
