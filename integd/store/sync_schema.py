"""Migration 5: the tables of data synchronisation (integd/sync*.py).

* ``sync_jobs``: one row per SyncJob (its cursor is JSON, committed with each batch of records).
* ``records``: per job and remote id, the record's data (canonical JSON), remote and local modification times,
  content hash (an unchanged record is neither rewritten nor reported), deleted flag (tombstone), version, and
  ``dirty``: 0 in step with the provider, 1 a local change waiting to be pushed, 2 a parked conflict.
  ``seen_run`` marks the rows a full refresh saw, so the sweep can tombstone the rest.
* ``record_changes``: the change feed, a monotonic ``seq`` the platform reads after (``records.changes``).
* ``sync_conflicts``: conflicts, parked for a person under the ``manual`` policy, kept as history otherwise.
* ``webhook_deliveries``: delivery ids already accepted (replay protection).
"""

SYNC_MIGRATION_SQL = """
CREATE TABLE sync_jobs (
    id                  TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user                TEXT NOT NULL,
    service             TEXT NOT NULL,
    stream              TEXT NOT NULL,
    resource            TEXT NOT NULL,
    direction           TEXT NOT NULL,
    frequency           TEXT NOT NULL,            -- JSON {kind, minutes, cron}
    conflict_resolution TEXT NOT NULL,
    batch_size          INTEGER NOT NULL,
    state               TEXT NOT NULL,
    cursor              TEXT,                     -- JSON, the stream's delta position
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL,
    last_run_at         REAL,
    last_success_at     REAL,
    last_error          TEXT,
    last_counts         TEXT NOT NULL DEFAULT '{}',
    totals              TEXT NOT NULL DEFAULT '{}',
    runs                INTEGER NOT NULL DEFAULT 0,
    version             INTEGER NOT NULL DEFAULT 0,
    UNIQUE (app_id, stream, resource)
);
CREATE INDEX sync_jobs_app ON sync_jobs(app_id);

CREATE TABLE records (
    job_id          TEXT NOT NULL REFERENCES sync_jobs(id) ON DELETE CASCADE,
    remote_id       TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    stream          TEXT NOT NULL,
    data            TEXT NOT NULL,
    remote_modified REAL,
    local_modified  REAL,
    content_hash    TEXT NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 1,
    dirty           INTEGER NOT NULL DEFAULT 0,
    base_modified   REAL,
    seen_run        TEXT,
    PRIMARY KEY (job_id, remote_id)
) WITHOUT ROWID;
CREATE INDEX records_dirty ON records(job_id, dirty) WHERE dirty <> 0;

CREATE TABLE record_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    stream      TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    op          TEXT NOT NULL,                    -- created | updated | deleted
    origin      TEXT NOT NULL,                    -- remote | local
    version     INTEGER NOT NULL,
    at          REAL NOT NULL,
    previous_id TEXT                              -- a local record's id before its first push named it
);
CREATE INDEX record_changes_app ON record_changes(app_id, seq);
CREATE INDEX record_changes_job ON record_changes(job_id, seq);

CREATE TABLE sync_conflicts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL REFERENCES sync_jobs(id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL,
    remote_id       TEXT NOT NULL,
    local_data      TEXT,
    remote_data     TEXT,
    local_modified  REAL,
    remote_modified REAL,
    policy          TEXT NOT NULL,
    resolution      TEXT,                         -- take_remote | keep_local | NULL while parked
    created_at      REAL NOT NULL,
    resolved_at     REAL
);
CREATE UNIQUE INDEX sync_conflicts_open ON sync_conflicts(job_id, remote_id) WHERE resolved_at IS NULL;

CREATE TABLE webhook_deliveries (
    provider    TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (provider, delivery_id)
) WITHOUT ROWID;
"""


# Migration 6: ``records`` becomes a rowid table with a UNIQUE (job_id, remote_id) index. As a WITHOUT ROWID table
# every record (about 1 KB of JSON) lived inside the primary-key B-tree, so a batch of 100 inserts at scattered
# key positions dirtied and rewrote about a hundred full pages at COMMIT; now the rows append to the table's end
# and only the small index entries land at scattered positions. Measured with 20,000 GitHub issues in 100-row
# committed batches: 1.20 s -> 0.35 s (bench/bench_sync.py; SQLite's own advice is WITHOUT ROWID only for rows
# under about 1/20 of a page).
RECORDS_ROWID_SQL = """
CREATE TABLE records_new (
    job_id          TEXT NOT NULL REFERENCES sync_jobs(id) ON DELETE CASCADE,
    remote_id       TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    stream          TEXT NOT NULL,
    data            TEXT NOT NULL,
    remote_modified REAL,
    local_modified  REAL,
    content_hash    TEXT NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 1,
    dirty           INTEGER NOT NULL DEFAULT 0,
    base_modified   REAL,
    seen_run        TEXT,
    UNIQUE (job_id, remote_id)
);
INSERT INTO records_new (job_id, remote_id, app_id, stream, data, remote_modified, local_modified, content_hash,
                         deleted, version, dirty, base_modified, seen_run)
    SELECT job_id, remote_id, app_id, stream, data, remote_modified, local_modified, content_hash, deleted, version,
           dirty, base_modified, seen_run FROM records ORDER BY remote_modified, remote_id;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE INDEX records_dirty ON records(job_id, dirty) WHERE dirty <> 0;
"""


# Migration 7: Drive push channels (changes.watch) integd registered, one row per live channel
# (integd/sync_channels.py). No foreign key to sync_jobs: a deleted job's channel must outlive the job's row long
# enough to be stopped at the provider.
PUSH_CHANNELS_SQL = """
CREATE TABLE push_channels (
    id          TEXT PRIMARY KEY,                 -- our channel id (X-Goog-Channel-ID)
    job_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    service     TEXT NOT NULL,
    resource_id TEXT,                             -- the provider's id of the watched resource (for stop)
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE INDEX push_channels_job ON push_channels(job_id);
"""
