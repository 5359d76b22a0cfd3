"""The store's forward-only migrations, numbered from 1 and applied with ``PRAGMA user_version``.

Never edit a released migration: add the next number. Each runs in its own transaction (integd.store.db).
"""

from __future__ import annotations

from integd.store.sync_schema import PUSH_CHANNELS_SQL, RECORDS_ROWID_SQL, SYNC_MIGRATION_SQL
from integd.sinks_store import MIGRATION_SQL as SINKS_MIGRATION_SQL
from integd.oauth_store import OAUTH_MIGRATION_SQL
from integd.vault import VAULT_MIGRATION_SQL

_APPS = """
CREATE TABLE apps (
    id                   TEXT PRIMARY KEY,
    owner                TEXT NOT NULL,
    service              TEXT NOT NULL,
    name                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT NOT NULL DEFAULT '',
    base_url             TEXT,
    rate_limit           TEXT NOT NULL,          -- JSON {per_minute, per_hour, per_day, burst}
    timeout              REAL NOT NULL,
    check_interval       REAL NOT NULL,
    scopes               TEXT NOT NULL DEFAULT '[]',
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL,
    connected_at         REAL,
    last_check_at        REAL,
    last_latency         REAL,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    version              INTEGER NOT NULL DEFAULT 0,
    credential_mode      TEXT,
    credential_attrs     TEXT,                   -- JSON, non-secret attributes only
    credential           BLOB                    -- vault envelope of the secret fields; NULL once disconnected
);
CREATE INDEX apps_owner ON apps(owner);
CREATE INDEX apps_service ON apps(service);

CREATE TABLE app_shares (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user   TEXT NOT NULL,
    PRIMARY KEY (app_id, user)
);
CREATE INDEX app_shares_user ON app_shares(user);

-- The outbox: every domain event, committed in the same transaction as the state change that caused it.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    user        TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    payload     TEXT NOT NULL
);
CREATE INDEX events_app ON events(app_id, seq);
CREATE INDEX events_type ON events(type, seq);

CREATE TABLE health_checks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    checked_at  REAL NOT NULL,
    ok          INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    latency     REAL NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    status      INTEGER
);
CREATE INDEX health_checks_app ON health_checks(app_id, id);

-- Hour, day and plan windows, reserved ahead of use so a crash over-counts but never under-counts.
CREATE TABLE quota_windows (
    key          TEXT NOT NULL,
    window       TEXT NOT NULL,
    window_start REAL NOT NULL,
    reserved     INTEGER NOT NULL,
    PRIMARY KEY (key, window)
);
"""

# Numbers 3-5 were reserved for features built in parallel, so they never collide. A reserved number that is
# released empty stays empty forever (a store may already be past it): its feature then takes the next number.
MIGRATIONS: list[tuple[int, str]] = [
    (1, VAULT_MIGRATION_SQL),
    (2, _APPS),
    (3, SINKS_MIGRATION_SQL),    # event sinks (integd/sinks.py)
    (4, OAUTH_MIGRATION_SQL),    # OAuth client registrations and grant state (integd/oauth_store.py)
    (5, SYNC_MIGRATION_SQL),    # data synchronisation (integd/sync*.py)
    (6, RECORDS_ROWID_SQL),     # records: a rowid table (bulk inserts append instead of splitting the key B-tree)
    (7, PUSH_CHANNELS_SQL),     # Drive push channels registered for realtime sync jobs (integd/sync_channels.py)
]

HEALTH_HISTORY = 50
