"""Start-up, TLS and kubeconfig, plain HTTP, and API fault injection of the embedded API server."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from labkit.embedded.clock import Clock
from labkit.embedded.kube.server import ApiServer
from labkit.embedded.kube.store import Store


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock(scale=1.0)
    yield c
    c.stop()


@pytest.fixture
def kube(tmp_path: Path, clock: Clock) -> Iterator[SimpleNamespace]:
    store = Store(clock)
    server = ApiServer(store, state_dir=tmp_path)
    server.start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.retries = False  # urllib3 would otherwise retry 429s (honouring Retry-After) and dropped connections
    api = client.ApiClient(cfg)
    yield SimpleNamespace(store=store, server=server, api=api, core=client.CoreV1Api(api), kubeconfig=kubeconfig)
    api.close()
    server.stop()


def test_start_is_fast_and_stop_is_idempotent(tmp_path: Path, clock: Clock) -> None:
    store = Store(clock)
    cold = ApiServer(store, state_dir=tmp_path)
    t0 = time.perf_counter()
    url = cold.start()
    elapsed = time.perf_counter() - t0
    assert url.startswith("https://127.0.0.1:")
    assert elapsed < 0.5
    assert cold.start() == url  # already started
    cold.stop()
    cold.stop()
    warm = ApiServer(store, state_dir=tmp_path)
    warm.start()
    assert warm.ca_pem == cold.ca_pem  # the CA is cached in state_dir/pki, so old kubeconfigs keep working
    warm.stop()


def test_kubeconfig_is_private_and_verifies_the_ca(kube: SimpleNamespace) -> None:
    assert oct(kube.kubeconfig.stat().st_mode & 0o777) == "0o600"
    doc = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == kube.server.url
    assert cluster["certificate-authority-data"]
    assert doc["users"][0]["user"]["token"]
    assert doc["current-context"] == "labkit-embedded"
    assert kube.api.configuration.verify_ssl is True
    assert kube.core.read_namespace("default").metadata.name == "default"
    untrusted = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=None, retries=False)
    with pytest.raises(urllib3.exceptions.SSLError):
        untrusted.request("GET", kube.server.url + "/version")


def test_plain_http_mode(tmp_path: Path, clock: Clock) -> None:
    server = ApiServer(Store(clock), tls=False)
    url = server.start()
    try:
        assert url.startswith("http://")
        assert server.ca_pem is None
        api = config.new_client_from_config(config_file=str(server.write_kubeconfig(tmp_path / "kc")))
        assert client.CoreV1Api(api).list_namespace().items
        api.close()
    finally:
        server.stop()


def test_write_kubeconfig_before_start_says_what_to_do(tmp_path: Path, clock: Clock) -> None:
    from labkit.errors import LabkitError

    with pytest.raises(LabkitError, match="start"):
        ApiServer(Store(clock)).write_kubeconfig(tmp_path / "kc")


def test_injected_429_carries_retry_after(kube: SimpleNamespace) -> None:
    rule = kube.server.faults.add("429", verbs=["list"], resources=["configmaps"], times=1, retry_after=2)
    with pytest.raises(ApiException) as err:
        kube.core.list_namespaced_config_map("default")
    assert err.value.status == 429
    assert err.value.headers["Retry-After"] == "2"
    body = json.loads(err.value.body)
    assert (body["reason"], body["details"]["retryAfterSeconds"]) == ("TooManyRequests", 2)
    assert rule.fired == 1
    assert kube.core.list_namespaced_config_map("default").items == []  # the rule is spent
    assert kube.core.read_namespace("default")  # other verbs were never affected


def test_default_client_honours_retry_after(tmp_path: Path, kube: SimpleNamespace) -> None:
    kube.server.faults.add("429", verbs=["get"], times=1, retry_after=1)
    default = config.new_client_from_config(config_file=str(kube.kubeconfig))  # urllib3's default retries
    t0 = time.monotonic()
    assert client.CoreV1Api(default).read_namespace("default").metadata.name == "default"
    assert time.monotonic() - t0 >= 0.9  # waited as told, then succeeded
    default.close()


def test_injected_500_for_a_share_of_calls_is_deterministic(kube: SimpleNamespace) -> None:
    def run() -> list[int]:
        kube.server.faults.clear()
        kube.server.faults.reseed(42)
        kube.server.faults.add("500", 0.5, verbs=["get"])
        codes = []
        for _ in range(20):
            try:
                kube.core.read_namespace("default")
                codes.append(200)
            except ApiException as exc:
                codes.append(exc.status)
        return codes

    first = run()
    assert set(first) == {200, 500}
    assert run() == first
    kube.server.faults.clear()


def test_injected_timeout_hangs_then_drops_the_connection(kube: SimpleNamespace) -> None:
    kube.server.faults.add("timeout", verbs=["get"], resources=["namespaces"], times=1, hang_seconds=0.3)
    t0 = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        kube.core.read_namespace("default", _request_timeout=5)
    assert time.monotonic() - t0 >= 0.25
    assert kube.core.read_namespace("default").metadata.name == "default"


def test_discovery_is_never_faulted(kube: SimpleNamespace) -> None:
    kube.server.faults.add("500")
    try:
        assert client.VersionApi(kube.api).get_code().major == "1"
        assert client.CoreApi(kube.api).get_api_versions().versions == ["v1"]
        with pytest.raises(ApiException):
            kube.core.read_namespace("default")
    finally:
        kube.server.faults.clear()


def test_state_dir_keeps_pki_private(kube: SimpleNamespace) -> None:
    pki = kube.kubeconfig.parent / "pki"
    for name in os.listdir(pki):
        assert oct((pki / name).stat().st_mode & 0o777) == "0o600"


def test_busy_port_is_a_config_error(clock: Clock) -> None:
    from labkit.errors import ConfigError

    first = ApiServer(Store(clock), tls=False)
    first.start()
    try:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(ConfigError, match="cannot listen"):
            ApiServer(Store(clock), tls=False, port=port).start()
    finally:
        first.stop()
