"""The dashboard's one link to the daemon: a WebSocket session, its event subscription, reconnection.

Life of the link::

    connect ──> subscribe (after the last seq seen) ──> apps.list + daemon.status ──> Up
       ^                                                                              │ events as notifications
       │  Down("daemon unavailable at <socket> - retrying in Ns"), wait 0.5 s ×2 ... 10 s
       └──────────────────────────── the session closes or a call finds it gone <─────┘

The snapshot also carries every visible sync job (``sync.list``; None from a daemon without sync), for the
table's Sync column. Events that the subscription replays (sequence numbers up to the one ``events.subscribe``
returned) are already reflected in the fresh ``apps.list``, so they reach the app marked ``replayed`` and only
fill the log. The notifications are read from the moment the session opens, so a long replay cannot back up the
socket while the resync calls wait for their answers.

Besides committed events the subscription carries live signals that are not in the outbox (no seq, never
replayed): ``app.checked`` after every completed health check (the app's summary and the result) and
``sync.progress`` after each page a sync job commits. They reach the app as ``Checked`` and ``SyncProgress``;
while the link resynchronises they wait behind the snapshot like the events do, so a stale snapshot cannot
overwrite a fresher check.

Errors: ``DaemonUnavailable`` (and ``DaemonTimeout``) mean "reconnect"; ``RpcCallError`` from ``call`` belongs
to whoever made the call. Trust: the daemon behind the socket is trusted like any client of it trusts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from textual.message import Message

from integd.client import DaemonUnavailable, IntegdSession, ProtocolError, RpcCallError

BACKLOG = 200
REPLAY_KEEP = 500
METHOD_NOT_FOUND = -32601  # JSON-RPC 2.0's own code: the daemon predates the method


class SessionLike(Protocol):
    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any: ...
    def notifications(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...
    async def close(self) -> None: ...


SessionFactory = Callable[[str], Awaitable[SessionLike]]


async def open_session(socket_path: str) -> SessionLike:
    """The real thing: a WebSocket session with integd (calls time out after 10 s)."""
    return await IntegdSession.connect(socket_path, timeout=10.0)


async def sync_jobs(session: SessionLike, app_id: str | None = None) -> list[dict[str, Any]] | None:
    """The sync jobs the caller may see (of one app when given); None when the daemon has no sync."""
    try:
        return await session.call("sync.list", {"app_id": app_id} if app_id else {})
    except RpcCallError as exc:
        if exc.code == METHOD_NOT_FOUND:
            return None
        raise


class Link:
    """Keeps a session with the daemon open and turns what it says into messages for ``post``.

    Example::

        link = Link("/run/integd/integd.sock", open_session, app.post_message)
        app.run_worker(link.run(), group="link")
        apps = await link.call("apps.list")
    """

    class Up(Message):
        """The link is (re)established and the view should be replaced by this snapshot."""

        def __init__(self, apps: list[dict[str, Any]], status: dict[str, Any], backlog: list[dict[str, Any]] | None,
                     last_seq: int, jobs: list[dict[str, Any]] | None = None) -> None:
            super().__init__()
            self.apps, self.status, self.backlog, self.last_seq = apps, status, backlog, last_seq
            self.jobs = jobs  # every visible sync job; None from a daemon without sync

    class Down(Message):
        """The daemon went away; the link retries in ``retry_in`` seconds."""

        def __init__(self, socket_path: str, reason: str, retry_in: float) -> None:
            super().__init__()
            self.socket_path, self.reason, self.retry_in = socket_path, reason, retry_in

        @property
        def banner(self) -> str:
            return f"daemon unavailable at {self.socket_path} - retrying in {self.retry_in:g}s"

    class Event(Message):
        """A committed event; ``replayed`` when the snapshot already contains its effect."""

        def __init__(self, event: dict[str, Any], replayed: bool) -> None:
            super().__init__()
            self.event, self.replayed = event, replayed

    class Checked(Message):
        """A health check completed: ``app`` is the app's summary after it, ``result`` the check's outcome."""

        def __init__(self, app: dict[str, Any], result: dict[str, Any]) -> None:
            super().__init__()
            self.app, self.result = app, result

    class SyncProgress(Message):
        """A sync job committed a page or a push (``progress``: job_id, app_id, stream, phase, done, counts)."""

        def __init__(self, progress: dict[str, Any]) -> None:
            super().__init__()
            self.progress = progress

    def __init__(self, socket_path: str, factory: SessionFactory, post: Callable[[Message], Any], *,
                 first_delay: float = 0.5, max_delay: float = 10.0) -> None:
        if first_delay <= 0 or max_delay < first_delay:
            raise ValueError("retry delays must satisfy 0 < first_delay <= max_delay")
        self.socket_path = socket_path
        self._factory = factory
        self._post = post
        self._first_delay, self._max_delay = first_delay, max_delay
        self._session: SessionLike | None = None
        self._wake = asyncio.Event()
        self._closing: set[asyncio.Future[None]] = set()
        self.last_seq = 0
        self.connected = False

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call through the current session; DaemonUnavailable while there is none."""
        session = self._session
        if session is None or not self.connected:
            raise DaemonUnavailable(f"daemon unavailable at {self.socket_path}")
        return await session.call(method, params)

    def retry_now(self) -> None:
        """Cut the current wait short (the user asked to reconnect)."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, resync and relay events until cancelled, reconnecting with backoff."""
        delay = self._first_delay
        while True:
            try:
                await self._serve_once()
                reason = "the session closed"
            except (DaemonUnavailable, RpcCallError, ProtocolError) as exc:
                reason = str(exc)
            if self.connected:
                delay = self._first_delay  # it worked for a while: start the backoff again
            self.connected = False
            self._post(self.Down(self.socket_path, reason, delay))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass  # waited the whole delay: try again
            delay = min(delay * 2, self._max_delay)

    def _signal(self, method: str, params: dict[str, Any]) -> None:
        """Post a live (non-outbox) notification; unknown methods and malformed params are dropped."""
        if method == "app.checked" and isinstance(params.get("app"), dict) and params["app"].get("id"):
            self._post(self.Checked(params["app"], params.get("result") or {}))
        elif method == "sync.progress" and isinstance(params.get("progress"), dict):
            self._post(self.SyncProgress(params["progress"]))

    def _relay(self, event: dict[str, Any], replay_upto: int) -> None:
        seq = int(event.get("seq", 0))
        self.last_seq = max(self.last_seq, seq)
        self._post(self.Event(event, replayed=seq <= replay_upto))

    async def _serve_once(self) -> None:
        session = await self._factory(self.socket_path)
        self._session = session
        buffered: list[dict[str, Any]] = []
        signals: list[tuple[str, dict[str, Any]]] = []
        syncing = True
        replay_upto = 0

        async def relay() -> None:
            async for method, params in session.notifications():
                if method != "event":
                    if syncing:
                        signals.append((method, params))
                    else:
                        self._signal(method, params)
                    continue
                event = params.get("event")
                if not isinstance(event, dict):
                    continue
                if syncing:
                    buffered.append(event)
                else:
                    self._relay(event, replay_upto)

        reader = asyncio.create_task(relay(), name="integtui-relay")
        try:
            replay_upto, backlog = await self._subscribe(session, buffered)
            apps = await session.call("apps.list")
            jobs = await sync_jobs(session)
            status = await session.call("daemon.status")
            self.connected = True
            self.last_seq = max(self.last_seq, replay_upto)
            self._post(self.Up(apps, status, backlog, replay_upto, jobs))
            syncing = False
            replayed = [e for e in buffered if int(e.get("seq", 0)) <= replay_upto]
            for event in replayed[-REPLAY_KEEP:] + [e for e in buffered if int(e.get("seq", 0)) > replay_upto]:
                self._relay(event, replay_upto)
            buffered.clear()
            for method, params in signals:
                self._signal(method, params)
            signals.clear()
            await reader
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self._session = None
            await self._close(session)

    async def _close(self, session: SessionLike) -> None:
        # Shielded: when the app exits it cancels this worker mid-close; the close goes on and ``aclose`` waits
        # for it, so the WebSocket and its connection pool never outlive the event loop.
        task = asyncio.ensure_future(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        await asyncio.shield(task)

    async def aclose(self) -> None:
        """Finish closing the session (the app calls this as it exits, after its workers were cancelled)."""
        session, self._session = self._session, None
        if session is not None:
            await self._close(session)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _subscribe(self, session: SessionLike,
                         buffered: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]] | None]:
        """Subscribe to every event; the replay boundary and, when starting afresh, a backlog for the log."""
        sub = await session.call("events.subscribe", {"after": self.last_seq} if self.last_seq else {})
        upto = int(sub.get("last_seq", 0))
        if self.last_seq and upto >= self.last_seq:
            return upto, None  # the daemon replays what we missed
        if self.last_seq:
            # A daemon with a fresh store: its sequence restarted below ours, so start over from its present.
            await session.call("events.unsubscribe", {"subscription": sub.get("subscription", "")})
            buffered.clear()
            self.last_seq = 0
            upto = int((await session.call("events.subscribe", {})).get("last_seq", 0))
        page = await session.call("events.list", {"after": max(0, upto - BACKLOG), "limit": BACKLOG})
        backlog = [e for e in page.get("events", []) if int(e.get("seq", 0)) <= upto]
        buffered[:] = [e for e in buffered if int(e.get("seq", 0)) > upto]
        return upto, backlog
