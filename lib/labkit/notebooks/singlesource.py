"""Single-source notebooks: ``solutions/`` is the source, ``labs/`` is generated.

A solution region sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
lines in a code cell. In the participant's copy the region becomes a stub at the
marker's indentation that raises ``NotImplementedError``. The rules every
committed notebook must follow are checked by :func:`lint`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB_MESSAGE = "Exercise: replace this line with your solution (see the instructions above)"
KNOWN_TAGS = frozenset({"parameters", "skip-execution", "nbval-skip", "nbval-ignore-output", "exercise", "check"})
REQUIRED_PARAMETERS = ("target", "headless", "seed")

_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\s*$")
_END_LINE = re.compile(r"^[ \t]*### END SOLUTION\s*$")


class MarkerError(ValueError):
    """Solution markers are unbalanced or nested."""


def stub_source(source: str) -> str:
    """Replace every solution region in ``source`` by an indentation-preserving stub."""
    out: list[str] = []
    indent: str | None = None
    for number, line in enumerate(source.split("\n"), start=1):
        begin = _BEGIN_LINE.match(line)
        if begin:
            if indent is not None:
                raise MarkerError(f"line {number}: nested {BEGIN}")
            indent = begin.group("indent")
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f'{indent}raise NotImplementedError("{STUB_MESSAGE}")')
            continue
        if _END_LINE.match(line):
            if indent is None:
                raise MarkerError(f"line {number}: {END} without {BEGIN}")
            indent = None
            continue
        if indent is None:
            out.append(line)
    if indent is not None:
        raise MarkerError(f"{BEGIN} is never closed")
    return "\n".join(out)


def has_solution(source: str) -> bool:
    return any(_BEGIN_LINE.match(line) for line in source.split("\n"))


def strip_outputs(nb: nbformat.NotebookNode) -> bool:
    """Remove outputs and execution counts in place; returns whether anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell["outputs"] = []
        cell["execution_count"] = None
    for key in ("papermill", "widgets"):
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    return changed


def make_lab(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The participant copy of a solution notebook (pure: the input is not changed)."""
    lab = copy.deepcopy(solution)
    strip_outputs(lab)
    for cell in lab.cells:
        if cell.cell_type == "code" and has_solution(cell.source):
            cell.source = stub_source(cell.source)
    return lab


def dumps(nb: nbformat.NotebookNode) -> str:
    """The canonical text of a notebook, as committed."""
    return nbformat.writes(nb) + "\n"


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def lint(nb: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """Problems with a committed notebook (empty when it follows the rules)."""
    problems: list[str] = []
    parameter_cells = [c for c in nb.cells if "parameters" in tags(c)]
    if len(parameter_cells) != 1:
        problems.append(f"{name}: needs exactly one cell tagged 'parameters', found {len(parameter_cells)}")
    else:
        source = parameter_cells[0].source
        for param in REQUIRED_PARAMETERS:
            if not re.search(rf"^{param}\s*[:=]", source, re.MULTILINE):
                problems.append(f"{name}: the parameters cell does not set '{param}'")
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index}"
        unknown = set(tags(cell)) - KNOWN_TAGS
        if unknown:
            problems.append(f"{where}: unknown tags {sorted(unknown)}; known: {sorted(KNOWN_TAGS)}")
        if ("skip-execution" in tags(cell)) != ("nbval-skip" in tags(cell)):
            problems.append(f"{where}: use 'skip-execution' and 'nbval-skip' together")
        if cell.cell_type == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                problems.append(f"{where}: has outputs; commit notebooks without outputs (`labkit build-labs`)")
            try:
                solution = has_solution(cell.source)
                stub_source(cell.source)
            except MarkerError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if solution and "exercise" not in tags(cell):
                problems.append(f"{where}: has a solution region but no 'exercise' tag")
            if "exercise" in tags(cell) and not solution and STUB_MESSAGE not in cell.source:
                problems.append(f"{where}: tagged 'exercise' but has no {BEGIN} region (or, in labs/, no stub)")
    return problems


@dataclass
class BuildResult:
    """What :func:`build_labs` wrote or would write."""

    written: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.stale or self.orphans or self.problems)


def build_labs(root: Path, *, check: bool = False) -> BuildResult:
    """Generate ``labs/`` from ``solutions/`` under ``root``.

    With ``check``, nothing is written: out-of-date labs, solutions committed with
    outputs, and labs with no solution are reported in the result instead.
    """
    solutions, labs = root / "solutions", root / "labs"
    result = BuildResult()
    sources = sorted(solutions.rglob("*.ipynb"))
    expected = set()
    for source in sources:
        if ".ipynb_checkpoints" in source.parts:
            continue
        rel = source.relative_to(solutions)
        target = labs / rel
        expected.add(target)
        text = source.read_text()
        solution = nbformat.reads(text, as_version=4)
        clean = copy.deepcopy(solution)
        if strip_outputs(clean) or dumps(clean) != text:
            if check:
                result.stale.append(source)
            else:
                source.write_text(dumps(clean))
                result.written.append(source)
        result.problems += lint(clean, f"solutions/{rel}")
        wanted = dumps(make_lab(clean))
        current = target.read_text() if target.exists() else None
        if current != wanted:
            if check:
                result.stale.append(target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(wanted)
                result.written.append(target)
    for existing in sorted(labs.rglob("*.ipynb")) if labs.exists() else []:
        if existing not in expected and ".ipynb_checkpoints" not in existing.parts:
            result.orphans.append(existing)
    return result
