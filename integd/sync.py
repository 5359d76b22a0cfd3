"""Data synchronisation as a daemon feature (listed in integd.bootstrap.FEATURES): use cases and the scheduler.

Every entry - an RPC call, a scheduler tick, a webhook delivery, a restart that finds a run cut short - comes
through :class:`SyncService`, which checks who may act on the job (whoever may see its app), changes the job
through the domain (domain.sync), commits it with its events, and hands runs to the runner (integd.sync_runner).

At start: jobs left RUNNING by a crash go back to IDLE and resume from their committed cursor at once; every
scheduled job gets its next due time (jittered, so jobs do not fire together).

>>> # FEATURES = ("integd.sync",): register() adds sync.* and records.*; start() recovers and schedules.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from connectors.streams import STREAMS
from domain import (ConflictResolution, FrequencyKind, InvalidConfiguration, InvalidStateTransition, NotFound,
                    SyncDirection, SyncFrequency, SyncJob, SyncState, next_run_due)
from domain.sync import jittered, new_job_id, validate_frequency
from integd import api_sync
from integd.store.db import ConstraintViolation
from integd.sync_channels import DriveChannels
from integd.sync_runner import SyncRunner
from integd.sync_store import SyncStore, record_dict
from integd.usecases import Actor

if TYPE_CHECKING:
    from integd.bootstrap import Daemon
    from integd.rpc.registry import MethodRegistry

log = structlog.get_logger("integd.sync")


def _frequency(m: api_sync.FrequencyModel) -> SyncFrequency:
    return validate_frequency(SyncFrequency(FrequencyKind(m.kind), minutes=m.minutes, cron=m.cron))


class SyncScheduler:
    """One heap of due times; a due job is handed to the runner, and rescheduled when its run ends."""

    def __init__(self, service: SyncService, *, jitter: float, seed: int | None = None) -> None:
        self.service = service
        self.jitter = jitter
        self._rng = random.Random(seed)
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()

    def schedule(self, job: SyncJob) -> float | None:
        now = self.service.clock.time()
        due = next_run_due(job.frequency, last_run=job.last_run_at, now=now)
        if due is None or job.state is SyncState.PAUSED:
            self._due.pop(job.id, None)
            return None
        due = jittered(due, job.frequency, self._rng, share=self.jitter)
        self._due[job.id] = due
        heapq.heappush(self._heap, (due, job.id))
        self._wake.set()
        return due

    def remove(self, job_id: str) -> None:
        self._due.pop(job_id, None)

    def next_run_at(self, job_id: str) -> float | None:
        return self._due.get(job_id)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.service.clock.time()
            while self._heap and self._heap[0][0] <= now:
                due, job_id = heapq.heappop(self._heap)
                if self._due.get(job_id) == due:
                    del self._due[job_id]
                    self.service.runner.start(job_id, reason="schedule")
            timeout = min(60.0, self._heap[0][0] - now) if self._heap else 60.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass          # the earliest due time came: loop and fire it


class SyncService:
    def __init__(self, daemon: Daemon) -> None:
        cfg = daemon.config.sync
        self.daemon = daemon
        self.store = daemon.store
        self.clock = daemon.clock
        assert daemon.db is not None
        self.records = SyncStore(daemon.db)
        self.runner = SyncRunner(store=daemon.store, records=self.records, runtimes=daemon.runtimes,
                                 clock=daemon.clock, stall_timeout=cfg.stall_timeout, concurrency=cfg.concurrency,
                                 full_refresh_every=cfg.full_refresh_every,
                                 progress=self._progress, on_finished=self._finished)
        self.scheduler = SyncScheduler(self, jitter=cfg.jitter, seed=daemon.seed)
        self.channels: DriveChannels | None = None     # Drive push channels, when the webhook listener can get them
        self._stop = asyncio.Event()

    # ---- life ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        resumed = 0
        for job in await self.records.jobs():
            if job.state is not SyncState.RUNNING:
                self.scheduler.schedule(job)
                continue
            async with self.store.transaction() as tx:        # a run cut short by a crash: resume it now
                fresh = await self.records.job_in(tx.conn, job.id)
                if fresh.interrupted(now=self.clock.time()):
                    await self.records.save_job(tx, fresh)
            resumed += 1
            self.runner.start(job.id, reason="resume")
        self.daemon.spawn(self.scheduler.run(self._stop), name="sync-scheduler")
        log.info("sync.ready", resumed=resumed)

    async def stop(self) -> None:
        self._stop.set()
        self.scheduler._wake.set()
        await self.runner.stop()

    def _finished(self, job_id: str) -> None:
        async def again() -> None:
            job = await self.records.get_job(job_id)
            if job is not None:
                self.scheduler.schedule(job)
        if not self._stop.is_set():
            self.daemon.spawn(again(), name=f"sync-reschedule:{job_id}")

    def _jobs_changed(self) -> None:
        if self.channels is not None:
            self.channels.poke()

    async def _progress(self, job: SyncJob, progress: dict[str, Any]) -> None:
        await self.daemon.subscriptions.notify_app(job.app_id, job.user, "sync.progress", {"progress": progress})

    # ---- access -------------------------------------------------------------------------------------------
    async def _job(self, actor: Actor, job_id: str) -> SyncJob:
        job = await self.records.get_job(job_id)
        if job is None:
            raise NotFound(f"no sync job {job_id[:40]}")
        try:
            await self.daemon.usecases._visible(actor, job.app_id)
        except NotFound:
            raise NotFound(f"no sync job {job_id[:40]}") from None
        return job

    async def _manageable(self, actor: Actor, job_id: str) -> SyncJob:
        job = await self._job(actor, job_id)
        app = await self.store.find_by_id(job.app_id)
        if app is not None:
            app.ensure_manageable_by(actor.user, admin=actor.admin)
        return job

    def info(self, job: SyncJob) -> dict[str, Any]:
        run = self.runner.running(job.id)
        return {"id": job.id, "app_id": job.app_id, "user": job.user, "service": job.service,
                "stream": job.stream, "resource": job.resource, "key": job.key, "direction": job.direction.value,
                "frequency": {"kind": job.frequency.kind.value, "minutes": job.frequency.minutes,
                              "cron": job.frequency.cron},
                "conflict_resolution": job.conflict_resolution.value, "batch_size": job.batch_size,
                "state": job.state.value, "cursor": job.cursor, "created_at": job.created_at,
                "updated_at": job.updated_at, "last_run_at": job.last_run_at,
                "last_success_at": job.last_success_at, "last_error": job.last_error,
                "last_counts": job.last_counts.as_dict(), "totals": job.totals.as_dict(), "runs": job.runs,
                "next_run_at": self.scheduler.next_run_at(job.id),
                "progress": ({"phase": run.phase, "remaining": run.remaining, **run.counts.as_dict()}
                             if run is not None else None),
                "push_channel": self.channels.describe(job.id) if self.channels is not None else None}

    # ---- jobs ---------------------------------------------------------------------------------------------
    async def create(self, actor: Actor, p: api_sync.SyncCreateParams) -> SyncJob:
        app = await self.daemon.usecases._visible(actor, p.app_id)
        app.ensure_manageable_by(actor.user, admin=actor.admin)
        stream_cls = STREAMS.get((app.service, p.stream))
        if stream_cls is None:
            known = ", ".join(sorted(s for svc, s in STREAMS if svc == app.service)) or "none"
            raise InvalidConfiguration(f"{app.service} has no stream {p.stream[:40]!r} (streams: {known})",
                                       field="stream")
        try:
            resource = stream_cls.check_resource(p.resource)
        except ValueError as bad:
            raise InvalidConfiguration(str(bad), field="resource") from None
        direction = SyncDirection(p.direction)
        if direction is not SyncDirection.PULL and not (stream_cls.can_update or stream_cls.can_delete) \
                and p.conflict_resolution == "manual":
            raise InvalidConfiguration(f"{app.service} {p.stream} only creates records upstream: there is "
                                       "nothing to resolve by hand", field="conflict_resolution")
        job = SyncJob.create(new_job_id(), app_id=str(app.id), user=app.owner, service=app.service,
                             stream=p.stream, resource=resource, now=self.clock.time(), direction=direction,
                             frequency=_frequency(p.frequency),
                             conflict_resolution=ConflictResolution(p.conflict_resolution), batch_size=p.batch_size)
        try:
            async with self.store.transaction() as tx:
                await self.records.save_job(tx, job)
        except ConstraintViolation:
            raise InvalidConfiguration(f"app {app.id} already has a sync job for {job.key}",
                                       field="resource") from None
        self.scheduler.schedule(job)
        self._jobs_changed()
        return job

    async def list(self, actor: Actor, app_id: str | None) -> list[SyncJob]:
        if app_id is not None:
            await self.daemon.usecases._visible(actor, app_id)
            return await self.records.jobs(app_ids=[app_id])
        if actor.admin:
            return await self.records.jobs()
        visible = [str(a.id) for a in await self.store.find_by_user(actor.user)]
        return await self.records.jobs(app_ids=visible)

    async def get(self, actor: Actor, job_id: str) -> SyncJob:
        return await self._job(actor, job_id)

    async def _change(self, actor: Actor, job_id: str, change: Any) -> SyncJob:
        await self._manageable(actor, job_id)
        async with self.store.transaction() as tx:
            job = await self.records.job_in(tx.conn, job_id)
            change(job)
            await self.records.save_job(tx, job)
        return job

    async def configure(self, actor: Actor, p: api_sync.SyncConfigureParams) -> SyncJob:
        job = await self._change(actor, p.job_id, lambda j: j.reconfigure(
            now=self.clock.time(), frequency=_frequency(p.frequency) if p.frequency else None,
            conflict_resolution=ConflictResolution(p.conflict_resolution) if p.conflict_resolution else None,
            batch_size=p.batch_size))
        self.scheduler.schedule(job)
        self._jobs_changed()
        return job

    async def run(self, actor: Actor, p: api_sync.SyncRunParams) -> tuple[SyncJob, bool]:
        job = await self._job(actor, p.job_id)
        already = self.runner.running(job.id)
        if already is None:
            job.ensure_runnable()
        run = self.runner.start(job.id, full=p.full, reason="manual")
        if p.wait and run.task is not None:
            await asyncio.shield(asyncio.gather(run.task, return_exceptions=True))
        return await self._job(actor, p.job_id), already is None

    async def cancel(self, actor: Actor, job_id: str) -> SyncJob:
        await self._manageable(actor, job_id)
        if not await self.runner.cancel(job_id):
            raise InvalidStateTransition(f"sync job {job_id[:40]} is not running")
        return await self._job(actor, job_id)

    async def pause(self, actor: Actor, job_id: str) -> SyncJob:
        job = await self._change(actor, job_id, lambda j: j.pause(now=self.clock.time()))
        self.scheduler.remove(job_id)
        self._jobs_changed()
        return job

    async def resume(self, actor: Actor, job_id: str) -> SyncJob:
        job = await self._change(actor, job_id, lambda j: j.resume(now=self.clock.time()))
        self.scheduler.schedule(job)
        self._jobs_changed()
        return job

    async def delete(self, actor: Actor, job_id: str) -> None:
        await self._manageable(actor, job_id)
        async with self.store.transaction() as tx:
            job = await self.records.job_in(tx.conn, job_id)
            job.deleted(now=self.clock.time())
            await self.records.delete_job(tx, job)
        self.scheduler.remove(job_id)
        self._jobs_changed()

    # ---- conflicts and records ------------------------------------------------------------------------------
    async def conflicts(self, actor: Actor, p: api_sync.SyncConflictsParams) -> list[dict[str, Any]]:
        await self._job(actor, p.job_id)
        return await self.records.conflicts(job_id=p.job_id, open_only=not p.include_resolved, limit=p.limit)

    async def resolve(self, actor: Actor, p: api_sync.SyncResolveParams) -> str:
        await self._manageable(actor, p.job_id)
        async with self.store.transaction() as tx:
            job = await self.records.job_in(tx.conn, p.job_id)
            resolution = await self.records.resolve(tx.conn, job, p.conflict_id, p.keep, now=self.clock.time())
        if p.keep == "local" and job.pushes:
            self.runner.start(job.id, reason="resolved")
        return resolution

    async def changes(self, actor: Actor, p: api_sync.RecordsChangesParams) -> list[dict[str, Any]]:
        app_ids: list[str] | None = None
        if p.job_id is not None:
            await self._job(actor, p.job_id)
        if p.app_id is not None:
            await self.daemon.usecases._visible(actor, p.app_id)
            app_ids = [p.app_id]
        elif not actor.admin:
            app_ids = [str(a.id) for a in await self.store.find_by_user(actor.user)]
        return await self.records.changes_after(p.after, app_ids=app_ids, job_id=p.job_id, limit=p.limit)

    async def get_record(self, actor: Actor, job_id: str, remote_id: str) -> dict[str, Any]:
        await self._job(actor, job_id)
        found = await self.records.get_record(job_id, remote_id)
        if found is None:
            raise NotFound(f"no record {remote_id[:60]} in sync job {job_id[:40]}")
        return found

    async def put_record(self, actor: Actor, job_id: str, remote_id: str | None, data: dict[str, Any] | None,
                         base_version: int | None, *, deleted: bool = False) -> dict[str, Any]:
        job = await self._job(actor, job_id)
        stream_cls = STREAMS[(job.service, job.stream)]
        if not job.pushes:
            raise InvalidConfiguration(f"sync job {job.id} only pulls: a local change would never reach "
                                       f"{job.service}; create a push or bidirectional job", field="job_id")
        kind = "delete" if deleted else "create" if remote_id is None else "update"
        if not {"delete": stream_cls.can_delete, "create": stream_cls.can_create,
                "update": stream_cls.can_update}[kind]:
            allowed = [k for k, ok in (("create", stream_cls.can_create), ("update", stream_cls.can_update),
                                       ("delete", stream_cls.can_delete)) if ok]
            raise InvalidConfiguration(f"{job.service} {job.stream} cannot {kind} records upstream (it can: "
                                       f"{', '.join(allowed) or 'nothing'})", field="remote_id")
        if data is not None:
            try:
                json.dumps(data)
            except (TypeError, ValueError):
                raise InvalidConfiguration("record data must be JSON", field="data") from None
        async with self.store.transaction() as tx:
            rid = await self.records.put_local(tx.conn, job, remote_id, data or {}, base_version=base_version,
                                               deleted=deleted, now=self.clock.time())
            row = await self.records.record_in(tx.conn, job.id, rid)
        self.runner.start(job.id, reason="local_change")
        return record_dict(row)

    # ---- webhooks -------------------------------------------------------------------------------------------
    async def trigger(self, service: str, resource: str | None, reason: str, *,
                      job_id: str | None = None, threads: Sequence[str] = ()) -> list[str]:
        """A verified webhook delivery: an immediate delta run of every job on that provider resource (None:
        every job of the service), or of the one job a channel was registered for; ``threads`` the delivery
        named (a Slack reply's thread) are re-read by that run."""
        started = []
        for job in await self.records.jobs(service=service, resource=resource):
            if job.state is SyncState.PAUSED or (job_id is not None and job.id != job_id):
                continue
            self.runner.start(job.id, reason=reason, threads=threads)
            started.append(job.id)
        return started


# ---- the feature hooks -----------------------------------------------------------------------------------------
def register(registry: MethodRegistry, daemon: Daemon) -> None:
    from integd.sync_methods import register_methods
    daemon.sync = SyncService(daemon)
    register_methods(registry, daemon, daemon.sync)


async def start(daemon: Daemon) -> None:
    from integd.sync_webhooks import WebhookListener
    await daemon.sync.start()
    daemon.webhooks = None
    if daemon.config.webhooks.bind:
        daemon.webhooks = WebhookListener(daemon.config.webhooks, daemon.sync, daemon.store, daemon.clock)
        await daemon.webhooks.start()
        hooks = daemon.config.webhooks
        if hooks.public_url and daemon.webhooks.google_token is not None:
            daemon.sync.channels = DriveChannels(
                daemon.sync, address=hooks.public_url.rstrip("/") + "/webhooks/google",
                token=daemon.webhooks.google_token.decode(), lifetime=hooks.google_channel_hours * 3600)
            daemon.spawn(daemon.sync.channels.run(daemon.sync._stop), name="sync-drive-channels")
        elif hooks.public_url or daemon.webhooks.google_token is not None:
            log.warning("sync.channels_off", reason="Drive push channels need both [webhooks] public_url and "
                        "google_channel_token_file", public_url=bool(hooks.public_url),
                        channel_token=daemon.webhooks.google_token is not None)


async def stop(daemon: Daemon) -> None:
    listener = getattr(daemon, "webhooks", None)
    if listener is not None:
        await listener.stop()
    service = getattr(daemon, "sync", None)
    if service is not None:
        await service.stop()
