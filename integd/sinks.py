"""Event sinks: outgoing webhooks that carry the outbox's domain events to the platform's Analytics,
Notification and Workflow domains (``[sinks.<name>]`` in the configuration).

How an event travels::

    use case ─ COMMIT (state + outbox row) ─> bus ─> Sinks.on_event ─> wake each sink's deliverer
    deliverer: events_after(cursor, types, 100) ─> POST JSON array, signed ─> 2xx ─> cursor = last seq (COMMIT)
                                                                            └─> error ─> backoff, try again

* **At-least-once, in order per sink.** One deliverer task per sink sends batches of up to ``batch_size``
  events in ``seq`` order and moves its cursor (``integd.sinks_store``) only after a 2xx. A crash or a stop
  between the POST and the cursor write sends that batch again; receivers de-duplicate on ``event_id``.
* **No polling while idle.** The deliverer sleeps on an event the bus sets after each commit; on start it
  catches up from its persisted cursor (a new sink starts at 0: the whole outbox).
* **Backoff** is exponential with "equal jitter" (a delay drawn from [d/2, d]), capped, and never gives up: a
  down receiver delays events, it never loses them. The consecutive-failure count and the first failure's time
  are persisted, so the backoff and the failing state survive a restart.
* **Failing.** A sink whose failures have lasted longer than ``failing_after`` is ``failing`` in
  ``events.sinks`` and a ``sink.failing`` warning is logged once (``sink.recovered`` when it delivers again).
  There is no app behind a sink, so no domain event is invented for it.
* **Signing** (``integd.sink_signature``): ``X-Integd-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``,
  ``X-Integd-Delivery: <uuid4>``. The secret comes from ``secret_file`` or, when that is unset, from the systemd
  credential ``sink-<name>`` (``LoadCredential=sink-<name>:/path``); a sink without one refuses to start.

Exceptions::

    ConfigError (integd.config)   a sink's secret is missing, unreadable or too short (at daemon start)
    DeliveryFailed                one POST failed; the message is our own summary ("HTTP 503", "timed out
                                  after 10 s", "connection refused"), never a response body or a URL credential
    StoreError (integd.store.db)  reading the outbox or writing a cursor failed: logged, retried with backoff
    SinkNotFound, ReplayRefused   (integd.errors) events.replay named no configured sink / would skip events

Trust model: a sink URL may carry credentials (userinfo, a token in the query); ``events.sinks`` and the logs
show it with those redacted. The secret is held in memory only and never logged. Only admins may list sinks
and replay (service principals may list them too).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog

from integd import __version__
from integd.config import ConfigError, SinkConfig
from integd.errors import ReplayRefused, SinkNotFound
from integd.logging import scrub_url
from integd.sink_signature import DELIVERY_HEADER, SIGNATURE_HEADER, SINK_HEADER, sign
from integd.sinks_store import CursorRow, SinkCursors
from integd.store.db import StoreError
from integd.store.repository import AppStore, StoredEvent
from integd.systemd import credential_path

if TYPE_CHECKING:
    from domain import Clock
    from integd.bootstrap import Daemon
    from integd.rpc.registry import MethodRegistry

log = structlog.get_logger("integd.sinks")

MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class SinkPolicy:
    """Pacing of every sink. Tests (or an embedding) may set ``daemon.sink_policy`` before ``start()``.

    Example: ``SinkPolicy(base_delay=0.02, max_delay=0.2, failing_after=0.5)`` for a fast test.
    """
    batch_size: int = 100
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    failing_after: float = 300.0
    stop_timeout: float = 2.0

    def backoff(self, failures: int, rnd: random.Random) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures (>= 1)."""
        delay = min(self.max_delay, self.base_delay * self.multiplier ** max(0, failures - 1))
        return rnd.uniform(delay / 2, delay)


class DeliveryFailed(Exception):
    """One POST to a sink failed; ``str()`` is safe to store and show."""


def display_url(url: str) -> str:
    """The URL without its userinfo and with secret-named query values redacted.

    Example:
        >>> display_url("https://bot:pw@hooks.example/in?token=abc&v=1")
        'https://hooks.example/in?token=[redacted]&v=1'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return scrub_url(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


def load_secret(name: str, cfg: SinkConfig, env: Mapping[str, str] = os.environ) -> bytes:
    """The signing secret of sink ``name``: ``secret_file``, else the systemd credential ``sink-<name>``.

    Raises ConfigError naming the sink and the file (never the content).
    Example: ``load_secret("analytics", SinkConfig(url="https://a.example/in", secret_file=Path("/etc/s")))``
    """
    path: Path | None = cfg.secret_file
    if path is None and "/" not in name and name not in (".", ".."):
        path = credential_path(f"sink-{name}", env)
    if path is None:
        raise ConfigError([f"sinks.{name}: no signing secret: set secret_file, or pass the systemd credential "
                           f"sink-{name} (LoadCredential=sink-{name}:FILE)"])
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError([f"sinks.{name}.secret_file: cannot read {path}: {exc.strerror}"]) from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError([f"sinks.{name}.secret_file: {path} holds {len(secret)} bytes; a signing secret needs "
                           f"at least {MIN_SECRET_BYTES}"])
    return secret


def _describe(exc: BaseException, timeout: float) -> str:
    """Our own summary of a transport failure: no URL, no body (either may carry a credential)."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    return f"{type(exc).__name__}"


