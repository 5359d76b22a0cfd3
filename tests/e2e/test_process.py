"""The daemon as a real process: SIGTERM drains, kill -9 loses nothing committed, a live socket is never stolen."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from integd.client import DaemonUnavailable, IntegdClient
from tests.conftest import TOKENS, connect


class DaemonProcess:
    def __init__(self, state: Path, sock: Path) -> None:
        self.state, self.sock = state, sock
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict] = []

    async def start(self, *, expect_ready: bool = True) -> None:
        env = {**os.environ, "INTEGD_LOG_FORMAT": "json"}
        env.pop("NOTIFY_SOCKET", None)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "integd.cli", "--state-dir", str(self.state), "--socket", str(self.sock),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        if expect_ready:
            await self.wait_for("daemon.started")

    async def wait_for(self, event: str, timeout: float = 20.0) -> dict:
        async def scan() -> dict:
            assert self.proc and self.proc.stdout
            while line := await self.proc.stdout.readline():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.lines.append(rec)
                if rec.get("event") == event:
                    return rec
            raise AssertionError(f"daemon exited before logging {event}: {await self.proc.stderr.read()!r}")
        return await asyncio.wait_for(scan(), timeout)

    async def exit_code(self, timeout: float = 20.0) -> int:
        assert self.proc
        if self.proc.stdout:
            await asyncio.wait_for(self.proc.stdout.read(), timeout)
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def wait_until(predicate, timeout: float = 10.0) -> None:
    """Poll a condition that has no event to await (another process's progress)."""
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(loop(), timeout)


async def test_sigterm_drains_in_flight_call_and_removes_socket(short_dir, emulators):
    proc = DaemonProcess(short_dir / "state", short_dir / "d.sock")
    await proc.start()
    async with IntegdClient(str(proc.sock)) as c:
        app = await connect(c, emulators, "github")
        emu = emulators["github"]
        emu.faults.latency = 1.0
        seen = emu.hits("/user")
        call = asyncio.create_task(c.call("apps.request", {"app_id": app["id"], "path": "/user"}))
        await wait_until(lambda: len(emu.request_log) and emu.hits("/user") > seen or call.done())
        proc.proc.send_signal(signal.SIGTERM)
        result = await call
    assert result["status"] == 200, "the in-flight call finished during the drain"
    assert await proc.exit_code() == 0
    assert not proc.sock.exists()


async def test_kill_9_loses_nothing_committed_and_stale_socket_is_replaced(short_dir, emulators):
    state, sock = short_dir / "state", short_dir / "d.sock"
    proc = DaemonProcess(state, sock)
    await proc.start()
    async with IntegdClient(str(sock)) as c:
        apps = [await connect(c, emulators, s) for s in TOKENS]
        committed = await c.call("events.list", {"limit": 1000})
        emulators["github"].faults.latency = 5.0
        call = asyncio.create_task(c.call("apps.request", {"app_id": apps[0]["id"], "path": "/user"}))
        await wait_until(lambda: emulators["github"].hits("/user") >= 2 or call.done())
        proc.proc.kill()
        await proc.proc.wait()
        with pytest.raises(DaemonUnavailable):
            await call
    assert sock.exists(), "kill -9 leaves a stale socket behind"
    emulators["github"].faults.latency = 0.0
    db = sqlite3.connect(state / "integd.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    again = DaemonProcess(state, sock)
    await again.start()
    try:
        async with IntegdClient(str(sock)) as c:
            listed = await c.call("apps.list")
            assert sorted(a["id"] for a in listed) == sorted(a["id"] for a in apps)
            after = await c.call("events.list", {"limit": 1000})
            ids = [e["event_id"] for e in after["events"]]
            assert ids[:len(committed["events"])] == [e["event_id"] for e in committed["events"]]
            for app in apps:
                assert (await c.call("apps.check", {"app_id": app["id"]}))["ok"], "credentials survived"
    finally:
        again.proc.send_signal(signal.SIGTERM)
        assert await again.exit_code() == 0


async def test_a_live_daemons_socket_is_never_stolen(short_dir):
    first = DaemonProcess(short_dir / "a", short_dir / "d.sock")
    await first.start()
    try:
        second = DaemonProcess(short_dir / "b", short_dir / "d.sock")
        await second.start(expect_ready=False)
        code = await second.exit_code()
        err = (await second.proc.stderr.read()).decode()
        assert code != 0 and "d.sock" in err
        async with IntegdClient(str(first.sock)) as c:
            assert (await c.call("daemon.status"))["apps"] == 0
    finally:
        first.proc.send_signal(signal.SIGTERM)
        assert await first.exit_code() == 0


async def test_wrong_master_key_is_a_clear_startup_error_that_changes_nothing(short_dir, emulators):
    state = short_dir / "state"
    proc = DaemonProcess(state, short_dir / "d.sock")
    await proc.start()
    async with IntegdClient(str(proc.sock)) as c:
        await connect(c, emulators, "github")
    proc.proc.send_signal(signal.SIGTERM)
    assert await proc.exit_code() == 0
    key = state / "master.key"
    key.write_bytes(os.urandom(32))
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.name != "master.key"}
    bad = DaemonProcess(state, short_dir / "d.sock")
    await bad.start(expect_ready=False)
    code = await bad.exit_code()
    err = (await bad.proc.stderr.read()).decode()
    assert code != 0 and "master.key" in err and "does not match" in err
    after = {p.name: p.read_bytes() for p in state.iterdir() if p.name != "master.key"}
    assert after == before
