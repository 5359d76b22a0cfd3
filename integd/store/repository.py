"""ConnectedApp persistence: the seed's repository (save / find_by_id / find_by_user / find_by_service) and the
unit of work that commits an aggregate's state together with the events it recorded (the outbox).

Mapping rows to entities happens here, never in the domain. Secret credential fields are encrypted by the vault
with the app's id as associated data (purpose ``credential``); only non-secret attributes are stored in clear.

>>> # async with store.transaction() as tx:
>>> #     app = await tx.get(app_id); app.record_health(result); await tx.save(app)
>>> # after the block: the new state, the health row and the events are committed together, then published.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiosqlite

from domain import (ApiCredential, AuthMode, CheckInterval, ConnectedApp, ConnectionStatus, ConnectionTimeout,
                    DomainEvent, HealthCheckResult, Integration, IntegrationId, NotFound, RateLimit)
from integd.store.db import Database
from integd.store.schema import HEALTH_HISTORY
from integd.vault import Vault

CREDENTIAL = "credential"

_APP_COLUMNS = (
    "id, owner, service, name, status, status_reason, base_url, rate_limit, timeout, check_interval, scopes, "
    "created_at, updated_at, connected_at, last_check_at, last_latency, last_error, consecutive_failures, "
    "version, credential_mode, credential_attrs"
)


_SUMMARY_COLUMNS = (
    "id, name, service, owner, status, status_reason, created_at, updated_at, connected_at, last_check_at, "
    "last_latency, consecutive_failures, rate_limit"
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event_id: str
    type: str
    app_id: str
    user: str
    occurred_at: float
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_id": self.event_id, "type": self.type, "app_id": self.app_id,
                "user": self.user, "occurred_at": self.occurred_at, "payload": self.payload}


def _row_to_app(row: aiosqlite.Row, shares: set[str], credential: ApiCredential | None) -> ConnectedApp:
    integ = Integration(
        base_url=row["base_url"],
        rate_limit=RateLimit(**json.loads(row["rate_limit"])),
        timeout=ConnectionTimeout(row["timeout"]),
        check_interval=CheckInterval(row["check_interval"]),
        scopes=tuple(json.loads(row["scopes"])),
        last_check_at=row["last_check_at"],
        last_latency=row["last_latency"],
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
    )
    return ConnectedApp(
        id=IntegrationId(row["id"]), owner=row["owner"], service=row["service"], name=row["name"],
        status=ConnectionStatus(row["status"]), integration=integ, credential=credential,
        shared_with=shares, created_at=row["created_at"], updated_at=row["updated_at"],
        connected_at=row["connected_at"], status_reason=row["status_reason"], version=row["version"],
    )


def _event_row(row: aiosqlite.Row) -> StoredEvent:
    return StoredEvent(row["seq"], row["event_id"], row["type"], row["app_id"], row["user"], row["occurred_at"],
                       json.loads(row["payload"]))


def summary_of(app: ConnectedApp) -> dict[str, Any]:
    """The read-model row of an app (the columns of _SUMMARY_COLUMNS, plus shared_with)."""
    integ = app.integration
    return {
        "id": str(app.id), "name": app.name, "service": app.service, "owner": app.owner,
        "status": app.status.value, "status_reason": app.status_reason, "created_at": app.created_at,
        "updated_at": app.updated_at, "connected_at": app.connected_at, "last_check_at": integ.last_check_at,
        "last_latency": integ.last_latency, "consecutive_failures": integ.consecutive_failures,
        "rate_limit": integ.rate_limit.as_dict(), "shared_with": sorted(app.shared_with),
    }


class _Reads:
    """Queries shared by the read side and the transaction (which reads on the writer's connection)."""

    vault: Vault

    async def _fetch_apps(self, conn: aiosqlite.Connection, where: str, args: Sequence[Any],
                          *, with_credentials: bool = False) -> list[ConnectedApp]:
        cols = _APP_COLUMNS + (", credential" if with_credentials else "")
        async with conn.execute(f"SELECT {cols} FROM apps {where}", args) as cur:
            rows = await cur.fetchall()
        if not rows:
            return []
        shares: dict[str, set[str]] = {r["id"]: set() for r in rows}
        if len(rows) == 1:
            q, qargs = "SELECT app_id, user FROM app_shares WHERE app_id = ?", (rows[0]["id"],)
        else:
            q, qargs = "SELECT app_id, user FROM app_shares", ()
        async with conn.execute(q, qargs) as cur:
            for s in await cur.fetchall():
                if s["app_id"] in shares:
                    shares[s["app_id"]].add(s["user"])
        return [_row_to_app(r, shares[r["id"]], self._credential(r) if with_credentials else None) for r in rows]

    def _credential(self, row: aiosqlite.Row) -> ApiCredential | None:
        if row["credential"] is None:
            return None
        secrets = self.vault.decrypt_json(row["credential"], purpose=CREDENTIAL, row_id=row["id"])
        attrs = json.loads(row["credential_attrs"] or "{}")
        return ApiCredential(AuthMode(row["credential_mode"]), secrets, attrs)


class Transaction(_Reads):
    """One write transaction. ``save`` writes an app and moves its recorded events into the outbox."""

    def __init__(self, conn: aiosqlite.Connection, vault: Vault,
                 on_saved: Callable[[ConnectedApp], None] | None = None) -> None:
        self.conn = conn
        self.vault = vault
        self.committed_events: list[StoredEvent] = []
        self._on_saved = on_saved

    async def get(self, app_id: str, *, with_credentials: bool = False) -> ConnectedApp:
        found = await self._fetch_apps(self.conn, "WHERE id = ?", (app_id,), with_credentials=with_credentials)
        if not found:
            raise NotFound(f"no app {app_id}")
        return found[0]

    async def save(self, app: ConnectedApp, *, credential_changed: bool = False) -> None:
        """Insert or update ``app``; with ``credential_changed`` the credential is re-encrypted (or cleared)."""
        integ = app.integration
        app.version += 1
        values = {
            "id": str(app.id), "owner": app.owner, "service": app.service, "name": app.name,
            "status": app.status.value, "status_reason": app.status_reason, "base_url": integ.base_url,
            "rate_limit": json.dumps(integ.rate_limit.as_dict()), "timeout": integ.timeout.seconds,
            "check_interval": integ.check_interval.seconds, "scopes": json.dumps(list(integ.scopes)),
            "created_at": app.created_at, "updated_at": app.updated_at, "connected_at": app.connected_at,
            "last_check_at": integ.last_check_at, "last_latency": integ.last_latency,
            "last_error": integ.last_error, "consecutive_failures": integ.consecutive_failures,
            "version": app.version,
        }
        if credential_changed:
            cred = app.credential
            values["credential_mode"] = cred.mode.value if cred else None
            values["credential_attrs"] = json.dumps(cred.attributes) if cred else None
            values["credential"] = (self.vault.encrypt_json(cred.secrets, purpose=CREDENTIAL, row_id=str(app.id))
                                    if cred else None)
        cols = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values if k != "id")
        await self.conn.execute(
            f"INSERT INTO apps ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}", values)
        await self.conn.execute("DELETE FROM app_shares WHERE app_id = ?", (str(app.id),))
        if app.shared_with:
            await self.conn.executemany("INSERT INTO app_shares (app_id, user) VALUES (?, ?)",
                                        [(str(app.id), u) for u in sorted(app.shared_with)])
        await self.add_events(app.pull_events())
        if self._on_saved is not None:
            self._on_saved(app)

    async def add_events(self, events: Sequence[DomainEvent]) -> None:
        for e in events:
            payload = json.dumps(e.payload(), separators=(",", ":"))
            cur = await self.conn.execute(
                "INSERT INTO events (event_id, type, app_id, user, occurred_at, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (e.event_id, e.type, e.app_id, e.user, e.occurred_at, payload))
            self.committed_events.append(
                StoredEvent(cur.lastrowid, e.event_id, e.type, e.app_id, e.user, e.occurred_at, e.payload()))

    async def add_health(self, app_id: str, result: HealthCheckResult) -> None:
        await self.conn.execute(
            "INSERT INTO health_checks (app_id, checked_at, ok, outcome, latency, message, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (app_id, result.checked_at, int(result.ok), result.outcome, result.latency, result.message,
             result.status))
        await self.conn.execute(
            "DELETE FROM health_checks WHERE app_id = ? AND id NOT IN "
            "(SELECT id FROM health_checks WHERE app_id = ? ORDER BY id DESC LIMIT ?)",
            (app_id, app_id, HEALTH_HISTORY))

    async def all_credentials(self) -> list[tuple[str, bytes]]:
        async with self.conn.execute("SELECT id, credential FROM apps WHERE credential IS NOT NULL") as cur:
            return [(r["id"], r["credential"]) for r in await cur.fetchall()]


