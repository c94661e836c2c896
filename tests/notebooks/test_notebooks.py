"""Every committed notebook: rules, sync, solutions run clean, labs stop only at stubs.

This is the papermill analogue of ``nbgrader validate`` (solutions) and
``nbgrader validate --invert`` (labs). The runner is the same one `make labs` uses.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from labkit import settings
from labkit.notebooks import runner, singlesource

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = runner.resolve([], ROOT, "solutions")
LABS = runner.resolve([], ROOT, "labs")

pytestmark = pytest.mark.notebooks


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_notebooks() -> None:
    assert SOLUTIONS, "solutions/ holds no notebooks"


@pytest.mark.parametrize("path", SOLUTIONS + LABS, ids=ids(SOLUTIONS + LABS))
def test_notebook_follows_the_rules(path: Path) -> None:
    assert singlesource.lint(nbformat.read(path, as_version=4), str(path.relative_to(ROOT))) == []


def test_labs_are_in_sync_with_solutions() -> None:
    result = singlesource.build_labs(ROOT, check=True)
    assert result.ok, f"stale: {result.stale} orphans: {result.orphans} problems: {result.problems}"


def test_every_exercise_leaves_a_stub_in_the_lab() -> None:
    for path in SOLUTIONS:
        solution = nbformat.read(path, as_version=4)
        lab = nbformat.read(ROOT / "labs" / path.relative_to(ROOT / "solutions"), as_version=4)
        for s_cell, l_cell in zip(solution.cells, lab.cells, strict=True):
            if "exercise" in singlesource.tags(s_cell):
                assert "raise NotImplementedError" in l_cell.source, f"{path.name}: exercise without a stub"


@pytest.fixture(scope="module")
def embedded() -> settings.Settings:
    return settings.load({"target": "embedded"}, use_files=False)


def test_every_solution_runs_clean(embedded: settings.Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
    build = tmp_path_factory.mktemp("build-solutions")
    report = runner.run(SOLUTIONS, embedded, options=runner.RunOptions(root=ROOT, build_dir=build))
    failures = {
        lab.name: (lab.failed_cell.error if lab.failed_cell else lab.message)
        for lab in report.labs
        if lab.status != "passed"
    }
    assert not failures, f"solutions failed (see {build}/report.md): {failures}"
    assert (build / "report.md").exists() and (build / "report.html").exists()


def test_labs_fail_only_at_exercise_stubs(embedded: settings.Settings, tmp_path_factory) -> None:
    build = tmp_path_factory.mktemp("build-labs")
    report = runner.run(LABS, embedded, options=runner.RunOptions(root=ROOT, kind="labs", build_dir=build))
    bad = {
        lab.name: (lab.failed_cell.error if lab.failed_cell else lab.message)
        for lab in report.labs
        if lab.status == "failed"
    }
    assert not bad, f"labs failed somewhere other than a stub (see {build}/report.md): {bad}"