class SinkDeliverer:
    """Delivers the outbox to one sink, in order, at least once. ``run()`` is its task."""

    def __init__(self, name: str, cfg: SinkConfig, secret: bytes, row: CursorRow, *, store: AppStore,
                 cursors: SinkCursors, session: aiohttp.ClientSession, clock: Clock, policy: SinkPolicy,
                 stop: asyncio.Event, rnd: random.Random) -> None:
        self.name, self.cfg, self.row = name, cfg, row
        self.types = None if "*" in cfg.events else list(cfg.events)
        self._secret, self._store, self._cursors, self._session = secret, store, cursors, session
        self._clock, self._policy, self._stop, self._rnd = clock, policy, stop, rnd
        self._wake = asyncio.Event()
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()       # orders a replay's rewind against a batch's cursor write
        self._generation = 0              # bumped by a replay: an older in-flight batch must not move the cursor
        self._reported_failing = False
        self.next_attempt_at: float | None = None

    def wants(self, event: StoredEvent) -> bool:
        return self.types is None or event.type in self.types

    def wake(self) -> None:
        self._wake.set()

    def failing(self, now: float) -> bool:
        since = self.row.failing_since
        return since is not None and now - since >= self._policy.failing_after

    async def run(self) -> None:
        store_failures = 0
        while not self._stop.is_set():
            try:
                await self._step()
                store_failures = 0
            except StoreError as exc:
                # The store being briefly unavailable must not end delivery for good: wait and read again.
                store_failures += 1
                delay = self._policy.backoff(store_failures, self._rnd)
                log.error("sink.store_error", sink=self.name, error=str(exc), retry_in=round(delay, 3))
                await self._wait(self._kick, delay)

    async def _step(self) -> None:
        """One round: deliver the next batch, or wait for a commit; after a failure, back off."""
        self._wake.clear()   # before reading: a commit after this read sets it again
        self._kick.clear()   # likewise a replay: it cuts the backoff that may follow this round
        events = await self._store.events_after(self.row.cursor, limit=self._policy.batch_size, types=self.types)
        if not events:
            await self._wait(self._wake, None)
            return
        generation = self._generation
        try:
            await self._post(events)
        except DeliveryFailed as exc:
            delay = await self._record_failure(str(exc), len(events))
            await self._wait(self._kick, delay)
            return
        await self._record_success(events[-1].seq, generation, len(events))

    async def _wait(self, event: asyncio.Event, timeout: float | None) -> None:
        """Until ``event``, the daemon's stop, or ``timeout`` seconds, whichever comes first."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _post(self, events: list[StoredEvent]) -> None:
        body = json.dumps([e.as_dict() for e in events], separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"integd/{__version__}",
                   SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
                   DELIVERY_HEADER: str(uuid.uuid4()), SINK_HEADER: self.name}
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout)
        try:
            async with self._session.post(self.cfg.url, data=body, headers=headers, timeout=timeout,
                                          allow_redirects=False) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    raise DeliveryFailed(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryFailed(_describe(exc, self.cfg.timeout)) from exc

    async def _record_success(self, last_seq: int, generation: int, count: int) -> None:
        now = self._clock.time()
        async with self._lock:
            if generation != self._generation:
                return   # a replay rewound the cursor while this batch was in flight: the rewind wins
            await self._cursors.advance(self.name, last_seq, now)
            was_failing = self.row.failures > 0
            self.row.cursor, self.row.last_success, self.row.last_attempt = last_seq, now, now
            self.row.last_error, self.row.failing_since, self.row.failures = None, None, 0
        self.next_attempt_at = None
        log.debug("sink.delivered", sink=self.name, events=count, cursor=last_seq)
        if was_failing:
            log.info("sink.recovered", sink=self.name, cursor=last_seq, was_failing=self._reported_failing)
            self._reported_failing = False

    async def _record_failure(self, error: str, count: int) -> float:
        now = self._clock.time()
        row = self.row
        row.last_attempt, row.last_error, row.failures = now, error, row.failures + 1
        row.failing_since = row.failing_since if row.failing_since is not None else now
        await self._cursors.failed(row)
        delay = self._policy.backoff(row.failures, self._rnd)
        self.next_attempt_at = now + delay
        log.warning("sink.delivery_failed", sink=self.name, url=display_url(self.cfg.url), error=error,
                    events=count, failures=row.failures, retry_in=round(delay, 3))
        if self.failing(now) and not self._reported_failing:
            self._reported_failing = True
            log.warning("sink.failing", sink=self.name, url=display_url(self.cfg.url), error=error,
                        failing_since=row.failing_since, failures=row.failures, cursor=row.cursor)
        return delay

    async def replay(self, after: int) -> int:
        """Move the cursor back to ``after`` and deliver from there now; returns the previous cursor."""
        async with self._lock:
            previous = self.row.cursor
            if after > previous:
                raise ReplayRefused(f"sink {self.name!r} has delivered up to seq {previous}; a replay moves the "
                                    f"cursor back, and {after} is ahead of it")
            await self._cursors.rewind(self.name, after)
            self.row.cursor = after
            self._generation += 1
        self._kick.set()
        self._wake.set()
        return previous

    async def lag(self) -> int:
        """Events of this sink's types committed after its cursor."""
        return await self._cursors.count_after(self.row.cursor, self.types)

    async def status(self) -> dict[str, Any]:
        now = self._clock.time()
        row = self.row
        return {"name": self.name, "url": display_url(self.cfg.url), "events": list(self.cfg.events),
                "cursor": row.cursor, "lag": await self.lag(),
                "state": "failing" if self.failing(now) else "healthy", "failures": row.failures,
                "last_error": row.last_error, "last_success": row.last_success, "last_attempt": row.last_attempt,
                "failing_since": row.failing_since, "next_attempt_at": self.next_attempt_at}


