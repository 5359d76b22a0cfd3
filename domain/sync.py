"""Data synchronisation in the domain: the SyncJob entity, conflict resolution and "when is the next run due".

Pure: no I/O, no clock of its own (every method takes ``now``), no asyncio. The daemon's runner (integd.sync)
drives a SyncJob through its state machine and commits it with the events it recorded (the outbox)::

            create            run                   finish
      ----> IDLE ----------> RUNNING --------------> IDLE   (DataSyncedEvent with the counts and the duration)
             ^  |  pause       |  \\--- fail ------> FAILED  (IntegrationFailedEvent)
             |  +--> PAUSED    |   \\-- stall -----> STALLED (IntegrationFailedEvent: never reported as success)
             |      (resume)   +------ cancel ----> CANCELLED
             +------------------------------------ FAILED / STALLED / CANCELLED -- run again --> RUNNING

Every other move raises InvalidStateTransition. ``sync.progress`` is deliberately NOT a domain event: progress
is a live, lossy signal for dashboards (sent to WebSocket subscribers only); the durable facts are the change
feed rows, the cursor and the events above.

Conflicts: a record changed on both sides since they last agreed is resolved by the job's ConflictResolution,
as the pure function :func:`resolve_conflict` (``latest_wins`` compares modification times, equal times fall
to the larger content hash so both sides of a two-way sync pick the same winner).

>>> job = SyncJob.create("sync_1", app_id="int_" + "0" * 32, user="alice", service="github", stream="issues",
...                      resource="octo/demo", now=0.0)
>>> job.start_run(now=1.0); job.state.value
'running'
"""

from __future__ import annotations

import calendar
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from domain.errors import DomainException, InvalidConfiguration, InvalidStateTransition
from domain.events import DataSyncedEvent, DomainEvent, IntegrationFailedEvent, SyncJobChangedEvent
from domain.values import ConflictResolution, FrequencyKind, SyncDirection, SyncFrequency

DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 1000


class VersionConflict(DomainException):
    """A local change was based on a version of the record that is no longer the current one."""

    def __init__(self, message: str, *, current: int) -> None:
        super().__init__(message)
        self.current = current


class SyncState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STALLED = "stalled"
    FAILED = "failed"
    CANCELLED = "cancelled"


_ENDED = frozenset({SyncState.IDLE, SyncState.FAILED, SyncState.STALLED, SyncState.CANCELLED})
_MOVES: dict[SyncState, frozenset[SyncState]] = {
    SyncState.IDLE: frozenset({SyncState.RUNNING, SyncState.PAUSED}),
    SyncState.RUNNING: frozenset({SyncState.IDLE, SyncState.FAILED, SyncState.STALLED, SyncState.CANCELLED}),
    SyncState.PAUSED: frozenset({SyncState.IDLE}),
    SyncState.FAILED: frozenset({SyncState.RUNNING, SyncState.PAUSED, SyncState.IDLE}),
    SyncState.STALLED: frozenset({SyncState.RUNNING, SyncState.PAUSED, SyncState.IDLE}),
    SyncState.CANCELLED: frozenset({SyncState.RUNNING, SyncState.PAUSED, SyncState.IDLE}),
}


