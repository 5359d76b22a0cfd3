"""``integd backup FILE`` and ``integd restore FILE``: a consistent copy of the store taken while the daemon runs,
and a guarded swap back in while it does not.

Backup opens ``integd.db`` **read-only** from the CLI's own process (WAL lets a reader work beside the daemon's
writer, neither blocks the other), pins one read snapshot and copies it with SQLite's online backup API in a
single step, so the copy is the database as of one instant even while the daemon commits. The copy is made in a
temporary file next to FILE (mode 0600), turned into a self-contained rollback-journal database, checked with
``integrity_check`` and only then renamed to FILE.

Credentials stay encrypted in the copy. The master key is **not** in it (it lives in the systemd credential
``master-key``, the configured key file or ``<state_dir>/master.key``): keep it with the backup, separately,
or the restored credentials cannot be decrypted.

Restore checks FILE (an SQLite database, ``integrity_check`` ok, an integd store, schema not newer than this
integd), takes the state directory's lock (``integd.state_lock``: refused while a daemon holds it), settles
the old store's WAL, keeps it as ``integd.db.bak-<UTC timestamp>`` (a hard link, so ``integd.db`` is never
missing) and renames the verified copy over ``integd.db`` in one ``rename(2)``.

Exceptions::

    Exception
     └── BackupError          the copy or the check failed; the message names the file, never row data
          └── RestoreRefused  the file is not a usable integd store, or a daemon is running on the state dir
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

from integd.state_lock import StateDirInUse, StateLock
from integd.store.schema import MIGRATIONS

DB_NAME = "integd.db"
_BUSY_TIMEOUT_MS = 5000
MASTER_KEY_NOTE = ("credentials stay encrypted; the master key is NOT in the backup: keep the systemd credential "
                   "master-key (or the key file / <state_dir>/master.key) to restore them")


class BackupError(Exception):
    """A backup or restore could not be completed."""


class RestoreRefused(BackupError):
    """Restore will not replace the store: the file is unusable or a daemon is running."""


def _open_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def _private_tmp(dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return tmp


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: sqlite3.Connection, tmp: Path) -> dict[str, Any]:
    """Copy one snapshot of ``src`` into ``tmp``, seal it (no -wal needed) and describe it."""
    with closing(sqlite3.connect(tmp, isolation_level=None)) as dst:
        src.execute("BEGIN")
        try:
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()   # pins the read snapshot
            src.backup(dst, pages=-1)                                       # one step: one instant
        finally:
            src.execute("ROLLBACK")
        dst.execute("PRAGMA journal_mode = DELETE")
        return describe(dst)


def describe(conn: sqlite3.Connection) -> dict[str, Any]:
    """integrity_check verdict, schema version and row counts of an integd store (counts None if absent)."""
    verdict = "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall())
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts = {t: (int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) if t in tables else None)
              for t in ("apps", "events")}
    return {"integrity": verdict, "schema_version": version, "apps": counts["apps"], "events": counts["events"]}


def backup(state_dir: Path, dest: Path) -> dict[str, Any]:
    """Write a verified, consistent copy of ``<state_dir>/integd.db`` to ``dest``; safe while the daemon runs.

    Example: ``backup(Path("/var/lib/integd"), Path("/srv/backups/integd-2026-11-29.db"))``
    -> ``{"file": ..., "bytes": 94208, "schema_version": 5, "apps": 12, "events": 3401, "integrity": "ok"}``
    """
    source = Path(state_dir) / DB_NAME
    dest = Path(dest).absolute()
    if not source.is_file():
        raise BackupError(f"no integd database at {source} (is --state-dir right?)")
    if not dest.parent.is_dir():
        raise BackupError(f"cannot write {dest}: directory {dest.parent} does not exist")
    tmp: Path | None = None
    try:
        tmp = _private_tmp(dest)
        with closing(_open_ro(source)) as src:
            info = _copy(src, tmp)
        if info["integrity"] != "ok":
            raise BackupError(f"the copy of {source} failed integrity_check: {info['integrity'][:300]}")
        if info["apps"] is None:
            raise BackupError(f"{source} is not an integd store (no apps table)")
        os.replace(tmp, dest)
        tmp = None
        _fsync_dir(dest.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot write backup to {dest}: {exc.strerror}") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return {"file": str(dest), "bytes": dest.stat().st_size, **info}


def check_backup(path: Path) -> dict[str, Any]:
    """Why ``path`` cannot be restored (RestoreRefused), or its description."""
    if not path.is_file():
        raise RestoreRefused(f"{path}: no such file")
    try:
        with closing(_open_ro(path)) as conn:
            info = describe(conn)
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused(f"{path} is not a readable SQLite database: {exc}") from exc
    newest = len(MIGRATIONS)
    if info["integrity"] != "ok":
        raise RestoreRefused(f"{path} failed integrity_check: {info['integrity'][:300]}")
    if info["apps"] is None or info["events"] is None:
        raise RestoreRefused(f"{path} is not an integd store (no apps/events tables)")
    if info["schema_version"] > newest:
        raise RestoreRefused(f"{path} has schema version {info['schema_version']}, newer than this integd knows "
                             f"({newest}); restore it with a newer integd")
    return info


def _settle_wal(db: Path) -> None:
    """Fold a leftover -wal into the old database (after a crash), so it can be kept as one file."""
    if not Path(f"{db}-wal").exists():
        return
    try:
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error:
        return   # a damaged old store: its -wal/-shm are moved beside the .bak as they are


def restore(src: Path, state_dir: Path, *, now: float | None = None) -> dict[str, Any]:
    """Replace ``<state_dir>/integd.db`` with the verified backup ``src``; the old store is kept as a .bak.

    Raises RestoreRefused while a daemon runs on ``state_dir`` (it holds ``integd.lock``).
    Example: ``restore(Path("/srv/backups/integd-2026-11-29.db"), Path("/var/lib/integd"))``
    """
    src, state_dir = Path(src).absolute(), Path(state_dir)
    info = check_backup(src)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = state_dir / DB_NAME
    try:
        with StateLock(state_dir):
            tmp = _private_tmp(target)
            try:
                _owned_like(tmp, state_dir)
                with closing(_open_ro(src)) as conn:
                    _copy(conn, tmp)
                kept = _keep_old(target, now)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(state_dir)
    except StateDirInUse as exc:
        raise RestoreRefused(f"refusing to restore: {exc}") from exc
    except sqlite3.Error as exc:
        raise BackupError(f"restore from {src} failed: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"restore into {state_dir} failed: {exc.strerror}") from exc
    return {"file": str(src), "restored_to": str(target), "previous": kept, **info}


def _owned_like(path: Path, state_dir: Path) -> None:
    """Run as root (``sudo integd restore``), give the new store to the daemon's user, who owns the state dir."""
    if os.geteuid() == 0:
        st = os.stat(state_dir)
        os.chown(path, st.st_uid, st.st_gid)


def _keep_old(target: Path, now: float | None) -> str | None:
    if not target.exists():
        return None
    _settle_wal(target)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    bak = target.with_name(f"{target.name}.bak-{stamp}")
    n = 1
    while bak.exists():
        n += 1
        bak = target.with_name(f"{target.name}.bak-{stamp}-{n}")
    os.link(target, bak)   # integd.db stays in place until the rename replaces it
    for suffix in ("-wal", "-shm"):
        side = Path(f"{target}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{bak}{suffix}"))
    return str(bak)
