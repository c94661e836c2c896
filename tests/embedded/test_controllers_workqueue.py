"""The controllers' work queue: de-duplicated keys, re-runs of keys added while busy, delays, retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from labkit.embedded.clock import Clock
from labkit.embedded.kube.controllers.workqueue import Worker


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock(scale=100)
    yield c
    c.stop()


def test_keys_are_deduplicated_and_rerun_when_added_while_busy(clock: Clock) -> None:
    seen: list[str] = []
    gate = threading.Event()

    def handle(key: str) -> None:
        seen.append(key)
        if key == "slow" and seen.count("slow") == 1:
            gate.wait(2)

    worker = Worker("test", clock, handle)
    worker.start()
    worker.add("slow")
    time.sleep(0.05)  # "slow" is running now
    for _ in range(5):
        worker.add("slow")  # added while busy: runs once more, not five times
        worker.add("other")  # queued: runs once
    gate.set()
    assert worker.wait_idle(2)
    worker.stop()
    assert seen == ["slow", "other", "slow"]


def test_events_map_to_keys_and_delays_use_simulated_time(clock: Clock) -> None:
    seen: list[tuple[str, float]] = []
    started = time.monotonic()

    def handle(key: str) -> float | None:
        seen.append((key, time.monotonic() - started))
        return 20.0 if len(seen) == 1 else None  # ask to run again after 20 simulated seconds

    worker = Worker("test", clock, handle, on_event=lambda event: [f"key-{event}"])
    worker.start()
    worker.push_event("a")
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert [k for k, _ in seen] == ["key-a", "key-a"]
    assert seen[1][1] - seen[0][1] >= 0.19  # 20 s at scale 100


def test_a_failing_key_is_retried(clock: Clock) -> None:
    attempts: list[int] = []

    def handle(key: str) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("conflict")

    worker = Worker("test", clock, handle)
    worker.start()
    worker.add("k")
    deadline = time.monotonic() + 2
    while len(attempts) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert len(attempts) == 3
