"""`integd backup` while a real daemon process is busy writing, `integd restore` refused while it runs, and the
restored store serving every app (with the master key carried over separately)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
from pathlib import Path

from integd.backup import restore
from integd.client import IntegdClient
from tests.conftest import TOKENS, connect, make_daemon
from tests.e2e.test_process import DaemonProcess

APPS = 8


async def integd(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEGD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integd.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def consistent(copy: Path, *, sealed: bool = True) -> tuple[int, int]:
    """integrity_check ok, and every app in the copy has its app.connected event (same transaction)."""
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if sealed:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "self-contained, no -wal"
        apps = conn.execute("SELECT count(*) FROM apps").fetchone()[0]
        connected = conn.execute("SELECT count(*) FROM events WHERE type = 'app.connected'").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert apps == connected
    return apps, events


async def test_backup_while_busy_restore_refused_while_running_then_restored(short_dir: Path,
                                                                             emulators: dict) -> None:
    state = short_dir / "a"
    proc = DaemonProcess(state, short_dir / "a.sock")
    await proc.start()
    try:
        async with IntegdClient(str(proc.sock)) as client:
            backed_up = asyncio.Event()

            async def write() -> list[str]:
                """Connect APPS apps, then keep renaming them (an event per commit) until the backup is done."""
                ids: list[str] = []
                renames = 0
                while not backed_up.is_set() or len(ids) < APPS:
                    if len(ids) < APPS:
                        i = len(ids)
                        app = await connect(client, emulators, "github" if i % 2 else "slack", name=f"app {i}")
                        ids.append(app["id"])
                    renames += 1
                    await client.call("apps.configure", {"app_id": ids[renames % len(ids)],
                                                         "name": f"rename {renames}"})
                return ids

            writer = asyncio.create_task(write())
            busy = short_dir / "busy.db"
            code, out, err = await integd("--state-dir", str(state), "backup", str(busy))
            backed_up.set()
            assert code == 0, err
            assert "backup written to" in out and "integrity ok" in out and "master key is NOT" in out
            assert not writer.done(), "the daemon was writing throughout the backup"
            ids = await writer
            assert oct(busy.stat().st_mode & 0o777) == "0o600"
            assert consistent(busy)[0] <= len(ids)

            final = short_dir / "final.db"
            assert (await integd("--state-dir", str(state), "backup", str(final)))[0] == 0
            assert consistent(final)[0] == len(ids)

        before = (state / "integd.db").stat().st_ino
        code, _, err = await integd("--state-dir", str(state), "restore", str(final))
        assert code == 1 and "refusing to restore" in err and f"pid {proc.proc.pid}" in err
        assert (state / "integd.db").stat().st_ino == before, "the live store was not touched"
    finally:
        proc.proc.send_signal(15)
        assert await proc.exit_code() == 0

    # Elsewhere: the backup plus the master key (carried separately) give back every app, credentials usable.
    other = short_dir / "b"
    other.mkdir(mode=0o700)
    shutil.copy2(state / "master.key", other / "master.key")
    assert restore(final, other)["previous"] is None
    d = make_daemon(other, short_dir / "b.sock")
    await d.start()
    try:
        async with IntegdClient(str(d.paths.socket)) as client:
            listed = await client.call("apps.list")
            assert sorted(a["id"] for a in listed) == sorted(ids)
            checked = await client.call("apps.check", {"app_id": ids[1]})
            assert checked["ok"], "the restored credential decrypts and works"
    finally:
        await d.stop()

    # Restoring over an existing store keeps the old one beside it.
    again = restore(busy, other)
    kept = sorted(other.glob("integd.db.bak-*"))
    assert len(kept) == 1 and str(kept[0]) == again["previous"]
    assert consistent(kept[0], sealed=False)[0] == len(ids)
    assert consistent(other / "integd.db")[0] == consistent(busy)[0]
    assert TOKENS["github"] not in (other / "integd.db").read_bytes().decode("latin-1")
