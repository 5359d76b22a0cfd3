"""integd.systemd against real sockets: sd_notify datagrams, the watchdog loop, socket activation, credentials."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integd.systemd import (
    Notifier,
    SystemdError,
    credential_path,
    listen_fds,
    listen_fds_with_names,
    watchdog_interval,
    watchdog_loop,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify")
    sock.bind(address)
    sock.settimeout(5)
    yield sock, address
    sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    name = f"integd-test-{secrets.token_hex(8)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


# -------------------------------------------------------------------------------------------- sd_notify

@pytest.mark.parametrize("receiver", ["path_receiver", "abstract_receiver"])
def test_notifier_sends_each_message(receiver: str, request: pytest.FixtureRequest) -> None:
    sock, address = request.getfixturevalue(receiver)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready("serving 3 apps")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 3 apps"
    assert notifier.status("syncing\ngithub")
    assert sock.recv(4096) == b"STATUS=syncing github"   # a newline must not start a forged key
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert notifier.notify("EXTEND_TIMEOUT_USEC=5000000", "X_INTEGD=1")
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=5000000\nX_INTEGD=1"


def test_reloading_carries_the_monotonic_clock(path_receiver: tuple[socket.socket, str]) -> None:
    sock, address = path_receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier(address).reloading()
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_notifier_is_inert_without_a_manager(tmp_path: Path) -> None:
    assert not Notifier.from_env({}).enabled
    assert Notifier.from_env({}).ready("x") is False
    assert Notifier.from_env({"NOTIFY_SOCKET": "not-an-address"}).enabled is False
    gone = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.enabled and gone.watchdog() is False and gone.watchdog() is False   # never raises


# --------------------------------------------------------------------------------------------- watchdog

@pytest.mark.parametrize(("env", "pid", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 10, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, 10, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "11"}, 10, None),
    ({"WATCHDOG_USEC": "0"}, 10, None),
    ({"WATCHDOG_USEC": "soon"}, 10, None),
    ({}, 10, None),
])
def test_watchdog_interval(env: dict[str, str], pid: int, expected: float | None) -> None:
    assert watchdog_interval(env, pid=pid) == expected


async def receive_times(sock: socket.socket, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(count):
        assert await loop.sock_recv(sock, 64) == b"WATCHDOG=1"
        times.append(loop.time())
    return times


async def test_watchdog_loop_pings_at_the_interval(path_receiver: tuple[socket.socket, str]) -> None:
    sock, address = path_receiver
    sock.setblocking(False)
    stop = asyncio.Event()
    interval = 0.03
    task = asyncio.create_task(watchdog_loop(Notifier(address), interval, stop))
    times = await asyncio.wait_for(receive_times(sock, 6), 5)
    stop.set()
    await asyncio.wait_for(task, 1)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Pings are never early: five gaps span five intervals. The slack of one interval absorbs a late read of
    # the first datagram (times are taken by the reader, not the sender).
    assert times[-1] - times[0] >= 4 * interval
    assert all(gap < 1.0 for gap in gaps)
    with pytest.raises(BlockingIOError):   # nothing after stop
        sock.recv(64)


async def test_watchdog_loop_realigns_after_a_stall(path_receiver: tuple[socket.socket, str]) -> None:
    sock, address = path_receiver
    sock.setblocking(False)
    stop = asyncio.Event()
    interval = 0.04
    task = asyncio.create_task(watchdog_loop(Notifier(address), interval, stop))
    await receive_times(sock, 1)
    time.sleep(interval * 5)   # a blocked event loop: no pings can be sent meanwhile
    times = await asyncio.wait_for(receive_times(sock, 3), 5)
    stop.set()
    await asyncio.wait_for(task, 1)
    # One ping after the stall, then the normal pace (two intervals for these three): a burst of the four
    # missed ticks would arrive within a millisecond or so.
    assert times[2] - times[0] >= 1.5 * interval


async def test_watchdog_loop_rejects_a_bad_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        await watchdog_loop(Notifier(None), 0, asyncio.Event())


# ------------------------------------------------------------------------------------ socket activation

HELPER = textwrap.dedent("""
    import fcntl, json, os, sys
    from integd.systemd import SystemdError, listen_fds_with_names
    try:
        adopted = listen_fds_with_names()
    except SystemdError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        sys.exit(0)
    print(json.dumps({
        "pid": os.getpid(),
        "sockets": [{"name": name, "fd": s.fileno(), "family": s.family.name, "type": s.type.name,
                     "cloexec": bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}
                    for name, s in adopted],
        "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    }), flush=True)
    for name, s in adopted:
        conn, _ = s.accept()
        conn.sendall(("hello from " + name).encode())
        conn.close()
""")


# What systemd does between fork and exec: move the fds to 3, 4, ..., set LISTEN_PID to the pid that will run
# the service (exec keeps it), exec.
TRAMPOLINE = textwrap.dedent("""
    import os, sys
    passed = [int(fd) for fd in sys.argv[1].split(",")]
    for index, fd in enumerate(passed):
        os.dup2(fd, 3 + index)   # the copy is inheritable
        os.close(fd)
    os.environ["LISTEN_PID"] = str(os.getpid()) if sys.argv[2] == "self" else sys.argv[2]
    os.execv(sys.executable, [sys.executable, sys.argv[3]])
""")


def spawn_activated(tmp_path: Path, fds: list[int], env: dict[str, str], listen_pid: str = "self") -> subprocess.Popen:
    """Start the helper as systemd would: passed fds at 3, 4, ... and LISTEN_PID = the helper's own pid."""
    helper = tmp_path / "activated.py"
    helper.write_text(HELPER)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 50) for fd in fds]   # clear of 3, 4, ...
    try:
        return subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, ",".join(map(str, high)), listen_pid, str(helper)],
            pass_fds=high, stdout=subprocess.PIPE, text=True, env={**os.environ, **env, "PYTHONPATH": str(REPO)})
    finally:
        for fd in high:
            os.close(fd)


