"""Jobs and CronJobs through the official client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from twin_support import StartCluster, wait_for

from labkit.embedded.kube.cluster import EmbeddedCluster
from labkit.embedded.kube.controllers.cronjob import next_time, schedule_times
from labkit.errors import Invalid

SCALE = 300.0
NS = "default"


@pytest.fixture
def env(start_cluster: StartCluster) -> tuple[EmbeddedCluster, client.BatchV1Api, client.CoreV1Api]:
    c, api = start_cluster(profile="kind", time_scale=SCALE, seed=9, system_pods=False)
    return c, client.BatchV1Api(api), client.CoreV1Api(api)


def job(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "work", "image": "busybox:1.36", "command": command}
    return {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}, **spec},
    }


def condition(j: client.V1Job, kind: str) -> Any:
    return next((c for c in j.status.conditions or [] if c.type == kind and c.status == "True"), None)


def test_job_runs_to_completion(env: tuple[EmbeddedCluster, client.BatchV1Api, client.CoreV1Api]) -> None:
    _, batch, core = env
    batch.create_namespaced_job(
        NS, job("pi", ["sh", "-c", "echo working; sleep 30; echo done"], completions=3, parallelism=2)
    )
    seen_active = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        j = batch.read_namespaced_job("pi", NS)
        seen_active = max(seen_active, j.status.active or 0)
        if condition(j, "Complete"):
            break
        time.sleep(0.01)
    else:
        raise AssertionError("job did not complete")
    assert seen_active == 2  # parallelism
    assert j.status.succeeded == 3 and not j.status.active and not j.status.failed
    assert condition(j, "SuccessCriteriaMet").reason == "CompletionsReached"
    assert j.status.completion_time >= j.status.start_time
    pods = core.list_namespaced_pod(NS, label_selector="batch.kubernetes.io/job-name=pi").items
    assert len(pods) == 3 and {p.status.phase for p in pods} == {"Succeeded"}
    log = core.read_namespaced_pod_log(pods[0].metadata.name, NS, _preload_content=False).data.decode()
    assert log == "working\ndone\n"
    reasons = [e.reason for e in core.list_namespaced_event(NS).items if e.involved_object.kind == "Job"]
    assert reasons.count("SuccessfulCreate") == 3 and "Completed" in reasons


def test_failing_job_hits_its_backoff_limit(env: tuple[EmbeddedCluster, client.BatchV1Api, client.CoreV1Api]) -> None:
    _, batch, core = env
    batch.create_namespaced_job(NS, job("broken", ["sh", "-c", "exit 1"], backoffLimit=1))
    j = wait_for(lambda: condition(x := batch.read_namespaced_job("broken", NS), "Failed") and x, what="Failed")
    failed = condition(j, "Failed")
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert condition(j, "FailureTarget") is not None
    assert j.status.failed == 2
    pods = core.list_namespaced_pod(NS, label_selector="batch.kubernetes.io/job-name=broken").items
    starts = sorted(p.status.start_time.timestamp() for p in pods)
    assert starts[1] - starts[0] >= 10  # the retry waited for the pod-failure back-off


def test_indexed_job_reports_completed_indexes(
    env: tuple[EmbeddedCluster, client.BatchV1Api, client.CoreV1Api],
) -> None:
    _, batch, core = env
    body = job(
        "idx", ["sh", "-c", "echo $JOB_COMPLETION_INDEX"], completions=3, parallelism=3, completionMode="Indexed"
    )
    batch.create_namespaced_job(NS, body)
    j = wait_for(lambda: condition(x := batch.read_namespaced_job("idx", NS), "Complete") and x, what="Complete")
    assert j.status.completed_indexes == "0-2"
    pods = core.list_namespaced_pod(NS, label_selector="batch.kubernetes.io/job-name=idx").items
    logs = sorted(core.read_namespaced_pod_log(p.metadata.name, NS, _preload_content=False).data.decode() for p in pods)
    assert logs == ["0\n", "1\n", "2\n"]


def test_cronjob_creates_jobs_on_schedule(env: tuple[EmbeddedCluster, client.BatchV1Api, client.CoreV1Api]) -> None:
    _, batch, _ = env
    spec = {"schedule": "* * * * *", "jobTemplate": job("x", ["sh", "-c", "echo tick"]) | {"metadata": {}}}
    batch.create_namespaced_cron_job(NS, {"metadata": {"name": "tick"}, "spec": spec})
    jobs = wait_for(lambda: batch.list_namespaced_job(NS).items, timeout=2.0, what="a job from the cronjob")
    created = jobs[0]
    assert created.metadata.owner_references[0].kind == "CronJob"
    minute = int(created.metadata.name.rsplit("-", 1)[1])
    assert created.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"].endswith(":00Z")
    assert created.metadata.creation_timestamp.timestamp() >= minute * 60  # created at (or after) its minute
    cj = wait_for(lambda: (x := batch.read_namespaced_cron_job("tick", NS)).status.last_schedule_time and x)
    assert cj.status.last_schedule_time.timestamp() == minute * 60


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/15 * * * *", 0, 900),
        ("0 * * * *", 60, 3600),
        ("@daily", 10, 86400),
        ("30 2 * * mon", 0, 4 * 86400 + 2 * 3600 + 1800),  # 1970-01-01 was a Thursday
        ("0 0 1 jan *", 0, 365 * 86400),
    ],
)
def test_cron_schedule_arithmetic(schedule: str, after: float, expected: float) -> None:
    assert next_time(schedule, after) == expected


def test_cron_schedule_rejects_nonsense() -> None:
    with pytest.raises(Invalid, match="expected exactly 5 fields"):
        schedule_times("every minute", 0, 60)
    with pytest.raises(Invalid, match="out of range"):
        next_time("61 * * * *", 0)
