"""Check raw JSON responses of the embedded AWS against botocore's output shapes.

botocore's parsers silently drop members a model does not know, so a misspelt field
in the shim would vanish without a test noticing; this checker reads the raw body.
"""

from __future__ import annotations

import json
from typing import Any


def undeclared(shape: Any, value: Any, path: str = "") -> list[str]:
    """Paths of keys in ``value`` that ``shape`` does not declare (recursively)."""
    problems: list[str] = []
    if shape is None:
        return problems
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        wire = {m.serialization.get("name", name): m for name, m in shape.members.items()}
        for key, item in value.items():
            if key not in wire:
                problems.append(f"{path}.{key}")
            else:
                problems += undeclared(wire[key], item, f"{path}.{key}")
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            problems += undeclared(shape.member, item, f"{path}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            problems += undeclared(shape.value, item, f"{path}.{key}")
    return problems


def capture(client: Any) -> list[tuple[Any, dict[str, Any]]]:
    """Record (operation model, raw JSON body) of every successful call ``client`` makes."""
    seen: list[tuple[Any, dict[str, Any]]] = []

    def hook(response_dict: Any = None, event_name: str = "", **_: Any) -> None:
        if not response_dict or response_dict.get("status_code", 500) >= 300:
            return
        body = response_dict.get("body") or b""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return
        operation = client.meta.service_model.operation_model(event_name.rsplit(".", 1)[-1])
        seen.append((operation, data))

    client.meta.events.register("response-received", hook)
    return seen


def check_all(client: Any, seen: list[tuple[Any, dict[str, Any]]]) -> list[str]:
    """Undeclared fields across every recorded response of ``client``."""
    problems = []
    for operation_model, body in seen:
        model = operation_model
        if model is None:
            continue
        problems += [f"{model.name}{p}" for p in undeclared(model.output_shape, body)]
    return problems
