"""Loading Kubernetes manifests and putting them in apply order (pure: reads files, nothing else).

``load`` accepts what a lab has at hand: a YAML/JSON string, a file, a folder, a
dict or a list of dicts. Multi-document YAML is split, empty documents are
skipped, ``List`` kinds (``v1/List``, ``DeploymentList``, ...) are flattened, and
a folder's files are read in name order, as ``kubectl apply -f <folder>`` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labkit.errors import Invalid, NotFound
from labkit.kube import refs

SUFFIXES = (".yaml", ".yml", ".json")

try:  # the C loader is several times faster on large CRDs
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Manifest:
    """One object to apply, with where it came from (for error messages).

    Attributes:
        obj: the object as a plain dict.
        source: ``file#n`` (n counts documents from 1) or ``<string>#n``.
    """

    obj: dict[str, Any]
    source: str = "<object>"

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns else None

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.obj.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def ref(self) -> str:
        """``deployment/vllm`` style, for messages."""
        return refs.display_ref(self.api_version, self.kind, self.name or "<unnamed>")


def parse_text(text: str, source: str = "<string>") -> list[Manifest]:
    """Parse YAML (or JSON) text holding one or more documents.

    Raises:
        Invalid: on a syntax error or a document that is not a Kubernetes object.
    """
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise Invalid(
            f"{source} is not valid YAML{where}: {problem}", "fix the syntax (indentation, quotes, colons)"
        ) from exc
    return list(_objects(docs, source))


def load_file(path: str | os.PathLike[str]) -> list[Manifest]:
    """Read one manifest file (``.yaml``, ``.yml`` or ``.json``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"no manifest file {p}", "check the path (it is relative to the working directory)") from exc
    except IsADirectoryError:
        return load_folder(p)
    if p.suffix == ".json":
        try:
            doc = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise Invalid(f"{p} is not valid JSON (line {exc.lineno}): {exc.msg}", "fix the syntax") from exc
        return list(_objects([doc], str(p)))
    return parse_text(text, str(p))


def load_folder(path: str | os.PathLike[str], *, recursive: bool = False) -> list[Manifest]:
    """Read every manifest file of a folder, in name order (``recursive`` like ``kubectl -R``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise NotFound(f"no manifest folder {folder}", "check the path (it is relative to the working directory)")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix in SUFFIXES)
    out: list[Manifest] = []
    for file in files:
        out.extend(load_file(file))
    return out


def looks_like_path(text: str) -> bool:
    """Whether a string names a file or folder rather than holding YAML."""
    stripped = text.strip()
    if "\n" in stripped or not stripped or stripped[0] in "{[":
        return False
    return Path(stripped).exists() or stripped.endswith(SUFFIXES) or ":" not in stripped


def load(source: Any, *, recursive: bool = False) -> list[Manifest]:
    """Load manifests from a path, YAML text, a dict, or a list of those / of :class:`Manifest`.

    A ``str`` that names an existing file or folder (or ends in ``.yaml``/``.yml``/``.json``)
    is read from disk; any other string is parsed as YAML.
    """
    if isinstance(source, Manifest):
        return [source]
    if isinstance(source, os.PathLike):
        p = Path(source)
        return load_folder(p, recursive=recursive) if p.is_dir() else load_file(p)
    if isinstance(source, str):
        if looks_like_path(source):
            return load(Path(source.strip()), recursive=recursive)
        return parse_text(source)
    if isinstance(source, Mapping):
        return list(_objects([dict(source)], "<object>"))
    if isinstance(source, Iterable):
        out: list[Manifest] = []
        for item in source:
            out.extend(load(item, recursive=recursive))
        return out
    raise Invalid(
        f"cannot load manifests from a {type(source).__name__}",
        "pass a path, YAML text, a dict, or a list of those",
    )


def _objects(docs: Iterable[Any], source: str) -> Iterable[Manifest]:
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"{source}#{index}"
        if not isinstance(doc, dict):
            raise Invalid(
                f"{where} is a {type(doc).__name__}, not a Kubernetes object",
                "each YAML document must be a mapping with apiVersion, kind and metadata",
            )
        kind = doc.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
            for item_index, item in enumerate(doc["items"], start=1):
                yield _checked(item, f"{where}.items[{item_index}]")
            continue
        yield _checked(doc, where)


def _checked(doc: Any, where: str) -> Manifest:
    if not isinstance(doc, dict):
        raise Invalid(f"{where} is not a Kubernetes object", "each item must be a mapping")
    missing = [f for f in ("apiVersion", "kind") if not isinstance(doc.get(f), str) or not doc.get(f)]
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        missing.append("metadata.name")
    if missing:
        raise Invalid(f"{where} has no {', '.join(missing)}", "every object needs apiVersion, kind and metadata.name")
    return Manifest(doc, where)


def _tier(m: Manifest) -> int:
    if m.kind == "Namespace" and refs.group_of(m.api_version) == "":
        return 0
    if m.kind == "CustomResourceDefinition":
        return 1
    if refs.scope_hint(m.api_version, m.kind) is False:
        return 2
    return 3


def apply_order(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Namespaces, then CRDs, then other cluster-scoped objects, then the rest; stable within each tier."""
    return sorted(manifests, key=_tier)


def delete_order(manifests: Iterable[Manifest]) -> list[Manifest]:
    """The reverse of :func:`apply_order`: workloads first, namespaces and CRDs last."""
    return list(reversed(apply_order(manifests)))
