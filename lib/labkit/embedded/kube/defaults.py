"""Defaults the API server fills in, so objects read back as they do from a real cluster.

Pure functions that change the object given to them. Values are those of Kubernetes
1.3x defaulting (``SetDefaults_*``) and of the admission plugins every cluster runs
(ServiceAccount, DefaultTolerationSeconds, Priority), and they make every object
deserialize into the official client's typed models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

_NOT_READY_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
)


def image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or an untagged image (no digest), else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _probe(probe: Obj | None) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def _container(c: Obj) -> None:
    if not isinstance(c, dict):
        return
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if "image" in c and isinstance(c["image"], str):
        c.setdefault("imagePullPolicy", image_pull_policy(c["image"]))
    c.setdefault("resources", {})
    resources = c["resources"]
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
        # requests default to limits for each resource given only a limit
        requests = resources.setdefault("requests", {})
        for name, value in resources["limits"].items():
            requests.setdefault(name, value)
    for port in c.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in c.get("env") or ():
        source = env.get("valueFrom") if isinstance(env, dict) else None
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            source["fieldRef"].setdefault("apiVersion", "v1")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(name))


def _volume(v: Obj) -> None:
    if not isinstance(v, dict):
        return
    for source_name in ("configMap", "secret", "downwardAPI", "projected"):
        source = v.get(source_name)
        if isinstance(source, dict):
            source.setdefault("defaultMode", 420)
    empty = v.get("emptyDir")
    if empty is not None and not isinstance(empty, dict):
        v["emptyDir"] = {}
    host_path = v.get("hostPath")
    if isinstance(host_path, dict):
        host_path.setdefault("type", "")


def pod_spec(spec: Obj) -> None:
    """Defaults of a PodSpec (in a Pod or a pod template)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            _container(c)
    for v in spec.get("volumes") or ():
        _volume(v)


def _template(template: Any) -> None:
    if not isinstance(template, dict):
        return
    meta = template.setdefault("metadata", {})
    if isinstance(meta, dict):
        meta.setdefault("creationTimestamp", None)
    spec = template.get("spec")
    if isinstance(spec, dict):
        pod_spec(spec)


def _qos_class(spec: Obj) -> str:
    requests_seen = False
    guaranteed = True
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = (c.get("resources") or {}) if isinstance(c, dict) else {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for name in ("cpu", "memory"):
            if name in req or name in lim:
                requests_seen = True
            if name not in lim or str(req.get(name, lim.get(name))) != str(lim.get(name)):
                guaranteed = False
    if not requests_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod(obj: Obj) -> None:
    """Defaults and admission of a Pod at create."""
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    if isinstance(tolerations, list):
        for default in _NOT_READY_TOLERATIONS:
            if not any(
                isinstance(t, dict) and t.get("key") == default["key"] and t.get("effect") in (None, "NoExecute")
                for t in tolerations
            ):
                tolerations.append(dict(default))


def _replicas(spec: Obj) -> None:
    spec.setdefault("replicas", 1)


def deployment(obj: Obj) -> None:
    """Defaults of a Deployment."""
    spec = obj.setdefault("spec", {})
    _replicas(spec)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(spec.get("template"))


def replicaset(obj: Obj) -> None:
    """Defaults of a ReplicaSet."""
    spec = obj.setdefault("spec", {})
    _replicas(spec)
    _template(spec.get("template"))


def statefulset(obj: Obj) -> None:
    """Defaults of a StatefulSet."""
    spec = obj.setdefault("spec", {})
    _replicas(spec)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    for pvc in spec.get("volumeClaimTemplates") or ():
        if isinstance(pvc, dict):
            pvc.setdefault("apiVersion", "v1")
            pvc.setdefault("kind", "PersistentVolumeClaim")
            pvc.setdefault("metadata", {}).setdefault("creationTimestamp", None)
            pvc.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
            pvc.setdefault("status", {}).setdefault("phase", "Pending")
    _template(spec.get("template"))


def daemonset(obj: Obj) -> None:
    """Defaults of a DaemonSet."""
    spec = obj.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(spec.get("template"))


def job_spec(spec: Obj, uid: str | None, name: str | None) -> None:
    """Defaults of a JobSpec; with ``uid`` and ``name`` also the generated selector and labels."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if uid and name and not spec.get("manualSelector"):
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template = spec.setdefault("template", {})
        if isinstance(template, dict):
            meta = template.setdefault("metadata", {})
            if isinstance(meta, dict):
                meta.setdefault("labels", {})
                for k, v in labels.items():
                    meta["labels"].setdefault(k, v)
    _template(spec.get("template"))


def job(obj: Obj) -> None:
    """Defaults of a Job (selector and labels come with the uid)."""
    spec = obj.setdefault("spec", {})
    meta = obj.get("metadata") or {}
    job_spec(spec, meta.get("uid"), meta.get("name"))


def cronjob(obj: Obj) -> None:
    """Defaults of a CronJob."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.get("jobTemplate")
    if isinstance(jt, dict):
        jt.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        jspec = jt.get("spec")
        if isinstance(jspec, dict):
            _template(jspec.get("template"))


def service(obj: Obj) -> None:
    """Defaults of a Service (the store allocates clusterIP and node ports)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec.get("clusterIP") != "None" or spec.get("selector"):
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    for port in spec.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def namespace(obj: Obj) -> None:
    """Defaults of a Namespace."""
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    if isinstance(labels, dict) and meta.get("name"):
        labels["kubernetes.io/metadata.name"] = meta["name"]
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])


def secret(obj: Obj) -> None:
    """Defaults of a Secret; ``stringData`` is folded into ``data`` (base64)."""
    import base64

    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {}) or {}
        obj["data"] = data
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def pvc(obj: Obj) -> None:
    """Defaults of a PersistentVolumeClaim."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")


