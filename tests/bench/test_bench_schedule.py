"""Arrival processes, deadline arithmetic and the precise timer."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import numpy as np
import pytest

from labkit.bench import schedule
from labkit.errors import ConfigError


def test_constant_offsets_are_exact_multiples() -> None:
    offsets = schedule.arrival_offsets_ns(5, 4.0, arrival="constant")
    assert offsets == [0, 250_000_000, 500_000_000, 750_000_000, 1_000_000_000]
    assert schedule.scheduled_rate(offsets) == pytest.approx(4.0)


def test_deadlines_are_t0_plus_offsets_without_drift() -> None:
    offsets = schedule.arrival_offsets_ns(1000, 1000.0, arrival="constant")
    t0 = 123_456_789_000
    deadlines = schedule.deadlines_ns(t0, offsets)
    assert deadlines[0] == t0
    assert deadlines[-1] == t0 + 999_000_000
    assert all(b - a == 1_000_000 for a, b in itertools.pairwise(deadlines))


def gaps(offsets: list[int]) -> np.ndarray:
    return np.diff(np.asarray(offsets, dtype=float)) / 1e9


def test_gamma_with_burstiness_one_is_poisson() -> None:
    rate = 50.0
    g = gaps(schedule.arrival_offsets_ns(40_001, rate, burstiness=1.0, seed=3))
    p = gaps(schedule.arrival_offsets_ns(40_001, rate, arrival="poisson", seed=3))
    assert g.mean() == pytest.approx(1 / rate, rel=0.02)
    assert g.std() / g.mean() == pytest.approx(1.0, rel=0.03)  # exponential: coefficient of variation 1
    np.testing.assert_array_equal(g, p)  # same seed, same draws


@pytest.mark.parametrize(("burstiness", "cv"), [(0.25, 2.0), (4.0, 0.5)])
def test_burstiness_keeps_the_mean_and_sets_the_variation(burstiness: float, cv: float) -> None:
    g = gaps(schedule.arrival_offsets_ns(40_001, 20.0, burstiness=burstiness, seed=1))
    assert g.mean() == pytest.approx(1 / 20.0, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.05)


def test_schedules_are_seeded() -> None:
    a = schedule.arrival_offsets_ns(100, 10.0, seed=7)
    assert a == schedule.arrival_offsets_ns(100, 10.0, seed=7)
    assert a != schedule.arrival_offsets_ns(100, 10.0, seed=8)
    assert a[0] == 0
    assert a == sorted(a)


def test_infinite_rate_sends_everything_at_once() -> None:
    assert schedule.arrival_offsets_ns(3, math.inf) == [0, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"rate": 0.0}, "positive"), ({"rate": 1.0, "arrival": "uniform"}, "unknown arrival"),
     ({"rate": 1.0, "burstiness": 0.0}, "burstiness")],
)  # fmt: skip
def test_bad_schedules_are_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        schedule.arrival_offsets_ns(3, **kwargs)


def test_sleep_until_is_never_early() -> None:
    for _ in range(5):
        deadline = time.monotonic_ns() + 2_000_000
        late = schedule.sleep_until(deadline)
        assert late >= 0
        assert time.monotonic_ns() >= deadline


@pytest.mark.parametrize("use_timerfd", [True, False])
def test_precise_timer_fires_after_each_deadline_and_can_be_rearmed(use_timerfd: bool) -> None:
    if use_timerfd and not schedule.timerfd_available():
        pytest.skip("no timerfd on this platform")
    fired: list[tuple[int, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        deadlines = [time.monotonic_ns() + k * 3_000_000 for k in range(1, 6)]
        timer: schedule.PreciseTimer

        def on_fire() -> None:
            fired.append((deadlines[len(fired)], time.monotonic_ns()))
            if len(fired) < len(deadlines):
                timer.arm(deadlines[len(fired)])
            else:
                done.set_result(None)

        timer = schedule.PreciseTimer(loop, on_fire, use_timerfd=use_timerfd)
        assert timer.uses_timerfd == use_timerfd
        timer.arm(deadlines[0])
        await asyncio.wait_for(done, 5)
        timer.close()

    asyncio.run(main())
    assert len(fired) == 5
    assert all(now >= dl for dl, now in fired)
    # Generous: this only proves it is not a millisecond-granular poll (CI machines are noisy).
    assert sorted(now - dl for dl, now in fired)[2] < 5_000_000


def test_cancelled_timer_does_not_fire() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        hits: list[int] = []
        timer = schedule.PreciseTimer(loop, lambda: hits.append(1))
        timer.arm(time.monotonic_ns() + 2_000_000)
        timer.cancel()
        await asyncio.sleep(0.01)
        timer.close()
        return hits

    assert asyncio.run(main()) == []


def test_sleep_until_async_returns_its_lateness() -> None:
    deadline = time.monotonic_ns() + 3_000_000
    late = asyncio.run(schedule.sleep_until_async(deadline))
    assert late >= 0
    assert time.monotonic_ns() >= deadline
