"""The composition root: the one place that builds every adapter and wires the daemon together.

``Daemon(config, paths)`` builds nothing at construction; ``await daemon.start()`` opens the store and the vault,
wires store -> bus -> subscribers, builds the connectors' runtime, the health scheduler and the RPC server, and
binds (or adopts) the socket. Tests call the same class with temp paths and a FakeClock. ``stop()`` is the
reverse: stop taking calls, drain the in-flight ones (bounded), stop the loops, close the HTTP client and, last,
the store.

>>> # daemon = Daemon(load_config(), paths); await daemon.start(); ...; await daemon.stop()
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog

from connectors.http import HttpTransport
from domain import Clock, RetryPolicy, SystemClock
from integd import __version__
from integd.bus import EventBus
from integd.config import Config, Paths
from integd.errors import map_error
from integd.health import HealthScheduler
from integd.identity import PrincipalResolver
from integd.oauth_store import OAuthStore
from integd.methods import register, summary_row
from integd.rpc.dispatch import Dispatcher
from integd.rpc.registry import MethodRegistry
from integd.rpc.server import RpcServer
from integd.runtime import Runtimes
from integd.state_lock import StateLock
from integd.store.db import Database
from integd.store.quota import SqliteQuotaStore
from integd.store.repository import CREDENTIAL, AppStore
from integd.store.schema import MIGRATIONS
from integd.subscriptions import Subscriptions
from integd.usecases import UseCases
from integd.vault import Vault, load_master_key

log = structlog.get_logger("integd.daemon")

DB_NAME = "integd.db"

# Feature modules beyond the foundation. Each module defines:
#   register(registry: MethodRegistry, daemon: Daemon) -> None   its RPC methods (built after the core's)
#   async start(daemon: Daemon) -> None                           its background work, once the socket serves
#   async stop(daemon: Daemon) -> None                            the reverse, after the RPC server drained
# Their tables go into integd/store/schema.py's MIGRATIONS under the numbers reserved there.
FEATURES: tuple[str, ...] = ("integd.sinks", "integd.sync", "integd.oauth")


class Daemon:
    def __init__(self, config: Config, paths: Paths, *, clock: Clock | None = None,
                 credentials_dir: Path | None = None, retry: RetryPolicy | None = None,
                 sleep: Any = None, seed: int | None = None) -> None:
        self.config = config
        self.paths = paths
        self.clock = clock or SystemClock()
        self.credentials_dir = credentials_dir
        self.retry = retry
        self.sleep = sleep
        self.seed = seed
        self.started_at = 0.0
        self.started_mono = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_loops = asyncio.Event()
        self.db: Database | None = None
        self.state_lock = StateLock(paths.state_dir)

    # ---- life ----------------------------------------------------------------------------------------------
    async def start(self, *, sock: socket.socket | None = None) -> None:
        cfg = self.config
        self.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_lock.acquire()   # held until stop(): `integd restore` refuses while we run
        try:
            master = load_master_key(credentials_dir=self.credentials_dir, key_file=cfg.vault.key_file,
                                     state_dir=self.paths.state_dir)
            self.db = await Database.open(self.paths.state_dir / DB_NAME, MIGRATIONS)
        except BaseException:
            self.state_lock.release()
            raise
        try:
            await self._wire(master, sock)
        except BaseException:
            await self._close_partial()
            raise

    async def _wire(self, master: Any, sock: socket.socket | None) -> None:
        cfg = self.config
        assert self.db is not None
        self.vault = await Vault.open(self.db, master, ciphertext_columns=[("apps", "credential"),
                                                                          ("oauth_clients", "secret")])
        self.store = AppStore(self.db, self.vault)
        self.bus = EventBus()
        self.store.publishers.append(self.bus.publish)
        self.transport = HttpTransport(user_agent=f"integd/{__version__}")
        self.runtimes = Runtimes(config=cfg, transport=self.transport, quota=SqliteQuotaStore(self.db),
                                 clock=self.clock, retry=self.retry, sleep=self.sleep,
                                 on_exhausted=self._limiter_exhausted)
        self.scheduler = HealthScheduler(self._health_check, self.clock, jitter=cfg.health.jitter,
                                         concurrency=cfg.health.concurrency, seed=self.seed)
        self.usecases = UseCases(store=self.store, runtimes=self.runtimes, scheduler=self.scheduler,
                                 clock=self.clock, health_timeout=cfg.health.timeout,
                                 default_interval=cfg.health.interval, on_checked=self._checked)
        self.subscriptions = Subscriptions(self.store)
        self.bus.subscribe("subscriptions", self.subscriptions.publish)
        self.registry = MethodRegistry()
        register(self.registry, self)
        self.features = [importlib.import_module(name) for name in FEATURES]
        for feature in self.features:
            feature.register(self.registry, self)
        self.dispatcher = Dispatcher(self.registry, map_error, title="integd", version=__version__)
        resolver = PrincipalResolver(admin_group=cfg.identity.admin_group,
                                     service_users=cfg.identity.service_users, daemon_uid=os.getuid())
        self.server = RpcServer(self.dispatcher, resolver, shutdown_timeout=cfg.daemon.shutdown_timeout)
        self.server.on_connection_closed.append(self.subscriptions.connection_closed)
        self.bus.last_seq = await self.store.last_event_seq()
        scheduled = await self.usecases.schedule_all()
        if sock is not None:
            await self.server.start(sock=sock)
        else:
            self.paths.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            await self.server.start(path=str(self.paths.socket), mode=cfg.daemon.socket_mode)
            self._chgrp_socket()
        self.started_at = self.clock.time()
        self.started_mono = self.clock.monotonic()
        self.spawn(self.scheduler.run(self._stop_loops), name="health-scheduler")
        for feature in self.features:
            await feature.start(self)
        log.info("daemon.started", version=__version__, socket=str(self.paths.socket),
                 state_dir=str(self.paths.state_dir), apps_scheduled=scheduled,
                 vault_fingerprint=self.vault.master_fingerprint())

    def _chgrp_socket(self) -> None:
        group = self.config.daemon.socket_group
        if not group:
            return
        import grp
        try:
            gid = grp.getgrnam(group).gr_gid
            os.chown(self.paths.socket, -1, gid)
        except (KeyError, PermissionError) as e:
            log.warning("daemon.socket_group_failed", group=group, error=str(e))

    async def stop(self) -> None:
        """Stop taking calls, drain in-flight ones (bounded), stop loops, close clients and the store."""
        log.info("daemon.stopping")
        server = getattr(self, "server", None)
        if server is not None:
            await server.stop()
        for feature in reversed(getattr(self, "features", [])):
            await feature.stop(self)
        self._stop_loops.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_partial()
        log.info("daemon.stopped")

    async def _close_partial(self) -> None:
        transport = getattr(self, "transport", None)
        if transport is not None:
            await transport.close()
        if self.db is not None:
            await self.db.close()
        self.state_lock.release()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """A background task owned by the daemon: cancelled at stop, its failure logged, never lost."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("daemon.task_failed", task=name, error_type=type(t.exception()).__name__)
        task.add_done_callback(done)
        return task

    # ---- reactions -----------------------------------------------------------------------------------------
    async def _health_check(self, app_id: str) -> None:
        await self.usecases.run_health_check(app_id)

    async def _checked(self, app_id: str, owner: str, result: Any) -> None:
        """Every completed check reaches live subscribers as ``app.checked`` (no outbox event: nothing to keep)."""
        row = await self.store.summary(app_id)
        if row is None:
            return
        await self.subscriptions.notify_app(app_id, owner, "app.checked", {
            "app": summary_row(self, row),
            "result": {"ok": result.ok, "outcome": result.outcome, "latency": result.latency,
                       "checked_at": result.checked_at, "message": result.message}})

    def _limiter_exhausted(self, app_id: str, window: str, retry_after: float) -> None:
        if window == "provider":
            return      # the provider's own refusal was already recorded (app rate_limited + its event)
        self.spawn(self.usecases.record_limiter_exhausted(app_id, window, retry_after),
                   name=f"limiter-event:{app_id}")

    # ---- queries used by methods ---------------------------------------------------------------------------
    async def status_counts(self) -> dict[str, int]:
        return await self.store.status_counts()

    async def rotate_keys(self) -> dict[str, Any]:
        assert self.db is not None

        async def reseal(conn: Any, vault: Vault) -> int:
            rows = await conn.execute_fetchall("SELECT id, credential FROM apps WHERE credential IS NOT NULL")
            await conn.executemany("UPDATE apps SET credential = ? WHERE id = ?",
                                   [(vault.reseal(c, purpose=CREDENTIAL, row_id=i), i) for i, c in rows])
            return len(rows) + await OAuthStore.reseal(conn, vault)

        async with self.db.write() as conn:
            result = await self.vault.rotate(conn, reseal)
        log.info("vault.rotated", new_key_id=result.new_key_id, reencrypted=result.reencrypted)
        return {"new_key_id": result.new_key_id, "old_key_ids": list(result.old_key_ids),
                "reencrypted": result.reencrypted}