Publisher = Callable[[list[StoredEvent]], Awaitable[None] | None]


class AppStore(_Reads):
    """The repository of ConnectedApps plus the outbox, health history and event feed."""

    def __init__(self, db: Database, vault: Vault) -> None:
        self.db = db
        self.vault = vault
        self.publishers: list[Publisher] = []
        self._summaries: dict[str, dict[str, Any]] | None = None
        self._counts: Counter[str] = Counter()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; its events are handed to the publishers only after COMMIT succeeded."""
        async with self.db.write() as conn:
            tx = Transaction(conn, self.vault, self._stage_summary)
            yield tx
        if tx.committed_events:
            for publish in self.publishers:
                result = publish(tx.committed_events)
                if result is not None:
                    await result

    async def save(self, app: ConnectedApp, *, credential_changed: bool = False) -> None:
        async with self.transaction() as tx:
            await tx.save(app, credential_changed=credential_changed)

    async def find_by_id(self, app_id: str, *, with_credentials: bool = False) -> ConnectedApp | None:
        async with self.db.read() as conn:
            found = await self._fetch_apps(conn, "WHERE id = ?", (app_id,), with_credentials=with_credentials)
        return found[0] if found else None

    async def find_by_user(self, user: str, *, include_shared: bool = True) -> list[ConnectedApp]:
        where = "WHERE owner = ?" + (" OR id IN (SELECT app_id FROM app_shares WHERE user = ?)"
                                     if include_shared else "")
        args = (user, user) if include_shared else (user,)
        async with self.db.read() as conn:
            return await self._fetch_apps(conn, where + " ORDER BY created_at, id", args)

    async def find_by_service(self, service: str) -> list[ConnectedApp]:
        async with self.db.read() as conn:
            return await self._fetch_apps(conn, "WHERE service = ? ORDER BY created_at, id", (service,))

    async def find_all(self, *, active_only: bool = False) -> list[ConnectedApp]:
        where = "WHERE status NOT IN ('disconnected', 'pending')" if active_only else ""
        async with self.db.read() as conn:
            return await self._fetch_apps(conn, where + " ORDER BY created_at, id", ())

    async def summaries(self, *, user: str | None = None) -> list[dict[str, Any]]:
        """The read model behind apps.list: one row per app, oldest first; ``user`` None means every app.

        Listing is the hottest query (the dashboard, scripts polling) and needs no aggregate and no secret, so
        the rows live in memory: loaded once from SQLite, then replaced row by row as each transaction that
        saved an app commits (``_stage_summary``). Callers get the cached dicts: they must not mutate them.
        """
        if self._summaries is None:
            await self._load_summaries()
        assert self._summaries is not None
        rows = self._summaries.values()
        if user is None:
            return list(rows)
        return [r for r in rows if r["owner"] == user or user in r["shared_with"]]

    async def summary(self, app_id: str) -> dict[str, Any] | None:
        """One app's read-model row (see ``summaries``)."""
        if self._summaries is None:
            await self._load_summaries()
        assert self._summaries is not None
        return self._summaries.get(app_id)

    async def _load_summaries(self) -> None:
        async with self.db.read() as conn:
            async with conn.execute(f"SELECT {_SUMMARY_COLUMNS} FROM apps ORDER BY created_at, id") as cur:
                rows = await cur.fetchall()
            async with conn.execute("SELECT app_id, user FROM app_shares ORDER BY user") as cur:
                share_rows = await cur.fetchall()
        shares: dict[str, list[str]] = {}
        for app_id, shared_user in share_rows:
            shares.setdefault(app_id, []).append(shared_user)
        loaded: dict[str, dict[str, Any]] = {}
        for r in rows:
            d = dict(r)
            d["rate_limit"] = json.loads(d["rate_limit"])
            d["shared_with"] = shares.get(d["id"], [])
            loaded[d["id"]] = d
        if self._summaries is None:
            self._summaries = loaded
            self._counts = Counter(r["status"] for r in loaded.values())

    def _stage_summary(self, app: ConnectedApp) -> None:
        """Called by Transaction.save: the app's new row replaces the cached one once the transaction commits."""
        row = summary_of(app)
        self.db.on_commit(lambda: self._put_summary(row))

    def _put_summary(self, row: dict[str, Any]) -> None:
        if self._summaries is not None:
            old = self._summaries.get(row["id"])
            if old is not None:
                self._counts[old["status"]] -= 1
            self._counts[row["status"]] += 1
            self._summaries[row["id"]] = row

    async def status_counts(self) -> dict[str, int]:
        """Apps by status, from the read model (no query once it is loaded)."""
        if self._summaries is None:
            await self._load_summaries()
        return {k: v for k, v in self._counts.items() if v}

    async def health_history(self, app_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            async with conn.execute(
                    "SELECT checked_at, ok, outcome, latency, message, status FROM health_checks "
                    "WHERE app_id = ? ORDER BY id DESC LIMIT ?", (app_id, HEALTH_HISTORY)) as cur:
                rows = await cur.fetchall()
        return [dict(r) | {"ok": bool(r["ok"])} for r in reversed(rows)]

    async def events_after(self, after: int, *, limit: int = 100, types: Sequence[str] | None = None,
                           app_ids: Sequence[str] | None = None, before: int | None = None,
                           newest_first: bool = False) -> list[StoredEvent]:
        where, args = ["seq > ?"], [after]
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        if types:
            where.append(f"type IN ({', '.join('?' * len(types))})")
            args.extend(types)
        if app_ids is not None:
            if not app_ids:
                return []
            where.append(f"app_id IN ({', '.join('?' * len(app_ids))})")
            args.extend(app_ids)
        async with self.db.read() as conn:
            order = "DESC" if newest_first else "ASC"
            async with conn.execute(f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY seq {order} "
                                    "LIMIT ?", (*args, limit)) as cur:
                return [_event_row(r) for r in await cur.fetchall()]

    async def last_event_seq(self) -> int:
        async with self.db.read() as conn:
            async with conn.execute("SELECT COALESCE(MAX(seq), 0) AS s FROM events") as cur:
                row = await cur.fetchone()
        return int(row["s"])
