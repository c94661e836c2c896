"""Model server manifests: vLLM and TGI Deployments, Services, caches and autoscaling (pure).

A :class:`ModelServer` says what to serve and how much GPU it gets; the builders
turn it into hardened Kubernetes objects: pinned images, startup/readiness/liveness
probes on the server's health endpoint, ``/dev/shm`` in memory with a size limit,
GPU requests and the GPU taint's toleration, a model cache (PVC or node-local),
the Hugging Face token from a Secret, tensor parallelism from the GPU count, a
restricted security context where the server allows it, metrics port and
Prometheus annotations, and zone placement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from labkit.compute.nodepools import POOL_LABEL
from labkit.errors import ConfigError
from labkit.planner import catalog

IMAGES = {
    "vllm": "vllm/vllm-openai:v0.11.0",
    "tgi": "ghcr.io/huggingface/text-generation-inference:3.3.5",
}
PORTS = {"vllm": 8000, "tgi": 8080}
CACHE_PATH = "/models"
COMPONENT = "model-server"
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ModelServer:
    """A model server to deploy.

    Attributes:
        name: Deployment and Service name (DNS label).
        model: Hugging Face model id, e.g. ``meta-llama/Llama-3.1-8B-Instruct``.
        engine: ``vllm`` or ``tgi``.
        namespace: where it runs.
        served_model_name: the name clients send in ``model``; defaults to ``model``.
        gpus: GPUs per replica; also the tensor-parallel size.
        replicas: Deployment replicas (an autoscaler may change them).
        max_model_len: longest context served; bounds KV cache per sequence.
        gpu_memory_utilization: share of GPU memory vLLM may use (weights + KV cache).
        tool_calling: enable OpenAI tool calling (vLLM: the family's ``--tool-call-parser``).
        hf_token_secret: Secret holding the Hugging Face token under key ``token``; ``None`` for public models.
        cache: ``node`` (emptyDir on the node's large root volume), ``pvc`` (EBS volume; one replica), ``none``.
        cache_size_gib: size of the model cache.
        storage_class: StorageClass of the PVC cache (``None``: the cluster default).
        zone: pin replicas to one availability zone (same zone as a PVC or a benchmark client).
        pool: the node pool label to land on (``labkit.dev/pool``); ``None`` lets any GPU node serve.
        shm_gib: size of ``/dev/shm`` (NCCL needs more with tensor parallelism).
        cpu: CPU request per replica.
        memory: memory request (and limit) per replica.
        image: override the pinned image (never ``latest``).
        extra_args: more server flags.
    """

    name: str
    model: str
    engine: str = "vllm"
    namespace: str = "serving"
    served_model_name: str | None = None
    gpus: int = 1
    replicas: int = 1
    max_model_len: int | None = 8192
    gpu_memory_utilization: float = 0.90
    tool_calling: bool = False
    hf_token_secret: str | None = "hf-token"
    cache: str = "node"
    cache_size_gib: int = 100
    storage_class: str | None = None
    zone: str | None = None
    pool: str | None = "gpu"
    shm_gib: int | None = None
    cpu: str = "4"
    memory: str = "32Gi"
    image: str | None = None
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _DNS.match(self.name):
            raise ConfigError(
                f"model server name '{self.name}' is not a valid Kubernetes name",
                "use lowercase letters, digits and '-', e.g. llama-8b",
            )
        if self.engine not in IMAGES:
            raise ConfigError(f"unknown engine '{self.engine}'", "use 'vllm' or 'tgi'")
        if self.gpus < 1 or self.gpus & (self.gpus - 1):
            raise ConfigError(
                f"{self.name}: gpus must be 1, 2, 4 or 8 (tensor parallel size), got {self.gpus}",
                "tensor parallelism splits attention heads evenly over a power of two of GPUs",
            )
        if self.cache not in ("node", "pvc", "none"):
            raise ConfigError(f"{self.name}: unknown cache '{self.cache}'", "use 'node', 'pvc' or 'none'")
        if self.cache == "pvc" and self.replicas > 1:
            raise ConfigError(
                f"{self.name}: a ReadWriteOnce PVC cache can serve one replica, not {self.replicas}",
                "use cache='node' for several replicas, or one replica per PVC",
            )
        if not 0.1 <= self.gpu_memory_utilization <= 0.98:
            raise ConfigError(
                f"{self.name}: gpu_memory_utilization {self.gpu_memory_utilization} is out of range",
                "use 0.85-0.95; the rest of GPU memory is for CUDA graphs and activations",
            )
        image = self.image or IMAGES[self.engine]
        if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            raise ConfigError(f"{self.name}: image '{image}' is not pinned", "use an exact tag such as v0.11.0")

    @property
    def port(self) -> int:
        return PORTS[self.engine]

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/component": COMPONENT,
            "labkit.dev/engine": self.engine,
        }

    @property
    def client_model_name(self) -> str:
        """What clients put in ``model``: vLLM's served name; TGI accepts any name (``tgi``)."""
        return (self.served_model_name or self.model) if self.engine == "vllm" else "tgi"


def server_args(server: ModelServer) -> list[str]:
    """The model server's command-line flags."""
    if server.engine == "vllm":
        args = [
            "--model",
            server.model,
            "--served-model-name",
            server.served_model_name or server.model,
            "--tensor-parallel-size",
            str(server.gpus),
            "--gpu-memory-utilization",
            str(server.gpu_memory_utilization),
            "--port",
            str(server.port),
        ]
        if server.max_model_len:
            args += ["--max-model-len", str(server.max_model_len)]
        if server.tool_calling:
            parser = _tool_call_parser(server.model)
            args += ["--enable-auto-tool-choice", "--tool-call-parser", parser]
    else:
        args = ["--model-id", server.model, "--num-shard", str(server.gpus), "--port", str(server.port)]
        if server.max_model_len:
            args += [
                "--max-input-tokens",
                str(server.max_model_len - 1),
                "--max-total-tokens",
                str(server.max_model_len),
            ]
    return [*args, *server.extra_args]


def _tool_call_parser(model: str) -> str:
    try:
        parser = catalog.get_model(model).default_tool_call_parser
    except ConfigError:
        parser = None
    if not parser:
        raise ConfigError(
            f"no vLLM tool-call parser is known for '{model}'",
            "pass extra_args=('--enable-auto-tool-choice', '--tool-call-parser', '<parser>') yourself, "
            "or register the model with its parser in labkit.planner",
        )
    return parser


def _probe(server: ModelServer, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _security(server: ModelServer) -> tuple[dict[str, Any], dict[str, Any]]:
    container = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if server.engine == "vllm":
        # vLLM runs as any user when HOME and its caches point at writable volumes.
        pod = {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        container = {**container, "runAsNonRoot": True}
    else:
        # TGI's image runs as root and writes its cache under /data; everything else stays locked down.
        pod = {"seccompProfile": {"type": "RuntimeDefault"}}
    return pod, container


def deployment(server: ModelServer) -> dict[str, Any]:
    """The model server's Deployment."""
    shm = server.shm_gib or (2 if server.gpus == 1 else 8 * server.gpus)
    env: list[dict[str, Any]] = [{"name": "HOME", "value": "/tmp"}]
    if server.engine == "vllm":
        env += [{"name": "HF_HOME", "value": f"{CACHE_PATH}/hf"}, {"name": "VLLM_CACHE_ROOT", "value": "/tmp/vllm"}]
    else:
        env += [{"name": "HUGGINGFACE_HUB_CACHE", "value": CACHE_PATH}]
    if server.hf_token_secret:
        env.append(
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": server.hf_token_secret, "key": "token"}}}
        )
    volumes: list[dict[str, Any]] = [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm}Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}},
    ]
    mounts = [{"name": "shm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"}]
    if server.cache == "node":
        volumes.append({"name": "models", "emptyDir": {"sizeLimit": f"{server.cache_size_gib}Gi"}})
    elif server.cache == "pvc":
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": f"{server.name}-models"}})
    if server.cache != "none":
        mounts.append({"name": "models", "mountPath": CACHE_PATH})
    pod_security, container_security = _security(server)
    gpu = {"nvidia.com/gpu": str(server.gpus)}
    container: dict[str, Any] = {
        "name": "server",
        "image": server.image or IMAGES[server.engine],
        "args": server_args(server),
        "ports": [{"name": "http", "containerPort": server.port, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": server.cpu, "memory": server.memory, **gpu},
            "limits": {"memory": server.memory, **gpu},
        },
        "startupProbe": _probe(server, 10, 90),  # up to 15 minutes to download and load weights
        "readinessProbe": _probe(server, 5, 3),
        "livenessProbe": _probe(server, 10, 3),
        "volumeMounts": mounts,
        "securityContext": container_security,
    }
    if server.engine == "vllm":
        container["command"] = ["vllm", "serve"]
    node_selector: dict[str, str] = {}
    if server.pool:
        node_selector[POOL_LABEL] = server.pool
    if server.zone:
        node_selector["topology.kubernetes.io/zone"] = server.zone
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 60,
        "securityContext": pod_security,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container],
        "volumes": volumes,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": server.name}},
            }
        ],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": server.name, "namespace": server.namespace, "labels": server.labels},
        "spec": {
            "replicas": server.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": server.name}},
            # A surge replica needs a spare GPU; no replica is taken away before its successor is Ready.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": server.labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(server.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": spec,
            },
        },
    }


