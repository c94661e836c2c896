"""OpenAPI v3 documents of the embedded API server, and server-side field validation.

Schemas of built-in kinds come from the official client's model classes
(``kubernetes.client.models``: ``openapi_types``, ``attribute_map``, the property docstrings
for descriptions and the setters' ``must not be None`` checks for required fields); schemas of
custom resources come from their CRD's ``openAPIV3Schema``. Documents are built per group
version on first use and cached.

The PATCH operations carry the ``fieldValidation`` parameter with ``x-kubernetes-group-version-kind``,
which is how ``kubectl`` (1.27+) learns that the server validates fields itself: it then sends
``fieldValidation=Strict`` and skips client-side validation. :func:`unknown_fields` implements that
server-side check (unknown fields are reported as kube-apiserver's strict decoder reports them).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .schema import schema_for

META_PKG = "io.k8s.apimachinery.pkg.apis.meta.v1"
# Model classes that live in apimachinery's meta/v1 package.
_META_KINDS = frozenset(
    {
        "ObjectMeta",
        "ListMeta",
        "OwnerReference",
        "ManagedFieldsEntry",
        "LabelSelector",
        "LabelSelectorRequirement",
        "Status",
        "StatusDetails",
        "StatusCause",
        "Condition",
        "DeleteOptions",
        "Preconditions",
        "APIResource",
        "APIResourceList",
        "APIGroup",
        "APIGroupList",
        "APIVersions",
        "GroupVersionForDiscovery",
        "ServerAddressByClientCIDR",
        "WatchEvent",
    }
)
# Disambiguating prefixes the client puts on some model names (``CoreV1Event``) -> API group.
_PREFIX_GROUPS = {
    "Core": "",
    "Events": "events.k8s.io",
    "Rbac": "rbac.authorization.k8s.io",
    "Storage": "storage.k8s.io",
    "Discovery": "discovery.k8s.io",
    "Apiextensions": "apiextensions.k8s.io",
    "Apiregistration": "apiregistration.k8s.io",
    "Admissionregistration": "admissionregistration.k8s.io",
    "Authentication": "authentication.k8s.io",
    "Flowcontrol": "flowcontrol.apiserver.k8s.io",
    "Resource": "resource.k8s.io",
}
# Classes that built-in kinds of other groups embed (a pod template) or serve (Scale), with their group.
_SEEDS = (
    ("V1PodTemplate", ""),
    ("V1ReplicationController", ""),
    ("V1PersistentVolumeClaim", ""),
    ("V1ObjectReference", ""),
    ("V1Scale", "autoscaling"),
)
_MODEL_RE = re.compile(r"^([A-Z][a-z]+)?(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)$")
_LIST_RE = re.compile(r"^list\[(.+)\]$")
_DICT_RE = re.compile(r"^dict[(\[](\w+), ?(.+)[)\]]$")
_PRIMITIVES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "object": {},
}
OBJECT_META_REF = f"{META_PKG}.ObjectMeta"


class ResourceTypeLike(Protocol):
    """What OpenAPI generation reads from a :class:`labkit.embedded.kube.resources.ResourceType`."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...]
    builtin: bool
    schema: dict[str, Any] | None

    @property
    def api_version(self) -> str: ...


def package(group: str, version: str) -> str:
    """The OpenAPI definition prefix of a group version (``io.k8s.api.apps.v1``)."""
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}"
    if group == "apiregistration.k8s.io":
        return f"io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}"
    return f"io.k8s.api.{group.split('.', 1)[0] if group else 'core'}.{version}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# ---------------------------------------------------------------------------------------------
# built-in schemas from the client's models


