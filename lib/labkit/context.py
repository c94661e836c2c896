"""The current lab's context: validated settings, headless flag and seed.

A notebook's first code cell calls :func:`labkit.setup` with its papermill
parameters; everything else (checks, progress, platform connection) reads the
context from here instead of taking the same three arguments everywhere.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from labkit import settings as settings_mod
from labkit.settings import Settings


def _env_headless() -> bool:
    return os.environ.get("LABKIT_HEADLESS", "").lower() in ("1", "true", "yes") or os.environ.get("CI") == "true"


@dataclass
class LabContext:
    """What a lab runs with. ``platform`` is connected lazily by :meth:`platform`."""

    settings: Settings
    headless: bool = False
    seed: int = 0
    lab: str = "lab"
    _platform: Any = field(default=None, repr=False)

    def platform(self) -> Any:
        """Connect to (or start) this lab's target platform; see :mod:`labkit.targets`."""
        if self._platform is None:
            from labkit import targets

            self._platform = targets.connect(self.settings)
        return self._platform


_current: LabContext | None = None


def current() -> LabContext:
    """The context set by :func:`setup`, or one from defaults and the environment."""
    global _current
    if _current is None:
        _current = LabContext(settings=settings_mod.load(), headless=_env_headless())
    return _current


def setup(
    *, target: str | None = None, headless: bool | None = None, seed: int = 0, lab: str = "lab", **overrides: Any
) -> LabContext:
    """Validate settings for a lab and make them current. Creates nothing.

    Args:
        target: ``embedded``, ``kind`` or ``eks``; ``None`` keeps config/env.
        headless: ``True`` under papermill/CI; ``None`` reads ``LABKIT_HEADLESS``/``CI``.
        seed: seeds Python's ``random`` so simulated runs repeat.
        lab: the lab's name, used in resource tags.
        **overrides: any other :class:`~labkit.settings.Settings` field.
    """
    global _current
    loaded = settings_mod.load({"target": target, **overrides})
    random.seed(seed)
    _current = LabContext(
        settings=loaded, headless=_env_headless() if headless is None else bool(headless), seed=seed, lab=lab
    )
    return _current
