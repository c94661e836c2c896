"""The one Kubernetes choke point: every request the kit makes goes through :class:`Kube`.

``Kube`` wraps the official client's ``ApiClient`` (from ``Platform.kube_client()``)
and a ``DynamicClient`` whose discovery is cached in memory. Each request is
retried with backoff on 429/5xx and connection failures (see :mod:`.retry`), and
failures come out as the kit's errors (see :mod:`.apierrors`), raised ``from``
the original. Objects go in and come out as plain dicts.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient, LazyDiscoverer
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes.dynamic.resource import Resource, ResourceList

from labkit.errors import ApiError, Invalid, LabkitError, NotFound
from labkit.kube import refs, status
from labkit.kube.apierrors import RequestInfo, to_labkit_error, unknown_kind_error
from labkit.kube.retry import Attempts, RetryPolicy, call_with_retry

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from labkit.targets.base import Platform

log = logging.getLogger("labkit.kube")

FIELD_MANAGER = "labkit"
DEFAULT_REQUEST_TIMEOUT: tuple[float, float] = (5.0, 60.0)  # connect, read (seconds) for non-watch requests
MIN_WALL_TIMEOUT_S = 10.0  # a scaled wait never gets less wall time than this (or its own timeout if smaller)
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

_TRANSPORT_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class ObjectList:
    """A list response: the items and the list's ``resourceVersion`` (where a watch can start)."""

    items: list[dict[str, Any]]
    resource_version: str

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class _MemoryDiscoverer(LazyDiscoverer):
    """Lazy discovery kept in memory only: no cache file shared between clusters or processes."""

    def _write_cache(self) -> None:
        return None


