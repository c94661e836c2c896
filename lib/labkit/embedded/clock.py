"""Simulated time for the embedded twin.

The clock runs ``scale`` times faster than wall time, so a two-minute model load
costs two seconds at scale 60. Every embedded component (controllers, kubelet,
Karpenter, model simulators) reads time and schedules work through one
:class:`Clock`, never through ``time`` directly, so the scale applies everywhere.
Timestamps written into objects use :meth:`Clock.now` (simulated epoch seconds).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """A scaled clock with a timer thread.

    Args:
        scale: simulated seconds per wall second (1 = real time).
        start: simulated epoch seconds at creation; defaults to the wall clock.
    """

    def __init__(self, scale: float = 1.0, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._wall0 = time.monotonic()
        self._sim0 = time.time() if start is None else start
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def now(self) -> float:
        """Simulated epoch seconds."""
        return self._sim0 + (time.monotonic() - self._wall0) * self.scale

    def wall_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take in wall time."""
        return max(0.0, sim_seconds) / self.scale

    def sleep(self, sim_seconds: float) -> None:
        """Block the calling thread for ``sim_seconds`` of simulated time."""
        time.sleep(self.wall_seconds(sim_seconds))

    def call_later(self, sim_seconds: float, fn: Callable[[], None]) -> _Timer:
        """Run ``fn`` on the timer thread after ``sim_seconds`` of simulated time; returns a cancellable handle."""
        timer = _Timer(time.monotonic() + self.wall_seconds(sim_seconds), next(self._seq), fn)
        with self._cv:
            if self._stopped:
                return timer
            heapq.heappush(self._timers, timer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="labkit-clock", daemon=True)
                self._thread.start()
            self._cv.notify()
        return timer

    def stop(self) -> None:
        """Stop the timer thread; pending timers are dropped."""
        with self._cv:
            self._stopped = True
            self._timers.clear()
            self._cv.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._timers or self._timers[0].due > time.monotonic()):
                    timeout = self._timers[0].due - time.monotonic() if self._timers else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                try:
                    timer.fn()
                except Exception:  # a failing callback must not stop the clock
                    import logging

                    logging.getLogger("labkit.embedded.clock").exception("timer callback failed")
