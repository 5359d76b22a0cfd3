"""The SQLite core every repository uses: one writer, a few readers, forward-only migrations.

Concurrency model (see reference/libraries.md section 4 for the experiments behind it):

* **One writer connection** opened with ``isolation_level=None`` (no implicit transactions). Every write goes
  through ``async with db.write() as conn``, which holds an ``asyncio.Lock``, issues ``BEGIN IMMEDIATE`` (so a
  read-then-write transaction never hits the deferred-upgrade "database is locked" trap) and ends with COMMIT,
  or ROLLBACK on any ``BaseException``. aiosqlite is thread-safe but not transaction-safe: without the lock a
  statement from another task would silently join the open transaction.
* ``db.write_call(fn)`` runs a whole transaction (BEGIN IMMEDIATE, ``fn(sqlite3_conn)``, COMMIT) as ONE call on
  the writer's thread, under the same lock: for hot batch writes, where a thread round trip per statement costs
  more than the statements (a page of synced records: 3 round trips instead of 1 was 25% of the sync's time).
* **Cancellation** does not stop a statement already queued on aiosqlite's thread, so COMMIT/ROLLBACK run to
  completion even when the task is cancelled (``_uncancellable``), and the cancellation is re-raised after.
* **Readers** (``readers`` connections, ``PRAGMA query_only``) are handed out one task at a time from a queue,
  so a reader's own ``BEGIN`` (a consistent multi-statement snapshot) is never shared either.
* Pragmas are per connection (``synchronous`` resets on connect): WAL on the writer, ``synchronous=NORMAL``,
  ``foreign_keys=ON``, ``busy_timeout=5000`` and ``row_factory=aiosqlite.Row`` everywhere.

Files: the database is created 0600 and its directory 0700 when missing; SQLite gives the ``-wal``/``-shm``
files the database file's mode.

Exceptions (sqlite3/aiosqlite errors are translated here, with ``raise ... from``)::

    StoreError                   any failure of the store; message names the database file, never row data
     +-- StoreCorrupt            integrity_check failed, or "not a database" / "malformed" from SQLite
     +-- SchemaTooNew            user_version is newer than this program knows; the file is left untouched
     +-- ConstraintViolation     a UNIQUE / FOREIGN KEY / CHECK / NOT NULL constraint refused a write

Programming errors (a malformed migration list, a hook registered outside a write) raise ``ValueError`` /
``StoreError`` immediately.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

Migration = tuple[int, str]
T = TypeVar("T")

_BUSY_TIMEOUT_MS = 5000
_CLOSE_WAIT_S = 10.0
_BACKUP_PAGES = 256
_WAL_CHECKPOINT_PAGES = 4000


class StoreError(Exception):
    """Base class of every store failure."""


class StoreCorrupt(StoreError):
    """The database file failed an integrity check or is not an SQLite database."""


class SchemaTooNew(StoreError):
    """The file was written by a newer integd (its user_version is higher than any migration we know)."""


class ConstraintViolation(StoreError):
    """A constraint (UNIQUE, FOREIGN KEY, CHECK, NOT NULL) refused a write."""


def translate(exc: BaseException, path: Path, doing: str) -> StoreError:
    """Map a sqlite3/aiosqlite error to the most specific StoreError; the caller raises it ``from exc``.

    Example: ``except sqlite3.Error as e: raise translate(e, db.path, "saving app") from e``.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorrupt(f"database {path} is corrupt or not an SQLite database ({doing}): {exc}")
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintViolation(f"{doing} in {path}: {exc}")
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"database {path} stayed locked by another process for "
                          f"{_BUSY_TIMEOUT_MS} ms ({doing}); is a second integd running on it?")
    if isinstance(exc, ValueError):  # aiosqlite: "Connection closed" / "no active connection"
        return StoreError(f"database {path} is closed ({doing})")
    return StoreError(f"{doing} failed in {path}: {exc}")


