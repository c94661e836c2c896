"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Pure functions over JSON values; they never change their inputs. Server-side apply lives
in :mod:`.apply`.
"""

from __future__ import annotations

import json
from typing import Any

from labkit.errors import Invalid

from .schema import Schema

#: Media types of each patch type, as the API server names them in errors.
PATCH_MEDIA_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def _invalid(message: str, fix: str | None = None, *, status: int = 422) -> Invalid:
    err = Invalid(message, fix, status=status, reason="Invalid" if status == 422 else "BadRequest")
    err.details = {}  # type: ignore[attr-defined]
    return err


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def decode_body(body: Any) -> Any:
    """A patch body as JSON values: dicts and lists pass through; str or bytes are parsed as JSON (YAML if not).

    Raises:
        Invalid: 400 BadRequest when the body is neither.
    """
    if isinstance(body, dict | list):
        return body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            pass
        import yaml

        try:
            return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise _invalid(f"error decoding patch: {exc}", "send a JSON or YAML document", status=400) from None
    raise _invalid(f"error decoding patch: unsupported body type {type(body).__name__}", status=400)


# --------------------------------------------------------------------------------------------------- JSON patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _invalid(f'invalid JSON pointer "{pointer}": must start with "/"')
    return [_unescape(t) for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, op: str, path: str, *, allow_end: bool = False) -> int:
    if token == "-" and allow_end:
        return len(container)
    try:
        i = int(token)
    except ValueError:
        raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": invalid index') from None
    if i < 0 or i > len(container) or (i == len(container) and not allow_end):
        raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": index out of range')
    return i


def _parent(doc: Any, tokens: list[str], op: str, path: str) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, op, path)]
        else:
            raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return cur


def _get(doc: Any, path: str, op: str) -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, op, path)]
    raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, op, path, allow_end=True), value)
    else:
        raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        raise _invalid(f"{op} operation does not apply: cannot remove the whole document")
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, op, path)]
    else:
        raise _invalid(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def json_patch(doc: Any, operations: Any, *, in_place: bool = False) -> Any:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test) to a copy of ``doc``.

    With ``in_place`` the caller's ``doc`` (already a private copy) is changed instead.

    Raises:
        Invalid: 422 when an operation does not apply or a ``test`` fails; 400 for a malformed patch.
    """
    operations = decode_body(operations)
    if not isinstance(operations, list):
        raise _invalid("json patch must be a list of operations", 'send e.g. [{"op": "replace", ...}]', status=400)
    if not in_place:
        doc = _copy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise _invalid(f"invalid JSON patch operation {operation!r}: missing op", status=400)
        op = operation["op"]
        path = operation.get("path")
        if not isinstance(path, str):
            raise _invalid(f"{op} operation is missing path", status=400)
        if op == "add":
            doc = _add(doc, path, _copy(_value(operation)))
        elif op == "remove":
            doc = _remove(doc, path)
        elif op == "replace":
            _get(doc, path, "replace")
            tokens = _split_pointer(path)
            if not tokens:
                doc = _copy(_value(operation))
            else:
                parent = _parent(doc, tokens, "replace", path)
                if isinstance(parent, list):
                    parent[_index(parent, tokens[-1], "replace", path)] = _copy(_value(operation))
                else:
                    parent[tokens[-1]] = _copy(_value(operation))
        elif op in ("move", "copy"):
            source = operation.get("from")
            if not isinstance(source, str):
                raise _invalid(f"{op} operation is missing from", status=400)
            value = _copy(_get(doc, source, op))
            if op == "move":
                if path.startswith(source + "/"):
                    raise _invalid(f'move operation does not apply: "from" {source} is an ancestor of {path}')
                doc = _remove(doc, source, op)
            doc = _add(doc, path, value, op)
        elif op == "test":
            have = _get(doc, path, "test")
            if have != _value(operation) or type(have) is not type(_value(operation)):
                raise _invalid(f"testing value {path} failed: test failed")
        else:
            raise _invalid(f"Unexpected kind: {op}", "use add, remove, replace, move, copy or test", status=400)
    return doc


def _value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise _invalid(f"{operation['op']} operation is missing value", status=400)
    return operation["value"]


