"""Database core against real SQLite files: migrations, pragmas, errors, hooks, backup, close."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from integd.store.db import ConstraintViolation, Database, SchemaTooNew, StoreCorrupt, StoreError

MIGRATIONS = [
    (1, "CREATE TABLE app (id TEXT PRIMARY KEY, name TEXT NOT NULL);"),
    (2, "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n"
        "INSERT INTO counter (id, n) VALUES (1, 0);"),
    (3, "CREATE TABLE cred (app_id TEXT NOT NULL REFERENCES app(id), secret BLOB) -- no trailing semicolon"),
]


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database.open(tmp_path / "state" / "integd.db", MIGRATIONS)
    try:
        yield database
    finally:
        await database.close()


def _sqlite(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_open_creates_private_file_and_directory(tmp_path: Path, db: Database) -> None:
    assert db.path == tmp_path / "state" / "integd.db"
    assert oct(db.path.stat().st_mode & 0o777) == "0o600"
    assert oct(db.path.parent.stat().st_mode & 0o777) == "0o700"
    async with db.write() as conn:
        await conn.execute("INSERT INTO app VALUES ('a', 'A')")
    for sidecar in ("integd.db-wal", "integd.db-shm"):
        assert oct((db.path.parent / sidecar).stat().st_mode & 0o777) == "0o600"


async def test_migrations_applied_in_order_and_idempotent_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    first = await Database.open(path, MIGRATIONS)
    assert first.user_version == 3
    await first.close()
    again = await Database.open(path, MIGRATIONS)
    try:
        assert again.user_version == 3
        row = await again.fetchone("SELECT count(*) AS c FROM counter")
        assert row["c"] == 1  # migration 2's INSERT ran exactly once
    finally:
        await again.close()
    assert _sqlite(path, "PRAGMA user_version") == [(3,)]
    assert _sqlite(path, "PRAGMA journal_mode") == [("wal",)]


async def test_new_migration_applied_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    await (await Database.open(path, MIGRATIONS[:1])).close()
    db = await Database.open(path, MIGRATIONS)
    try:
        assert db.user_version == 3
        assert (await db.fetchone("SELECT n FROM counter"))["n"] == 0
    finally:
        await db.close()


@pytest.mark.parametrize("migrations", [[(2, "")], [(1, ""), (3, "")], [(1, ""), (1, "")], [("1", "")], [[1, ""]]])
async def test_migration_list_validated(tmp_path: Path, migrations) -> None:
    with pytest.raises(ValueError, match="migration"):
        await Database.open(tmp_path / "v.db", migrations)


@pytest.mark.parametrize("journal", ["delete", "wal"])
async def test_schema_too_new_leaves_file_unchanged(tmp_path: Path, journal: str) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("CREATE TABLE future (x)")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    with pytest.raises(SchemaTooNew, match=rf"{path}.*version 7.*only up to 3"):
        await Database.open(path, MIGRATIONS)
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before


async def test_failing_migration_rolls_back_wholly(tmp_path: Path) -> None:
    path = tmp_path / "fail.db"
    broken = [MIGRATIONS[0], (2, "CREATE TABLE half (x);\nINSERT INTO half VALUES (1);\nINSERT INTO nope VALUES (1);")]
    with pytest.raises(StoreError, match=r"migration 2 failed.*schema version 1.*no such table: nope"):
        await Database.open(path, broken)
    assert _sqlite(path, "PRAGMA user_version") == [(1,)]
    assert _sqlite(path, "SELECT name FROM sqlite_master WHERE name = 'half'") == []
    fixed = await Database.open(path, MIGRATIONS)
    assert fixed.user_version == 3
    await fixed.close()


async def test_not_a_database_is_store_corrupt_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(StoreCorrupt, match=str(path)):
        await Database.open(path, MIGRATIONS)


async def test_pragmas_on_every_connection(db: Database) -> None:
    async with db.write() as conn:
        writer = [tuple(await (await conn.execute(f"PRAGMA {p}")).fetchone()) for p in
                  ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
    assert writer == [("wal",), (1,), (1,), (5000,)]
    for _ in range(3):  # cycles through both readers
        async with db.read() as conn:
            got = [tuple(await (await conn.execute(f"PRAGMA {p}")).fetchone()) for p in
                   ("synchronous", "foreign_keys", "busy_timeout", "query_only")]
        assert got == [(1,), (1,), (5000,), (1,)]


async def test_write_commits_and_readers_see_it(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute("INSERT INTO app VALUES (?, ?)", ("a1", "Slack"))
    rows = await db.fetchall("SELECT id, name FROM app")
    assert [dict(r) for r in rows] == [{"id": "a1", "name": "Slack"}]
    assert await db.fetchone("SELECT id FROM app WHERE id = ?", ("missing",)) is None


async def test_exception_rolls_back_and_constraint_is_translated(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute("INSERT INTO app VALUES ('a1', 'x')")
            raise RuntimeError("boom")
    with pytest.raises(ConstraintViolation, match="FOREIGN KEY") as info:
        async with db.write() as conn:
            await conn.execute("INSERT INTO app VALUES ('a2', 'x')")
            await conn.execute("INSERT INTO cred VALUES ('nobody', x'00')")
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert await db.fetchall("SELECT id FROM app") == []


async def test_failed_commit_rolls_back_and_translates(tmp_path: Path) -> None:
    deferred = [(1, "CREATE TABLE parent (id TEXT PRIMARY KEY);\n"
                    "CREATE TABLE child (pid TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);")]
    db = await Database.open(tmp_path / "d.db", deferred)
    try:
        with pytest.raises(ConstraintViolation, match="commit.*FOREIGN KEY"):
            async with db.write() as conn:
                await conn.execute("INSERT INTO child VALUES ('orphan')")  # checked only at COMMIT
        async with db.write() as conn:
            await conn.execute("INSERT INTO parent VALUES ('p')")
        assert [tuple(r) for r in await db.fetchall("SELECT * FROM child")] == []
        assert [tuple(r) for r in await db.fetchall("SELECT * FROM parent")] == [("p",)]
    finally:
        await db.close()


async def test_concurrent_writers_serialised(db: Database) -> None:
    async def bump() -> None:
        for _ in range(100):
            async with db.write() as conn:
                row = await (await conn.execute("SELECT n FROM counter WHERE id = 1")).fetchone()
                await asyncio.sleep(0)  # hand the loop to the other writer between read and write
                await conn.execute("UPDATE counter SET n = ? WHERE id = 1", (row["n"] + 1,))

    await asyncio.gather(bump(), bump())
    assert (await db.fetchone("SELECT n FROM counter"))["n"] == 200


async def test_cancelled_write_rolls_back_and_next_write_works(db: Database) -> None:
    inside = asyncio.Event()

    async def stuck() -> None:
        async with db.write() as conn:
            await conn.execute("INSERT INTO app VALUES ('ghost', 'g')")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.write() as conn:
        await conn.execute("INSERT INTO app VALUES ('real', 'r')")
    assert [r["id"] for r in await db.fetchall("SELECT id FROM app")] == ["real"]


async def test_cancellation_at_any_point_leaves_no_open_transaction(db: Database) -> None:
    for steps in range(12):
        async def one() -> None:
            async with db.write() as conn:
                await conn.execute("INSERT INTO app VALUES (?, 'x')", (f"k{steps}",))
                await conn.execute("UPDATE counter SET n = n + 1")

        task = asyncio.create_task(one())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with db.write() as conn:
            await conn.execute("SELECT 1")
    apps = await db.fetchall("SELECT id FROM app")
    assert (await db.fetchone("SELECT n FROM counter"))["n"] == len(apps)  # all-or-nothing per write


async def test_nested_write_raises_instead_of_deadlocking(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute("INSERT INTO app VALUES ('outer', 'o')")
        with pytest.raises(StoreError, match="nested write transaction"):
            async with db.write():
                pass
        with pytest.raises(StoreError, match="nested write transaction"):
            await asyncio.create_task(_write_once(db))  # a helper task awaited inside the write
    assert [r["id"] for r in await db.fetchall("SELECT id FROM app")] == ["outer"]
    await _write_once(db)  # the scope ended: writing works again


async def _write_once(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute("UPDATE counter SET n = n + 1")


async def test_write_call_is_one_whole_transaction(db: Database) -> None:
    def insert(conn: sqlite3.Connection) -> int:
        conn.executemany("INSERT INTO app VALUES (?, ?)", [("a", "A"), ("b", "B")])
        conn.execute("UPDATE counter SET n = n + 2")
        return conn.execute("SELECT count(*) FROM app").fetchone()[0]

    assert await db.write_call(insert) == 2

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO app VALUES ('c', 'C')")
        conn.execute("UPDATE counter SET n = n + 1")
        conn.execute("INSERT INTO app VALUES ('a', 'again')")      # the primary key refuses it

    with pytest.raises(ConstraintViolation, match="integd.db"):
        await db.write_call(half_then_fail)

    def own_error(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO app VALUES ('d', 'D')")
        raise LookupError("the caller's own")

    with pytest.raises(LookupError, match="the caller's own"):
        await db.write_call(own_error)
    assert [r["id"] for r in await db.fetchall("SELECT id FROM app ORDER BY id")] == ["a", "b"]
    assert (await db.fetchone("SELECT n FROM counter"))["n"] == 2
    async with db.write() as conn:                                 # the writer is left with no open transaction
        await conn.execute("UPDATE counter SET n = n + 1")
        with pytest.raises(StoreError, match="nested write transaction"):
            await db.write_call(insert)
    assert (await db.fetchone("SELECT n FROM counter"))["n"] == 3


async def test_cancelled_write_call_ends_its_transaction_first(db: Database) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO app VALUES ('slow', 's')")
        started.set()
        release.wait(10)

    task = asyncio.create_task(db.write_call(slow))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()                                         # waits for the thread, does not abandon it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r["id"] for r in await db.fetchall("SELECT id FROM app")] == ["slow"]   # it had committed
    await _write_once(db)


async def test_hooks_run_after_commit_or_rollback(db: Database) -> None:
    seen: list[str] = []
    async with db.write():
        db.on_commit(lambda: seen.append("committed"))
        db.on_rollback(lambda: seen.append("rolled back"))
        assert seen == []
    with pytest.raises(KeyError):
        async with db.write():
            db.on_commit(lambda: seen.append("never"))
            db.on_rollback(lambda: seen.append("first registered"))
            db.on_rollback(lambda: seen.append("last registered"))
            raise KeyError("x")
    assert seen == ["committed", "last registered", "first registered"]
    with pytest.raises(StoreError, match="no write transaction"):
        db.on_commit(lambda: None)


async def test_reader_snapshot_left_open_is_ended(db: Database) -> None:
    async with db.read() as conn:
        await conn.execute("BEGIN")
        await conn.execute("SELECT count(*) FROM app")
    await _write_once(db)
    assert (await db.fetchone("SELECT n FROM counter"))["n"] == 1
    with pytest.raises(StoreError, match="no such table"):
        await db.fetchall("SELECT * FROM missing_table")


async def test_callers_own_errors_pass_through_unchanged(db: Database) -> None:
    with pytest.raises(ValueError, match="mine"):
        async with db.read():
            raise ValueError("mine")
    with pytest.raises(ValueError, match="mine"):
        async with db.write():
            raise ValueError("mine")
    assert await db.fetchone("SELECT 1 AS one") is not None  # both pools still usable


async def test_backup_while_writing_is_consistent(tmp_path: Path, db: Database) -> None:
    async with db.write() as conn:
        await conn.executemany("INSERT INTO app VALUES (?, 'seed')", [(f"s{i}",) for i in range(3000)])
    stop = asyncio.Event()
    started = asyncio.Event()

    async def keep_writing() -> int:
        batches = 0
        while not stop.is_set():
            async with db.write() as conn:
                await conn.executemany("INSERT INTO app VALUES (?, 'w')", [(f"w{batches}-{i}",) for i in range(50)])
                await conn.execute("UPDATE counter SET n = n + 50")
            batches += 1
            started.set()
        return batches

    writer = asyncio.create_task(keep_writing())
    await started.wait()
    dest = tmp_path / "backups" / "copy.db"
    dest.parent.mkdir()
    await db.backup(dest)
    stop.set()
    assert await writer > 0
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert _sqlite(dest, "PRAGMA integrity_check") == [("ok",)]
    assert _sqlite(dest, "PRAGMA journal_mode") == [("delete",)]
    apps, counted = _sqlite(dest, "SELECT (SELECT count(*) FROM app), (SELECT n FROM counter)")[0]
    assert apps == 3000 + counted  # one consistent snapshot, not a mix of two
    assert sorted(os.listdir(dest.parent)) == ["copy.db"]  # no temporary left behind


async def test_integrity_check_ok(db: Database) -> None:
    assert await db.integrity_check() == "ok"


async def test_close_idempotent_and_refuses_later_use(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "c.db", MIGRATIONS)
    await db.close()
    await db.close()
    with pytest.raises(StoreError, match="is closed"):
        async with db.write():
            pass
    with pytest.raises(StoreError, match="is closed"):
        await db.fetchone("SELECT 1")
    workers = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    for worker in workers:  # other tests' databases may still be closing; none of them may stay alive
        worker.join(timeout=5)
    assert not any(worker.is_alive() for worker in workers)


async def test_close_waits_for_write_in_progress(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "w.db", MIGRATIONS)
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow_write() -> None:
        async with db.write() as conn:
            await conn.execute("INSERT INTO app VALUES ('late', 'l')")
            inside.set()
            await release.wait()

    task = asyncio.create_task(slow_write())
    await inside.wait()
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0)
    queued = asyncio.create_task(_write_once(db))  # waits on the lock behind close()
    await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await task
    await closing
    assert _sqlite(db.path, "SELECT id FROM app") == [("late",)]
    with pytest.raises(StoreError, match="is closed"):
        await queued  # woken by close() instead of hanging on the lock forever


def test_process_exits_after_close(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from integd.store.db import Database\n"
        "async def main():\n"
        "    db = await Database.open(Path(sys.argv[1]), [(1, 'CREATE TABLE t (x)')], readers=3)\n"
        "    async with db.write() as conn:\n"
        "        await conn.execute('INSERT INTO t VALUES (1)')\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "p.db")], cwd=root, timeout=30,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

