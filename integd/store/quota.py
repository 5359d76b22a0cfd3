"""SQLite implementation of the connectors' QuotaStore port: hour, day and plan windows survive a restart."""

from __future__ import annotations

from integd.store.db import Database


class SqliteQuotaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, key: str) -> dict[str, tuple[float, int]]:
        rows = await self.db.fetchall(
            "SELECT window, window_start, reserved FROM quota_windows WHERE key = ?", (key,))
        return {r["window"]: (float(r["window_start"]), int(r["reserved"])) for r in rows}

    async def save(self, key: str, window: str, window_start: float, reserved: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                "INSERT INTO quota_windows (key, window, window_start, reserved) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key, window) DO UPDATE SET window_start = excluded.window_start, "
                "reserved = excluded.reserved", (key, window, window_start, reserved))
