"""Server-side apply and ``metadata.managedFields`` (FieldsV1), as the API server keeps them.

Every write records which manager owns which fields. An ``Update`` (create, PUT, JSON,
merge or strategic patch) takes the fields it changed away from other managers; an
``Apply`` owns exactly the fields of its configuration, conflicts with other owners whose
value differs (unless forced), and removes fields it applied before and no longer does
when nobody else owns them.

A field path is a tuple of FieldsV1 elements: ``f:<name>`` for a field, ``k:{json}`` for an
item of a keyed list, ``v:<json>`` for a value of a set list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import Conflict

from .schema import Schema

Path = tuple[str, ...]
_ITEM = object()  # value recorded for a list item's own path (the "." of FieldsV1)
_METADATA_FIELDS = ("labels", "annotations", "finalizers", "ownerReferences")


@dataclass
class ManagedEntry:
    """One element of ``metadata.managedFields``."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)
    subresource: str = ""
    encoded: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def ident(self) -> tuple[str, str, str]:
        """Who this entry belongs to: manager, operation and subresource."""
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        """The entry as the API serves it."""
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields_v1(),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def fields_v1(self) -> dict[str, Any]:
        """The FieldsV1 tree of ``fields`` (encoded once per entry; treat as read-only)."""
        if self.encoded is None:
            self.encoded = encode_fields(self.fields)
        return self.encoded


def entries_from_json(items: list[dict[str, Any]] | None) -> list[ManagedEntry]:
    """Parse ``metadata.managedFields`` (entries that are not FieldsV1 are dropped)."""
    out: list[ManagedEntry] = []
    for item in items or []:
        if not isinstance(item, dict) or not item.get("manager"):
            continue
        out.append(
            ManagedEntry(
                manager=item["manager"],
                operation=item.get("operation", "Update"),
                api_version=item.get("apiVersion", ""),
                time=item.get("time", ""),
                fields=decode_fields(item.get("fieldsV1") or {}),
                subresource=item.get("subresource", ""),
            )
        )
    return out


def entries_to_json(entries: list[ManagedEntry]) -> list[dict[str, Any]]:
    """``metadata.managedFields`` for these entries."""
    return [e.to_json() for e in entries if e.fields]


# ----------------------------------------------------------------------------------------------------- FieldsV1