class _ModelCatalog:
    """Schemas of every client model class, named as kube-apiserver names them."""

    def __init__(self) -> None:
        from kubernetes.client import models

        self._models = models
        self._names: dict[str, str] = {}
        self._by_name: dict[str, str] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._rooted: set[tuple[str, str, str]] = set()

    def model(self, cls_name: str) -> Any:
        return getattr(self._models, cls_name, None)

    def root_class(self, group: str, version: str, kind: str) -> str | None:
        """The client model class of a top-level kind (``V1Deployment``, ``CoreV1Event``)."""
        vpart = version[0].upper() + version[1:]
        prefix = next((p for p, g in _PREFIX_GROUPS.items() if g == group), None)
        for name in ([f"{prefix}{vpart}{kind}"] if prefix else []) + [f"{vpart}{kind}"]:
            if hasattr(self._models, name) and hasattr(getattr(self._models, name), "openapi_types"):
                return name
        return None

    def assign_groups(self, roots: Iterable[tuple[str, str]]) -> None:
        """Name every class reachable from ``roots`` (class name, group), earlier roots winning."""
        for cls_name, group in roots:
            stack = [cls_name]
            while stack:
                name = stack.pop()
                if name in self._names:
                    continue
                canonical = self._canonical(name, group)
                self._names[name] = canonical
                self._by_name.setdefault(canonical, name)
                cls = self.model(name)
                for typ in getattr(cls, "openapi_types", {}).values():
                    stack.extend(c for c in _classes_in(typ) if c not in self._names)

    def _canonical(self, cls_name: str, group: str) -> str:
        m = _MODEL_RE.match(cls_name)
        if not m:
            return cls_name
        prefix, vpart, kind = m.groups()
        version = vpart.lower()
        if kind in _META_KINDS:
            return f"{META_PKG}.{kind}"
        if prefix in _PREFIX_GROUPS:
            group = _PREFIX_GROUPS[prefix]
        return f"{package(group, version)}.{kind}"

    def name(self, cls_name: str) -> str:
        if cls_name not in self._names:
            self.assign_groups([(cls_name, "")])
        return self._names[cls_name]

    def add_roots(self, types: Iterable[ResourceTypeLike]) -> None:
        """Name the classes reachable from built-in ``types`` not seen before (core group first)."""
        roots = [] if self._rooted else list(_SEEDS)
        for rt in sorted((t for t in types if t.builtin), key=lambda t: (t.group != "", t.group)):
            if (rt.group, rt.version, rt.kind) in self._rooted:
                continue
            self._rooted.add((rt.group, rt.version, rt.kind))
            for kind in (rt.kind, f"{rt.kind}List"):
                cls = self.root_class(rt.group, rt.version, kind)
                if cls:
                    roots.append((cls, rt.group))
        self.assign_groups(roots)

    def by_name(self, canonical: str) -> dict[str, Any]:
        """The schema of a canonically named definition; empty when unknown."""
        cls = self._by_name.get(canonical)
        return self.schema(cls) if cls else {}

    def schema(self, cls_name: str) -> dict[str, Any]:
        """The schema of one model class (without its dependencies)."""
        cached = self._schemas.get(cls_name)
        if cached is not None:
            return cached
        cls = self.model(cls_name)
        props: dict[str, Any] = {}
        required: list[str] = []
        for attr, typ in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            prop = self.type_schema(typ)
            doc = _description(getattr(cls, attr, None))
            if doc:
                prop = {"allOf": [prop], "description": doc} if "$ref" in prop else {**prop, "description": doc}
            props[json_name] = prop
            if _required(getattr(cls, attr, None)):
                required.append(json_name)
        out: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            out["required"] = required
        self._schemas[cls_name] = out
        return out

    def annotate(self, cls_name: str, tree: Any) -> None:
        """Mark list fields with their merge semantics from the store's schema tree (:mod:`.schema`).

        Adds ``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key`` (what kubectl reads to
        compute a strategic merge patch) and ``x-kubernetes-list-type``/``x-kubernetes-list-map-keys``.
        """
        cls = self.model(cls_name)
        if cls is None or tree is None:
            return
        props = self.schema(cls_name)["properties"]
        by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
        for field_name, sub in (getattr(tree, "fields", None) or {}).items():
            attr = by_json.get(field_name)
            if attr is None:
                continue
            prop = props[field_name]
            target = prop["allOf"][0] if "allOf" in prop else prop
            if sub.patch_strategy:
                target["x-kubernetes-patch-strategy"] = sub.patch_strategy
            if sub.patch_key:
                target["x-kubernetes-patch-merge-key"] = sub.patch_key
            if sub.list_type and sub.list_type != "atomic":
                target["x-kubernetes-list-type"] = sub.list_type
                if sub.list_keys:
                    target["x-kubernetes-list-map-keys"] = list(sub.list_keys)
            typ = cls.openapi_types[attr]
            m = _LIST_RE.match(typ)
            if m:
                self.annotate(m.group(1), sub.items)
            elif typ not in _PRIMITIVES and not _DICT_RE.match(typ):
                self.annotate(typ, sub)

    def type_schema(self, typ: str) -> dict[str, Any]:
        if typ in _PRIMITIVES:
            return dict(_PRIMITIVES[typ])
        m = _LIST_RE.match(typ)
        if m:
            return {"type": "array", "items": self.type_schema(m.group(1))}
        m = _DICT_RE.match(typ)
        if m:
            return {"type": "object", "additionalProperties": self.type_schema(m.group(2))}
        return _ref(self.name(typ))

    def closure(self, cls_names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Schemas (by canonical name) of the classes and everything they reference."""
        out: dict[str, dict[str, Any]] = {}
        stack = list(cls_names)
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name in seen or self.model(name) is None:
                continue
            seen.add(name)
            out[self.name(name)] = self.schema(name)
            for typ in self.model(name).openapi_types.values():
                stack.extend(_classes_in(typ))
        return out


def _classes_in(typ: str) -> list[str]:
    if typ in _PRIMITIVES:
        return []
    m = _LIST_RE.match(typ)
    if m:
        return _classes_in(m.group(1))
    m = _DICT_RE.match(typ)
    if m:
        return _classes_in(m.group(2))
    return [typ]


def _description(prop: Any) -> str:
    doc = getattr(prop, "__doc__", None) or ""
    parts = [p.strip() for p in doc.split("\n\n")]
    if len(parts) < 3:
        return ""
    text = parts[1].replace("# noqa: E501", "").strip()
    return "" if text.startswith(":return:") else text


def _required(prop: Any) -> bool:
    setter = getattr(prop, "fset", None)
    consts = getattr(getattr(setter, "__code__", None), "co_consts", ())
    return any(isinstance(c, str) and "must not be `None`" in c for c in consts)


_catalog: _ModelCatalog | None = None
_catalog_lock = threading.Lock()


def catalog(types: Iterable[ResourceTypeLike] = ()) -> _ModelCatalog:
    """The shared model catalog, with groups assigned from the built-in ``types`` (core first)."""
    global _catalog
    with _catalog_lock:
        if _catalog is None:
            _catalog = _ModelCatalog()
        _catalog.add_roots(types)
        return _catalog


# ---------------------------------------------------------------------------------------------
# CRD schemas


_CRD_ROOTS: dict[int, tuple[Any, dict[str, Any]]] = {}


def crd_root_schema(rt: ResourceTypeLike) -> dict[str, Any]:
    """A custom resource's schema: its ``openAPIV3Schema`` with apiVersion, kind and metadata filled in.

    Cached per schema object (the registry keeps a CRD version's schema for as long as it serves it).
    """
    hit = _CRD_ROOTS.get(id(rt.schema))
    if hit is not None and hit[0] is rt.schema:
        return hit[1]
    schema = _crd_root(rt)
    if rt.schema is not None:
        if len(_CRD_ROOTS) > 512:
            _CRD_ROOTS.clear()
        _CRD_ROOTS[id(rt.schema)] = (rt.schema, schema)
    return schema


def _crd_root(rt: ResourceTypeLike) -> dict[str, Any]:
    schema = json.loads(json.dumps(rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}))
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {}) if not schema.get("x-kubernetes-preserve-unknown-fields") else None
    if props is not None:
        props.setdefault("apiVersion", {"type": "string", "description": "APIVersion of this object."})
        props.setdefault("kind", {"type": "string", "description": "Kind of this object."})
        props["metadata"] = {"allOf": [_ref(OBJECT_META_REF)], "description": "Standard object's metadata."}
    return schema


def _crd_name(rt: ResourceTypeLike) -> str:
    reversed_group = ".".join(reversed(rt.group.split(".")))
    return f"{reversed_group}.{rt.version}.{rt.kind}"


# ---------------------------------------------------------------------------------------------
# documents


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict:
    out: dict[str, Any] = {"name": name, "in": where, "description": description, "schema": schema}
    if required:
        out["required"] = True
    if where == "query":
        out["uniqueItems"] = True
    return out


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_DRY_RUN = _param("dryRun", "query", _STR, "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _param("fieldManager", "query", _STR, "A name associated with the actor making these changes.")
_FIELD_VALIDATION = _param(
    "fieldValidation",
    "query",
    _STR,
    "How the server handles unknown or duplicate fields in the request: Ignore, Warn or Strict.",
)
_FORCE = _param("force", "query", _BOOL, "Force is going to 'force' Apply requests (re-acquire conflicting fields).")
_PRETTY = _param("pretty", "query", _STR, "If 'true', then the output is pretty printed.")
_LIST_PARAMS = [
    _param("allowWatchBookmarks", "query", _BOOL, "Requests watch events with type BOOKMARK."),
    _param("continue", "query", _STR, "The continue option from a previous paginated list."),
    _param("fieldSelector", "query", _STR, "A selector to restrict the returned objects by their fields."),
    _param("labelSelector", "query", _STR, "A selector to restrict the returned objects by their labels."),
    _param("limit", "query", _INT, "Maximum number of responses to return for a list call."),
    _param("resourceVersion", "query", _STR, "Constrains which resource versions the request may be served from."),
    _param("resourceVersionMatch", "query", _STR, "How resourceVersion is applied to list calls."),
    _param("sendInitialEvents", "query", _BOOL, "Begin a watch stream with synthetic events for the current state."),
    _param("timeoutSeconds", "query", _INT, "Timeout for the list/watch call."),
    _param("watch", "query", _BOOL, "Watch for changes to the described resources."),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _param("gracePeriodSeconds", "query", _INT, "The duration in seconds before the object should be deleted."),
    _param("propagationPolicy", "query", _STR, "Whether and how garbage collection is performed: Orphan, Background "
           "or Foreground."),
]  # fmt: skip


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(  # noqa: PLR0917 - one call site per operation, read like a table
    action: str,
    op_id: str,
    gvk: dict[str, str],
    response: dict[str, Any],
    params: list[dict],
    body: dict[str, Any] | None = None,
    body_types: tuple[str, ...] = ("application/json", "application/yaml"),
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": f"{action} {gvk['kind']}",
        "operationId": op_id,
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": _json_content(response)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body is not None:
        out["requestBody"] = {"content": {t: {"schema": body} for t in body_types}, "required": True}
    return out


_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _paths_for(rt: ResourceTypeLike, root_ref: str, list_ref: str) -> dict[str, Any]:
    prefix = "/api/v1" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    op_kind = rt.kind
    obj, lst, status = _ref(root_ref), _ref(list_ref), _ref(f"{META_PKG}.Status")
    patch_types = _PATCH_TYPES if rt.builtin else tuple(t for t in _PATCH_TYPES if "strategic" not in t)
    ns_param = [_param("namespace", "path", _STR, "object name and auth scope", required=True)] if rt.namespaced else []
    name_param = [_param("name", "path", _STR, f"name of the {rt.kind}", required=True)]
    base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: dict[str, Any] = {
        base: {
            "get": _op("list", f"list{op_kind}", gvk, lst, _LIST_PARAMS),
            "post": _op("post", f"create{op_kind}", gvk, obj, write, obj),
            "delete": _op("deletecollection", f"deleteCollection{op_kind}", gvk, status, _DELETE_PARAMS + _LIST_PARAMS),
            "parameters": [*ns_param, _PRETTY],
        },
        f"{base}/{{name}}": {
            "get": _op("get", f"read{op_kind}", gvk, obj, []),
            "put": _op("put", f"replace{op_kind}", gvk, obj, write, obj),
            "patch": _op("patch", f"patch{op_kind}", gvk, obj, [*write, _FORCE], {"type": "object"}, patch_types),
            "delete": _op("delete", f"delete{op_kind}", gvk, status, _DELETE_PARAMS),
            "parameters": [*name_param, *ns_param, _PRETTY],
        },
    }
    if rt.namespaced:
        paths[f"{prefix}/{rt.plural}"] = {
            "get": _op("list", f"list{op_kind}ForAllNamespaces", gvk, lst, _LIST_PARAMS),
            "parameters": [_PRETTY],
        }
    for sub in ("status", "scale"):
        if sub not in rt.subresources:
            continue
        sub_ref = obj if sub == "status" else _ref("io.k8s.api.autoscaling.v1.Scale")
        sub_gvk = gvk if sub == "status" else {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        name = f"{op_kind}{sub.capitalize()}"
        paths[f"{base}/{{name}}/{sub}"] = {
            "get": _op("get", f"read{name}", sub_gvk, sub_ref, []),
            "put": _op("put", f"replace{name}", sub_gvk, sub_ref, write, sub_ref),
            "patch": _op("patch", f"patch{name}", sub_gvk, sub_ref, [*write, _FORCE], {"type": "object"}, patch_types),
            "parameters": [*name_param, *ns_param, _PRETTY],
        }
    return paths


def _with_gvk(schema: dict[str, Any], rt: ResourceTypeLike) -> dict[str, Any]:
    gvks = list(schema.get("x-kubernetes-group-version-kind") or [])
    entry = {"group": rt.group, "kind": rt.kind, "version": rt.version}
    if entry not in gvks:
        gvks.append(entry)
    return {**schema, "x-kubernetes-group-version-kind": gvks}


def _list_schema(item_ref: str, rt: ResourceTypeLike) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": _ref(item_ref)},
            "kind": {"type": "string"},
            "metadata": {"allOf": [_ref(f"{META_PKG}.ListMeta")]},
        },
        "x-kubernetes-group-version-kind": [{"group": rt.group, "kind": f"{rt.kind}List", "version": rt.version}],
    }


def group_version_document(types: list[ResourceTypeLike], group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group version; None if nothing is served there."""
    served = [t for t in types if t.group == group and t.version == version]
    if not served:
        return None
    cat = catalog(types)
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    wanted: list[str] = ["V1Status", "V1DeleteOptions", "V1ObjectMeta", "V1ListMeta"]
    if any("scale" in t.subresources for t in served):
        wanted.append("V1Scale")
    roots: list[tuple[ResourceTypeLike, str, str]] = []
    for rt in sorted(served, key=lambda t: t.plural):
        cls = cat.root_class(rt.group, rt.version, rt.kind) if rt.builtin else None
        if cls is not None:
            cat.annotate(cls, schema_for(rt.key, builtin=True))
            root_ref = cat.name(cls)
            list_cls = cat.root_class(rt.group, rt.version, f"{rt.kind}List")
            wanted.append(cls)
            if list_cls:
                wanted.append(list_cls)
                list_ref = cat.name(list_cls)
            else:
                list_ref = f"{root_ref}List"
                schemas[list_ref] = _list_schema(root_ref, rt)
        else:
            root_ref = _crd_name(rt)
            list_ref = f"{root_ref}List"
            schemas[root_ref] = crd_root_schema(rt)
            schemas[list_ref] = _list_schema(root_ref, rt)
        roots.append((rt, root_ref, list_ref))
        paths.update(_paths_for(rt, root_ref, list_ref))
    schemas.update(cat.closure(wanted))
    for rt, root_ref, list_ref in roots:
        schemas[root_ref] = _with_gvk(schemas[root_ref], rt)
        if list_ref in schemas and "x-kubernetes-group-version-kind" not in schemas[list_ref]:
            list_rt_gvk = {"group": rt.group, "kind": f"{rt.kind}List", "version": rt.version}
            schemas[list_ref] = {**schemas[list_ref], "x-kubernetes-group-version-kind": [list_rt_gvk]}
    title = "Kubernetes" if not group else f"Kubernetes {group}"
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def gv_path(group: str, version: str) -> str:
    """The index key of a group version: ``api/v1`` or ``apis/apps/v1``."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def fingerprint(types: Iterable[ResourceTypeLike], group: str, version: str) -> str:
    """A hash that changes whenever the group version's served types or CRD schemas change."""
    h = hashlib.sha256()
    for rt in sorted((t for t in types if t.group == group and t.version == version), key=lambda t: t.plural):
        h.update(f"{rt.plural}|{rt.kind}|{rt.namespaced}|{rt.subresources}|{rt.builtin}".encode())
        if not rt.builtin:
            h.update(json.dumps(rt.schema, sort_keys=True).encode())
    return h.hexdigest()[:32].upper()


class OpenApiCache:
    """Per group-version documents, rebuilt only when the group version's types change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], tuple[str, bytes]] = {}

    def index(self, types: list[ResourceTypeLike]) -> dict[str, Any]:
        """``/openapi/v3``: every group version with the URL (and hash) of its document."""
        gvs = sorted({(t.group, t.version) for t in types}, key=lambda gv: (gv[0] != "", gv))
        paths = {
            gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}?hash={fingerprint(types, g, v)}"}
            for g, v in gvs
        }
        return {"paths": paths}

    def document(self, types: list[ResourceTypeLike], group: str, version: str) -> tuple[str, bytes] | None:
        """``(hash, JSON bytes)`` of one group version's document; None if nothing is served there."""
        digest = fingerprint(types, group, version)
        with self._lock:
            cached = self._docs.get((group, version))
            if cached is not None and cached[0] == digest:
                return cached
        doc = group_version_document(types, group, version)
        if doc is None:
            return None
        entry = (digest, json.dumps(doc, separators=(",", ":")).encode())
        with self._lock:
            self._docs[(group, version)] = entry
        return entry


# ---------------------------------------------------------------------------------------------
# server-side field validation


Lookup = Callable[[str], dict[str, Any]]


def _resolve(schema: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
    for _ in range(16):
        if "$ref" in schema:
            schema = lookup(schema["$ref"].rsplit("/", 1)[-1])
        elif "allOf" in schema and len(schema["allOf"]) == 1 and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            return schema
    return schema


def _walk(value: Any, schema: dict[str, Any], lookup: Lookup, path: str, out: list[str]) -> None:
    schema = _resolve(schema, lookup)
    if schema.get("x-kubernetes-preserve-unknown-fields") or not schema:
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key, sub in value.items():
            if key.startswith("$"):  # strategic merge patch directives ($patch, $setElementOrder/...)
                continue
            child = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(sub, props[key], lookup, child, out)
            elif isinstance(extra, dict):
                _walk(sub, extra, lookup, child, out)
            elif extra is True or (embedded and key in ("apiVersion", "kind", "metadata")):
                continue
            elif props is not None:
                out.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(item, schema["items"], lookup, f"{path}[{i}]", out)


def unknown_fields(
    obj: Any, rt: ResourceTypeLike, types: list[ResourceTypeLike], subresource: str | None = None
) -> list[str]:
    """Paths of fields in ``obj`` that the type's schema does not declare (``spec.replica``).

    Built-ins are checked against the client's models, custom resources against their CRD schema;
    fields under ``x-kubernetes-preserve-unknown-fields`` are never unknown.
    """
    cat = catalog(types)
    if subresource == "scale":
        cls = "V1Scale"
    elif rt.builtin:
        cls = cat.root_class(rt.group, rt.version, rt.kind)
    else:
        cls = None
    if cls is not None:
        root = cat.schema(cls)
    elif rt.builtin:
        return []
    else:
        cat.name("V1ObjectMeta")
        root = crd_root_schema(rt)
    out: list[str] = []
    _walk(obj, root, cat.by_name, "", out)
    return out
