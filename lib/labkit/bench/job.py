"""Run the benchmark in-cluster as a Kubernetes Job beside the model server (pure builders).

Measuring from a laptop adds the internet to every latency; the Job runs the same client in
a pod scheduled in the model server's availability zone (required ``podAffinity`` on the
server's labels over ``topology.kubernetes.io/zone``) but preferably not on its node (so it
does not take the server's CPU), with Guaranteed QoS (requests equal limits). The pod writes
the result JSON to stdout between :data:`BEGIN_MARKER` and :data:`END_MARKER`; the collector
reads it back from the pod log with :func:`parse_log`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from labkit.errors import ConfigError, Invalid

BEGIN_MARKER = "=====BEGIN LABKIT BENCH RESULT====="
END_MARKER = "=====END LABKIT BENCH RESULT====="
ZONE_KEY = "topology.kubernetes.io/zone"
HOST_KEY = "kubernetes.io/hostname"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(labels)}


def job_manifest(
    *,
    name: str,
    namespace: str,
    image: str,
    url: str,
    server_labels: Mapping[str, str],
    model: str | None = None,
    bench_args: Sequence[str] = (),
    server_namespace: str | None = None,
    cpu: str = "2",
    memory: str = "2Gi",
    api_key_secret: tuple[str, str] | None = None,
    ttl_seconds_after_finished: int = 3600,
    active_deadline_seconds: int = 3600,
    labels: Mapping[str, str] | None = None,
    service_account: str | None = None,
) -> dict[str, Any]:
    """A ``batch/v1`` Job that runs ``labkit bench run`` against ``url`` in the server's zone.

    Args:
        name: the Job's name (a DNS label).
        namespace: where the Job runs.
        image: a container image with the kit installed (``python -m labkit.bench`` must work).
        url: the model server's URL as seen from inside the cluster (its Service).
        server_labels: labels of the model server's pods (for zone affinity).
        model: the model name (discovered from ``/v1/models`` when ``None``).
        bench_args: further ``labkit bench run`` arguments, e.g. ``["--rate", "10", "--num-requests", "500"]``.
        server_namespace: the server pods' namespace when it differs from ``namespace``.
        cpu: CPU request and limit of the client (whole cores keep it off shared cores).
        memory: memory request and limit.
        api_key_secret: ``(secret name, key)`` holding the server's API key, if it needs one.
        ttl_seconds_after_finished: how long the finished Job stays for its log to be read.
        active_deadline_seconds: the Job fails after this long.
        labels: extra labels for the Job and its pod.
        service_account: the pod's service account (``None``: the namespace default).
    """
    if not _DNS_LABEL.match(name):
        raise ConfigError(f"Job name '{name}' is not a DNS label", "use lowercase letters, digits and '-' (max 63)")
    if not server_labels:
        raise ConfigError(
            "the model server's pod labels are needed to place the benchmark in its zone",
            "pass server_labels, e.g. {'app.kubernetes.io/name': 'vllm'}",
        )
    if not image or image.endswith(":latest") or (":" not in image.rsplit("/", 1)[-1] and "@" not in image):
        raise ConfigError(f"image '{image}' is not pinned", "use a tag or digest, never latest")
    meta_labels = {
        "app.kubernetes.io/name": "labkit-bench",
        "app.kubernetes.io/managed-by": "labkit",
        "app.kubernetes.io/component": "benchmark",
        **dict(labels or {}),
    }
    args = ["-m", "labkit.bench", "run", "--url", url, "--emit-markers"]
    if model:
        args += ["--model", model]
    args += list(bench_args)
    env = [
        {"name": "LABKIT_HEADLESS", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "HOME", "value": "/tmp"},
    ]
    if api_key_secret is not None:
        secret, key = api_key_secret
        env.append({"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        args += ["--api-key-env", "OPENAI_API_KEY"]
    affinity_term: dict[str, Any] = {"labelSelector": _selector(server_labels), "topologyKey": ZONE_KEY}
    host_term: dict[str, Any] = {"labelSelector": _selector(server_labels), "topologyKey": HOST_KEY}
    if server_namespace and server_namespace != namespace:
        affinity_term["namespaces"] = [server_namespace]
        host_term["namespaces"] = [server_namespace]
    resources = {"cpu": cpu, "memory": memory}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "affinity": {
            "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [affinity_term]},
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": host_term}]
            },
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "bench",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python"],
                "args": args,
                "env": env,
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": meta_labels},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            "activeDeadlineSeconds": active_deadline_seconds,
            "template": {"metadata": {"labels": meta_labels}, "spec": pod_spec},
        },
    }


def wrap_result(doc: Mapping[str, Any]) -> str:
    """The text the pod prints: the result JSON on one line between the markers."""
    return f"{BEGIN_MARKER}\n{json.dumps(doc, separators=(',', ':'))}\n{END_MARKER}"


def parse_log(log: str) -> dict[str, Any]:
    """Extract the result JSON from a benchmark pod's log (the last complete marked block).

    Raises:
        Invalid: the log holds no complete result (the run failed or is still going).
    """
    end = log.rfind(END_MARKER)
    begin = log.rfind(BEGIN_MARKER, 0, end if end >= 0 else None)
    if begin < 0 or end < 0:
        tail = "\n".join(log.strip().splitlines()[-5:])
        raise Invalid(
            "the benchmark pod's log holds no result" + (f"; its last lines:\n{tail}" if tail else ""),
            "wait for the Job to complete, or read the whole log for the error",
        )
    body = log[begin + len(BEGIN_MARKER) : end].strip()
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise Invalid(f"the benchmark result in the pod log is not valid JSON: {exc}", "rerun the Job") from exc
    if not isinstance(doc, dict):
        raise Invalid("the benchmark result in the pod log is not a JSON object", "rerun the Job")
    return doc
