"""Run reports: per lab and per cell, status and duration, as Markdown, HTML and JSON (pure)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import nbformat

STUB_MARK = "Exercise: replace this line with your solution"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HIDDEN_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


@dataclass
class CellResult:
    """One source cell of an executed notebook (numbered from 1, as a person counts)."""

    number: int
    cell_id: str
    tags: list[str]
    summary: str
    status: str  # ok | failed | skipped | not run
    duration_s: float = 0.0
    error: str = ""
    traceback: str = ""


@dataclass
class LabResult:
    """One notebook's run."""

    name: str
    source: str
    output: str
    status: str  # passed | failed | exercise (a lab stopped at an unsolved stub)
    duration_s: float
    cells: list[CellResult] = field(default_factory=list)
    message: str = ""

    @property
    def failed_cell(self) -> CellResult | None:
        return next((c for c in self.cells if c.status == "failed"), None)


@dataclass
class RunReport:
    """A whole ``labkit run``."""

    target: str
    kind: str  # solutions | labs
    parameters: dict[str, Any]
    started_at: str
    duration_s: float = 0.0
    labs: list[LabResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(lab.status != "failed" for lab in self.labs)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=2)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _summary(source: str) -> str:
    for raw in source.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line[:80]
    first = source.strip().splitlines()
    return first[0][:80] if first else ""


def cell_results(executed: nbformat.NotebookNode) -> list[CellResult]:
    """Per-cell results read from papermill's metadata in an executed notebook."""
    results: list[CellResult] = []
    number = 0
    for cell in executed.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if _HIDDEN_TAGS & set(tags):
            continue
        number += 1
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        state = meta.get("status", "pending")
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if "skip-execution" in tags:
            status = "skipped"
        elif state == "failed" or error is not None:
            status = "failed"
        elif state == "completed":
            status = "ok"
        else:
            status = "not run"
        result = CellResult(
            number=number,
            cell_id=str(cell.get("id", "")),
            tags=tags,
            summary=_summary(cell.source),
            status=status,
            duration_s=round(float(meta.get("duration") or 0.0), 3),
        )
        if error is not None:
            result.error = f"{error.get('ename', 'Error')}: {strip_ansi(str(error.get('evalue', '')))}"
            result.traceback = strip_ansi("\n".join(error.get("traceback", [])))[-4000:]
        results.append(result)
    return results


def is_stub_failure(cell: CellResult) -> bool:
    """Whether a failed cell stopped at an unsolved exercise stub (expected in ``labs/``)."""
    return "exercise" in cell.tags and cell.error.startswith("NotImplementedError") and STUB_MARK in cell.error


_ICON = {"passed": "✅", "failed": "❌", "exercise": "✏️", "ok": "ok", "skipped": "skip", "not run": "-"}


def to_markdown(report: RunReport) -> str:
    """The report as Markdown: a summary table, then per-lab cell tables and failures."""
    lines = [
        f"# labkit run: {report.kind} on `{report.target}`",
        "",
        f"Started {report.started_at}, {report.duration_s:.1f} s in all; "
        f"{'all labs passed' if report.ok else 'SOME LABS FAILED'}.",
        "",
        "| lab | status | duration (s) | where it stopped |",
        "|---|---|---:|---|",
    ]
    for lab in report.labs:
        failed = lab.failed_cell
        where = f"cell {failed.number}: {failed.error}" if failed else ""
        lines.append(
            f"| {lab.name} | {_ICON[lab.status]} {lab.status} | {lab.duration_s:.1f} | {_md_escape(where[:160])} |"
        )
    for lab in report.labs:
        lines += ["", f"## {lab.name}", "", f"Source `{lab.source}`, executed copy `{lab.output}`.", ""]
        if lab.message:
            lines += [lab.message, ""]
        lines += ["| cell | tags | status | duration (s) | code |", "|---:|---|---|---:|---|"]
        for cell in lab.cells:
            lines.append(
                f"| {cell.number} | {', '.join(cell.tags)} | {cell.status} | {cell.duration_s:.3f} | "
                f"`{_md_escape(cell.summary)}` |"
            )
        failed = lab.failed_cell
        if failed and lab.status == "failed":
            lines += [
                "",
                f"**Failed at cell {failed.number}** (id `{failed.cell_id}`): {failed.error}",
                "",
                "```",
                failed.traceback.strip(),
                "```",
            ]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def to_html(report: RunReport) -> str:
    """The report as a self-contained HTML page."""
    esc = html.escape
    colour = {"passed": "#1a7f37", "failed": "#cf222e", "exercise": "#9a6700"}
    rows = "".join(
        f"<tr><td><a href='#{esc(lab.name)}'>{esc(lab.name)}</a></td>"
        f"<td style='color:{colour[lab.status]}'>{esc(lab.status)}</td><td>{lab.duration_s:.1f}</td>"
        f"<td>{esc(f'cell {lab.failed_cell.number}: {lab.failed_cell.error}' if lab.failed_cell else '')}</td></tr>"
        for lab in report.labs
    )
    sections = []
    for lab in report.labs:
        cells = "".join(
            f"<tr class='{esc(c.status.replace(' ', '-'))}'><td>{c.number}</td><td>{esc(', '.join(c.tags))}</td>"
            f"<td>{esc(c.status)}</td><td>{c.duration_s:.3f}</td><td><code>{esc(c.summary)}</code></td></tr>"
            for c in lab.cells
        )
        failed = lab.failed_cell
        detail = (
            f"<p><b>Failed at cell {failed.number}</b> (id <code>{esc(failed.cell_id)}</code>): "
            f"{esc(failed.error)}</p><pre>{esc(failed.traceback)}</pre>"
            if failed and lab.status == "failed"
            else ""
        )
        sections.append(
            f"<h2 id='{esc(lab.name)}'>{esc(lab.name)}</h2><p>Source <code>{esc(lab.source)}</code>, executed copy "
            f"<code>{esc(lab.output)}</code>. {esc(lab.message)}</p><table><tr><th>cell</th><th>tags</th>"
            f"<th>status</th><th>duration (s)</th><th>code</th></tr>{cells}</table>{detail}"
        )
    verdict = "all labs passed" if report.ok else "SOME LABS FAILED"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>labkit run report</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #d0d7de;padding:.25em .6em;text-align:left}} tr.failed{{background:#ffebe9}}
tr.not-run{{color:#8c959f}} pre{{background:#f6f8fa;padding:1em;overflow:auto}}</style></head><body>
<h1>labkit run: {esc(report.kind)} on <code>{esc(report.target)}</code></h1>
<p>Started {esc(report.started_at)}, {report.duration_s:.1f} s in all; <b>{verdict}</b>.</p>
<table><tr><th>lab</th><th>status</th><th>duration (s)</th><th>where it stopped</th></tr>{rows}</table>
{"".join(sections)}</body></html>
"""
