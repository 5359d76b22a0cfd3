"""The JSON-RPC transport: HTTP on a Unix socket (aiohttp), apart from dispatch and from the error table.

Framing:
    POST /rpc      one JSON-RPC payload per request body (single or batch), any Content-Type (so that
                   ``curl --unix-socket S -d '{...}' http://localhost/rpc`` works); answer
                   ``application/json``, or HTTP 204 when the payload held only notifications. A body over
                   ``max_body`` gets HTTP 413 with a -32600 error body.
    GET /rpc/ws    a WebSocket; each TEXT frame is one JSON-RPC payload, answered on the same socket (calls
                   on one socket run concurrently); the server also sends notifications (no id). BINARY
                   frames are answered with a -32600 error. Heartbeat 30 s, frames up to ``max_body``.

Trust model: the socket file is created under umask 0177 and then chmod'ed to ``mode`` (0660: the owner
and the group may connect). For every request a middleware reads the peer's uid with SO_PEERCRED from the
connection's own socket BEFORE anything else runs; a peer whose credentials cannot be read gets HTTP 403.
The uid is mapped to a Principal by :class:`~integd.identity.PrincipalResolver`; nothing the client sends
is trusted for identity.

Binding: an existing file at the path is probed with ``connect()``. An answer means a live daemon:
:class:`SocketInUse` (never steal its socket). ECONNREFUSED means stale: unlink and bind. A non-socket file
is refused. A socket handed over by systemd is adopted as is and its path is never unlinked.

Shutdown (:meth:`RpcServer.stop`): stop accepting, refuse new calls with -32099, wait for in-flight calls
up to ``shutdown_timeout`` (their answers still go out), cancel the rest, close every WebSocket with 1001
GOING_AWAY, and remove the socket file we bound.

Slow subscribers: outgoing WebSocket frames go through a bounded per-connection queue drained by a writer
task; when it overflows the connection is closed with 1008 "subscriber too slow", so one stuck client never
holds the daemon's memory or blocks a publisher.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import json
import os
import socket
import stat
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from integd.identity import PeerCredentialsError, Principal, PrincipalResolver, peer_credentials
from integd.rpc.dispatch import Dispatcher
from integd.rpc.errors import INVALID_REQUEST, PEER_UNKNOWN, SHUTTING_DOWN, RpcError, standard_error
from integd.rpc.registry import CallContext

PRINCIPAL = web.RequestKey("integd_principal", Principal)
ConnectionHook = Callable[["RpcConnection"], "Awaitable[None] | None"]
_PROBE_TIMEOUT = 2.0
_WS_CLOSE_TIMEOUT = 5.0
_BINARY_REFUSED = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
    "code": INVALID_REQUEST, "message": "Invalid Request",
    "data": {"reason": "binary frames are not accepted; send JSON-RPC as text frames"}}})


class SocketInUse(RuntimeError):
    """Another integd is serving the socket path; we refuse to take it over."""


def _error_body(err: RpcError) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "error": err.to_dict(), "id": None}).encode()


def _json_response(status: int, err: RpcError) -> web.Response:
    return web.Response(status=status, body=_error_body(err), content_type="application/json")


class RpcConnection:
    """One WebSocket client. Handlers reach it through ``ctx.connection`` to send notifications.

    ``state`` is free storage for the composition root (for example the connection's subscriptions).

    Example (inside a handler)::

        await ctx.connection.notify("app.status_changed", {"app_id": "a1", "status": "healthy"})
    """

    def __init__(self, ws: web.WebSocketResponse, principal: Principal, *, queue_size: int,
                 logger: Any) -> None:
        self.id = uuid.uuid4().hex
        self.principal = principal
        self.state: dict[str, Any] = {}
        self._ws = ws
        self._log = logger
        self._queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self._closing = False
        self._close_request: tuple[int, str, bool] | None = None
        self._close_wanted = asyncio.Event()
        self._finished = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed: nothing more is sent."""
        return self._closing or self._ws.closed

    async def notify(self, method: str, params: dict[str, Any]) -> bool:
        """Queue a JSON-RPC notification; False if the connection is closed or just overflowed.

        Never waits for the client: it only yields once so the writer can drain the queue.
        """
        text = json.dumps({"jsonrpc": "2.0", "method": method, "params": params},
                          separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        queued = self.send_text(text)
        await asyncio.sleep(0)
        return queued

    def send_text(self, text: str) -> bool:
        """Queue one text frame (a response or a notification); False if it was not queued."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self._log.warning("rpc.subscriber_too_slow", connection=self.id, uid=self.principal.uid,
                              queued=self._queue.qsize())
            self.request_close(WSCloseCode.POLICY_VIOLATION, "subscriber too slow", flush=False)
            return False
        return True

    def request_close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
        """Ask for the socket to be closed with ``code`` (the first request wins); returns at once."""
        self._closing = True  # refuse new frames now; with flush, the queued ones still go out
        if self._close_request is None:
            self._close_request = (code, reason, flush)
            self._close_wanted.set()

    async def close(self, code: int = WSCloseCode.OK, reason: str = "", *, flush: bool = True) -> None:
        """Close with ``code`` (after sending what is queued, when ``flush``) and wait until it is closed."""
        self.request_close(code, reason, flush=flush)
        await self._finished.wait()

    async def run(self, on_text: Callable[[str], None], on_binary: Callable[[], None]) -> None:
        """Serve the socket until the peer leaves or :meth:`close` is asked for.

        The close itself runs here, in the task that owns the socket: a close issued from another task
        while this one waits in ``receive()`` makes aiohttp drop the connection without waiting for the
        peer's close reply, and the peer then sees 1006 instead of our code.
        """
        self._writer = asyncio.create_task(self._write_loop(), name=f"rpc-ws-writer-{self.id}")
        reader = asyncio.create_task(self._read_loop(on_text, on_binary), name=f"rpc-ws-reader-{self.id}")
        wanted = asyncio.create_task(self._close_wanted.wait())
        try:
            await asyncio.wait({reader, wanted}, return_when=asyncio.FIRST_COMPLETED)
            if self._close_request is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                await self._close_now(*self._close_request)
        finally:
            self._closing = True
            for task in (reader, wanted):
                task.cancel()
            await asyncio.gather(reader, wanted, return_exceptions=True)
            await self._stop_writer()
            self._finished.set()

    async def _read_loop(self, on_text: Callable[[str], None], on_binary: Callable[[], None]) -> None:
        async for msg in self._ws:
            if msg.type == WSMsgType.TEXT:
                on_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                on_binary()
            elif msg.type == WSMsgType.ERROR:
                self._log.info("rpc.ws_error", connection=self.id, error=type(self._ws.exception()).__name__)

    async def _close_now(self, code: int, reason: str, flush: bool, flush_timeout: float = 1.0) -> None:
        if flush and self._writer is not None and not self._writer.done():
            try:
                await asyncio.wait_for(self._queue.join(), flush_timeout)
            except TimeoutError:
                self._log.info("rpc.ws_flush_timeout", connection=self.id, dropped=self._queue.qsize())
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        # The writer may be parked in a transport drain. It is not cancelled first: aiohttp shares one
        # drain future among waiters, so cancelling it would abort this close too. Frames are written whole
        # (no compression), so the close frame cannot split a frame, and drain=False keeps a stuck peer
        # from holding us longer than the bounded wait for its close reply.
        await self._ws.close(code=code, message=reason.encode(), drain=False)

    async def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write_loop(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                await self._ws.send_str(text)
            except ConnectionError as exc:
                self._log.debug("rpc.ws_send_failed", connection=self.id, error=type(exc).__name__)
                self._closing = True
                return
            finally:
                self._queue.task_done()


class RpcServer:
    """Serves a :class:`Dispatcher` on a Unix socket.

    Example::

        server = RpcServer(dispatcher, PrincipalResolver(admin_group="integd"))
        await server.start(path="/run/integd/integd.sock")
        try:
            await stop_requested.wait()
        finally:
            await server.stop()
    """

    def __init__(self, dispatcher: Dispatcher, resolver: PrincipalResolver, *, max_body: int = 1024**2,
                 shutdown_timeout: float = 10.0, logger: Any = None, notify_queue_size: int = 1000,
                 heartbeat: float = 30.0) -> None:
        self._dispatcher = dispatcher
        self._resolver = resolver
        self._max_body = max_body
        self._shutdown_timeout = shutdown_timeout
        self._log = logger if logger is not None else structlog.get_logger("integd.rpc")
        self._queue_size = notify_queue_size
        self._heartbeat = heartbeat
        self.on_connection_closed: list[ConnectionHook] = []
        self._connections: set[RpcConnection] = set()
        self._calls: set[asyncio.Task[bytes | None]] = set()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._bound: tuple[str, int, int] | None = None  # (path, st_dev, st_ino) of a socket we created
        self.address: str | None = None

    @property
    def in_flight(self) -> int:
        """Calls currently executing a handler."""
        return self._dispatcher.in_flight

    @property
    def connections(self) -> frozenset[RpcConnection]:
        """Open WebSocket connections."""
        return frozenset(self._connections)

    async def start(self, *, path: str | None = None, sock: socket.socket | None = None,
                    mode: int = 0o660) -> None:
        """Bind ``path`` safely, or adopt the listening ``sock`` (systemd), and start serving."""
        if (path is None) == (sock is None):
            raise ValueError("RpcServer.start needs exactly one of path= or sock=")
        if self._runner is not None:
            raise RuntimeError("RpcServer is already started")
        if sock is None:
            assert path is not None
            sock = bind_unix_socket(path, mode)
            st = os.stat(path)
            self._bound = (path, st.st_dev, st.st_ino)
        else:
            check_listening_unix_socket(sock)
        sock.setblocking(False)
        self.address = sock.getsockname() or None
        app = web.Application(client_max_size=self._max_body, middlewares=[self._peer_middleware])
        app.router.add_post("/rpc", self._handle_post)
        app.router.add_get("/rpc/ws", self._handle_ws)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=min(self._shutdown_timeout, 2.0))
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            self._remove_socket_file()
            raise
        self._runner = runner
        self._stopping = False
        self._log.info("rpc.listening", socket=self.address, adopted=self._bound is None)

    async def stop(self) -> None:
        """Stop accepting, drain in-flight calls (bounded), close WebSockets with 1001, remove our file."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        for site in list(runner.sites):
            await site.stop()
        await self._drain()
        await asyncio.gather(*(c.close(WSCloseCode.GOING_AWAY, "integd is shutting down")
                               for c in list(self._connections)), return_exceptions=True)
        await runner.cleanup()
        self._remove_socket_file()
        self._log.info("rpc.stopped", socket=self.address)

    async def _drain(self) -> None:
        calls = set(self._calls)
        if not calls:
            return
        self._log.info("rpc.draining", calls=len(calls), timeout=self._shutdown_timeout)
        _, pending = await asyncio.wait(calls, timeout=self._shutdown_timeout)
        if pending:
            self._log.warning("rpc.drain_timeout_cancelling", calls=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)

    def _remove_socket_file(self) -> None:
        bound, self._bound = self._bound, None
        if bound is None:
            return
        path, dev, ino = bound
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == (dev, ino):  # still ours, not a successor's socket
            os.unlink(path)

    # -- HTTP ---------------------------------------------------------------------------------------

    @web.middleware
    async def _peer_middleware(self, request: web.Request,
                               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                               ) -> web.StreamResponse:
        transport = request.transport
        raw_sock = transport.get_extra_info("socket") if transport is not None else None
        try:
            if raw_sock is None:
                raise PeerCredentialsError("connection has no socket")
            principal = self._resolver.resolve(peer_credentials(raw_sock))
        except OSError as exc:
            self._log.warning("rpc.peer_refused", reason=str(exc))
            return _json_response(403, standard_error(PEER_UNKNOWN))
        request[PRINCIPAL] = principal
        return await handler(request)

    def _ctx_factory(self, principal: Principal, conn: RpcConnection | None) -> Callable[[str], CallContext]:
        def make(request_id: str) -> CallContext:
            if self._stopping:
                raise standard_error(SHUTTING_DOWN)
            return CallContext(principal=principal, connection=conn, request_id=request_id)
        return make

    def _spawn(self, payload: bytes, principal: Principal,
               conn: RpcConnection | None) -> asyncio.Task[bytes | None]:
        task = asyncio.create_task(
            self._dispatcher.handle_payload(payload, self._ctx_factory(principal, conn)))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return task

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        too_big = RpcError(INVALID_REQUEST, f"Request body exceeds {self._max_body} bytes")
        if request.content_length is not None and request.content_length > self._max_body:
            return _json_response(413, too_big)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json_response(413, too_big)
        task = self._spawn(body, request[PRINCIPAL], None)
        try:
            answer = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return _json_response(503, standard_error(SHUTTING_DOWN))  # cancelled by stop()
        if answer is None:
            return web.Response(status=204)
        return web.Response(body=answer, content_type="application/json")

    # -- WebSocket ----------------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self._heartbeat, max_msg_size=self._max_body,
                                   compress=False, timeout=_WS_CLOSE_TIMEOUT)
        await ws.prepare(request)
        conn = RpcConnection(ws, request[PRINCIPAL], queue_size=self._queue_size, logger=self._log)
        self._connections.add(conn)
        self._log.debug("rpc.ws_open", connection=conn.id, uid=conn.principal.uid)

        def on_text(text: str) -> None:
            task = self._spawn(text.encode(), conn.principal, conn)
            task.add_done_callback(lambda t: self._deliver(t, conn))

        def on_binary() -> None:
            conn.send_text(_BINARY_REFUSED)

        try:
            await conn.run(on_text, on_binary)
        finally:
            self._connections.discard(conn)
            await self._run_close_hooks(conn)
            self._log.debug("rpc.ws_closed", connection=conn.id, code=ws.close_code)
        return ws

    def _deliver(self, task: asyncio.Task[bytes | None], conn: RpcConnection) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("rpc.ws_dispatch_failed", connection=conn.id, exc_info=exc)
            return
        answer = task.result()
        if answer is not None:
            conn.send_text(answer.decode())

    async def _run_close_hooks(self, conn: RpcConnection) -> None:
        for hook in list(self.on_connection_closed):
            try:
                outcome = hook(conn)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                self._log.exception("rpc.connection_hook_failed", connection=conn.id)


def bind_unix_socket(path: str, mode: int = 0o660, backlog: int = 128) -> socket.socket:
    """Create a listening AF_UNIX socket at ``path`` without ever taking over a live daemon's socket.

    Example::

        sock = bind_unix_socket("/run/integd/integd.sock", 0o660)
    """
    _clear_stale_socket(path)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, mode=0o755, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # the file is born 0600; nobody can connect before chmod
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SocketInUse(f"{path}: another integd bound it while we were starting") from exc
        raise OSError(exc.errno, f"cannot listen on {path}: {exc.strerror}") from exc
    return sock


def _clear_stale_socket(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a stale file left by a crashed daemon
        return
    except FileNotFoundError:
        return
    except TimeoutError as exc:
        raise SocketInUse(f"{path} is served by another integd (it is busy); refusing to take it") from exc
    finally:
        probe.close()
    raise SocketInUse(f"{path} is served by another integd; refusing to take it over")


def check_listening_unix_socket(sock: socket.socket) -> None:
    """Refuse an adopted socket that is not a listening AF_UNIX stream socket (SO_PEERCRED needs one)."""
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(f"adopted socket must be AF_UNIX/SOCK_STREAM, got {sock.family!r}/{sock.type!r}")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise ValueError("adopted socket is not listening")
