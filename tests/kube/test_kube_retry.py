"""Retries with backoff through Kube's choke point, with a scripted fake transport (no network)."""

from __future__ import annotations

import io
import json
import random
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from labkit.errors import Invalid, NotFound, ServerError, Unreachable
from labkit.kube.apierrors import RequestInfo
from labkit.kube.client import Kube
from labkit.kube.retry import RetryPolicy, call_with_retry, classify, retry_after


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> urllib3.HTTPResponse:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return urllib3.HTTPResponse(body=io.BytesIO(raw), status=status, headers=headers or {}, preload_content=False)


def failure(status: int, headers: dict[str, str] | None = None, message: str = "boom") -> ApiException:
    body = json.dumps({"kind": "Status", "code": status, "message": message}).encode()
    return ApiException(http_resp=urllib3.HTTPResponse(body=body, status=status, headers=headers or {}))


REFUSED = urllib3.exceptions.MaxRetryError(
    None, "/version", reason=urllib3.exceptions.NewConnectionError(None, "Connection refused")
)


class FakeApiClient:
    """Plays the part of kubernetes.client.ApiClient: answers call_api from a script."""

    def __init__(self, *script: Any) -> None:
        self.configuration = SimpleNamespace(host="https://127.0.0.1:6443")
        self.script = list(script)
        self.calls: list[tuple[str, str, list, dict, Any]] = []

    def call_api(self, path: str, method: str, path_params: Any, query: list, headers: dict, **kw: Any) -> Any:
        self.calls.append((method, path, query, headers, kw.get("body")))
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def make(*script: Any, **kwargs: Any) -> tuple[Kube, FakeApiClient, list[float]]:
    slept: list[float] = []
    fake = FakeApiClient(*script)
    kube = Kube(fake, sleep=slept.append, rng=random.Random(1), target="embedded", **kwargs)  # type: ignore[arg-type]
    return kube, fake, slept


POD = RequestInfo(api_version="v1", kind="Pod", name="p", namespace="default")


def test_429_honours_retry_after_then_5xx_backs_off_then_succeeds() -> None:
    kube, fake, slept = make(
        failure(429, {"Retry-After": "3"}), failure(503), failure(500), response({"kind": "Pod"}, headers={})
    )
    assert kube.request_json("GET", "/api/v1/namespaces/default/pods/p", info=POD) == {"kind": "Pod"}
    assert len(fake.calls) == 4
    assert slept[0] == 3.0  # the server's Retry-After
    # backoff for retries 2 and 3: half of 0.4 s / 0.8 s fixed, half jitter
    assert 0.2 <= slept[1] <= 0.4 and 0.4 <= slept[2] <= 0.8
    assert kube.retries_made == 3


def test_retry_after_is_capped_by_the_policy() -> None:
    kube, _, slept = make(failure(429, {"Retry-After": "120"}), response({}), retry=RetryPolicy(max_retry_after=0.5))
    kube.request("GET", "/api")
    assert slept == [0.5]


def test_retries_are_bounded_and_the_error_is_mapped_from_the_last_failure() -> None:
    kube, fake, slept = make(*(failure(500) for _ in range(3)), retry=RetryPolicy(attempts=3))
    with pytest.raises(ServerError) as info:
        kube.request("GET", "/api/v1/namespaces/default/pods/p", info=POD)
    assert len(fake.calls) == 3 and len(slept) == 2
    assert "after 3 attempts" in info.value.what
    assert isinstance(info.value.__cause__, ApiException) and info.value.__cause__.status == 500


def test_a_create_is_not_retried_after_a_500_but_is_after_a_429() -> None:
    kube, fake, _ = make(failure(500))
    with pytest.raises(ServerError):
        kube.request("POST", "/api/v1/namespaces/default/pods", info=POD, body={})
    assert len(fake.calls) == 1
    kube, fake, _ = make(failure(429), response({"kind": "Pod"}))
    assert kube.request_json("POST", "/api/v1/namespaces/default/pods", info=POD, body={}) == {"kind": "Pod"}
    assert len(fake.calls) == 2


def test_client_errors_are_not_retried() -> None:
    kube, fake, slept = make(failure(404, message='pods "p" not found'))
    with pytest.raises(NotFound, match="Pod default/p not found"):
        kube.request("GET", "/api/v1/namespaces/default/pods/p", info=POD)
    assert len(fake.calls) == 1 and slept == []
    kube, fake, _ = make(failure(422))
    with pytest.raises(Invalid):
        kube.request("PATCH", "/x", info=POD, body={})
    assert len(fake.calls) == 1