def test_listen_fds_adopts_sockets_passed_like_systemd(tmp_path: Path) -> None:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(tmp_path / "api.sock"))
    unix.listen()
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    child = spawn_activated(tmp_path, [unix.fileno(), tcp.fileno()],
                            {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:webhook"})
    unix.close()
    tcp.close()   # from here only the child holds the listening sockets
    try:
        report = json.loads(child.stdout.readline())
        assert report["sockets"] == [
            {"name": "api", "fd": 3, "family": "AF_UNIX", "type": "SOCK_STREAM", "cloexec": True},
            {"name": "webhook", "fd": 4, "family": "AF_INET", "type": "SOCK_STREAM", "cloexec": True},
        ]
        assert report["env_left"] == []
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(tmp_path / "api.sock"))
            assert client.recv(64) == b"hello from api"
        with socket.create_connection(("127.0.0.1", port)) as client:
            assert client.recv(64) == b"hello from webhook"
    finally:
        assert child.wait(timeout=10) == 0


def test_listen_fds_ignores_sockets_meant_for_another_pid(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    child = spawn_activated(tmp_path, [listener.fileno()], {"LISTEN_FDS": "1"}, listen_pid=str(os.getpid()))
    listener.close()
    report = json.loads(child.stdout.readline())
    assert child.wait(timeout=10) == 0
    assert report["sockets"] == [] and report["env_left"] == []


def test_listen_fds_refuses_a_passed_fd_that_is_not_a_socket(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    child = spawn_activated(tmp_path, [read_end], {"LISTEN_FDS": "1"})
    os.close(read_end)
    os.close(write_end)
    report = json.loads(child.stdout.readline())
    assert child.wait(timeout=10) == 0
    assert report == {"error": "passed file descriptor 3 is not a usable socket: Socket operation on non-socket"}


def test_listen_fds_environment_handling() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "api", "OTHER": "x"}
    assert listen_fds(env, pid=2) == []
    assert env == {"OTHER": "x"}   # unset whether or not they were ours, as libsystemd does
    kept = {"LISTEN_PID": "1", "LISTEN_FDS": "1"}
    assert listen_fds(kept, pid=2, unset=False) == [] and kept == {"LISTEN_PID": "1", "LISTEN_FDS": "1"}
    assert listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "0"}, pid=7) == []
    with pytest.raises(SystemdError, match="LISTEN_FDS is not"):
        listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "two"}, pid=7)
    with pytest.raises(SystemdError, match="2 names for 1 file descriptors"):
        listen_fds_with_names({"LISTEN_PID": "7", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"}, pid=7)


# ---------------------------------------------------------------------------------------------- credentials

def test_credential_path(tmp_path: Path) -> None:
    (tmp_path / "master-key").write_bytes(b"k" * 32)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert credential_path("master-key", env) == tmp_path / "master-key"
    assert credential_path("other", env) is None
    assert credential_path("master-key", {}) is None
    for bad in ("", "../etc/passwd", ".."):
        with pytest.raises(ValueError, match="plain file name"):
            credential_path(bad, env)


def test_notify_socket_address_forms() -> None:
    from integd.systemd import _parse_address

    assert _parse_address("/run/systemd/notify") == (socket.AF_UNIX, socket.SOCK_DGRAM, "/run/systemd/notify")
    assert _parse_address("@abc") == (socket.AF_UNIX, socket.SOCK_DGRAM, "\0abc")
    assert _parse_address("vsock:2:1234") == (socket.AF_VSOCK, socket.SOCK_DGRAM, (2, 1234))
    assert _parse_address("vsock-stream:3:9")[1] == socket.SOCK_STREAM
    for bad in ("relative/path", "vsock:x:1", "tcp:1.2.3.4:5"):
        with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
            _parse_address(bad)
