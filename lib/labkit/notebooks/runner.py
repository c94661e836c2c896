"""Execute lab notebooks headlessly with papermill and write a run report.

``labkit run`` and ``make labs`` come here. Each notebook runs in its own kernel
with its folder as working directory, its parameters injected (``target``,
``headless=True``, ``seed`` and any ``-p NAME VALUE``), a per-cell timeout, and
its executed copy written under ``build/executed/``. On the embedded target one
platform is started for the whole run and shared by every kernel.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from labkit.errors import ConfigError
from labkit.notebooks.report import LabResult, RunReport, cell_results, is_stub_failure, to_html, to_markdown
from labkit.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CELL_TIMEOUT_S = 300


@dataclass(frozen=True)
class RunOptions:
    """How to run: which tree, where to write, timeouts."""

    root: Path = REPO_ROOT
    kind: str = "solutions"  # or "labs"
    build_dir: Path | None = None
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S

    @property
    def build(self) -> Path:
        return self.build_dir or self.root / "build"


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def resolve(selectors: Sequence[str], root: Path = REPO_ROOT, kind: str = "solutions") -> list[Path]:
    """Notebooks named by ``selectors``: a week (``week1``), a notebook name, or a path; none = all."""
    tree = root / kind
    everything = _notebooks(tree)
    if not selectors:
        return everything
    chosen: list[Path] = []
    for selector in selectors:
        path = Path(selector)
        if path.exists():
            found = _notebooks(path) if path.is_dir() else [path.resolve()]
        elif (tree / selector).is_dir():
            found = _notebooks(tree / selector)
        else:
            stem = selector.removesuffix(".ipynb")
            found = [p for p in everything if p.stem == stem or p.stem.split("-", 1)[-1] == stem]
        if not found:
            names = sorted({p.parent.name for p in everything} | {p.stem for p in everything})
            close = difflib.get_close_matches(selector, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(names)}"
            raise ConfigError(f"no notebook matches '{selector}' in {kind}/", hint)
        chosen += [p for p in found if p not in chosen]
    return chosen


def parse_parameters(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs to typed values (YAML scalars: 3, 0.5, true, null, text)."""
    import yaml

    out: dict[str, Any] = {}
    for name, raw in pairs:
        if not name.isidentifier():
            raise ConfigError(f"parameter name '{name}' is not a Python identifier", "use e.g. -p seed 3")
        try:
            out[name] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            out[name] = raw
    return out


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def _platform_for_run(settings: Settings, build: Path) -> Iterator[dict[str, str]]:
    """Environment for the kernels; on ``embedded``, one platform shared by the whole run."""
    env = {
        "LABKIT_HEADLESS": "1",
        "LABKIT_TARGET": settings.target,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    if settings.target != "embedded" or os.environ.get("LABKIT_EMBEDDED_STATE"):
        yield env
        return
    from labkit.targets.embedded import STATE_ENV, start_in_process

    state = build / "platform" / "state.json"
    services, _ = start_in_process(settings, state)
    try:
        yield {**env, STATE_ENV: str(state)}
    finally:
        services.stop()


def run_notebook(source: Path, output: Path, parameters: Mapping[str, Any], options: RunOptions) -> LabResult:
    """Execute one notebook; never raises for a failing cell (the result says what failed)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    name = (
        str(source.relative_to(options.root / options.kind))
        if source.is_relative_to(options.root / options.kind)
        else source.name
    )
    started = time.perf_counter()
    message = ""
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=dict(parameters),
            cwd=str(source.parent),
            execution_timeout=options.cell_timeout_s,
            progress_bar=False,
            log_output=False,
            kernel_name="python3",
        )
    except PapermillExecutionError:
        pass  # recorded in the executed notebook; read back below
    except Exception as exc:  # kernel died, timeout, bad notebook: the report must still say so
        message = f"{type(exc).__name__}: {exc}"
    duration = time.perf_counter() - started
    cells = cell_results(nbformat.read(output, as_version=4)) if output.exists() else []
    failed = next((c for c in cells if c.status == "failed"), None)
    if message.startswith("CellTimeoutError"):
        message = f"a cell ran longer than the per-cell timeout of {options.cell_timeout_s}s (--cell-timeout)"
        if failed is not None:
            failed.error = f"CellTimeoutError: {message}"
    if failed is None and not message:
        status = "passed"
    elif failed is not None and options.kind == "labs" and is_stub_failure(failed):
        status, message = "exercise", f"stopped at the unsolved exercise in cell {failed.number}, as expected"
    else:
        status = "failed"
        if failed is None:
            message = message or "the notebook did not finish"
    return LabResult(
        name=name,
        source=str(source),
        output=str(output),
        status=status,
        duration_s=round(duration, 2),
        cells=cells,
        message=message,
    )


def run(
    notebooks: Sequence[Path],
    settings: Settings,
    *,
    parameters: Mapping[str, Any] | None = None,
    seed: int = 0,
    options: RunOptions | None = None,
    on_result: Callable[[LabResult], None] | None = None,
) -> RunReport:
    """Run ``notebooks`` in order on ``settings.target`` and write the report under ``build/``."""
    options = options or RunOptions()
    params = {"target": settings.target, "headless": True, "seed": seed, **(parameters or {})}
    report = RunReport(
        target=settings.target,
        kind=options.kind,
        parameters=params,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    started = time.perf_counter()
    executed = options.build / "executed" / options.kind
    with _platform_for_run(settings, options.build) as env, _patched_environ(env):
        for source in notebooks:
            rel = (
                source.relative_to(options.root / options.kind)
                if source.is_relative_to(options.root / options.kind)
                else Path(source.name)
            )
            result = run_notebook(source, executed / rel, params, options)
            report.labs.append(result)
            if on_result:
                on_result(result)
    report.duration_s = round(time.perf_counter() - started, 2)
    write_report(report, options.build)
    return report


def write_report(report: RunReport, build: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` under ``build``."""
    build.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": build / "report.md", "html": build / "report.html", "json": build / "report.json"}
    paths["markdown"].write_text(to_markdown(report))
    paths["html"].write_text(to_html(report))
    paths["json"].write_text(report.to_json())
    return paths
