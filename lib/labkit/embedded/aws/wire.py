"""The wire format shared by every shim service: requests in, responses and errors out.

A request reaches the shim as WSGI; :class:`ShimRequest` is its parsed, immutable
form (service and region from the SigV4 credential scope, account from the access
key, as moto does). Handlers return a :class:`ShimResponse` or raise
:class:`ShimError`, which is written in the protocol of the service (``json``,
``rest-json`` or ``ec2``) so botocore raises the same ``ClientError`` a real
endpoint would cause.

Requests and responses of ``rest-json`` services are mapped through botocore's own
service model, so URIs, query strings and member names cannot drift from the SDK.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
DEFAULT_ACCOUNT_ID = "123456789012"

# Signing names that differ from botocore's service names.
SIGNING_TO_SERVICE = {"servicequotas": "service-quotas", "tagging": "resourcegroupstaggingapi"}


class ShimError(Exception):
    """An AWS error response: ``code`` is the exception name botocore will raise.

    Args:
        code: AWS error code, e.g. ``ResourceNotFoundException``.
        message: the message a real endpoint would send.
        status: HTTP status code.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def not_found(message: str) -> ShimError:
    return ShimError("ResourceNotFoundException", message, 404)


def in_use(message: str) -> ShimError:
    return ShimError("ResourceInUseException", message, 409)


def invalid_parameter(message: str) -> ShimError:
    return ShimError("InvalidParameterException", message, 400)


def invalid_request(message: str) -> ShimError:
    return ShimError("InvalidRequestException", message, 400)


@dataclass(frozen=True)
class ShimRequest:
    """One parsed AWS request.

    Attributes:
        service: botocore service name (``eks``, ``pricing``, ``service-quotas`` ...).
        region: region from the credential scope.
        account_id: the account the access key belongs to.
        access_key: the caller's access key id.
        method: HTTP method.
        raw_path: the path as sent, still percent-encoded (ARNs in paths keep their ``/``).
        query: query-string parameters.
        headers: request headers (lower-case names).
        body: raw body.
    """

    service: str
    region: str
    account_id: str
    access_key: str
    method: str
    raw_path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    environ: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def target(self) -> str:
        """``X-Amz-Target`` of JSON-protocol requests (``AWSPriceListService.GetProducts``), or ``""``."""
        return self.headers.get("x-amz-target", "")

    @functools.cached_property
    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        data = json.loads(self.body)
        return data if isinstance(data, dict) else {}

    @functools.cached_property
    def form(self) -> dict[str, list[str]]:
        """Query-protocol parameters (``Action=...&InstanceType.1=...``) from body and query string."""
        out = {k: list(v) for k, v in self.query.items()}
        content_type = self.headers.get("content-type", "")
        if self.body and "x-www-form-urlencoded" in content_type:
            for key, values in parse_qs(self.body.decode(), keep_blank_values=True).items():
                out.setdefault(key, []).extend(values)
        return out

    def form_value(self, key: str, default: str | None = None) -> str | None:
        values = self.form.get(key)
        return values[0] if values else default

    def form_list(self, prefix: str) -> list[str]:
        """Values of ``Prefix.1``, ``Prefix.2`` ... in order."""
        found = []
        for key, values in self.form.items():
            match = re.fullmatch(re.escape(prefix) + r"\.(\d+)", key)
            if match:
                found.append((int(match.group(1)), values[0]))
        return [v for _, v in sorted(found)]

    def form_filters(self) -> dict[str, list[str]]:
        """EC2 ``Filter.N.Name`` / ``Filter.N.Value.M`` as ``{name: [values]}``."""
        filters: dict[str, list[str]] = {}
        index = 1
        while (name := self.form_value(f"Filter.{index}.Name")) is not None:
            filters.setdefault(name, []).extend(self.form_list(f"Filter.{index}.Value"))
            index += 1
        return filters


def parse_request(environ: Mapping[str, Any], body: bytes) -> ShimRequest:
    """Parse a WSGI environ (whose body was read into ``body``)."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    service, region, access_key = "", "us-east-1", "AKIAEXAMPLE"
    match = _SCOPE.search(headers.get("authorization", ""))
    if match:
        access_key, region, signing = match.group(1), match.group(2), match.group(3).lower()
        service = SIGNING_TO_SERVICE.get(signing, signing)
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
    parts = urlsplit(raw)
    query = parse_qs(parts.query or str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    return ShimRequest(
        service=service,
        region=region,
        account_id=account_for(access_key),
        access_key=access_key,
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        raw_path=parts.path or "/",
        query=query,
        headers=headers,
        body=body,
        environ=environ,
    )


def account_for(access_key: str) -> str:
    """The account an access key belongs to, as moto decides it (assumed-role keys map to their account)."""
    try:
        from moto.iam.models import get_account_id_from

        return str(get_account_id_from(access_key))
    except Exception:  # moto's lookup failing must not break routing
        return DEFAULT_ACCOUNT_ID


@dataclass
class ShimResponse:
    """An HTTP response; ``body`` is bytes ready for the wire."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(data: Any, status: int = 200, content_type: str = "application/json") -> ShimResponse:
    body = json.dumps(data, default=_default).encode()
    return ShimResponse(status, {"Content-Type": content_type, "x-amzn-RequestId": str(uuid.uuid4())}, body)


def amz_json_response(data: Any) -> ShimResponse:
    """A ``json``-protocol (``application/x-amz-json-1.1``) success response."""
    return json_response(data, content_type="application/x-amz-json-1.1")


