"""The embedded Kubernetes API server: HTTP(S) on 127.0.0.1 over the in-memory store.

An aiohttp application on its own event loop (uvloop when installed) in a daemon thread.
Requests are served straight from the :class:`~labkit.embedded.kube.store.Store` (its calls
are short and thread-safe); a watch stream drains its store watch queue whenever the queue's
waker (``loop.call_soon_threadsafe``) says an event arrived. Wire format lives in
:mod:`.responses`, routes in :mod:`.urls`, discovery, OpenAPI and Table output in their own
modules. Any bearer token is accepted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import logging
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from labkit.errors import ApiError, ConfigError, Invalid, LabkitError, NotFound

from . import discovery, openapi, responses, tables, tls
from .faults import Fault, FaultInjector
from .urls import ApiPath, GroupPath, parse_api_path, route_table

if TYPE_CHECKING:
    from .resources import ResourceType
    from .store import Store

log = logging.getLogger("labkit.embedded.kube.server")

#: Built-in resources whose DELETE answers with the deleted object rather than a Status.
RETURNS_DELETED_OBJECT = frozenset(
    {
        "pods",
        "podtemplates",
        "persistentvolumeclaims",
        "persistentvolumes",
        "resourcequotas",
        "services",
        "serviceaccounts",
        "storageclasses.storage.k8s.io",
        "csidrivers.storage.k8s.io",
        "csinodes.storage.k8s.io",
        "volumeattachments.storage.k8s.io",
    }
)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
_DEFAULT_WATCH_SECONDS = 1800.0


class _BadRequest(Exception):
    """A request the server rejects before it reaches the store (carries a ready Status)."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = status


def _bad(message: str, code: int = 400, reason: str | None = None, details: dict | None = None) -> _BadRequest:
    return _BadRequest(responses.status_failure(code, message, reason, details))


def _json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=responses.dumps(obj), status=status, content_type="application/json", headers=headers)


