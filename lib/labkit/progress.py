"""One progress helper for the whole kit, honouring headless mode.

Interactive notebooks get a tqdm bar (the notebook flavour when ipywidgets is
installed); headless runs (papermill, CI) get nothing but the final line, so
executed notebooks stay small and readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from labkit import context

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar unless the lab runs headless."""
    if context.current().headless:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total)
