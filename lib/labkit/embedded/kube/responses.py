"""Wire format of the embedded API server: Status objects, list envelopes, watch events.

Pure functions from plain data to what kube-apiserver writes on the wire (JSON), so they are
tested without a server.
"""

from __future__ import annotations

import json
from typing import Any

from labkit.errors import ApiError

JSON = "application/json"

# The reason kube-apiserver puts in a Status for each HTTP code (k8s.io/apimachinery metav1.StatusReason).
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# Reasons whose Status.details.kind is the object's Kind rather than the resource (plural).
_KIND_REASONS = frozenset({"Invalid"})

PATCH_TYPES: dict[str, str] = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, as the API server writes them."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def status_failure(code: int, message: str, reason: str | None = None, details: dict | None = None) -> dict:
    """A ``Status`` object for a failed request.

    Args:
        code: the HTTP status code.
        message: human-readable description (``pods "x" not found``).
        reason: machine-readable reason; defaults from the code.
        details: the ``details`` object (name, group, kind, causes, retryAfterSeconds); omitted when None.
    """
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, ""),
    }
    if details is not None:
        out["details"] = details
    out["code"] = code
    return out


def status_success(details: dict | None = None) -> dict:
    """A ``Status`` object for a successful request that returns no object (e.g. a deletion)."""
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        out["details"] = details
    return out


def object_details(name: str | None, group: str, resource: str, uid: str | None = None) -> dict:
    """``Status.details`` naming an object: name, group (omitted for core) and kind (the plural)."""
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    out["kind"] = resource
    if uid:
        out["uid"] = uid
    return out


def status_from_error(
    exc: ApiError,
    *,
    name: str | None = None,
    group: str = "",
    resource: str = "",
    kind: str = "",
) -> dict:
    """The Status object for an error the store raised.

    The store sets ``status``, ``reason`` and a message (``exc.what``) as kube-apiserver would;
    this adds ``details`` from the request (and the error's ``causes`` when it carries any).
    """
    code = exc.status or 500
    reason = exc.reason or REASONS.get(code, "")
    details: dict[str, Any] | None = None
    if resource and code in (404, 409, 422):
        details = object_details(name, group, kind if reason in _KIND_REASONS and kind else resource)
    causes = getattr(exc, "causes", None)
    if causes:
        details = details or {}
        details["causes"] = list(causes)
    extra = getattr(exc, "details", None)
    if isinstance(extra, dict):
        details = {**(details or {}), **extra}
    return status_failure(code, exc.what, reason, details)


def not_found_path() -> dict:
    """The Status kube-apiserver answers for a path it does not serve."""
    return status_failure(404, "the server could not find the requested resource", "NotFound", {})


def method_not_allowed(method: str, what: str) -> dict:
    """The Status for a verb the resource does not support."""
    return status_failure(405, f"{what} does not allow the verb {method}", "MethodNotAllowed", {})


def unsupported_patch(accepted: list[str]) -> dict:
    """The Status for a PATCH in a content type the resource does not take (415)."""
    return status_failure(
        415,
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
        "UnsupportedMediaType",
    )


def unsupported_body(content_type: str) -> dict:
    """The Status for a request body in an encoding the embedded server does not decode (415).

    kube-apiserver also takes protobuf for built-in kinds, and imperative ``kubectl create <kind>``
    sends it; the message says how to get the same result with JSON.
    """
    return status_failure(
        415,
        "the body of the request was in an unknown format - accepted media types include: application/json, "
        f"application/yaml (the embedded API server does not decode {content_type}, which `kubectl create "
        "<kind>` sends; use `kubectl apply -f FILE`, or `kubectl create ... --dry-run=client -o yaml | "
        "kubectl apply -f -`)",
        "UnsupportedMediaType",
    )


def too_many_requests(retry_after: int) -> dict:
    """The Status for a throttled request (429)."""
    return status_failure(
        429,
        "Too many requests, please try again later.",
        "TooManyRequests",
        {"causes": [{"message": "the server is overloaded (injected fault)"}], "retryAfterSeconds": retry_after},
    )


def internal_error(message: str) -> dict:
    """The Status for a server-side failure (500)."""
    return status_failure(
        500,
        f"Internal error occurred: {message}",
        "InternalError",
        {"causes": [{"message": message}]},
    )


def list_envelope(
    kind: str,
    api_version: str,
    items: list[dict],
    resource_version: int | str,
    *,
    continue_token: str | None = None,
    remaining: int | None = None,
) -> dict:
    """A ``<Kind>List`` object with ``metadata.resourceVersion`` (and ``continue`` when paginated)."""
    meta: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if continue_token:
        meta["continue"] = continue_token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
    return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": items}


def watch_event(event_type: str, obj: dict) -> bytes:
    """One watch event as a JSON line: ``{"type": ..., "object": ...}`` plus a newline."""
    return dumps({"type": event_type, "object": obj}) + b"\n"


def bookmark(kind: str, api_version: str, resource_version: int | str, *, initial_events_end: bool = False) -> dict:
    """The object of a BOOKMARK event: only kind, apiVersion and metadata.resourceVersion."""
    meta: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": kind, "apiVersion": api_version, "metadata": meta}


def expired(message: str) -> dict:
    """The Status of a watch ERROR event for a resource version that is too old (410 Expired)."""
    return status_failure(410, message, "Expired")