def _status_response(status_obj: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return _json_response(status_obj, status=int(status_obj.get("code") or 500), headers=headers)


class ApiServer:
    """The embedded API server.

    Args:
        store: the state to serve.
        host: address to bind (always a loopback address for the embedded target).
        port: port to bind; 0 picks a free one (read it back from :attr:`url`).
        tls: serve HTTPS with a private CA (the default, as clients expect) or plain HTTP.
        state_dir: folder to cache the CA and serving certificate in (``state_dir/pki``).

    Attributes:
        url: the base URL once started, e.g. ``https://127.0.0.1:41233``.
        ca_pem: the CA certificate (PEM) clients must trust, when ``tls`` is on.
        faults: the :class:`FaultInjector` deciding which API calls fail.
        bookmark_interval: wall seconds between BOOKMARK events on watches that allow them.
        max_watch_seconds: longest a watch stays open when the client gives no ``timeoutSeconds``.
    """

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        state_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.tls = tls
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.url = ""
        self.ca_pem: bytes | None = None
        self.faults = FaultInjector()
        self.bookmark_interval = 5.0
        self.max_watch_seconds = _DEFAULT_WATCH_SECONDS
        self.requests_served = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._watchers: set[asyncio.Event] = set()
        self._stopping = False
        self._openapi = openapi.OpenApiCache()

    # ------------------------------------------------------------------------------------------
    # lifecycle

    def start(self) -> str:
        """Bind, start serving in a background thread and return the base URL."""
        if self._thread is not None:
            return self.url
        ssl_ctx: ssl.SSLContext | None = None
        if self.tls:
            material = tls.load_or_create(self.state_dir / "pki" if self.state_dir else None)
            self.ca_pem = material.ca_pem
            ssl_ctx = material.server_context()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"the embedded API server cannot listen on {self.host}:{self.port}: {exc.strerror}",
                "use port 0 (any free port) or stop whatever holds that port",
            ) from exc
        sock.listen(128)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.url = f"{'https' if self.tls else 'http'}://{host}:{port}"
        self._stopping = False
        loop = _new_loop()
        self._loop = loop
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart(sock, ssl_ctx))
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="labkit-kube-apiserver", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        return self.url

    async def _astart(self, sock: socket.socket, ssl_ctx: ssl.SSLContext | None) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(route_table(self))
        app.on_response_prepare.append(self._stamp_date)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_ctx)
        await site.start()
        self._runner = runner

    async def _stamp_date(self, request: web.Request, response: web.StreamResponse) -> None:
        # Clients compute ages (kubectl's AGE column) from the server's Date header:
        # it must come from the simulated clock, like every timestamp the server writes.
        response.headers["Date"] = email.utils.formatdate(self.store.clock.now(), usegmt=True)

    def stop(self) -> None:
        """Close every watch, stop serving and join the thread (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        self._stopping = True
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=5)
        self._thread = None
        self._loop = None

    async def _astop(self) -> None:
        for wake in list(self._watchers):
            wake.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path, *, context: str = "labkit-embedded", cluster: str = "embedded") -> Path:
        """Write a kubeconfig for this server (mode 0600) and return its path.

        The cluster entry carries the CA as ``certificate-authority-data``; the user is a dummy
        bearer token (the embedded server accepts any). The context's namespace is ``default``.
        """
        if not self.url:
            raise LabkitError("the embedded API server is not started", "call ApiServer.start() first")
        cluster_entry: dict[str, Any] = {"server": self.url}
        if self.ca_pem is not None:
            cluster_entry["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": cluster, "cluster": cluster_entry}],
            "users": [{"name": "labkit", "user": {"token": "labkit-embedded-token"}}],
            "contexts": [{"name": context, "context": {"cluster": cluster, "user": "labkit", "namespace": "default"}}],
            "current-context": context,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------------------------------
    # fixed routes

    async def handle_version(self, request: web.Request) -> web.StreamResponse:
        return _json_response(discovery.version_info())

    async def handle_root(self, request: web.Request) -> web.StreamResponse:
        return _json_response(discovery.root_paths(self.store.registry.all()))

    async def handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok", content_type="text/plain")

    async def handle_core_versions(self, request: web.Request) -> web.StreamResponse:
        return _json_response(discovery.api_versions(request.host))

    async def handle_group_list(self, request: web.Request) -> web.StreamResponse:
        return _json_response(discovery.api_group_list(self.store.registry.all()))

    async def handle_openapi_v3(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "").strip("/")
        types = self.store.registry.all()
        if not tail:
            return _json_response(self._openapi.index(types))
        parts = tail.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return _status_response(responses.not_found_path())
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self._openapi.document, types, group, version)
        if found is None:
            return _status_response(responses.not_found_path())
        digest, data = found
        headers = {
            "ETag": f'"{digest}"',
            "Cache-Control": "public, immutable" if request.query.get("hash") else "no-cache",
        }
        if request.headers.get("If-None-Match") == f'"{digest}"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=data, content_type="application/json", headers=headers)

    async def handle_openapi_v2(self, request: web.Request) -> web.StreamResponse:
        # Only OpenAPI v3 is served; clients (kubectl 1.27+) use it and fall back to built-in types.
        return _status_response(responses.not_found_path())

    async def handle_unknown(self, request: web.Request) -> web.StreamResponse:
        return _status_response(responses.not_found_path())

    # ------------------------------------------------------------------------------------------
    # resource routes

    async def handle_api(self, request: web.Request) -> web.StreamResponse:
        self.requests_served += 1
        parsed = parse_api_path(request.path)
        if isinstance(parsed, GroupPath):
            doc = discovery.api_group(self.store.registry.all(), parsed.group)
            return _json_response(doc) if doc else _status_response(responses.not_found_path())
        if parsed is None:
            return _status_response(responses.not_found_path())
        if parsed.is_discovery:
            if request.method != "GET":
                return _status_response(responses.method_not_allowed(request.method, request.path))
            doc = discovery.api_resource_list(self.store.registry.all(), parsed.group, parsed.version)
            return _json_response(doc) if doc else _status_response(responses.not_found_path())
        rt = self.store.registry.lookup(parsed.group, parsed.version, parsed.plural)
        if rt is None or not self._scope_ok(rt, parsed):
            return _status_response(responses.not_found_path())
        if parsed.subresource is not None and parsed.subresource not in rt.subresources:
            return _status_response(responses.not_found_path())
        verb = self._verb(request, parsed)
        if verb is None:
            return _status_response(responses.method_not_allowed(request.method, request.path))
        if rt.namespaced and parsed.namespace is None and verb in ("create", "deletecollection"):
            return _status_response(responses.method_not_allowed(request.method, request.path))
        if parsed.subresource is None and verb not in rt.verbs:
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            return _status_response(
                responses.status_failure(
                    405, f"the server does not allow this method on the requested resource ({what})", "MethodNotAllowed"
                )
            )
        if self.faults.active:
            fault = self.faults.decide(verb, rt.key)
            if fault is not None:
                return await self._inject(request, fault)
        try:
            return await self._dispatch(request, rt, parsed, verb)
        except _BadRequest as exc:
            return _status_response(exc.status)
        except ApiError as exc:
            return _status_response(self._error_status(exc, rt, parsed))
        except LabkitError as exc:
            return _status_response(responses.status_failure(400, exc.what, "BadRequest"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("embedded API server failed on %s %s", request.method, request.path_qs)
            return _status_response(responses.internal_error(f"{type(exc).__name__}: {exc}"))

    @staticmethod
    def _scope_ok(rt: ResourceType, parsed: ApiPath) -> bool:
        if rt.namespaced:
            # a namespaced object needs its namespace; a collection may span all namespaces
            return parsed.namespace is not None or parsed.name is None
        return parsed.namespace is None

    @staticmethod
    def _verb(request: web.Request, parsed: ApiPath) -> str | None:
        method = request.method
        watch = parsed.legacy_watch or request.query.get("watch", "").lower() in ("true", "1")
        if parsed.subresource is not None:
            return {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create"}.get(method)
        if parsed.is_collection:
            if method == "GET":
                return "watch" if watch else "list"
            return {"POST": "create", "DELETE": "deletecollection"}.get(method)
        if method == "GET":
            return "watch" if parsed.legacy_watch else "get"
        return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)

    def _error_status(self, exc: ApiError, rt: ResourceType, parsed: ApiPath) -> dict[str, Any]:
        return responses.status_from_error(
            exc,
            name=parsed.name,
            group=rt.group,
            resource=rt.plural,
            kind=rt.kind,
        )

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "429":
            return _status_response(
                responses.too_many_requests(fault.retry_after), headers={"Retry-After": str(fault.retry_after)}
            )
        if fault.kind == "500":
            return _status_response(responses.internal_error("injected fault: the server failed this request"))
        await asyncio.sleep(fault.hang_seconds)
        if request.transport is not None:
            request.transport.abort()  # drop the connection: the client sees no response at all
        return web.Response(status=504)

    # ------------------------------------------------------------------------------------------
    # dispatch

    async def _dispatch(self, request: web.Request, rt: ResourceType, p: ApiPath, verb: str) -> web.StreamResponse:
        sub = p.subresource
        if verb == "watch":
            return await self._watch(request, rt, p)
        if verb == "list":
            return self._list(request, rt, p)
        if verb == "deletecollection":
            return await self._delete_collection(request, rt, p)
        if verb == "create" and sub is None:
            return await self._create(request, rt, p)
        assert p.name is not None
        if sub == "log":
            return await self._log(request, rt, p)
        if sub == "scale":
            return await self._scale(request, rt, p, verb)
        if sub in ("eviction", "binding"):
            return await self._pod_action(request, rt, p)
        if sub == "token" and verb == "create":
            return await self._token(request, rt, p)
        if sub in ("exec", "attach", "portforward", "proxy"):
            raise _bad(f"{rt.plural}/{sub} is not supported by the embedded API server", 400, "BadRequest")
        if verb == "get":
            obj = self.store.get(rt.key, p.namespace, p.name)
            return self._object_response(request, rt, obj)
        if verb == "update":
            return await self._update(request, rt, p)
        if verb == "patch":
            return await self._patch(request, rt, p)
        if verb == "delete":
            return await self._delete(request, rt, p)
        raise _bad(f"the verb {verb} is not supported on {rt.plural}/{sub}", 405, "MethodNotAllowed")

    # ------------------------------------------------------------------------------------------
    # helpers

    @staticmethod
    def _out(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as served at ``rt``'s version (custom resources may be read at any served version)."""
        if not rt.builtin and obj.get("apiVersion") != rt.api_version:
            obj["apiVersion"] = rt.api_version
        return obj

    def _printer(self, rt: ResourceType) -> tables.Printer:
        if not rt.builtin:
            return tables.crd_printer(list(rt.printer_columns)) if rt.printer_columns else tables.GENERIC
        return tables.PRINTERS.get(rt.key, tables.GENERIC)

    def _object_response(
        self, request: web.Request, rt: ResourceType, obj: dict[str, Any], status: int = 200, headers: Any = None
    ) -> web.Response:
        obj = self._out(rt, obj)
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            doc = tables.table(self._printer(rt), [obj], self.store.clock.now(), include_object=include)
            return _json_response(doc, status, headers)
        return _json_response(obj, status, headers)

    @staticmethod
    def _dry_run(request: web.Request, body_options: dict[str, Any] | None = None) -> bool:
        values = request.query.getall("dryRun", [])
        if body_options and isinstance(body_options.get("dryRun"), list):
            values = [*values, *body_options["dryRun"]]
        for value in values:
            if value != "All":
                raise _bad(f'Invalid dry run value "{value}": valid values are "All"', 400, "BadRequest")
        return bool(values)

    async def _read_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            raise _bad("the request body is empty; send the object as JSON", 400, "BadRequest")
        ctype = request.content_type.lower()
        if "protobuf" in ctype or "cbor" in ctype:
            raise _BadRequest(responses.unsupported_body(ctype))
        try:
            if ctype in _YAML_TYPES:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise _bad(f"couldn't get version/kind; json parse error: {exc}", 400, "BadRequest") from None

    def _check_body(self, rt: ResourceType, body: Any, p: ApiPath) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad(f"the body of a {rt.kind} must be a JSON object", 400, "BadRequest")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad("metadata must be an object", 400, "BadRequest")
        if rt.namespaced and p.namespace is not None:
            ns = meta.get("namespace")
            if ns and ns != p.namespace:
                raise _bad(
                    "the namespace of the provided object does not match the namespace sent on the request",
                    400,
                    "BadRequest",
                )
            meta["namespace"] = p.namespace
        elif not rt.namespaced:
            meta.pop("namespace", None)
        return body

    def _field_validation(
        self, request: web.Request, rt: ResourceType, body: Any, subresource: str | None = None
    ) -> list[str]:
        """Server-side field validation (``fieldValidation`` query parameter); returns Warning header values."""
        mode = request.query.get("fieldValidation", "")
        if mode not in ("Strict", "Warn") or not isinstance(body, dict):
            if mode and mode not in ("Strict", "Warn", "Ignore"):
                raise _bad(
                    f'fieldValidation "{mode}" is invalid: valid values are "Ignore", "Warn" or "Strict"',
                    400,
                    "BadRequest",
                )
            return []
        unknown = openapi.unknown_fields(body, rt, self.store.registry.all(), subresource)
        if not unknown:
            return []
        if mode == "Strict":
            listed = ", ".join(f'unknown field "{u}"' for u in unknown)
            prefix = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}'
            raise _bad(f"{prefix}: strict decoding error: {listed}", 400, "BadRequest")
        return [f'299 - "unknown field \\"{u}\\""' for u in unknown]

    @staticmethod
    def _warning_headers(warnings: list[str]) -> Any:
        if not warnings:
            return None
        from multidict import CIMultiDict

        headers: CIMultiDict[str] = CIMultiDict()
        for w in warnings:
            headers.add("Warning", w)
        return headers

    # ------------------------------------------------------------------------------------------
    # verbs

    def _list(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        q = request.query
        items, rv = self.store.list(
            rt.key,
            p.namespace,
            label_selector=q.get("labelSelector") or None,
            field_selector=q.get("fieldSelector") or None,
        )
        items.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), o["metadata"].get("name", "")))
        start = q.get("continue")
        if start:
            try:
                token = json.loads(base64.urlsafe_b64decode(start.encode()))
                after = (token["ns"], token["name"])
            except (ValueError, KeyError, TypeError):
                raise _bad("continue key is not valid: it must come from a previous list response", 400) from None
            items = [o for o in items if ((o["metadata"].get("namespace", ""), o["metadata"].get("name", ""))) > after]
        continue_token = None
        remaining = None
        limit = _int_param(q.get("limit"), "limit")
        if limit and limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            last = items[-1]["metadata"]
            continue_token = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "ns": last.get("namespace", ""), "name": last.get("name", "")}).encode()
            ).decode()
        items = [self._out(rt, o) for o in items]
        if tables.wants_table(request.headers.get("Accept", "")):
            doc = tables.table(
                self._printer(rt),
                items,
                self.store.clock.now(),
                resource_version=str(rv),
                continue_token=continue_token,
                include_object=q.get("includeObject", "Metadata"),
            )
            return _json_response(doc)
        for item in items:  # typed lists on kube-apiserver omit these, custom resource lists carry them; both parse
            item.setdefault("kind", rt.kind)
            item.setdefault("apiVersion", rt.api_version)
        return _json_response(
            responses.list_envelope(
                rt.kind, rt.api_version, items, rv, continue_token=continue_token, remaining=remaining
            )
        )

    async def _create(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        body = self._check_body(rt, await self._read_body(request), p)
        warnings = self._field_validation(request, rt, body)
        obj = self.store.create(
            rt.key,
            body,
            namespace=p.namespace,
            dry_run=self._dry_run(request),
            field_manager=request.query.get("fieldManager") or None,
        )
        return self._object_response(request, rt, obj, 201, self._warning_headers(warnings))

    async def _update(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        body = self._check_body(rt, await self._read_body(request), p)
        name = body["metadata"].get("name")
        if name and name != p.name:
            raise _bad(
                f"the name of the object ({name}) does not match the name on the URL ({p.name})", 400, "BadRequest"
            )
        body["metadata"]["name"] = p.name
        warnings = self._field_validation(request, rt, body)
        obj = self.store.update(
            rt.key,
            body,
            subresource=p.subresource,
            dry_run=self._dry_run(request),
            field_manager=request.query.get("fieldManager") or None,
        )
        return self._object_response(request, rt, obj, 200, self._warning_headers(warnings))

    def _patch_type(self, request: web.Request, rt: ResourceType) -> str:
        ctype = request.content_type.lower()
        patch_type = responses.PATCH_TYPES.get(ctype)
        accepted = [t for t in responses.PATCH_TYPES if not t.endswith("cbor")]
        if not rt.builtin:
            accepted = [t for t in accepted if "strategic" not in t]
        if patch_type is None or (patch_type == "strategic" and not rt.builtin):
            raise _BadRequest(responses.unsupported_patch(accepted))
        return patch_type

    async def _patch_body(self, request: web.Request, patch_type: str) -> Any:
        raw = await request.read()
        try:
            if patch_type == "apply":
                body = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            else:
                body = json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise _bad(f"error decoding patch: {exc}", 400, "BadRequest") from None
        if patch_type == "json" and not isinstance(body, list):
            raise _bad("json patch must be a list of operations", 400, "BadRequest")
        if patch_type != "json" and not isinstance(body, dict):
            raise _bad("the patch must be a JSON object", 400, "BadRequest")
        return body

    async def _patch(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        assert p.name is not None
        patch_type = self._patch_type(request, rt)
        body = await self._patch_body(request, patch_type)
        manager = request.query.get("fieldManager") or None
        if patch_type == "apply":
            if not manager:
                raise _bad(
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                    422,
                    "Invalid",
                    {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                        {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                         "field": "fieldManager"}]},
                )  # fmt: skip
            meta = body.get("metadata") or {}
            if meta.get("name") and meta["name"] != p.name:
                raise _bad(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({p.name})",
                    400,
                    "BadRequest",
                )
        warnings = self._field_validation(request, rt, body, p.subresource) if patch_type != "json" else []
        existed = True
        if patch_type == "apply" and p.subresource is None:
            existed = self.store.try_get(rt.key, p.namespace, p.name) is not None
        force = request.query.get("force", "").lower() in ("true", "1")
        obj = self.store.patch(
            rt.key,
            p.namespace,
            p.name,
            body,
            patch_type,
            subresource=p.subresource,
            field_manager=manager,
            force=force,
            dry_run=self._dry_run(request),
        )
        return self._object_response(request, rt, obj, 200 if existed else 201, self._warning_headers(warnings))

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            opts = json.loads(raw)
        except ValueError as exc:
            raise _bad(f"couldn't decode DeleteOptions: {exc}", 400, "BadRequest") from None
        return opts if isinstance(opts, dict) else {}

    @staticmethod
    def _propagation(request: web.Request, opts: dict[str, Any], rt: ResourceType) -> str:
        policy = request.query.get("propagationPolicy") or opts.get("propagationPolicy")
        orphan = request.query.get("orphanDependents", opts.get("orphanDependents"))
        if not policy and orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy and policy not in ("Orphan", "Background", "Foreground"):
            raise _bad(
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
                'supported values: "Foreground", "Background", "Orphan"',
                422,
                "Invalid",
            )
        return policy or "Background"

    async def _delete(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        assert p.name is not None
        opts = await self._delete_options(request)
        obj = self.store.delete(
            rt.key,
            p.namespace,
            p.name,
            propagation=self._propagation(request, opts, rt),
            dry_run=self._dry_run(request, opts),
            preconditions=opts.get("preconditions") or None,
        )
        pending = bool((obj.get("metadata") or {}).get("deletionTimestamp")) and (
            self.store.try_get(rt.key, p.namespace, p.name) is not None
        )
        if pending or rt.key in RETURNS_DELETED_OBJECT or not rt.builtin:
            return self._object_response(request, rt, obj)
        uid = (obj.get("metadata") or {}).get("uid")
        return _json_response(responses.status_success(responses.object_details(p.name, rt.group, rt.plural, uid)))

    async def _delete_collection(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        opts = await self._delete_options(request)
        deleted = self.store.delete_collection(
            rt.key,
            p.namespace,
            label_selector=request.query.get("labelSelector") or None,
            field_selector=request.query.get("fieldSelector") or None,
            propagation=self._propagation(request, opts, rt),
            dry_run=self._dry_run(request, opts),
        )
        items = [self._out(rt, o) for o in deleted]
        rv = self.store.current_resource_version()
        return _json_response(responses.list_envelope(rt.kind, rt.api_version, items, rv))

    # ------------------------------------------------------------------------------------------
    # subresources

    async def _scale(self, request: web.Request, rt: ResourceType, p: ApiPath, verb: str) -> web.StreamResponse:
        assert p.name is not None
        if verb == "get":
            return _json_response(self.store.get(rt.key, p.namespace, p.name, subresource="scale"))
        manager = request.query.get("fieldManager") or None
        if verb == "update":
            body = await self._read_body(request)
            if not isinstance(body, dict):
                raise _bad("the body of a Scale must be a JSON object", 400, "BadRequest")
            warnings = self._field_validation(request, rt, body, "scale")
            meta = body.setdefault("metadata", {})
            if meta.get("name") and meta["name"] != p.name:
                raise _bad(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({p.name})",
                    400,
                    "BadRequest",
                )
            meta["name"] = p.name
            scale = self.store.update(
                rt.key,
                body,
                subresource="scale",
                namespace=p.namespace,
                dry_run=self._dry_run(request),
                field_manager=manager,
            )
        else:
            patch_type = self._patch_type(request, rt)
            body = await self._patch_body(request, patch_type)
            warnings = self._field_validation(request, rt, body, "scale") if patch_type != "json" else []
            scale = self.store.patch(
                rt.key,
                p.namespace,
                p.name,
                body,
                patch_type,
                subresource="scale",
                field_manager=manager,
                force=request.query.get("force", "").lower() in ("true", "1"),
                dry_run=self._dry_run(request),
            )
        return _json_response(scale, headers=self._warning_headers(warnings))

    async def _log(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        assert p.name is not None and p.namespace is not None
        q = request.query
        container = q.get("container") or None
        tail = _int_param(q.get("tailLines"), "tailLines")
        since = _int_param(q.get("sinceSeconds"), "sinceSeconds")
        timestamps = q.get("timestamps", "").lower() in ("true", "1")
        limit_bytes = _int_param(q.get("limitBytes"), "limitBytes")
        text = self.store.read_log(
            p.namespace, p.name, container, tail_lines=tail, since_seconds=since, timestamps=timestamps
        )
        if limit_bytes is not None and limit_bytes >= 0:
            text = text.encode()[:limit_bytes].decode(errors="ignore")
        if q.get("follow", "").lower() not in ("true", "1"):
            return web.Response(text=text, content_type="text/plain")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(text.encode())
        sent = len(self.store.read_log(p.namespace, p.name, container, timestamps=timestamps))
        while not self._stopping:
            await asyncio.sleep(0.2)
            if request.transport is None or request.transport.is_closing():
                break
            try:
                full = self.store.read_log(p.namespace, p.name, container, timestamps=timestamps)
            except NotFound:
                break
            if len(full) > sent:
                await resp.write(full[sent:].encode())
                sent = len(full)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
        return resp

    async def _pod_action(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        assert p.name is not None
        if request.method != "POST":
            raise _bad(f"{rt.plural}/{p.subresource} only allows POST", 405, "MethodNotAllowed")
        body = await self._read_body(request)
        if not isinstance(body, dict):
            raise _bad(f"the {p.subresource} body must be a JSON object", 400, "BadRequest")
        pod = self.store.get(rt.key, p.namespace, p.name)
        dry_run = self._dry_run(request, body.get("deleteOptions") if p.subresource == "eviction" else None)
        if p.subresource == "eviction":
            self._check_disruption_budget(pod)
            opts = body.get("deleteOptions") or {}
            self.store.delete(
                rt.key,
                p.namespace,
                p.name,
                propagation=opts.get("propagationPolicy") or "Background",
                dry_run=dry_run,
                preconditions=opts.get("preconditions") or None,
            )
        else:
            node = (body.get("target") or {}).get("name")
            if not node:
                raise Invalid(
                    f'Binding "{p.name}" is invalid: target.name: Required value', status=422, reason="Invalid"
                )
            if not dry_run:
                assert p.namespace is not None
                manager = request.query.get("fieldManager") or "kube-scheduler"
                self.store.bind_pod(p.namespace, p.name, node, field_manager=manager)
        return _json_response(responses.status_success() | {"code": 201}, status=201)

    async def _token(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        """``serviceaccounts/token``: a TokenRequest answered with an (unsigned) service account JWT."""
        assert p.name is not None
        body = await self._read_body(request)
        spec = (body.get("spec") if isinstance(body, dict) else None) or {}
        account = self.store.get(rt.key, p.namespace, p.name)
        now = self.store.clock.now()
        expires = int(spec.get("expirationSeconds") or 3600)
        audiences = list(spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"])
        claims = {
            "aud": audiences,
            "exp": int(now) + expires,
            "iat": int(now),
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": f"system:serviceaccount:{p.namespace}:{p.name}",
            "kubernetes.io": {
                "namespace": p.namespace,
                "serviceaccount": {"name": p.name, "uid": account["metadata"].get("uid", "")},
            },
        }

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        token = ".".join((b64(b'{"alg":"none","typ":"JWT"}'), b64(responses.dumps(claims)), b64(b"labkit-embedded")))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return _json_response(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": p.name, "namespace": p.namespace, "creationTimestamp": stamp},
                "spec": {
                    "audiences": audiences,
                    "expirationSeconds": expires,
                    "boundObjectRef": spec.get("boundObjectRef"),
                },
                "status": {
                    "token": token,
                    "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + expires)),
                },
            },
            201,
        )

    def _check_disruption_budget(self, pod: dict[str, Any]) -> None:
        """Refuse an eviction a PodDisruptionBudget forbids (429, as kube-apiserver answers)."""
        from .selectors import selector_from_object

        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        try:
            budgets, _ = self.store.list("poddisruptionbudgets.policy", meta.get("namespace"))
        except ApiError:
            return
        for pdb in budgets:
            selector = (pdb.get("spec") or {}).get("selector")
            if selector is None or not selector_from_object(selector).matches(labels):
                continue
            allowed = (pdb.get("status") or {}).get("disruptionsAllowed")
            if allowed is not None and int(allowed) <= 0:
                raise _BadRequest(
                    responses.status_failure(
                        429,
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        "TooManyRequests",
                        {"causes": [{"reason": "DisruptionBudget", "message": f"The disruption budget "
                                     f"{pdb['metadata']['name']} needs {allowed} more healthy pods"}]},
                    )
                )  # fmt: skip

    # ------------------------------------------------------------------------------------------
    # watch

    async def _watch(self, request: web.Request, rt: ResourceType, p: ApiPath) -> web.StreamResponse:
        q = request.query
        field_selector = q.get("fieldSelector") or None
        if p.name is not None:
            by_name = f"metadata.name={p.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        rv_param = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("true", "1")
        send_initial = q.get("sendInitialEvents", "").lower() in ("true", "1")
        timeout = _int_param(q.get("timeoutSeconds"), "timeoutSeconds")
        deadline = time.monotonic() + (timeout if timeout and timeout > 0 else self.max_watch_seconds)
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "Metadata")
        start_rv: int | None = None
        if rv_param not in ("", "0"):
            try:
                start_rv = int(rv_param)
            except ValueError:
                raise _bad(f"invalid resource version: {rv_param!r}", 400, "BadRequest") from None

        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        try:
            # Without a resourceVersion (or with "0") a watch starts with synthetic ADDED events, as on kube.
            watch = self.store.watch(
                rt.key,
                p.namespace,
                resource_version=start_rv,
                label_selector=q.get("labelSelector") or None,
                field_selector=field_selector,
                send_initial=send_initial or start_rv is None,
            )
        except ApiError as exc:
            if exc.status != 410:
                raise
            await resp.prepare(request)
            await resp.write(responses.watch_event("ERROR", responses.expired(exc.what)))
            await resp.write_eof()
            return resp

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def waker() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                loop.call_soon_threadsafe(wake.set)

        snapshot_rv = watch.last_resource_version
        end_marker_due = send_initial and bookmarks
        headers_sent = False

        def encode(event_type: str, obj: dict[str, Any]) -> bytes:
            nonlocal headers_sent
            if as_table and event_type in ("ADDED", "MODIFIED", "DELETED"):
                obj = tables.table(
                    self._printer(rt), [obj], self.store.clock.now(), include_object=include, headers=not headers_sent
                )
                headers_sent = True
            return responses.watch_event(event_type, obj)

        def end_marker() -> bytes:
            mark = responses.bookmark(rt.kind, rt.api_version, snapshot_rv, initial_events_end=True)
            return responses.watch_event("BOOKMARK", mark)

        self._watchers.add(wake)
        watch.set_waker(waker)
        try:
            await resp.prepare(request)
            next_bookmark = time.monotonic() + self.bookmark_interval
            while not self._stopping and not watch.closed:
                wake.clear()  # before draining, so a wake-up for a later event is never lost
                chunk = bytearray()
                while True:
                    event = watch.get(0)
                    if event is None:
                        break
                    if end_marker_due and event.resource_version > snapshot_rv:
                        chunk += end_marker()
                        end_marker_due = False
                    chunk += encode(event.type, self._out(rt, dict(event.obj)))
                if end_marker_due:
                    chunk += end_marker()
                    end_marker_due = False
                if chunk:
                    await resp.write(bytes(chunk))
                now = time.monotonic()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    mark = watch.bookmark()
                    if mark is not None:
                        await resp.write(responses.watch_event("BOOKMARK", mark.obj))
                        next_bookmark = now + self.bookmark_interval
                if request.transport is None or request.transport.is_closing():
                    break
                wait = min(deadline - now, 0.5, max(next_bookmark - now, 0.001) if bookmarks else 0.5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(wait, 0.001))
            with contextlib.suppress(ConnectionError, RuntimeError):
                await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self._watchers.discard(wake)
            watch.set_waker(None)
            watch.close()
        return resp


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _bad(f"invalid value for {name}: {value!r} is not an integer", 400, "BadRequest") from None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
