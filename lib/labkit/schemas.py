"""Validate the manifests the kit writes against upstream schemas.

Custom resources (Karpenter, Cilium, Gateway API, Kyverno, Argo CD, Prometheus
Operator, KEDA, EKS Auto Mode) are checked against the ``openAPIV3Schema`` of the
pinned upstream CRD files listed in ``infra/schemas/sources.yaml``; built-in kinds
with ``kubernetes-validate`` (an extra of the test environment). The files are
upstream release artefacts, not committed: :func:`sync` fetches them into
``<home>/schemas``, or ``schemas_dir`` (``LABKIT_SCHEMAS_DIR``) names a folder with
the same layout.

What plain JSON Schema cannot check: CEL rules (``x-kubernetes-validations``) and
defaults applied before ``required`` (see the SOURCES notes); a passing manifest can
still be refused by a real API server for those.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from labkit.errors import ConfigError, Unreachable
from labkit.settings import Settings

SOURCES = Path(__file__).resolve().parents[2] / "infra" / "schemas" / "sources.yaml"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{ref}/{path}"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Source:
    """One pinned upstream schema file."""

    folder: str
    file: str
    repo: str
    ref: str
    path: str
    sha256: str
    version: str
    group: str
    kinds: tuple[str, ...]
    alternate: bool = False

    @property
    def url(self) -> str:
        return RAW_URL.format(repo=self.repo, ref=self.ref, path=self.path)

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.file}"


@cache
def sources() -> tuple[tuple[Source, ...], str]:
    """The pinned files and the Kubernetes version built-ins are validated at."""
    data = yaml.load(SOURCES.read_text(), Loader=_Loader)
    files = tuple(Source(**{**f, "kinds": tuple(f["kinds"])}) for f in data["files"])
    return files, str(data["kubernetes_version"])


def folder_for(settings: Settings) -> Path:
    """Where schemas are read from: ``schemas_dir`` if set, else the sync cache."""
    return settings.schemas_dir or settings.home / "schemas"


def missing(folder: Path) -> list[Source]:
    """Pinned files absent from ``folder``."""
    return [s for s in sources()[0] if not (folder / s.relpath).is_file()]


def _sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def sync(settings: Settings, fetch: Callable[[str], bytes] | None = None) -> list[Path]:
    """Fetch every pinned file into the cache (skipping ones already there); returns what was written.

    Raises:
        Unreachable: a file could not be downloaded.
        ConfigError: a downloaded file does not match its pinned checksum.
    """
    target = settings.home / "schemas"
    get = fetch or _download
    written = []
    for source in sources()[0]:
        path = target / source.relpath
        if path.is_file() and _sha16(path.read_bytes()) == source.sha256:
            continue
        data = get(source.url)
        if _sha16(data) != source.sha256:
            raise ConfigError(
                f"{source.url} does not match its pinned SHA-256 ({source.sha256}...)",
                "the upstream file changed; update infra/schemas/sources.yaml deliberately",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # pinned https URLs only
            return bytes(response.read())
    except OSError as exc:
        raise Unreachable(
            f"cannot download {url}: {exc}",
            "check the network, or set schemas_dir (LABKIT_SCHEMAS_DIR) to a folder of the files",
        ) from exc


class SchemaSet:
    """Schemas for custom resources, loaded lazily from a folder laid out like the sync cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._validators: dict[tuple[str, str, str], Any] = {}

    def _source(self, group: str, kind: str, variant: str | None) -> Source | None:
        for source in sources()[0]:
            if source.group != group or kind not in source.kinds:
                continue
            if (variant is None and not source.alternate) or source.folder == variant:
                return source
        return None

    def _validator(self, api_version: str, kind: str, variant: str | None) -> Any:
        from jsonschema import Draft202012Validator

        group, _, version = api_version.rpartition("/")
        key = (api_version, kind, variant or "")
        if key in self._validators:
            return self._validators[key]
        source = self._source(group, kind, variant)
        if source is None:
            return None
        path = self.folder / source.relpath
        if not path.is_file():
            raise ConfigError(
                f"schema file {path} is missing", "run `labkit schemas sync`, or set schemas_dir (LABKIT_SCHEMAS_DIR)"
            )
        schema = _schema_from_file(path, version, kind)
        if schema is None:
            raise ConfigError(
                f"{source.relpath} does not serve {api_version} {kind}",
                f"write one of the versions {source.relpath} serves",
            )
        validator = Draft202012Validator(schema)
        self._validators[key] = validator
        return validator

    def validate(self, obj: dict[str, Any], variant: str | None = None) -> list[str]:
        """Problems with one custom resource (empty when valid); unknown kinds are an error."""
        validator = self._validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), variant)
        if validator is None:
            return [f"no pinned schema for {obj.get('apiVersion')} {obj.get('kind')}"]
        return [_describe(e) for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))]


def _schema_from_file(path: Path, version: str, kind: str) -> dict[str, Any] | None:
    if path.suffix == ".json":  # EKS Auto Mode: a JSON Schema, metadata is a $ref to a file we do not have
        schema = json.loads(path.read_text())
        schema.get("properties", {})["metadata"] = {"type": "object"}
        return schema
    crd = yaml.load(path.read_text(), Loader=_Loader)
    for served in crd["spec"]["versions"]:
        if served["name"] == version and crd["spec"]["names"]["kind"] == kind:
            schema = dict(served["schema"]["openAPIV3Schema"])
            schema.get("properties", {}).pop("metadata", None)  # ObjectMeta is validated by the API server
            return schema
    return None


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


def validate_builtin(obj: dict[str, Any], kubernetes_version: str | None = None) -> list[str]:
    """Problems with one built-in object per kubernetes-validate (strict: unknown fields are errors)."""
    import kubernetes_validate

    version = kubernetes_version or sources()[1]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(root)"
        return [f"{where}: {exc.message}"]
    return []


BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
        "admissionregistration.k8s.io",
        "certificates.k8s.io",
        "node.k8s.io",
        "flowcontrol.apiserver.k8s.io",
    }
)


def is_builtin(obj: dict[str, Any]) -> bool:
    """Whether a kind is served by Kubernetes itself (no CRD needed)."""
    return str(obj.get("apiVersion", "")).rpartition("/")[0] in BUILTIN_GROUPS


def validate_all(
    objs: Iterable[dict[str, Any]], schema_set: SchemaSet | None, variant: str | None = None
) -> dict[str, list[str]]:
    """Validate manifests of any kind; returns ``{"Kind/name": [problems]}`` for the invalid ones."""
    problems: dict[str, list[str]] = {}
    for obj in objs:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name', '?')}"
        if is_builtin(obj):
            found = validate_builtin(obj)
        elif schema_set is None:
            found = [f"no schemas loaded for {obj.get('apiVersion')}: run `labkit schemas sync`"]
        else:
            found = schema_set.validate(obj, variant)
        if found:
            problems[name] = found
    return problems
