"""Backup and restore on real SQLite files: what restore refuses, the state lock, and a daemon's lock."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from integd.backup import BackupError, RestoreRefused, backup, check_backup, restore
from integd.state_lock import StateDirInUse, StateLock
from integd.store.schema import MIGRATIONS
from tests.conftest import make_daemon


@pytest.fixture
async def store(short_dir: Path) -> Path:
    """A state directory holding a real, closed integd store."""
    d = make_daemon(short_dir / "state", short_dir / "d.sock")
    await d.start()
    await d.stop()
    return short_dir / "state"


def test_backup_of_a_stopped_store_and_restore_round_trip(store: Path, short_dir: Path) -> None:
    copy = short_dir / "copy.db"
    info = backup(store, copy)
    assert info["integrity"] == "ok" and info["schema_version"] == len(MIGRATIONS) and info["apps"] == 0
    assert not list(short_dir.glob(".copy.db.*")), "no temporary file left behind"
    result = restore(copy, store, now=1_800_000_000)
    assert result["previous"] == str(store / "integd.db.bak-20270115T080000Z")
    again = restore(copy, store, now=1_800_000_000)
    assert again["previous"].endswith("bak-20270115T080000Z-2"), "never overwrites an earlier .bak"


def test_backup_errors_name_the_problem(short_dir: Path, store: Path) -> None:
    with pytest.raises(BackupError, match="no integd database at"):
        backup(short_dir / "empty", short_dir / "x.db")
    with pytest.raises(BackupError, match="does not exist"):
        backup(store, short_dir / "missing-dir" / "x.db")


def test_restore_refuses_files_that_are_not_usable_stores(short_dir: Path, store: Path) -> None:
    junk = short_dir / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(RestoreRefused, match="not a readable SQLite database"):
        check_backup(junk)
    with pytest.raises(RestoreRefused, match="no such file"):
        check_backup(short_dir / "nothing.db")
    other = short_dir / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(RestoreRefused, match="not an integd store"):
        check_backup(other)
    newer = short_dir / "newer.db"
    backup(store, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    before = (store / "integd.db").read_bytes()
    with pytest.raises(RestoreRefused, match="newer than this integd knows"):
        restore(newer, store)
    assert (store / "integd.db").read_bytes() == before


def test_restore_refuses_while_the_state_lock_is_held(store: Path, short_dir: Path) -> None:
    copy = short_dir / "copy.db"
    backup(store, copy)
    with StateLock(store):
        with pytest.raises(RestoreRefused, match=f"in use by another integd process \\(pid {os.getpid()}\\)"):
            restore(copy, store)
    restore(copy, store)   # released: allowed


async def test_a_running_daemon_holds_the_lock_and_a_second_one_is_refused(short_dir: Path) -> None:
    first = make_daemon(short_dir / "state", short_dir / "a.sock")
    await first.start()
    try:
        second = make_daemon(short_dir / "state", short_dir / "b.sock")
        with pytest.raises(StateDirInUse, match="stop it first"):
            await second.start()
        assert not (short_dir / "b.sock").exists()
        with pytest.raises(StateDirInUse):
            StateLock(short_dir / "state").acquire()
    finally:
        await first.stop()
    with StateLock(short_dir / "state"):
        pass   # released at stop


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away (what `sudo integd restore` does)")
def test_restore_as_root_leaves_files_the_daemons_user_can_open(store: Path, short_dir: Path) -> None:
    copy = short_dir / "copy.db"
    backup(store, copy)
    fresh = short_dir / "fresh"
    fresh.mkdir(mode=0o700)
    os.chown(fresh, 65534, 65534)   # the daemon's user owns its state directory
    restore(copy, fresh)
    for name in ("integd.db", "integd.lock"):
        st = (fresh / name).stat()
        assert (st.st_uid, st.st_gid) == (65534, 65534), name
