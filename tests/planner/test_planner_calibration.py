"""The model stays within the stated tolerance of every published calibration point."""

from __future__ import annotations

from importlib import resources

import pytest

from labkit.planner import load_calibration
from labkit.planner.validation import checks, report

CHECKS = {c.point.id: c for c in checks()}


@pytest.mark.parametrize("point_id", sorted(CHECKS))
def test_published_point_within_tolerance(point_id: str) -> None:
    check = CHECKS[point_id]
    assert check.ok, f"{point_id}: model {check.model_value:.4g} vs published {check.point.published:g}"


def test_every_factor_and_point_states_its_source() -> None:
    cal = load_calibration()
    assert cal.default.source and cal.activation.source
    assert all(eff.source for eff in cal.per_gpu.values())
    assert all(link.source for link in cal.interconnects.values())
    assert all(p.source and 0 < p.tolerance <= 0.35 for p in cal.points)
    assert len({p.id for p in cal.points}) == len(cal.points)


def test_every_calibrated_gpu_has_points() -> None:
    cal = load_calibration()
    gpus_with_points = {p.gpu for p in cal.points}
    assert {"A10G", "L4", "A100-40GB", "H100", "H200"} <= gpus_with_points


def test_calibration_doc_shows_the_current_table() -> None:
    doc = resources.files("labkit.planner").joinpath("CALIBRATION.md").read_text(encoding="utf-8")
    assert report() in doc, "CALIBRATION.md is stale: paste labkit.planner.validation.report() into it"
