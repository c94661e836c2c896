"""CustomResourceDefinitions the embedded Karpenter serves: NodePool, NodeClaim, EC2NodeClass and Auto Mode's NodeClass.

Minimal but structural schemas: the fields Karpenter reads are typed, validated (enums, the
duration and budget patterns) and defaulted as upstream does (``disruption.consolidateAfter``
``0s``, ``consolidationPolicy`` ``WhenEmptyOrUnderutilized``, one budget of ``10%``, ``expireAfter``
``720h``); deeper parts keep unknown fields (``x-kubernetes-preserve-unknown-fields``). Names, short
names, categories and ``additionalPrinterColumns`` match the upstream CRDs (Karpenter v1), so
``kubectl get nodepools,nodeclaims`` shows the familiar columns.
"""

from __future__ import annotations

from typing import Any

from labkit.errors import Conflict

from .nodepool import AUTO_NODECLASS_KEY, EC2NODECLASS_KEY, NODECLAIM_KEY, NODEPOOL_KEY

CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"

_DURATION = r"^(([0-9]+(s|m|h))+|Never)$"
_QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}

_OPEN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

_REQUIREMENT = {
    "type": "object",
    "required": ["key", "operator"],
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "key": {"type": "string", "maxLength": 316},
        "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]},
        "values": {"type": "array", "items": {"type": "string"}},
        "minValues": {"type": "integer", "minimum": 1, "maximum": 50},
    },
}
_TAINT = {
    "type": "object",
    "required": ["key", "effect"],
    "properties": {
        "key": {"type": "string", "minLength": 1},
        "value": {"type": "string"},
        "effect": {"type": "string", "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
        "timeAdded": {"type": "string", "format": "date-time"},
    },
}
_NODECLASS_REF = {
    "type": "object",
    "required": ["group", "kind", "name"],
    "properties": {
        "group": {"type": "string"},
        "kind": {"type": "string"},
        "name": {"type": "string"},
    },
}
_CONDITIONS = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string"},
            "observedGeneration": {"type": "integer"},
        },
    },
}


def _claim_spec(*, expire_default: bool) -> dict[str, Any]:
    expire: dict[str, Any] = {"type": "string", "pattern": _DURATION}
    if expire_default:
        expire["default"] = "720h"
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "nodeClassRef": _NODECLASS_REF,
            "requirements": {"type": "array", "maxItems": 100, "items": _REQUIREMENT},
            "taints": {"type": "array", "items": _TAINT},
            "startupTaints": {"type": "array", "items": _TAINT},
            "expireAfter": expire,
            "terminationGracePeriod": {"type": "string"},
            "resources": {
                "type": "object",
                "properties": {"requests": {"type": "object", "additionalProperties": _QUANTITY}},
            },
        },
    }


_NODEPOOL_SPEC = {
    "type": "object",
    "required": ["template"],
    "properties": {
        "weight": {"type": "integer", "minimum": 1, "maximum": 100},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
        "replicas": {"type": "integer", "minimum": 0},
        "disruption": {
            "type": "object",
            "default": {"consolidateAfter": "0s"},
            "properties": {
                "consolidateAfter": {"type": "string", "pattern": _DURATION},
                "consolidationPolicy": {
                    "type": "string",
                    "default": "WhenEmptyOrUnderutilized",
                    "enum": ["WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced"],
                },
                "budgets": {
                    "type": "array",
                    "maxItems": 50,
                    "default": [{"nodes": "10%"}],
                    "items": {
                        "type": "object",
                        "required": ["nodes"],
                        "properties": {
                            "nodes": {"type": "string", "default": "10%", "pattern": r"^((100|[0-9]{1,2})%|[0-9]+)$"},
                            "schedule": {"type": "string"},
                            "duration": {"type": "string", "pattern": r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$"},
                            "reasons": {
                                "type": "array",
                                "items": {"type": "string", "enum": ["Underutilized", "Empty", "Drifted"]},
                            },
                        },
                    },
                },
            },
        },
        "template": {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "spec": {**_claim_spec(expire_default=True), "required": ["nodeClassRef", "requirements"]},
            },
        },
    },
}

_NODEPOOL_STATUS = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "conditions": _CONDITIONS,
        "nodes": {"type": "integer", "default": 0},
        "resources": {"type": "object", "additionalProperties": _QUANTITY},
        "nodeClassObservedGeneration": {"type": "integer"},
    },
}

_NODECLAIM_STATUS = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "conditions": _CONDITIONS,
        "providerID": {"type": "string"},
        "imageID": {"type": "string"},
        "nodeName": {"type": "string"},
        "capacity": {"type": "object", "additionalProperties": _QUANTITY},
        "allocatable": {"type": "object", "additionalProperties": _QUANTITY},
        "lastPodEventTime": {"type": "string"},
    },
}


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "jsonPath": path, "type": kind}
    if priority:
        col["priority"] = priority
    return col


_READY = '.status.conditions[?(@.type=="Ready")].status'