@dataclass
class SyncCounts:
    """What one run did; also kept as running totals on the job."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    pushed: int = 0
    conflicts: int = 0
    unchanged: int = 0
    pages: int = 0

    def add(self, other: SyncCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def new_job_id() -> str:
    return "sync_" + uuid.uuid4().hex[:24]


def check_batch_size(size: int) -> int:
    if not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise InvalidConfiguration(f"batch_size must be an integer between 1 and {MAX_BATCH_SIZE}",
                                   field="batch_size")
    return size


@dataclass
class SyncJob:
    """One stream of one app kept in step: what, which way, how often, and where it got to (the cursor)."""

    id: str
    app_id: str
    user: str
    service: str
    stream: str
    resource: str
    direction: SyncDirection = SyncDirection.PULL
    frequency: SyncFrequency = field(default_factory=SyncFrequency.manual)
    conflict_resolution: ConflictResolution = ConflictResolution.LATEST_WINS
    batch_size: int = DEFAULT_BATCH_SIZE
    state: SyncState = SyncState.IDLE
    cursor: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_run_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_counts: SyncCounts = field(default_factory=SyncCounts)
    totals: SyncCounts = field(default_factory=SyncCounts)
    runs: int = 0
    version: int = 0
    pending_events: list[DomainEvent] = field(default_factory=list)

    @classmethod
    def create(cls, job_id: str, *, app_id: str, user: str, service: str, stream: str, resource: str,
               now: float, direction: SyncDirection = SyncDirection.PULL,
               frequency: SyncFrequency | None = None,
               conflict_resolution: ConflictResolution = ConflictResolution.LATEST_WINS,
               batch_size: int = DEFAULT_BATCH_SIZE) -> SyncJob:
        if not stream or not resource:
            raise InvalidConfiguration("a sync job needs a stream and a resource", field="stream")
        job = cls(job_id, app_id, user, service, stream, resource, direction, frequency or SyncFrequency.manual(),
                  conflict_resolution, check_batch_size(batch_size), created_at=now, updated_at=now)
        job._changed(now, "created")
        return job

    @property
    def key(self) -> str:
        """The records' stream key: ``issues:octo/demo``."""
        return f"{self.stream}:{self.resource}"

    @property
    def pulls(self) -> bool:
        return self.direction in (SyncDirection.PULL, SyncDirection.BIDIRECTIONAL)

    @property
    def pushes(self) -> bool:
        return self.direction in (SyncDirection.PUSH, SyncDirection.BIDIRECTIONAL)

    # ---- state machine ----------------------------------------------------------------------------------
    def _move(self, to: SyncState, now: float) -> None:
        if to not in _MOVES[self.state]:
            raise InvalidStateTransition(f"sync job {self.id} cannot go from {self.state.value} to {to.value}")
        self.state = to
        self.updated_at = now

    def _changed(self, now: float, change: str, **extra: Any) -> None:
        self.pending_events.append(SyncJobChangedEvent(app_id=self.app_id, user=self.user, occurred_at=now,
                                                       job_id=self.id, stream=self.key, state=self.state.value,
                                                       change=change, **extra))

    def start_run(self, *, now: float) -> None:
        self._move(SyncState.RUNNING, now)
        self.last_run_at = now
        self.runs += 1
        self._changed(now, "started")

    def finish(self, counts: SyncCounts, *, now: float, duration: float) -> None:
        """The run completed: back to idle, with the counts as a DataSyncedEvent."""
        self._move(SyncState.IDLE, now)
        self.last_success_at, self.last_error, self.last_counts = now, None, counts
        self.totals.add(counts)
        self.pending_events.append(DataSyncedEvent(
            app_id=self.app_id, user=self.user, occurred_at=now, service=self.service, job_id=self.id,
            stream=self.key, created=counts.created, updated=counts.updated, deleted=counts.deleted,
            pushed=counts.pushed, conflicts=counts.conflicts, duration=round(duration, 6)))

    def _failed(self, to: SyncState, counts: SyncCounts, *, now: float, category: str, message: str,
                status: int | None = None, provider_code: str | None = None) -> None:
        self._move(to, now)
        self.last_error, self.last_counts = message, counts
        self.totals.add(counts)
        self.pending_events.append(IntegrationFailedEvent(
            app_id=self.app_id, user=self.user, occurred_at=now, service=self.service, category=category,
            message=f"sync {self.key}: {message}", status=status, provider_code=provider_code))
        self._changed(now, to.value)

    def fail(self, counts: SyncCounts, *, now: float, category: str, message: str, status: int | None = None,
             provider_code: str | None = None) -> None:
        self._failed(SyncState.FAILED, counts, now=now, category=category, message=message, status=status,
                     provider_code=provider_code)

    def stall(self, counts: SyncCounts, *, now: float, after: float) -> None:
        """No progress for ``after`` seconds: stalled, and an IntegrationFailedEvent (never a success)."""
        self._failed(SyncState.STALLED, counts, now=now, category="network_error",
                     message=f"stalled: no progress for {after:g}s")

    def cancel(self, counts: SyncCounts, *, now: float) -> None:
        self._move(SyncState.CANCELLED, now)
        self.last_counts = counts
        self.totals.add(counts)
        self._changed(now, "cancelled")

    def interrupted(self, *, now: float) -> bool:
        """At startup: a job left RUNNING by a crash goes back to IDLE (its committed cursor is the truth)."""
        if self.state is not SyncState.RUNNING:
            return False
        self._move(SyncState.IDLE, now)
        self._changed(now, "interrupted")
        return True

    def pause(self, *, now: float) -> None:
        if self.state is SyncState.RUNNING:
            raise InvalidStateTransition(f"sync job {self.id} is running: cancel it first, then pause")
        self._move(SyncState.PAUSED, now)
        self._changed(now, "paused")

    def resume(self, *, now: float) -> None:
        self._move(SyncState.IDLE, now)
        self._changed(now, "resumed")

    def ensure_runnable(self) -> None:
        if self.state not in _ENDED:
            raise InvalidStateTransition(f"sync job {self.id} is {self.state.value}; it cannot run now")

    def reconfigure(self, *, now: float, frequency: SyncFrequency | None = None,
                    conflict_resolution: ConflictResolution | None = None, batch_size: int | None = None) -> None:
        if frequency is not None:
            self.frequency = frequency
        if conflict_resolution is not None:
            self.conflict_resolution = conflict_resolution
        if batch_size is not None:
            self.batch_size = check_batch_size(batch_size)
        self.updated_at = now
        self._changed(now, "configured")

    def deleted(self, *, now: float) -> None:
        if self.state is SyncState.RUNNING:
            raise InvalidStateTransition(f"sync job {self.id} is running: cancel it first, then delete")
        self._changed(now, "deleted")

    def pull_events(self) -> list[DomainEvent]:
        events, self.pending_events = self.pending_events, []
        return events


