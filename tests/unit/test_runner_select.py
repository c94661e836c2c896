"""Choosing notebooks for `labkit run` and typing -p parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.notebooks import runner


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in ("week0/00-orientation.ipynb", "week1/01-cluster.ipynb", "week1/02-pod-identity.ipynb"):
        path = tmp_path / "solutions" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return tmp_path


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_no_selector_means_everything_in_order(tree: Path) -> None:
    assert names(runner.resolve([], tree)) == ["00-orientation.ipynb", "01-cluster.ipynb", "02-pod-identity.ipynb"]


def test_week_name_and_path_selectors(tree: Path) -> None:
    assert names(runner.resolve(["week1"], tree)) == ["01-cluster.ipynb", "02-pod-identity.ipynb"]
    assert names(runner.resolve(["00-orientation"], tree)) == ["00-orientation.ipynb"]
    assert names(runner.resolve(["pod-identity"], tree)) == ["02-pod-identity.ipynb"]
    path = tree / "solutions" / "week1" / "01-cluster.ipynb"
    assert runner.resolve([str(path)], tree) == [path]
    assert names(runner.resolve(["week1", "01-cluster"], tree)) == ["01-cluster.ipynb", "02-pod-identity.ipynb"]


def test_unknown_selector_suggests_close_names(tree: Path) -> None:
    with pytest.raises(ConfigError) as info:
        runner.resolve(["weak1"], tree)
    assert "no notebook matches 'weak1'" in info.value.what
    assert "week1" in (info.value.fix or "")


def test_parameters_are_typed_like_yaml_scalars() -> None:
    params = runner.parse_parameters([["seed", "3"], ["rate", "0.5"], ["fast", "true"], ["model", "llama-3-8b"]])
    assert params == {"seed": 3, "rate": 0.5, "fast": True, "model": "llama-3-8b"}
    with pytest.raises(ConfigError, match="identifier"):
        runner.parse_parameters([["not-valid", "1"]])
