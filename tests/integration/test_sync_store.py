"""The records store on a real SQLite file: merging pages, conflicts under each policy, the sweep, local changes,
replay protection. (The runner and the providers are covered end to end in tests/e2e/test_sync*.py.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.streams import RemoteRecord
from domain import ConflictResolution, SyncJob
from domain.sync import VersionConflict
from integd.store.db import Database
from integd.store.schema import MIGRATIONS
from integd.sync_store import PARKED, TO_PUSH, SyncStore

APP = "int_" + "a" * 32


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SyncStore]:
    db = await Database.open(tmp_path / "integd.db", MIGRATIONS)
    async with db.write() as conn:
        await conn.execute("INSERT INTO apps (id, owner, service, name, status, rate_limit, timeout, check_interval, "
                           "created_at, updated_at) VALUES (?, 'alice', 'github', 'gh', 'connected', '{}', 30, 300, "
                           "0, 0)", (APP,))
    yield SyncStore(db)
    await db.close()


async def new_job(store: SyncStore, policy: ConflictResolution = ConflictResolution.LATEST_WINS) -> SyncJob:
    job = SyncJob.create("sync_" + policy.value, app_id=APP, user="alice", service="github", stream="issues",
                         resource="o/r", now=0.0, conflict_resolution=policy)
    values = (job.id, APP, "alice", "github", "issues", "o/r", "pull", json.dumps({"kind": "manual"}),
              policy.value, 100, "idle", 0.0, 0.0)
    async with store.db.write() as conn:
        await conn.execute("INSERT INTO sync_jobs (id, app_id, user, service, stream, resource, direction, frequency, "
                           "conflict_resolution, batch_size, state, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    return job


def rec(rid: str, title: str, modified: float = 10.0, deleted: bool = False) -> RemoteRecord:
    return RemoteRecord(rid, {"title": title}, modified, deleted)


async def apply(store: SyncStore, job: SyncJob, records: list[RemoteRecord], pass_token: str | None = None):
    async with store.db.write() as conn:
        return await store.apply_page(conn, job, records, pass_token=pass_token, now=100.0)


async def feed(store: SyncStore, job: SyncJob) -> list[tuple[str, str, str]]:
    return [(c["remote_id"], c["op"], c["origin"])
            for c in await store.changes_after(0, app_ids=None, job_id=job.id, limit=1000)]


async def test_unchanged_records_are_neither_rewritten_nor_reported(store):
    job = await new_job(store)
    first = await apply(store, job, [rec(str(i), f"t{i}") for i in range(250)] + [rec("7", "t7 again")])
    assert (first.created, first.updated) == (250, 0)
    again = await apply(store, job, [rec("1", "t1"), rec("2", "changed", 11.0), rec("3", "", deleted=True),
                                     rec("999", "", deleted=True)])
    assert (again.created, again.updated, again.deleted, again.unchanged) == (0, 1, 1, 1)
    assert (await store.get_record(job.id, "1"))["version"] == 1
    assert (await store.get_record(job.id, "7"))["data"] == {"title": "t7 again"}, "last state in a page wins"
    changes = await feed(store, job)
    assert len(changes) == 252 and changes[-2:] == [("2", "updated", "remote"), ("3", "deleted", "remote")]


@pytest.mark.parametrize("policy, title, dirty", [
    (ConflictResolution.REMOTE_WINS, "remote", 0), (ConflictResolution.LOCAL_WINS, "local", TO_PUSH),
    (ConflictResolution.LATEST_WINS, "remote", 0), (ConflictResolution.MANUAL, "local", PARKED)])
async def test_a_pulled_change_meeting_an_unpushed_local_one(store, policy, title, dirty):
    job = await new_job(store, policy)
    await apply(store, job, [rec("1", "base", 10.0)])
    async with store.db.write() as conn:
        await store.put_local(conn, job, "1", {"title": "local"}, base_version=1, deleted=False, now=50.0)
    counts = await apply(store, job, [rec("1", "remote", 60.0)])          # the remote edit is later
    assert counts.conflicts == 1
    row = await store.get_record(job.id, "1")
    assert row["data"]["title"] == title and row["sync_state"] == ("in_step", "to_push", "conflict")[dirty]
    history = await store.conflicts(job_id=job.id, open_only=False)
    assert len(history) == 1 and history[0]["remote"] == {"title": "remote"}
    if policy is ConflictResolution.MANUAL:
        assert history[0]["resolution"] is None
        async with store.db.write() as conn:
            assert await store.resolve(conn, job, history[0]["id"], "remote", now=70.0) == "take_remote"
        assert (await store.get_record(job.id, "1"))["data"]["title"] == "remote"
        assert await store.conflicts(job_id=job.id) == []


async def test_the_sweep_tombstones_only_what_a_full_pass_did_not_see(store):
    job = await new_job(store)
    await apply(store, job, [rec(str(i), "x") for i in range(5)])
    async with store.db.write() as conn:
        local = await store.put_local(conn, job, None, {"title": "new"}, base_version=None, deleted=False, now=1.0)
    await apply(store, job, [rec("0", "x"), rec("1", "x"), rec("3", "changed")], pass_token="pass-1")
    async with store.db.write() as conn:
        assert await store.sweep(conn, job, "pass-1", now=2.0) == 2
    rows = {r: await store.get_record(job.id, r) for r in ("0", "2", "3", "4", local)}
    assert [rows[r]["deleted"] for r in ("0", "2", "3", "4")] == [False, True, False, True]
    assert not rows[local]["deleted"], "a record never pushed is not the provider's to delete"


async def test_local_changes_check_the_base_version(store):
    job = await new_job(store)
    await apply(store, job, [rec("1", "base")])
    async with store.db.write() as conn:
        with pytest.raises(VersionConflict) as stale:
            await store.put_local(conn, job, "1", {"title": "x"}, base_version=7, deleted=False, now=1.0)
    assert stale.value.current == 1
    async with store.db.write() as conn:
        await store.put_local(conn, job, "1", {}, base_version=1, deleted=True, now=1.0)
    row = await store.get_record(job.id, "1")
    assert row["deleted"] and row["sync_state"] == "to_push" and row["version"] == 2
    assert (await store.to_push(job.id, 10))[0]["remote_id"] == "1"


async def test_a_webhook_delivery_id_is_accepted_once(store):
    async with store.db.write() as conn:
        assert await store.first_delivery(conn, "github", "d-1", now=1.0)
        assert not await store.first_delivery(conn, "github", "d-1", now=2.0)
        assert await store.first_delivery(conn, "slack", "d-1", now=2.0)


async def test_migration_6_keeps_every_record_of_a_version_5_store(tmp_path: Path):
    """A store written before migration 6 (records WITHOUT ROWID) keeps its records, their versions, dirty flags
    and the (job, remote id) uniqueness when records becomes a rowid table."""
    path = tmp_path / "integd.db"
    old = await Database.open(path, MIGRATIONS[:5])
    async with old.write() as conn:
        await conn.execute("INSERT INTO apps (id, owner, service, name, status, rate_limit, timeout, check_interval, "
                           "created_at, updated_at) VALUES (?, 'alice', 'github', 'gh', 'connected', '{}', 30, 300, "
                           "0, 0)", (APP,))
    old_store = SyncStore(old)
    job = await new_job(old_store)
    await apply(old_store, job, [rec(str(n), f"t{n}", modified=float(n)) for n in range(1, 6)])
    async with old.write() as conn:
        await conn.execute("UPDATE records SET dirty = ?, version = 7 WHERE remote_id = '3'", (TO_PUSH,))
    await old.close()

    db = await Database.open(path, MIGRATIONS)
    try:
        sql = (await db.fetchone("SELECT sql FROM sqlite_master WHERE name = 'records'"))["sql"]
        assert "WITHOUT ROWID" not in sql and "UNIQUE (job_id, remote_id)" in sql
        store = SyncStore(db)
        rows = await db.fetchall("SELECT remote_id, version, dirty, data FROM records ORDER BY rowid")
        assert [(r["remote_id"], r["version"], r["dirty"]) for r in rows] == [
            ("1", 1, 0), ("2", 1, 0), ("3", 7, TO_PUSH), ("4", 1, 0), ("5", 1, 0)]
        assert json.loads(rows[1]["data"]) == {"title": "t2"}
        assert [r["remote_id"] for r in await store.to_push(job.id, 10)] == ["3"]
        counts = await apply(store, job, [rec("5", "t5", modified=5.0), rec("6", "t6", modified=6.0)])
        assert (counts.created, counts.unchanged) == (1, 1)
        with pytest.raises(Exception, match="UNIQUE"):
            async with db.write() as conn:
                await conn.execute("INSERT INTO records (job_id, remote_id, app_id, stream, data, content_hash) "
                                   "VALUES (?, '1', ?, 'github/issues', '{}', 'x')", (job.id, APP))
    finally:
        await db.close()
