"""How lists and maps of each kind merge: strategic-merge keys and server-side-apply list types.

Built-in types carry the merge keys and list types the Kubernetes API declares
(``patchMergeKey``/``patchStrategy`` and ``listType``/``listMapKey`` in its Go types);
CRD-defined types take them from their OpenAPI schema (``x-kubernetes-list-type``,
``x-kubernetes-list-map-keys``, ``x-kubernetes-map-type``). Anything not declared is a
granular map or an atomic list, as on a real server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Schema:
    """What the API declares about one field (and, through ``fields``/``items``, below it).

    Attributes:
        fields: known fields of an object; unknown ones get :data:`ANY`.
        items: schema of list items.
        values: schema of map values (``additionalProperties``), when known.
        list_type: ``atomic``, ``set`` or ``map`` (server-side apply); ``""`` means atomic.
        list_keys: key fields of a ``map`` list.
        patch_strategy: strategic merge strategy of a list: ``merge``, ``merge,retainKeys`` or ``""`` (replace).
        patch_key: strategic merge key of a list of objects.
        atomic: an object or map replaced as a whole by server-side apply.
    """

    fields: dict[str, Schema] = field(default_factory=dict)
    items: Schema | None = None
    values: Schema | None = None
    list_type: str = ""
    list_keys: tuple[str, ...] = ()
    patch_strategy: str = ""
    patch_key: str = ""
    atomic: bool = False

    def child(self, name: str) -> Schema:
        """Schema of field ``name`` (or of any map value)."""
        found = self.fields.get(name)
        if found is not None:
            return found
        return self.values if self.values is not None else ANY

    def item(self) -> Schema:
        """Schema of this list's items."""
        return self.items if self.items is not None else ANY


#: A field nothing is known about: granular if a map, atomic if a list.
ANY = Schema()


def _map_list(
    keys: tuple[str, ...], item: Schema | None = None, *, strategy: str = "merge", smp_key: str = ""
) -> Schema:
    return Schema(items=item, list_type="map", list_keys=keys, patch_strategy=strategy, patch_key=smp_key or keys[0])


def _set_list(*, smp: bool = True) -> Schema:
    return Schema(list_type="set", patch_strategy="merge" if smp else "")


_ATOMIC = Schema(atomic=True)
_CONDITIONS = _map_list(("type",))


def _build_builtins() -> dict[str, Schema]:
    meta = Schema(
        fields={
            "finalizers": _set_list(),
            "ownerReferences": _map_list(("uid",)),
            "managedFields": Schema(list_type="atomic"),
        }
    )
    label_selector = Schema(atomic=True)
    container = Schema(
        fields={
            "ports": _map_list(("containerPort", "protocol"), smp_key="containerPort"),
            "env": _map_list(("name",)),
            "volumeMounts": _map_list(("mountPath",)),
            "volumeDevices": _map_list(("devicePath",)),
        }
    )
    pod_spec = Schema(
        fields={
            "containers": _map_list(("name",), container),
            "initContainers": _map_list(("name",), container),
            "ephemeralContainers": _map_list(("name",), container),
            "volumes": _map_list(("name",), strategy="merge,retainKeys"),
            "imagePullSecrets": _map_list(("name",)),
            "hostAliases": _map_list(("ip",)),
            "topologySpreadConstraints": _map_list(("topologyKey", "whenUnsatisfiable"), smp_key="topologyKey"),
            "schedulingGates": _map_list(("name",)),
            "resourceClaims": _map_list(("name",), strategy="merge,retainKeys"),
        }
    )
    template = Schema(fields={"metadata": meta, "spec": pod_spec})
    workload_status = Schema(fields={"conditions": _CONDITIONS})
    pod_status = Schema(fields={"conditions": _CONDITIONS, "podIPs": _map_list(("ip",)), "hostIPs": _map_list(("ip",))})
    workload = Schema(fields={"selector": label_selector, "template": template})
    job_spec = Schema(fields={"selector": label_selector, "template": template})

    def root(spec: Schema | None = None, status: Schema | None = None, **extra: Schema) -> Schema:
        fields: dict[str, Schema] = {"metadata": meta, "status": status or workload_status, **extra}
        if spec is not None:
            fields["spec"] = spec
        return Schema(fields=fields)

    service_spec = Schema(
        fields={
            "ports": _map_list(("port", "protocol"), smp_key="port"),
            "selector": Schema(atomic=True),
        }
    )
    node_spec = Schema(fields={"podCIDRs": _set_list()})
    node_status = Schema(fields={"conditions": _CONDITIONS, "addresses": _map_list(("type",))})
    return {
        "pods": root(pod_spec, pod_status),
        "deployments.apps": root(workload),
        "replicasets.apps": root(workload),
        "statefulsets.apps": root(workload),
        "daemonsets.apps": root(workload),
        "jobs.batch": root(job_spec),
        "cronjobs.batch": root(Schema(fields={"jobTemplate": Schema(fields={"metadata": meta, "spec": job_spec})})),
        "services": root(service_spec),
        "nodes": root(node_spec, node_status),
        "serviceaccounts": root(secrets=_map_list(("name",))),
        "poddisruptionbudgets.policy": root(Schema(fields={"selector": label_selector})),
        "networkpolicies.networking.k8s.io": root(Schema(fields={"podSelector": label_selector})),
    }


