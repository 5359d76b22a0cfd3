"""Time behind a port.

Everything that needs "now" takes a :class:`Clock`, so tests (and a future multi-node deployment) can
substitute their own. The domain itself never reads the time: callers pass ``now`` into domain methods.

>>> clock = FakeClock(1_700_000_000.0)
>>> clock.advance(5); clock.time()
1700000005.0
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (for timestamps and provider reset times)."""

    def monotonic(self) -> float:
        """Monotonic seconds (for durations and timeouts)."""

    def now(self) -> datetime:
        """Timezone-aware UTC datetime."""


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to; monotonic and wall time move together."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = float(start)

    def time(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, timezone.utc)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._t += seconds


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
