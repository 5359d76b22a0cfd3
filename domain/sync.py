"""Data synchronisation in the domain: the SyncJob entity and conflict resolution ("when is the next run due"
lives in domain.sync_schedule and is re-exported here).

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

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from domain.errors import DomainException, InvalidConfiguration, InvalidStateTransition
from domain.events import DataSyncedEvent, DomainEvent, IntegrationFailedEvent, SyncJobChangedEvent
from domain.sync_schedule import CronSchedule, jittered, next_run_due, validate_frequency
from domain.values import ConflictResolution, SyncDirection, SyncFrequency

__all__ = ["CronSchedule", "Resolution", "Side", "SyncCounts", "SyncJob", "SyncState", "VersionConflict",
           "check_batch_size", "jittered", "latest_wins", "new_job_id", "next_run_due", "resolve_conflict",
           "validate_frequency"]

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
