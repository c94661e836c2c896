"""Test-wide isolation: no real AWS, no state outside a temp folder, headless by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live-kind", action="store_true", help="run tests that need Docker and kind")
    parser.addoption("--live-eks", action="store_true", help="run tests against a real AWS account (never in CI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "live_kind" in item.keywords and not config.getoption("--live-kind"):
            item.add_marker(pytest.mark.skip(reason="needs Docker and kind: opt in with --live-kind"))
        if "live_eks" in item.keywords and not config.getoption("--live-eks"):
            item.add_marker(pytest.mark.skip(reason="talks to a real AWS account: opt in with --live-eks"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("labkit-home")
    # Never reach a real account or the instance metadata service from tests.
    for key in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "LABKIT_CONFIG",
        "LABKIT_TARGET",
        "LABKIT_EMBEDDED_STATE",
    ):
        os.environ.pop(key, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = str(home / "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "aws-credentials")
    os.environ["LABKIT_HOME"] = str(home)
    os.environ["LABKIT_HEADLESS"] = "1"


@pytest.fixture
def repo_root() -> Path:
    return ROOT
