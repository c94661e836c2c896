"""The kube layer against the embedded API server over real HTTP (no controllers: tests play them)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from labkit.errors import Conflict, NotFound, ServerError, Unreachable, WaitTimeout
from labkit.kube import (
    Kube,
    RetryPolicy,
    apply,
    delete,
    delete_resource,
    events_table,
    get,
    get_table,
    logs,
    wait_deleted,
    wait_for,
)
from labkit.kube.apply import ApplyResult

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: fast}
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
"""


def test_apply_is_idempotent_and_reports_like_kubectl(server: Any) -> None:
    first = apply(APP, kube=server.kube)
    assert [(i.ref, i.action) for i in first.items] == [
        ("namespace/shop", "created"),
        ("configmap/settings", "created"),
    ]
    assert first.kubectl == "kubectl apply --server-side --field-manager=labkit -f -"
    second = apply(APP, kube=server.kube)
    assert second.unchanged == ["namespace/shop", "configmap/settings"] and not second.changed
    third = apply(APP.replace("fast", "safe"), kube=server.kube)
    assert third.configured == ["configmap/settings"] and third.unchanged == ["namespace/shop"]
    cm = get("configmap/settings", namespace="shop", kube=server.kube)
    assert cm["data"] == {"mode": "safe"}
    managers = {m["manager"] for m in cm["metadata"]["managedFields"]}
    assert "labkit" in managers


def test_apply_from_a_folder_shows_the_path_in_the_kubectl_equivalent(server: Any, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "infra"
    folder.mkdir()
    (folder / "app.yaml").write_text(APP)
    monkeypatch.chdir(tmp_path)
    result = apply("infra", kube=server.kube)
    assert result.kubectl == "kubectl apply --server-side --field-manager=labkit -f infra"
    assert result.created == ["namespace/shop", "configmap/settings"]
    assert result.items[1].source == "infra/app.yaml#2"


def test_a_crd_and_its_custom_resources_apply_in_one_batch(server: Any) -> None:
    result = apply(CRD, kube=server.kube)
    assert [(i.ref, i.action) for i in result.items] == [
        ("customresourcedefinition.apiextensions.k8s.io/widgets.example.com", "created"),
        ("widget.example.com/w1", "created"),
    ]
    widget = get("widget/w1", kube=server.kube)
    assert widget["spec"] == {"size": 3}
    assert apply(CRD, kube=server.kube).unchanged == [i.ref for i in result.items]
    assert len(get_table("wd", kube=server.kube)) == 1


def test_reapplying_an_unchanged_crd_is_unchanged(server: Any) -> None:
    apply(CRD, kube=server.kube)
    time.sleep(0.05)  # a few simulated seconds at scale 60, so a rewritten timestamp would differ
    assert not apply(CRD, kube=server.kube).changed


def test_a_custom_resource_without_its_crd_says_to_install_it(server: Any) -> None:
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"}, "spec": {}}
    with pytest.raises(NotFound) as info:
        apply(pool, kube=server.kube)
    assert "the cluster does not know kind NodePool (karpenter.sh/v1)" in info.value.what
    assert "Week 3 installs Karpenter" in (info.value.fix or "")
    assert info.value.what.startswith("applying nodepool.karpenter.sh/gpu (<object>#1)")


def test_applying_into_a_missing_namespace_says_to_create_it(server: Any) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "nowhere"}}
    with pytest.raises(NotFound) as info:
        apply(cm, kube=server.kube)
    assert "namespace nowhere does not exist" in info.value.what


def test_field_conflicts_need_force(server: Any) -> None:
    apply(APP, kube=server.kube)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"},
        "data": {"mode": "other"},
    }
    with pytest.raises(Conflict) as info:
        server.kube.server_side_apply(cm, field_manager="someone-else")
    assert "--force-conflicts" in (info.value.fix or "")
    forced = apply(cm, field_manager="someone-else", force=True, kube=server.kube)
    assert forced.configured == ["configmap/settings"] and "--force-conflicts" in forced.kubectl


def _later(seconds: float, fn) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        fn()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
}


def test_wait_for_a_condition_reacts_to_a_watch_event(server: Any) -> None:
    server.kube.create(POD)
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    _later(0.3, lambda: server.kube.patch("v1", "Pod", "web", ready, subresource="status"))
    started = time.monotonic()
    result = wait_for("pod/web", timeout=10, kube=server.kube, progress=False)
    assert time.monotonic() - started < 3
    assert result.names == ("web",) and result.message == "condition met: Ready=True (1 object)"
    assert result.kubectl == "kubectl wait --for=condition=Ready pod/web -n default --timeout=10s"
    by_label = wait_for(
        "pods",
        label_selector="app=web",
        for_="jsonpath={.status.phase}=Running",
        timeout=5,
        kube=server.kube,
        progress=False,
    )
    assert by_label.names == ("web",)


def test_wait_for_timeout_explains_the_pending_pod(server: Any) -> None:
    server.kube.create(POD)
    server.store.record_event(
        server.kube.get("v1", "Pod", "web"),
        "FailedScheduling",
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
        type="Warning",
        component="default-scheduler",
    )
    with pytest.raises(WaitTimeout) as info:
        wait_for("pod/web", timeout=0.5, kube=server.kube, progress=False, resync_s=0.2)
    message = str(info.value)
    assert message.startswith("pod/web in namespace default did not reach Ready=True within 0.5s")
    assert "pod default/web: Pending, not scheduled: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu." in message
    assert "Warning FailedScheduling" in message
    assert "no node has a free nvidia.com/gpu" in (info.value.fix or "")


