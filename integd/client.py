"""The client library for integd's Unix socket, used by integctl, integtui and scripts.

Two ways in:
    IntegdClient    one HTTP POST /rpc per call (or per batch); simplest, stateless.
    IntegdSession   one WebSocket (GET /rpc/ws) carrying calls and the daemon's notifications.

Exceptions::

    Exception
    ├── RpcCallError         the daemon answered with a JSON-RPC error: .code, .message, .data
    ├── DaemonUnavailable    no daemon at the socket, refused, or the connection closed (names the path)
    │   └── DaemonTimeout    also a TimeoutError: no answer within the timeout
    └── ProtocolError        the daemon answered something that is not JSON-RPC 2.0

Trust model: the client trusts whatever listens on the socket path (the path's directory and mode are the
protection); the daemon identifies us by our uid, so there is nothing to authenticate here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp

_URL_BASE = "http://integd"  # the host is ignored on a Unix socket
_END = object()
_log = logging.getLogger("integd.client")


class RpcCallError(Exception):
    """The daemon answered the call with a JSON-RPC error object.

    Example:
        >>> str(RpcCallError(-32601, "Method not found"))
        'Method not found (code -32601)'
    """

    def __init__(self, code: int, message: str, data: object | None = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"


class DaemonUnavailable(Exception):
    """integd cannot be reached at the socket path (missing, refused, closed)."""


class DaemonTimeout(DaemonUnavailable, TimeoutError):
    """integd did not answer within the timeout."""


class ProtocolError(Exception):
    """The daemon's answer is not a JSON-RPC 2.0 response."""


