"""When a sync job runs next: a five-field cron parser of our own, next-run-due and jitter. Pure, no clock.

croniter is in maintenance mode and this needs little of it: lists, ranges, steps and month/day names, UTC.

>>> next_run_due(SyncFrequency.every_minutes(15), last_run=0.0, now=60.0)
900.0
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from domain.errors import InvalidConfiguration
from domain.values import FrequencyKind, SyncFrequency

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 6))
_NAMES = {3: {n.lower(): i for i, n in enumerate(calendar.month_abbr) if n},
          4: {n.lower(): (i + 1) % 7 for i, n in enumerate(calendar.day_abbr)}}


def _cron_value(text: str, index: int) -> int:
    name, low, high = _CRON_FIELDS[index]
    value = _NAMES.get(index, {}).get(text.lower())
    if value is None:
        if not text.isdigit():
            raise InvalidConfiguration(f"cron {name}: {text[:12]!r} is not a number", field="frequency.cron")
        value = int(text)
        if index == 4 and value == 7:
            value = 0       # both 0 and 7 mean Sunday
    if not low <= value <= high:
        raise InvalidConfiguration(f"cron {name}: {value} is outside {low}-{high}", field="frequency.cron")
    return value


def _cron_field(text: str, index: int) -> frozenset[int]:
    name, low, high = _CRON_FIELDS[index]
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidConfiguration(f"cron {name}: bad step {step_text[:12]!r}", field="frequency.cron")
            step = int(step_text)
        if rng == "*":
            start, end = low, high
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _cron_value(a, index), _cron_value(b, index)
            if start > end:
                raise InvalidConfiguration(f"cron {name}: range {rng!r} runs backwards", field="frequency.cron")
        else:
            start = _cron_value(rng, index)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class CronSchedule:
    """A five-field cron expression (minute hour day-of-month month day-of-week), UTC.

    Lists, ranges, steps and month/day names; ``7`` is Sunday too. As in Vixie cron, when both day fields are
    restricted a day matches if EITHER matches.

    >>> s = CronSchedule.parse("*/15 9-17 * * mon-fri")
    >>> datetime.fromtimestamp(s.next_after(1_700_000_000), timezone.utc).isoformat()
    '2023-11-15T09:00:00+00:00'
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        parts = expr.split() if isinstance(expr, str) else []
        if len(parts) != 5:
            raise InvalidConfiguration("cron sync frequency needs five fields: minute hour day month weekday",
                                       field="frequency.cron")
        fields = [_cron_field(p, i) for i, p in enumerate(parts)]
        return cls(*fields, any_day=parts[2] == "*", any_weekday=parts[4] == "*")

    def _day_matches(self, moment: datetime) -> bool:
        dom = moment.day in self.days
        dow = (moment.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, ts: float) -> float:
        """The first matching minute strictly after ``ts`` (epoch seconds); searches at most ~5 years."""
        moment = datetime.fromtimestamp(ts, timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + timedelta(days=366 * 5)
        while moment < limit:
            if moment.month not in self.months:
                moment = (moment.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
                continue
            if moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
                continue
            return moment.timestamp()
        raise InvalidConfiguration("cron expression never matches (e.g. 30 February)", field="frequency.cron")


def validate_frequency(frequency: SyncFrequency) -> SyncFrequency:
    """Refuse a cron expression that does not parse (SyncFrequency only checks the field count)."""
    if frequency.kind is FrequencyKind.CRON:
        CronSchedule.parse(frequency.cron or "")
    return frequency


def next_run_due(frequency: SyncFrequency, *, last_run: float | None, now: float) -> float | None:
    """When a job should run next; None for manual and realtime jobs (they run on demand or on webhooks).

    A job that never ran is due now; an interval job is due one period after its last run (now, if that is
    already past); a cron job at the next matching minute after the later of its last run and now.

    >>> next_run_due(SyncFrequency.hourly(), last_run=1000.0, now=2000.0)
    4600.0
    >>> next_run_due(SyncFrequency.manual(), last_run=None, now=0.0) is None
    True
    """
    if frequency.kind in (FrequencyKind.MANUAL, FrequencyKind.REALTIME):
        return None
    if frequency.kind is FrequencyKind.CRON:
        return CronSchedule.parse(frequency.cron or "").next_after(max(now, last_run or now) - 1)
    period = frequency.period_seconds() or 0.0
    if last_run is None:
        return now
    return max(now, last_run + period)


def jittered(due: float, frequency: SyncFrequency, rng: random.Random, *, share: float = 0.1,
             cap: float = 300.0) -> float:
    """Spread jobs that would fire together: up to ``share`` of the period later (at most ``cap`` seconds).

    Only ever later, so a cron job never runs before its minute. ``rng`` is injected so tests are deterministic.
    """
    period = frequency.period_seconds() or 60.0
    return due + rng.uniform(0.0, min(cap, period * share))