# -------------------------------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any, *, in_place: bool = False) -> Any:
    """Apply an RFC 7386 JSON merge patch; ``null`` removes a key, lists are replaced.

    Returns a new value; with ``in_place`` the caller's ``target`` (a private copy) is reused.
    """
    patch = decode_body(patch)
    if not isinstance(patch, dict):
        return _copy(patch)
    result = (target if in_place else dict(target)) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key), value, in_place=in_place)
        else:
            result[key] = _copy(value)
    return result


# ------------------------------------------------------------------------------------------ strategic merge patch

_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge(original: Any, patch: Any, schema: Schema) -> Any:
    """Apply a strategic merge patch as ``kubectl patch`` (default type) and ``kubectl apply`` send it.

    Lists with a merge key (containers by ``name``, volumeMounts by ``mountPath``, ports by
    ``containerPort``, conditions by ``type``...) are merged item by item; other lists are
    replaced. Directives: ``$patch: replace|delete|merge``, ``$retainKeys``,
    ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``.

    Raises:
        Invalid: an item lacks its list's merge key or a directive is unknown.
    """
    patch = decode_body(patch)
    if not isinstance(patch, dict):
        raise _invalid("strategic merge patch must be a JSON object", status=400)
    merged = _smp_map(original if isinstance(original, dict) else {}, patch, schema)
    return {} if merged is None else merged


def _strip(value: Any) -> Any:
    """A patch value with directives removed, as it is stored when nothing merges into it."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get(_DIRECTIVE) in ("replace", "delete"))]
    return value


def _smp_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any] | None:
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip(patch)
    if directive not in (None, "merge"):
        raise _invalid(f"Unknown patch type: {directive!r}", "use $patch: replace, delete or merge", status=400)
    result = dict(original)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN):
            continue
        if key.startswith(_ORDER):
            if isinstance(value, list):
                orders[key[len(_ORDER) :]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            name = key[len(_DELETE_PRIMITIVE) :]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [v for v in result[name] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = schema.child(key)
        current = result.get(key)
        if isinstance(value, dict):
            if isinstance(current, dict):
                merged = _smp_map(current, value, child)
            else:
                merged = None if value.get(_DIRECTIVE) == "delete" else _strip(value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current if isinstance(current, list) else [], value, child, key)
        else:
            result[key] = value
    retain = patch.get(_RETAIN)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _reorder(result[name], order, schema.child(name).patch_key)
    return result


def _smp_list(original: list[Any], patch: list[Any], schema: Schema, name: str) -> list[Any]:
    replace = [p for p in patch if isinstance(p, dict) and p.get(_DIRECTIVE) == "replace"]
    if replace:
        return [_strip(p) for p in patch if not (isinstance(p, dict) and p.get(_DIRECTIVE) == "replace")]
    if "merge" not in schema.patch_strategy:
        return _strip(patch)
    key = schema.patch_key
    if not key:
        result = list(original)
        for value in patch:
            if value not in result:
                result.append(value)
        return result
    result = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise _invalid(f"{name}: list items must be objects with the merge key {key!r}", status=400)
        if key not in item:
            raise _invalid(
                f"map: {_go_map(item)} does not contain declared merge key: {key}",
                f"give every item of {name} its {key!r}",
                status=400,
            )
        positions = [i for i, have in enumerate(result) if isinstance(have, dict) and have.get(key) == item[key]]
        if item.get(_DIRECTIVE) == "delete":
            result = [have for i, have in enumerate(result) if i not in positions]
            continue
        if positions:
            merged = _smp_map(result[positions[0]], item, schema.item())
            if merged is None:
                result.pop(positions[0])
            else:
                result[positions[0]] = merged
        else:
            result.append(_strip(item))
    return result


def _reorder(items: list[Any], order: list[Any], key: str) -> list[Any]:
    def ident(v: Any) -> Any:
        return json.dumps(v.get(key) if key and isinstance(v, dict) else v, sort_keys=True)

    rank = {ident(v): i for i, v in enumerate(order)}
    return sorted(items, key=lambda v: rank.get(ident(v), len(rank)))


def _go_map(item: dict[str, Any]) -> str:
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(item.items())) + "]"