def service(server: ModelServer) -> dict[str, Any]:
    """A ClusterIP Service on port 80 in front of the server's ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": server.name, "namespace": server.namespace, "labels": server.labels},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": server.name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def cache_pvc(server: ModelServer) -> dict[str, Any]:
    """The EBS-backed model cache when ``cache='pvc'``."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{server.cache_size_gib}Gi"}},
    }
    if server.storage_class:
        spec["storageClassName"] = server.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{server.name}-models", "namespace": server.namespace, "labels": server.labels},
        "spec": spec,
    }


def queue_depth_query(server: ModelServer) -> str:
    """PromQL for the server's queue depth (requests waiting for a batch slot)."""
    if server.engine == "vllm":
        return f'sum(vllm:num_requests_waiting{{model_name="{server.client_model_name}"}})'
    return f'sum(tgi_queue_size{{service="{server.name}"}})'


def scaled_object(
    server: ModelServer,
    *,
    prometheus_url: str,
    min_replicas: int = 1,
    max_replicas: int = 4,
    waiting_per_replica: int = 5,
) -> dict[str, Any]:
    """A KEDA ``ScaledObject`` scaling on queue depth: one more replica per ``waiting_per_replica`` waiting."""
    if not 0 <= min_replicas <= max_replicas:
        raise ConfigError(
            f"replicas must satisfy 0 <= min ({min_replicas}) <= max ({max_replicas})",
            "min 0 enables scale to zero; max is bounded by the GPU pool's limit",
        )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": server.name, "namespace": server.namespace, "labels": server.labels},
        "spec": {
            "scaleTargetRef": {"name": server.name},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 600,  # a GPU replica takes minutes to come back: scale down slowly
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": 600,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": queue_depth_query(server),
                        "threshold": str(waiting_per_replica),
                        "activationThreshold": "1",
                    },
                }
            ],
        },
    }


def hpa(
    server: ModelServer, *, metric: str = "vllm_num_requests_waiting", average: int = 5, max_replicas: int = 4
) -> dict[str, Any]:
    """An ``autoscaling/v2`` HPA on a per-pod queue metric (needs prometheus-adapter to expose ``metric``)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": server.name, "namespace": server.namespace, "labels": server.labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": server.name},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": metric},
                        "target": {"type": "AverageValue", "averageValue": str(average)},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    }


def manifests(server: ModelServer) -> list[dict[str, Any]]:
    """Everything the server needs, in apply order (cache, Deployment, Service)."""
    objs = [cache_pvc(server)] if server.cache == "pvc" else []
    return [*objs, deployment(server), service(server)]
