"""Single-source notebooks: stubs, lint rules, build and --check."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit.notebooks import singlesource as ss

PARAMS = 'target = "embedded"\nheadless = False\nseed = 0'


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    params = new_code_cell(PARAMS, metadata={"tags": ["parameters"]})
    return new_notebook(cells=[params, *cells], metadata={"kernelspec": {"name": "python3", "display_name": "P"}})


def test_stub_keeps_indentation_and_surrounding_code() -> None:
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION\n\nprint(f(2))"
    stubbed = ss.stub_source(source)
    assert stubbed.splitlines() == [
        "def f(x):",
        "    # YOUR CODE HERE",
        f'    raise NotImplementedError("{ss.STUB_MESSAGE}")',
        "",
        "print(f(2))",
    ]
    compile(stubbed, "<lab>", "exec")  # still valid Python


def test_several_regions_in_one_cell() -> None:
    source = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n  ### BEGIN SOLUTION\n  c = 3\n  ### END SOLUTION"
    out = ss.stub_source(source)
    assert "a = 1" not in out and "c = 3" not in out and "b = 2" in out
    assert out.count("NotImplementedError") == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
    ],
)
def test_unbalanced_markers_are_errors(source: str, message: str) -> None:
    with pytest.raises(ss.MarkerError, match=message):
        ss.stub_source(source)


def test_make_lab_is_pure_and_strips_outputs() -> None:
    cell = new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", metadata={"tags": ["exercise"]})
    cell.outputs = [nbformat.v4.new_output("stream", text="hi")]
    cell.execution_count = 3
    solution = notebook(cell)
    lab = ss.make_lab(solution)
    assert "x = 1" in solution.cells[1].source  # input unchanged
    assert "NotImplementedError" in lab.cells[1].source
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None
    assert lab.cells[1].id == solution.cells[1].id


def test_lint_accepts_a_good_notebook() -> None:
    good = notebook(new_code_cell("### BEGIN SOLUTION\nx=1\n### END SOLUTION", metadata={"tags": ["exercise"]}))
    assert ss.lint(good) == []


def test_lint_reports_every_rule() -> None:
    bad = new_notebook(
        cells=[
            new_markdown_cell("# no parameters cell"),
            new_code_cell("x = 1", metadata={"tags": ["raises-exception"]}),
            new_code_cell("y = 2", metadata={"tags": ["skip-execution"]}),
            new_code_cell("### BEGIN SOLUTION\nz = 3\n### END SOLUTION"),
            new_code_cell("w = 4", metadata={"tags": ["exercise"]}),
        ]
    )
    bad.cells[1].outputs = [nbformat.v4.new_output("stream", text="1")]
    problems = "\n".join(ss.lint(bad, "nb"))
    assert "exactly one cell tagged 'parameters'" in problems
    assert "unknown tags ['raises-exception']" in problems
    assert "has outputs" in problems
    assert "'skip-execution' and 'nbval-skip' together" in problems
    assert "solution region but no 'exercise' tag" in problems
    assert "tagged 'exercise' but has no" in problems


def test_parameters_cell_must_set_target_headless_and_seed() -> None:
    nb = notebook()
    nb.cells[0].source = 'target = "embedded"'
    problems = ss.lint(nb)
    assert any("'headless'" in p for p in problems) and any("'seed'" in p for p in problems)


def _tree(root: Path) -> Path:
    solution = notebook(new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", metadata={"tags": ["exercise"]}))
    path = root / "solutions" / "week9" / "01-demo.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(ss.dumps(solution))
    return path


def test_build_then_check_is_clean(tmp_path: Path) -> None:
    _tree(tmp_path)
    built = ss.build_labs(tmp_path)
    assert built.written == [tmp_path / "labs" / "week9" / "01-demo.ipynb"]
    assert ss.build_labs(tmp_path, check=True).ok
    assert ss.build_labs(tmp_path).written == []  # idempotent


def test_check_finds_a_lab_edited_out_of_sync(tmp_path: Path) -> None:
    _tree(tmp_path)
    ss.build_labs(tmp_path)
    lab = tmp_path / "labs" / "week9" / "01-demo.ipynb"
    data = json.loads(lab.read_text())
    data["cells"][1]["source"] = "x = 'edited by hand'"
    lab.write_text(json.dumps(data))
    result = ss.build_labs(tmp_path, check=True)
    assert result.stale == [lab]
    assert not result.ok


def test_check_finds_solutions_with_outputs_and_orphan_labs(tmp_path: Path) -> None:
    source = _tree(tmp_path)
    ss.build_labs(tmp_path)
    nb = nbformat.read(source, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1")]
    nbformat.write(nb, source)
    orphan = tmp_path / "labs" / "week9" / "02-removed.ipynb"
    orphan.write_text(ss.dumps(notebook()))
    result = ss.build_labs(tmp_path, check=True)
    assert source in result.stale and result.orphans == [orphan]
    ss.build_labs(tmp_path)  # build strips the solution's outputs
    assert not nbformat.read(source, as_version=4).cells[1].outputs
