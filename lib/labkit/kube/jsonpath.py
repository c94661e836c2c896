"""The subset of ``kubectl`` JSONPath that waits and checks need (pure).

Supported: ``{.a.b}``, ``{.a['b.c']}``, escaped dots (``{.metadata.labels.app\\.kubernetes\\.io/name}``),
indexes (``[0]``, ``[-1]``), wildcards (``[*]``), and filters (``[?(@.type=="Ready")]`` with
``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, or existence ``[?(@.field)]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.errors import Invalid

_FILTER = re.compile(r"^@((?:\.[^=!<>\s]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


@dataclass(frozen=True)
class _Step:
    kind: str  # "key" | "index" | "all" | "filter"
    key: str = ""
    index: int = 0
    test: Callable[[Any], bool] | None = None


def _unwrap(expr: str) -> str:
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    return text


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "==":
        return left == right or stringify(left) == stringify(right)
    if op == "!=":
        return not _compare(left, "==", right)
    try:
        a, b = float(left), float(right)
    except (TypeError, ValueError):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _filter(body: str, expr: str) -> Callable[[Any], bool]:
    match = _FILTER.match(body)
    if not match:
        raise Invalid(f"unsupported JSONPath filter [?({body})] in {expr}", 'use e.g. [?(@.type=="Ready")]')
    path, op, value = match.groups()
    steps = _parse(path or "", expr)

    def test(item: Any) -> bool:
        found = _walk([item], steps)
        if op is None:
            return bool(found)
        return any(_compare(v, op, _literal(value)) for v in found)

    return test


def _parse(text: str, expr: str) -> list[_Step]:
    steps: list[_Step] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            if text[i : i + 2] == "..":
                raise Invalid(f"recursive descent (..) is not supported in {expr}", "spell out the full path")
            i += 1
            key = []
            while i < len(text) and text[i] not in ".[":
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                key.append(text[i])
                i += 1
            if key:
                steps.append(_Step("key", key="".join(key)))
        elif ch == "[":
            end = _closing(text, i, expr)
            body = text[i + 1 : end].strip()
            i = end + 1
            if body == "*":
                steps.append(_Step("all"))
            elif body.startswith("?(") and body.endswith(")"):
                steps.append(_Step("filter", test=_filter(body[2:-1], expr)))
            elif body[:1] in "'\"":
                steps.append(_Step("key", key=str(_literal(body))))
            else:
                try:
                    steps.append(_Step("index", index=int(body)))
                except ValueError as exc:
                    raise Invalid(f"unsupported JSONPath index [{body}] in {expr}", "use [0], [*] or a filter") from exc
        else:
            raise Invalid(f"cannot read JSONPath {expr!r} at {text[i:]!r}", "write it like {.status.phase}")
    return steps


def _closing(text: str, start: int, expr: str) -> int:
    depth, quote = 0, ""
    for j in range(start, len(text)):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return j
    raise Invalid(f"unbalanced [ in JSONPath {expr!r}", "close every [ with ]")


def _walk(values: list[Any], steps: list[_Step]) -> list[Any]:
    for step in steps:
        out: list[Any] = []
        for v in values:
            if step.kind == "key":
                if isinstance(v, dict) and step.key in v:
                    out.append(v[step.key])
            elif step.kind == "index":
                if isinstance(v, list) and -len(v) <= step.index < len(v):
                    out.append(v[step.index])
            elif step.kind == "all":
                if isinstance(v, list):
                    out.extend(v)
                elif isinstance(v, dict):
                    out.extend(v.values())
            elif step.test is not None and isinstance(v, list):
                out.extend(item for item in v if step.test(item))
        values = out
    return values


def compile_path(expr: str) -> Callable[[Any], list[Any]]:
    """Compile ``expr``; the result maps an object to the list of values the path selects.

    Raises:
        Invalid: for syntax outside the supported subset.
    """
    steps = _parse(_unwrap(expr), expr)
    return lambda obj: _walk([obj], steps)


def find(obj: Any, expr: str) -> list[Any]:
    """The values ``expr`` selects in ``obj`` (empty when nothing matches)."""
    return compile_path(expr)(obj)


def stringify(value: Any) -> str:
    """A selected value as ``kubectl -o jsonpath`` prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    return str(value)
