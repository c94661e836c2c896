"""Helpers every embedded controller shares: timestamps, owner references, conditions, status writes."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping
from typing import Any

from labkit.errors import Conflict, NotFound

# Characters Kubernetes uses for generated name suffixes (k8s.io/apimachinery rand.String).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def rfc3339(ts: float) -> str:
    """Simulated epoch seconds as the API writes timestamps (``2025-01-02T03:04:05Z``)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> float | None:
    """Epoch seconds of an API timestamp, or ``None`` for empty/unparsable text."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def random_suffix(rng: random.Random, n: int = 5) -> str:
    """A generated-name suffix like the API server's (``7x2kq``)."""
    return "".join(rng.choice(NAME_ALPHABET) for _ in range(n))


def obj_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of :func:`obj_key`."""
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Mapping[str, Any], *, block: bool = True) -> dict[str, Any]:
    """A controller ownerReference pointing at ``owner``."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": block,
    }


def is_owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether ``owner`` is the controller of ``obj`` (by uid)."""
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def pod_condition(pod: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The pod condition of type ``kind``."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """``Ready=True``."""
    c = pod_condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: float, now: float) -> bool:
    """Ready for at least ``min_ready_seconds``."""
    c = pod_condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_rfc3339(c.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def is_active_pod(pod: Mapping[str, Any]) -> bool:
    """Not terminating and not finished: what ReplicaSets and Jobs count."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: str,
    update_time: bool = False,
    probe_time: bool = False,
) -> list[dict[str, Any]]:
    """``conditions`` with ``kind`` set; lastTransitionTime moves only when the status changes.

    Args:
        update_time: the condition type carries ``lastUpdateTime`` (Deployment): refresh it when anything changes.
        probe_time: the condition type carries ``lastProbeTime`` (Job).
    """
    out = [dict(c) for c in conditions]
    old = next((c for c in out if c.get("type") == kind), None)
    new: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message}
    if old is not None and old.get("status") == status:
        new["lastTransitionTime"] = old.get("lastTransitionTime", now)
    else:
        new["lastTransitionTime"] = now
    if update_time:
        unchanged = old is not None and all(old.get(k) == new[k] for k in ("status", "reason", "message"))
        new["lastUpdateTime"] = old.get("lastUpdateTime", now) if unchanged and old else now
    if probe_time:
        new["lastProbeTime"] = old.get("lastProbeTime", now) if old and old.get("status") == status else now
    if old is None:
        out.append(new)
    else:
        out[out.index(old)] = new
    return out


def write_status(
    store: Any,
    key: str,
    namespace: str | None,
    name: str,
    mutate: Callable[[dict[str, Any]], bool],
    *,
    tries: int = 8,
) -> dict[str, Any] | None:
    """Read, ``mutate`` (returns whether anything changed) and write the status subresource, retrying conflicts.

    Returns:
        the stored object, or ``None`` when it is gone or nothing changed.
    """
    for _ in range(tries):
        obj = store.try_get(key, namespace, name)
        if obj is None:
            return None
        if not mutate(obj):
            return None
        try:
            return store.update(key, obj, subresource="status")
        except Conflict:
            continue
        except NotFound:
            return None
    raise Conflict(f"status of {key} {namespace}/{name} kept changing", "the controller retries on its own")


def template_hash_text(value: int) -> str:
    """FNV hash digits spelled like ``rand.SafeEncodeString`` (as pod-template-hash values look)."""
    return "".join(NAME_ALPHABET[ord(ch) % len(NAME_ALPHABET)] for ch in str(value))


def fnv32a(data: bytes) -> int:
    """32-bit FNV-1a."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pod_from_template(template: Mapping[str, Any], owner: Mapping[str, Any]) -> dict[str, Any]:
    """A Pod built from a pod template, owned (controller reference) by ``owner``, in its namespace."""
    import copy

    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {
        "namespace": owner["metadata"].get("namespace"),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [owner_reference(owner)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    """An IntOrString such as ``1`` or ``"25%"`` scaled against ``total``."""
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) * total / 100
        import math

        return math.ceil(share) if round_up else math.floor(share)
    return int(value)
