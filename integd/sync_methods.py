"""The sync.* and records.* RPC methods: each validates its params (integd.api_sync) and calls SyncService.

Nothing here holds business logic; it maps between the wire models and the use cases in integd.sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integd import api, api_sync
from integd.rpc.registry import CallContext, MethodRegistry
from integd.usecases import Actor

if TYPE_CHECKING:
    from integd.bootstrap import Daemon
    from integd.sync import SyncService

_JOB_ERRORS = ((api.NOT_FOUND, "not_found"), (api.ACCESS_DENIED, "access_denied"),
               (api.INVALID_STATE, "invalid_state"), (api.INVALID_CONFIG, "invalid_config"))
_RECORD_ERRORS = _JOB_ERRORS + ((api_sync.VERSION_CONFLICT, "version_conflict"),)


def register_methods(reg: MethodRegistry, d: Daemon, s: SyncService) -> None:  # noqa: C901 - a flat list
    def actor(ctx: CallContext, p: Any) -> Actor:
        return Actor.of(ctx.principal, getattr(p, "as_user", None))

    def method(name: str, params: Any, result: Any, summary: str, errors: Any = _JOB_ERRORS) -> Any:
        tag = name.split(".")[0]
        return reg.method(name, params, result, summary=summary, errors=errors, tags=(tag,))

    @method("sync.create", api_sync.SyncCreateParams, api_sync.SyncJobInfo,
            "Create a sync job: an app's stream, direction, frequency, conflict policy and batch size.")
    async def sync_create(ctx: CallContext, p: api_sync.SyncCreateParams) -> dict[str, Any]:
        return s.info(await s.create(actor(ctx, p), p))

    @method("sync.list", api_sync.SyncListParams, list[api_sync.SyncJobInfo],
            "The sync jobs of the apps the caller may see (optionally of one app).")
    async def sync_list(ctx: CallContext, p: api_sync.SyncListParams) -> list[dict[str, Any]]:
        return [s.info(j) for j in await s.list(actor(ctx, p), p.app_id)]

    @method("sync.get", api_sync.SyncRef, api_sync.SyncJobInfo, "One sync job with its cursor, counts and progress.")
    async def sync_get(ctx: CallContext, p: api_sync.SyncRef) -> dict[str, Any]:
        return s.info(await s.get(actor(ctx, p), p.job_id))

    @method("sync.configure", api_sync.SyncConfigureParams, api_sync.SyncJobInfo,
            "Change a job's frequency, conflict policy or batch size.")
    async def sync_configure(ctx: CallContext, p: api_sync.SyncConfigureParams) -> dict[str, Any]:
        return s.info(await s.configure(actor(ctx, p), p))

    @method("sync.run", api_sync.SyncRunParams, api_sync.SyncRunResult,
            "Run a job now (a delta from its cursor, or full=true); wait=true answers when it ended.")
    async def sync_run(ctx: CallContext, p: api_sync.SyncRunParams) -> dict[str, Any]:
        job, started = await s.run(actor(ctx, p), p)
        return {"job": s.info(job), "started": started}

    @method("sync.cancel", api_sync.SyncRef, api_sync.SyncJobInfo, "Cancel a running job's run.")
    async def sync_cancel(ctx: CallContext, p: api_sync.SyncRef) -> dict[str, Any]:
        return s.info(await s.cancel(actor(ctx, p), p.job_id))

    @method("sync.pause", api_sync.SyncRef, api_sync.SyncJobInfo, "Stop scheduling a job (until sync.resume).")
    async def sync_pause(ctx: CallContext, p: api_sync.SyncRef) -> dict[str, Any]:
        return s.info(await s.pause(actor(ctx, p), p.job_id))

    @method("sync.resume", api_sync.SyncRef, api_sync.SyncJobInfo, "Schedule a paused job again.")
    async def sync_resume(ctx: CallContext, p: api_sync.SyncRef) -> dict[str, Any]:
        return s.info(await s.resume(actor(ctx, p), p.job_id))

    @method("sync.delete", api_sync.SyncRef, api_sync.DeletedResult, "Delete a job and its records.")
    async def sync_delete(ctx: CallContext, p: api_sync.SyncRef) -> dict[str, Any]:
        await s.delete(actor(ctx, p), p.job_id)
        return {"id": p.job_id, "deleted": True}

    @method("sync.conflicts", api_sync.SyncConflictsParams, list[api_sync.ConflictInfo],
            "A job's parked conflicts (include_resolved for the history).")
    async def sync_conflicts(ctx: CallContext, p: api_sync.SyncConflictsParams) -> list[dict[str, Any]]:
        return await s.conflicts(actor(ctx, p), p)

    @method("sync.resolve", api_sync.SyncResolveParams, api_sync.ResolveResult,
            "Settle a parked conflict: keep the local version (pushed next) or the remote one.")
    async def sync_resolve(ctx: CallContext, p: api_sync.SyncResolveParams) -> dict[str, Any]:
        return {"conflict_id": p.conflict_id, "resolution": await s.resolve(actor(ctx, p), p)}

    @method("records.changes", api_sync.RecordsChangesParams, api_sync.ChangesPage,
            "The change feed: record changes after a sequence number, oldest first.")
    async def records_changes(ctx: CallContext, p: api_sync.RecordsChangesParams) -> dict[str, Any]:
        changes = await s.changes(actor(ctx, p), p)
        return {"changes": changes, "last_seq": changes[-1]["seq"] if changes else p.after}

    @method("records.get", api_sync.RecordRef, api_sync.RecordInfo, "One record of a job's stream.")
    async def records_get(ctx: CallContext, p: api_sync.RecordRef) -> dict[str, Any]:
        return await s.get_record(actor(ctx, p), p.job_id, p.remote_id)

    @method("records.put", api_sync.RecordPutParams, api_sync.RecordInfo,
            "Create or change a record locally; it is pushed upstream with a conflict check.", _RECORD_ERRORS)
    async def records_put(ctx: CallContext, p: api_sync.RecordPutParams) -> dict[str, Any]:
        return await s.put_record(actor(ctx, p), p.job_id, p.remote_id, p.data, p.base_version)

    @method("records.delete", api_sync.RecordDeleteParams, api_sync.RecordInfo,
            "Delete a record locally; the deletion is pushed (GitHub: the issue is closed).", _RECORD_ERRORS)
    async def records_delete(ctx: CallContext, p: api_sync.RecordDeleteParams) -> dict[str, Any]:
        return await s.put_record(actor(ctx, p), p.job_id, p.remote_id, None, p.base_version, deleted=True)
