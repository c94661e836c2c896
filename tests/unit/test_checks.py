"""Check cells print PASS/FAIL for people and raise in headless runs."""

from __future__ import annotations

import pytest

import labkit
from labkit import checks
from labkit.errors import CheckFailed


def test_passing_check_prints_pass(capsys: pytest.CaptureFixture[str]) -> None:
    labkit.setup(headless=True)
    assert checks.expect_equal("answer", 42, 42).ok
    assert "PASS  answer" in capsys.readouterr().out


def test_failing_check_raises_when_headless() -> None:
    labkit.setup(headless=True)
    with pytest.raises(CheckFailed) as info:
        checks.expect_close("budget", 500.0, 411.25, hint="pay 70% of the baseline")
    assert "budget" in info.value.what and info.value.fix == "pay 70% of the baseline"


def test_failing_check_only_prints_when_interactive(capsys: pytest.CaptureFixture[str]) -> None:
    labkit.setup(headless=False)
    try:
        result = checks.expect_equal("answer", 41, 42, hint="add one")
    finally:
        labkit.setup(headless=True)
    assert not result.ok
    out = capsys.readouterr().out
    assert "FAIL  answer: got 41, expected 42" in out and "hint: add one" in out


def test_expect_close_rejects_non_numbers() -> None:
    labkit.setup(headless=False)
    try:
        assert not checks.expect_close("n", "abc", 1.0).ok
    finally:
        labkit.setup(headless=True)
