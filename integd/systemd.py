"""The systemd glue, in plain stdlib sockets (no libsystemd): sd_notify, the watchdog, socket activation,
credentials.

What systemd hands a service, and what each function reads::

    NOTIFY_SOCKET=/run/systemd/notify | @abstract | vsock:CID:PORT ─> Notifier.from_env ─> READY=1, STATUS=...
    WATCHDOG_USEC=30000000 [WATCHDOG_PID=<pid>]                    ─> watchdog_interval ─> watchdog_loop
    LISTEN_PID=<pid> LISTEN_FDS=<n> [LISTEN_FDNAMES=a:b]           ─> listen_fds (fds 3 .. 3+n-1)
    CREDENTIALS_DIRECTORY=/run/credentials/integd.service          ─> credential_path("master-key")

Exceptions::

    Exception
     └── SystemdError     the environment says fds were passed but they cannot be adopted (malformed
                          LISTEN_FDS, an fd that is not a socket). Notifying never raises: a service must run
                          the same with or without a manager listening.

Trust model: only the manager sets these variables, and it gives us nothing secret except the credentials
directory, which we return as a path and never read or log here. LISTEN_* are honoured only when LISTEN_PID is
our pid (a child that inherited them must not steal its parent's sockets) and WATCHDOG_* only when
WATCHDOG_PID is unset or ours.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import structlog

__all__ = ["Notifier", "SystemdError", "credential_path", "listen_fds", "listen_fds_with_names",
           "watchdog_interval", "watchdog_loop", "SD_LISTEN_FDS_START"]

SD_LISTEN_FDS_START = 3
_log = structlog.get_logger(__name__)


class SystemdError(Exception):
    """File descriptors announced by systemd cannot be adopted."""


def _parse_address(address: str) -> tuple[int, int, str | bytes | tuple[int, int]]:
    """(family, type, address) for a NOTIFY_SOCKET value, as sd_notify(3) reads it."""
    if address.startswith("/"):
        return socket.AF_UNIX, socket.SOCK_DGRAM, address
    if address.startswith("@"):   # Linux abstract namespace: a leading NUL instead of the '@'
        return socket.AF_UNIX, socket.SOCK_DGRAM, "\0" + address[1:]
    kinds = {"vsock": socket.SOCK_DGRAM, "vsock-dgram": socket.SOCK_DGRAM,
             "vsock-stream": socket.SOCK_STREAM, "vsock-seqpacket": socket.SOCK_SEQPACKET}
    scheme, _, rest = address.partition(":")
    if scheme in kinds and hasattr(socket, "AF_VSOCK"):
        cid, _, port = rest.partition(":")
        if cid.isdigit() and port.isdigit():
            return socket.AF_VSOCK, kinds[scheme], (int(cid), int(port))
    raise ValueError("NOTIFY_SOCKET is neither a path, an @abstract name nor vsock:CID:PORT")


class Notifier:
    """Sends sd_notify(3) messages to the service manager; inert when NOTIFY_SOCKET is unset.

    Example:
        >>> n = Notifier.from_env({})
        >>> n.enabled, n.ready("serving 3 apps")
        (False, False)
    """

    def __init__(self, address: str | None) -> None:
        self._target: tuple[int, int, str | bytes | tuple[int, int]] | None = None
        if address:
            try:
                self._target = _parse_address(address)
            except ValueError as exc:
                _log.warning("systemd.notify_socket_unusable", reason=str(exc))
        self._failures = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """Read NOTIFY_SOCKET (a path, ``@abstract`` or ``vsock:CID:PORT``)."""
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """Whether a manager is listening (NOTIFY_SOCKET was set and understood)."""
        return self._target is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; True if sent. Never raises.

        Example: ``notifier.notify("READY=1", "STATUS=serving 3 apps")``
        """
        if self._target is None or not fields:
            return False
        family, kind, address = self._target
        # One assignment per line: a newline inside a value would forge another key (STATUS is one line).
        payload = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8", "replace")
        try:
            with socket.socket(family, kind | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(payload)
        except OSError as exc:
            self._failures += 1
            # The first failure is worth a warning; repeating it every watchdog tick is noise.
            report = _log.warning if self._failures == 1 else _log.debug
            report("systemd.notify_failed", error=exc.strerror or str(exc), failures=self._failures)
            return False
        self._failures = 0
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) finished: ``READY=1`` plus an optional status line."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """A free-form one-line status for ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        """A reload started (``RELOADING=1`` with CLOCK_MONOTONIC µs); follow with :meth:`ready`."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started."""
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """The keep-alive ping."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time in the current start, reload or stop phase."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between watchdog pings (half of WATCHDOG_USEC), or None when the watchdog is off or not ours.

    Example:
        >>> watchdog_interval({"WATCHDOG_USEC": "30000000"})
        15.0
    """
    pid = os.getpid() if pid is None else pid
    owner = env.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        if usec:
            _log.warning("systemd.watchdog_usec_invalid", expected="a positive integer of microseconds")
        return None
    return int(usec) / 2 / 1_000_000