def test_wait_for_something_that_never_appears_says_so(server: Any) -> None:
    with pytest.raises(WaitTimeout) as info:
        wait_for("pods", label_selector="app=ghost", timeout=0.3, kube=server.kube, progress=False)
    assert "no Pod matching -l app=ghost exists in namespace default" in str(info.value)
    assert "--show-labels" in (info.value.fix or "")


def test_delete_waits_until_finalizers_let_go(server: Any) -> None:
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "default", "finalizers": ["example.com/cleanup"]},
    }
    apply(held, kube=server.kube)
    with pytest.raises(WaitTimeout) as info:
        delete(held, timeout=0.4, kube=server.kube)
    assert "did not go away" in str(info.value) and "held by finalizers example.com/cleanup" in str(info.value)
    _later(0.2, lambda: server.kube.patch("v1", "ConfigMap", "held", {"metadata": {"finalizers": None}}))
    result = delete(held, timeout=5, kube=server.kube)
    assert [(i.ref, i.action) for i in result.items] == [("configmap/held", "deleted")]
    assert server.kube.try_get("v1", "ConfigMap", "held") is None
    assert delete(held, kube=server.kube).items[0].action == "not found"
    assert "--ignore-not-found" in result.kubectl


def test_delete_resource_by_label_and_name(server: Any) -> None:
    for name in ("a", "b"):
        server.kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"x": "y"}}})
    result = delete_resource("configmaps", label_selector="x=y", kube=server.kube)
    assert sorted(result.deleted) == ["configmap/a", "configmap/b"]
    assert isinstance(delete_resource("cm/a", kube=server.kube), ApplyResult)


def test_injected_500s_and_429s_are_retried(server: Any) -> None:
    apply(APP, kube=server.kube)
    server.api.faults.add("500", verbs=("get",), resources=("configmaps",), times=2)
    server.api.faults.add("429", verbs=("patch",), times=1, retry_after=1)
    before = server.kube.retries_made
    assert get("configmap/settings", namespace="shop", kube=server.kube)["data"] == {"mode": "fast"}
    assert apply(APP, kube=server.kube).unchanged
    assert server.kube.retries_made - before == 3
    assert server.api.faults.injected["500"] == 2 and server.api.faults.injected["429"] == 1


def test_retries_are_bounded_then_a_server_error_is_raised(server: Any) -> None:
    server.api.faults.add("500", verbs=("list",))
    with pytest.raises(ServerError) as info:
        server.kube.list("v1", "ConfigMap", "default")
    assert "after 5 attempts" in info.value.what and info.value.status == 500


def test_a_dropped_connection_is_retried_for_reads(server: Any) -> None:
    server.api.faults.add("timeout", verbs=("get",), times=1, hang_seconds=0.05)
    assert get("namespace/default", kube=server.kube)["metadata"]["name"] == "default"


def test_an_unreachable_server_is_reported_with_the_fix(server: Any, tmp_path) -> None:
    url = server.api.url
    server.api.stop()
    kube = Kube(server.kube.api_client, target="embedded", retry=RetryPolicy(attempts=2, base_delay=0.01))
    with pytest.raises(Unreachable) as info:
        kube.version()
    assert url in info.value.what and "labkit up" in (info.value.fix or "")


def test_tables_events_and_logs(server: Any) -> None:
    server.kube.create(POD)
    pod = server.kube.get("v1", "Pod", "web")
    server.store.record_event(pod, "Pulled", "Successfully pulled image nginx:1.27")
    server.store.append_log("default", "web", "web", "listening on :80")
    table = get_table("pods", kube=server.kube)
    assert table.columns == ("NAME", "READY", "STATUS", "RESTARTS", "AGE")
    assert table.rows[0][:3] == ("web", "0/1", "Pending")
    assert table.kubectl == "kubectl get pod -n default"
    events = events_table(for_ref="pod/web", kube=server.kube)
    assert events.column("REASON") == ["Pulled"]
    assert "listening on :80" in logs("web", kube=server.kube)
    assert len(get_table("namespaces", kube=server.kube)) >= 4  # server-side Table columns


def test_waiting_for_deletion_in_a_missing_namespace_is_done_at_once(server: Any) -> None:
    started = time.monotonic()
    result = wait_deleted("configmap/x", namespace="nowhere", timeout=5, kube=server.kube, progress=False)
    assert time.monotonic() - started < 1 and result.message == "deleted"


def test_dry_run_validates_without_persisting_and_show_kubectl_prints_the_command(server: Any, capsys: Any) -> None:
    apply(APP.split("---", maxsplit=1)[0], kube=server.kube)
    result = apply(APP, dry_run=True, show_kubectl=True, kube=server.kube)
    assert capsys.readouterr().out == ("$ kubectl apply --server-side --field-manager=labkit --dry-run=server -f -\n")
    assert result.created == ["configmap/settings"] and "(server dry run)" in str(result)
    assert server.kube.try_get("v1", "ConfigMap", "settings", "shop") is None
