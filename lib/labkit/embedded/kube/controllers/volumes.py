"""PersistentVolumeClaim binding and dynamic provisioning, as the PV controller plus a CSI provisioner do.

A claim whose StorageClass names a known provisioner (EBS CSI, EKS Auto Mode's EBS, kind's
local-path) gets a PersistentVolume ``pvc-<claim uid>`` and is Bound: at once for
``Immediate`` classes, once a pod using it is scheduled for ``WaitForFirstConsumer`` ones (the
volume then follows that node's zone). A claim without a class, with a missing class or with an
unknown provisioner stays Pending with the events ``kubectl describe pvc`` shows on a real
cluster. Deleting a claim deletes its volume when the reclaim policy is ``Delete``.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from labkit.errors import ApiError, Conflict, NotFound

from .base import Controller
from .common import obj_key, split_key, write_status

KNOWN_PROVISIONERS = (
    "ebs.csi.aws.com",
    "ebs.csi.eks.amazonaws.com",
    "kubernetes.io/aws-ebs",
    "rancher.io/local-path",
    "efs.csi.aws.com",
)


def _claims_of(pod: dict[str, Any]) -> list[str]:
    return [
        str(v["persistentVolumeClaim"]["claimName"])
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v.get("persistentVolumeClaim"), dict) and v["persistentVolumeClaim"].get("claimName")
    ]


class PersistentVolumeBinder(Controller):
    """Binds claims to dynamically provisioned volumes."""

    name = "persistentvolume-controller"
    primary = "persistentvolumeclaims"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "pods" and event.type != "DELETED" and (event.obj.get("spec") or {}).get("nodeName"):
            ns = event.obj["metadata"]["namespace"]
            return [f"{ns}/{c}" for c in _claims_of(event.obj)]
        if event.key == "storageclasses.storage.k8s.io" and event.type == "ADDED":
            claims, _ = self.store.list(self.primary)
            return [obj_key(c) for c in claims if (c.get("status") or {}).get("phase") != "Bound"]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        pvc = self.store.try_get(self.primary, ns, name)
        if pvc is None:
            self._release(ns or "", name)
            return None
        if pvc["metadata"].get("deletionTimestamp") or (pvc.get("status") or {}).get("phase") == "Bound":
            return None
        spec = pvc.get("spec") or {}
        class_name = spec.get("storageClassName")
        if not class_name:
            self.event(
                pvc, "FailedBinding", "no persistent volumes available for this claim and no storage class is set"
            )
            return None
        sc = self.store.try_get("storageclasses.storage.k8s.io", None, class_name)
        if sc is None:
            self.event(pvc, "ProvisioningFailed", f'storageclass.storage.k8s.io "{class_name}" not found',
                       kind="Warning")  # fmt: skip
            return None
        provisioner = sc.get("provisioner", "")
        node = None
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            node = self._consumer_node(pvc)
            if node is None:
                self.event(pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
                return None
        if provisioner not in KNOWN_PROVISIONERS:
            self.event(
                pvc, "ExternalProvisioning",
                f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually "
                "by the system administrator. If volume creation is delayed, please verify that the provisioner is "
                "running and correctly registered.",
            )  # fmt: skip
            return None
        self.event(pvc, "Provisioning", f'External provisioner is provisioning volume for claim "{ns}/{name}"')
        pv = self._provision(pvc, sc, node)
        if pv is None:
            return 1.0
        self._bind(pvc, pv, provisioner)
        self.event(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {pv['metadata']['name']}")
        return None

    def _consumer_node(self, pvc: dict[str, Any]) -> dict[str, Any] | None:
        pods = self.ctx.list("pods", pvc["metadata"]["namespace"])
        for p in pods:
            node_name = (p.get("spec") or {}).get("nodeName")
            if node_name and pvc["metadata"]["name"] in _claims_of(p):
                return self.store.try_get("nodes", None, node_name)
        return None

    def _provision(self, pvc: dict[str, Any], sc: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any] | None:
        spec = pvc.get("spec") or {}
        uid = pvc["metadata"].get("uid", "")
        name = f"pvc-{uid}"
        existing = self.store.try_get("persistentvolumes", None, name)
        if existing is not None:
            return existing
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        provisioner = sc.get("provisioner", "")
        labels = (node or {}).get("metadata", {}).get("labels") or {}
        pv_spec: dict[str, Any] = {
            "capacity": {"storage": size},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "name": pvc["metadata"]["name"],
                "namespace": pvc["metadata"]["namespace"],
                "uid": uid,
                "resourceVersion": pvc["metadata"].get("resourceVersion", ""),
            },
        }
        if provisioner == "rancher.io/local-path":
            host = labels.get("kubernetes.io/hostname", "")
            pv_spec["hostPath"] = {
                "path": f"/var/local-path-provisioner/{name}_{pvc['metadata']['namespace']}_{pvc['metadata']['name']}",
                "type": "DirectoryOrCreate",
            }
            if host:
                pv_spec["nodeAffinity"] = _node_affinity("kubernetes.io/hostname", host)
        else:
            volume_id = "vol-0" + hashlib.sha256(uid.encode()).hexdigest()[:16]
            pv_spec["csi"] = {
                "driver": provisioner if "csi" in provisioner else "ebs.csi.aws.com",
                "volumeHandle": volume_id,
                "fsType": (sc.get("parameters") or {}).get("csi.storage.k8s.io/fstype", "ext4"),
                "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": f"{provisioner}"},
            }
            zone = labels.get("topology.kubernetes.io/zone")
            if zone:
                pv_spec["nodeAffinity"] = _node_affinity("topology.kubernetes.io/zone", zone)
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {
                    "pv.kubernetes.io/provisioned-by": provisioner,
                    "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                    "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
                },
                "finalizers": ["kubernetes.io/pv-protection"],
            },
            "spec": pv_spec,
        }
        try:
            pv = self.store.create("persistentvolumes", body)
        except Conflict:
            return self.store.try_get("persistentvolumes", None, name)
        except ApiError:
            return None

        def bound(obj: dict[str, Any]) -> bool:
            obj["status"] = {"phase": "Bound"}
            return True

        with contextlib.suppress(ApiError):
            pv = write_status(self.store, "persistentvolumes", None, name, bound) or pv
        return pv

    def _bind(self, pvc: dict[str, Any], pv: dict[str, Any], provisioner: str) -> None:
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        annotations = {
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.beta.kubernetes.io/storage-provisioner": provisioner,
            "volume.kubernetes.io/storage-provisioner": provisioner,
        }
        body = {"metadata": {"annotations": annotations}, "spec": {"volumeName": pv["metadata"]["name"]}}
        with contextlib.suppress(NotFound, Conflict):
            self.store.patch(self.primary, ns, name, body, "merge")

        def mutate(obj: dict[str, Any]) -> bool:
            obj["status"] = {
                "phase": "Bound",
                "accessModes": list(pv["spec"].get("accessModes") or []),
                "capacity": dict(pv["spec"].get("capacity") or {}),
            }
            return True

        with contextlib.suppress(ApiError):
            write_status(self.store, self.primary, ns, name, mutate)

    def _release(self, ns: str, name: str) -> None:
        volumes, _ = self.store.list("persistentvolumes")
        for pv in volumes:
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if ref.get("namespace") != ns or ref.get("name") != name:
                continue
            if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
                with contextlib.suppress(ApiError):
                    self.store.patch("persistentvolumes", None, pv["metadata"]["name"],
                                     {"metadata": {"finalizers": None}}, "merge")  # fmt: skip
                with contextlib.suppress(NotFound):
                    self.store.delete("persistentvolumes", None, pv["metadata"]["name"])
            else:

                def released(obj: dict[str, Any]) -> bool:
                    obj["status"] = {"phase": "Released"}
                    return True

                with contextlib.suppress(ApiError):
                    write_status(self.store, "persistentvolumes", None, pv["metadata"]["name"], released)


def _node_affinity(key: str, value: str) -> dict[str, Any]:
    return {
        "required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]}
    }