def pv(obj: Obj) -> None:
    """Defaults of a PersistentVolume."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")


def storageclass(obj: Obj) -> None:
    """Defaults of a StorageClass."""
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def hpa(obj: Obj) -> None:
    """Defaults of an autoscaling/v2 HorizontalPodAutoscaler."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }
        ]


def networkpolicy(obj: Obj) -> None:
    """Defaults of a NetworkPolicy: ``policyTypes`` from the rules present."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("podSelector", {})
    if "policyTypes" not in spec:
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or ():
            for port in (rule or {}).get("ports") or ():
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def priorityclass(obj: Obj) -> None:
    """Defaults of a PriorityClass."""
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def crd(obj: Obj) -> None:
    """Defaults of a CustomResourceDefinition."""
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or ():
        if isinstance(version, dict):
            version.setdefault("served", True)
            version.setdefault("storage", False)


def endpointslice(obj: Obj) -> None:
    """Defaults of an EndpointSlice."""
    obj.setdefault("endpoints", [])
    for port in obj.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def endpoints(obj: Obj) -> None:
    """Defaults of Endpoints."""
    for subset in obj.get("subsets") or ():
        for port in (subset or {}).get("ports") or ():
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def event(obj: Obj) -> None:
    """Defaults of a core/v1 Event."""
    obj.setdefault("involvedObject", {})
    obj.setdefault("type", "Normal")
    obj.setdefault("reportingComponent", "")
    obj.setdefault("reportingInstance", "")


def events_v1(obj: Obj) -> None:
    """Defaults of an events.k8s.io/v1 Event."""
    obj.setdefault("type", "Normal")


#: Defaulting per store key, applied on create and on every update.
DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "pods": pod,
    "deployments.apps": deployment,
    "replicasets.apps": replicaset,
    "statefulsets.apps": statefulset,
    "daemonsets.apps": daemonset,
    "jobs.batch": job,
    "cronjobs.batch": cronjob,
    "services": service,
    "namespaces": namespace,
    "secrets": secret,
    "persistentvolumeclaims": pvc,
    "persistentvolumes": pv,
    "storageclasses.storage.k8s.io": storageclass,
    "horizontalpodautoscalers.autoscaling": hpa,
    "networkpolicies.networking.k8s.io": networkpolicy,
    "priorityclasses.scheduling.k8s.io": priorityclass,
    "customresourcedefinitions.apiextensions.k8s.io": crd,
    "endpointslices.discovery.k8s.io": endpointslice,
    "endpoints": endpoints,
    "events": event,
    "events.events.k8s.io": events_v1,
}


# ------------------------------------------------------------------------------------------------------ status


def _zeros(*names: str) -> Callable[[Obj, Obj], None]:
    def fill(status: Obj, obj: Obj) -> None:
        for name in names:
            status.setdefault(name, 0)

    return fill


def _nothing(status: Obj, obj: Obj) -> None:
    return None


def _pod_status(status: Obj, obj: Obj) -> None:
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(obj.get("spec") or {}))


def _phase(phase: str) -> Callable[[Obj, Obj], None]:
    def fill(status: Obj, obj: Obj) -> None:
        status.setdefault("phase", phase)

    return fill


def _service_status(status: Obj, obj: Obj) -> None:
    status.setdefault("loadBalancer", {})


_NODE_INFO = (
    "architecture",
    "bootID",
    "containerRuntimeVersion",
    "kernelVersion",
    "kubeProxyVersion",
    "kubeletVersion",
    "machineID",
    "operatingSystem",
    "osImage",
    "systemUUID",
)


def _node_status(status: Obj, obj: Obj) -> None:
    info = status.get("nodeInfo")
    if isinstance(info, dict):
        for name in _NODE_INFO:
            info.setdefault(name, "")


#: Status defaults per store key: initial phases and the fields the typed models require. They run on
#: create and on every status write, and only touch ``status``.
STATUS_DEFAULTERS: dict[str, Callable[[Obj, Obj], None]] = {
    "pods": _pod_status,
    "deployments.apps": _nothing,
    "replicasets.apps": _zeros("replicas"),
    "statefulsets.apps": _zeros("replicas", "availableReplicas"),
    "daemonsets.apps": _zeros("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"),
    "jobs.batch": _nothing,
    "cronjobs.batch": _nothing,
    "services": _service_status,
    "namespaces": _phase("Active"),
    "persistentvolumeclaims": _phase("Pending"),
    "persistentvolumes": _phase("Pending"),
    "horizontalpodautoscalers.autoscaling": _zeros("currentReplicas", "desiredReplicas"),
    "poddisruptionbudgets.policy": _zeros("currentHealthy", "desiredHealthy", "disruptionsAllowed", "expectedPods"),
    "nodes": _node_status,
}


def apply_status_defaults(key: str, obj: Obj) -> None:
    """Fill in the status defaults of the type stored under ``key``; changes only ``obj["status"]``."""
    fn = STATUS_DEFAULTERS.get(key)
    if fn is None:
        return
    status = obj.get("status")
    if not isinstance(status, dict):
        if key == "nodes":
            return
        status = obj["status"] = {}
    fn(status, obj)


def apply_defaults(key: str, obj: Obj) -> None:
    """Fill in the defaults of the type stored under ``key`` (spec and status)."""
    fn = DEFAULTERS.get(key)
    if fn is not None:
        fn(obj)
    apply_status_defaults(key, obj)
