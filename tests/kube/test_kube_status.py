"""Reading status like kubectl: rollouts, pod STATUS, ages, quantities, JSONPath (pure)."""

from __future__ import annotations

import pytest

from labkit.errors import Invalid
from labkit.kube import jsonpath, status
from labkit.kube.wait import parse_condition


def deployment(gen: int = 2, observed: int = 2, want: int = 3, **st: int) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": "vllm", "generation": gen},
        "spec": {"replicas": want},
        "status": {"observedGeneration": observed, **st},
    }


@pytest.mark.parametrize(
    ("obj", "done", "message"),
    [
        (deployment(gen=3, observed=2), False, "Waiting for deployment spec update to be observed..."),
        (deployment(updatedReplicas=1), False, "1 out of 3 new replicas have been updated"),
        (deployment(updatedReplicas=3, replicas=4), False, "1 old replicas are pending termination"),
        (
            deployment(updatedReplicas=3, replicas=3, availableReplicas=2),
            False,
            "2 of 3 updated replicas are available",
        ),
        (
            deployment(updatedReplicas=3, replicas=3, availableReplicas=3),
            True,
            'deployment "vllm" successfully rolled out',
        ),
    ],
)
def test_deployment_rollout_follows_kubectl(obj: dict, done: bool, message: str) -> None:
    state = status.rollout(obj)
    assert state.done is done and message in state.message


def test_deployment_past_its_progress_deadline_has_failed() -> None:
    obj = deployment(updatedReplicas=1)
    obj["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "RS stuck"}
    ]
    state = status.rollout(obj)
    assert not state.done and state.failed == "RS stuck" and "exceeded its progress deadline" in state.message


def test_statefulset_and_daemonset_rollouts() -> None:
    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "a"},
    }
    assert status.rollout(sts).message == "Waiting for 1 pods to be ready..."
    sts["status"]["readyReplicas"] = 2
    assert status.rollout(sts).done
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert "only available for RollingUpdate" in status.rollout(sts).failed
    ds = {
        "kind": "DaemonSet",
        "metadata": {"name": "dp", "generation": 1},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 2,
            "updatedNumberScheduled": 2,
            "numberAvailable": 1,
        },
    }
    assert "1 of 2 updated pods are available" in status.rollout(ds).message
    ds["status"]["numberAvailable"] = 2
    assert status.rollout(ds).done


def pod(**st: object) -> dict:
    return {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", **st},
    }


def test_pod_status_column_matches_kubectl() -> None:
    crashing = pod(
        containerStatuses=[
            {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ]
    )
    assert status.pod_phase_text(crashing) == "CrashLoopBackOff"
    assert status.ready_count(crashing) == "1/2" and status.restarts(crashing) == 4
    init = pod(phase="Pending", initContainerStatuses=[{"name": "i", "state": {"running": {}}}])
    init["spec"]["initContainers"] = [{"name": "i"}]
    assert status.pod_phase_text(init) == "Init:0/1"
    gone = pod()
    gone["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert status.pod_phase_text(gone) == "Terminating"
    assert status.pod_phase_text(pod(phase="Pending")) == "Pending"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (-0.5, "0s"),
        (None, "<unknown>"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert status.human_duration(seconds) == text


def test_quantities_and_times() -> None:
    assert status.quantity("500m") == 0.5 and status.quantity("16Gi") == 16 * 2**30 and status.quantity("4") == 4
    assert status.quantity("1k") == 1000 and status.quantity("nonsense") == 0
    assert status.parse_time("2025-01-01T00:00:10Z") == 1735689610.0
    assert status.parse_time("not a time") is None


def test_selector_string_covers_every_operator() -> None:
    sel = {
        "matchLabels": {"app": "vllm"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "spot", "operator": "DoesNotExist"},
        ],
    }
    assert status.selector_string(sel) == "app=vllm,tier in (a,b),env notin (dev),gpu,!spot"


NODE = {
    "metadata": {"name": "n1", "labels": {"app.kubernetes.io/name": "x", "karpenter.sh/nodepool": "gpu"}},
    "status": {
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
        "containers": [{"image": "a"}, {"image": "b"}],
        "phase": "Running",
        "count": 3,
    },
}


@pytest.mark.parametrize(
    ("expr", "values"),
    [
        ("{.status.phase}", ["Running"]),
        ('{.status.conditions[?(@.type=="Ready")].status}', ["True"]),
        ("{.status.conditions[?(@.status!='True')].type}", ["MemoryPressure"]),
        ("{.status.containers[*].image}", ["a", "b"]),
        ("{.status.containers[-1].image}", ["b"]),
        ("{.metadata.labels.app\\.kubernetes\\.io/name}", ["x"]),
        ("{.metadata.labels['karpenter.sh/nodepool']}", ["gpu"]),
        ("{.status.conditions[?(@.reason)].type}", []),
        ("{.status.count}", [3]),
        ("{.status.missing}", []),
    ],
)
def test_jsonpath_subset(expr: str, values: list) -> None:
    assert jsonpath.find(NODE, expr) == values


def test_jsonpath_rejects_what_it_does_not_support() -> None:
    with pytest.raises(Invalid):
        jsonpath.find(NODE, "{..name}")
    with pytest.raises(Invalid):
        jsonpath.find(NODE, "{.a[x]}")


def test_parse_condition_reads_kubectl_wait_syntax() -> None:
    assert parse_condition("condition=Ready") == ("condition", "Ready", "True")
    assert parse_condition("condition=Available=false") == ("condition", "Available", "false")
    assert parse_condition("jsonpath={.status.phase}=Running") == ("jsonpath", "{.status.phase}", "Running")
    assert parse_condition('jsonpath={.a[?(@.b=="c")].d}') == ("jsonpath", '{.a[?(@.b=="c")].d}', "")
    assert parse_condition("delete") == ("delete", "", "")
    with pytest.raises(Invalid):
        parse_condition("ready")
