"""A broken lab fails the run, and the report names the cell and the error."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit import settings
from labkit.cli import main
from labkit.notebooks import runner, singlesource

pytestmark = pytest.mark.notebooks


@pytest.fixture
def broken_tree(tmp_path: Path) -> Path:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# A lab with a bug"),
            new_code_cell('target = "embedded"\nheadless = False\nseed = 0', metadata={"tags": ["parameters"]}),
            new_code_cell("import os\nprint(os.getcwd())"),
            new_code_cell("limits = {'gpu': 4}\nlimits['nvidia.com/gpu']"),
            new_code_cell("print('never reached')"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "solutions" / "week9" / "01-broken.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(singlesource.dumps(nb))
    return tmp_path


def test_failing_cell_is_named_in_the_report(broken_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build = broken_tree / "build"
    code = main(["run", "--root", str(broken_tree), "--build", str(build), "-p", "seed", "7", "--cell-timeout", "60"])
    assert code == 1
    out = capsys.readouterr().out
    assert "FAIL  week9/01-broken.ipynb" in out and "cell 4: KeyError: 'nvidia.com/gpu'" in out
    report = json.loads((build / "report.json").read_text())
    lab = report["labs"][0]
    assert report["ok"] is False and lab["status"] == "failed"
    statuses = [(c["number"], c["status"]) for c in lab["cells"]]
    assert statuses == [(2, "ok"), (3, "ok"), (4, "failed"), (5, "not run")]
    assert report["parameters"]["seed"] == 7 and report["parameters"]["headless"] is True
    assert "Failed at cell 4" in (build / "report.md").read_text()
    assert "KeyError" in (build / "report.html").read_text()
    executed = build / "executed" / "solutions" / "week9" / "01-broken.ipynb"
    assert executed.exists()
    cells = nbformat.read(executed, as_version=4).cells
    printed = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert str(broken_tree / "solutions" / "week9") in printed  # cwd is the notebook's folder


def test_cell_timeout_is_reported(broken_tree: Path) -> None:
    path = broken_tree / "solutions" / "week9" / "01-broken.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][3]["source"] = "import time\ntime.sleep(30)"
    path.write_text(json.dumps(nb))
    s = settings.load({"target": "embedded"}, use_files=False)
    report = runner.run(
        [path], s, options=runner.RunOptions(root=broken_tree, build_dir=broken_tree / "b", cell_timeout_s=2)
    )
    lab = report.labs[0]
    assert lab.status == "failed"
    assert lab.failed_cell is not None and lab.failed_cell.number == 4
    assert (
        lab.failed_cell.error == "CellTimeoutError: a cell ran longer than the per-cell timeout of 2s (--cell-timeout)"
    )