def test_connection_refused_is_retried_then_unreachable_with_the_embedded_fix() -> None:
    kube, fake, slept = make(REFUSED, REFUSED, REFUSED, retry=RetryPolicy(attempts=3, base_delay=0.01))
    with pytest.raises(Unreachable) as info:
        kube.version()
    assert len(fake.calls) == 3 and len(slept) == 2
    assert "connection refused" in info.value.what and "labkit up" in (info.value.fix or "")


def test_a_cut_off_response_body_is_retried_for_reads() -> None:
    class Broken(urllib3.HTTPResponse):
        @property
        def data(self) -> bytes:  # type: ignore[override]
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")

    kube, fake, _ = make(Broken(body=b"", status=200, preload_content=False), response({"ok": True}))
    assert kube.request_json("GET", "/x") == {"ok": True}
    assert len(fake.calls) == 2


def test_json_patch_is_not_retried_after_a_500_but_merge_patch_is() -> None:
    kube, fake, _ = make(failure(500))
    with pytest.raises(ServerError):
        kube.request("PATCH", "/x", body=[], content_type="application/json-patch+json")
    assert len(fake.calls) == 1
    kube, fake, _ = make(failure(500), response({}))
    kube.request("PATCH", "/x", body={}, content_type="application/merge-patch+json")
    assert len(fake.calls) == 2


def test_query_booleans_are_lower_case_and_none_values_dropped() -> None:
    kube, fake, _ = make(response({"items": [], "metadata": {"resourceVersion": "7"}}))
    kube.request("GET", "/api/v1/pods", query=[("watch", True), ("labelSelector", None), ("limit", 5)])
    assert fake.calls[0][2] == [("watch", "true"), ("limit", "5")]


def test_the_server_clock_comes_from_the_date_header_scaled() -> None:
    kube, _, _ = make(response({}, headers={"Date": "Wed, 01 Jan 2025 00:00:00 GMT"}), time_scale=60.0)
    kube.request("GET", "/version")
    assert 1735689600.0 <= kube.server_now() < 1735689600.0 + 60  # less than a wall second has passed


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after": "Wed, 01 Jan 2025 00:00:10 GMT"}, now=1735689600.0) == 10.0
    assert retry_after({}) is None and retry_after({"Retry-After": "soon"}) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    rng = random.Random(0)
    delays = [policy.backoff(n, rng) for n in range(1, 6)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and all(2.0 <= d <= 4.0 for d in delays[2:])


def test_classify_read_timeouts_only_for_idempotent_methods() -> None:
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out")
    assert classify(timeout, "GET", RetryPolicy()) == (True, None)
    assert classify(timeout, "POST", RetryPolicy()) == (False, None)
    assert classify(ConnectionRefusedError(), "POST", RetryPolicy()) == (True, None)
    assert classify(ValueError("bug"), "GET", RetryPolicy()) == (False, None)


def test_call_with_retry_reraises_non_retryable_errors_unchanged() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise KeyError("programming error")

    with pytest.raises(KeyError):
        call_with_retry(fn, method="GET", policy=RetryPolicy(), sleep=lambda s: None)
    assert calls == [1]


def test_kube_of_a_platform_is_kept_on_its_client_and_closes_with_the_platform() -> None:
    fake = FakeApiClient()
    closers: list[Any] = []
    platform = SimpleNamespace(
        kube_client=lambda: fake, target="embedded", settings=SimpleNamespace(time_scale=60.0), on_close=closers.append
    )
    kube = Kube.of(platform)  # type: ignore[arg-type]
    assert Kube.of(platform) is kube  # type: ignore[arg-type]
    assert kube.target == "embedded" and kube.time_scale == 60.0 and closers == [kube.close]
    assert kube.wall_timeout(1200) == 20.0  # 1200 cluster seconds at scale 60
    assert kube.wall_timeout(300) == 10.0  # never below 10 s wall ...
    assert kube.wall_timeout(3) == 3.0  # ... unless the timeout itself is shorter
    eks = Kube.of(SimpleNamespace(kube_client=FakeApiClient, target="eks", settings=SimpleNamespace(time_scale=60.0)))  # type: ignore[arg-type]
    assert eks.time_scale == 1.0 and eks.wall_timeout(300) == 300
