"""Standard five-field cron schedules in UTC, as Karpenter's disruption budgets use them.

Supports ``*``, lists, ranges, steps (``*/15``, ``8-18/2``), month and weekday names (``jan``,
``mon-fri``), ``?`` as ``*``, Sunday as ``0`` or ``7``, and the ``@yearly``/``@annually``/``@monthly``/
``@weekly``/``@daily``/``@midnight``/``@hourly`` macros. When both day-of-month and day-of-week are
restricted, a day matching either matches (Vixie cron, as robfig/cron does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


def _value(text: str, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    return int(text)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    """Values a field allows and whether it was unrestricted (``*``/``?``)."""
    values: set[int] = set()
    star = False
    for item in text.split(","):
        step = 1
        part = item
        if "/" in item:
            part, step_text = item.split("/", 1)
            step = int(step_text)
            if step <= 0:
                raise ValueError(f"cron step must be positive in {text!r}")
        if part in ("*", "?"):
            start, end = low, high
            star = step == 1
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if start < low or end > high or start > end:
            raise ValueError(f"cron field {text!r} out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


@dataclass(frozen=True)
class Cron:
    """A parsed schedule."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    @classmethod
    def parse(cls, expr: str) -> Cron:
        """Parse a schedule such as ``0 8 * * mon-fri`` or ``@daily``.

        Raises:
            ValueError: not a valid five-field schedule.
        """
        text = _MACROS.get(expr.strip().lower(), expr.strip())
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"invalid cron schedule {expr!r}: expected 5 fields (minute hour day month weekday)")
        minute, _ = _field(parts[0], 0, 59, {})
        hour, _ = _field(parts[1], 0, 23, {})
        day, day_star = _field(parts[2], 1, 31, {})
        month, _ = _field(parts[3], 1, 12, _MONTHS)
        weekday, weekday_star = _field(parts[4], 0, 7, _DAYS)
        weekday = frozenset(0 if d == 7 else d for d in weekday)
        return cls(minute, hour, day, month, weekday, day_star, weekday_star)

    def _day_matches(self, when: dt.datetime) -> bool:
        dom = when.day in self.days
        dow = (when.weekday() + 1) % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def matches(self, when: dt.datetime) -> bool:
        """Whether the schedule fires at ``when`` (minute resolution)."""
        return (
            when.minute in self.minutes
            and when.hour in self.hours
            and when.month in self.months
            and self._day_matches(when)
        )

    def next_after(self, ts: float, *, limit_seconds: float | None = None) -> float | None:
        """The first firing time strictly after epoch ``ts`` (UTC), searching at most ``limit_seconds`` ahead."""
        start = dt.datetime.fromtimestamp(ts, dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        end = start + dt.timedelta(seconds=limit_seconds if limit_seconds is not None else 366 * 86400 * 5)
        when = start
        while when <= end:
            if when.month not in self.months or not self._day_matches(when):
                when = (when + dt.timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if when.hour not in self.hours:
                when = (when + dt.timedelta(hours=1)).replace(minute=0)
                continue
            if when.minute in self.minutes:
                return when.timestamp()
            when += dt.timedelta(minutes=1)
        return None

    def active(self, now: float, duration_seconds: float) -> bool:
        """Whether a window of ``duration_seconds`` opened by a firing is open at ``now`` (Karpenter's ``IsActive``)."""
        hit = self.next_after(now - duration_seconds, limit_seconds=duration_seconds + 60)
        return hit is not None and hit <= now