def xml_response(operation: str, inner: str) -> ShimResponse:
    """An ``ec2``-protocol success response wrapping ``inner`` XML."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{operation}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>{uuid.uuid4()}</requestId>{inner}</{operation}Response>"
    )
    return ShimResponse(200, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode())


def xml_text(tag: str, value: Any) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def error_response(error: ShimError, protocol: str) -> ShimResponse:
    """``error`` in the wire format of ``protocol`` (what botocore's parsers expect)."""
    request_id = str(uuid.uuid4())
    if protocol == "ec2":
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{escape(error.code)}</Code>"
            f"<Message>{escape(error.message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return ShimResponse(error.status, {"Content-Type": "text/xml"}, body.encode())
    if protocol == "rest-json":
        return ShimResponse(
            error.status,
            {"Content-Type": "application/json", "x-amzn-ErrorType": error.code, "x-amzn-RequestId": request_id},
            json.dumps({"message": error.message}).encode(),
        )
    return ShimResponse(
        error.status,
        {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id},
        json.dumps({"__type": error.code, "message": error.message}).encode(),
    )


# --- rest-json through botocore's service model -------------------------------------------


@functools.cache
def service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def protocol_of(service: str) -> str:
    try:
        return str(service_model(service).metadata["protocol"])
    except Exception:
        return "json"


@dataclass(frozen=True)
class RestOperation:
    """A rest-json operation's route, compiled from botocore's ``requestUri``."""

    service: str
    name: str
    method: str
    pattern: re.Pattern[str]

    def match(self, request: ShimRequest) -> dict[str, str] | None:
        if request.method != self.method:
            return None
        found = self.pattern.fullmatch(request.raw_path)
        if found is None:
            return None
        return {key: unquote(value) for key, value in found.groupdict().items()}

    def parse(self, request: ShimRequest, uri_params: Mapping[str, str]) -> dict[str, Any]:
        """The operation's input as botocore member names (body, URI and query-string members)."""
        model = service_model(self.service).operation_model(self.name)
        out: dict[str, Any] = dict(request.json)
        shape = model.input_shape
        if shape is None:
            return out
        for member, member_shape in shape.members.items():
            location = member_shape.serialization.get("location")
            wire_name = member_shape.serialization.get("name", member)
            if location == "uri" and wire_name in uri_params:
                out[member] = uri_params[wire_name]
            elif location == "querystring" and wire_name in request.query:
                values = request.query[wire_name]
                out[member] = _coerce(member_shape.type_name, values)
        return out


def _coerce(type_name: str, values: list[str]) -> Any:
    if type_name == "list":
        return list(values)
    value = values[0]
    if type_name == "integer":
        return int(value)
    if type_name == "boolean":
        return value.lower() == "true"
    return value


def rest_operation(service: str, name: str) -> RestOperation:
    """Compile the route of a rest-json operation from botocore's model."""
    http = service_model(service).operation_model(name).http
    uri = http["requestUri"].split("?", 1)[0]
    regex = ""
    for piece in re.split(r"(\{[^}]+\})", uri):
        if piece.startswith("{"):
            label = piece[1:-1]
            greedy = label.endswith("+")
            label = label.rstrip("+")
            regex += f"(?P<{label}>.+)" if greedy else f"(?P<{label}>[^/]+)"
        else:
            regex += re.escape(piece)
    return RestOperation(service, name, http["method"].upper(), re.compile(regex))


# --- routes -------------------------------------------------------------------------------

Forward = Callable[..., ShimResponse]
"""Sends a request on to moto: ``forward()`` as received, or ``forward(body=b"...")`` changed."""

Handler = Callable[..., ShimResponse]


@dataclass(frozen=True)
class Route:
    """One operation the shim answers (or wraps) instead of moto.

    ``kind`` is ``rest`` (method and URI, rest-json services), ``target``
    (``X-Amz-Target``, json services) or ``action`` (``Action=``, query services).
    The handler is called as ``handler(request, params, forward)``.
    """

    service: str
    kind: str
    key: str
    handler: Handler
    rest: RestOperation | None = None

    def match(self, request: ShimRequest) -> dict[str, Any] | None:
        if request.service != self.service:
            return None
        if self.kind == "rest" and self.rest is not None:
            uri = self.rest.match(request)
            return None if uri is None else self.rest.parse(request, uri)
        if self.kind == "target":
            return dict(request.json) if request.target == self.key else None
        if self.kind == "action":
            return {} if request.form_value("Action") == self.key else None
        return None


def rest_route(service: str, operation: str, handler: Handler) -> Route:
    return Route(service, "rest", operation, handler, rest_operation(service, operation))


def target_route(service: str, operation: str, handler: Handler) -> Route:
    prefix = service_model(service).metadata["targetPrefix"]
    return Route(service, "target", f"{prefix}.{operation}", handler)


def action_route(service: str, operation: str, handler: Handler) -> Route:
    return Route(service, "action", operation, handler)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def paginate(items: list[Any], max_results: int | None, next_token: str | None) -> tuple[list[Any], str | None]:
    """Slice ``items`` the way AWS list calls page (an opaque offset token)."""
    start = int(next_token) if next_token and next_token.isdigit() else 0
    size = max_results or 100
    page = items[start : start + size]
    following = start + size
    return page, (str(following) if following < len(items) else None)
