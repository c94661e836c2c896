"""The kit's Kubernetes layer: one client for every lab, on every target.

Everything talks real HTTP through the official ``kubernetes`` client via
:class:`Kube`, the one choke point (retries with backoff, errors mapped into
:mod:`labkit.errors`). Step functions take ``kube=`` (a ``Kube`` or a platform;
default: the current lab's) and return results that carry the equivalent
``kubectl`` command in ``.kubectl`` (``show_kubectl=True`` prints it first)::

    from labkit import kube

    print(kube.apply("infra/k8s/serving/", show_kubectl=True))
    kube.rollout_status("deployment/vllm", namespace="serving", timeout=600)
    kube.get_table("pods", namespace="serving")
    url = kube.service_url("vllm", "serving")
"""

from __future__ import annotations

from labkit.kube.apply import Applied, ApplyResult, apply, delete, delete_resource
from labkit.kube.client import Kube, ObjectList, current
from labkit.kube.diagnose import explain_pod
from labkit.kube.explain import Diagnosis
from labkit.kube.inspect import Description, describe_pod, events_table, get, get_table, logs
from labkit.kube.manifests import Manifest
from labkit.kube.manifests import load as load_manifests
from labkit.kube.retry import RetryPolicy
from labkit.kube.services import ServiceEndpoint, open_service, service_url
from labkit.kube.tables import Table
from labkit.kube.wait import WaitResult, rollout_status, wait_deleted, wait_for

__all__ = [
    "Applied",
    "ApplyResult",
    "Description",
    "Diagnosis",
    "Kube",
    "Manifest",
    "ObjectList",
    "RetryPolicy",
    "ServiceEndpoint",
    "Table",
    "WaitResult",
    "apply",
    "current",
    "delete",
    "delete_resource",
    "describe_pod",
    "events_table",
    "explain_pod",
    "get",
    "get_table",
    "load_manifests",
    "logs",
    "open_service",
    "rollout_status",
    "service_url",
    "wait_deleted",
    "wait_for",
]
