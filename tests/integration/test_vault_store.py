"""Vault over a real SQLite file: rotation in one transaction, failure leaves everything as before, rewrap,
and no plaintext in the database or its WAL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from integd.store.db import Database
from integd.vault import (
    VAULT_MIGRATION_SQL,
    DecryptError,
    MasterKey,
    MasterKeyError,
    Vault,
    VaultError,
    generate_key_file,
)

MIGRATIONS = [(1, VAULT_MIGRATION_SQL), (2, "CREATE TABLE cred (id TEXT PRIMARY KEY, secret BLOB NOT NULL)")]
ROWS = 1000


def _plain(i: int) -> bytes:
    return b"plain-secret-%04d-zq" % i


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database.open(tmp_path / "state" / "integd.db", MIGRATIONS)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def master(tmp_path: Path) -> MasterKey:
    return generate_key_file(tmp_path / "keys" / "master.key")


@pytest.fixture
async def vault(db: Database, master: MasterKey) -> Vault:
    vault = await Vault.open(db, master, ciphertext_columns=[("cred", "secret")])
    async with db.write() as conn:
        await conn.executemany("INSERT INTO cred VALUES (?, ?)", [
            (f"row{i}", vault.encrypt(_plain(i), purpose="cred", row_id=f"row{i}")) for i in range(ROWS)])
    return vault


async def reseal_all(conn: aiosqlite.Connection, vault: Vault) -> int:
    rows = await conn.execute_fetchall("SELECT id, secret FROM cred")
    await conn.executemany("UPDATE cred SET secret = ? WHERE id = ?",
                           [(vault.reseal(secret, purpose="cred", row_id=rid), rid) for rid, secret in rows])
    return len(rows)


async def _state(db: Database) -> tuple[list[tuple], list[tuple]]:
    creds = [tuple(r) for r in await db.fetchall("SELECT id, secret FROM cred ORDER BY id")]
    keys = [tuple(r) for r in await db.fetchall("SELECT * FROM vault_keys ORDER BY key_id")]
    return creds, keys


async def _assert_all_decrypt(db: Database, vault: Vault, key_id: str | None = None) -> None:
    for row in await db.fetchall("SELECT id, secret FROM cred"):
        assert vault.decrypt(row["secret"], purpose="cred", row_id=row["id"]) == _plain(int(row["id"][3:]))
        if key_id is not None:
            assert vault.key_id_of(row["secret"]) == key_id


async def test_rotate_reencrypts_everything_in_one_transaction(db: Database, master: MasterKey, vault: Vault) -> None:
    old = vault.current_key_id
    seen_by_reader: list[str] = []

    async def reseal_and_peek(conn: aiosqlite.Connection, v: Vault) -> int:
        count = await reseal_all(conn, v)
        row = await db.fetchone("SELECT secret FROM cred WHERE id = 'row0'")  # another connection
        seen_by_reader.append(v.key_id_of(row["secret"]))
        return count

    async with db.write() as conn:
        result = await vault.rotate(conn, reseal_and_peek)
    assert seen_by_reader == [old]  # uncommitted until the whole rotation committed
    assert result.reencrypted == ROWS and result.old_key_ids == (old,) and result.deleted_key_ids == (old,)
    assert vault.current_key_id == result.new_key_id != old
    await _assert_all_decrypt(db, vault, result.new_key_id)
    assert [r["key_id"] for r in await db.fetchall("SELECT key_id FROM vault_keys")] == [result.new_key_id]
    reopened = await Vault.open(db, master)
    assert reopened.current_key_id == result.new_key_id
    await _assert_all_decrypt(db, reopened, result.new_key_id)


async def test_failing_reencrypt_leaves_everything_as_before(db: Database, vault: Vault) -> None:
    before = await _state(db)
    old = vault.current_key_id

    async def half_then_fail(conn: aiosqlite.Connection, v: Vault) -> int:
        rows = await conn.execute_fetchall("SELECT id, secret FROM cred LIMIT 500")
        await conn.executemany("UPDATE cred SET secret = ? WHERE id = ?",
                               [(v.reseal(s, purpose="cred", row_id=i), i) for i, s in rows])
        raise RuntimeError("disk on fire midway")

    with pytest.raises(RuntimeError, match="midway"):
        async with db.write() as conn:
            await vault.rotate(conn, half_then_fail)
    assert await _state(db) == before
    assert vault.current_key_id == old
    await _assert_all_decrypt(db, vault, old)


async def test_failure_swallowed_by_caller_still_restores_via_savepoint(db: Database, vault: Vault) -> None:
    before = await _state(db)

    async def fail(conn: aiosqlite.Connection, v: Vault) -> int:
        await reseal_all(conn, v)
        raise ValueError("bad row")

    async with db.write() as conn:
        with pytest.raises(ValueError):
            await vault.rotate(conn, fail)
    assert await _state(db) == before
    await _assert_all_decrypt(db, vault, before[1][0][0])


async def test_rollback_after_successful_rotate_restores_memory(db: Database, vault: Vault) -> None:
    before = await _state(db)
    old = vault.current_key_id
    with pytest.raises(KeyError):
        async with db.write() as conn:
            result = await vault.rotate(conn, reseal_all)
            assert vault.current_key_id == result.new_key_id
            raise KeyError("the caller's later step failed")
    assert vault.current_key_id == old and await _state(db) == before
    await _assert_all_decrypt(db, vault, old)
    fresh = vault.encrypt(b"after", purpose="cred", row_id="x")
    assert vault.key_id_of(fresh) == old


async def test_referenced_retired_key_is_kept_until_unused(db: Database, vault: Vault) -> None:
    old = vault.current_key_id

    async def skip_row0(conn: aiosqlite.Connection, v: Vault) -> int:
        rows = await conn.execute_fetchall("SELECT id, secret FROM cred WHERE id != 'row0'")
        await conn.executemany("UPDATE cred SET secret = ? WHERE id = ?",
                               [(v.reseal(s, purpose="cred", row_id=i), i) for i, s in rows])
        return len(rows)

    async with db.write() as conn:
        first = await vault.rotate(conn, skip_row0)
    assert first.deleted_key_ids == ()
    keys = {r["key_id"]: r["retired_at"] for r in await db.fetchall("SELECT key_id, retired_at FROM vault_keys")}
    assert keys[old] is not None and keys[first.new_key_id] is None
    await _assert_all_decrypt(db, vault)  # row0 still under the retired key
    async with db.write() as conn:
        second = await vault.rotate(conn, reseal_all)
    assert set(second.deleted_key_ids) == {old, first.new_key_id}
    await _assert_all_decrypt(db, vault, second.new_key_id)
    with pytest.raises(DecryptError, match="does not hold"):
        vault.decrypt(b"\x01" + old.encode() + bytes(28), purpose="p", row_id="r")


async def test_concurrent_first_open_creates_one_key(tmp_path: Path, master: MasterKey) -> None:
    db = await Database.open(tmp_path / "fresh.db", MIGRATIONS)
    try:
        first, second = await asyncio.gather(Vault.open(db, master), Vault.open(db, master))
        assert first.current_key_id == second.current_key_id
        assert len(await db.fetchall("SELECT key_id FROM vault_keys")) == 1
    finally:
        await db.close()


async def test_rotate_outside_write_refused(db: Database, vault: Vault) -> None:
    async with db.read() as conn:
        with pytest.raises(VaultError, match="inside `async with db.write"):
            await vault.rotate(conn, reseal_all)


async def test_rewrap_then_only_the_new_master_opens(tmp_path: Path, db: Database, master: MasterKey,
                                                     vault: Vault) -> None:
    async with db.write() as conn:
        await vault.rotate(conn, reseal_all)
    new_master = generate_key_file(tmp_path / "keys" / "master2.key")
    assert await vault.rewrap(new_master) == 1
    assert vault.master_fingerprint() == new_master.fingerprint
    await _assert_all_decrypt(db, vault)
    reopened = await Vault.open(db, new_master)
    await _assert_all_decrypt(db, reopened, vault.current_key_id)
    with pytest.raises(MasterKeyError, match=rf"{master.source} \(fingerprint {master.fingerprint}\).*{db.path}"):
        await Vault.open(db, master)


async def test_no_plaintext_in_database_or_wal(tmp_path: Path, db: Database, vault: Vault) -> None:
    async with db.write() as conn:
        await vault.rotate(conn, reseal_all)
    files = [db.path, db.path.with_name(db.path.name + "-wal")]
    contents = [f.read_bytes() for f in files]
    assert len(contents[1]) > 0  # the WAL really holds the recent writes
    for i in range(ROWS):
        for content in contents:
            assert _plain(i) not in content
