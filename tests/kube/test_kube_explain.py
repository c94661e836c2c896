"""Explanations of stuck pods and workloads (pure), and the tables a notebook shows."""

from __future__ import annotations

from labkit.kube import explain, tables

NOW = 1_735_689_600.0  # 2025-01-01T00:00:00Z
T = "2025-01-01T00:00:00Z"
EARLIER = "2024-12-31T23:59:00Z"


def gpu_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm-0", "namespace": "serving", "uid": "u1", "creationTimestamp": EARLIER},
        "spec": {"containers": [{"name": "server", "image": "vllm", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: true}, "
                    "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available.",
                }
            ],
        },
    }


def event(reason: str, message: str, *, type_: str = "Warning", uid: str = "u1", count: int = 1, at: str = T) -> dict:
    return {
        "kind": "Event",
        "metadata": {"name": f"e-{reason}", "namespace": "serving"},
        "involvedObject": {"kind": "Pod", "name": "llm-0", "namespace": "serving", "uid": uid},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "lastTimestamp": at,
    }


def test_unschedulable_gpu_pod_gives_the_scheduler_message_and_gpu_and_taint_hints() -> None:
    d = explain.diagnose_pod(gpu_pod(), [event("FailedScheduling", "0/3 nodes are available", count=3)], now=NOW)
    assert d.subject == "pod serving/llm-0"
    assert d.summary.startswith("Pending, not scheduled: 0/3 nodes are available")
    assert "Insufficient nvidia.com/gpu" in d.summary
    assert any("no node has a free nvidia.com/gpu" in h and "Week 3" in h for h in d.hints)
    assert any("taint {nvidia.com/gpu: true}" in h and "toleration" in h for h in d.hints)
    assert "  Warning FailedScheduling (x3, 0s ago): 0/3 nodes are available" in d.text()


def test_events_of_other_objects_are_ignored() -> None:
    other = event("BackOff", "someone else", uid="u2")
    d = explain.diagnose_pod(gpu_pod(), [other], now=NOW)
    assert "someone else" not in d.text()


def running_pod(**container: object) -> dict:
    pod = gpu_pod()
    pod["spec"]["nodeName"] = "n1"
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/health", "port": 8000},
        "initialDelaySeconds": 60,
    }
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "server", "ready": False, "restartCount": 0, **container}],
    }
    return pod


def test_crash_loop_shows_exit_code_restarts_and_log_tail() -> None:
    pod = running_pod(
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        lastState={"terminated": {"exitCode": 1, "reason": "Error"}},
        restartCount=3,
    )
    assert explain.containers_to_log(pod) == [("server", True)]
    logs = {"server (previous run)": "loading model\nCUDA error: out of memory\n"}
    d = explain.diagnose_pod(pod, [event("BackOff", "Back-off restarting failed container")], logs, now=NOW)
    assert d.summary == "CrashLoopBackOff"
    text = d.text()
    assert "container server: CrashLoopBackOff: back-off 40s" in text
    assert "restarted 3 times, last exit code 1 (Error)" in text
    assert "last log lines of server (previous run):" in text and "| CUDA error: out of memory" in text
    assert any("keeps exiting" in h for h in d.hints)


def test_failing_readiness_probe_is_named_from_unhealthy_events() -> None:
    pod = running_pod(state={"running": {"startedAt": T}})
    unhealthy = event("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", count=7)
    d = explain.diagnose_pod(pod, [unhealthy], now=NOW)
    assert "readiness probe failing (HTTP GET /health on port 8000, initialDelaySeconds=60)" in d.text()
    assert "statuscode: 503" in d.text()
    assert any("readiness probe fails" in h for h in d.hints)


def test_still_starting_says_wait_longer() -> None:
    d = explain.diagnose_pod(running_pod(state={"running": {}}), [], now=NOW)
    assert "running, not ready yet (readiness: HTTP GET /health on port 8000, initialDelaySeconds=60)" in d.text()
    assert any("wait longer" in h for h in d.hints)


def test_image_pull_backoff() -> None:
    pod = running_pod(state={"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "vlm"'}})
    pod["status"]["phase"] = "Pending"
    d = explain.diagnose_pod(pod, [], now=NOW)
    assert d.summary == "ImagePullBackOff"
    assert any("cannot be pulled" in h for h in d.hints)


def test_workload_diagnosis_explains_its_stuck_pods() -> None:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "serving", "generation": 1, "uid": "d1"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "llm"}}},
        "status": {
            "observedGeneration": 1,
            "updatedReplicas": 1,
            "replicas": 1,
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}],
        },
    }
    d = explain.diagnose_workload(deploy, [gpu_pod()], [], now=NOW)
    assert d.summary == 'Waiting for deployment "llm" rollout to finish: 0 of 1 updated replicas are available...'
    text = d.text()
    assert "condition Available=False (MinimumReplicasUnavailable)" in text
    assert "pods: 1 (0 ready)" in text and "pod serving/llm-0: Pending, not scheduled" in text
    assert any("nvidia.com/gpu" in h for h in d.hints)


