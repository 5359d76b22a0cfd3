"""Drive push channels: register, renew and stop ``changes.watch`` channels for realtime Drive sync jobs.

Google delivers Drive push notifications only to a channel someone registered, for at most about a week
(apis-storage-dev.md §1 "Webhooks"). With ``[webhooks] public_url`` and ``google_channel_token_file`` set (and the
listener bound), every Drive ``files`` job whose frequency is ``realtime`` and that is not paused gets one live
channel: ``POST changes/watch`` from the job's stored page token, to ``<public_url>/webhooks/google``, carrying the
configured channel token. The listener (integd/sync_webhooks.py) accepts a notification only when its token
matches and its ``X-Goog-Channel-ID`` is a live channel in the ``push_channels`` table (migration 7), and then
starts a delta run of that channel's job.

Lifecycle, reconciled by one loop (at start, every ``TICK`` seconds, and at once after a job is created,
reconfigured, paused, resumed or deleted: ``poke()``):

* an eligible job without a channel that has more than a quarter of its lifetime left gets a new one; the row is
  written BEFORE the watch call (Google's first ``sync`` message may arrive before the call returns) and removed
  if the call fails;
* a channel whose job is gone, paused, no longer realtime, or superseded by a newer channel is stopped at Google
  (``channels.stop``) and its row deleted; when the app can no longer call Google (disconnected, revoked) the row
  is deleted anyway and the channel runs out on its own;
* failures are logged (``sync.channel_failed``, the job and the reason, never the token) and retried after
  ``RETRY`` seconds; they never stop the loop or a sync.

Channel ids are ``ch_<32 hex>``: a renewal registers a NEW id (Google refuses a live duplicate), then stops
the old one, so there is no gap in coverage.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from connectors.streams import STREAMS, StreamError
from domain import FrequencyKind, IntegrationFailure, SyncJob, SyncState

if TYPE_CHECKING:
    from integd.sync import SyncService

log = structlog.get_logger("integd.sync")

TICK = 900.0          # seconds between reconciliations when nothing pokes
RETRY = 300.0         # after a failure
_FAILURES = (IntegrationFailure, StreamError)


@dataclass(frozen=True)
class ChannelRow:
    id: str
    job_id: str
    app_id: str
    resource_id: str | None
    created_at: float
    expires_at: float


def eligible(job: SyncJob) -> bool:
    return (job.service == "google_drive" and job.stream == "files" and job.frequency.kind is FrequencyKind.REALTIME
            and job.state is not SyncState.PAUSED)


class DriveChannels:
    """``DriveChannels(sync_service, address="https://host/webhooks/google", token="...", lifetime=518400.0)``;
    the daemon spawns ``run(stop_event)``; ``poke()`` after a job changes; ``job_for(channel_id)`` for the
    listener."""

    def __init__(self, service: SyncService, *, address: str, token: str, lifetime: float) -> None:
        self.service, self.address, self.lifetime = service, address, lifetime
        self._token = token
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()                # one pass at a time (the loop, or a caller awaiting one)
        self._live: dict[str, ChannelRow] = {}     # job id -> its channel, as the last pass left them

    @property
    def _db(self) -> Any:
        return self.service.daemon.db

    def poke(self) -> None:
        self._wake.set()

    def describe(self, job_id: str) -> dict[str, Any] | None:
        """The job's live channel as ``sync.get`` shows it (as of the last pass), or None."""
        row = self._live.get(job_id)
        return {"id": row.id, "expires_at": row.expires_at} if row is not None else None

    # ---- the loop --------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                failed = await self.reconcile()
            except Exception:                      # the store itself failed: log, keep the loop alive
                log.exception("sync.channels_crashed")
                failed = True
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=RETRY if failed else TICK)
            except TimeoutError:
                pass

    async def reconcile(self) -> bool:
        """One pass: register what is missing, stop what is no longer wanted. True if something failed."""
        async with self._lock:
            return await self._reconcile()

    async def _reconcile(self) -> bool:
        now = self.service.clock.time()
        jobs = {j.id: j for j in await self.service.records.jobs(service="google_drive") if eligible(j)}
        rows = await self.rows()
        failed = False
        keep: dict[str, ChannelRow] = {}
        for row in sorted(rows, key=lambda r: r.created_at):       # the newest good channel of a job wins
            if row.job_id in jobs and row.expires_at - now > self.lifetime / 4:
                keep[row.job_id] = row
        for job in jobs.values():
            if job.id not in keep:
                registered = await self._register(job, now)
                failed |= registered is None
                if registered is not None:
                    keep[job.id] = registered
        self._live = dict(keep)
        kept = {r.id for r in keep.values()}
        for row in rows:
            if row.id not in kept:
                reason = "renewed" if row.job_id in keep else "job gone" if row.job_id not in jobs else "expiring"
                failed |= not await self._stop(row, reason)
        return failed

    # ---- store ----------------------------------------------------------------------------------------------
    async def rows(self) -> list[ChannelRow]:
        found = await self._db.fetchall(
            "SELECT id, job_id, app_id, resource_id, created_at, expires_at FROM push_channels ORDER BY created_at")
        return [ChannelRow(r["id"], r["job_id"], r["app_id"], r["resource_id"], r["created_at"], r["expires_at"])
                for r in found]

    async def job_for(self, channel_id: str, resource_id: str | None) -> str | None:
        """The job a live channel was registered for, or None (unknown, expired, or another resource)."""
        row = await self._db.fetchone("SELECT job_id, resource_id, expires_at FROM push_channels WHERE id = ?",
                                      (channel_id,))
        if row is None or row["expires_at"] <= self.service.clock.time():
            return None
        if resource_id and row["resource_id"] and resource_id != row["resource_id"]:
            return None
        return str(row["job_id"])

    # ---- provider calls ---------------------------------------------------------------------------------------
    async def _stream(self, app_id: str, job: SyncJob | None = None) -> Any:
        app = await self.service.store.find_by_id(app_id, with_credentials=True)
        if app is None or not app.status.is_active or app.credential is None:
            return None
        connector = await self.service.daemon.runtimes.connector_for(app)
        return STREAMS[("google_drive", "files")](connector, job.resource if job else "me")

    async def _register(self, job: SyncJob, now: float) -> ChannelRow | None:
        try:
            stream = await self._stream(job.app_id, job)
        except _FAILURES as failure:
            stream, why = None, str(failure)[:300]
        else:
            why = "the app cannot call Google (reconnect it)"
        if stream is None:
            log.warning("sync.channel_failed", job_id=job.id, reason=why)
            return None
        channel_id = "ch_" + uuid.uuid4().hex
        async with self._db.write() as conn:          # before the call: the first message may beat its answer
            await conn.execute("INSERT INTO push_channels (id, job_id, app_id, service, resource_id, created_at, "
                               "expires_at) VALUES (?, ?, ?, 'google_drive', NULL, ?, ?)",
                               (channel_id, job.id, job.app_id, now, now + self.lifetime))
        try:
            token = (job.cursor or {}).get("token")
            channel = await stream.watch(channel_id, self.address, self._token, expires_at=now + self.lifetime,
                                         page_token=str(token) if token else None)
        except _FAILURES as failure:
            await self._forget(channel_id)
            log.warning("sync.channel_failed", job_id=job.id, reason=str(failure)[:300])
            return None
        except BaseException:
            await asyncio.shield(self._forget(channel_id))
            raise
        async with self._db.write() as conn:
            await conn.execute("UPDATE push_channels SET resource_id = ?, expires_at = ? WHERE id = ?",
                               (channel.resource_id, channel.expires_at, channel_id))
        log.info("sync.channel_registered", job_id=job.id, channel=channel_id, expires_at=channel.expires_at)
        return ChannelRow(channel_id, job.id, job.app_id, channel.resource_id, now, channel.expires_at)

    async def _stop(self, row: ChannelRow, reason: str) -> bool:
        """Stop ``row`` at Google and forget it. False (the row kept, retried later) when the call failed; an
        expired channel, or one whose app can no longer call Google, is forgotten without a call."""
        if row.expires_at > self.service.clock.time() and row.resource_id:
            try:
                stream = await self._stream(row.app_id)
                if stream is not None:
                    known = await stream.stop_watch(row.id, row.resource_id)
                    log.info("sync.channel_stopped", job_id=row.job_id, channel=row.id, reason=reason, known=known)
                    await self._forget(row.id)
                    return True
            except _FAILURES as failure:
                log.warning("sync.channel_failed", job_id=row.job_id, channel=row.id, reason=str(failure)[:300])
                return False
        log.info("sync.channel_dropped", job_id=row.job_id, channel=row.id, reason=reason)
        await self._forget(row.id)
        return True

    async def _forget(self, channel_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute("DELETE FROM push_channels WHERE id = ?", (channel_id,))