class _Transport:
    """What the ``DynamicClient`` sees as its ``ApiClient``: its requests go through :meth:`Kube.send`."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self.configuration = kube.api_client.configuration

    def select_header_accept(self, accepts: list[str]) -> str | None:
        return self._kube.api_client.select_header_accept(accepts)

    def select_header_content_type(self, content_types: list[str], *args: Any, **kwargs: Any) -> str:
        return self._kube.api_client.select_header_content_type(content_types, *args, **kwargs)

    def call_api(self, resource_path: str, method: str, *args: Any, body: Any = None, **kwargs: Any) -> Any:
        # DynamicClient passes (path_params, query_params, header_params) positionally
        query_params = args[1] if len(args) > 1 else kwargs.get("query_params")
        header_params = args[2] if len(args) > 2 else kwargs.get("header_params")
        return self._kube.send(
            method,
            resource_path,
            query=query_params or (),
            headers=header_params or {},
            body=body,
            timeout=kwargs.get("_request_timeout"),
        )


def _query(pairs: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for key, value in pairs:
        if value is None:
            continue
        out.append((key, ("true" if value else "false") if isinstance(value, bool) else str(value)))
    return out


class Kube:
    """A connection to one cluster's API, through which every request of the kit passes.

    Args:
        api_client: the official client's ``ApiClient`` (``Platform.kube_client()``).
        target: the platform's target (``embedded``, ``kind``, ``eks``); tunes error hints and service URLs.
        time_scale: how much faster than wall time the cluster's clock runs (embedded only); waits divide
            their timeouts by it.
        retry: the retry policy (default: 5 tries, 0.2 s doubling to 5 s, jittered).
        request_timeout: (connect, read) seconds for ordinary requests.
        min_wall_timeout: on a scaled clock, the least wall time a wait gets (unless its timeout is shorter).
        sleep: how to wait between retries (tests pass a recorder).
        rng: random source for jitter.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        target: str | None = None,
        time_scale: float = 1.0,
        retry: RetryPolicy | None = None,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
        min_wall_timeout: float = MIN_WALL_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.api_client = api_client
        self.target = target
        self.time_scale = time_scale if time_scale > 0 else 1.0
        self.retry = retry or RetryPolicy()
        self.request_timeout = request_timeout
        self.min_wall_timeout = min_wall_timeout
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._dynamic: DynamicClient | None = None
        self._resources: dict[tuple[str, str], Resource] = {}
        self._server_date: tuple[float, float] | None = None  # (server epoch seconds, local monotonic)
        self._closers: list[Callable[[], None]] = []
        self._owns_client = False
        self.retries_made = 0  # retries done so far, over all requests (visible in tests and doctor output)
        self.endpoints: dict[tuple[str, ...], Any] = {}  # open Service endpoints (port-forwards) service_url reuses

    # ------------------------------------------------------------------------------------------- construction

    @classmethod
    def of(cls, platform: Platform) -> Kube:
        """The ``Kube`` of a connected platform (one per ``ApiClient``, kept on it).

        When the platform offers ``on_close(fn)``, the ``Kube`` registers its :meth:`close` there so
        port-forwards end with the platform's connection.
        """
        api = platform.kube_client()
        kube = getattr(api, _ATTR, None)
        if not isinstance(kube, Kube):
            scale = float(platform.settings.time_scale) if platform.target == "embedded" else 1.0
            kube = cls(api, target=platform.target, time_scale=scale)
            setattr(api, _ATTR, kube)  # a cycle the GC collects with the client: no global registry
            register = getattr(platform, "on_close", None)
            if callable(register):
                register(kube.close)
        return kube

    @classmethod
    def from_kubeconfig(cls, path: str | Path, *, context: str | None = None, **kwargs: Any) -> Kube:
        """A ``Kube`` for a kubeconfig file (closing it closes the client too)."""
        from kubernetes import config

        kube = cls(config.new_client_from_config(config_file=str(path), context=context), **kwargs)
        kube._owns_client = True
        return kube

    @property
    def host(self) -> str:
        """The API server URL."""
        return str(self.api_client.configuration.host)

    def add_closer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on :meth:`close` (port-forwards register themselves here)."""
        with self._lock:
            self._closers.append(fn)

    def close(self) -> None:
        """Close port-forwards opened through this connection (and the client, if this object created it)."""
        with self._lock:
            closers, self._closers = self._closers, []
        for fn in reversed(closers):
            with contextlib.suppress(Exception):
                fn()
        if self._owns_client:
            self.api_client.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Kube({self.host}, target={self.target!r})"

    # ------------------------------------------------------------------------------------------- time

    def wall_timeout(self, timeout: float) -> float:
        """Wall seconds to wait for ``timeout`` cluster seconds (scaled on embedded, with a floor)."""
        if self.time_scale == 1.0:
            return timeout
        return max(timeout / self.time_scale, min(timeout, self.min_wall_timeout))

    def server_now(self) -> float:
        """The API server's clock now (epoch seconds), from the last response's ``Date`` header."""
        with self._lock:
            stamp = self._server_date
        if stamp is None:
            return time.time()
        server, at = stamp
        return server + (time.monotonic() - at) * self.time_scale

    def cluster_now(self, *objs: Any) -> float:
        """:meth:`server_now`, but never earlier than a timestamp written in ``objs`` (lists of objects).

        Guards ages against a server whose ``Date`` header lags its own clock (a simulated clock).
        """
        newest = max((status.newest_time(group) for group in objs), default=0.0)
        return max(self.server_now(), newest)

    def _note_date(self, resp: Any) -> None:
        headers = getattr(resp, "headers", None)
        value = headers.get("Date") if headers is not None else None
        if not value:
            return
        try:
            server = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return
        with self._lock:
            self._server_date = (server, time.monotonic())

    # ------------------------------------------------------------------------------------------- transport

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        headers: dict[str, str] | None = None,
        body: Any = None,
        timeout: Any = None,
        stream: bool = False,
        attempts: Attempts | None = None,
    ) -> Any:
        """Send one request with retries; returns the urllib3 response, raises the client's own exceptions.

        This is the only place that calls ``ApiClient.call_api``. Most code wants :meth:`request`,
        which maps failures into the kit's errors.
        """
        method = method.upper()
        base_headers = {"Accept": "application/json", **(headers or {})}
        base_headers.setdefault("Content-Type", "application/json")
        retry_as = "POST" if base_headers["Content-Type"] == PATCH_TYPES["json"] else method
        params = _query(list(query))
        req_timeout = timeout if timeout is not None else (None if stream else self.request_timeout)

        def once() -> Any:
            resp = self.api_client.call_api(
                path,
                method,
                {},
                list(params),
                dict(base_headers),
                body=body,
                post_params=[],
                files={},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=req_timeout,
            )
            self._note_date(resp)
            if not stream:
                _ = resp.data  # read the body inside the retry loop: a cut-off read is retried too
                resp.release_conn()
            return resp

        def on_retry(exc: BaseException, delay: float) -> None:
            self.retries_made += 1
            status = getattr(exc, "status", None) or type(exc).__name__
            log.info("retrying %s %s after %s in %.2fs", method, path, status, delay)

        return call_with_retry(
            once,
            method=retry_as,
            policy=self.retry,
            sleep=self._sleep,
            rng=self._rng,
            attempts=attempts,
            on_retry=on_retry,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        info: RequestInfo | None = None,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: Any = None,
    ) -> bytes:
        """Send a request and return the response body; failures raise the kit's errors."""
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        attempts = Attempts()
        try:
            resp = self.send(method, path, query=query, headers=headers, body=body, timeout=timeout, attempts=attempts)
        except _TRANSPORT_ERRORS as exc:
            raise self._error(exc, info, method, path, attempts.count) from exc
        return bytes(resp.data or b"")

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, decoded as JSON (``None`` for an empty body)."""
        data = self.request(method, path, **kwargs)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ApiError(
                f"the API answered {method} {path} with something that is not JSON: {data[:200]!r}",
                "the server behind the kubeconfig may not be a Kubernetes API server; check `kubectl cluster-info`",
            ) from exc

    def _error(self, exc: BaseException, info: RequestInfo | None, method: str, path: str, attempts: int) -> Any:
        full = info or RequestInfo()
        full = RequestInfo(
            method=method.upper(),
            path=path,
            api_version=full.api_version,
            kind=full.kind,
            name=full.name,
            namespace=full.namespace,
            server=self.host,
            target=self.target,
        )
        err = to_labkit_error(exc, full, attempts=attempts)
        if isinstance(err, NotFound) and full.kind and err.what.startswith("the cluster does not know kind"):
            with self._lock:
                self._resources.pop((full.api_version, full.kind), None)
        return err

    # ------------------------------------------------------------------------------------------- discovery

    @property
    def dynamic(self) -> DynamicClient:
        """The ``DynamicClient`` (discovery is fetched on first use and kept in memory)."""
        with self._lock:
            if self._dynamic is None:
                cache_file = Path(tempfile.gettempdir()) / f"labkit-discovery-{uuid.uuid4().hex}.json"
                try:
                    self._dynamic = DynamicClient(
                        _Transport(self), cache_file=str(cache_file), discoverer=_MemoryDiscoverer
                    )
                except _TRANSPORT_ERRORS as exc:
                    raise self._error(exc, None, "GET", "/apis", self.retry.attempts) from exc
            return self._dynamic

    def resource(self, api_version: str, kind: str) -> Resource:
        """The API resource serving ``kind`` in ``api_version`` (discovered once, then cached).

        Raises:
            NotFound: the cluster does not serve that kind (for a custom resource: its CRDs are missing).
        """
        key = (api_version, kind)
        with self._lock:
            cached = self._resources.get(key)
            if cached is not None:
                return cached
            try:
                found = self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise unknown_kind_error(kind, api_version) from exc
            except ResourceNotUniqueError:
                matches = [
                    r
                    for r in self.dynamic.resources.search(api_version=api_version, kind=kind)
                    if not isinstance(r, ResourceList)
                ]
                found = next((r for r in matches if r.preferred), matches[0])
            except _TRANSPORT_ERRORS as exc:
                raise self._error(exc, RequestInfo(api_version=api_version, kind=kind), "GET", "/apis", 1) from exc
            self._resources[key] = found
            return found

    def forget_discovery(self) -> None:
        """Drop cached discovery (after CRDs change)."""
        with self._lock:
            self._resources.clear()
            if self._dynamic is not None:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    self._dynamic.resources.invalidate_cache()

    def resolve(self, name: str) -> Resource:
        """The resource a ``kubectl`` name means: ``deploy``, ``pods``, ``nodepool.karpenter.sh``, ``NodePool``."""
        known = refs.find_builtin(name)
        if known is not None:
            return self.resource(known.api_version, known.kind)
        base, _, group = name.strip().lower().partition(".")
        for attempt in range(2):
            matches = [r for r in self._all_resources() if _matches(r, base, group)]
            if matches:
                return next((r for r in matches if r.preferred), matches[0])
            if attempt == 0:
                self.forget_discovery()
        raise NotFound(
            f"the cluster has no resource type '{name}'",
            "check the spelling (kubectl api-resources lists every type); a custom resource needs its CRDs installed",
            status=404,
            reason="NotFound",
        )

    def _all_resources(self) -> list[Resource]:
        with self._lock:
            try:
                out: list[Resource] = []
                for entry in self.dynamic.resources:
                    for r in entry if isinstance(entry, list) else [entry]:
                        if isinstance(r, Resource) and not isinstance(r, ResourceList):
                            out.append(r)
                return out
            except _TRANSPORT_ERRORS as exc:
                raise self._error(exc, None, "GET", "/apis", 1) from exc

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        """Whether objects of ``kind`` live in a namespace."""
        return bool(self.resource(api_version, kind).namespaced)

    # ------------------------------------------------------------------------------------------- paths

    def _target(
        self, api_version: str, kind: str, name: str | None, namespace: str | None, *, default_ns: bool = True
    ) -> tuple[Resource, str, RequestInfo]:
        res = self.resource(api_version, kind)
        ns = (namespace or ("default" if default_ns else None)) if res.namespaced else None
        path = res.path(name=name, namespace=ns)
        return res, path, RequestInfo(api_version=api_version, kind=kind, name=name or "", namespace=ns or "")

    # ------------------------------------------------------------------------------------------- verbs

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """One object (``namespace`` defaults to ``default`` for namespaced kinds).

        Raises:
            NotFound: no such object (or no such namespace or kind).
        """
        _, path, info = self._target(api_version, kind, name, namespace)
        return self.request_json("GET", path, info=info)

    def try_get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or ``None`` when it does not exist (the kind must exist)."""
        try:
            return self.get(api_version, kind, name, namespace)
        except NotFound as exc:
            if exc.what.startswith("the cluster does not know kind"):
                raise
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ObjectList:
        """Objects of ``kind`` (``namespace=None``: every namespace), following ``continue`` pages.

        Items carry ``apiVersion`` and ``kind`` (the API omits them in lists).
        """
        _, path, info = self._target(api_version, kind, None, namespace, default_ns=False)
        items: list[dict[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            query = [("labelSelector", label_selector), ("fieldSelector", field_selector), ("limit", page_size)]
            if token:
                query.append(("continue", token))
            page = self.request_json("GET", path, info=info, query=query) or {}
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue") or None
            if not token:
                return ObjectList(items, version)

    def table(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        name: str | None = None,
        label_selector: str | None = None,
    ) -> dict[str, Any]:
        """The server-side ``Table`` rendering (what ``kubectl get`` prints); a plain list if unsupported."""
        _, path, info = self._target(api_version, kind, name, namespace, default_ns=False)
        query = [("labelSelector", label_selector)] if not name else []
        return self.request_json("GET", path, info=info, query=query, accept=TABLE_ACCEPT) or {}

    def create(self, obj: dict[str, Any], *, namespace: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Create ``obj`` (409 ``Conflict`` when it exists)."""
        api_version, kind, name, ns = _identity(obj, namespace)
        _, path, info = self._target(api_version, kind, None, ns)
        info = RequestInfo(api_version=api_version, kind=kind, name=name, namespace=info.namespace)
        body = _with_namespace(obj, info.namespace)
        return self.request_json("POST", path, info=info, body=body, query=[("dryRun", "All" if dry_run else None)])

    def replace(self, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Replace ``obj`` (PUT); a stale ``metadata.resourceVersion`` raises ``Conflict``."""
        api_version, kind, name, ns = _identity(obj, namespace)
        _, path, info = self._target(api_version, kind, name, ns)
        return self.request_json("PUT", path, info=info, body=_with_namespace(obj, info.namespace))

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """Patch an object: ``patch_type`` is ``merge``, ``strategic``, ``json`` or ``apply``."""
        if patch_type not in PATCH_TYPES:
            raise Invalid(f"unknown patch type {patch_type!r}", f"use one of {', '.join(PATCH_TYPES)}")
        _, path, info = self._target(api_version, kind, name, namespace)
        if subresource:
            path = f"{path}/{subresource}"
        return self.request_json(
            "PATCH",
            path,
            info=info,
            body=body,
            content_type=PATCH_TYPES[patch_type],
            query=[("fieldManager", field_manager)],
        )

    def server_side_apply(
        self,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str = FIELD_MANAGER,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` (creates it when missing); ``force`` takes over conflicting fields."""
        api_version, kind, name, ns = _identity(obj, namespace)
        if not name:
            raise Invalid(
                f"{kind} without metadata.name cannot be applied", "give it a name (generateName needs create)"
            )
        _, path, info = self._target(api_version, kind, name, ns)
        query = [("fieldManager", field_manager), ("force", True if force else None)]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request_json(
            "PATCH",
            path,
            info=info,
            body=_with_namespace(obj, info.namespace),
            content_type=PATCH_TYPES["apply"],
            query=query,
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Background",
        grace_period_s: int | None = None,
    ) -> dict[str, Any] | None:
        """Delete one object; returns what the API answered (the object, or a ``Status``)."""
        _, path, info = self._target(api_version, kind, name, namespace)
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if grace_period_s is not None:
            body["gracePeriodSeconds"] = grace_period_s
        return self.request_json("DELETE", path, info=info, body=body)

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_s: float = 30.0,
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}`` dicts) for at most about ``timeout_s`` seconds without one.

        The stream ends quietly when the server closes it or nothing arrives in time; an expired
        ``resource_version`` raises :class:`~labkit.errors.ApiError` with ``status == 410``.
        """
        _, path, info = self._target(api_version, kind, None, namespace, default_ns=False)
        query = [
            ("watch", True),
            ("allowWatchBookmarks", True),
            ("timeoutSeconds", max(1, math.ceil(timeout_s))),
            ("resourceVersion", resource_version),
            ("labelSelector", label_selector),
            ("fieldSelector", field_selector),
        ]
        attempts = Attempts()
        try:
            resp = self.send(
                "GET",
                path,
                query=query,
                stream=True,
                timeout=(self.request_timeout[0], timeout_s + 0.1),
                attempts=attempts,
            )
        except _TRANSPORT_ERRORS as exc:
            raise self._error(exc, info, "GET", path, attempts.count) from exc
        return self._events(resp, info, path)

    def _events(self, resp: Any, info: RequestInfo, path: str) -> Iterator[dict[str, Any]]:
        try:
            for line in _lines(resp):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise self._error(_StatusFailure(status), info, "GET", path, 1)
                obj = event.get("object")
                if isinstance(obj, dict):
                    obj.setdefault("apiVersion", info.api_version)
                    obj.setdefault("kind", info.kind)
                yield event
        except (urllib3.exceptions.HTTPError, OSError):
            return  # read timeout or connection closed: the watch ends; callers relist
        finally:
            with contextlib.suppress(Exception):
                resp.release_conn()
            with contextlib.suppress(Exception):
                resp.close()

    def read_log(
        self,
        name: str,
        namespace: str = "default",
        *,
        container: str | None = None,
        tail_lines: int | None = None,
        previous: bool = False,
    ) -> str:
        """A pod's log (``kubectl logs``), as text."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        info = RequestInfo(api_version="v1", kind="Pod", name=name, namespace=namespace)
        query = [("container", container), ("tailLines", tail_lines), ("previous", True if previous else None)]
        data = self.request("GET", path, info=info, query=query, accept="text/plain, */*")
        return data.decode("utf-8", errors="replace")

    def version(self) -> dict[str, Any]:
        """The server's ``/version``."""
        return self.request_json("GET", "/version") or {}


class _StatusFailure(Exception):
    """A ``Status`` that arrived inside a watch stream, shaped like an ``ApiException``."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = int(status.get("code") or 500)
        self.reason = status.get("reason", "")
        self.body = json.dumps(status)
        self.headers: dict[str, str] = {}


def _lines(resp: Any) -> Iterator[str]:
    buffer = bytearray()
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer.extend(chunk if isinstance(chunk, bytes) else str(chunk).encode())
        while (cut := buffer.find(b"\n")) != -1:
            yield buffer[:cut].decode("utf-8", errors="replace")
            del buffer[: cut + 1]
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace")


def _matches(r: Resource, base: str, group: str) -> bool:
    names = {str(r.name or "").lower(), str(r.singular_name or "").lower(), str(r.kind).lower()}
    names.update(s.lower() for s in (r.short_names or []))
    if group and str(r.group or "") != group:
        return False
    return base in names


def _identity(obj: dict[str, Any], namespace: str | None) -> tuple[str, str, str, str | None]:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        raise Invalid("the object has no apiVersion or kind", "every manifest needs apiVersion, kind and metadata")
    meta = obj.get("metadata") or {}
    return str(api_version), str(kind), str(meta.get("name") or ""), meta.get("namespace") or namespace


def _with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    if not namespace or meta.get("namespace") == namespace:
        return obj
    return {**obj, "metadata": {**meta, "namespace": namespace}}


_ATTR = "_labkit_kube"


def current() -> Kube:
    """The ``Kube`` of the current lab's platform (connecting or starting it as the context does)."""
    from labkit import context

    return Kube.of(context.current().platform())


def resolve(kube: Kube | Platform | None) -> Kube:
    """Accept what step functions take as ``kube=``: a ``Kube``, a ``Platform``, or ``None`` for the current one."""
    if kube is None:
        return current()
    if isinstance(kube, Kube):
        return kube
    if hasattr(kube, "kube_client"):
        return Kube.of(kube)
    raise LabkitError(f"expected a Kube or a Platform, got {type(kube).__name__}", "pass kube=Kube.of(platform)")
