"""When requests are sent: arrival processes, absolute deadlines and a precise timer.

Arrivals are absolute deadlines on ``time.monotonic_ns()`` (the clock the kernel shares
between processes, so worker processes and the simulator read the same time), computed
once before the run as offsets from the start ``t0``; a late send never shifts the ones
after it.

Waiting for a deadline is the hard part. ``asyncio.sleep`` and ``loop.call_at`` wake
through the event loop's poll timeout, which has millisecond granularity (uvloop also
keeps ``loop.time()`` in milliseconds). :class:`PreciseTimer` instead arms a Linux
``timerfd`` at an absolute nanosecond deadline and registers it with the loop as a reader,
with the thread's timer slack lowered to 1 µs; elsewhere it falls back to ``call_at`` for
the coarse part and yields to the loop (``call_soon``) for the last two milliseconds. The
caller wakes a little early (``wake_early_ns``) and spins the last stretch.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import math
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from labkit.errors import ConfigError

_mono = time.monotonic_ns

ARRIVALS: tuple[str, ...] = ("gamma", "poisson", "constant")


def arrival_offsets_ns(
    count: int, rate: float, *, burstiness: float = 1.0, arrival: str = "gamma", seed: int = 0
) -> list[int]:
    """Send offsets from the run's start, in nanoseconds, for ``count`` requests.

    The first request goes at offset 0; the gaps after it are drawn from the arrival process:

    - ``gamma``: gaps ~ Gamma(shape = burstiness, scale = 1 / (rate × burstiness)), so the mean
      gap is ``1/rate`` whatever the burstiness and the coefficient of variation is
      ``1/sqrt(burstiness)``; burstiness 1 is exponential gaps (a Poisson process), below 1 is
      burstier, above 1 more regular (as ``vllm bench serve --burstiness``).
    - ``poisson``: ``gamma`` with burstiness 1.
    - ``constant``: every gap is exactly ``1/rate``.

    A rate of ``inf`` sends everything at offset 0.

    Args:
        count: number of requests.
        rate: mean requests per second (> 0, may be ``inf``).
        burstiness: gamma shape (> 0); only used by ``gamma``.
        arrival: ``gamma``, ``poisson`` or ``constant``.
        seed: seeds the gaps, so a schedule repeats exactly.
    """
    if count < 0:
        raise ConfigError(f"request count must be >= 0, got {count}", "ask for at least one request")
    if not rate > 0:
        raise ConfigError(f"request rate must be positive, got {rate}", "use e.g. rate=10 (requests per second)")
    if arrival not in ARRIVALS:
        raise ConfigError(f"unknown arrival process '{arrival}'", f"choose one of: {', '.join(ARRIVALS)}")
    if count == 0:
        return []
    if math.isinf(rate):
        return [0] * count
    if arrival == "constant":
        return [round(i * 1e9 / rate) for i in range(count)]
    shape = 1.0 if arrival == "poisson" else burstiness
    if not shape > 0:
        raise ConfigError(f"burstiness must be positive, got {burstiness}", "1 is Poisson; 0.5 burstier; 4 smoother")
    gaps = np.random.default_rng(seed).gamma(shape, 1.0 / (rate * shape), size=count - 1)
    offsets = np.concatenate(([0.0], np.cumsum(gaps))) * 1e9
    return [round(x) for x in offsets]


def deadlines_ns(t0_ns: int, offsets_ns: list[int]) -> list[int]:
    """Absolute deadlines: ``t0`` plus each offset (plain integer arithmetic, no drift)."""
    return [t0_ns + off for off in offsets_ns]


def scheduled_rate(offsets_ns: list[int]) -> float | None:
    """The rate a schedule actually asks for: ``(n - 1) / (last - first)``; ``None`` if undefined.

    A Poisson schedule of 1000 requests at 100/s asks for about 100 ± 3/s; the client is
    judged against this realised rate, not the nominal one.
    """
    if len(offsets_ns) < 2:
        return None
    span = offsets_ns[-1] - offsets_ns[0]
    return (len(offsets_ns) - 1) * 1e9 / span if span > 0 else math.inf


def sleep_until(deadline_ns: int, *, spin_ns: int = 200_000) -> int:
    """Block the thread until ``deadline_ns`` (monotonic): sleep coarse, then spin the last stretch.

    Returns:
        how late it woke, in nanoseconds (never negative).
    """
    while True:
        left = deadline_ns - _mono()
        if left <= spin_ns:
            break
        time.sleep((left - spin_ns) / 1e9)
    now = _mono()
    while now < deadline_ns:
        now = _mono()
    return now - deadline_ns


# --------------------------------------------------------------------------- precise timer

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30
_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "timerfd_create") and hasattr(libc, "timerfd_settime") else None


_LIBC = _libc()


def timerfd_available() -> bool:
    """Whether :class:`PreciseTimer` can use a Linux ``timerfd`` (otherwise it yields-spins)."""
    return _LIBC is not None


def set_timer_slack_ns(slack_ns: int) -> int | None:
    """Set the calling thread's timer slack (Linux); returns the previous value or ``None``."""
    if _LIBC is None:
        return None
    old = _LIBC.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    if _LIBC.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(max(1, slack_ns)), 0, 0, 0) != 0:
        return None
    return int(old)


