"""Names of the AWS resources the kit creates for a cluster (pure, deterministic).

Every name starts with ``labkit-<cluster>`` and fits its service's length and
character rules; a long cluster name is shortened with a stable hash, so the same
settings always name the same resources and reruns find what exists.
"""

from __future__ import annotations

import hashlib
import re

IAM_PATH = "/labkit/"


def bounded(cluster: str, suffix: str, limit: int, *, allowed: str = r"A-Za-z0-9_+=,.@-") -> str:
    """``labkit-<cluster>-<suffix>`` within ``limit`` characters of the ``allowed`` class."""
    clean = re.sub(f"[^{allowed}]", "-", cluster)
    name = f"labkit-{clean}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:6]
    keep = limit - len(f"labkit--{digest}-{suffix}")
    return f"labkit-{clean[: max(keep, 1)]}-{digest}-{suffix}"[:limit]


def role(cluster: str, purpose: str) -> str:
    """IAM role names (64 characters): ``cluster``, ``node``, ``karpenter-node``, ``karpenter``."""
    return bounded(cluster, purpose, 64)


def policy(cluster: str, purpose: str) -> str:
    """Customer managed policy names (128 characters)."""
    return bounded(cluster, purpose, 128)


def instance_profile(cluster: str) -> str:
    return bounded(cluster, "karpenter-node", 128)


def vpc_stack(cluster: str) -> str:
    """CloudFormation stack names allow letters, digits and ``-`` only (128 characters)."""
    return bounded(cluster, "vpc", 128, allowed="A-Za-z0-9-")


def interruption_queue(cluster: str) -> str:
    """SQS queue names (80 characters)."""
    return bounded(cluster, "karpenter", 80, allowed="A-Za-z0-9_-")


def event_rule(cluster: str, kind: str) -> str:
    """EventBridge rule names (64 characters)."""
    return bounded(cluster, kind, 64, allowed=r"A-Za-z0-9._-")


def nodegroup(purpose: str = "system") -> str:
    return purpose
