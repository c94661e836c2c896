"""The issue's kubectl scenarios against the embedded API server, when a ``kubectl`` binary is on PATH.

apply with default (strict, server-side) field validation, server-side apply, get with server-side
tables, wait, rollout status, scale, label, patch, logs, delete --wait and explain. Scenarios that
need pods to become Ready (rollout status, wait for a Deployment's pods) run on the full
:class:`~labkit.embedded.kube.cluster.EmbeddedCluster` with its controllers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit.embedded.clock import Clock
from labkit.embedded.kube.server import ApiServer
from labkit.embedded.kube.store import Store

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (not on PATH); these scenarios run where it is"
)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
{ports}"""
PORTS = """\
        ports:
        - containerPort: 80
"""


class Kubectl:
    """Runs kubectl against one kubeconfig, with its own HOME and discovery cache."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),
            "KUBECACHEDIR": str(home / "cache"),
        }
        self.home = home

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> SimpleNamespace:
        assert KUBECTL is not None
        proc = subprocess.run(
            [KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return SimpleNamespace(code=proc.returncode, out=proc.stdout, err=proc.stderr)

    def manifest(self, text: str) -> str:
        path = self.home / f"m-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(text)
        return str(path)


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    state = tmp_path_factory.mktemp("kubectl")
    clock = Clock(scale=1.0)
    store = Store(clock)
    server = ApiServer(store, state_dir=state)
    server.start()
    kubectl = Kubectl(server.write_kubeconfig(state / "kubeconfig"), state / "home")
    yield SimpleNamespace(store=store, server=server, kubectl=kubectl)
    server.stop()
    clock.stop()


@pytest.fixture
def ns(kube: SimpleNamespace) -> str:
    name = f"k-{uuid.uuid4().hex[:8]}"
    kube.kubectl("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
    return name


def later(seconds: float, fn: object) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        fn()  # type: ignore[operator]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_apply_with_default_validation(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    with_ports = k.manifest(DEPLOYMENT.format(name="web", replicas=2, ports=PORTS))
    assert k("apply", "-n", ns, "-f", with_ports).out.strip() == "deployment.apps/web created"
    assert k("apply", "-n", ns, "-f", with_ports).out.strip() == "deployment.apps/web unchanged"
    without_ports = k.manifest(DEPLOYMENT.format(name="web", replicas=3, ports=""))
    assert k("apply", "-n", ns, "-f", without_ports).out.strip() == "deployment.apps/web configured"
    live = json.loads(k("get", "deploy", "web", "-n", ns, "-o", "json").out)
    assert live["spec"]["replicas"] == 3
    assert "ports" not in live["spec"]["template"]["spec"]["containers"][0]  # removed from the manifest, removed live
    typo = k.manifest(DEPLOYMENT.format(name="typo", replicas=1, ports="").replace("replicas:", "replica:"))
    failed = k("apply", "-n", ns, "-f", typo, check=False)
    assert failed.code != 0
    assert 'strict decoding error: unknown field "spec.replica"' in failed.err


def test_server_side_apply_and_conflicts(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    path = k.manifest(DEPLOYMENT.format(name="ssa", replicas=1, ports=PORTS))
    assert k("apply", "--server-side", "-n", ns, "-f", path).out.strip() == "deployment.apps/ssa serverside-applied"
    k("scale", "deploy/ssa", "-n", ns, "--replicas=4")
    other = k.manifest(DEPLOYMENT.format(name="ssa", replicas=2, ports=PORTS))
    conflict = k("apply", "--server-side", "-n", ns, "-f", other, check=False)
    assert conflict.code != 0
    assert "conflict" in conflict.err.lower()
    assert ".spec.replicas" in conflict.err
    k("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", other)
    live = json.loads(k("get", "deploy", "ssa", "-n", ns, "-o", "json", "--show-managed-fields").out)
    assert live["spec"]["replicas"] == 2
    assert "kubectl" in {m["manager"] for m in live["metadata"]["managedFields"]}


def test_get_prints_server_side_tables(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    k("apply", "-n", ns, "-f", k.manifest(DEPLOYMENT.format(name="api", replicas=2, ports=PORTS)))
    k("run", "solo", "-n", ns, "--image=busybox:1.36", "--restart=Never")
    table = k("get", "deploy", "-n", ns).out.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["api", "0/2", "0", "0"]
    wide = k("get", "deploy", "-n", ns, "-o", "wide").out.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["web", "nginx:1.27", "app=api"]
    pods = k("get", "pods", "-A").out.splitlines()
    assert pods[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any(line.split()[:4] == [ns, "solo", "0/1", "Pending"] for line in pods[1:])
    assert k("get", "deploy", "api", "-n", ns, "-o", "jsonpath={.spec.replicas}").out == "2"
    everything = k("get", "all", "-n", ns).out
    assert "deployment.apps/api" in everything
    assert "pod/solo" in everything
    resources = k("api-resources").out
    assert any(line.split()[:2] == ["deployments", "deploy"] for line in resources.splitlines())


def test_label_patch_and_scale(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    k("apply", "-n", ns, "-f", k.manifest(DEPLOYMENT.format(name="app", replicas=1, ports=PORTS)))
    assert k("label", "deploy/app", "-n", ns, "tier=front").out.strip() == "deployment.apps/app labeled"
    assert k("get", "deploy", "-n", ns, "-l", "tier=front", "-o", "name").out.strip() == "deployment.apps/app"
    sidecar = '{"spec":{"template":{"spec":{"containers":[{"name":"proxy","image":"envoy:1"}]}}}}'
    assert k("patch", "deploy/app", "-n", ns, "-p", sidecar).out.strip() == "deployment.apps/app patched"
    names = k("get", "deploy/app", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[*].name}").out.split()
    assert sorted(names) == ["proxy", "web"]
    k("patch", "deploy/app", "-n", ns, "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":2}]')
    k("patch", "deploy/app", "-n", ns, "--type=merge", "-p", '{"metadata":{"annotations":{"owner":"ml"}}}')
    assert k("scale", "deploy/app", "-n", ns, "--replicas=5").out.strip() == "deployment.apps/app scaled"
    live = json.loads(k("get", "deploy/app", "-n", ns, "-o", "json").out)
    assert live["spec"]["replicas"] == 5
    assert live["metadata"]["annotations"]["owner"] == "ml"


def test_logs(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    k("run", "talker", "-n", ns, "--image=busybox:1.36", "--restart=Never")
    for i in range(4):
        kube.store.append_log(ns, "talker", "talker", f"line {i}")
    assert k("logs", "talker", "-n", ns).out == "line 0\nline 1\nline 2\nline 3\n"
    assert k("logs", "talker", "-n", ns, "--tail=1").out == "line 3\n"
    assert k("logs", "pod/talker", "-n", ns, "-c", "talker", "--timestamps").out.splitlines()[0].endswith("Z line 0")


def test_wait_for_condition_and_jsonpath(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    k("run", "waiter", "-n", ns, "--image=busybox:1.36", "--restart=Never")

    def become_ready() -> None:
        live = kube.store.get("pods", ns, "waiter")
        live["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
        }
        kube.store.update("pods", live, subresource="status")

    later(0.5, become_ready)
    t0 = time.monotonic()
    out = k("wait", "--for=condition=Ready", "pod/waiter", "-n", ns, "--timeout=20s").out
    assert out.strip() == "pod/waiter condition met"
    assert time.monotonic() - t0 >= 0.4
    out = k("wait", "--for=jsonpath={.status.phase}=Running", "pod/waiter", "-n", ns, "--timeout=5s").out
    assert out.strip() == "pod/waiter condition met"
    timed_out = k("wait", "--for=condition=Ready=False", "pod/waiter", "-n", ns, "--timeout=1s", check=False)
    assert timed_out.code != 0
    assert "timed out" in timed_out.err


def test_delete_waits_for_finalizers(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    kube.store.create("configmaps", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, namespace=ns)

    def release() -> None:
        kube.store.patch("configmaps", ns, "held", {"metadata": {"finalizers": None}}, "merge")

    later(0.8, release)
    t0 = time.monotonic()
    out = k("delete", "configmap", "held", "-n", ns, "--wait=true", "--timeout=20s").out
    assert out.strip() == 'configmap "held" deleted'
    assert time.monotonic() - t0 >= 0.7  # returned only once the finalizer let go
    assert k("get", "configmap", "held", "-n", ns, check=False).code != 0


def test_explain_reads_the_openapi_documents(kube: SimpleNamespace) -> None:
    out = kube.kubectl("explain", "deployment.spec.replicas").out
    assert "Number of desired pods" in out
    out = kube.kubectl("explain", "pods.spec.containers").out
    assert "<[]Container>" in out


def test_custom_resources_through_kubectl(kube: SimpleNamespace, ns: str) -> None:
    k = kube.kubectl
    group = f"k{uuid.uuid4().hex[:6]}.example.com"
    crd = f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: models.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: models, singular: model, kind: Model, shortNames: [mdl]}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              gpus: {{type: integer}}
    additionalPrinterColumns:
    - {{name: GPUs, type: integer, jsonPath: .spec.gpus}}
    - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
"""
    k("apply", "-f", k.manifest(crd))
    model = f"apiVersion: {group}/v1\nkind: Model\nmetadata:\n  name: llama\nspec:\n  gpus: 4\n"
    assert k("apply", "-n", ns, "-f", k.manifest(model)).out.strip() == f"model.{group}/llama created"
    table = k("get", "mdl", "-n", ns).out.splitlines()
    assert table[0].split() == ["NAME", "GPUS", "AGE"]
    assert table[1].split()[:2] == ["llama", "4"]
    bad = k("apply", "-n", ns, "-f", k.manifest(model.replace("gpus:", "gpu:")), check=False)
    assert bad.code != 0
    assert 'unknown field "spec.gpu"' in bad.err