def test_object_being_deleted_names_its_finalizers() -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x", "deletionTimestamp": T, "finalizers": ["kubernetes"]},
    }
    d = explain.diagnose_object(ns, [], now=NOW)
    assert d.summary == "being deleted, held by finalizers kubernetes"
    assert any("kubectl get all -n x" in h for h in d.hints)


def test_table_text_html_and_dicts() -> None:
    table = tables.Table(
        ("NAME", "READY"), (("a", "1/1"), ("long-name", "0/1")), title="Pods", kubectl="kubectl get pods"
    )
    assert table.to_text() == "NAME        READY\na           1/1\nlong-name   0/1"
    assert str(table).startswith("Pods\nNAME")
    assert table.as_dicts()[1] == {"NAME": "long-name", "READY": "0/1"}
    assert table.column("READY") == ["1/1", "0/1"]
    html = tables.Table(("NAME",), (("<b>",),))._repr_html_()
    assert "&lt;b&gt;" in html and "<th" in html
    assert tables.Table(("NAME",)).to_text() == "No resources found."


def test_nodes_table_shows_instance_type_zone_capacity_pool_and_gpus() -> None:
    node = {
        "metadata": {
            "name": "ip-10-0-1-5",
            "creationTimestamp": EARLIER,
            "labels": {
                "node.kubernetes.io/instance-type": "g6.xlarge",
                "topology.kubernetes.io/zone": "us-west-2a",
                "karpenter.sh/capacity-type": "spot",
                "karpenter.sh/nodepool": "gpu",
                "node-role.kubernetes.io/worker": "",
            },
        },
        "spec": {"unschedulable": True},
        "status": {
            "capacity": {"nvidia.com/gpu": "1", "cpu": "4"},
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0"},
        },
    }
    row = tables.nodes([node], NOW).as_dicts()[0]
    assert row == {
        "NAME": "ip-10-0-1-5",
        "STATUS": "Ready,SchedulingDisabled",
        "ROLES": "worker",
        "AGE": "60s",
        "VERSION": "v1.33.0",
        "INSTANCE-TYPE": "g6.xlarge",
        "ZONE": "us-west-2a",
        "CAPACITY": "spot",
        "NODEPOOL": "gpu",
        "GPU": "1",
    }


def test_pods_services_and_events_tables() -> None:
    pod = running_pod(state={"running": {}})
    row = tables.pods([pod], NOW, wide=True, with_namespace=True).as_dicts()[0]
    assert row == {
        "NAMESPACE": "serving",
        "NAME": "llm-0",
        "READY": "0/1",
        "STATUS": "Running",
        "RESTARTS": "0",
        "AGE": "60s",
        "IP": "<none>",
        "NODE": "n1",
    }
    svc = {
        "metadata": {"name": "llm", "creationTimestamp": T},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30080}]},
    }
    assert tables.services([svc], NOW).rows[0] == (
        "llm",
        "LoadBalancer",
        "10.96.0.10",
        "<pending>",
        "80:30080/TCP",
        "0s",
    )
    events = tables.events([event("Unhealthy", "probe failed", count=4)], NOW + 30)
    assert events.rows[0] == ("30s (x4)", "Warning", "Unhealthy", "pod/llm-0", "probe failed")


def test_server_side_table_conversion_keeps_priority_zero_columns() -> None:
    server = {
        "kind": "Table",
        "columnDefinitions": [{"name": "Name", "priority": 0}, {"name": "Nodes", "priority": 1}, {"name": "Ready"}],
        "rows": [{"cells": ["gpu", 3, True], "object": {"metadata": {"namespace": ""}}}],
    }
    assert tables.from_server_table(server).rows == (("gpu", "True"),)
    assert tables.from_server_table(server, wide=True).columns == ("NAME", "NODES", "READY")


def test_scheduling_hints_skip_system_taints_and_cover_affinity_and_empty_clusters() -> None:
    kind = "0/2 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
    assert explain.scheduling_hints(kind + "1 Insufficient cpu. preemption: x") == [
        "no node has enough free cpu: lower the pod's cpu request or add nodes"
    ]
    assert "nodeSelector/affinity" in explain.scheduling_hints("1 node(s) didn't match Pod's node affinity/selector")[0]
    assert "no nodes yet" in explain.scheduling_hints("no nodes available to schedule pods")[0]
    assert explain.scheduler_summary("0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes") == (
        "0/1 nodes are available: 1 Insufficient memory."
    )
