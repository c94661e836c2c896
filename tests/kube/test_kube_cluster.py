"""The kube layer against a whole embedded cluster: rollouts, scheduling explanations, Service URLs."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from labkit.errors import WaitTimeout
from labkit.kube import apply, describe_pod, get_table, logs, open_service, rollout_status, service_url, wait_for

ECHO_IMAGE = "labkit.test/echo:1"


class _EchoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"echo {self.server.pod_name} {self.path}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class EchoProcess:
    """A container that serves HTTP on 127.0.0.1 and says which pod it is (the runtime protocol)."""

    def __init__(self, pod_name: str) -> None:
        self.pod_name = pod_name
        self._server: ThreadingHTTPServer | None = None
        self._lines = [f"echo server for {pod_name} starting"]

    def start(self) -> int:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self._server.pod_name = self.pod_name  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return int(self._server.server_address[1])

    def ready(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def log_lines(self) -> list[str]:
        out, self._lines = self._lines, []
        return out


class EchoRuntime:
    def matches(self, image: str) -> bool:
        return image.startswith("labkit.test/echo")

    def create(self, pod: dict, container: dict, node: dict | None, clock: Any) -> EchoProcess:
        return EchoProcess(pod["metadata"]["name"])


@pytest.fixture
def echo_runtime() -> Iterator[EchoRuntime]:
    from labkit.embedded.kube.runtime import register_runtime, unregister_runtime

    rt = EchoRuntime()
    register_runtime(rt)
    yield rt
    unregister_runtime(rt)


def deployment(name: str, image: str, *, replicas: int = 1, resources: dict | None = None, port: int = 8080) -> dict:
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [{"name": "http", "containerPort": port}]}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def service(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def test_a_deployment_rolls_out(cluster: tuple[Any, Any]) -> None:
    _, kube = cluster
    apply(deployment("web", "nginx:1.27", replicas=2), kube=kube)
    result = rollout_status("deployment/web", timeout=600, kube=kube, progress=False)
    assert result.message == 'deployment "web" successfully rolled out'
    assert result.kubectl == "kubectl rollout status deployment/web -n default --timeout=600s"
    pods = get_table("pods", label_selector="app=web", kube=kube)
    assert pods.column("READY") == ["1/1", "1/1"] and set(pods.column("STATUS")) == {"Running"}
    nodes = get_table("nodes", kube=kube)
    assert "INSTANCE-TYPE" in nodes.columns and len(nodes) >= 1


def test_a_gpu_pod_that_cannot_be_scheduled_is_explained(cluster: tuple[Any, Any]) -> None:
    _, kube = cluster
    gpu = {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
    apply(deployment("llm", "vllm/vllm-openai:latest", resources=gpu), kube=kube)
    with pytest.raises(WaitTimeout) as info:
        rollout_status("deployment/llm", timeout=60, kube=kube, progress=False)
    message = str(info.value)
    assert "deployment/llm in namespace default did not finish its rollout within 60s" in message
    assert "Pending, not scheduled: 0/" in message and "nvidia.com/gpu" in message
    assert "no node has a free nvidia.com/gpu" in (info.value.fix or "")
    pod = kube.list("v1", "Pod", "default", label_selector="app=llm").items[0]
    with pytest.raises(WaitTimeout, match=r"FailedScheduling|not scheduled"):
        wait_for("pod", pod["metadata"]["name"], timeout=30, kube=kube, progress=False)


def test_service_url_resolves_to_the_pod_address_on_embedded(cluster: tuple[Any, Any], echo_runtime: Any) -> None:
    _, kube = cluster
    apply([deployment("echo", ECHO_IMAGE), service("echo")], kube=kube)
    rollout_status("deployment/echo", timeout=600, kube=kube, progress=False)
    wait_for("pods", label_selector="app=echo", timeout=600, kube=kube, progress=False)
    pod = kube.list("v1", "Pod", "default", label_selector="app=echo").items[0]["metadata"]["name"]
    url = service_url("echo", kube=kube)
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as resp:
        assert resp.read().decode() == f"echo {pod} /v1/models"
    with open_service("echo", port="http", kube=kube) as endpoint:
        assert endpoint.mode == "direct" and endpoint.pod == pod and endpoint.url == url
        assert endpoint.kubectl == "kubectl port-forward svc/echo -n default :80"
    assert "echo server for" in logs("deployment/echo", kube=kube)
    description = str(describe_pod(pod, kube=kube))
    assert f"Name:       {pod}" in description and "Conditions:" in description and "app: " in description
