"""Validation the API server does on create and update, with its field paths and wording.

Only the checks users actually hit are here (names, required fields, selectors that must
match templates, ports, immutable fields); each failure becomes a 422 ``Invalid`` whose
message reads like the real one, e.g.
``Deployment.apps "web" is invalid: spec.selector: Required value``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import Invalid

from .resources import ResourceType
from .selectors import label_key_errors, label_value_errors, selector_from_object

Obj = dict[str, Any]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@dataclass
class FieldErrors:
    """Collects field errors; :meth:`raise_if_any` turns them into one ``Invalid``."""

    items: list[tuple[str, str, str]] = field(default_factory=list)  # (field, reason, message)

    def required(self, path: str, detail: str = "") -> None:
        """A required field is missing."""
        self.items.append((path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else "")))

    def invalid(self, path: str, value: Any, detail: str) -> None:
        """A field has a value that is not allowed."""
        self.items.append((path, "FieldValueInvalid", f"Invalid value: {_show(value)}: {detail}"))

    def unsupported(self, path: str, value: Any, supported: list[str]) -> None:
        """A field has a value outside its enumeration."""
        self.items.append(
            (
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {_show(value)}: supported values: " + ", ".join(json.dumps(s) for s in supported),
            )
        )

    def forbidden(self, path: str, detail: str) -> None:
        """A field may not be set (or changed)."""
        self.items.append((path, "FieldValueForbidden", f"Forbidden: {detail}"))

    def duplicate(self, path: str, value: Any) -> None:
        """A value appears twice where it must be unique."""
        self.items.append((path, "FieldValueDuplicate", f"Duplicate value: {_show(value)}"))

    def raise_if_any(self, rt: ResourceType, name: str) -> None:
        """Raise the collected errors as a 422 Invalid, if there are any."""
        if not self.items:
            return
        parts = [f"{f}: {m}" if f else m for f, _, m in self.items]
        body = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        err = Invalid(
            f'{rt.group_kind} "{name}" is invalid: {body}',
            "correct the fields named above and try again",
            status=422,
            reason="Invalid",
        )
        err.details = {  # type: ignore[attr-defined]
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [{"reason": r, "message": m, "field": f} for f, r, m in self.items],
        }
        raise err


def check_name(rt: ResourceType, name: str, errors: FieldErrors, path: str = "metadata.name") -> None:
    """Validate an object name by the rule of its kind."""
    if rt.group == "rbac.authorization.k8s.io":
        if name in (".", "..") or "/" in name or "%" in name:
            errors.invalid(path, name, "may not contain '/' or '%' and may not be '.' or '..'")
        return
    if rt.key == "namespaces":
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            errors.invalid(path, name, LABEL_MSG if len(name) <= 63 else "must be no more than 63 characters")
        return
    if rt.key == "services":
        if len(name) > 63 or not _DNS1035_LABEL.match(name):
            errors.invalid(path, name, DNS1035_MSG if len(name) <= 63 else "must be no more than 63 characters")
        return
    if len(name) > 253:
        errors.invalid(path, name, "must be no more than 253 characters")
    elif not _DNS1123_SUBDOMAIN.match(name):
        errors.invalid(path, name, SUBDOMAIN_MSG)


def _check_meta_maps(meta: Obj, errors: FieldErrors, prefix: str = "metadata") -> None:
    labels = meta.get("labels")
    if isinstance(labels, dict):
        for k, v in labels.items():
            for problem in label_key_errors(str(k)):
                errors.invalid(f"{prefix}.labels", k, problem)
            if not isinstance(v, str):
                errors.invalid(f"{prefix}.labels", v, "label values must be strings")
            else:
                for problem in label_value_errors(v):
                    errors.invalid(f"{prefix}.labels", v, problem)
    elif labels is not None:
        errors.invalid(f"{prefix}.labels", labels, "must be a map of strings")
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        total = 0
        for k, v in annotations.items():
            for problem in label_key_errors(str(k)):
                errors.invalid(f"{prefix}.annotations", k, problem)
            if not isinstance(v, str):
                errors.invalid(f"{prefix}.annotations", v, "annotation values must be strings")
            else:
                total += len(k) + len(v)
        if total > 256 * 1024:
            errors.items.append(
                (f"{prefix}.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes")
            )
    elif annotations is not None:
        errors.invalid(f"{prefix}.annotations", annotations, "must be a map of strings")


def _check_port(value: Any, path: str, errors: FieldErrors) -> None:
    if value is None:
        errors.required(path)
    elif not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        errors.invalid(path, value, "must be between 1 and 65535, inclusive")


def _check_containers(containers: Any, path: str, errors: FieldErrors, volumes: set[str], *, required: bool) -> None:
    if not containers:
        if required:
            errors.required(path)
        return
    if not isinstance(containers, list):
        errors.invalid(path, containers, "must be a list of containers")
        return
    names: set[str] = set()
    for i, c in enumerate(containers):
        p = f"{path}[{i}]"
        if not isinstance(c, dict):
            errors.invalid(p, c, "must be an object")
            continue
        name = c.get("name")
        if not name:
            errors.required(f"{p}.name")
        elif not isinstance(name, str) or not _DNS1123_LABEL.match(name) or len(name) > 63:
            errors.invalid(f"{p}.name", name, LABEL_MSG)
        elif name in names:
            errors.duplicate(f"{p}.name", name)
        else:
            names.add(name)
        if not c.get("image"):
            errors.required(f"{p}.image")
        for j, port in enumerate(c.get("ports") or ()):
            if isinstance(port, dict):
                _check_port(port.get("containerPort"), f"{p}.ports[{j}].containerPort", errors)
                if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                    errors.unsupported(f"{p}.ports[{j}].protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"])
        for j, env in enumerate(c.get("env") or ()):
            if isinstance(env, dict) and not env.get("name"):
                errors.required(f"{p}.env[{j}].name")
        for j, mount in enumerate(c.get("volumeMounts") or ()):
            if not isinstance(mount, dict):
                continue
            if not mount.get("name"):
                errors.required(f"{p}.volumeMounts[{j}].name")
            elif mount["name"] not in volumes:
                errors.items.append(
                    (f"{p}.volumeMounts[{j}].name", "FieldValueNotFound", f"Not found: {_show(mount['name'])}")
                )
            if not mount.get("mountPath"):
                errors.required(f"{p}.volumeMounts[{j}].mountPath")


def check_pod_spec(
    spec: Any, path: str, errors: FieldErrors, *, restart_policies: tuple[str, ...] | None = None
) -> None:
    """Validate a PodSpec (in a Pod or a template)."""
    if not isinstance(spec, dict):
        errors.required(path)
        return
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or ()):
        if isinstance(v, dict):
            name = v.get("name")
            if not name:
                errors.required(f"{path}.volumes[{i}].name")
            elif name in volumes:
                errors.duplicate(f"{path}.volumes[{i}].name", name)
            else:
                volumes.add(name)
    _check_containers(spec.get("containers"), f"{path}.containers", errors, volumes, required=True)
    _check_containers(spec.get("initContainers"), f"{path}.initContainers", errors, volumes, required=False)
    policy = spec.get("restartPolicy")
    allowed = restart_policies or ("Always", "OnFailure", "Never")
    if policy is not None and policy not in allowed:
        errors.unsupported(f"{path}.restartPolicy", policy, list(allowed))
    if spec.get("dnsPolicy") not in (None, "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"):
        errors.unsupported(
            f"{path}.dnsPolicy", spec.get("dnsPolicy"), ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
        )
    for i, t in enumerate(spec.get("tolerations") or ()):
        if isinstance(t, dict) and t.get("operator", "Equal") not in ("Equal", "Exists"):
            errors.unsupported(f"{path}.tolerations[{i}].operator", t.get("operator"), ["Equal", "Exists"])


def _check_selector_template(obj: Obj, errors: FieldErrors, *, template_required: bool = True) -> None:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template")
    if selector is None:
        errors.required("spec.selector")
    elif not isinstance(selector, dict):
        errors.invalid("spec.selector", selector, "must be a label selector")
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errors.invalid("spec.selector", selector, "empty selector is invalid for deployment")
    if template is None:
        if template_required:
            errors.required("spec.template")
        return
    meta = (template or {}).get("metadata") or {}
    labels = meta.get("labels") or {}
    if isinstance(selector, dict) and (selector.get("matchLabels") or selector.get("matchExpressions")):
        try:
            sel = selector_from_object(selector)
        except Invalid as exc:
            errors.invalid("spec.selector", selector, exc.what)
        else:
            if not sel.matches(labels):
                errors.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    _check_meta_maps(meta, errors, "spec.template.metadata")
    check_pod_spec((template or {}).get("spec"), "spec.template.spec", errors)


def _check_replicas(obj: Obj, errors: FieldErrors) -> None:
    replicas = (obj.get("spec") or {}).get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")


def _workload(obj: Obj, errors: FieldErrors) -> None:
    _check_replicas(obj, errors)
    _check_selector_template(obj, errors)


def _pod(obj: Obj, errors: FieldErrors) -> None:
    check_pod_spec(obj.get("spec"), "spec", errors)


def _job(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    template = spec.get("template")
    if not isinstance(template, dict):
        errors.required("spec.template")
        return
    check_pod_spec(template.get("spec"), "spec.template.spec", errors, restart_policies=("OnFailure", "Never"))
    if spec.get("manualSelector") and spec.get("selector") is None:
        errors.required("spec.selector")
    selector = spec.get("selector")
    if isinstance(selector, dict):
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector_from_object(selector).matches(labels):
            errors.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    for name in ("parallelism", "completions", "backoffLimit"):
        value = spec.get(name)
        if value is not None and (not isinstance(value, int) or value < 0):
            errors.invalid(f"spec.{name}", value, "must be greater than or equal to 0")


def _cronjob(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    schedule = spec.get("schedule")
    if not schedule:
        errors.required("spec.schedule")
    elif isinstance(schedule, str) and not schedule.startswith("@") and len(schedule.split()) != 5:
        errors.invalid("spec.schedule", schedule, "unparseable cron expression: expected exactly 5 fields")
    jt = spec.get("jobTemplate")
    if not isinstance(jt, dict) or not isinstance(jt.get("spec"), dict):
        errors.required("spec.jobTemplate")
        return
    template = jt["spec"].get("template")
    if not isinstance(template, dict):
        errors.required("spec.jobTemplate.spec.template")
        return
    check_pod_spec(
        template.get("spec"), "spec.jobTemplate.spec.template.spec", errors, restart_policies=("OnFailure", "Never")
    )


_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _service(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    if stype not in _SERVICE_TYPES:
        errors.unsupported("spec.type", stype, _SERVICE_TYPES)
        return
    ports = spec.get("ports") or []
    if stype == "ExternalName":
        if not spec.get("externalName"):
            errors.required("spec.externalName")
        return
    if not ports and spec.get("clusterIP") != "None":
        errors.required("spec.ports")
    names: set[str] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        _check_port(port.get("port"), f"spec.ports[{i}].port", errors)
        name = port.get("name")
        if len(ports) > 1 and not name:
            errors.required(f"spec.ports[{i}].name")
        elif name:
            if name in names:
                errors.duplicate(f"spec.ports[{i}].name", name)
            names.add(name)
            if not _DNS1123_LABEL.match(str(name)):
                errors.invalid(f"spec.ports[{i}].name", name, LABEL_MSG)
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            errors.unsupported(f"spec.ports[{i}].protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"])
        node_port = port.get("nodePort")
        if node_port is not None and stype == "ClusterIP":
            errors.forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'")


def _config_keys(obj: Obj, errors: FieldErrors, fields: tuple[str, ...]) -> None:
    for name in fields:
        data = obj.get(name)
        if data is None:
            continue
        if not isinstance(data, dict):
            errors.invalid(name, data, "must be a map")
            continue
        for k in data:
            if not _CONFIG_KEY.match(str(k)) or len(str(k)) > 253:
                errors.invalid(
                    f"{name}[{k}]",
                    k,
                    "a valid config key must consist of alphanumeric characters, "
                    "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                    "validation is '[-._a-zA-Z0-9]+')",
                )


def _configmap(obj: Obj, errors: FieldErrors) -> None:
    _config_keys(obj, errors, ("data", "binaryData"))
    data = obj.get("data") or {}
    if isinstance(data, dict):
        for k, v in data.items():
            if not isinstance(v, str):
                errors.invalid(f"data[{k}]", v, "must be a string")


def _secret(obj: Obj, errors: FieldErrors) -> None:
    _config_keys(obj, errors, ("data", "stringData"))
    import base64
    import binascii

    data = obj.get("data") or {}
    if isinstance(data, dict):
        for k, v in data.items():
            try:
                base64.b64decode(str(v), validate=True)
            except (binascii.Error, ValueError):
                errors.invalid(f"data[{k}]", "<secret contents redacted>", "illegal base64 data")


def _hpa(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, dict):
        errors.required("spec.scaleTargetRef")
    else:
        if not ref.get("kind"):
            errors.required("spec.scaleTargetRef.kind")
        if not ref.get("name"):
            errors.required("spec.scaleTargetRef.name")
    max_r = spec.get("maxReplicas")
    min_r = spec.get("minReplicas", 1)
    if max_r is None:
        errors.required("spec.maxReplicas")
    elif not isinstance(max_r, int) or max_r < 1:
        errors.invalid("spec.maxReplicas", max_r, "must be greater than or equal to 1")
    elif isinstance(min_r, int) and min_r > max_r:
        errors.invalid("spec.maxReplicas", max_r, "must be greater than or equal to `minReplicas`")


def _binding(obj: Obj, errors: FieldErrors) -> None:
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        errors.required("roleRef")
        return
    if ref.get("kind") not in ("Role", "ClusterRole"):
        errors.unsupported("roleRef.kind", ref.get("kind"), ["ClusterRole", "Role"])
    if not ref.get("name"):
        errors.required("roleRef.name")
    for i, subject in enumerate(obj.get("subjects") or ()):
        if isinstance(subject, dict):
            if not subject.get("kind"):
                errors.required(f"subjects[{i}].kind")
            if not subject.get("name"):
                errors.required(f"subjects[{i}].name")


def _cluster_binding(obj: Obj, errors: FieldErrors) -> None:
    _binding(obj, errors)
    ref = obj.get("roleRef") or {}
    if isinstance(ref, dict) and ref.get("kind") == "Role":
        errors.unsupported("roleRef.kind", "Role", ["ClusterRole"])


def _role(obj: Obj, errors: FieldErrors) -> None:
    for i, rule in enumerate(obj.get("rules") or ()):
        if isinstance(rule, dict) and not rule.get("verbs"):
            errors.required(f"rules[{i}].verbs", "verbs must contain at least one value")


def _priorityclass(obj: Obj, errors: FieldErrors) -> None:
    if not isinstance(obj.get("value"), int):
        errors.required("value")


def _storageclass(obj: Obj, errors: FieldErrors) -> None:
    if not obj.get("provisioner"):
        errors.required("provisioner")


def _endpointslice(obj: Obj, errors: FieldErrors) -> None:
    if obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
        errors.unsupported("addressType", obj.get("addressType"), ["FQDN", "IPv4", "IPv6"])
    for i, ep in enumerate(obj.get("endpoints") or ()):
        if isinstance(ep, dict) and not ep.get("addresses"):
            errors.required(f"endpoints[{i}].addresses")


def _pvc(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    if not spec.get("accessModes"):
        errors.required("spec.accessModes", "at least 1 access mode is required")
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None and not spec.get("dataSource"):
        errors.required("spec.resources[storage]")


def _pdb(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec:
        errors.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set")


def _event(obj: Obj, errors: FieldErrors) -> None:
    involved = obj.get("involvedObject")
    if not isinstance(involved, dict):
        errors.required("involvedObject")


def _event_v1(obj: Obj, errors: FieldErrors) -> None:
    for name in ("eventTime", "reportingController", "reportingInstance"):
        if not obj.get(name):
            errors.required(name)
    if obj.get("type") not in ("Normal", "Warning"):
        errors.unsupported("type", obj.get("type"), ["Normal", "Warning"])


def _lease(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errors.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")


def _crd(obj: Obj, errors: FieldErrors) -> None:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    plural = names.get("plural")
    if not group:
        errors.required("spec.group")
    if not plural:
        errors.required("spec.names.plural")
    if not names.get("kind"):
        errors.required("spec.names.kind")
    name = (obj.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        errors.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.unsupported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"])
    versions = spec.get("versions") or []
    if not versions:
        errors.required("spec.versions", "must have exactly one version marked as storage version")
    elif sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        errors.invalid("spec.versions", versions and "...", "must have exactly one version marked as storage version")
    for i, v in enumerate(versions):
        if isinstance(v, dict) and not v.get("name"):
            errors.required(f"spec.versions[{i}].name")


def _namespace_spec(obj: Obj, errors: FieldErrors) -> None:
    return None


VALIDATORS = {
    "pods": _pod,
    "deployments.apps": _workload,
    "replicasets.apps": _workload,
    "statefulsets.apps": _workload,
    "daemonsets.apps": _check_selector_template,
    "jobs.batch": _job,
    "cronjobs.batch": _cronjob,
    "services": _service,
    "configmaps": _configmap,
    "secrets": _secret,
    "horizontalpodautoscalers.autoscaling": _hpa,
    "rolebindings.rbac.authorization.k8s.io": _binding,
    "clusterrolebindings.rbac.authorization.k8s.io": _cluster_binding,
    "roles.rbac.authorization.k8s.io": _role,
    "clusterroles.rbac.authorization.k8s.io": _role,
    "priorityclasses.scheduling.k8s.io": _priorityclass,
    "storageclasses.storage.k8s.io": _storageclass,
    "endpointslices.discovery.k8s.io": _endpointslice,
    "persistentvolumeclaims": _pvc,
    "poddisruptionbudgets.policy": _pdb,
    "events": _event,
    "events.events.k8s.io": _event_v1,
    "leases.coordination.k8s.io": _lease,
    "customresourcedefinitions.apiextensions.k8s.io": _crd,
}


_OPENAPI_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def check_openapi(node: dict[str, Any], value: Any, path: str, errors: FieldErrors) -> None:
    """Validate a custom resource against its CRD's OpenAPI v3 schema, as the API server does.

    Covers type, nullable, int-or-string, enum, required, bounds, lengths, pattern and item
    counts; CEL rules (``x-kubernetes-validations``) are not evaluated.
    """
    if value is None:
        if not node.get("nullable"):
            errors.invalid(path, None, f'{path} in body must be of type {node.get("type", "object")}: "null"')
        return
    expected = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            errors.invalid(path, value, f"{path} in body must be of type int-or-string")
        return
    if expected in _OPENAPI_TYPES:
        ok = isinstance(value, _OPENAPI_TYPES[expected]) and not (expected != "boolean" and isinstance(value, bool))
        if expected == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            got = _json_type(value)
            errors.invalid(path, value, f"{path} in body must be of type {expected}: {json.dumps(got)}")
            return
    if "enum" in node and value not in node["enum"]:
        errors.unsupported(path, value, [str(v) for v in node["enum"]])
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node and (
            value < node["minimum"] or (node.get("exclusiveMinimum") and value == node["minimum"])
        ):
            errors.invalid(path, value, f"{path} in body should be greater than or equal to {node['minimum']}")
        if "maximum" in node and (
            value > node["maximum"] or (node.get("exclusiveMaximum") and value == node["maximum"])
        ):
            errors.invalid(path, value, f"{path} in body should be less than or equal to {node['maximum']}")
    if isinstance(value, str):
        if "maxLength" in node and len(value) > node["maxLength"]:
            errors.items.append(
                (path, "FieldValueTooLong", f"Too long: may not be more than {node['maxLength']} bytes")
            )
        if "minLength" in node and len(value) < node["minLength"]:
            errors.invalid(path, value, f"{path} in body should be at least {node['minLength']} chars long")
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.invalid(path, value, f"{path} in body should match '{node['pattern']}'")
    if isinstance(value, list):
        if "minItems" in node and len(value) < node["minItems"]:
            errors.invalid(path, len(value), f"{path} in body should have at least {node['minItems']} items")
        if "maxItems" in node and len(value) > node["maxItems"]:
            errors.items.append(
                (path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {node['maxItems']} items")
            )
        items = node.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                check_openapi(items, item, f"{path}[{i}]", errors)
    if isinstance(value, dict):
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        for name in node.get("required") or ():
            if name not in value:
                errors.required(f"{path}.{name}" if path else name)
        extra = node.get("additionalProperties")
        for name, sub in value.items():
            sub_path = f"{path}.{name}" if path else name
            if name in props and isinstance(props[name], dict):
                if not path and name in ("metadata", "apiVersion", "kind"):
                    continue
                check_openapi(props[name], sub, sub_path, errors)
            elif isinstance(extra, dict):
                check_openapi(extra, sub, sub_path, errors)
        for combinator in ("allOf",):
            for branch in node.get(combinator) or ():
                if isinstance(branch, dict):
                    check_openapi(branch, value, path, errors)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate(rt: ResourceType, obj: Obj) -> None:
    """Validate an object about to be stored (after defaulting).

    Raises:
        Invalid: 422 listing every problem with its field path.
    """
    errors = FieldErrors()
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    check_name(rt, name, errors)
    _check_meta_maps(meta, errors)
    check = VALIDATORS.get(rt.key)
    if check is not None:
        check(obj, errors)
    if rt.builtin:
        check_conditions(obj, errors)
    elif rt.schema:
        check_openapi(rt.schema, obj, "", errors)
    errors.raise_if_any(rt, name)


def check_conditions(obj: Obj, errors: FieldErrors) -> None:
    """Every ``status.conditions`` item needs ``type`` and ``status`` (the typed models require both)."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return
    for i, cond in enumerate(status.get("conditions") or ()):
        if not isinstance(cond, dict):
            errors.invalid(f"status.conditions[{i}]", cond, "must be an object")
            continue
        if not cond.get("type"):
            errors.required(f"status.conditions[{i}].type")
        if cond.get("status") is None:
            errors.required(f"status.conditions[{i}].status")