class PreciseTimer:
    """A one-shot timer on an asyncio loop that fires at an absolute ``monotonic_ns`` deadline.

    ``arm(deadline)`` replaces any earlier deadline; ``callback()`` runs on the loop once the
    deadline has passed. With a ``timerfd`` it wakes within the kernel's wake-up latency (tens
    of µs on an idle machine); the fallback wakes through ``call_at`` two milliseconds early
    and then yields to the loop until the deadline, so it is precise but burns CPU.

    Args:
        loop: the running loop.
        callback: called with no arguments when the deadline passes.
        use_timerfd: ``False`` forces the portable fallback (tests use it).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *, use_timerfd: bool = True
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._deadline = 0
        self._armed = False
        self._fd = -1
        self._handle: asyncio.Handle | None = None
        if use_timerfd and _LIBC is not None:
            fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._spec = _Itimerspec()
                self._spec_ref = ctypes.byref(self._spec)
                self._settime = _LIBC.timerfd_settime
                loop.add_reader(fd, self._on_fd)

    @property
    def uses_timerfd(self) -> bool:
        """Whether this timer is backed by a ``timerfd``."""
        return self._fd >= 0

    def arm(self, deadline_ns: int) -> None:
        """Fire at ``deadline_ns`` (a past deadline fires on the next loop iteration)."""
        self._deadline = deadline_ns
        self._armed = True
        if self._fd >= 0:
            value = self._spec.it_value
            value.tv_sec, value.tv_nsec = divmod(max(deadline_ns, 1), 1_000_000_000)
            self._settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)
            return
        if self._handle is not None:
            self._handle.cancel()
        coarse_s = (deadline_ns - _mono()) / 1e9 - 0.002
        if coarse_s > 0:
            self._handle = self._loop.call_later(coarse_s, self._yield_spin)
        else:
            self._handle = self._loop.call_soon(self._yield_spin)

    def cancel(self) -> None:
        """Disarm without firing."""
        self._armed = False
        if self._fd >= 0:
            value = self._spec.it_value
            value.tv_sec = value.tv_nsec = 0
            self._settime(self._fd, 0, self._spec_ref, None)
        elif self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Release the timer (idempotent)."""
        self.cancel()
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _on_fd(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        if self._armed:
            self._armed = False
            self._callback()

    def _yield_spin(self) -> None:
        if not self._armed:
            return
        if _mono() < self._deadline:
            self._handle = self._loop.call_soon(self._yield_spin)
            return
        self._armed = False
        self._handle = None
        self._callback()


async def sleep_until_async(deadline_ns: int, *, spin_ns: int = 100_000) -> int:
    """Await until ``deadline_ns`` with a :class:`PreciseTimer` plus a short spin; returns the lateness (ns)."""
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    timer = PreciseTimer(loop, lambda: fired.done() or fired.set_result(None))
    try:
        timer.arm(deadline_ns - spin_ns)
        await fired
    finally:
        timer.close()
    now = _mono()
    while now < deadline_ns:
        now = _mono()
    return now - deadline_ns