class _WriteScope:
    """One active write transaction: which database, whether it is still open, and its hooks."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.active = True
        self.on_commit: list[Callable[[], None]] = []
        self.on_rollback: list[Callable[[], None]] = []


# The write scope of the running task. A contextvar (not only the owning task) so that a helper task spawned
# and awaited inside write() also gets "nested write transaction" instead of deadlocking on the lock; the
# scope's `active` flag keeps a task that outlives the transaction from being refused later.
_CURRENT_WRITE: contextvars.ContextVar[_WriteScope | None] = contextvars.ContextVar("integd_write", default=None)


async def _settle(aw: Awaitable[T]) -> tuple[asyncio.Future[T], bool]:
    """Await `aw` to completion even if the caller is cancelled meanwhile; return it and "was cancelled"."""
    task = asyncio.ensure_future(aw)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    return task, cancelled


async def _uncancellable(aw: Awaitable[T]) -> T:
    """Run `aw` to completion; if the caller was cancelled meanwhile, re-raise the cancellation after."""
    task, cancelled = await _settle(aw)
    if cancelled:
        # The cancellation wins, but a failure of the finaliser stays visible as its cause.
        raise asyncio.CancelledError() from (None if task.cancelled() else task.exception())
    return task.result()


def in_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run ``fn(sqlite3_connection, *args)`` on the aiosqlite connection's own thread, as ONE queued call.

    A page of records is a SELECT, two to five executemany and a cursor UPDATE: awaited one by one that is seven
    thread round trips, each of which waits for the worker and the GIL (83 µs idle, milliseconds on a busy
    machine; libraries.md §4). aiosqlite has no public API for running a function on its thread, so this uses
    ``Connection._execute`` and ``Connection._conn`` (both unchanged from aiosqlite 0.17 to 0.22.1; pyproject caps
    it below 0.23). The caller must hold the writer (``write()`` or ``write_call``) so nothing else interleaves.
    """
    return conn._execute(lambda: fn(conn._conn, *args))


def _create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 (and its directory 0700) unless it exists."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _validate_migrations(migrations: Sequence[Migration]) -> int:
    """Check that migrations are (int, str) pairs numbered 1..N in order; return N."""
    versions = []
    for item in migrations:
        if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], int)
                or not isinstance(item[1], str)):
            raise ValueError(f"a migration must be a (version: int, sql: str) tuple; got {type(item).__name__}")
        versions.append(item[0])
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1..N contiguously and in order; got versions {versions}")
    return len(versions)


