"""How the AWS CLI v2 prints a response: ``--query`` (JMESPath), then ``json`` or ``text`` output (pure).

JSON is indented by four spaces with timestamps in ISO 8601, as the CLI's default
``cli_timestamp_format = iso8601`` prints them. Text output follows the CLI's
rules: a dictionary prints its scalar values on one tab-separated line in key
order, then each nested list or dictionary on lines of its own, led by the upper-cased
key; a list of scalars prints on one line.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import jmespath

OUTPUTS = ("json", "text")


def jsonable(value: Any) -> Any:
    """A response with timestamps as ISO 8601 text and blobs as base64 (what the CLI prints)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "read"):  # a streaming body
        return base64.b64encode(value.read()).decode()
    return value


def apply_query(response: Any, query: str | None) -> Any:
    """``response`` filtered by a JMESPath ``--query`` (``None``: unchanged)."""
    data = jsonable(response)
    return data if not query else jmespath.search(query, data)


def render(data: Any, output: str = "json") -> list[str]:
    """The lines the CLI prints for ``data`` (already queried) in ``output`` format."""
    if output == "text":
        return _text(data)
    if data == {}:
        return []  # an operation with an empty response prints nothing
    return json.dumps(data, indent=4, ensure_ascii=False).splitlines()


def _scalar(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _text(data: Any, identifier: str | None = None) -> list[str]:
    if isinstance(data, dict):
        return _text_dict(data, identifier)
    if isinstance(data, list):
        if all(not isinstance(v, (dict, list)) for v in data):
            cells = [_scalar(v) for v in data]
            if identifier:
                cells.insert(0, identifier.upper())
            return ["\t".join(cells)] if cells else []
        lines: list[str] = []
        for item in data:
            lines += _text(item, identifier)
        return lines
    return [_scalar(data)]


def _text_dict(data: dict[str, Any], identifier: str | None) -> list[str]:
    scalars: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in sorted(data.items()):
        if isinstance(value, (dict, list)):
            nested.append((key, value))
        else:
            scalars.append(_scalar(value))
    lines: list[str] = []
    if scalars:
        if identifier:
            scalars.insert(0, identifier.upper())
        lines.append("\t".join(scalars))
    for key, value in nested:
        lines += _text(value, key)
    return lines
