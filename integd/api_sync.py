"""The JSON-RPC schema of data synchronisation: params and result models of sync.* and records.*.

Error codes added by this feature (see integd.api for the common ones)::

    -32025 version_conflict     records.put/delete named a base_version that is no longer current
                                (data.current_version is the record's version now)

Progress is the WebSocket notification ``sync.progress`` (params ``{"subscription", "progress"}``), sent to
subscriptions that may see the app: ``progress`` holds job_id, app_id, stream, phase (push|pull), full, done,
remaining (the provider's estimate of records still to pull in this pass, e.g. from GitHub's Link rel="last";
null when the provider gives none) and the running counts (created, updated, deleted, pushed, conflicts,
unchanged, pages). A progress bar is ``pulled / (pulled + remaining)`` with pulled = created + updated +
unchanged; indeterminate while remaining is null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from integd.api import ActingParams, Params, Result

VERSION_CONFLICT = -32025

Direction = Literal["pull", "push", "bidirectional"]
Policy = Literal["latest_wins", "remote_wins", "local_wins", "manual"]
State = Literal["idle", "running", "paused", "stalled", "failed", "cancelled"]


class FrequencyModel(Params):
    kind: Literal["realtime", "interval", "hourly", "daily", "cron", "manual"] = "manual"
    minutes: int | None = Field(None, ge=1, le=10080, description="For kind=interval.")
    cron: str | None = Field(None, max_length=120, description="For kind=cron: five fields, UTC.")


class SyncCreateParams(ActingParams):
    app_id: str = Field(..., description="The app whose stream to sync.")
    stream: str = Field(..., min_length=1, max_length=40, description="github: issues; slack: messages.")
    resource: str = Field(..., min_length=1, max_length=200,
                          description="What inside the account: 'owner/repo' (GitHub), a channel id (Slack).")
    direction: Direction = "pull"
    frequency: FrequencyModel = FrequencyModel()
    conflict_resolution: Policy = "latest_wins"
    batch_size: int = Field(100, ge=1, le=1000)


class SyncListParams(ActingParams):
    app_id: str | None = None


class SyncRef(ActingParams):
    job_id: str = Field(..., min_length=1, max_length=64)


class SyncConfigureParams(SyncRef):
    frequency: FrequencyModel | None = None
    conflict_resolution: Policy | None = None
    batch_size: int | None = Field(None, ge=1, le=1000)


class SyncRunParams(SyncRef):
    full: bool = Field(False, description="A full refresh: list everything and tombstone what is gone.")
    wait: bool = Field(False, description="Answer when the run has ended (else at once).")


class SyncConflictsParams(SyncRef):
    include_resolved: bool = False
    limit: int = Field(100, ge=1, le=1000)


class SyncResolveParams(SyncRef):
    conflict_id: int = Field(..., ge=1)
    keep: Literal["local", "remote"]


class RecordsChangesParams(ActingParams):
    after: int = Field(0, ge=0, description="The last sequence number already read.")
    app_id: str | None = None
    job_id: str | None = None
    limit: int = Field(500, ge=1, le=10000)


class RecordRef(SyncRef):
    remote_id: str = Field(..., min_length=1, max_length=200)


class RecordPutParams(SyncRef):
    remote_id: str | None = Field(None, min_length=1, max_length=200, description="None creates a record.")
    data: dict[str, Any]
    base_version: int | None = Field(None, ge=1, description="The version the change is based on (checked).")


class RecordDeleteParams(RecordRef):
    base_version: int | None = Field(None, ge=1)


# ---- results ------------------------------------------------------------------------------------------------
class CountsModel(Result):
    created: int = 0
    updated: int = 0
    deleted: int = 0
    pushed: int = 0
    conflicts: int = 0
    unchanged: int = 0
    pages: int = 0


class SyncJobInfo(Result):
    id: str
    app_id: str
    user: str
    service: str
    stream: str
    resource: str
    key: str
    direction: Direction
    frequency: dict[str, Any]
    conflict_resolution: Policy
    batch_size: int
    state: State
    cursor: dict[str, Any] | None
    created_at: float
    updated_at: float
    last_run_at: float | None
    last_success_at: float | None
    last_error: str | None
    last_counts: CountsModel
    totals: CountsModel
    runs: int
    next_run_at: float | None = Field(None, description="When the scheduler runs it next (None: on demand).")
    progress: dict[str, Any] | None = Field(None, description="The running run's counts, if running.")
    push_channel: dict[str, Any] | None = Field(
        None, description="The live provider push channel this job is heard through ({id, expires_at}; Drive "
                          "realtime jobs when [webhooks] public_url is set), else None.")


class SyncRunResult(Result):
    job: SyncJobInfo
    started: bool = Field(..., description="False if a run was already going (one run per job).")


class DeletedResult(Result):
    id: str
    deleted: bool


class ConflictInfo(Result):
    id: int
    job_id: str
    remote_id: str
    local: Any = None
    remote: Any = None
    local_modified: float | None
    remote_modified: float | None
    policy: Policy
    resolution: str | None
    created_at: float
    resolved_at: float | None


class ResolveResult(Result):
    conflict_id: int
    resolution: Literal["keep_local", "take_remote"]


class RecordInfo(Result):
    job_id: str
    remote_id: str
    app_id: str
    stream: str
    data: Any
    remote_modified: float | None
    local_modified: float | None
    content_hash: str
    deleted: bool
    version: int
    sync_state: Literal["in_step", "to_push", "conflict"]


class ChangeInfo(Result):
    seq: int
    job_id: str
    app_id: str
    stream: str
    remote_id: str
    op: Literal["created", "updated", "deleted"]
    origin: Literal["remote", "local"]
    version: int
    at: float
    previous_id: str | None = None


class ChangesPage(Result):
    changes: list[ChangeInfo]
    last_seq: int
