"""The labkit command line, run as a participant would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def labkit(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_lists_the_commands() -> None:
    out = labkit("--help").stdout
    for command in ("doctor", "run", "build-labs", "up", "down", "env"):
        assert command in out


def test_bad_settings_exit_2_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--target", "ekss"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'ekss'" in err and "did you mean 'eks'?" in err
    assert main(["env", "--region", "us-west2"]) == 2
    assert "malformed AWS region 'us-west2'" in capsys.readouterr().err


def test_doctor_exit_code_follows_the_selected_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    assert "selected target 'embedded' works here." in capsys.readouterr().out


def test_build_labs_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-labs", "--check"]) == 0
    assert "in sync" in capsys.readouterr().out


def test_env_without_a_running_platform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--cluster", "nothing-here"]) == 2
    assert "no embedded platform is running" in capsys.readouterr().err


def test_embedded_up_env_down(tmp_path: Path) -> None:
    env = {"LABKIT_HOME": str(tmp_path), "LABKIT_CLUSTER_NAME": "clitest"}
    up = labkit("up", env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert "embedded platform is up" in up.stdout
        again = labkit("up", env=env)  # idempotent: connects to the running one
        assert again.returncode == 0
        exports = labkit("env", env=env).stdout
        assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in exports
        assert "export AWS_ACCESS_KEY_ID=testing" in exports
        # `eval "$(labkit env)"` then a real AWS call against the embedded account.
        script = (
            f'eval "$({sys.executable} -m labkit.cli env)" && {sys.executable} -c "import boto3; '
            "print(boto3.client('sts').get_caller_identity()['Account'])\""
        )
        shell = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
        )
        assert shell.stdout.strip() == "123456789012", shell.stderr
    finally:
        down = labkit("down", env=env)
    assert down.returncode == 0 and "removed: embedded platform" in down.stdout
    assert labkit("down", env=env).stdout.strip() == "nothing was running"
    assert labkit("env", env=env).returncode == 2
