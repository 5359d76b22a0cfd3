"""The health scheduler: one heap of due times for every active app.

Each app is checked every ``check_interval`` seconds (five minutes by default), jittered by +-``jitter`` so that
ten thousand apps connected in the same minute do not fire together, with at most ``concurrency`` checks in
flight. The first check after connect is immediate. "When is it next due" is a pure function (``next_due``)
tested without a clock; the loop sleeps until the earliest due time or until woken by a schedule change.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Awaitable, Callable

import structlog

from domain import Clock

log = structlog.get_logger("integd.health")

Check = Callable[[str], Awaitable[None]]


def next_due(last_run: float, interval: float, jitter: float, rnd: random.Random) -> float:
    """``last_run + interval``, moved by a uniform jitter of at most ``jitter * interval`` either way.

    >>> next_due(100.0, 300.0, 0.0, random.Random(1))
    400.0
    """
    return last_run + interval * (1.0 + rnd.uniform(-jitter, jitter))


def startup_due(now: float, last_check_at: float | None, interval: float, rnd: random.Random,
                spread: float = 30.0) -> float:
    """After a (re)start: overdue apps are spread over the next ``spread`` seconds, the rest keep their rhythm."""
    if last_check_at is None or last_check_at + interval <= now:
        return now + rnd.uniform(0.0, min(spread, interval))
    return last_check_at + interval


class HealthScheduler:
    def __init__(self, check: Check, clock: Clock, *, jitter: float = 0.1, concurrency: int = 16,
                 seed: int | None = None) -> None:
        self._check = check
        self.clock = clock
        self.jitter = jitter
        self._sem = asyncio.Semaphore(concurrency)
        self._rnd = random.Random(seed)
        self._heap: list[tuple[float, int, str]] = []
        self._entries: dict[str, tuple[float, float]] = {}   # app_id -> (due, interval)
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._in_check: set[str] = set()

    # ---- schedule changes ------------------------------------------------------------------------------------
    def schedule(self, app_id: str, *, due: float, interval: float) -> None:
        self._entries[app_id] = (due, interval)
        heapq.heappush(self._heap, (due, next(self._counter), app_id))
        self._wake.set()

    def schedule_now(self, app_id: str, interval: float) -> None:
        self.schedule(app_id, due=self.clock.time(), interval=interval)

    def set_interval(self, app_id: str, interval: float) -> None:
        entry = self._entries.get(app_id)
        if entry is not None:
            due = min(entry[0], self.clock.time() + interval)
            self.schedule(app_id, due=due, interval=interval)

    def remove(self, app_id: str) -> None:
        self._entries.pop(app_id, None)     # its heap entries are skipped lazily

    def next_check_at(self, app_id: str) -> float | None:
        entry = self._entries.get(app_id)
        return entry[0] if entry else None

    def __len__(self) -> int:
        return len(self._entries)

    # ---- running -------------------------------------------------------------------------------------------
    def pop_due(self, now: float) -> list[str]:
        """Remove and return every app due at ``now`` (stale heap entries are discarded)."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, app_id = heapq.heappop(self._heap)
            entry = self._entries.get(app_id)
            if entry is None or entry[0] != when:
                continue
            due.append(app_id)
        return due

    def _seconds_to_next(self) -> float | None:
        while self._heap:
            when, _, app_id = self._heap[0]
            entry = self._entries.get(app_id)
            if entry is None or entry[0] != when:
                heapq.heappop(self._heap)
                continue
            return max(0.0, when - self.clock.time())
        return None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for app_id in self.pop_due(self.clock.time()):
                self._start(app_id)
            self._wake.clear()
            timeout = self._seconds_to_next()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
        await self.drain()

    def _start(self, app_id: str) -> None:
        if app_id in self._in_check:
            return
        self._in_check.add(app_id)
        task = asyncio.create_task(self._run_one(app_id), name=f"health:{app_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run_one(self, app_id: str) -> None:
        try:
            async with self._sem:
                await self._check(app_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health.check_crashed", app_id=app_id)
        finally:
            self._in_check.discard(app_id)
            entry = self._entries.get(app_id)
            if entry is not None:
                interval = entry[1]
                self.schedule(app_id, due=next_due(self.clock.time(), interval, self.jitter, self._rnd),
                              interval=interval)

    async def settle(self) -> None:
        """Start every check due now and wait until none is in flight (tests; a quiet point to observe)."""
        for app_id in self.pop_due(self.clock.time()):
            self._start(app_id)
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def drain(self) -> None:
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
