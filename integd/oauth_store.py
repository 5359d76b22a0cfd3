"""OAuth persistence: client registrations (secrets sealed by the vault) and each OAuth app's grant state.

Tables (migration 4)::

    oauth_clients   service -> client_id, sealed secret (vault purpose "oauth_client", row id = service),
                    auth_base_url, tenant: the registrations made at run time with ``oauth.clients.set``
                    (they take precedence over ``[oauth.clients.<service>]`` in the configuration)
    oauth_grants    app_id -> state "ok" | "refreshing" | "dead", since when, and why (no secret)

The grant state is the write-ahead record of the refresh protocol (integd.oauth_tokens): "refreshing" is
committed in its own transaction BEFORE a refresh request goes out to a provider that revokes the old refresh
token on rotation, and cleared in the same transaction that stores the new tokens. A "refreshing" row found
later means a refresh's answer may have been lost (crash, network); "dead" means the provider refused the
grant (invalid_grant) and no more refresh requests are sent.

Trust model: the client secret is only ever in the vault envelope; ``list_clients`` gives a hint (last four).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite

from domain.values import redact_hint
from integd.store.db import Database
from integd.vault import Vault

OAUTH_CLIENT = "oauth_client"
GrantState = Literal["ok", "refreshing", "dead"]

OAUTH_MIGRATION_SQL = """
CREATE TABLE oauth_clients (
    service       TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    secret        BLOB,                 -- vault envelope (purpose oauth_client, row id = service); NULL: public
    auth_base_url TEXT,
    tenant        TEXT,
    updated_at    REAL NOT NULL,
    updated_by    TEXT NOT NULL
);

CREATE TABLE oauth_grants (
    app_id     TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    state      TEXT NOT NULL CHECK (state IN ('ok', 'refreshing', 'dead')),
    since      REAL NOT NULL,
    reason     TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class StoredClient:
    service: str
    client_id: str
    secret: str | None
    auth_base_url: str | None
    tenant: str | None
    updated_at: float
    updated_by: str

    def redacted(self) -> dict[str, Any]:
        return {"service": self.service, "client_id": self.client_id,
                "secret_hint": redact_hint(self.secret) if self.secret else None,
                "auth_base_url": self.auth_base_url, "tenant": self.tenant, "source": "runtime",
                "updated_at": self.updated_at, "updated_by": self.updated_by}


@dataclass(frozen=True)
class Grant:
    state: GrantState
    since: float
    reason: str


class OAuthStore:
    """Reads and writes of the two tables; every write is its own short transaction unless given ``conn``."""

    def __init__(self, db: Database, vault: Vault) -> None:
        self.db, self.vault = db, vault

    # ---- client registrations ----------------------------------------------------------------------
    async def set_client(self, service: str, client_id: str, secret: str | None, *, auth_base_url: str | None,
                         tenant: str | None, now: float, by: str) -> None:
        sealed = self.vault.encrypt_json({"secret": secret}, purpose=OAUTH_CLIENT, row_id=service) \
            if secret else None
        async with self.db.write() as conn:
            await conn.execute(
                "INSERT INTO oauth_clients (service, client_id, secret, auth_base_url, tenant, updated_at, "
                "updated_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(service) DO UPDATE SET "
                "client_id = excluded.client_id, secret = excluded.secret, auth_base_url = excluded.auth_base_url, "
                "tenant = excluded.tenant, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (service, client_id, sealed, auth_base_url, tenant, now, by))

    async def get_client(self, service: str) -> StoredClient | None:
        row = await self.db.fetchone("SELECT * FROM oauth_clients WHERE service = ?", (service,))
        return self._client(row) if row is not None else None

    async def clients(self) -> list[StoredClient]:
        return [self._client(r) for r in await self.db.fetchall("SELECT * FROM oauth_clients ORDER BY service")]

    def _client(self, row: aiosqlite.Row) -> StoredClient:
        secret = None
        if row["secret"] is not None:
            secret = self.vault.decrypt_json(row["secret"], purpose=OAUTH_CLIENT, row_id=row["service"])["secret"]
        return StoredClient(row["service"], row["client_id"], secret, row["auth_base_url"], row["tenant"],
                            row["updated_at"], row["updated_by"])

    @staticmethod
    async def reseal(conn: aiosqlite.Connection, vault: Vault) -> int:
        """Key rotation: re-encrypt every client secret under the vault's new data key."""
        rows = await conn.execute_fetchall("SELECT service, secret FROM oauth_clients WHERE secret IS NOT NULL")
        await conn.executemany("UPDATE oauth_clients SET secret = ? WHERE service = ?",
                               [(vault.reseal(s, purpose=OAUTH_CLIENT, row_id=k), k) for k, s in rows])
        return len(rows)

    # ---- grant state --------------------------------------------------------------------------------
    async def grant(self, app_id: str) -> Grant | None:
        row = await self.db.fetchone("SELECT state, since, reason FROM oauth_grants WHERE app_id = ?", (app_id,))
        return Grant(row["state"], row["since"], row["reason"]) if row is not None else None

    async def set_grant(self, app_id: str, state: GrantState, *, now: float, reason: str = "",
                        conn: aiosqlite.Connection | None = None) -> None:
        sql = ("INSERT INTO oauth_grants (app_id, state, since, reason) VALUES (?, ?, ?, ?) ON CONFLICT(app_id) "
               "DO UPDATE SET state = excluded.state, since = excluded.since, reason = excluded.reason")
        args = (app_id, state, now, reason[:500])
        if conn is not None:
            await conn.execute(sql, args)
            return
        async with self.db.write() as own:
            await own.execute(sql, args)