class Sinks:
    """Every configured sink of one daemon: secrets read at construction, deliverers run from ``start()``."""

    def __init__(self, daemon: Daemon, policy: SinkPolicy | None = None,
                 env: Mapping[str, str] = os.environ) -> None:
        self.daemon = daemon
        self.policy = policy or SinkPolicy()
        self.configs = dict(daemon.config.sinks)
        self._secrets = {name: load_secret(name, cfg, env) for name, cfg in self.configs.items()}
        self.deliverers: dict[str, SinkDeliverer] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.configs:
            return
        d = self.daemon
        assert d.db is not None
        cursors = SinkCursors(d.db)
        rows = await cursors.load(sorted(self.configs))
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(self.configs) * 2))
        rnd = random.Random(d.seed)
        for name, cfg in sorted(self.configs.items()):
            self.deliverers[name] = SinkDeliverer(
                name, cfg, self._secrets[name], rows[name], store=d.store, cursors=cursors, session=self._session,
                clock=d.clock, policy=self.policy, stop=self._stop, rnd=rnd)
        d.bus.subscribe("sinks", self.on_event)
        for name, deliverer in self.deliverers.items():
            self._tasks.append(d.spawn(deliverer.run(), name=f"sink:{name}"))
            log.info("sink.started", sink=name, url=display_url(deliverer.cfg.url), cursor=deliverer.row.cursor,
                     events=list(deliverer.cfg.events))

    def on_event(self, event: StoredEvent) -> None:
        for deliverer in self.deliverers.values():
            if deliverer.wants(event):
                deliverer.wake()

    async def stop(self) -> None:
        """Stop after the batch in flight (bounded; an unacknowledged batch is simply sent again later)."""
        self._stop.set()
        self.daemon.bus.unsubscribe("sinks")
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.policy.stop_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def get(self, name: str) -> SinkDeliverer:
        deliverer = self.deliverers.get(name)
        if deliverer is None:
            known = ", ".join(sorted(self.deliverers)) or "none configured"
            raise SinkNotFound(f"no sink named {name!r} (sinks: {known})")
        return deliverer

    async def status(self) -> list[dict[str, Any]]:
        return [await d.status() for _, d in sorted(self.deliverers.items())]


# ---- the feature interface (integd.bootstrap.FEATURES) ------------------------------------------------------

def register(registry: MethodRegistry, daemon: Daemon) -> None:
    """Read every sink's secret now (a missing one stops the daemon before it binds) and add the methods."""
    from integd.sinks_methods import register_methods  # noqa: PLC0415 - keeps the RPC layer out of imports

    daemon.sinks = Sinks(daemon, getattr(daemon, "sink_policy", None))
    register_methods(registry, daemon.sinks)


async def start(daemon: Daemon) -> None:
    await daemon.sinks.start()


async def stop(daemon: Daemon) -> None:
    sinks = getattr(daemon, "sinks", None)
    if sinks is not None:
        await sinks.stop()
