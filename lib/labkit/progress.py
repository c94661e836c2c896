"""Progress and live display for the whole kit, honouring headless mode.

Interactive notebooks get a tqdm bar (the notebook flavour when ipywidgets is
installed) and live views updated in place; headless runs (papermill, CI) get
nothing but the final result, so executed notebooks stay small and readable.
:class:`Shown` makes a result object display as its text in a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from labkit import context

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar unless the lab runs headless."""
    if context.current().headless:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total)


class LiveView:
    """Shows a result while a step is still waiting: updated in place in a notebook, new lines in a terminal.

    Nothing is shown when the lab runs headless (CI keeps only the final result). In a notebook the live
    view is cleared at the end, so the result the cell returns is displayed once.

    Args:
        lines: called with the object shown; returns its text lines (the terminal fallback prints new ones).
        headless: the lab's headless flag (default: the current lab's).
    """

    def __init__(self, lines: Callable[[Any], list[str]], *, headless: bool | None = None) -> None:
        self._lines = lines
        self._enabled = not (context.current().headless if headless is None else headless)
        self._handle: Any = None
        self._printed = 0
        self._notebook = self._enabled and _in_notebook()

    def show(self, obj: Any) -> None:
        """Display ``obj`` (again)."""
        if not self._enabled:
            return
        if self._notebook:
            from IPython.display import display

            if self._handle is None:
                self._handle = display(obj, display_id=True)
            else:
                self._handle.update(obj)
            return
        lines = self._lines(obj)
        for line in lines[self._printed :]:
            print(line, flush=True)
        self._printed = len(lines)

    def close(self) -> None:
        """Clear the live view in a notebook (the step's returned result takes its place)."""
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(""))
            self._handle = None


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def pre_html(text: str) -> str:
    """``text`` as an escaped ``<pre>`` block."""
    return f"<pre>{html.escape(text)}</pre>"


class Shown:
    """A result that shows as its ``str()`` in a notebook (text and HTML), not as a dataclass repr.

    IPython prefers a class's own ``__repr__`` (which ``@dataclass`` writes) to an inherited
    ``_repr_pretty_``, so every subclass gets its own copy; ``repr()`` stays the dataclass one.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._repr_pretty_ = Shown._repr_pretty_  # type: ignore[method-assign]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return pre_html(str(self))
