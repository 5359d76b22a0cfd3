"""Running the daemon in the foreground: signals, systemd notification and the watchdog around a Daemon.

Signal handlers only change state (STYLE habit 7): SIGTERM/SIGINT set the stop event, SIGHUP queues a reload.
The main coroutine does the work: start, READY=1, serve until stopped, then a bounded drain and exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog

from integd.bootstrap import Daemon
from integd.config import Config, ConfigError, Paths, diff_reloadable, load_config
from integd.logging import set_level
from integd.systemd import Notifier, credential_path, listen_fds, watchdog_interval, watchdog_loop

log = structlog.get_logger("integd.daemon")


def status_line(daemon: Daemon, counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"serving {total} apps ({parts})" if total else "serving, no apps connected"


async def serve(config: Config, paths: Paths, *, config_path: Path | None = None,
                on_started: Callable[[Daemon], Awaitable[None]] | None = None,
                stop: asyncio.Event | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Returns the process exit code.

    ``on_started(daemon)`` runs once the daemon serves (the demo connects its apps there).
    """
    notifier = Notifier.from_env()
    stop = stop or asyncio.Event()
    reload_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)

    adopted: socket.socket | None = None
    fds = listen_fds()
    if fds:
        adopted = fds[0]
        for extra in fds[1:]:
            extra.close()
    cred = credential_path("master-key")
    daemon = Daemon(config, paths, credentials_dir=cred.parent if cred else None)
    try:
        await daemon.start(sock=adopted)
        counts = await daemon.status_counts()
        notifier.ready(status_line(daemon, counts))
        if on_started is not None:
            await on_started(daemon)
        interval = watchdog_interval() if config.daemon.watchdog else None
        if interval:
            daemon.spawn(watchdog_loop(notifier, interval, stop), name="watchdog")
        daemon.bus.subscribe("status", lambda _e: _refresh_status(daemon, notifier))
        while not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reload_requested.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            if reload_requested.is_set() and not stop.is_set():
                reload_requested.clear()
                notifier.reloading()
                reload(daemon, config_path, env)
                notifier.notify("READY=1")
    finally:
        notifier.stopping()
        await daemon.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


async def _refresh_status(daemon: Daemon, notifier: Notifier) -> None:
    if notifier.enabled:
        notifier.status(status_line(daemon, await daemon.status_counts()))


def reload(daemon: Daemon, config_path: Path | None, env: Mapping[str, str] | None = None) -> list[str]:
    """SIGHUP: re-read the config (with the same overrides) and apply what may change live; on any error
    keep everything as it was."""
    try:
        new = load_config(config_path, env=env)
        changed = diff_reloadable(daemon.config, new)
    except ConfigError as e:
        log.error("config.reload_refused", error=str(e))
        return []
    daemon.config = new
    daemon.runtimes.config = new
    daemon.runtimes.apply_plans()
    daemon.scheduler.jitter = new.health.jitter
    daemon.usecases.health_timeout = new.health.timeout
    daemon.usecases.default_interval = new.health.interval
    set_level(new.daemon.log_level)
    log.info("config.reloaded", changed=changed)
    return changed
