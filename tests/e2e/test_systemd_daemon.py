"""The daemon as systemd sees it, as a real process: sd_notify datagrams (path and abstract addresses), the
watchdog from the event loop, STATUS kept current, STOPPING on SIGTERM, socket activation through LISTEN_FDS,
journald priority prefixes when JOURNAL_STREAM names its stdout, and SIGHUP reloads (applied, and refused).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from integd.client import IntegdClient
from integd.store.schema import MIGRATIONS
from tests.conftest import connect

REPO = Path(__file__).resolve().parents[2]

# What systemd does between fork and exec: pass a listening socket at fd 3 with LISTEN_PID set to the pid that
# will run the daemon (exec keeps it), and JOURNAL_STREAM naming the stdout it connected to the journal.
LAUNCHER = textwrap.dedent("""
    import os, sys
    listen_fd, journal = int(sys.argv[1]), sys.argv[2] == "journal"
    if listen_fd >= 0:
        os.dup2(listen_fd, 3)          # the copy is inheritable
        os.close(listen_fd)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
    if journal:
        st = os.fstat(1)
        os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    os.execv(sys.executable, [sys.executable, "-m", "integd.cli", *sys.argv[3:]])
""")


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: every datagram, with the loop time it arrived."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock, self.address = sock, address
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((loop.time(), fields))
            self._arrived.set()

    async def wait_for(self, predicate: Callable[[dict[str, str]], bool], *, start: int = 0,
                       timeout: float = 20.0) -> int:
        """Index of the first message from ``start`` on that satisfies ``predicate``."""
        async def scan() -> int:
            seen = start
            while True:
                for i in range(seen, len(self.messages)):
                    if predicate(self.messages[i][1]):
                        return i
                seen = len(self.messages)
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(scan(), timeout)

    def close(self) -> None:
        self._task.cancel()
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
async def listener(request: pytest.FixtureRequest, short_dir: Path) -> AsyncIterator[NotifyListener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(short_dir / "notify")
        sock.bind(address)
    else:
        name = f"integd-test-{secrets.token_hex(8)}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.setblocking(False)
    lst = NotifyListener(sock, address)
    yield lst
    lst.close()


class Service:
    """One daemon process started like systemd would start it."""

    def __init__(self, short_dir: Path) -> None:
        self.state, self.sock = short_dir / "state", short_dir / "d.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.raw_lines: list[str] = []
        self._line = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *, env: dict[str, str] | None = None, listen: socket.socket | None = None,
                    journal: bool = False, config: Path | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_", "JOURNAL_", "INTEGD_"))}
        full_env.update({"INTEGD_LOG_FORMAT": "json", "PYTHONPATH": str(REPO), **(env or {})})
        args = ["--state-dir", str(self.state), "--socket", str(self.sock)]
        if config is not None:
            args += ["--config", str(config)]
        fd = listen.fileno() if listen is not None else -1
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LAUNCHER, str(fd), "journal" if journal else "-", *args,
            pass_fds=[fd] if fd >= 0 else [], env=full_env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            self.raw_lines.append(line.decode().rstrip("\n"))
            self._line.set()

    def records(self) -> list[dict]:
        out = []
        for line in self.raw_lines:
            try:
                out.append(json.loads(re.sub(r"^<\d>", "", line)))
            except json.JSONDecodeError:
                continue
        return out

    async def wait_log(self, event: str, *, after: int = 0, timeout: float = 20.0) -> dict:
        async def scan() -> dict:
            while True:
                found = [r for r in self.records()[after:] if r.get("event") == event]
                if found:
                    return found[0]
                if self._reader is not None and self._reader.done():
                    stderr = await self.proc.stderr.read() if self.proc and self.proc.stderr else b""
                    raise AssertionError(f"daemon exited before logging {event}: {stderr.decode()[-2000:]}")
                self._line.clear()
                await self._line.wait()
        return await asyncio.wait_for(scan(), timeout)

    async def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return code

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


@pytest.fixture
async def service(short_dir: Path) -> AsyncIterator[Service]:
    svc = Service(short_dir)
    yield svc
    await svc.kill()


def schema_version(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def test_notify_ready_status_watchdog_stopping(service: Service, listener: NotifyListener,
                                                     emulators: dict) -> None:
    await service.start(env={"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"})
    ready = await listener.wait_for(lambda m: m.get("READY") == "1")
    # At the moment READY arrives the socket already answers and the store is open and migrated.
    async with IntegdClient(str(service.sock)) as client:
        status = await client.call("daemon.status")
        assert status["apps"] == 0
        assert schema_version(service.state / "integd.db") == len(MIGRATIONS)
        assert listener.messages[ready][1]["STATUS"] == "serving, no apps connected"
        assert not any("READY" in m for _, m in listener.messages[:ready])

        mark = len(listener.messages)
        await connect(client, emulators, "github")
        changed = await listener.wait_for(lambda m: m.get("STATUS", "").startswith("serving 1 apps"), start=mark)
        assert listener.messages[changed][1]["STATUS"] == "serving 1 apps (1 connected)"

    # WATCHDOG=1 from the event loop at half of WATCHDOG_USEC (0.1 s).
    first = await listener.wait_for(lambda m: m == {"WATCHDOG": "1"}, start=ready)
    last = first
    for _ in range(5):
        last = await listener.wait_for(lambda m: m == {"WATCHDOG": "1"}, start=last + 1)
    pings = [t for t, m in listener.messages[first:last + 1] if m == {"WATCHDOG": "1"}]
    assert len(pings) == 6
    mean_gap = (pings[-1] - pings[0]) / 5
    assert 0.08 <= mean_gap <= 0.2, mean_gap

    mark = len(listener.messages)
    assert await service.terminate() == 0
    stopping = await listener.wait_for(lambda m: m.get("STOPPING") == "1", start=mark)
    assert stopping >= mark


async def test_socket_activation_serves_on_the_passed_socket_and_leaves_it(service: Service,
                                                                          short_dir: Path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(service.sock))
    listening.listen(16)
    try:
        await service.start(listen=listening)
        started = await service.wait_log("rpc.listening")
        assert started["adopted"] is True
    finally:
        listening.close()   # the daemon holds its own copy
    async with IntegdClient(str(service.sock)) as client:
        assert (await client.call("daemon.status"))["socket"] == str(service.sock)
    assert await service.terminate() == 0
    assert service.sock.exists(), "a socket passed by systemd belongs to systemd: never unlinked"


CONFIG = """
[health]
interval = {interval}