async def _connect(path: Path, *, writer: bool) -> aiosqlite.Connection:
    """Open one connection and apply the per-connection pragmas (WAL is set later, after the version check)."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        if not writer:
            await conn.execute("PRAGMA query_only = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


class Database:
    """The application's SQLite database: migrations on open, serialised writes, pooled reads.

    Example::

        db = await Database.open(state_dir / "integd.db", [(1, "CREATE TABLE app (id TEXT PRIMARY KEY)")])
        try:
            async with db.write() as conn:
                await conn.execute("INSERT INTO app VALUES (?)", ("a1",))
            row = await db.fetchone("SELECT id FROM app")
        finally:
            await db.close()
    """

    def __init__(self, path: Path, writer: aiosqlite.Connection, user_version: int) -> None:
        self.path = path
        self.user_version = user_version
        self._writer = writer
        self._lock = asyncio.Lock()
        self._readers: list[aiosqlite.Connection] = []
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._closed = False

    @classmethod
    async def open(cls, path: Path, migrations: Sequence[Migration], *, readers: int = 2) -> Database:
        """Open (creating if needed) the database at `path` and bring its schema up to date.

        Raises SchemaTooNew (file untouched), StoreCorrupt, or StoreError naming the failed migration version.
        """
        if readers < 1:
            raise ValueError(f"readers must be at least 1; got {readers}")
        newest = _validate_migrations(migrations)
        path = Path(path)
        try:
            _create_private_file(path)
        except OSError as exc:
            raise StoreError(f"cannot create database file {path}: {exc.strerror}") from exc
        try:
            writer = await _connect(path, writer=True)
        except (sqlite3.Error, ValueError) as exc:
            raise translate(exc, path, "opening") from exc
        db = cls(path, writer, 0)
        try:
            await db._prepare(migrations, newest, readers)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, (sqlite3.Error, ValueError)):
                raise translate(exc, path, "opening") from exc
            raise
        return db

    async def _prepare(self, migrations: Sequence[Migration], newest: int, readers: int) -> None:
        """Version check (before anything writes to the file), WAL, migrations, then the reader pool."""
        async with self._writer.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        self.user_version = int(row[0]) if row is not None else 0
        if self.user_version > newest:
            raise SchemaTooNew(f"database {self.path} has schema version {self.user_version} but this integd "
                               f"knows only up to {newest}; run a newer integd (the file was not changed)")
        await self._enable_wal()
        await self._migrate(migrations)
        for _ in range(readers):
            reader = await _connect(self.path, writer=False)
            self._readers.append(reader)
            self._idle.put_nowait(reader)

    async def _enable_wal(self) -> None:
        async with self._writer.execute("PRAGMA journal_mode = WAL") as cur:
            row = await cur.fetchone()
        mode = str(row[0]).lower() if row is not None else "unknown"
        if mode != "wal":
            raise StoreError(f"database {self.path} refused WAL journal mode (got {mode!r}); "
                             "is it on a filesystem without shared memory support?")
        # Checkpoint every ~16 MiB of WAL instead of SQLite's 4 MiB: a sync writing 100 KB pages otherwise pays a
        # checkpoint (with its fsync) every few dozen commits, a p90 of 54 ms per page in bench/bench_sync.py.
        await self._writer.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply each pending migration in its own BEGIN IMMEDIATE ... COMMIT with its user_version."""
        for version, sql in migrations:
            if version <= self.user_version:
                continue
            # executescript() in 3.11 commits an open transaction before running, so BEGIN goes in the script.
            script = f"BEGIN IMMEDIATE;\n{sql}\n;\nPRAGMA user_version = {version};\nCOMMIT;"
            try:
                await self._writer.executescript(script)
            except sqlite3.Error as exc:
                await _uncancellable(self._writer.rollback())
                failure = translate(exc, self.path, f"migration {version}")
                raise type(failure)(f"migration {version} failed and was rolled back; {self.path} stays at "
                                    f"schema version {self.user_version}: {exc}") from exc
            self.user_version = version

    # -- writes -------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection: COMMIT on success, ROLLBACK on any exception.

        Not re-entrant: ``write()`` inside ``write()`` raises StoreError("nested write transaction ...").

        Example::

            async with db.write() as conn:
                await conn.execute("UPDATE app SET status = ? WHERE id = ?", ("ok", app_id))
        """
        self._check_open()
        if self.in_write():
            raise StoreError(f"nested write transaction on {self.path}: do the work inside the open write() "
                             "(pass its connection down) instead of opening another")
        async with self._lock:
            self._check_open()
            scope = _WriteScope(self)
            token = _CURRENT_WRITE.set(scope)
            try:
                try:
                    await self._writer.execute("BEGIN IMMEDIATE")
                    yield self._writer
                except BaseException as exc:
                    # Also reached when BEGIN itself was cancelled: it still runs on aiosqlite's thread, and
                    # the ROLLBACK queued behind it undoes it.
                    await _uncancellable(self._rollback())
                    _run_hooks(reversed(scope.on_rollback))
                    if isinstance(exc, sqlite3.Error) or (isinstance(exc, ValueError) and self._closed):
                        raise translate(exc, self.path, "write transaction") from exc
                    raise
                commit, cancelled = await _settle(self._commit())
                failure = None if commit.cancelled() else commit.exception()
                _run_hooks(reversed(scope.on_rollback) if failure is not None else scope.on_commit)
                if cancelled:
                    raise asyncio.CancelledError() from failure
                if failure is not None:
                    raise failure
            finally:
                scope.active = False
                _CURRENT_WRITE.reset(token)

    async def write_call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One write transaction run as ONE call on the writer's thread: BEGIN IMMEDIATE, ``fn(conn)``, COMMIT
        (ROLLBACK if ``fn`` raises); ``fn``'s result.

        For hot batch writes (a page of synced records): ``write()`` costs a thread round trip per statement
        plus BEGIN and COMMIT, and under load each round trip also waits for the GIL. ``fn`` gets the plain
        ``sqlite3.Connection`` and must only run statements on it (no awaits, no event-loop objects). Takes the
        same lock as ``write()`` and is refused inside one. A cancellation while ``fn`` runs waits for the
        transaction to end (committed or rolled back) and is re-raised after; so is a failure, translated.

        Example::

            n = await db.write_call(lambda c: c.executemany("INSERT INTO t VALUES (?)", rows).rowcount)
        """
        self._check_open()
        if self.in_write():
            raise StoreError(f"nested write transaction on {self.path}: do the work inside the open write() "
                             "(pass its connection down) instead of opening another")

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        async with self._lock:
            self._check_open()
            writer = self._writer
            try:
                return await _uncancellable(in_thread(writer, transaction))   # the lock keeps others off it
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "write transaction") from exc

    async def _commit(self) -> None:
        try:
            await self._writer.commit()
        except (sqlite3.Error, ValueError) as exc:
            await self._rollback()
            raise translate(exc, self.path, "commit") from exc

    async def _rollback(self) -> None:
        if self._closed:
            return  # close() closes the writer, and closing an SQLite connection discards its transaction
        try:
            await self._writer.rollback()  # a no-op when BEGIN never ran
        except (sqlite3.Error, ValueError) as exc:
            raise translate(exc, self.path, "rollback") from exc

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook()` after the current task's write transaction commits (hooks must not raise).

        Example: ``db.on_commit(lambda: bus.publish(events))`` inside ``async with db.write():``.
        """
        self._current_scope().on_commit.append(hook)

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Run `hook()` if the current task's write transaction rolls back (hooks run newest first)."""
        self._current_scope().on_rollback.append(hook)

    def _current_scope(self) -> _WriteScope:
        scope = _CURRENT_WRITE.get()
        if scope is None or scope.db is not self or not scope.active:
            raise StoreError(f"no write transaction is open on {self.path} in this task")
        return scope

    def in_write(self) -> bool:
        """True when the calling task is inside ``write()`` on this database."""
        scope = _CURRENT_WRITE.get()
        return scope is not None and scope.db is self and scope.active

    # -- reads --------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """Borrow a reader connection (read-only, sees committed data) for the duration of the block.

        Example: ``async with db.read() as conn: rows = await conn.execute_fetchall("SELECT ...")``.
        """
        self._check_open()
        conn = await self._idle.get()
        try:
            self._check_open()
            yield conn
        except BaseException as exc:
            if not self._closed:
                # A cancelled or failed block may have left its own BEGIN open (or a statement queued).
                await _uncancellable(conn.rollback())
            if isinstance(exc, sqlite3.Error) or (isinstance(exc, ValueError) and self._closed):
                raise translate(exc, self.path, "read") from exc
            raise
        else:
            if conn.in_transaction and not self._closed:
                await _uncancellable(conn.rollback())  # the block forgot to end its snapshot
        finally:
            self._idle.put_nowait(conn)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        """First row of a query on a reader, or None. Example: ``await db.fetchone("SELECT 1")``."""
        async with self.read() as conn:
            async with conn.execute(sql, params) as cur:
                return await cur.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        """All rows of a query on a reader. Example: ``await db.fetchall("SELECT id FROM app")``."""
        async with self.read() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` on a reader: "ok", or SQLite's findings joined by newlines."""
        rows = await self.fetchall("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)

    # -- backup and lifetime ------------------------------------------------------------------------------

    async def backup(self, dest: Path) -> None:
        """Write a consistent copy of the live database to `dest` (mode 0600), then verify it.

        Writers keep going meanwhile: the copy is the snapshot of one read transaction held on a reader
        for the whole backup (so SQLite never restarts it). It is built in a temporary file next to `dest`,
        switched to a self-contained rollback-journal file, and renamed over `dest` only after
        ``integrity_check`` says "ok" (else StoreCorrupt naming the copy).
        Example: ``await db.backup(state_dir / "backups" / "integd-2024-05-01.db")``.
        """
        self._check_open()
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            _create_private_file(tmp)
            target = await asyncio.to_thread(sqlite3.connect, tmp, isolation_level=None, check_same_thread=False)
            try:
                async with self.read() as source:
                    await source.execute("BEGIN")
                    await source.execute("SELECT count(*) FROM sqlite_master")  # pins the snapshot
                    await source.backup(target, pages=_BACKUP_PAGES, sleep=0)
                    await source.rollback()
                verdict = await asyncio.to_thread(_seal_copy, target)
            finally:
                await asyncio.to_thread(target.close)
            if verdict != "ok":
                raise StoreCorrupt(f"backup copy of {self.path} failed integrity_check: {verdict[:500]}")
            os.replace(tmp, dest)
        except OSError as exc:
            raise StoreError(f"cannot write backup of {self.path} to {dest}: {exc.strerror}") from exc
        except sqlite3.Error as exc:
            raise translate(exc, self.path, f"backup to {dest}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    async def close(self) -> None:
        """Close every connection (idempotent). Waits up to 10 s for a write in progress to finish.

        After the wait the connections are closed regardless: aiosqlite still runs the calls already queued,
        and closing an SQLite connection discards a transaction left open.
        """
        if self._closed:
            return
        acquire = asyncio.ensure_future(self._lock.acquire())
        done, _ = await asyncio.wait([acquire], timeout=_CLOSE_WAIT_S)
        if not done:
            acquire.cancel()
        self._closed = True
        if done:
            # Writers still queued on the lock wake up, see the database closed and raise StoreError.
            self._lock.release()
        failure: BaseException | None = None
        for conn in [self._writer, *self._readers]:
            try:
                await conn.close()
            except (sqlite3.Error, ValueError) as exc:
                failure = failure or exc
        if failure is not None:
            raise translate(failure, self.path, "closing") from failure

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"database {self.path} is closed")


def _run_hooks(hooks: Any) -> None:
    for hook in hooks:
        hook()


def _seal_copy(target: sqlite3.Connection) -> str:
    """Make a backup copy self-contained (no -wal needed) and return its integrity_check verdict."""
    target.execute("PRAGMA journal_mode = DELETE")
    rows = target.execute("PRAGMA integrity_check").fetchall()
    return "\n".join(str(row[0]) for row in rows)
