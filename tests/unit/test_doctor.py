"""The doctor tells which targets work here and how to fix the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import doctor, settings


def test_doctor_on_a_bare_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, kind, kubectl, helm
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)  # and no AWS credentials
    report = doctor.diagnose(settings.load(environ={}, use_files=False))
    by_name = {t.target: t for t in report.targets}
    assert by_name["embedded"].usable
    assert not by_name["kind"].usable
    assert not by_name["eks"].usable  # tests run without AWS credentials
    assert report.default_ok
    text = doctor.format_text(report)
    assert "[usable] embedded" in text
    assert "[not usable] kind" in text
    assert "fix: install Docker" in text
    assert "fix: run `aws configure`" in text
    assert "selected target 'embedded' works here." in text


def test_doctor_fails_when_the_selected_target_does_not_work(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    report = doctor.diagnose(settings.load({"target": "kind"}, environ={}, use_files=False))
    assert not report.default_ok
    assert "does NOT work here" in doctor.format_text(report)


def test_doctor_sees_a_tool_and_its_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "kind"
    fake.write_text("#!/bin/sh\necho 'kind v0.30.0 go1.24 linux/amd64'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    report = doctor.diagnose(settings.load(environ={}, use_files=False))
    kind = next(t for t in report.targets if t.target == "kind")
    finding = next(f for f in kind.findings if f.name == "kind")
    assert finding.ok and "0.30.0" in finding.detail