# ---- conflicts ------------------------------------------------------------------------------------------
class Resolution(StrEnum):
    TAKE_REMOTE = "take_remote"
    KEEP_LOCAL = "keep_local"
    PARK = "park"


@dataclass(frozen=True)
class Side:
    """One side of a conflict: when it was modified and its content hash."""

    modified: float
    content_hash: str


def latest_wins(local: Side, remote: Side) -> Resolution:
    """The later modification wins; equal times fall to the larger content hash (the same answer on both sides).

    >>> latest_wins(Side(2.0, "a"), Side(1.0, "b")).value
    'keep_local'
    >>> latest_wins(Side(1.0, "a"), Side(1.0, "b")).value
    'take_remote'
    """
    if local.modified != remote.modified:
        return Resolution.KEEP_LOCAL if local.modified > remote.modified else Resolution.TAKE_REMOTE
    return Resolution.KEEP_LOCAL if local.content_hash > remote.content_hash else Resolution.TAKE_REMOTE


def resolve_conflict(policy: ConflictResolution, local: Side, remote: Side) -> Resolution:
    """What to do with a record changed on both sides. ``manual`` parks it for a person (sync.resolve)."""
    if local.content_hash == remote.content_hash:
        return Resolution.TAKE_REMOTE     # both sides made the same change: nothing to fight over
    if policy is ConflictResolution.REMOTE_WINS:
        return Resolution.TAKE_REMOTE
    if policy is ConflictResolution.LOCAL_WINS:
        return Resolution.KEEP_LOCAL
    if policy is ConflictResolution.MANUAL:
        return Resolution.PARK
    return latest_wins(local, remote)


# ---- schedules ----------------------------------------------------------------------------------------------
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
