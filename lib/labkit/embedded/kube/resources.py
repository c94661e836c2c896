"""The resource types the embedded API server serves: built-ins and CRD-defined ones.

Names, short names, categories, subresources and verbs are what a real cluster (1.3x)
reports in discovery, so ``kubectl get all``, ``kubectl get deploy`` and friends resolve
the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import Invalid, NotFound

#: The verbs of an ordinary resource.
FULL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
#: Namespaces cannot be deleted as a collection.
NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")

#: Verbs of each subresource, as discovery lists them (``pods/log`` only reads, ``pods/binding`` only creates).
SUBRESOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "log": ("get",),
    "binding": ("create",),
    "eviction": ("create",),
    "ephemeralcontainers": ("get", "patch", "update"),
    "resize": ("get", "patch", "update"),
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
    "proxy": ("create", "delete", "get", "patch", "update"),
    "finalize": ("update",),
    "token": ("create",),
}


@dataclass(frozen=True)
class ScalePaths:
    """Where a scalable resource keeps its replica counts (CRD ``subresources.scale``).

    Attributes:
        spec_replicas: JSON path of the desired count, e.g. ``.spec.replicas``.
        status_replicas: JSON path of the observed count, e.g. ``.status.replicas``.
        label_selector: JSON path of the serialized label selector, when there is one.
    """

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None


@dataclass(frozen=True)
class ResourceType:
    """One resource type at one API version.

    Attributes:
        group: API group; ``""`` for the core group.
        version: API version, e.g. ``v1``.
        kind: object kind, e.g. ``Deployment``.
        plural: resource name in URLs, e.g. ``deployments``.
        singular: singular name, e.g. ``deployment``.
        namespaced: whether objects live in a namespace.
        short_names: aliases kubectl accepts (``deploy``).
        categories: category names (``all``).
        subresources: subresource names (``status``, ``scale``, ``log``...).
        verbs: verbs of the main resource.
        builtin: False for CRD-defined types (no strategic merge patch for them).
        scale: replica paths for the ``scale`` subresource, when it has one.
        schema: the OpenAPI v3 schema of a CRD version (``openAPIV3Schema``), if any.
        printer_columns: a CRD version's ``additionalPrinterColumns``.
        storage: whether this version is the one objects are stored in.
    """

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = FULL_VERBS
    builtin: bool = True
    scale: ScalePaths | None = None
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False, repr=False)
    storage: bool = True

    @property
    def key(self) -> str:
        """Store key: ``plural`` for the core group, else ``plural.group``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, else ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        """``Kind.group`` (``Kind`` for core), as API error messages name a kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_status(self) -> bool:
        """Whether writes to the main resource leave ``status`` alone."""
        return "status" in self.subresources

    @property
    def list_kind(self) -> str:
        """Kind of a list of these objects, e.g. ``DeploymentList``."""
        return f"{self.kind}List"


def _t(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    verbs: tuple[str, ...] = FULL_VERBS,
    scale: ScalePaths | None = None,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=sub,
        verbs=verbs,
        scale=scale,
    )


_ALL = ("all",)
_REPLICAS = ScalePaths(".spec.replicas", ".status.replicas", ".status.selector")

#: Every built-in type the embedded server serves.
BUILTINS: tuple[ResourceType, ...] = (
    # core/v1
    _t(
        "",
        "v1",
        "Namespace",
        "namespaces",
        namespaced=False,
        short=("ns",),
        sub=("finalize", "status"),
        verbs=NAMESPACE_VERBS,
    ),
    _t("", "v1", "Node", "nodes", namespaced=False, short=("no",), sub=("proxy", "status")),
    _t(
        "",
        "v1",
        "Pod",
        "pods",
        short=("po",),
        categories=_ALL,
        sub=(
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ),
    ),
    _t("", "v1", "Service", "services", short=("svc",), categories=_ALL, sub=("proxy", "status")),
    _t("", "v1", "Endpoints", "endpoints", short=("ep",)),
    _t("", "v1", "ConfigMap", "configmaps", short=("cm",)),
    _t("", "v1", "Secret", "secrets"),
    _t("", "v1", "ServiceAccount", "serviceaccounts", short=("sa",), sub=("token",)),
    _t("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), sub=("status",)),
    _t("", "v1", "PersistentVolume", "persistentvolumes", namespaced=False, short=("pv",), sub=("status",)),
    _t("", "v1", "Event", "events", short=("ev",)),
    _t("", "v1", "ResourceQuota", "resourcequotas", short=("quota",), sub=("status",)),
    _t("", "v1", "LimitRange", "limitranges", short=("limits",)),
    # apps/v1
    _t(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short=("deploy",),
        categories=_ALL,
        sub=("scale", "status"),
        scale=_REPLICAS,
    ),
    _t(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        short=("rs",),
        categories=_ALL,
        sub=("scale", "status"),
        scale=_REPLICAS,
    ),
    _t(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short=("sts",),
        categories=_ALL,
        sub=("scale", "status"),
        scale=_REPLICAS,
    ),
    _t("apps", "v1", "DaemonSet", "daemonsets", short=("ds",), categories=_ALL, sub=("status",)),
    _t("apps", "v1", "ControllerRevision", "controllerrevisions"),
    # batch/v1
    _t("batch", "v1", "Job", "jobs", categories=_ALL, sub=("status",)),
    _t("batch", "v1", "CronJob", "cronjobs", short=("cj",), categories=_ALL, sub=("status",)),
    # autoscaling/v2
    _t(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        short=("hpa",),
        categories=_ALL,
        sub=("status",),
    ),
    # discovery.k8s.io/v1
    _t("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    # rbac.authorization.k8s.io/v1
    _t("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _t("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _t("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    _t("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    # networking.k8s.io/v1
    _t("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short=("netpol",)),
    _t("networking.k8s.io", "v1", "Ingress", "ingresses", short=("ing",), sub=("status",)),
    _t("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False),
    # policy/v1
    _t("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), sub=("status",)),
    # events.k8s.io/v1
    _t("events.k8s.io", "v1", "Event", "events", short=("ev",)),
    # coordination.k8s.io/v1
    _t("coordination.k8s.io", "v1", "Lease", "leases"),
    # scheduling.k8s.io/v1
    _t("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short=("pc",)),
    # storage.k8s.io/v1
    _t("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short=("sc",)),
    # apiextensions.k8s.io/v1
    _t(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        namespaced=False,
        short=("crd", "crds"),
        categories=("api-extensions",),
        sub=("status",),
    ),
)

#: Store key of CRDs; the store registers and unregisters types when these objects come and go.
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


class ResourceRegistry:
    """The resource types known to one API server; thread-safe.

    Built-ins are registered at construction. CRD-defined types come and go with
    :meth:`register_crd` and :meth:`unregister_crd` (the store calls them when CRD
    objects are created and deleted).
    """

    def __init__(self, builtins: tuple[ResourceType, ...] = BUILTINS) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, ResourceType] = {}
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for rt in builtins:
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        if rt.storage or rt.key not in self._by_key:
            self._by_key[rt.key] = rt
        self._by_gvr[(rt.group, rt.version, rt.plural)] = rt
        self._by_kind[(rt.api_version, rt.kind)] = rt

    def get(self, key: str) -> ResourceType:
        """The type stored under ``key`` (``pods``, ``deployments.apps``).

        Raises:
            NotFound: no such type is served (e.g. a custom resource whose CRD is missing).
        """
        rt = self._by_key.get(key)
        if rt is None:
            err = NotFound(
                "the server could not find the requested resource",
                f"no resource type {key!r} is served; for a custom resource, create its CRD first",
                status=404,
                reason="NotFound",
            )
            err.details = {"group": key.partition(".")[2], "kind": key.partition(".")[0]}  # type: ignore[attr-defined]
            raise err
        return rt

    def find(self, key: str) -> ResourceType | None:
        """Like :meth:`get` but returns None for an unknown key."""
        return self._by_key.get(key)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/{group}/{version}/{plural}`` (core: group ``""``), or None."""
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The type of objects with this ``apiVersion`` and ``kind``, or None."""
        return self._by_kind.get((api_version, kind))

    def resolve(self, name: str) -> ResourceType | None:
        """Resolve a name as kubectl does: plural, singular, short name or kind, optionally ``.group``."""
        lowered = name.lower()
        base, _, group = lowered.partition(".")
        for rt in self.all():
            if group and rt.group != group:
                continue
            if base in (rt.plural, rt.singular, rt.kind.lower()) or base in rt.short_names:
                return self._by_key.get(rt.key, rt)
        return None

    def all(self) -> list[ResourceType]:
        """Every served type at every served version (a CRD's versions each appear)."""
        with self._lock:
            return list(self._by_gvr.values())

    def groups(self) -> dict[str, list[str]]:
        """Served versions per group (core group as ``""``), preferred version first."""
        out: dict[str, list[str]] = {}
        for rt in self.all():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                if rt.storage:
                    versions.insert(0, rt.version)
                else:
                    versions.append(rt.version)
        return out

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Register the served versions of an ``apiextensions.k8s.io/v1`` CRD object.

        Raises:
            Invalid: the CRD lacks group, names or versions.
        """
        types = types_from_crd(crd)
        with self._lock:
            self._remove(types[0].group, types[0].plural)
            for rt in types:
                self._add(rt)
        return types

    def unregister_crd(self, crd: dict[str, Any]) -> None:
        """Forget every version of the type a CRD object defined."""
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        plural = (spec.get("names") or {}).get("plural", "")
        with self._lock:
            self._remove(group, plural)

    def _remove(self, group: str, plural: str) -> None:
        for gvr, rt in list(self._by_gvr.items()):
            if rt.group == group and rt.plural == plural and not rt.builtin:
                del self._by_gvr[gvr]
                self._by_key.pop(rt.key, None)
                self._by_kind.pop((rt.api_version, rt.kind), None)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types (one per served version) a CRD object defines; storage version first.

    Raises:
        Invalid: the CRD lacks group, names or served versions.
    """
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    plural = names.get("plural")
    kind = names.get("kind")
    if not group or not plural or not kind:
        raise Invalid(
            "CustomResourceDefinition needs spec.group, spec.names.plural and spec.names.kind",
            "fill in spec.group and spec.names",
            status=422,
            reason="Invalid",
        )
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    out: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        sub = version.get("subresources") or {}
        subresources = tuple(sorted(k for k in ("status", "scale") if k in sub))
        scale = None
        if "scale" in sub:
            sc = sub["scale"] or {}
            scale = ScalePaths(
                sc.get("specReplicasPath", ".spec.replicas"),
                sc.get("statusReplicasPath", ".status.replicas"),
                sc.get("labelSelectorPath"),
            )
        out.append(
            ResourceType(
                group=group,
                version=version["name"],
                kind=kind,
                plural=plural,
                singular=names.get("singular") or kind.lower(),
                namespaced=namespaced,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                builtin=False,
                scale=scale,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                storage=bool(version.get("storage", False)),
            )
        )
    if not out:
        raise Invalid(
            f"CustomResourceDefinition {plural}.{group} serves no version",
            "set served: true on at least one entry of spec.versions",
            status=422,
            reason="Invalid",
        )
    if not any(rt.storage for rt in out):
        out[0] = _replace_storage(out[0])
    out.sort(key=lambda rt: not rt.storage)
    return out


def _replace_storage(rt: ResourceType) -> ResourceType:
    from dataclasses import replace

    return replace(rt, storage=True)
