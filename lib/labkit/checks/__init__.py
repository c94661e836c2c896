"""Check cells: a clear pass/fail line for a person, an exception in CI.

Every ``check`` cell of a notebook calls one of these. Interactively a failed
check prints what is wrong and the hint, and the participant tries again; when
the lab runs headless (papermill, CI) it raises :class:`~labkit.errors.CheckFailed`
so the run fails at the right cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labkit import context
from labkit.errors import CheckFailed


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    title: str
    ok: bool
    detail: str = ""
    hint: str = ""

    def _ipython_display_(self) -> None:
        """Nothing: :func:`check` printed the result already (a check ending a cell would show it twice)."""

    def __str__(self) -> str:
        if self.ok:
            return f"PASS  {self.title}" + (f": {self.detail}" if self.detail else "")
        text = f"FAIL  {self.title}" + (f": {self.detail}" if self.detail else "")
        return text + (f"\n      hint: {self.hint}" if self.hint else "")


def check(title: str, ok: bool, *, detail: str = "", hint: str = "") -> CheckResult:
    """Report a check; raise :class:`CheckFailed` when it fails in a headless run."""
    result = CheckResult(title, bool(ok), detail, hint)
    print(result)
    if not result.ok and context.current().headless:
        raise CheckFailed(f"check failed: {title}" + (f" ({detail})" if detail else ""), hint or None)
    return result


def expect_equal(title: str, actual: Any, expected: Any, *, hint: str = "") -> CheckResult:
    """Check ``actual == expected`` and say both when they differ."""
    ok = actual == expected
    return check(title, ok, detail="" if ok else f"got {actual!r}, expected {expected!r}", hint=hint)


def expect_close(title: str, actual: float, expected: float, *, rel: float = 0.01, hint: str = "") -> CheckResult:
    """Check a number is within ``rel`` (relative) of the expected value."""
    try:
        ok = math.isclose(float(actual), float(expected), rel_tol=rel)
    except (TypeError, ValueError):
        ok = False
    detail = f"{actual!r}" if ok else f"got {actual!r}, expected {expected!r} (within {rel:.0%})"
    return check(title, ok, detail=detail, hint=hint)


__all__ = ["CheckResult", "check", "expect_close", "expect_equal"]