async def watchdog_loop(notifier: Notifier, interval: float, stop: asyncio.Event) -> None:
    """Ping ``WATCHDOG=1`` now and every ``interval`` seconds until ``stop`` is set.

    The pings come from the event loop itself, so a blocked loop stops pinging and systemd restarts us; that
    is the point. Deadlines are absolute (drift-corrected); after a stall it pings once and realigns rather
    than bursting the missed ticks.

    Example: ``asyncio.create_task(watchdog_loop(notifier, watchdog_interval() or 15, stop_event))``
    """
    if interval <= 0:
        raise ValueError("watchdog interval must be positive")
    loop = asyncio.get_running_loop()
    deadline = loop.time()
    while not stop.is_set():
        notifier.watchdog()
        deadline += interval
        now = loop.time()
        if deadline <= now:   # the loop was blocked past a whole tick
            _log.warning("systemd.watchdog_late", late_by=round(now - deadline + interval, 3))
            deadline = now + interval
        try:
            async with asyncio.timeout_at(deadline):
                await stop.wait()
        except TimeoutError:
            continue


def _unset_listen_env(env: Mapping[str, str]) -> None:
    if isinstance(env, MutableMapping):   # os.environ: pop also unsetenv()s, so children do not inherit them
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(name, None)


def listen_fds_with_names(env: Mapping[str, str] = os.environ, pid: int | None = None,
                          unset: bool = True) -> list[tuple[str, socket.socket]]:
    """Adopt the sockets systemd passed (sd_listen_fds_with_names(3)), each with its FileDescriptorName.

    Returns [] unless LISTEN_PID is our pid. Each fd becomes a ``socket.socket`` whose family and type come
    from the kernel (getsockopt), not from what we expect, and is marked close-on-exec. With ``unset`` the
    LISTEN_* variables are removed (as libsystemd does, whether or not they were ours).

    Example:
        >>> listen_fds_with_names({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, pid=2)
        []
    """
    pid = os.getpid() if pid is None else pid
    try:
        if env.get("LISTEN_PID", "") != str(pid):
            return []
        count_text = env.get("LISTEN_FDS", "")
        if not count_text.isdigit():
            raise SystemdError("LISTEN_FDS is not a non-negative integer")
        count = int(count_text)
        names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
        if names and len(names) != count:
            raise SystemdError(f"LISTEN_FDNAMES has {len(names)} names for {count} file descriptors")
        return [(names[i] if names else "unknown", _adopt(SD_LISTEN_FDS_START + i)) for i in range(count)]
    finally:
        if unset:
            _unset_listen_env(env)


def _adopt(fd: int) -> socket.socket:
    try:
        os.set_inheritable(fd, False)
        return socket.socket(fileno=fd)
    except OSError as exc:
        raise SystemdError(f"passed file descriptor {fd} is not a usable socket: {exc.strerror}") from exc


def listen_fds(env: Mapping[str, str] = os.environ, pid: int | None = None,
               unset: bool = True) -> list[socket.socket]:
    """The sockets passed by systemd socket activation, from fd 3, in the socket unit's order.

    Example:
        >>> listen_fds({}, unset=False)
        []
    """
    return [sock for _, sock in listen_fds_with_names(env, pid, unset)]


def credential_path(name: str, env: Mapping[str, str] = os.environ) -> Path | None:
    """``$CREDENTIALS_DIRECTORY/<name>`` if systemd provided that credential (LoadCredential=), else None.

    Example:
        >>> credential_path("master-key", {}) is None
        True
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError("a credential name is a plain file name (no '/', not '.' or '..')")
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory.startswith("/"):
        return None
    path = Path(directory) / name
    return path if path.is_file() else None