def _crd(
    group: str,
    kind: str,
    plural: str,
    *,
    short: list[str] | None = None,
    categories: list[str] | None = None,
    columns: list[dict[str, Any]],
    spec: dict[str, Any],
    status: dict[str, Any],
    spec_required: bool = True,
) -> dict[str, Any]:
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short:
        names["shortNames"] = short
    if categories:
        names["categories"] = categories
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if spec_required:
        schema["required"] = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/part-of": "karpenter"}},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Cluster",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def nodepool_crd() -> dict[str, Any]:
    """``nodepools.karpenter.sh``: NODECLASS, NODES, READY, AGE (wide: WEIGHT, CPU, MEMORY)."""
    return _crd(
        "karpenter.sh",
        "NodePool",
        "nodepools",
        categories=["karpenter"],
        columns=[
            _column("NodeClass", ".spec.template.spec.nodeClassRef.name"),
            _column("Nodes", ".status.nodes"),
            _column("Ready", _READY),
            _column("Age", ".metadata.creationTimestamp", "date"),
            _column("Weight", ".spec.weight", "integer", 1),
            _column("CPU", ".status.resources.cpu", priority=1),
            _column("Memory", ".status.resources.memory", priority=1),
        ],
        spec=_NODEPOOL_SPEC,
        status=_NODEPOOL_STATUS,
    )


def nodeclaim_crd() -> dict[str, Any]:
    """``nodeclaims.karpenter.sh``: TYPE, CAPACITY, ZONE, NODE, READY, AGE.

    Wide output adds IMAGEID, ID, NODEPOOL, NODECLASS and DRIFTED.
    """
    return _crd(
        "karpenter.sh",
        "NodeClaim",
        "nodeclaims",
        categories=["karpenter"],
        columns=[
            _column("Type", ".metadata.labels.node\\.kubernetes\\.io/instance-type"),
            _column("Capacity", ".metadata.labels.karpenter\\.sh/capacity-type"),
            _column("Zone", ".metadata.labels.topology\\.kubernetes\\.io/zone"),
            _column("Node", ".status.nodeName"),
            _column("Ready", _READY),
            _column("Age", ".metadata.creationTimestamp", "date"),
            _column("ImageID", ".status.imageID", priority=1),
            _column("ID", ".status.providerID", priority=1),
            _column("NodePool", ".metadata.labels.karpenter\\.sh/nodepool", priority=1),
            _column("NodeClass", ".spec.nodeClassRef.name", priority=1),
            _column("Drifted", '.status.conditions[?(@.type=="Drifted")].status', priority=1),
        ],
        spec={**_claim_spec(expire_default=False), "required": ["nodeClassRef", "requirements"]},
        status=_NODECLAIM_STATUS,
    )


def ec2nodeclass_crd() -> dict[str, Any]:
    """``ec2nodeclasses.karpenter.k8s.aws``: READY, AGE (wide: ROLE)."""
    spec = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "role": {"type": "string"},
            "instanceProfile": {"type": "string"},
            "amiFamily": {"type": "string"},
            "amiSelectorTerms": {"type": "array", "items": _OPEN, "maxItems": 30},
            "subnetSelectorTerms": {"type": "array", "items": _OPEN, "maxItems": 30},
            "securityGroupSelectorTerms": {"type": "array", "items": _OPEN, "maxItems": 30},
            "blockDeviceMappings": {"type": "array", "items": _OPEN, "maxItems": 50},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    return _crd(
        "karpenter.k8s.aws",
        "EC2NodeClass",
        "ec2nodeclasses",
        short=["ec2nc", "ec2ncs"],
        categories=["karpenter"],
        columns=[
            _column("Ready", _READY),
            _column("Age", ".metadata.creationTimestamp", "date"),
            _column("Role", ".spec.role", priority=1),
        ],
        spec=spec,
        status={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"conditions": _CONDITIONS},
        },
    )


def auto_nodeclass_crd() -> dict[str, Any]:
    """``nodeclasses.eks.amazonaws.com`` (EKS Auto Mode): ROLE, READY, AGE."""
    spec = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "role": {"type": "string"},
            "subnetSelectorTerms": {"type": "array", "items": _OPEN},
            "securityGroupSelectorTerms": {"type": "array", "items": _OPEN},
            "ephemeralStorage": _OPEN,
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    return _crd(
        "eks.amazonaws.com",
        "NodeClass",
        "nodeclasses",
        categories=["karpenter"],
        columns=[
            _column("Role", ".spec.role"),
            _column("Ready", _READY),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
        spec=spec,
        status={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"conditions": _CONDITIONS},
        },
    )


def crds_for(provider: str) -> list[dict[str, Any]]:
    """The CRDs a cluster serves: NodePool and NodeClaim, plus EC2NodeClass (``karpenter``) or NodeClass (``auto``)."""
    node_class = auto_nodeclass_crd() if provider == "auto" else ec2nodeclass_crd()
    return [nodepool_crd(), nodeclaim_crd(), node_class]


#: Store keys of the resources, for reference.
KEYS = {"nodepools": NODEPOOL_KEY, "nodeclaims": NODECLAIM_KEY, "ec2": EC2NODECLASS_KEY, "auto": AUTO_NODECLASS_KEY}


def register(store: Any, provider: str) -> list[str]:
    """Create the CRDs in ``store`` (existing ones are left alone); returns the CRD names created."""
    created = []
    for crd in crds_for(provider):
        try:
            store.create(CRD_KEY, crd)
            created.append(crd["metadata"]["name"])
        except Conflict:
            continue
    return created