def validate_status(rt: ResourceType, obj: Obj) -> None:
    """Validate a write to the ``status`` subresource.

    Raises:
        Invalid: 422 naming each problem.
    """
    errors = FieldErrors()
    if rt.builtin:
        check_conditions(obj, errors)
    errors.raise_if_any(rt, (obj.get("metadata") or {}).get("name") or "")


def _spec_get(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


_IMMUTABLE: dict[str, tuple[str, ...]] = {
    "deployments.apps": ("spec.selector",),
    "replicasets.apps": ("spec.selector",),
    "daemonsets.apps": ("spec.selector",),
    "jobs.batch": ("spec.selector", "spec.template", "spec.completionMode"),
    "services": ("spec.clusterIP",),
    "storageclasses.storage.k8s.io": ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"),
    "rolebindings.rbac.authorization.k8s.io": ("roleRef",),
    "clusterrolebindings.rbac.authorization.k8s.io": ("roleRef",),
    "priorityclasses.scheduling.k8s.io": ("value",),
    "customresourcedefinitions.apiextensions.k8s.io": ("spec.scope",),
    "endpointslices.discovery.k8s.io": ("addressType",),
    "persistentvolumeclaims": ("spec.accessModes", "spec.storageClassName", "spec.volumeMode", "spec.selector"),
    "persistentvolumes": ("spec.volumeMode",),
}

_STS_MUTABLE = {
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
}
_POD_MUTABLE = {
    "containers",
    "initContainers",
    "activeDeadlineSeconds",
    "tolerations",
    "terminationGracePeriodSeconds",
    "schedulingGates",
    "ephemeralContainers",
}


def validate_update(rt: ResourceType, old: Obj, new: Obj) -> None:
    """Check the fields an update may not change.

    Raises:
        Invalid: 422 naming each immutable field that changed.
    """
    errors = FieldErrors()
    for path in _IMMUTABLE.get(rt.key, ()):
        before, after = _spec_get(old, path), _spec_get(new, path)
        if path == "spec.clusterIP" and after in (None, ""):
            continue  # the store keeps the allocated address when an update leaves it out
        if path == "spec.storageClassName" and before is None:
            continue
        if before != after:
            errors.invalid(path, after, "field is immutable")
    if rt.key == "statefulsets.apps":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if any(old_spec.get(k) != new_spec.get(k) for k in set(old_spec) | set(new_spec) if k not in _STS_MUTABLE):
            errors.forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden",
            )
    if rt.key == "pods":
        _pod_update(old, new, errors)
    if rt.key in ("configmaps", "secrets") and old.get("immutable"):
        for name in ("data", "binaryData", "stringData"):
            if old.get(name) != new.get(name):
                errors.forbidden(name, "field is immutable when `immutable` is set")
        if not new.get("immutable"):
            errors.forbidden("immutable", "field is immutable when `immutable` is set")
    meta_old, meta_new = old.get("metadata") or {}, new.get("metadata") or {}
    if meta_old.get("deletionTimestamp"):
        added = set(meta_new.get("finalizers") or ()) - set(meta_old.get("finalizers") or ())
        if added:
            errors.forbidden(
                "metadata.finalizers",
                f"no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)}",
            )
    errors.raise_if_any(rt, meta_new.get("name") or "")


def _pod_update(old: Obj, new: Obj, errors: FieldErrors) -> None:
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    changed = {k for k in set(old_spec) | set(new_spec) if old_spec.get(k) != new_spec.get(k)} - _POD_MUTABLE
    if old_spec.get("nodeName") and "nodeName" in changed:
        pass
    elif not old_spec.get("nodeName"):
        changed.discard("nodeName")
    container_change = False
    for key in ("containers", "initContainers"):
        before, after = old_spec.get(key) or [], new_spec.get(key) or []
        if len(before) != len(after):
            container_change = True
            continue
        for b, a in zip(before, after, strict=True):
            if not isinstance(a, dict) or not isinstance(b, dict):
                continue
            strip_b = {k: v for k, v in b.items() if k not in ("image", "resources")}
            strip_a = {k: v for k, v in a.items() if k not in ("image", "resources")}
            if strip_a != strip_b:
                container_change = True
    if changed or container_change:
        errors.forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,"
            "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
            "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
            "previously negative)",
        )
