"""Run reports read papermill's per-cell metadata and say where a lab stopped."""

from __future__ import annotations

import json

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labkit.notebooks import report as rp


def executed() -> nbformat.NotebookNode:
    injected = new_code_cell("target = 'embedded'", metadata={"tags": ["injected-parameters"]})
    ok = new_code_cell("x = 1", metadata={"papermill": {"status": "completed", "duration": 0.5}})
    failing = new_code_cell(
        "# compute\ny = 1 / 0",
        metadata={"tags": ["exercise"], "papermill": {"status": "failed", "duration": 0.25}},
    )
    failing.outputs = [
        new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=["\x1b[31mTrace\x1b[0m"])
    ]
    skipped = new_code_cell("open_browser()", metadata={"tags": ["skip-execution", "nbval-skip"]})
    pending = new_code_cell("z = 3", metadata={"papermill": {"status": "pending"}})
    return new_notebook(cells=[new_markdown_cell("# t"), injected, ok, failing, skipped, pending])


def test_cells_are_numbered_as_in_the_source_notebook() -> None:
    cells = rp.cell_results(executed())
    assert [(c.number, c.status) for c in cells] == [(2, "ok"), (3, "failed"), (4, "skipped"), (5, "not run")]
    failed = cells[1]
    assert failed.error == "ZeroDivisionError: division by zero"
    assert failed.traceback == "Trace"  # ANSI colours removed
    assert failed.summary == "y = 1 / 0"  # first line of code, not the comment
    assert failed.duration_s == 0.25


def test_stub_failures_are_recognised_only_in_exercise_cells() -> None:
    stub = rp.CellResult(1, "a", ["exercise"], "", "failed", error=f"NotImplementedError: {rp.STUB_MARK} (see)")
    assert rp.is_stub_failure(stub)
    assert not rp.is_stub_failure(rp.CellResult(1, "a", [], "", "failed", error=stub.error))
    assert not rp.is_stub_failure(rp.CellResult(1, "a", ["exercise"], "", "failed", error="NotImplementedError: x"))


def make_report() -> rp.RunReport:
    cells = rp.cell_results(executed())
    lab = rp.LabResult("week9/01-demo.ipynb", "s.ipynb", "o.ipynb", "failed", 1.5, cells)
    return rp.RunReport("embedded", "solutions", {"seed": 0}, "2026-01-01T00:00:00+00:00", 2.0, [lab])


def test_markdown_and_html_name_the_failed_cell() -> None:
    report = make_report()
    assert not report.ok
    md = rp.to_markdown(report)
    assert "SOME LABS FAILED" in md
    assert "cell 3: ZeroDivisionError: division by zero" in md
    assert "**Failed at cell 3**" in md
    page = rp.to_html(report)
    assert "<b>Failed at cell 3</b>" in page and "ZeroDivisionError" in page


def test_json_round_trips() -> None:
    data = json.loads(make_report().to_json())
    assert data["ok"] is False
    assert data["labs"][0]["cells"][1]["status"] == "failed"
