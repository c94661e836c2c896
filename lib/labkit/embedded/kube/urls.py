"""Routes of the embedded API server: which URL paths exist and what a resource path means.

:func:`parse_api_path` turns a path under ``/api`` or ``/apis`` into an :class:`ApiPath`
(group, version, resource, namespace, name, subresource, legacy watch), a pure function;
:func:`route_table` binds the fixed paths to the server's handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Subresources of a Namespace (core group): /api/v1/namespaces/{name}/{sub}.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class ApiPath:
    """What a path under ``/api/v1`` or ``/apis/{group}/{version}`` addresses.

    ``plural`` is empty for the group-version discovery document itself.
    """

    group: str
    version: str
    plural: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False

    @property
    def is_discovery(self) -> bool:
        """Whether the path is the group-version resource list (``/api/v1``, ``/apis/apps/v1``)."""
        return not self.plural

    @property
    def is_collection(self) -> bool:
        """Whether the path names a collection rather than one object."""
        return bool(self.plural) and self.name is None


@dataclass(frozen=True)
class GroupPath:
    """``/apis/{group}``: the group's discovery document."""

    group: str


def parse_api_path(path: str) -> ApiPath | GroupPath | None:
    """Parse a path under ``/api`` or ``/apis``; None when it cannot address anything.

    ``/api`` and ``/apis`` themselves are served by their own routes and give None here.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api":
        if len(parts) < 2:
            return None
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis":
        if len(parts) == 2:
            return GroupPath(parts[1])
        if len(parts) < 3:
            return None
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
        if not rest:
            return None
    n = len(rest)
    if n == 0:
        return ApiPath(group, version)
    if rest[0] == "namespaces" and n >= 3 and not (group == "" and n == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        ns, rest = rest[1], rest[2:]
        n = len(rest)
        if n > 3:
            return None
        return ApiPath(
            group,
            version,
            rest[0],
            namespace=ns,
            name=rest[1] if n > 1 else None,
            subresource=rest[2] if n > 2 else None,
            legacy_watch=watch,
        )
    if n > 3:
        return None
    return ApiPath(
        group,
        version,
        rest[0],
        name=rest[1] if n > 1 else None,
        subresource=rest[2] if n > 2 else None,
        legacy_watch=watch,
    )


class Handlers(Protocol):
    """The handlers :func:`route_table` binds (implemented by the server)."""

    async def handle_version(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_root(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_health(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_core_versions(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_group_list(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_openapi_v3(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_openapi_v2(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_api(self, request: web.Request) -> web.StreamResponse: ...
    async def handle_unknown(self, request: web.Request) -> web.StreamResponse: ...


def route_table(h: Handlers) -> list[web.RouteDef]:
    """Every route of the server, bound to ``h``'s handlers; unknown paths get a 404 Status."""
    return [
        web.get("/", h.handle_root),
        web.get("/version", h.handle_version),
        web.get("/version/", h.handle_version),
        web.get("/healthz", h.handle_health),
        web.get("/livez", h.handle_health),
        web.get("/readyz", h.handle_health),
        web.get("/api", h.handle_core_versions),
        web.get("/api/", h.handle_core_versions),
        web.get("/apis", h.handle_group_list),
        web.get("/apis/", h.handle_group_list),
        web.get("/openapi/v3", h.handle_openapi_v3),
        web.get("/openapi/v3/{tail:.+}", h.handle_openapi_v3),
        web.get("/openapi/v2", h.handle_openapi_v2),
        web.route("*", "/api/{tail:.+}", h.handle_api),
        web.route("*", "/apis/{tail:.+}", h.handle_api),
        web.route("*", "/{tail:.*}", h.handle_unknown),
    ]
