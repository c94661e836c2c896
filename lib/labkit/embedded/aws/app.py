"""The embedded AWS as one WSGI application: the shim's routes first, moto for the rest.

Every request is parsed once; if a shim route matches it, the route's handler answers
(possibly after calling moto through ``forward`` and completing moto's answer);
otherwise moto's own server application answers it unchanged.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from labkit.embedded.aws.wire import (
    Route,
    ShimError,
    ShimRequest,
    ShimResponse,
    error_response,
    parse_request,
    protocol_of,
)

log = logging.getLogger("labkit.embedded.aws")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ShimApp:
    """WSGI app: shim routes in front of moto's ``DomainDispatcherApplication``.

    Args:
        moto_app: moto's server application.
        routes: the shim's routes, tried in order.
    """

    def __init__(self, moto_app: WsgiApp, routes: list[Route]) -> None:
        self.moto_app = moto_app
        self.routes = routes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _read_body(environ)
        request = parse_request(environ, body)
        response = self.handle(request)
        start_response(f"{response.status} {_reason(response.status)}", list(response.headers.items()))
        return [response.body]

    def handle(self, request: ShimRequest) -> ShimResponse:
        for route in self.routes:
            try:
                params = route.match(request)
            except (ValueError, KeyError) as exc:
                return error_response(ShimError("SerializationException", f"malformed request: {exc}"), "json")
            if params is None:
                continue
            forward = self._forwarder(request)
            try:
                return route.handler(request, params, forward)
            except ShimError as exc:
                return error_response(exc, protocol_of(request.service))
            except Exception as exc:  # a shim bug must reach the client as a 500, not kill the server thread
                log.exception("embedded AWS shim failed on %s %s", request.method, request.raw_path)
                return error_response(
                    ShimError("InternalFailure", f"embedded AWS shim error: {exc}", 500), protocol_of(request.service)
                )
        return self.call_moto(request.environ, request.body)

    def _forwarder(self, request: ShimRequest) -> Callable[..., ShimResponse]:
        def forward(*, body: bytes | None = None, method: str | None = None) -> ShimResponse:
            environ = dict(request.environ)
            if method is not None:
                environ["REQUEST_METHOD"] = method
                if method in ("GET", "DELETE"):
                    body = b""
            return self.call_moto(environ, request.body if body is None else body)

        return forward

    def call_moto(self, environ: dict[str, Any] | Any, body: bytes) -> ShimResponse:
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers

        try:
            chunks = self.moto_app(environ, start_response)
        except NotImplementedError as exc:
            service = parse_request(environ, body).service
            error = ShimError("NotImplemented", f"not implemented by the embedded AWS (moto): {exc}", 501)
            return error_response(error, protocol_of(service))
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        headers = {
            k: v for k, v in captured.get("headers", []) if k.lower() not in ("content-length", "transfer-encoding")
        }
        return ShimResponse(captured.get("status", 500), headers, data)


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if length > 0:
        return bytes(stream.read(length))
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