def test_imperative_create_explains_the_protobuf_gap(kube: SimpleNamespace) -> None:
    # `kubectl create <kind>` encodes built-in objects as protobuf, which the embedded server does not decode.
    failed = kube.kubectl("create", "namespace", f"p-{uuid.uuid4().hex[:6]}", check=False)
    assert failed.code != 0
    assert "kubectl apply -f" in failed.err
    assert "--dry-run=client -o yaml" in failed.err


# ------------------------------------------------------------------------------------ with controllers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    try:
        from labkit.embedded.kube.cluster import EmbeddedCluster
    except ImportError:
        pytest.skip("needs labkit.embedded.kube.cluster.EmbeddedCluster (controllers), which is not built yet")
    state = tmp_path_factory.mktemp("kubectl-cluster")
    emb = EmbeddedCluster(state_dir=state, time_scale=60.0, profile="kind")
    emb.start()
    yield SimpleNamespace(cluster=emb, kubectl=Kubectl(emb.kubeconfig, state / "home"))
    emb.stop()


def test_rollout_status_and_wait_for_ready_pods(cluster: SimpleNamespace) -> None:
    k = cluster.kubectl
    ns = f"r-{uuid.uuid4().hex[:6]}"
    k("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    k("apply", "-n", ns, "-f", k.manifest(DEPLOYMENT.format(name="web", replicas=2, ports=PORTS)))
    out = k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s").out
    assert 'deployment "web" successfully rolled out' in out
    out = k("wait", "--for=condition=Ready", "pod", "-l", "app=web", "-n", ns, "--timeout=60s").out
    assert out.count("condition met") == 2
    table = k("get", "deploy", "web", "-n", ns).out.splitlines()
    assert table[1].split()[:4] == ["web", "2/2", "2", "2"]
    k("scale", "deploy/web", "-n", ns, "--replicas=3")
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    k("delete", "deploy/web", "-n", ns, "--wait=true", "--timeout=60s")
