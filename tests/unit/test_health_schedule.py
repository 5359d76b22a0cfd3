"""The health scheduler's pure parts and its heap, on a fake clock."""

from __future__ import annotations

import asyncio
import random

from domain import FakeClock
from integd.health import HealthScheduler, next_due, startup_due


def test_next_due_is_interval_with_bounded_jitter():
    rnd = random.Random(3)
    dues = [next_due(1000.0, 300.0, 0.1, rnd) for _ in range(500)]
    assert all(1270.0 <= d <= 1330.0 for d in dues)
    assert len({round(d) for d in dues}) > 30, "jitter spreads apps out"
    assert next_due(1000.0, 300.0, 0.0, rnd) == 1300.0


def test_startup_spreads_overdue_apps_and_keeps_rhythm_of_others():
    rnd = random.Random(1)
    assert 100.0 <= startup_due(100.0, None, 300.0, rnd) <= 130.0
    assert 100.0 <= startup_due(100.0, 0.0, 60.0, rnd) <= 130.0
    assert startup_due(100.0, 90.0, 300.0, rnd) == 390.0


async def test_pop_due_skips_removed_and_rescheduled_apps():
    clock = FakeClock(0.0)

    async def never(_: str) -> None:
        raise AssertionError

    s = HealthScheduler(never, clock, jitter=0.0)
    s.schedule("a", due=10.0, interval=60)
    s.schedule("b", due=20.0, interval=60)
    s.schedule("c", due=5.0, interval=60)
    s.remove("c")
    s.schedule("b", due=50.0, interval=60)
    assert s.pop_due(30.0) == ["a"]
    assert s.pop_due(60.0) == ["b"]
    assert s.next_check_at("b") == 50.0 and s.next_check_at("c") is None


async def test_run_checks_due_apps_with_bounded_concurrency_and_reschedules():
    clock = FakeClock(0.0)
    running, peak, done = 0, 0, asyncio.Event()
    seen: list[str] = []

    async def check(app_id: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        seen.append(app_id)
        running -= 1
        if len(seen) == 20:
            done.set()

    s = HealthScheduler(check, clock, jitter=0.0, concurrency=3)
    for i in range(20):
        s.schedule(f"app{i}", due=0.0, interval=300.0)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.wait_for(done.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sorted(seen) == sorted(f"app{i}" for i in range(20))
    assert peak <= 3
    assert all(s.next_check_at(f"app{i}") == 300.0 for i in range(20))
