"""The sync runner: one run per job at a time, pushing local changes then pulling pages, crash-safe.

A run (``SyncRunner.start(job_id)``) is an asyncio task:

1. ``RUNNING`` is committed (SyncJobChangedEvent).
2. Push (push / bidirectional jobs): each dirty record is checked against the provider's current version
   (``stream.fetch``); if the provider changed it since the version the local change was based on, the job's
   ConflictResolution decides (take theirs, push ours, or park it for a person). Then ``stream.push``.
3. Pull (pull / bidirectional jobs): page after page from the stored cursor. Each page, its merge into the records
   store (executemany), the change-feed rows and the advanced cursor commit in ONE transaction, so a kill -9 at
   any instant resumes from the last committed page: nothing lost, nothing twice. The network call is never made
   inside the transaction. An expired delta token (CursorExpired) restarts as a full refresh on its own; when a
   full pass ends, the records it did not see are tombstoned (the sweep).
4. The end is committed with its events: DataSyncedEvent (counts + duration) on success, IntegrationFailedEvent
   for a failure or a stall (never reported as success), SyncJobChangedEvent for a cancel.

Provider calls go through the app's connector with ``interactive=False``: runs share the app's rate limits with
every other caller and wait for them instead of failing. A watchdog cancels a run that made no progress (no page
committed, no record pushed) for ``stall_timeout`` seconds and marks it STALLED. ``progress`` is called after
each committed page or push with a small dict (the ``sync.progress`` notification; not an outbox event).

Errors that end a run as FAILED: IntegrationFailure (connector), StreamError and its subclasses (streams),
RateLimitExceededException / UsageLimitExceededException (our gate refused even a waiting call).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.streams import (STREAMS, CursorExpired, LocalChange, Page, Stream, StreamError, canonical,
                                content_hash)
from domain import (Clock, IntegrationError, IntegrationFailure, InvalidStateTransition, NotFound,
                    RateLimitExceededException, Resolution, Side, SyncCounts, SyncJob, SyncState,
                    UsageLimitExceededException, resolve_conflict)
from integd.runtime import Runtimes
from integd.store.repository import AppStore
from integd.sync_store import SyncStore

log = structlog.get_logger("integd.sync")

Progress = Callable[[SyncJob, dict[str, Any]], Awaitable[None] | None]
_FAILURES = (IntegrationFailure, StreamError, RateLimitExceededException, UsageLimitExceededException)


@dataclass
class Run:
    job_id: str
    full: bool
    reason: str
    counts: SyncCounts = field(default_factory=SyncCounts)
    last_progress: float = 0.0
    cancel_reason: str | None = None          # "cancel" (a person), "stall" (the watchdog), "stop" (shutdown)
    task: asyncio.Task[None] | None = None
    phase: str = "starting"
    remaining: int | None = None              # the provider's estimate of records still to pull (progress bars)
    again: str | None = None                  # a reason to run once more right after (a change came in meanwhile)
    threads: set[str] = field(default_factory=set)   # threads a webhook named, re-read after the pull


class SyncRunner:
    def __init__(self, *, store: AppStore, records: SyncStore, runtimes: Runtimes, clock: Clock,
                 stall_timeout: float = 600.0, concurrency: int = 4, progress: Progress | None = None,
                 on_finished: Callable[[str], None] | None = None, full_refresh_every: int = 0) -> None:
        self.store, self.records, self.runtimes, self.clock = store, records, runtimes, clock
        self.stall_timeout = stall_timeout
        self.full_refresh_every = full_refresh_every
        self.progress = progress
        self.on_finished = on_finished
        self._slots = asyncio.Semaphore(concurrency)
        self._runs: dict[str, Run] = {}

    # ---- control --------------------------------------------------------------------------------------------
    def running(self, job_id: str) -> Run | None:
        return self._runs.get(job_id)

    def start(self, job_id: str, *, full: bool = False, reason: str = "manual",
              threads: Iterable[str] = ()) -> Run:
        """Start a run, or return the one already running (one run per job at a time).

        A webhook or a local change arriving during a run may already be behind that run's position, so it
        earns one follow-up run right after (however many arrive meanwhile: one). ``threads`` (a Slack reply's
        thread, named by its webhook) are re-read after the pull, by this run or the follow-up."""
        current = self._runs.get(job_id)
        if current is not None:
            current.full = current.full or full
            current.threads.update(threads)
            if reason.startswith(("webhook", "local_change", "resolved")):
                current.again = reason
            return current
        run = Run(job_id, full, reason, last_progress=self._now_mono(), threads=set(threads))
        self._runs[job_id] = run
        run.task = asyncio.create_task(self._guarded(run), name=f"sync:{job_id}")
        return run

    async def cancel(self, job_id: str, *, reason: str = "cancel") -> bool:
        run = self._runs.get(job_id)
        if run is None or run.task is None:
            return False
        run.cancel_reason = reason
        run.task.cancel()
        await asyncio.gather(run.task, return_exceptions=True)
        return True

    async def stop(self) -> None:
        """Shutdown: cancel every run; each commits itself back to IDLE (its cursor already stored)."""
        await asyncio.gather(*(self.cancel(job_id, reason="stop") for job_id in list(self._runs)))

    @staticmethod
    def _now_mono() -> float:
        return asyncio.get_running_loop().time()

    # ---- one run ---------------------------------------------------------------------------------------------
    async def _guarded(self, run: Run) -> None:
        try:
            async with self._slots:
                run.last_progress = self._now_mono()
                await self._run(run)
        except asyncio.CancelledError:
            if run.cancel_reason is None:
                raise
        except InvalidStateTransition as refused:
            log.info("sync.not_runnable", job_id=run.job_id, reason=str(refused))
        except Exception:
            log.exception("sync.run_crashed", job_id=run.job_id)
        finally:
            self._runs.pop(run.job_id, None)
            if run.again is not None and run.cancel_reason is None:
                self.start(run.job_id, reason=run.again, threads=run.threads)
            elif self.on_finished is not None:
                self.on_finished(run.job_id)

    async def _run(self, run: Run) -> None:
        try:
            began = await self._begin(run)
        except InvalidStateTransition:
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self._end(run, run.cancel_reason or "stop"))
            raise
        except Exception as broken:          # RUNNING is committed: never leave the job stuck in it
            log.exception("sync.start_failed", job_id=run.job_id)
            await self._end(run, "failed", failure=broken)
            return
        if began is None:
            return
        job, stream = began
        if not stream.tombstones and self.full_refresh_every and job.runs % self.full_refresh_every == 0:
            run.full = True                  # its deltas cannot see deletions: this run lists everything
        started = self._now_mono()
        watchdog = asyncio.create_task(self._watch(run), name=f"sync-watchdog:{run.job_id}")
        try:
            if job.pushes:
                run.phase = "push"
                await self._push(run, job, stream)
            if job.pulls:
                run.phase = "pull"
                cursor = await self._pull(run, job, stream)
                await self._pull_threads(run, job, stream, cursor)
        except asyncio.CancelledError:
            await asyncio.shield(self._end(run, run.cancel_reason or "stop"))
            raise
        except _FAILURES as failure:
            await self._end(run, "failed", failure=failure)
        except Exception as broken:          # a bug or the store: the job must not stay RUNNING
            log.exception("sync.run_crashed", job_id=job.id)
            await self._end(run, "failed", failure=broken)
        else:
            await self._end(run, "finished", duration=self._now_mono() - started)
        finally:
            watchdog.cancel()

    async def _begin(self, run: Run) -> tuple[SyncJob, Stream] | None:
        async with self.store.transaction() as tx:
            try:
                job = await self.records.job_in(tx.conn, run.job_id)
            except NotFound:
                return None
            job.ensure_runnable()
            job.start_run(now=self.clock.time())
            await self.records.save_job(tx, job)
        app = await self.store.find_by_id(job.app_id, with_credentials=True)
        if app is None or not app.status.is_active or app.credential is None:
            state = app.status.value if app else "gone"
            await self._end(run, "failed", failure=IntegrationFailure(
                IntegrationError.INVALID_CONFIGURATION, f"the app is {state}; reconnect it to sync"))
            return None
        connector = await self.runtimes.connector_for(app)
        stream = STREAMS[(job.service, job.stream)](connector, job.resource, page_size=job.batch_size)
        log.info("sync.started", job_id=job.id, app_id=job.app_id, stream=job.key, reason=run.reason,
                 full=run.full)
        return job, stream

    async def _watch(self, run: Run) -> None:
        tick = max(0.01, min(1.0, self.stall_timeout / 4))
        while True:
            await asyncio.sleep(tick)          # a timer by nature: "nothing happened for a while" has no event
            if self._now_mono() - run.last_progress > self.stall_timeout and run.task is not None:
                run.cancel_reason = "stall"
                run.task.cancel()
                return

    async def _progressed(self, run: Run, job: SyncJob, *, done: bool = False) -> None:
        run.last_progress = self._now_mono()
        if done:
            run.remaining = 0
        if self.progress is not None:
            result = self.progress(job, {"job_id": job.id, "app_id": job.app_id, "stream": job.key,
                                         "phase": run.phase, "full": run.full, "done": done,
                                         "remaining": run.remaining, **run.counts.as_dict()})
            if result is not None:
                await result

    # ---- pull ------------------------------------------------------------------------------------------------
    async def _pull(self, run: Run, job: SyncJob, stream: Stream) -> dict[str, Any]:
        """Pages from the cursor; page N+1 is fetched while page N commits (a read never depends on a write:
        each page's cursor is self-contained), and pages still commit strictly in order. The stored cursor at
        the end."""
        cursor = stream.start_cursor(job.cursor, full=run.full, pass_token=uuid.uuid4().hex)
        restarted = False
        fetching: asyncio.Task[Page] = asyncio.ensure_future(stream.pull(cursor))
        while True:
            try:
                page = await fetching
            except CursorExpired as expired:
                if restarted:
                    raise
                log.warning("sync.cursor_expired", job_id=job.id, stream=job.key, reason=str(expired))
                restarted, run.full = True, True
                cursor = stream.start_cursor(None, full=True, pass_token=uuid.uuid4().hex)
                fetching = asyncio.ensure_future(stream.pull(cursor))
                continue
            following = None if page.done else asyncio.ensure_future(stream.pull(page.cursor))
            try:
                await self._commit_page(run, job, cursor, page)
            except BaseException:
                if following is not None:
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                raise
            if following is None:
                return page.cursor
            cursor, fetching = page.cursor, following

    async def _pull_threads(self, run: Run, job: SyncJob, stream: Stream, cursor: dict[str, Any]) -> None:
        """The threads webhooks named, re-read and committed as one more page at the same cursor (a full pass
        has read every thread already)."""
        while run.threads:
            todo, run.threads = sorted(run.threads), set()
            if run.full:
                continue
            await self._commit_page(run, job, cursor, Page(await stream.pull_threads(todo), cursor, done=True))

    async def _commit_page(self, run: Run, job: SyncJob, cursor: dict[str, Any], page: Page) -> None:
        full_pass = cursor.get("pass") if cursor.get("full") else None
        if page.records or page.cursor != cursor or (page.done and full_pass):
            counts = await self.records.commit_page(job, page.records, pass_token=full_pass, now=self.clock.time(),
                                                    cursor=page.cursor, sweep=bool(page.done and full_pass))
            run.counts.add(counts)
        else:
            run.counts.pages += 1
        run.remaining = page.remaining
        await self._progressed(run, job, done=page.done)

    # ---- push ------------------------------------------------------------------------------------------------
    async def _push(self, run: Run, job: SyncJob, stream: Stream) -> None:
        tried: set[tuple[str, int]] = set()
        while True:
            rows = [r for r in await self.records.to_push(job.id, job.batch_size)
                    if (r["remote_id"], r["version"]) not in tried]
            if not rows:
                return
            for row in rows:
                tried.add((row["remote_id"], row["version"]))
                await self._push_one(run, job, stream, row)
                await self._progressed(run, job)

    async def _push_one(self, run: Run, job: SyncJob, stream: Stream, row: Any) -> None:
        local_only = row["remote_id"].startswith("local-")
        change = LocalChange(None if local_only else row["remote_id"], json.loads(row["data"]),
                             row["base_modified"], bool(row["deleted"]))
        if change.remote_id is not None and stream.can_fetch:
            current = await stream.fetch(change.remote_id)
            if current is not None and row["base_modified"] is not None and current.modified > row["base_modified"]:
                theirs = content_hash(canonical(current.data))
                outcome = resolve_conflict(job.conflict_resolution,
                                           Side(row["local_modified"] or 0.0, row["content_hash"]),
                                           Side(current.modified, theirs))
                run.counts.conflicts += 1
                async with self.store.transaction() as tx:
                    await self.records.park(tx.conn, job, row, current, resolution=outcome, now=self.clock.time())
                    if outcome is Resolution.TAKE_REMOTE:
                        await self.records.accept_remote(tx.conn, job, row, current, now=self.clock.time())
                log.info("sync.push_conflict", job_id=job.id, remote_id=row["remote_id"], outcome=outcome.value)
                if outcome is not Resolution.KEEP_LOCAL:
                    return
        remote = await stream.push(change)
        async with self.store.transaction() as tx:
            stored = await self.records.pushed(tx.conn, job, row, remote, now=self.clock.time())
        if stored:
            run.counts.pushed += 1

    # ---- the end ---------------------------------------------------------------------------------------------
    async def _end(self, run: Run, outcome: str, *, duration: float = 0.0,
                   failure: BaseException | None = None) -> None:
        async with self.store.transaction() as tx:
            try:
                job = await self.records.job_in(tx.conn, run.job_id)
            except NotFound:
                return                   # deleted meanwhile
            if job.state is not SyncState.RUNNING:
                return                   # it never got as far as RUNNING: nothing to end
            now = self.clock.time()
            if outcome == "finished":
                job.finish(run.counts, now=now, duration=duration)
            elif outcome == "stall":
                job.stall(run.counts, now=now, after=self.stall_timeout)
            elif outcome == "cancel":
                job.cancel(run.counts, now=now)
            elif outcome == "failed":
                category, status, code = _describe(failure)
                job.fail(run.counts, now=now, category=category, message=_message(failure), status=status,
                         provider_code=code)
            elif not job.interrupted(now=now):
                return
            await self.records.save_job(tx, job)
        log_fn = log.info if outcome in ("finished", "cancel", "stop") else log.warning
        log_fn("sync.ended", job_id=job.id, stream=job.key, outcome=outcome, **run.counts.as_dict())
        if outcome == "finished":
            await self._progressed(run, job, done=True)


def _message(failure: BaseException | None) -> str:
    """What the job's last_error says: our own failure texts are safe; anything else only names its type."""
    if isinstance(failure, _FAILURES) or isinstance(failure, InvalidStateTransition):
        return str(failure)[:300]
    return f"internal error ({type(failure).__name__}); see the daemon log"


def _describe(failure: BaseException | None) -> tuple[str, int | None, str | None]:
    if isinstance(failure, IntegrationFailure):
        return failure.category.value, failure.status, failure.provider_code
    if isinstance(failure, (RateLimitExceededException, UsageLimitExceededException)):
        return IntegrationError.RATE_LIMIT_EXCEEDED.value, None, None
    return IntegrationError.INVALID_CONFIGURATION.value, None, None
