"""Serving: vLLM and TGI model servers, autoscaling, and OpenAI-compatible clients.

Pure builders live in :mod:`.manifests`, the OpenAI-compatible client helpers in :mod:`.client`;
the lab steps (deploy, wait, call, ``/metrics``, scale to zero, capacity plans) are in :mod:`.steps`
and exported here.
"""

from labkit.serving.steps import (
    Deployed,
    LoadSnapshot,
    PlanMatrix,
    Readiness,
    ScaledToZero,
    ServerMetrics,
    Sla,
    Streamed,
    delete,
    deploy,
    hf_token_secret,
    metrics,
    metrics_under_load,
    plan_capacity,
    scale_to_zero,
    stream,
    url,
    wait_ready,
    why_pending,
)

__all__ = [
    "Deployed",
    "LoadSnapshot",
    "PlanMatrix",
    "Readiness",
    "ScaledToZero",
    "ServerMetrics",
    "Sla",
    "Streamed",
    "delete",
    "deploy",
    "hf_token_secret",
    "metrics",
    "metrics_under_load",
    "plan_capacity",
    "scale_to_zero",
    "stream",
    "url",
    "wait_ready",
    "why_pending",
]
