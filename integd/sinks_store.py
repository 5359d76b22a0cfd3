"""Persistence of event-sink cursors (table ``sink_cursors``, migration 3).

One row per configured sink: ``cursor`` is the ``seq`` of the last outbox event the sink acknowledged with a
2xx. It is written only after a successful POST, in its own short transaction (never around the network call),
so a crash between the POST and the write re-delivers that batch: at-least-once, never at-most-once. The
failure columns survive a restart, so the backoff and "failing since" continue where they were.

>>> # cursors = SinkCursors(db); rows = await cursors.load(["analytics"]); await cursors.advance("analytics", 42, now)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from integd.store.db import Database

MIGRATION_SQL = """
CREATE TABLE sink_cursors (
    name          TEXT PRIMARY KEY,
    cursor        INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0),  -- seq of the last acknowledged event
    last_success  REAL,
    last_attempt  REAL,
    last_error    TEXT,                  -- our own summary ("HTTP 503", "connection refused"), never a body
    failing_since REAL,                  -- first failed attempt of the current run of failures
    failures      INTEGER NOT NULL DEFAULT 0  -- consecutive failed attempts: the backoff exponent
);
"""


@dataclass
class CursorRow:
    """A sink's delivery state as stored."""
    name: str
    cursor: int = 0
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    failing_since: float | None = None
    failures: int = 0


class SinkCursors:
    """Reads and writes ``sink_cursors``; each write is one short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, names: Sequence[str]) -> dict[str, CursorRow]:
        """The rows of ``names``, creating missing ones at cursor 0 (a new sink gets the whole outbox)."""
        async with self.db.write() as conn:
            await conn.executemany("INSERT OR IGNORE INTO sink_cursors (name) VALUES (?)", [(n,) for n in names])
            rows = await conn.execute_fetchall(
                "SELECT name, cursor, last_success, last_attempt, last_error, failing_since, failures "
                "FROM sink_cursors")
        wanted = set(names)
        return {r["name"]: CursorRow(**dict(r)) for r in rows if r["name"] in wanted}

    async def advance(self, name: str, cursor: int, at: float) -> None:
        """A batch up to ``cursor`` was acknowledged: move on and clear the failure state."""
        async with self.db.write() as conn:
            await conn.execute(
                "UPDATE sink_cursors SET cursor = ?, last_success = ?, last_attempt = ?, last_error = NULL, "
                "failing_since = NULL, failures = 0 WHERE name = ?", (cursor, at, at, name))

    async def failed(self, row: CursorRow) -> None:
        """Record a failed attempt (the caller has updated ``row``'s failure fields)."""
        async with self.db.write() as conn:
            await conn.execute(
                "UPDATE sink_cursors SET last_attempt = ?, last_error = ?, failing_since = ?, failures = ? "
                "WHERE name = ?", (row.last_attempt, row.last_error, row.failing_since, row.failures, row.name))

    async def rewind(self, name: str, cursor: int) -> None:
        """``events.replay``: put the cursor back so later events are delivered again."""
        async with self.db.write() as conn:
            await conn.execute("UPDATE sink_cursors SET cursor = ? WHERE name = ?", (cursor, name))

    async def count_after(self, cursor: int, types: Sequence[str] | None) -> int:
        """How many outbox events (of ``types``; None means all) come after ``cursor``: the sink's lag."""
        where, args = "seq > ?", [cursor]
        if types:
            where += f" AND type IN ({', '.join('?' * len(types))})"
            args.extend(types)
        row = await self.db.fetchone(f"SELECT COUNT(*) AS n FROM events WHERE {where}", args)
        return int(row["n"]) if row is not None else 0
