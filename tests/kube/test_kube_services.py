"""Service resolution (pure parts) and the port-forward listener (with a local TCP server as the tunnel)."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from labkit.errors import Invalid
from labkit.kube import services
from labkit.kube.portforward import Forwarder
from labkit.kube.services import Backend

SVC = {
    "metadata": {"name": "llm", "namespace": "serving"},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "api"}, {"name": "metrics", "port": 9090}]},
}


def test_pick_port_by_default_number_and_name() -> None:
    assert services.pick_port(SVC, None)["name"] == "http"
    assert services.pick_port(SVC, 9090)["name"] == "metrics"
    assert services.pick_port(SVC, "metrics")["port"] == 9090
    assert services.pick_port(SVC, "9090")["name"] == "metrics"
    with pytest.raises(Invalid, match=r"has no port 81 \(it has http=80, metrics=9090\)"):
        services.pick_port(SVC, 81)
    two = {"metadata": {"name": "x"}, "spec": {"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}}
    with pytest.raises(Invalid, match="several ports"):
        services.pick_port(two, None)


def test_backends_from_endpoint_slices_keep_ready_pods_and_the_named_port() -> None:
    slices = [
        {
            "metadata": {"namespace": "serving"},
            "ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9100}],
            "endpoints": [
                {"conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "b", "namespace": "serving"}},
                {"conditions": {"ready": False}, "targetRef": {"kind": "Pod", "name": "c", "namespace": "serving"}},
                {"conditions": {}, "targetRef": {"kind": "Pod", "name": "a", "namespace": "serving"}},
            ],
        }
    ]
    assert services.backends_from_slices({"name": "http"}, slices) == [
        Backend("a", "serving", 8000),
        Backend("b", "serving", 8000),
    ]


def test_backends_from_legacy_endpoints() -> None:
    eps = {
        "metadata": {"namespace": "serving"},
        "subsets": [
            {
                "ports": [{"name": "http", "port": 8000}],
                "addresses": [{"ip": "10.244.0.5", "targetRef": {"kind": "Pod", "name": "a"}}],
                "notReadyAddresses": [{"ip": "10.244.0.6", "targetRef": {"kind": "Pod", "name": "b"}}],
            }
        ],
    }
    assert services.backends_from_endpoints({"name": "http"}, eps) == [Backend("a", "serving", 8000)]
    assert services.backends_from_endpoints({"name": "http"}, None) == []


POD = {
    "metadata": {
        "name": "a",
        "annotations": {
            "embedded.labkit.dev/address-server": "127.0.0.1:41000",
            "embedded.labkit.dev/address-sidecar": "127.0.0.1:41001",
        },
    },
    "spec": {
        "containers": [
            {"name": "sidecar", "ports": [{"name": "metrics", "containerPort": 9100}]},
            {"name": "server", "ports": [{"name": "api", "containerPort": 8000}]},
        ]
    },
}


def test_embedded_address_follows_the_target_port_to_its_container() -> None:
    assert services.container_port(POD, "api") == ("server", 8000)
    assert services.embedded_address(POD, "api") == "127.0.0.1:41000"
    assert services.embedded_address(POD, 9100) == "127.0.0.1:41001"
    assert services.embedded_address(POD, 1234) is None  # two containers publish, none serves 1234
    only = {"metadata": {"annotations": {"embedded.labkit.dev/address-x": "127.0.0.1:5"}}, "spec": {"containers": []}}
    assert services.embedded_address(only, 80) == "127.0.0.1:5"
    assert services.embedded_address({"metadata": {}, "spec": {}}, 80) is None


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def backend_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_forwarder_pipes_each_connection_through_a_fresh_tunnel(backend_server: int) -> None:
    opened = []

    def connect() -> socket.socket:
        opened.append(1)
        return socket.create_connection(("127.0.0.1", backend_server))

    with Forwarder(connect, name="test") as fwd:
        for path in ("/one", "/two"):
            with urllib.request.urlopen(f"http://{fwd.address}{path}", timeout=5) as resp:
                assert resp.read() == f"hello from {path}".encode()
        assert fwd.connections == 2 and len(opened) == 2
    assert fwd.closed
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{fwd.address}/three", timeout=2)


def test_forwarder_survives_a_tunnel_that_cannot_open(backend_server: int) -> None:
    attempts = []

    def connect() -> socket.socket:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError("pod gone")
        return socket.create_connection(("127.0.0.1", backend_server))

    with Forwarder(connect) as fwd:
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://{fwd.address}/x", timeout=5).read()
        with urllib.request.urlopen(f"http://{fwd.address}/y", timeout=5) as resp:
            assert resp.read() == b"hello from /y"
        assert fwd.errors == ["pod gone"]


class _FakePortForwardApi:
    """Just the pods/portforward websocket of an API server (channel protocol v4), relaying to a local port."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.requests: list[str] = []
        self.url = ""
        self._loop: Any = None
        self._runner: Any = None

    async def _handler(self, request: Any) -> Any:
        import asyncio

        from aiohttp import WSMsgType, web

        self.requests.append(str(request.rel_url))
        port = int(request.query["ports"])
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        header = port.to_bytes(2, "little")
        await ws.send_bytes(b"\x00" + header)  # data channel, then error channel, each announce the port
        await ws.send_bytes(b"\x01" + header)

        async def back() -> None:
            while data := await reader.read(65536):
                await ws.send_bytes(b"\x00" + data)
            await ws.close()

        task = asyncio.ensure_future(back())
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and msg.data[:1] == b"\x00":
                writer.write(msg.data[1:])
                await writer.drain()
        writer.close()
        task.cancel()
        return ws

    def start(self) -> None:
        import asyncio

        from aiohttp import web

        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/portforward", self._handler)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self._runner = runner
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=loop.run_forever, daemon=True).start()

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_pod_port_forward_through_the_official_client(backend_server: int) -> None:
    from kubernetes.client import ApiClient, Configuration

    from labkit.kube import Kube

    api = _FakePortForwardApi(backend_server)
    api.start()
    try:
        config = Configuration(host=api.url)
        kube = Kube(ApiClient(config), target="kind")
        with Forwarder(lambda: services._pf_connect(kube, "serving", "llm-0", 8000)) as fwd:
            for path in ("/v1/models", "/health"):
                with urllib.request.urlopen(f"http://{fwd.address}{path}", timeout=5) as resp:
                    assert resp.read() == f"hello from {path}".encode()
        assert api.requests == ["/api/v1/namespaces/serving/pods/llm-0/portforward?ports=8000"] * 2
    finally:
        api.stop()
