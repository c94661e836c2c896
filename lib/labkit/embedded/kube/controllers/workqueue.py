"""A de-duplicating work queue drained by one thread, the engine of every embedded controller.

Store events arrive through :meth:`Worker.push_event` (called in the writer's thread, so it only
appends); the worker thread maps them to keys, then reconciles each queued key once, however
often it was added. A key added while it is being reconciled runs again afterwards. A reconcile
may ask to run again after some simulated seconds (timers on the :class:`~labkit.embedded.clock.Clock`);
one that raises is retried with a growing back-off.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

log = logging.getLogger("labkit.embedded.controllers")

# Back-off of a failing key, in wall seconds: doubled per failure up to the cap.
_RETRY_FIRST_S = 0.02
_RETRY_MAX_S = 2.0


class Worker:
    """One thread reconciling de-duplicated keys.

    Args:
        name: thread name.
        clock: the simulated clock (for :meth:`add_after`).
        handle: reconciles one key; returns simulated seconds until it should run again, or ``None``.
        on_event: maps a store event to the keys it touches (runs on the worker thread).
    """

    def __init__(
        self,
        name: str,
        clock: Any,
        handle: Callable[[Any], float | None],
        *,
        on_event: Callable[[Any], Iterable[Hashable]] | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self._handle = handle
        self._on_event = on_event
        self._cv = threading.Condition()
        self._events: deque[Any] = deque()
        self._queue: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()
        self._active: Hashable | None = None
        self._mapping = False
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopped

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._cv:
            if self._thread is not None:
                return
            self._stopped = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after the key in progress; queued work is dropped."""
        with self._cv:
            self._stopped = True
            self._queue.clear()
            self._queued.clear()
            self._events.clear()
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def push_event(self, event: Any) -> None:
        """Hand over a store event (cheap: safe inside store callbacks)."""
        with self._cv:
            if self._stopped:
                return
            self._events.append(event)
            self._cv.notify()

    def add(self, key: Hashable) -> None:
        """Queue ``key`` unless it is queued already."""
        with self._cv:
            if self._stopped:
                return
            if key == self._active:
                self._dirty.add(key)
                return
            if key in self._queued:
                return
            self._queued.add(key)
            self._queue.append(key)
            self._cv.notify()

    def add_after(self, key: Hashable, sim_seconds: float) -> None:
        """Queue ``key`` after ``sim_seconds`` of simulated time."""
        if sim_seconds <= 0:
            self.add(key)
        else:
            self.clock.call_later(sim_seconds, lambda: self.add(key))

    def _add_after_wall(self, key: Hashable, wall_seconds: float) -> None:
        self.clock.call_later(wall_seconds * self.clock.scale, lambda: self.add(key))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or running; False on timeout."""
        import time

        deadline = time.monotonic() + timeout
        with self._cv:
            while self._events or self._queue or self._active is not None or self._mapping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and not self._events and not self._queue:
                    self._cv.wait()
                if self._stopped:
                    return
                events = list(self._events)
                self._events.clear()
                self._mapping = bool(events)
            for event in events:
                self._map_event(event)
            with self._cv:
                self._mapping = False
                if not self._queue:
                    self._cv.notify_all()
                    continue
                key = self._queue.popleft()
                self._queued.discard(key)
                self._active = key
            self._process(key)
            with self._cv:
                self._active = None
                if key in self._dirty:
                    self._dirty.discard(key)
                    if key not in self._queued and not self._stopped:
                        self._queued.add(key)
                        self._queue.append(key)
                self._cv.notify_all()

    def _map_event(self, event: Any) -> None:
        if self._on_event is None:
            return
        try:
            keys = list(self._on_event(event))
        except Exception:
            log.exception("%s: mapping a store event failed", self.name)
            return
        for key in keys:
            self.add(key)

    def _process(self, key: Hashable) -> None:
        try:
            again = self._handle(key)
        except Exception as exc:
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            delay = min(_RETRY_MAX_S, _RETRY_FIRST_S * 2 ** (n - 1))
            level = logging.DEBUG if n < 5 else logging.WARNING
            log.log(level, "%s: reconciling %s failed (attempt %d): %s", self.name, key, n, exc, exc_info=n >= 5)
            self._add_after_wall(key, delay)
            return
        self._failures.pop(key, None)
        if again is not None:
            self.add_after(key, again)