_BUILTINS: dict[str, Schema] | None = None
_GENERIC: Schema | None = None
_CRD_CACHE: dict[int, tuple[dict[str, Any], Schema]] = {}


def schema_for(key: str, openapi: dict[str, Any] | None = None, *, builtin: bool = True) -> Schema:
    """The schema of objects stored under ``key``.

    Args:
        key: store key (``pods``, ``deployments.apps``, ``nodepools.karpenter.sh``).
        openapi: a CRD version's ``openAPIV3Schema`` (custom resources only).
        builtin: whether the type is built in.
    """
    global _BUILTINS, _GENERIC
    if _BUILTINS is None:
        _BUILTINS = _build_builtins()
        _GENERIC = Schema(
            fields={
                "metadata": _BUILTINS["pods"].fields["metadata"],
                "status": Schema(fields={"conditions": _CONDITIONS}),
            }
        )
    if builtin:
        return _BUILTINS.get(key) or _GENERIC  # type: ignore[return-value]
    if openapi is None:
        return Schema(fields={"metadata": _BUILTINS["pods"].fields["metadata"]})
    hit = _CRD_CACHE.get(id(openapi))
    if hit is not None and hit[0] is openapi:
        return hit[1]
    converted = from_openapi(openapi)
    converted.fields["metadata"] = _BUILTINS["pods"].fields["metadata"]
    _CRD_CACHE[id(openapi)] = (openapi, converted)  # the schema dict is kept so its id is never reused
    return converted


def from_openapi(node: dict[str, Any]) -> Schema:
    """Convert an OpenAPI v3 (structural) schema into a :class:`Schema`."""
    out = Schema()
    if node.get("x-kubernetes-map-type") == "atomic":
        out.atomic = True
    props = node.get("properties")
    if isinstance(props, dict):
        out.fields = {k: from_openapi(v) for k, v in props.items() if isinstance(v, dict)}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out.values = from_openapi(extra)
    if node.get("type") == "array" or "items" in node:
        items = node.get("items")
        if isinstance(items, dict):
            out.items = from_openapi(items)
        list_type = node.get("x-kubernetes-list-type", "atomic")
        out.list_type = list_type
        if list_type == "map":
            out.list_keys = tuple(node.get("x-kubernetes-list-map-keys") or ())
            out.patch_key = out.list_keys[0] if out.list_keys else ""
            out.patch_strategy = "merge"
        elif list_type == "set":
            out.patch_strategy = "merge"
    return out


def openapi_defaults(node: dict[str, Any], value: Any) -> Any:
    """Fill ``default`` values of an OpenAPI v3 schema into ``value`` (CRDs), returning it."""
    if isinstance(value, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if name not in value and "default" in sub:
                    value[name] = _json_copy(sub["default"])
                if name in value:
                    value[name] = openapi_defaults(sub, value[name])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            known = props if isinstance(props, dict) else {}
            for name in list(value):
                if name not in known:
                    value[name] = openapi_defaults(extra, value[name])
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            return [openapi_defaults(items, v) for v in value]
    return value


def openapi_prune(node: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Drop fields an OpenAPI v3 schema does not declare (CRD pruning); returns the dropped paths."""
    dropped: list[str] = []
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return dropped
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if isinstance(props, dict):
            for name in list(value):
                sub = props.get(name)
                if sub is None:
                    if isinstance(extra, dict) or extra is True or node.get("x-kubernetes-preserve-unknown-fields"):
                        continue
                    if path == "" and name in ("apiVersion", "kind", "metadata"):
                        continue
                    dropped.append(f"{path}.{name}" if path else name)
                    del value[name]
                elif isinstance(sub, dict):
                    dropped += openapi_prune(sub, value[name], f"{path}.{name}" if path else name)
        elif isinstance(extra, dict):
            for name in list(value):
                dropped += openapi_prune(extra, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                dropped += openapi_prune(items, v, f"{path}[{i}]")
    return dropped


def _json_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    return value