def encode_fields(paths: set[Path]) -> dict[str, Any]:
    """Encode a set of paths as a FieldsV1 tree (``{"f:spec": {"f:replicas": {}}}``)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})

    def finish(node: dict[str, Any], prefix: Path) -> dict[str, Any]:
        out: dict[str, Any] = {".": {}} if node and prefix in paths else {}
        for element, child in node.items():
            out[element] = finish(child, (*prefix, element))
        return out

    return finish(root, ())


def decode_fields(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """Decode a FieldsV1 tree into the set of paths it names."""
    out: set[Path] = set()
    for element, child in tree.items():
        if element == ".":
            out.add(prefix)
            continue
        path = (*prefix, element)
        if not child:
            out.add(path)
        else:
            out |= decode_fields(child, path)
    return out


def _item_element(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps({k: item.get(k) for k in keys if k in item}, sort_keys=True, separators=(",", ":"))


def _value_element(value: Any) -> str:
    return "v:" + json.dumps(value, sort_keys=True, separators=(",", ":"))


def path_string(path: Path) -> str:
    """A path the way conflict messages print it: ``.spec.template.spec.containers[name="web"].image``."""
    out = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            pairs = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)


# --------------------------------------------------------------------------------------------------- flattening


def _walk(value: Any, schema: Schema, prefix: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value and not schema.atomic:
        for k, v in value.items():
            _walk(v, schema.child(k), (*prefix, f"f:{k}"), out)
    elif isinstance(value, list) and value and schema.list_type == "map":
        item_schema = schema.item()
        for item in value:
            if not isinstance(item, dict):
                out[prefix] = value
                return
            item_path = (*prefix, _item_element(item, schema.list_keys))
            out[item_path] = _ITEM
            for k, v in item.items():
                _walk(v, item_schema.child(k), (*item_path, f"f:{k}"), out)
    elif isinstance(value, list) and value and schema.list_type == "set":
        for item in value:
            out[(*prefix, _value_element(item))] = item
    elif value is not None:
        out[prefix] = value


def flatten(obj: dict[str, Any] | None, schema: Schema, scope: str) -> dict[Path, Any]:
    """The owned-field paths of an object and their values.

    Args:
        obj: the object (or None for nothing).
        schema: its schema.
        scope: ``main`` (everything but status), ``all`` (types without a status subresource)
            or ``status`` (status only).
    """
    out: dict[Path, Any] = {}
    if not obj:
        return out
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            if scope == "status" or not isinstance(value, dict):
                continue
            meta_schema = schema.child("metadata")
            for name in _METADATA_FIELDS:
                if name in value and value[name] not in (None, {}, []):
                    _walk(value[name], meta_schema.child(name), ("f:metadata", f"f:{name}"), out)
            continue
        if (key == "status") != (scope == "status") and scope != "all":
            continue
        _walk(value, schema.child(key), (f"f:{key}",), out)
    return out


def _changed(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    changed = {p for p, v in new.items() if p not in old or (v is not _ITEM and old[p] != v)}
    removed = set(old) - set(new)
    return changed, removed


# ------------------------------------------------------------------------------------------------------ updates


def record_update(
    entries: list[ManagedEntry],
    *,
    manager: str,
    api_version: str,
    now: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    schema: Schema,
    scope: str,
    subresource: str = "",
) -> list[ManagedEntry]:
    """Give ``manager`` (operation Update) the fields a write changed; returns the new entries."""
    old_flat = flatten(old, schema, scope)
    new_flat = flatten(new, schema, scope)
    changed, removed = _changed(old_flat, new_flat)
    if not changed and not removed:
        return entries
    taken = changed | removed
    out: list[ManagedEntry] = []
    mine: ManagedEntry | None = None
    for entry in entries:
        if entry.ident == (manager, "Update", subresource):
            fields = (entry.fields | changed) - removed
            mine = ManagedEntry(entry.manager, "Update", api_version, now, fields, subresource)
            if fields == entry.fields:
                mine.encoded = entry.encoded
            out.append(mine)
            continue
        remaining = entry.fields - taken
        if remaining:
            out.append(entry if remaining == entry.fields else _with_fields(entry, remaining))
    if mine is None and changed:
        out.append(ManagedEntry(manager, "Update", api_version, now, set(changed), subresource))
    return [e for e in out if e.fields]


def _with_fields(entry: ManagedEntry, fields: set[Path]) -> ManagedEntry:
    return ManagedEntry(entry.manager, entry.operation, entry.api_version, entry.time, fields, entry.subresource)


# -------------------------------------------------------------------------------------------------------- apply


def apply_config(
    entries: list[ManagedEntry],
    *,
    manager: str,
    api_version: str,
    now: str,
    live: dict[str, Any],
    config: dict[str, Any],
    schema: Schema,
    scope: str,
    force: bool,
    subresource: str = "",
    describe: str = "",
) -> tuple[dict[str, Any], list[ManagedEntry]]:
    """Apply a configuration to the live object.

    Args:
        entries: the live object's managed fields.
        manager: the field manager applying.
        api_version: apiVersion of the configuration.
        now: RFC 3339 time for the entry.
        live: the live object (empty for apply-creates).
        config: the applied configuration.
        schema: the type's schema.
        scope: ``main``, ``all`` or ``status`` (see :func:`flatten`).
        force: take conflicting fields instead of failing.
        subresource: ``status`` when applying to the status subresource.
        describe: how to name the object in errors (``deployments.apps "web"``).

    Returns:
        The merged object and the new managed-field entries.

    Raises:
        Conflict: 409 naming each conflicting field and its manager, unless ``force``.
    """
    ident = (manager, "Apply", subresource)
    cfg_flat = flatten(config, schema, scope)
    live_flat = flatten(live, schema, scope)
    others = [e for e in entries if e.ident != ident]
    previous = next((e.fields for e in entries if e.ident == ident), set())

    conflicts: dict[int, list[Path]] = {}
    for path, value in cfg_flat.items():
        if value is _ITEM or path not in live_flat or live_flat[path] == value:
            continue
        for i, entry in enumerate(others):
            if path in entry.fields:
                conflicts.setdefault(i, []).append(path)
    if conflicts and not force:
        raise _conflict_error(conflicts, others, describe)
    if conflicts:
        taken = {p for paths in conflicts.values() for p in paths}
        others = [_with_fields(e, e.fields - taken) for e in others]
        others = [e for e in others if e.fields]

    merged = _merge(live, config, schema)
    owned_by_others: set[Path] = set().union(*(e.fields for e in others)) if others else set()
    applied = set(cfg_flat)
    stale = previous - applied - owned_by_others
    if stale:
        merged = _remove_paths(merged, stale, owned_by_others | applied, schema)

    mine = ManagedEntry(manager, "Apply", api_version, now, applied, subresource)
    if applied == previous:
        mine.encoded = next((e.encoded for e in entries if e.ident == ident), None)
    result = [*others, mine] if applied else others
    # keep the live order of entries (apply entry where it was)
    order = {e.ident: i for i, e in enumerate(entries)}
    result.sort(key=lambda e: order.get(e.ident, len(order)))
    return merged, result


def _conflict_error(conflicts: dict[int, list[Path]], others: list[ManagedEntry], describe: str) -> Conflict:
    total = sum(len(p) for p in conflicts.values())
    parts: list[str] = []
    causes: list[dict[str, str]] = []
    for i, paths in conflicts.items():
        entry = others[i]
        who = f'"{entry.manager}"'
        if entry.api_version:
            who += f" using {entry.api_version}"
        if entry.subresource:
            who += f' with subresource "{entry.subresource}"'
        shown = sorted(path_string(p) for p in paths)
        if total == 1:
            parts.append(f"conflict with {who}: {shown[0]}")
        else:
            parts.append(f"conflicts with {who}:\n" + "\n".join(f"- {s}" for s in shown))
        causes += [
            {"type": "FieldManagerConflict", "message": f'conflict with "{entry.manager}"', "field": s} for s in shown
        ]
    plural = "conflict" if total == 1 else "conflicts"
    message = f"Apply failed with {total} {plural}: " + "\n".join(parts)
    err = Conflict(
        message,
        "re-apply with force (kubectl apply --server-side --force-conflicts) to take these fields, "
        "or leave them out of your manifest",
        status=409,
        reason="Conflict",
    )
    err.details = {"causes": causes}  # type: ignore[attr-defined]
    if describe:
        err.details["name"] = describe  # type: ignore[attr-defined]
    return err


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _merge(live: Any, config: Any, schema: Schema) -> Any:
    if isinstance(config, dict) and isinstance(live, dict) and not schema.atomic:
        out = dict(live)
        for k, v in config.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(live.get(k), v, schema.child(k))
        return out
    if isinstance(config, list) and isinstance(live, list):
        if schema.list_type == "map":
            keys = schema.list_keys
            out_list = list(live)
            for item in config:
                if not isinstance(item, dict):
                    return _copy(config)
                ident = tuple(item.get(k) for k in keys)
                for i, have in enumerate(out_list):
                    if isinstance(have, dict) and tuple(have.get(k) for k in keys) == ident:
                        out_list[i] = _merge(have, item, schema.item())
                        break
                else:
                    out_list.append(_copy(item))
            return out_list
        if schema.list_type == "set":
            out_list = list(live)
            for item in config:
                if item not in out_list:
                    out_list.append(_copy(item))
            return out_list
    return _copy(config)


def _remove_paths(obj: dict[str, Any], stale: set[Path], kept: set[Path], schema: Schema) -> dict[str, Any]:
    obj = _copy(obj)
    for path in sorted(stale, key=len):
        if any(len(k) > len(path) and k[: len(path)] == path for k in kept):
            continue  # someone still owns something inside it
        if len(path) >= 2 and path[-2].startswith("k:") and path[-1][2:] in json.loads(path[-2][2:]):
            continue  # a key field of a list item stays as long as the item does
        _delete_path(obj, path, schema)
    return obj


def _delete_path(obj: Any, path: Path, schema: Schema) -> None:
    parent: Any = obj
    node_schema = schema
    for element in path[:-1]:
        parent, node_schema = _step(parent, element, node_schema)
        if parent is None:
            return
    last = path[-1]
    kind, _, rest = last.partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in want.items()))]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def _step(node: Any, element: str, schema: Schema) -> tuple[Any, Schema]:
    kind, _, rest = element.partition(":")
    if kind == "f":
        if isinstance(node, dict):
            return node.get(rest), schema.child(rest)
        return None, schema
    if kind == "k" and isinstance(node, list):
        want = json.loads(rest)
        for item in node:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                return item, schema.item()
    return None, schema