[usage]
default_plan = "standard"
[usage.plans.standard]
daily_limit = {limit}
"""


async def test_journald_prefixes_and_sighup_reload(service: Service, short_dir: Path, emulators: dict) -> None:
    config = short_dir / "config.toml"
    config.write_text(CONFIG.format(interval=60, limit=1000))
    await service.start(journal=True, config=config)
    await service.wait_log("daemon.started")
    async with IntegdClient(str(service.sock)) as client:
        app = await connect(client, emulators, "github")
        assert app["check_interval"] == 60
        assert (await client.call("apps.usage", {"app_id": app["id"]}))["plan"]["limit"] == 1000

        config.write_text(CONFIG.format(interval=120, limit=7))
        mark = len(service.records())
        service.proc.send_signal(signal.SIGHUP)
        reloaded = await service.wait_log("config.reloaded", after=mark)
        assert reloaded["changed"] == ["health.interval", "usage.plans.standard.daily_limit"]
        second = await connect(client, emulators, "github", name="after reload")
        assert second["check_interval"] == 120
        assert (await client.call("apps.usage", {"app_id": app["id"]}))["plan"]["limit"] == 7

        for bad, says in ((CONFIG.format(interval=5, limit=7), "health.interval: Input should be greater"),
                          (CONFIG.format(interval=120, limit=7) + '[vault]\nkey_file = "/elsewhere/key"\n',
                           "vault.key_file: changed, but it cannot be reloaded")):
            config.write_text(bad)
            mark = len(service.records())
            service.proc.send_signal(signal.SIGHUP)
            refused = await service.wait_log("config.reload_refused", after=mark)
            assert says in refused["error"] and refused["level"] == "error"
        assert (await client.call("daemon.status"))["apps"] == 2, "still serving after a refused reload"
    assert await service.terminate() == 0

    lines = [line for line in service.raw_lines if line]
    assert lines and all(re.match(r"^<[0-7]>\{", line) for line in lines), lines[:3]
    prefixes = {json.loads(line[3:])["event"]: line[:3] for line in lines}
    assert prefixes["config.reloaded"] == "<6>"
    assert prefixes["config.reload_refused"] == "<3>"
