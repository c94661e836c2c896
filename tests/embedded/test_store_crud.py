"""Store CRUD: server-maintained fields, conflicts, generateName, dry run, validation and defaults."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from labkit.embedded.kube.store import Store
from labkit.errors import ApiError, Conflict, Forbidden, Invalid, NotFound


def deployment(name: str = "web", image: str = "nginx:1.27", labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def pod(name: str = "p", image: str = "nginx", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": image}], **spec},
    }


def test_system_namespaces_exist_with_default_service_account(store: Store) -> None:
    names = [ns["metadata"]["name"] for ns in store.list("namespaces")[0]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    for name in names:
        assert store.get("serviceaccounts", name, "default")["metadata"]["namespace"] == name
    assert store.get("services", "default", "kubernetes")["spec"]["clusterIP"] == "10.96.0.1"


def test_create_sets_server_fields(store: Store) -> None:
    before = store.current_resource_version()
    obj = store.create("deployments.apps", deployment(), namespace="default")
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36
    assert int(meta["resourceVersion"]) == before + 1 == store.current_resource_version()
    assert meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["namespace"] == "default"
    assert store.get("deployments.apps", "default", "web") == obj


def test_returned_objects_are_copies(store: Store) -> None:
    body = pod()
    created = store.create("pods", body, namespace="default")
    assert "uid" not in body["metadata"], "the caller's dict must not change"
    created["metadata"]["labels"] = {"changed": "yes"}
    got = store.get("pods", "default", "p")
    got["spec"]["containers"].clear()
    again = store.get("pods", "default", "p")
    assert "labels" not in again["metadata"]
    assert again["spec"]["containers"]


def test_create_twice_is_already_exists(store: Store) -> None:
    store.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"a": "1"}}, namespace="default")
    with pytest.raises(Conflict) as info:
        store.create("configmaps", {"metadata": {"name": "cfg"}}, namespace="default")
    assert info.value.status == 409
    assert info.value.reason == "AlreadyExists"
    assert info.value.what == 'configmaps "cfg" already exists'


def test_missing_namespace_and_object_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.create("configmaps", {"metadata": {"name": "cfg"}}, namespace="nope")
    assert info.value.what == 'namespaces "nope" not found'
    with pytest.raises(NotFound) as info:
        store.get("deployments.apps", "default", "ghost")
    assert info.value.status == 404
    assert info.value.what == 'deployments.apps "ghost" not found'
    assert store.try_get("deployments.apps", "default", "ghost") is None


def test_unknown_resource_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.list("widgets.example.com")
    assert info.value.what == "the server could not find the requested resource"


def test_generate_name(store: Store) -> None:
    a = store.create("pods", {**pod(), "metadata": {"generateName": "web-"}}, namespace="default")
    b = store.create("pods", {**pod(), "metadata": {"generateName": "web-"}}, namespace="default")
    assert a["metadata"]["name"].startswith("web-")
    assert len(a["metadata"]["name"]) == len("web-") + 5
    assert a["metadata"]["name"] != b["metadata"]["name"]
    assert a["metadata"]["generateName"] == "web-"


def test_name_required(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.create("configmaps", {"metadata": {}}, namespace="default")
    assert info.value.status == 422
    assert "metadata.name: Required value: name or generateName is required" in info.value.what


def test_dry_run_stores_nothing(store: Store) -> None:
    rv = store.current_resource_version()
    obj = store.create("deployments.apps", deployment(), namespace="default", dry_run=True)
    assert obj["spec"]["replicas"] == 1, "defaults are applied in a dry run"
    assert store.try_get("deployments.apps", "default", "web") is None
    assert store.current_resource_version() == rv
    store.create("deployments.apps", deployment(), namespace="default")
    store.delete("deployments.apps", "default", "web", dry_run=True)
    assert store.try_get("deployments.apps", "default", "web") is not None
    patched = store.patch("deployments.apps", "default", "web", {"spec": {"replicas": 5}}, "merge", dry_run=True)
    assert patched["spec"]["replicas"] == 5
    assert store.get("deployments.apps", "default", "web")["spec"]["replicas"] == 1


def test_update_with_stale_resource_version_conflicts(store: Store) -> None:
    first = store.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"a": "1"}}, namespace="default")
    second = store.update("configmaps", {**first, "data": {"a": "2"}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(Conflict) as info:
        store.update("configmaps", {**first, "data": {"a": "3"}})
    assert info.value.reason == "Conflict"
    assert info.value.what == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; please apply your '
        "changes to the latest version and try again"
    )
    unconditional = {**second, "metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "4"}}
    assert store.update("configmaps", unconditional)["data"] == {"a": "4"}


def test_update_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update("configmaps", {"metadata": {"name": "ghost", "namespace": "default"}})


def test_noop_update_keeps_resource_version_and_emits_nothing(store: Store) -> None:
    obj = store.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"a": "1"}}, namespace="default")
    events = []
    store.subscribe(events.append)
    again = store.update("configmaps", obj)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert events == []


def test_generation_bumps_on_spec_not_on_metadata_or_status(store: Store) -> None:
    store.create("deployments.apps", deployment(), namespace="default")
    labelled = store.patch("deployments.apps", "default", "web", {"metadata": {"labels": {"a": "b"}}}, "merge")
    assert labelled["metadata"]["generation"] == 1
    status = store.patch(
        "deployments.apps", "default", "web", {"status": {"replicas": 1}}, "merge", subresource="status"
    )
    assert status["metadata"]["generation"] == 1
    scaled = store.patch("deployments.apps", "default", "web", {"spec": {"replicas": 3}}, "merge")
    assert scaled["metadata"]["generation"] == 2


def test_status_subresource_semantics(store: Store) -> None:
    store.create("deployments.apps", deployment(), namespace="default")
    # the main resource ignores status
    main = store.patch("deployments.apps", "default", "web", {"status": {"replicas": 7}}, "merge")
    assert main["status"] == {}
    # status writes change only status
    status = store.patch(
        "deployments.apps",
        "default",
        "web",
        {"spec": {"replicas": 9}, "status": {"replicas": 2}},
        "merge",
        subresource="status",
    )
    assert status["status"] == {"replicas": 2}
    assert status["spec"]["replicas"] == 1
    # a create drops the status a client sent
    body = deployment("other")
    body["status"] = {"replicas": 4}
    assert store.create("deployments.apps", body, namespace="default")["status"] == {}


def test_namespace_mismatch_and_kind_mismatch_are_bad_requests(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "team"}})
    body = {"metadata": {"name": "cfg", "namespace": "team"}}
    with pytest.raises(Invalid) as info:
        store.create("configmaps", body, namespace="default")
    assert info.value.status == 400
    assert info.value.reason == "BadRequest"
    assert "does not match the namespace" in info.value.what
    with pytest.raises(Invalid) as info:
        store.create("configmaps", {"kind": "Secret", "metadata": {"name": "x"}}, namespace="default")
    assert info.value.status == 400
    with pytest.raises(Invalid) as info:
        store.create("deployments.apps", {**deployment(), "apiVersion": "apps/v1beta1"}, namespace="default")
    assert "does not match the expected API version (apps/v1)" in info.value.what


def test_cluster_scoped_objects_drop_namespace(store: Store) -> None:
    obj = store.create("namespaces", {"metadata": {"name": "team", "namespace": "default"}})
    assert "namespace" not in obj["metadata"]
    assert obj["status"]["phase"] == "Active"
    assert obj["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team"


@pytest.mark.parametrize(
    ("key", "body", "message"),
    [
        (
            "deployments.apps",
            {**deployment(), "spec": {"template": deployment()["spec"]["template"]}},
            'Deployment.apps "web" is invalid: spec.selector: Required value',
        ),
        (
            "deployments.apps",
            deployment(labels={"app": "web"})
            | {"spec": {**deployment()["spec"], "selector": {"matchLabels": {"app": "x"}}}},
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match '
            "template `labels`",
        ),
        (
            "pods",
            {"metadata": {"name": "p"}, "spec": {"containers": []}},
            'Pod "p" is invalid: spec.containers: Required value',
        ),
        (
            "pods",
            pod(name="Bad_Name"),
            'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain',
        ),
        (
            "pods",
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}},
            "spec.containers[0].image: Required value",
        ),
        (
            "services",
            {"metadata": {"name": "svc"}, "spec": {"selector": {"a": "b"}}},
            'Service "svc" is invalid: spec.ports: Required value',
        ),
        (
            "services",
            {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}},
            "a DNS-1035 label must consist",
        ),
        ("configmaps", {"metadata": {"name": "c", "labels": {"bad key!": "x"}}}, "metadata.labels: Invalid value"),
        (
            "jobs.batch",
            {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}},
            'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"',
        ),
        (
            "horizontalpodautoscalers.autoscaling",
            {"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}},
            "spec.maxReplicas: Required value",
        ),
    ],
)
def test_validation_errors_read_like_the_api_server(store: Store, key: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as info:
        store.create(key, body, namespace="default")
    assert info.value.status == 422
    assert info.value.reason == "Invalid"
    assert message in info.value.what
    causes = info.value.details["causes"]  # type: ignore[attr-defined]
    assert causes and all(c["field"] for c in causes)


def test_several_errors_are_listed_in_brackets(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.create("deployments.apps", {"metadata": {"name": "web"}, "spec": {}}, namespace="default")
    assert (
        info.value.what
        == 'Deployment.apps "web" is invalid: [spec.selector: Required value, spec.template: Required value]'
    )


def test_immutable_fields(store: Store) -> None:
    store.create("deployments.apps", deployment(), namespace="default")
    change = {
        "spec": {
            "selector": {"matchLabels": {"app": "web", "v": "2"}},
            "template": {"metadata": {"labels": {"app": "web", "v": "2"}}},
        }
    }
    with pytest.raises(Invalid) as info:
        store.patch("deployments.apps", "default", "web", change, "strategic")
    assert "spec.selector: Invalid value" in info.value.what
    assert "field is immutable" in info.value.what
    svc = store.create(
        "services", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}, namespace="default"
    )
    with pytest.raises(Invalid):
        store.patch("services", "default", "svc", {"spec": {"clusterIP": "10.96.200.200"}}, "merge")
    # a PUT that leaves clusterIP out keeps the allocated address
    svc["spec"].pop("clusterIP")
    svc["spec"].pop("clusterIPs")
    assert (
        store.update("services", svc)["spec"]["clusterIP"]
        == store.get("services", "default", "svc")["spec"]["clusterIP"]
    )


def test_pod_defaults_and_admission(store: Store) -> None:
    obj = store.create("pods", pod(image="nginx"), namespace="default")
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["serviceAccountName"] == "default"
    assert {t["key"] for t in spec["tolerations"]} == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    tagged = store.create("pods", pod(name="q", image="vllm/vllm-openai:v0.6.0"), namespace="default")
    assert tagged["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    latest = store.create("pods", pod(name="r", image="busybox:latest"), namespace="default")
    assert latest["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    with pytest.raises(Forbidden) as info:
        store.create("pods", pod(name="s", serviceAccountName="robot"), namespace="default")
    assert 'serviceaccount "robot" not found' in info.value.what


def test_pod_qos_and_priority_class(store: Store) -> None:
    store.create("priorityclasses.scheduling.k8s.io", {"metadata": {"name": "high"}, "value": 1000})
    body = pod(priorityClassName="high")
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    obj = store.create("pods", body, namespace="default")
    assert obj["spec"]["priority"] == 1000
    assert obj["status"]["qosClass"] == "Guaranteed"
    assert obj["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    with pytest.raises(Forbidden):
        store.create("pods", pod(name="x", priorityClassName="missing"), namespace="default")


def test_deployment_and_service_defaults(store: Store) -> None:
    dep = store.create("deployments.apps", deployment(), namespace="default")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert dep["spec"]["revisionHistoryLimit"] == 10
    assert dep["spec"]["progressDeadlineSeconds"] == 600
    svc = store.create(
        "services",
        {"metadata": {"name": "svc"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
        namespace="default",
    )
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["clusterIP"].startswith("10.9") and spec["clusterIPs"] == [spec["clusterIP"]]
    other = store.create(
        "services",
        {"metadata": {"name": "svc2"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
        namespace="default",
    )
    assert other["spec"]["clusterIP"] != spec["clusterIP"]
    assert 30000 <= other["spec"]["ports"][0]["nodePort"] <= 32767


def test_secret_string_data_becomes_data(store: Store) -> None:
    obj = store.create("secrets", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}, namespace="default")
    assert "stringData" not in obj
    assert obj["type"] == "Opaque"
    assert base64.b64decode(obj["data"]["token"]) == b"abc"


def test_scale_subresource(store: Store) -> None:
    store.create("deployments.apps", deployment(), namespace="default")
    scale = store.get("deployments.apps", "default", "web", subresource="scale")
    assert scale["kind"] == "Scale"
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 1}
    assert scale["status"]["selector"] == "app=web"
    scaled = store.patch("deployments.apps", "default", "web", {"spec": {"replicas": 4}}, "merge", subresource="scale")
    assert scaled["spec"]["replicas"] == 4
    assert store.get("deployments.apps", "default", "web")["spec"]["replicas"] == 4
    scale = store.get("deployments.apps", "default", "web", subresource="scale")
    scale["spec"]["replicas"] = 2
    assert store.update("deployments.apps", scale, subresource="scale")["spec"]["replicas"] == 2
    with pytest.raises(Invalid):
        store.patch("deployments.apps", "default", "web", {"spec": {"replicas": -1}}, "merge", subresource="scale")


def test_delete_preconditions(store: Store) -> None:
    obj = store.create("configmaps", {"metadata": {"name": "cfg"}}, namespace="default")
    with pytest.raises(Conflict) as info:
        store.delete("configmaps", "default", "cfg", preconditions={"uid": "other"})
    assert "Precondition failed: UID in precondition: other" in info.value.what
    gone = store.delete("configmaps", "default", "cfg", preconditions={"uid": obj["metadata"]["uid"]})
    assert gone["metadata"]["name"] == "cfg"
    with pytest.raises(NotFound):
        store.delete("configmaps", "default", "cfg")


def test_list_is_sorted_and_filtered_by_namespace(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "b"}})
    store.create("namespaces", {"metadata": {"name": "a"}})
    for ns in ("b", "a"):
        for name in ("y", "x"):
            store.create("configmaps", {"metadata": {"name": name}}, namespace=ns)
    items, rv = store.list("configmaps")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
        ("b", "y"),
    ]
    assert rv == store.current_resource_version()
    assert [i["metadata"]["name"] for i in store.list("configmaps", "b")[0]] == ["x", "y"]


def test_pod_logs(store: Store) -> None:
    store.create("pods", pod(), namespace="default")
    for i in range(5):
        store.append_log("default", "p", "c", f"line {i}")
    assert store.read_log("default", "p") == "".join(f"line {i}\n" for i in range(5))
    assert store.read_log("default", "p", "c", tail_lines=2) == "line 3\nline 4\n"
    stamped = store.read_log("default", "p", tail_lines=1, timestamps=True)
    assert stamped.endswith("Z line 4\n")
    with pytest.raises(NotFound):
        store.read_log("default", "ghost")
    with pytest.raises(Invalid):
        store.read_log("default", "p", "other")
    body = pod(name="two")
    body["spec"]["containers"].append({"name": "d", "image": "busybox"})
    store.create("pods", body, namespace="default")
    with pytest.raises(Invalid) as info:
        store.read_log("default", "two")
    assert "a container name must be specified for pod two, choose one of: [c d]" in info.value.what


def test_record_event_aggregates_repeats(store: Store) -> None:
    target = store.create("pods", pod(), namespace="default")
    store.record_event(target, "FailedScheduling", "0/3 nodes are available", type="Warning", component="scheduler")
    store.record_event(target, "FailedScheduling", "0/3 nodes are available", type="Warning", component="scheduler")
    events, _ = store.list("events", "default", field_selector="involvedObject.name=p")
    assert len(events) == 1
    event = events[0]
    assert event["count"] == 2
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert event["source"] == {"component": "scheduler"}


def test_api_errors_carry_status_details(store: Store) -> None:
    with pytest.raises(ApiError) as info:
        store.get("pods", "default", "ghost")
    assert info.value.details == {"name": "ghost", "group": "", "kind": "pods"}  # type: ignore[attr-defined]
