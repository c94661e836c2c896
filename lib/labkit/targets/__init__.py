"""Targets: where the platform runs (``embedded``, ``kind``, ``eks``) behind one interface.

Lab code calls :func:`connect` (through :func:`labkit.current`) and gets a
:class:`~labkit.targets.base.Platform`; it never needs to know which target it is.
"""

from __future__ import annotations

from labkit.errors import ConfigError
from labkit.settings import TARGETS, Settings
from labkit.targets.base import Finding, Platform, Target, TargetStatus
from labkit.targets.eks import EksTarget
from labkit.targets.embedded import EmbeddedTarget, connect_or_start
from labkit.targets.kind import KindTarget

_REGISTRY: dict[str, type[Target]] = {"embedded": EmbeddedTarget, "kind": KindTarget, "eks": EksTarget}
assert set(_REGISTRY) == set(TARGETS)


def get(name: str) -> Target:
    """The target called ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ConfigError(f"unknown target '{name}'", f"choose one of: {', '.join(TARGETS)}") from None


def connect(settings: Settings) -> Platform:
    """Connect to the platform of ``settings.target``; on ``embedded`` start one if none runs."""
    if settings.target == "embedded":
        return connect_or_start(settings)
    return get(settings.target).connect(settings)


def up(settings: Settings) -> Platform:
    return get(settings.target).up(settings)


def down(settings: Settings) -> list[str]:
    return get(settings.target).down(settings)


def diagnose_all(settings: Settings) -> list[TargetStatus]:
    """Every target's status on this machine (nothing is created)."""
    return [get(name).diagnose(settings) for name in TARGETS]


__all__ = ["Finding", "Platform", "Target", "TargetStatus", "connect", "diagnose_all", "down", "get", "up"]
