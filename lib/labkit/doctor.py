"""``labkit doctor``: which targets work on this machine, and the fix for what is missing."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata

from labkit import targets
from labkit.settings import Settings
from labkit.targets.base import TargetStatus

PACKAGES = ("kubernetes", "boto3", "botocore", "moto", "aiohttp", "papermill", "ipykernel")
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class DoctorReport:
    """Everything the doctor found."""

    python: str
    python_ok: bool
    packages: dict[str, str]
    targets: list[TargetStatus]
    default_target: str

    @property
    def default_ok(self) -> bool:
        return self.python_ok and any(t.usable for t in self.targets if t.target == self.default_target)


def diagnose(settings: Settings) -> DoctorReport:
    """Probe the machine; creates nothing and calls no cloud API."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "missing"
    return DoctorReport(
        python=platform.python_version(),
        python_ok=sys.version_info[:2] >= MIN_PYTHON,
        packages=packages,
        targets=targets.diagnose_all(settings),
        default_target=settings.target,
    )


def format_text(report: DoctorReport) -> str:
    """The report as text for a terminal or a notebook cell."""
    lines = [
        f"python {report.python}" + ("" if report.python_ok else "  <- needs 3.11 or newer"),
        "packages: " + ", ".join(f"{k} {v}" for k, v in report.packages.items()),
        "",
    ]
    for status in report.targets:
        mark = "usable" if status.usable else "not usable"
        default = "  (selected)" if status.target == report.default_target else ""
        lines.append(f"[{mark}] {status.target}: {status.description}{default}")
        for f in status.findings:
            tick = "ok " if f.ok else ("!! " if f.required else "-- ")
            lines.append(f"    {tick}{f.name}: {f.detail}")
            if not f.ok and f.fix:
                lines.append(f"       fix: {f.fix}")
    lines.append("")
    lines.append(
        f"selected target '{report.default_target}' "
        + ("works here." if report.default_ok else "does NOT work here; see the fixes above.")
    )
    return "\n".join(lines)
