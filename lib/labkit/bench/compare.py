"""Two results side by side with deltas (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.bench.result import SUMMARY_FIELDS, BenchResult

#: Fields where a larger value is better; for the rest (latencies, failures) smaller is better.
HIGHER_IS_BETTER = frozenset(
    {"completed", "request_throughput", "request_goodput", "output_throughput", "total_token_throughput"}
)


@dataclass(frozen=True)
class Row:
    """One compared field.

    Attributes:
        field: the result field name.
        a: its value in the first result.
        b: its value in the second result.
        delta: ``b - a`` (``None`` unless both are numbers).
        delta_pct: ``delta / a`` in percent (``None`` when ``a`` is 0 or missing).
        better: ``"a"``, ``"b"`` or ``""`` (equal, or not comparable).
    """

    field: str
    a: Any
    b: Any
    delta: float | None
    delta_pct: float | None
    better: str


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def compare(
    a: BenchResult | Mapping[str, Any], b: BenchResult | Mapping[str, Any], fields: Sequence[str] = SUMMARY_FIELDS
) -> list[Row]:
    """Compare two results (objects or their JSON documents) field by field."""
    da = a.to_dict() if isinstance(a, BenchResult) else a
    db = b.to_dict() if isinstance(b, BenchResult) else b
    rows = []
    for name in fields:
        va, vb = da.get(name), db.get(name)
        na, nb = _number(va), _number(vb)
        delta = nb - na if na is not None and nb is not None else None
        pct = delta / na * 100 if delta is not None and na else None
        better = ""
        if delta:
            up = delta > 0
            better = "b" if up == (name in HIGHER_IS_BETTER) else "a"
        rows.append(Row(name, va, vb, delta, pct, better))
    return rows


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def format_table(rows: Sequence[Row], *, names: tuple[str, str] = ("A", "B")) -> str:
    """A plain-text table: field, A, B, delta, delta %, which is better."""
    header = f"{'field':<26} {names[0]:>14} {names[1]:>14} {'delta':>12} {'delta %':>9}  better"
    lines = [header, "-" * len(header)]
    for r in rows:
        pct = "-" if r.delta_pct is None else f"{r.delta_pct:+.1f}%"
        delta = "-" if r.delta is None else f"{r.delta:+.3f}"
        better = {"a": names[0], "b": names[1]}.get(r.better, "")
        lines.append(f"{r.field:<26} {_fmt(r.a):>14} {_fmt(r.b):>14} {delta:>12} {pct:>9}  {better}")
    return "\n".join(lines)