def default_socket_path() -> str:
    """``$INTEGD_SOCKET``; else ``$XDG_RUNTIME_DIR/integd/integd.sock`` for a non-root user; else
    ``/run/integd/integd.sock``.

    Example:
        >>> os.environ["INTEGD_SOCKET"] = "/tmp/x.sock"; default_socket_path()
        '/tmp/x.sock'
        >>> del os.environ["INTEGD_SOCKET"]
    """
    explicit = os.environ.get("INTEGD_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.getuid() != 0:
        return os.path.join(runtime, "integd", "integd.sock")
    return "/run/integd/integd.sock"


def _request(method: str, params: dict[str, Any] | list[Any] | None, req_id: int | None) -> dict[str, Any]:
    if not isinstance(method, str) or not method:
        raise ValueError("method must be a non-empty string")
    if params is not None and not isinstance(params, (dict, list)):
        raise TypeError(f"params must be a dict, a list or None, not {type(params).__name__}")
    req: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        req["params"] = params
    if req_id is not None:
        req["id"] = req_id
    return req


def _outcome(response: Any) -> Any:
    """The result of a Response object, or the RpcCallError it carries (returned, not raised)."""
    if not isinstance(response, dict) or response.get("jsonrpc") != "2.0":
        raise ProtocolError("the daemon's answer is not a JSON-RPC 2.0 response object")
    if "error" in response:
        err = response["error"]
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            raise ProtocolError("the daemon's error object has no integer code")
        return RpcCallError(err["code"], str(err.get("message", "")), err.get("data"))
    if "result" not in response:
        raise ProtocolError("the daemon's response has neither result nor error")
    return response["result"]


def _result_or_raise(response: Any) -> Any:
    outcome = _outcome(response)
    if isinstance(outcome, RpcCallError):
        raise outcome
    return outcome


class IntegdClient:
    """Calls over HTTP POST on the Unix socket.

    Example::

        async with IntegdClient() as client:
            status = await client.call("daemon.status")
            results = await client.batch([("apps.list", None), ("daemon.status", None)])
    """

    def __init__(self, socket_path: str | None = None, *, timeout: float = 30.0) -> None:
        self.socket_path = socket_path or default_socket_path()
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> IntegdClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def call(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Call ``method`` and return its result; RpcCallError when the daemon answers with an error."""
        return _result_or_raise(await self._post(_request(method, params, next(self._ids))))

    async def notify(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> None:
        """Send a notification (no answer, and no error is ever reported back)."""
        await self._post(_request(method, params, None))

    async def batch(self, calls: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
        """Send several calls in one batch; each slot holds its result or its RpcCallError, in order."""
        if not calls:
            return []
        requests = [_request(method, params, next(self._ids)) for method, params in calls]
        reply = await self._post(requests)
        if isinstance(reply, dict):  # the daemon refused the batch as a whole
            raise _outcome(reply) if "error" in reply else ProtocolError("batch answered by one result")
        if not isinstance(reply, list):
            raise ProtocolError("the daemon's answer to a batch is not an array")
        by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
        missing = [req["method"] for req in requests if req["id"] not in by_id]
        if missing:
            raise ProtocolError(f"the daemon's batch answer lacks responses for {missing}")
        return [_outcome(by_id[req["id"]]) for req in requests]

    async def close(self) -> None:
        """Close the connection pool."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket_path),
                timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def _post(self, payload: Any) -> Any:
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            async with self._get_session().post(
                    f"{_URL_BASE}/rpc", data=body, headers={"Content-Type": "application/json"}) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError as exc:
            raise DaemonTimeout(f"integd at {self.socket_path} did not answer within {self._timeout} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise DaemonUnavailable(f"integd is not reachable at {self.socket_path}: {exc.os_error}") from exc
        except aiohttp.ClientError as exc:
            raise DaemonUnavailable(
                f"connection to integd at {self.socket_path} failed: {type(exc).__name__}") from exc
        if status == 204:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"integd at {self.socket_path} answered HTTP {status} without JSON") from exc


class IntegdSession:
    """Calls and server notifications over one WebSocket.

    Example::

        session = await IntegdSession.connect()
        try:
            await session.call("events.subscribe", {"topics": ["app.*"]})
            async for method, params in session.notifications():
                print(method, params)
        finally:
            await session.close()
    """

    def __init__(self, socket_path: str, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                 *, timeout: float, max_queued: int) -> None:
        self.socket_path = socket_path
        self._http = http
        self._ws = ws
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # Bounded: a consumer that stops reading notifications makes us stop reading the socket, and the
        # daemon then treats us as a slow subscriber (it closes with 1008) instead of us growing forever.
        self._notes: asyncio.Queue[Any] = asyncio.Queue(max_queued)
        self._closed_reason: str | None = None
        self._reader = asyncio.create_task(self._read_loop(), name="integd-session-reader")

    @classmethod
    async def connect(cls, socket_path: str | None = None, *, timeout: float = 30.0,
                      max_queued: int = 1000) -> IntegdSession:
        """Open a WebSocket session to the daemon."""
        path = socket_path or default_socket_path()
        http = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path))
        try:
            ws = await http.ws_connect(f"{_URL_BASE}/rpc/ws", max_msg_size=0, autoping=True,
                                       timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                                       receive_timeout=None)
        except aiohttp.WSServerHandshakeError as exc:
            await http.close()
            raise DaemonUnavailable(f"integd at {path} refused the session (HTTP {exc.status})") from exc
        except aiohttp.ClientConnectorError as exc:
            await http.close()
            raise DaemonUnavailable(f"integd is not reachable at {path}: {exc.os_error}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            await http.close()
            raise DaemonUnavailable(f"cannot open a session with integd at {path}: {type(exc).__name__}") from exc
        return cls(path, http, ws, timeout=timeout, max_queued=max_queued)

    async def __aenter__(self) -> IntegdSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once the session has ended (1001: the daemon is stopping)."""
        return self._ws.close_code

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def call(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Call ``method`` on this session; RpcCallError, DaemonUnavailable or DaemonTimeout on failure."""
        if self._closed_reason is not None:
            raise DaemonUnavailable(self._closed_reason)
        req_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            try:
                await self._ws.send_str(json.dumps(_request(method, params, req_id), separators=(",", ":")))
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise DaemonUnavailable(f"session with integd at {self.socket_path} is closed") from exc
            try:
                response = await asyncio.wait_for(future, self._timeout)
            except TimeoutError as exc:
                raise DaemonTimeout(
                    f"integd at {self.socket_path} did not answer {method} within {self._timeout} s") from exc
        finally:
            self._pending.pop(req_id, None)
        return _result_or_raise(response)

    async def notifications(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The daemon's notifications as ``(method, params)``; ends when the session closes.

        Meant for a single consumer.
        """
        while True:
            item = await self._notes.get()
            if item is _END:
                self._notes.put_nowait(_END)  # later iterators end too
                return
            yield item

    async def close(self) -> None:
        """Close the WebSocket and the connection pool."""
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._http.close()

    async def _read_loop(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    _log.info("integd session error: %s", type(self._ws.exception()).__name__)
                    break
        finally:
            self._end(f"session with integd at {self.socket_path} closed (code {self._ws.close_code})")

    async def _on_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            _log.warning("integd sent a frame that is not JSON; ignored")
            return
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
            if "id" not in item and isinstance(item.get("method"), str):
                params = item.get("params")
                await self._notes.put((item["method"], params if isinstance(params, dict) else {}))
                continue
            future = self._pending.get(item.get("id"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(item)
            else:
                _log.info("integd sent a response for no pending call (id %r)", item.get("id"))

    def _end(self, reason: str) -> None:
        self._closed_reason = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DaemonUnavailable(reason))
        self._pending.clear()
        try:
            self._notes.put_nowait(_END)
        except asyncio.QueueFull:
            # The consumer is behind: drop the oldest so that it still learns the session ended.
            self._notes.get_nowait()
            self._notes.put_nowait(_END)
