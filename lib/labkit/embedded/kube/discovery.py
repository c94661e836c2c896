"""Discovery documents of the embedded API server: /version, /api, /apis and resource lists.

Pure functions from the resource registry's types to the legacy (v1) discovery format that
kubectl, the official client's ``DynamicClient`` and client-go read. Aggregated discovery
(``apidiscovery.k8s.io/v2``) is not served: clients that ask for it get the legacy documents
with ``Content-Type: application/json`` and fall back, as they do with older servers.
"""

from __future__ import annotations

import base64
import hashlib
import platform
import re
from collections.abc import Iterable
from typing import Any, Protocol

# The Kubernetes version the embedded server reports (EKS's current line).
KUBE_MAJOR, KUBE_MINOR, KUBE_PATCH = 1, 33, 1
GIT_VERSION = f"v{KUBE_MAJOR}.{KUBE_MINOR}.{KUBE_PATCH}-labkit"
BUILD_DATE = "2025-06-01T00:00:00Z"


class ResourceTypeLike(Protocol):
    """What discovery reads from a :class:`labkit.embedded.kube.resources.ResourceType`."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    subresources: tuple[str, ...]
    verbs: tuple[str, ...]
    builtin: bool


# (group, version, kind, verbs) of each subresource's entry in a resource list; None = the parent's own.
_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None, tuple[str, ...]]] = {
    "status": (None, None, None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "log": (None, None, None, ("get",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "binding": ("", "v1", "Binding", ("create",)),
    "finalize": (None, None, None, ("update",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "proxy": ("", "v1", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
    "ephemeralcontainers": (None, None, None, ("get", "patch", "update")),
    "resize": (None, None, None, ("get", "patch", "update")),
    "approval": (None, None, None, ("get", "patch", "update")),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
}


def version_info() -> dict[str, str]:
    """The ``/version`` document with every field of ``version.Info``."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine or "amd64")
    return {
        "major": str(KUBE_MAJOR),
        "minor": str(KUBE_MINOR),
        "emulationMajor": str(KUBE_MAJOR),
        "emulationMinor": str(KUBE_MINOR),
        "minCompatibilityMajor": str(KUBE_MAJOR),
        "minCompatibilityMinor": str(KUBE_MINOR - 1),
        "gitVersion": GIT_VERSION,
        "gitCommit": hashlib.sha1(GIT_VERSION.encode()).hexdigest(),  # an identifier, not security
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": f"linux/{arch}",
    }


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting the preferred version first: GA > beta > alpha, higher numbers first, others last."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, "")


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """An opaque per-type hash, like kube-apiserver's ``storageVersionHash`` (8 bytes, base64)."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def api_versions(server_address: str) -> dict[str, Any]:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_versions(types: Iterable[ResourceTypeLike]) -> dict[str, list[str]]:
    """Group name -> served versions (preferred first), groups in registration order (built-ins first)."""
    order: dict[str, set[str]] = {}
    builtin_groups: list[str] = []
    crd_groups: list[str] = []
    for rt in types:
        if not rt.group:
            continue
        if rt.group not in order:
            order[rt.group] = set()
            (builtin_groups if rt.builtin else crd_groups).append(rt.group)
        order[rt.group].add(rt.version)
    names = builtin_groups + sorted(g for g in crd_groups if g not in builtin_groups)
    return {g: sorted(order[g], key=version_priority) for g in names}


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(types: Iterable[ResourceTypeLike]) -> dict[str, Any]:
    """``/apis``: every named group with its versions."""
    groups = [_group_doc(g, vs) for g, vs in _group_versions(types).items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(types: Iterable[ResourceTypeLike], group: str) -> dict[str, Any] | None:
    """``/apis/{group}``; None when no resource is served in that group."""
    versions = _group_versions(types).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_entry(rt: ResourceTypeLike) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = storage_version_hash(rt.group, rt.version, rt.kind)
    return entry


def _subresource_entry(rt: ResourceTypeLike, sub: str) -> dict[str, Any]:
    group, version, kind, verbs = _SUBRESOURCES.get(sub, (None, None, None, ("get",)))
    entry: dict[str, Any] = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced}
    if group is not None and (group, version) != (rt.group, rt.version):
        entry["group"] = group
        entry["version"] = version
    entry["kind"] = kind or rt.kind
    entry["verbs"] = list(verbs)
    return entry


def api_resource_list(types: Iterable[ResourceTypeLike], group: str, version: str) -> dict[str, Any] | None:
    """``/api/v1`` or ``/apis/{group}/{version}``: the resources and subresources served there; None if none."""
    resources: list[dict[str, Any]] = []
    for rt in sorted((t for t in types if t.group == group and t.version == version), key=lambda t: t.plural):
        resources.append(_resource_entry(rt))
        resources.extend(_subresource_entry(rt, sub) for sub in rt.subresources)
    if not resources:
        return None
    group_version = f"{group}/{version}" if group else version
    doc: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        doc["apiVersion"] = "v1"
    doc["groupVersion"] = group_version
    doc["resources"] = resources
    return doc


def root_paths(types: Iterable[ResourceTypeLike]) -> dict[str, list[str]]:
    """``/``: the paths the server serves, as kube-apiserver lists them."""
    types = list(types)
    paths = {"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/openapi/v3", "/version"}
    for group, versions in _group_versions(types).items():
        paths.add(f"/apis/{group}")
        paths.update(f"/apis/{group}/{v}" for v in versions)
    return {"paths": sorted(paths)}
