"""Every AWS operation the kit's code calls was exercised against the embedded AWS in this run.

The kit calls AWS only through ``AwsSession.call``/``pages`` with literal service and
operation names, so the operations can be read from the source; the test session's
boto3 hook recorded which ones actually went over the wire (through botocore's
parameter validation). Runs last in this folder (file name) and only when the whole
folder was selected.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import labkit.aws

SOURCE = Path(labkit.aws.__file__).parent
CALL = re.compile(r"\.(?:call|pages)\(\s*\"([a-z0-9-]+)\",\s*\"([a-z_]+)\"")
LISTED = re.compile(r"list_of\(\s*\"([a-z_]+)\"")  # teardown's EKS list helper


def kit_operations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in SOURCE.glob("*.py"):
        text = path.read_text()
        found |= set(CALL.findall(text))
        found |= {("eks", op) for op in LISTED.findall(text)}
    return found


def test_every_kit_operation_ran_against_the_embedded_aws(
    request: pytest.FixtureRequest, recorded_calls: set[tuple[str, str]]
) -> None:
    here = Path(__file__).parent
    wanted = {p.name for p in here.glob("test_aws_*.py")}
    selected = {Path(str(item.fspath)).name for item in request.session.items}
    if not wanted <= selected or request.config.getoption("keyword") or request.session.testsfailed:
        pytest.skip("needs the whole tests/aws folder to run first, without failures")
    operations = kit_operations()
    assert len(operations) > 60, "the source scan found the kit's calls"
    missing = sorted(f"{s}.{o}" for s, o in operations - recorded_calls)
    assert missing == [], f"never exercised against the embedded AWS: {missing}"
