"""The embedded AWS's data tables (``data/*.yaml``): prices, EC2 quotas, the EKS catalogue.

Each table carries the date it describes (``as_of``) and where its numbers come from
(``source``), so a lab can show them next to what the embedded APIs return.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"


@functools.cache
def load(name: str) -> dict[str, Any]:
    """Read ``data/<name>.yaml`` (cached; treat the result as read-only)."""
    with open(DATA_DIR / f"{name}.yaml") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{name}.yaml must hold a mapping")
    return data


def prices() -> dict[str, Any]:
    return load("prices")


def quotas() -> dict[str, Any]:
    return load("quotas")


def eks() -> dict[str, Any]:
    return load("eks")
